//! Cancellation by protocol era (issue 13, item 6), seen from the backend.
//!
//! - 2026-07-28: a client closing its response stream cancels the request. The edge resets
//!   the exchange, the connector aborts the backend request, and the backend sees its peer
//!   hang up before it answered.
//! - 2025-11-25 (a legacy session): a disconnect is not a cancellation (the spec says so).
//!   The request runs on to its end at the backend. `notifications/cancelled`, sent in the
//!   session, is the cancel, and it reaches the backend.
//!
//! The backend is `underpass-fault-backend`. Its `sleep` tool records `slept` when it ran to
//! its end, and `peer_closed` when the connector hung up first.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::faults::FaultBackend;
use underpass_tests::load::{post, traceparent, Outcome};
use underpass_tests::*;

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";
/// How long the backend sleeps: long enough for the client to leave well before the end.
const SLEEP_MS: u64 = 1500;

/// Polls (bounded) until `f` gives something.
fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The backend's request id of the request that carried `trace`, once it arrived.
fn arrived(backend: &FaultBackend, trace: &str) -> String {
    poll(
        "the request reached the backend",
        Duration::from_secs(10),
        || {
            backend
                .records()
                .iter()
                .find(|r| r["event"] == "request" && r["trace_id"] == trace)
                .and_then(|r| r["request_id"].as_str().map(str::to_owned))
        },
    )
}

/// What became of backend request `id`: `"slept"` (ran to its end) or `"peer_closed"`
/// (cancelled), once one of them is recorded.
fn fate(backend: &FaultBackend, id: &str) -> String {
    poll("the backend request ended", Duration::from_secs(15), || {
        backend
            .records()
            .iter()
            .find(|r| {
                r["request_id"] == id && (r["event"] == "slept" || r["event"] == "peer_closed")
            })
            .and_then(|r| r["event"].as_str().map(str::to_owned))
    })
}

fn sleep_call(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "sleep", "arguments": {"ms": SLEEP_MS}}})
}

/// POSTs `body` and hangs up after `after` (the client's deadline), before any answer.
fn post_and_leave(url: &str, headers: &[(&str, &str)], body: &Value, after: Duration) {
    let mut all: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ),
    ];
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let got = post(url, &all, body.to_string().as_bytes(), after);
    assert!(
        matches!(got, Err(Outcome::Deadline)),
        "the call should still be running when the client leaves: {got:?}"
    );
}

fn deployment() -> (Deployment, FaultBackend) {
    let port = free_port();
    let (ok, session) = (
        FaultBackend::url_at(port, "ok"),
        FaultBackend::url_at(port, "session"),
    );
    let d = Deployment::start_services(
        false,
        &[("ok", ok.as_str(), ""), ("session", session.as_str(), "")],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        |_| {},
    );
    let backend = FaultBackend::start_at(d.path(), port, &[]);
    (d, backend)
}

#[test]
fn a_2026_07_28_client_closing_its_stream_cancels_the_backend_request() {
    let (d, backend) = deployment();
    let trace = "1c0ffee0000000000000000000000001";
    let parent = traceparent(trace);
    let mut body = sleep_call(7);
    body["params"]["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    post_and_leave(
        &d.edge_setup.url("ok"),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "sleep"),
            ("traceparent", &parent),
        ],
        &body,
        Duration::from_millis(400),
    );
    let id = arrived(&backend, trace);
    assert_eq!(
        fate(&backend, &id),
        "peer_closed",
        "the backend request was not cancelled: {:#?}",
        backend.records()
    );
}

#[test]
fn a_2025_11_25_disconnect_is_not_a_cancellation_notifications_cancelled_is() {
    let (d, backend) = deployment();
    let url = d.edge_setup.url("session");
    let init = http::mcp_post(
        &url,
        &[("MCP-Protocol-Version", LEGACY)],
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": {},
                           "clientInfo": {"name": "cancellation", "version": "1"}}}),
    )
    .expect("initialize");
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init
        .header("mcp-session-id")
        .expect("the edge hands out a session id")
        .to_owned();
    let in_session = [
        ("MCP-Protocol-Version", LEGACY),
        ("Mcp-Session-Id", session.as_str()),
    ];
    let r = http::mcp_post(
        &url,
        &in_session,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .expect("initialized");
    assert_eq!(r.status, 202, "{}", r.text());

    // The client leaves while the call runs: the call runs on to its end.
    let trace = "1c0ffee0000000000000000000000002";
    let parent = traceparent(trace);
    let mut headers = in_session.to_vec();
    headers.push(("traceparent", &parent));
    post_and_leave(&url, &headers, &sleep_call(8), Duration::from_millis(400));
    let id = arrived(&backend, trace);
    assert_eq!(
        fate(&backend, &id),
        "slept",
        "a disconnect cancelled a 2025-11-25 request: {:#?}",
        backend.records()
    );

    // The cancel of that era: a notification in the session, passed to the backend.
    let r = http::mcp_post(
        &url,
        &in_session,
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 8, "reason": "user gave up"}}),
    )
    .expect("notifications/cancelled");
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(
        backend
            .records()
            .iter()
            .any(|r| r["event"] == "request" && r["method"] == "notifications/cancelled"),
        "notifications/cancelled did not reach the backend: {:#?}",
        backend.records()
    );

    // Outside a session nothing could cancel it later: a legacy request whose client left
    // is cancelled, and leaves no work behind.
    let trace = "1c0ffee0000000000000000000000003";
    let parent = traceparent(trace);
    post_and_leave(
        &d.edge_setup.url("ok"),
        &[("MCP-Protocol-Version", LEGACY), ("traceparent", &parent)],
        &sleep_call(9),
        Duration::from_millis(400),
    );
    let id = arrived(&backend, trace);
    assert_eq!(fate(&backend, &id), "peer_closed");
}
