use serde_json::{json, Value};

use super::*;

const SERVED_VERSIONS: [&str; 2] = ["2026-07-28", "2025-11-25"];

fn message(v: Value) -> mcp::Message {
    let parsed = mcp::parse(v.to_string().as_bytes()).unwrap();
    parsed.single().unwrap().clone()
}

fn modern(method: &str, meta: Value) -> mcp::Message {
    message(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}}))
}

fn full_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

#[test]
fn a_complete_modern_request_and_any_legacy_request_pass() {
    let m = modern("tools/list", full_meta());
    assert_eq!(check(Some("2026-07-28"), &m, &SERVED_VERSIONS), Ok(()));
    // Legacy requests carry no `_meta`; `initialize` and `ping` exist there.
    for method in ["initialize", "ping", "logging/setLevel", "tools/list"] {
        let m = message(json!({"jsonrpc": "2.0", "id": 1, "method": method}));
        assert_eq!(check(Some("2025-11-25"), &m, &SERVED_VERSIONS), Ok(()));
        assert_eq!(check(None, &m, &SERVED_VERSIONS), Ok(()));
    }
}

#[test]
fn an_unknown_version_is_refused_with_the_served_ones() {
    let m = modern("server/discover", full_meta());
    let r = check(Some("v999.0.0"), &m, &SERVED_VERSIONS).unwrap_err();
    assert_eq!(
        (r.status, r.code),
        (400, code::UNSUPPORTED_PROTOCOL_VERSION)
    );
    assert_eq!(
        r.data,
        Some(json!({"supported": SERVED_VERSIONS, "requested": "v999.0.0"}))
    );
}

#[test]
fn removed_and_unknown_methods_are_404_method_not_found() {
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        // The tasks extension's first version's methods.
        "tasks/result",
        "tasks/list",
        "no/such",
    ] {
        let r = check(
            Some("2026-07-28"),
            &modern(method, full_meta()),
            &SERVED_VERSIONS,
        )
        .unwrap_err();
        assert_eq!(
            (r.status, r.code),
            (404, code::METHOD_NOT_FOUND),
            "{method}"
        );
    }
}

#[test]
fn a_modern_request_without_its_protocol_meta_is_invalid_params() {
    let no_params = message(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let no_version = modern(
        "tools/list",
        json!({"io.modelcontextprotocol/clientCapabilities": {}}),
    );
    let no_capabilities = modern(
        "tools/call",
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
    );
    for m in [no_params, no_version, no_capabilities] {
        let r = check(Some("2026-07-28"), &m, &SERVED_VERSIONS).unwrap_err();
        assert_eq!(
            (r.status, r.code),
            (400, code::INVALID_PARAMS),
            "{:?}",
            m.value
        );
    }
    // Notifications are not requests: nothing to answer.
    let n = message(json!({"jsonrpc": "2.0", "method": "notifications/cancelled"}));
    assert_eq!(check(Some("2026-07-28"), &n, &SERVED_VERSIONS), Ok(()));
}

#[test]
fn a_tasks_method_needs_the_extension_declared() {
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let r = check(
            Some("2026-07-28"),
            &modern(method, full_meta()),
            &SERVED_VERSIONS,
        )
        .unwrap_err();
        assert_eq!((r.status, r.code), (400, -32021), "{method}: {r:?}");
        assert_eq!(
            r.data,
            Some(
                json!({"requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}})
            )
        );
        let mut meta = full_meta();
        meta["io.modelcontextprotocol/clientCapabilities"] =
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
        assert_eq!(
            check(Some("2026-07-28"), &modern(method, meta), &SERVED_VERSIONS),
            Ok(())
        );
    }
}
