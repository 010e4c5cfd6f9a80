//! Request hygiene at the edge, checked on the wire: media types, body limit, duplicate JSON
//! keys, Host/Origin (DNS rebinding), event-stream headers, and legacy sessions bound to the
//! principal that opened them.

use serde_json::json;
use underpass_tests::http::{self, mcp_post};
use underpass_tests::*;

fn initialize() -> serde_json::Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

#[test]
fn bad_requests_get_clear_status_codes() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let d = Deployment::start(false, "demo", &backend_url);
    let url = d.edge_setup.url("demo");
    let body = initialize().to_string();

    let r = http::request(
        "POST",
        &url,
        &[
            ("Content-Type", "text/plain"),
            ("Accept", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    let r = http::request(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "text/html"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 406, "{}", r.text());
    let r = http::request("GET", &url, &[("Accept", "application/json")], b"").unwrap();
    assert_eq!(r.status, 406, "{}", r.text());

    // Duplicate keys: the policy and the backend could read different names.
    let dup = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"delete","arguments":{}}}"#;
    let r = http::request(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        dup,
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32700, "{}", r.text());
    let r = http::request(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .unwrap();
    assert_eq!(r.status, 400);

    // Over the default 4 MiB limit.
    let big = vec![b' '; 5 * 1024 * 1024];
    let r = http::request("POST", &url, &[("Content-Type", "application/json")], &big).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());

    // DNS rebinding: a foreign Host or Origin is refused, the edge's own is fine.
    let r = mcp_post(
        &url,
        &[("Origin", "http://evil.example.com")],
        &initialize(),
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let own = format!("http://127.0.0.1:{}", d.edge_setup.client_port);
    let r = mcp_post(&url, &[("Origin", own.as_str())], &initialize()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Event streams say so to proxies in front.
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
}

#[test]
fn foreign_host_header_is_refused_on_a_loopback_listener() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let d = Deployment::start(false, "demo", &backend_url);
    let port = d.edge_setup.client_port;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    let body = initialize().to_string();
    write!(
        stream,
        "POST /mcp/demo HTTP/1.1\r\nHost: evil.example.com\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}

#[test]
fn a_session_belongs_to_the_principal_that_opened_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let hash = |k: &str| -> String {
        ring::digest::digest(&ring::digest::SHA256, k.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n[[auth.api_keys]]\nname = \"bob\"\nsha256 = \"{}\"\n[policy]\nallow_all = true\n",
        hash("key-alice"),
        hash("key-bob")
    );
    let d = Deployment::start_with(false, "demo", &backend_url, &extra);
    let url = d.edge_setup.url("demo");
    let r = mcp_post(
        &url,
        &[("Authorization", "Bearer key-alice")],
        &initialize(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let as_alice = [
        ("Authorization", "Bearer key-alice"),
        ("Mcp-Session-Id", sid.as_str()),
    ];
    let as_bob = [
        ("Authorization", "Bearer key-bob"),
        ("Mcp-Session-Id", sid.as_str()),
    ];
    mcp_post(
        &url,
        &as_alice,
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .unwrap();
    assert_eq!(mcp_post(&url, &as_bob, &list).unwrap().status, 404);
    assert_eq!(mcp_post(&url, &as_alice, &list).unwrap().status, 200);
}
