use serde_json::json;

use super::*;
use crate::test_util::{modern, one, V};

#[test]
fn standard_headers_accept() {
    let list = modern("tools/list", json!({}));
    validate_modern_headers(&[V, ("Mcp-Method", "tools/list")], &list).unwrap();
    validate_modern_headers(&[V, ("mcp-method", "tools/list")], &list).unwrap();
    validate_modern_headers(&[V, ("MCP-METHOD", "tools/list")], &list).unwrap();
    validate_modern_headers(
        &[
            ("mcp-protocol-version", " 2026-07-28 "),
            ("Mcp-Method", "\ttools/list "),
        ],
        &list,
    )
    .unwrap();
    // Mcp-Name is not interpreted on methods that define no source for it.
    validate_modern_headers(&[V, ("Mcp-Method", "tools/list"), ("Mcp-Name", "x")], &list).unwrap();

    let call = modern("tools/call", json!({"name":"echo","arguments":{}}));
    validate_modern_headers(
        &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
        &call,
    )
    .unwrap();
    // ServerAcceptsWhitespaceHeaderValue
    validate_modern_headers(
        &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "  echo  ")],
        &call,
    )
    .unwrap();
    // Identical repeats are harmless.
    validate_modern_headers(
        &[
            V,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
            ("mcp-name", "echo"),
        ],
        &call,
    )
    .unwrap();

    let read = modern("resources/read", json!({"uri":"file:///projects/a.json"}));
    validate_modern_headers(
        &[
            V,
            ("Mcp-Method", "resources/read"),
            ("Mcp-Name", "file:///projects/a.json"),
        ],
        &read,
    )
    .unwrap();

    // Base64 sentinel on Mcp-Name, e.g. a non-ASCII tool name.
    let call = modern("tools/call", json!({"name":"Hello, 世界"}));
    validate_modern_headers(
        &[
            V,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        ],
        &call,
    )
    .unwrap();

    // Tasks: Mcp-Name is optional, checked against taskId when present.
    let get = modern("tasks/get", json!({"taskId":"t-1"}));
    validate_modern_headers(&[V, ("Mcp-Method", "tasks/get")], &get).unwrap();
    validate_modern_headers(&[V, ("Mcp-Method", "tasks/get"), ("Mcp-Name", "t-1")], &get).unwrap();
    assert!(
        validate_modern_headers(&[V, ("Mcp-Method", "tasks/get"), ("Mcp-Name", "t-2")], &get)
            .is_err()
    );

    // Notifications: Mcp-Method optional, but must match when sent.
    let n = one(r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#);
    validate_modern_headers(&[V], &n).unwrap();
    validate_modern_headers(&[V, ("Mcp-Method", "notifications/cancelled")], &n).unwrap();
    assert!(validate_modern_headers(&[V, ("Mcp-Method", "tools/call")], &n).is_err());
}

#[test]
fn standard_headers_reject() {
    let list = modern("tools/list", json!({}));
    let call = modern("tools/call", json!({"name":"echo","arguments":{}}));
    let cases: Vec<(&[(&str, &str)], &Message)> = vec![
        // ServerRejectsMismatchedMethodHeader
        (&[V, ("Mcp-Method", "prompts/list")], &list),
        // ServerRejectsMissingMethodHeader
        (&[V], &list),
        // ServerRejectsCaseMismatchValue
        (&[V, ("Mcp-Method", "TOOLS/LIST")], &list),
        // ServerRejectsMismatchedNameHeader
        (
            &[
                V,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "wrong_tool_name"),
            ],
            &call,
        ),
        // ServerRejectsMissingNameHeader
        (&[V, ("Mcp-Method", "tools/call")], &call),
        // Missing protocol version header.
        (&[("Mcp-Method", "tools/list")], &list),
        // Header ≠ _meta version (HttpServerHeaderMismatch400).
        (
            &[
                ("MCP-Protocol-Version", "2025-11-25"),
                ("Mcp-Method", "tools/list"),
            ],
            &list,
        ),
        // Conflicting repeats.
        (
            &[
                V,
                ("Mcp-Method", "tools/list"),
                ("mcp-method", "tools/call"),
            ],
            &list,
        ),
        // Invalid characters.
        (&[V, ("Mcp-Method", "tools/list\u{0}")], &list),
        (
            &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "échō")],
            &call,
        ),
        // Bad Base64 in Mcp-Name.
        (
            &[
                V,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "=?base64?ZWNobw?="),
            ],
            &call,
        ),
        // Base64 of a different name.
        (
            &[
                V,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "=?base64?ZWNoMg==?="),
            ],
            &call,
        ),
    ];
    for (headers, msg) in cases {
        let e = validate_modern_headers(headers, msg).unwrap_err();
        assert_eq!(e.code(), -32020, "{headers:?}");
        assert_eq!(e.http_status(), 400);
        let body = e.to_jsonrpc(msg.id.as_ref());
        assert_eq!(body["error"]["code"], json!(-32020));
        assert_eq!(body["id"], json!(100));
    }
    // A response never has a method to mirror.
    let r = one(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert!(validate_modern_headers(&[V, ("Mcp-Method", "x")], &r).is_err());
    validate_modern_headers(&[V], &r).unwrap();
}

#[test]
fn meta_version() {
    let m = modern("tools/list", json!({}));
    check_meta_version(Some("2026-07-28"), &m).unwrap();
    assert!(matches!(
        check_meta_version(None, &m),
        Err(HeaderError::Missing { .. })
    ));
    assert!(matches!(
        check_meta_version(Some("v999.0.0"), &m),
        Err(HeaderError::Mismatch { .. })
    ));
    let odd = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}"#,
    );
    assert!(check_meta_version(Some("20260728"), &odd).is_err());
    let legacy = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    check_meta_version(Some("2025-11-25"), &legacy).unwrap();
    check_meta_version(None, &legacy).unwrap();
}

#[test]
fn base64_strict() {
    assert_eq!(base64_decode(b"").unwrap(), b"");
    assert_eq!(base64_decode(b"SGVsbG8=").unwrap(), b"Hello");
    assert_eq!(base64_decode(b"SGVsbA==").unwrap(), b"Hell");
    assert_eq!(base64_decode(b"SGVs").unwrap(), b"Hel");
    assert_eq!(base64_decode(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    for bad in [
        &b"SGVsbG8"[..],
        b"SGVsbG9=",
        b"SGVsbA=a",
        b"S===",
        b"====",
        b"SG=s",
        b"SGVs\n",
        b"SGV-",
    ] {
        assert!(base64_decode(bad).is_none(), "{bad:?}");
    }
}
