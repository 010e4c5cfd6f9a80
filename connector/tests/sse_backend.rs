//! Legacy HTTP+SSE (2024-11-05) backends against the real
//! `@modelcontextprotocol/server-everything` in `sse` mode (installed by
//! `tests/peers/install.sh`), bridged to Streamable HTTP semantics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests stop at the first failure

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use underpass_connector::backends::sse::{SseBackend, SseOpener};
use underpass_connector::config::SessionLimits;
use underpass_connector::http_client::http_client;

mod common;
use common::*;

/// The version of the HTTP+SSE transport era.
const PROTOCOL: &str = "2024-11-05";

/// A server-everything in legacy SSE mode on a free loopback port; killed on drop.
struct Server {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    async fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(peer("NODE22"))
            .arg("--require")
            .arg(peer("LOOPBACK_ONLY"))
            .arg(peer("SERVER_EVERYTHING"))
            .arg("sse")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server-everything starts");
        let stderr = child.stderr.take().expect("stderr pipe");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Server is running on port") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        tokio::time::timeout(STEP, ready_rx)
            .await
            .expect("server-everything ready in time")
            .expect("server-everything printed its ready line");
        Server {
            child,
            port,
            stderr: log,
        }
    }

    fn service(&self) -> SseBackend {
        let url = format!("http://127.0.0.1:{}/sse", self.port)
            .parse()
            .unwrap();
        SseBackend::new(
            "everything-sse",
            SseOpener::new(url, http_client()),
            SessionLimits::default(),
        )
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn sse_session_lifecycle_against_server_everything() {
    let server = Server::start().await;
    let svc = server.service();
    let session = open_session(&svc, PROTOCOL).await;
    assert_eq!(svc.session_count(), 1);

    // tools/list over SSE.
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_BOTH,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(resp.status, 200);
    let msgs = sse_body(resp).await;
    let list = msgs
        .iter()
        .find(|m| m["id"] == 1)
        .expect("tools/list answer");
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"trigger-long-running-operation"),
        "{names:?}"
    );

    // tools/call echo, answered as JSON when the client does not take SSE.
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_JSON,
        tool_call(2, "echo", json!({"message": "through the tunnel"})),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    let v = json_body(resp).await;
    assert_eq!(v["id"], 2);
    assert_eq!(
        v["result"]["content"][0]["text"],
        "Echo: through the tunnel"
    );

    // A second session gets its own backend connection.
    let other = open_session(&svc, PROTOCOL).await;
    assert_ne!(other, session);
    assert_eq!(svc.session_count(), 2);

    // DELETE closes the backend connection: the server sees its client disconnect.
    let resp = delete(&svc, &session).await;
    assert_eq!(resp.status, 200);
    assert_eq!(svc.session_count(), 1);
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_BOTH,
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    )
    .await;
    assert_eq!(resp.status, 404, "a deleted session is gone");
    let deadline = Instant::now() + STEP;
    while !server.log().contains("Client Disconnected") {
        assert!(
            Instant::now() < deadline,
            "server never saw the disconnect: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The other session is untouched.
    let resp = post(
        &svc,
        Some(&other),
        ACCEPT_JSON,
        json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
    )
    .await;
    assert_eq!(json_body(resp).await["id"], 4);
    svc.shutdown().await;
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn sse_progress_events_arrive_before_the_result() {
    let server = Server::start().await;
    let svc = server.service();
    check_progress_streams_before_result(&svc, PROTOCOL).await;
}

#[tokio::test]
async fn sse_get_stream_carries_unrouted_messages() {
    let server = Server::start().await;
    let svc = server.service();
    let session = open_session(&svc, PROTOCOL).await;
    let resp = get(&svc, &session).await;
    assert_eq!(resp.status, 200);
    let mut events = EventReader::new(resp);
    // Ask for resource-update notifications: session-wide, so they go to the GET stream.
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_JSON,
        tool_call(1, "toggle-subscriber-updates", json!({})),
    )
    .await;
    assert!(json_body(resp).await.get("result").is_some());
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_JSON,
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe",
               "params": {"uri": "demo://resource/static/document/architecture.md"}}),
    )
    .await;
    assert!(json_body(resp).await.get("result").is_some());
    let msg = loop {
        let msg = events.next().await.expect("GET stream open");
        if msg["method"] == "notifications/resources/updated" {
            break msg;
        }
    };
    assert!(msg["params"]["uri"].is_string(), "{msg}");
    assert_eq!(get(&svc, &session).await.status, 409, "one GET at a time");
    drop(events);
    delete(&svc, &session).await;
}

#[tokio::test]
async fn sse_unknown_or_missing_sessions() {
    let server = Server::start().await;
    let svc = server.service();
    check_unknown_or_missing_sessions(&svc).await;
    assert_eq!(svc.session_count(), 0, "nothing was connected");
}

#[tokio::test]
async fn sse_unreachable_backend_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/sse").parse().unwrap();
    let svc = SseBackend::new(
        "nowhere",
        SseOpener::new(url, http_client()),
        SessionLimits::default(),
    );
    let resp = post(&svc, None, ACCEPT_BOTH, init_request(PROTOCOL)).await;
    assert_eq!(resp.status, 502);
    let v = json_body(resp).await;
    let msg = rpc_error_message(&v);
    // A reference to the log line, never the backend's address.
    assert!(msg.contains("(ref "), "{v}");
    assert!(
        !msg.contains("127.0.0.1") && !msg.contains(&port.to_string()),
        "{v}"
    );
    assert_eq!(svc.session_count(), 0);
}

#[tokio::test]
async fn sse_lost_backend_fails_pending_requests_and_ends_the_session() {
    let mut server = Server::start().await;
    let svc = server.service();
    let session = open_session(&svc, PROTOCOL).await;
    let mut events = running_call(&svc, &session, long_running(9, 10, 10, "tok-9")).await;
    server.child.kill().await.expect("server killed");
    let last = loop {
        let msg = events.next().await.expect("an error before the end");
        if msg["id"] == 9 {
            break msg;
        }
    };
    assert_eq!(
        last["error"]["code"],
        underpass_mcp::jsonrpc::code::UPSTREAM_FAILED,
        "{last}"
    );
    assert!(
        rpc_error_message(&last).contains("SSE MCP server"),
        "{last}"
    );
    assert!(!rpc_error_message(&last).contains("127.0.0.1"), "{last}");
    assert!(events.next().await.is_none());
    let resp = post(
        &svc,
        Some(&session),
        ACCEPT_BOTH,
        json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}),
    )
    .await;
    assert_eq!(resp.status, 404, "the session is gone");
    assert_eq!(svc.session_count(), 0);
}
