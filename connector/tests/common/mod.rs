//! Helpers shared by the connector's bridge tests (stdio and legacy SSE backends): both
//! services answer the same `exchange`, so the requests and readings are the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// integration tests stop at the first failure
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use underpass_connector::answer::Answer;
use underpass_connector::bridge::{LinkOpener, SessionBridge};

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
pub const ACCEPT_JSON: &str = "application/json";
/// No single step of these tests should take longer; a hang fails instead of blocking CI.
pub const STEP: Duration = Duration::from_secs(30);

/// The principal the helpers below act as (the edge names one in every exchange).
pub const PRINCIPAL: &str = "client:test";

/// A bridge under test: a stdio or a legacy SSE backend.
pub trait Exchange {
    fn exchange_as(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> impl std::future::Future<Output = Answer>;

    fn exchange(
        &self,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> impl std::future::Future<Output = Answer> {
        self.exchange_as(PRINCIPAL, method, headers, body)
    }
}

impl<O: LinkOpener> Exchange for SessionBridge<O> {
    fn exchange_as(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> impl std::future::Future<Output = Answer> {
        SessionBridge::exchange(self, principal, method, headers, body)
    }
}

/// A path from `target/peers/peers.env`; fails loudly when the peers are not installed.
pub fn peer(key: &str) -> String {
    let dir = std::env::var_os("UNDERPASS_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/peers"));
    let file = dir.join("peers.env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run `bash tests/peers/install.sh` from the repository root \
             to install the real MCP peers these tests need",
            file.display()
        )
    });
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "{key} missing in {}: rerun tests/peers/install.sh",
                file.display()
            )
        })
}

pub fn headers(session: Option<&str>, accept: &str) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        ("accept".to_owned(), accept.as_bytes().to_vec()),
        ("content-type".to_owned(), b"application/json".to_vec()),
    ];
    if let Some(s) = session {
        h.push(("Mcp-Session-Id".to_owned(), s.as_bytes().to_vec()));
    }
    h
}

pub async fn post(svc: &impl Exchange, session: Option<&str>, accept: &str, msg: Value) -> Answer {
    post_as(svc, PRINCIPAL, session, accept, msg).await
}

/// [`post`] on behalf of `principal`.
pub async fn post_as(
    svc: &impl Exchange,
    principal: &str,
    session: Option<&str>,
    accept: &str,
    msg: Value,
) -> Answer {
    let body = Bytes::from(msg.to_string());
    tokio::time::timeout(
        STEP,
        svc.exchange_as(principal, "POST", &headers(session, accept), body),
    )
    .await
    .expect("POST answered in time")
}

pub async fn get(svc: &impl Exchange, session: &str) -> Answer {
    tokio::time::timeout(
        STEP,
        svc.exchange(
            "GET",
            &headers(Some(session), "text/event-stream"),
            Bytes::new(),
        ),
    )
    .await
    .expect("GET answered in time")
}

pub async fn delete(svc: &impl Exchange, session: &str) -> Answer {
    tokio::time::timeout(
        STEP,
        svc.exchange("DELETE", &headers(Some(session), ACCEPT_BOTH), Bytes::new()),
    )
    .await
    .expect("DELETE answered in time")
}

pub fn header<'a>(resp: &'a Answer, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

pub async fn body(resp: Answer) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.body;
    while let Some(chunk) = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("body chunk in time")
    {
        out.extend_from_slice(&chunk.expect("body chunk"));
    }
    out
}

pub async fn json_body(resp: Answer) -> Value {
    let bytes = body(resp).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// The JSON messages of an SSE body (data lines; comments and ids skipped).
pub fn sse_messages(text: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(text);
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .map(|d| {
            serde_json::from_str(&d).unwrap_or_else(|e| panic!("SSE data not JSON ({e}): {d}"))
        })
        .collect()
}

pub async fn sse_body(resp: Answer) -> Vec<Value> {
    assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
    sse_messages(&body(resp).await)
}

/// Reads SSE events one by one as they arrive.
pub struct EventReader {
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
    buf: String,
}

impl EventReader {
    pub fn new(resp: Answer) -> Self {
        assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
        EventReader {
            stream: resp.body,
            buf: String::new(),
        }
    }

    /// The next message, or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let mut msgs = sse_messages(event.as_bytes());
                if let Some(m) = msgs.pop() {
                    return Some(m);
                }
                continue;
            }
            let chunk = tokio::time::timeout(STEP, self.stream.next())
                .await
                .expect("event in time")?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    }
}

