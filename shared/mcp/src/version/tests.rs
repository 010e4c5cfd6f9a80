use serde_json::json;

use super::*;
use crate::jsonrpc::code::{HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION};

#[test]
fn protocol_versions() {
    assert_eq!(
        check_protocol_version(Some("2026-07-28"), SUPPORTED_VERSIONS),
        Ok(Era::Modern)
    );
    assert_eq!(
        check_protocol_version(Some(" 2025-11-25\t"), SUPPORTED_VERSIONS),
        Ok(Era::Legacy)
    );
    assert_eq!(
        check_protocol_version(Some("2024-11-05"), SUPPORTED_VERSIONS),
        Ok(Era::Legacy)
    );
    assert_eq!(
        check_protocol_version(None, SUPPORTED_VERSIONS),
        Ok(Era::Legacy)
    );
    assert_eq!(
        check_protocol_version(None, &["2026-07-28"]),
        Err(VersionError::Missing)
    );
    assert_eq!(VersionError::Missing.code(), HEADER_MISMATCH);

    let e = check_protocol_version(Some("v999.0.0"), SUPPORTED_VERSIONS).unwrap_err();
    assert_eq!(e.code(), UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(e.http_status(), 400);
    let body = e.to_jsonrpc(Some(&json!(301)));
    assert_eq!(body["id"], json!(301));
    assert_eq!(body["error"]["code"], json!(-32022));
    assert_eq!(
        body["error"]["message"],
        json!("Unsupported protocol version")
    );
    assert_eq!(body["error"]["data"]["requested"], json!("v999.0.0"));
    assert_eq!(
        body["error"]["data"]["supported"],
        json!(SUPPORTED_VERSIONS)
    );
    // Version matching is exact.
    assert!(check_protocol_version(Some("2026-07-28x"), SUPPORTED_VERSIONS).is_err());
    assert!(check_protocol_version(Some(""), SUPPORTED_VERSIONS).is_err());
    assert_eq!(Era::of("2027-01-01"), Era::Modern);
    assert_eq!(Era::of("v999"), Era::Legacy);
}
