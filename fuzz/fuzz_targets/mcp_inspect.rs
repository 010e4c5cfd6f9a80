//! MCP inspection (`underpass_mcp`): a request body of either era (single messages and
//! batches) parsed strictly, its protocol version and 2026-07-28 metadata headers checked
//! against arbitrary headers, and `x-mcp-header` parameters of an arbitrary tool schema.
//!
//! Input: `body` [`\0` header lines `name: value` [`\0` tool JSON]].
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_fuzz::sections;
use underpass_mcp::{
    check_meta_version, check_protocol_version, header_value, parse, tool_param_headers,
    validate_modern_headers, validate_param_headers, Kind, HEADER_PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
};

fuzz_target!(|data: &[u8]| {
    let parts = sections(data, b"\0");
    let body = parts[0];
    let header_text = parts
        .get(1)
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let headers: Vec<(&str, &str)> = header_text
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .collect();
    let tool = parts
        .get(2)
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(t).ok());

    let version = header_value(&headers, HEADER_PROTOCOL_VERSION);
    for supported in [
        SUPPORTED_VERSIONS,
        &SUPPORTED_VERSIONS[..1],
        &SUPPORTED_VERSIONS[1..],
    ] {
        match &version {
            Ok(v) => match check_protocol_version(*v, supported) {
                Ok(_) => {}
                Err(e) => {
                    let _ = (e.code(), e.http_status(), e.to_jsonrpc(None).to_string());
                }
            },
            Err(e) => {
                let _ = e.to_jsonrpc(None).to_string();
            }
        }
    }

    let inspected = match parse(body) {
        Ok(i) => i,
        Err(e) => {
            let rendered = e.to_jsonrpc();
            assert!(rendered.get("error").is_some());
            let _ = (e.code(), e.id(), rendered.to_string());
            return;
        }
    };
    assert!(!inspected.messages.is_empty());
    assert!(inspected.batch || inspected.messages.len() == 1);
    let _ = inspected.single();
    let _ = inspected.repeated_request_id();
    let params = tool.as_ref().and_then(|t| tool_param_headers(t).ok());
    for msg in &inspected.messages {
        match msg.kind {
            Kind::Request => assert!(msg.method.is_some() && msg.id.is_some()),
            Kind::Notification => assert!(msg.method.is_some() && msg.id.is_none()),
            Kind::Response => assert!(msg.method.is_none()),
        }
        let _ = (
            msg.params(),
            msg.tool_arguments(),
            msg.targets(),
            msg.result(),
        );
        let _ = check_meta_version(version.as_ref().ok().copied().flatten(), msg);
        if let Err(e) = validate_modern_headers(&headers, msg) {
            assert_eq!(e.http_status(), 400);
            let _ = e.to_jsonrpc(msg.id.as_ref()).to_string();
        }
        if let Some(params) = &params {
            if let Err(e) = validate_param_headers(&headers, msg, params) {
                let _ = e.to_jsonrpc(msg.id.as_ref()).to_string();
            }
        }
    }
});