pub fn init_request(protocol: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": protocol,
        "capabilities": {},
        "clientInfo": {"name": "underpass-connector-test", "version": "0"}
    }})
}

/// initialize (at `protocol`) + notifications/initialized; returns the session id.
pub async fn open_session(svc: &impl Exchange, protocol: &str) -> String {
    let resp = post(svc, None, ACCEPT_BOTH, init_request(protocol)).await;
    assert_eq!(resp.status, 200, "initialize: {:?}", resp);
    let session = header(&resp, "mcp-session-id")
        .expect("Mcp-Session-Id on the initialize answer")
        .to_owned();
    uuid::Uuid::parse_str(&session).expect("the session id is a uuid");
    let msgs = sse_body(resp).await;
    let answer = msgs
        .iter()
        .find(|m| m["id"] == 0)
        .expect("initialize response");
    assert_eq!(
        answer["result"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert_eq!(answer["result"]["protocolVersion"], protocol);
    let resp = post(
        svc,
        Some(&session),
        ACCEPT_BOTH,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(resp.status, 202);
    assert!(body(resp).await.is_empty(), "202 has no body");
    session
}

pub fn rpc_error_message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn tool_call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

pub fn long_running(id: u64, duration: u64, steps: u64, token: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation",
        "arguments": {"duration": duration, "steps": steps},
        "_meta": {"progressToken": token}
    }})
}

/// Posts a `long_running` call on `session` and reads its stream up to the first progress
/// notification: the call is then running in the backend.
pub async fn running_call(svc: &impl Exchange, session: &str, call: Value) -> EventReader {
    let resp = post(svc, Some(session), ACCEPT_BOTH, call).await;
    let mut events = EventReader::new(resp);
    let first = events.next().await.expect("a first progress event");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    events
}

/// A long-running call streams its four progress notifications, in order and well before its
/// result (not buffered until the end), then the stream ends.
pub async fn check_progress_streams_before_result(svc: &impl Exchange, protocol: &str) {
    let session = open_session(svc, protocol).await;
    let started = Instant::now();
    let resp = post(
        svc,
        Some(&session),
        ACCEPT_BOTH,
        long_running(7, 2, 4, "tok-7"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let mut events = EventReader::new(resp);
    let mut progress = Vec::new();
    let mut first_progress_at = None;
    let result_at = loop {
        let msg = events.next().await.expect("stream ended before the result");
        if msg["method"] == "notifications/progress" {
            assert_eq!(msg["params"]["progressToken"], "tok-7");
            first_progress_at.get_or_insert_with(|| started.elapsed());
            progress.push(msg["params"]["progress"].as_u64().unwrap());
        } else if msg["id"] == 7 {
            let text = msg["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(
                text.starts_with("Long running operation completed"),
                "{msg}"
            );
            break started.elapsed();
        }
    };
    assert_eq!(progress, [1, 2, 3, 4]);
    let first = first_progress_at.unwrap();
    assert!(
        first + Duration::from_millis(800) < result_at,
        "progress streamed, not buffered: first {first:?}, result {result_at:?}"
    );
    assert!(
        events.next().await.is_none(),
        "stream ends after the response"
    );
    delete(svc, &session).await;
}

/// A request naming an unknown session is a 404 whose JSON-RPC error points at `initialize`
/// (POST, GET and DELETE alike); a request without a session that is not `initialize` is a 400.
pub async fn check_unknown_or_missing_sessions(svc: &impl Exchange) {
    let bogus = "00000000-0000-4000-8000-000000000000";
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    for resp in [
        post(svc, Some(bogus), ACCEPT_BOTH, ping.clone()).await,
        get(svc, bogus).await,
        delete(svc, bogus).await,
    ] {
        assert_eq!(resp.status, 404);
        let v = json_body(resp).await;
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(rpc_error_message(&v).contains("initialize"), "{v}");
    }
    let resp = post(svc, None, ACCEPT_BOTH, ping).await;
    assert_eq!(resp.status, 400, "no session, not initialize");
}
