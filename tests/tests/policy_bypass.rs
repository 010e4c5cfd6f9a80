//! Policy bypasses found by outside testing (issue 10), each checked end to end with the real
//! edge and connector over real sockets: batches and list filtering, batches and the audit
//! log, request-shaped notifications, path traversal in argument constraints, rate limits
//! bypassed by interleaving, and resource policy on every method that names a resource
//! (subscriptions, completions, templates) including the notifications that come back.
//!
//! Backends: `server-everything` and the Python SDK peer (real MCP servers), and `Chatty`, a
//! small backend in this file that counts every JSON-RPC message that reaches it (batches
//! flattened) and volunteers notifications about resources the caller may not see.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post};
use underpass_tests::vitals::{assert_survived, Vitals};
use underpass_tests::*;

const KEY: &str = "up_policy_bypass_key_0123456789";
const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

/// `[auth]` with one API key (principal `apikey:bot`), `[policy] file = "policy.toml"`, and an
/// audit log.
fn edge_extra() -> String {
    format!(
        "[auth]\n[[auth.api_keys]]\nname = \"bot\"\nsha256 = \"{}\"\n\
         [policy]\nfile = \"policy.toml\"\n[audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(KEY)
    )
}

fn deploy(service: &str, backend_url: &str, policy: &str) -> Deployment {
    let policy = policy.to_owned();
    Deployment::start_prepared(false, service, backend_url, &edge_extra(), move |dir| {
        std::fs::write(dir.join("policy.toml"), policy).unwrap();
    })
}

const BEARER: &str = "Bearer up_policy_bypass_key_0123456789";

fn post(url: &str, session: Option<&str>, body: &Value) -> http::Reply {
    let mut headers = vec![("Authorization", BEARER), ("MCP-Protocol-Version", LEGACY)];
    if let Some(s) = session {
        headers.push(("Mcp-Session-Id", s));
    }
    mcp_post(url, &headers, body).unwrap()
}

/// A 2026-07-28 request: the metadata headers and `_meta` a modern client sends.
fn post_modern(url: &str, body: &Value) -> http::Reply {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let name = body["params"]["name"]
        .as_str()
        .or(body["params"]["uri"].as_str())
        .map(str::to_owned);
    let mut headers = vec![
        ("Authorization", BEARER),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", method.as_str()),
    ];
    if let Some(n) = &name {
        headers.push(("Mcp-Name", n.as_str()));
    }
    mcp_post(url, &headers, body).unwrap()
}

fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

fn initialize(id: u64) -> Value {
    rpc(
        id,
        "initialize",
        json!({"protocolVersion": LEGACY, "capabilities": {},
               "clientInfo": {"name": "policy-bypass", "version": "1"}}),
    )
}

/// `initialize` + `notifications/initialized`; returns the session id.
fn legacy_session(url: &str) -> String {
    let r = post(url, None, &initialize(0));
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r.header("mcp-session-id").expect("a session id").to_owned();
    let r = post(
        url,
        Some(&session),
        &notification("notifications/initialized", json!({})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    session
}

/// The names (or URIs) listed in a list result.
fn names(msg: &Value, list: &str, key: &str) -> Vec<String> {
    msg["result"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no result.{list} in {msg}"))
        .iter()
        .filter_map(|e| e[key].as_str().map(str::to_owned))
        .collect()
}

fn by_id(msgs: &[Value], id: u64) -> Value {
    msgs.iter()
        .find(|m| m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
        .cloned()
        .unwrap_or_else(|| panic!("no response with id {id} in {msgs:?}"))
}

/// The records the edge wrote, after a clean stop (which flushes the log).
fn audit_lines(d: &mut Deployment) -> Vec<Value> {
    d.edge.stop();
    let text = std::fs::read_to_string(d.path().join("audit.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A reader for long-lived event streams (HTTP/1.0, so the body is the raw stream until close)
// ---------------------------------------------------------------------------------------------

struct EventStream {
    status: u16,
    stream: TcpStream,
    buf: String,
    pending: Vec<Value>,
}

impl EventStream {
    fn open(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> EventStream {
        let rest = url.strip_prefix("http://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(authority).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut s = EventStream {
            status: 0,
            stream,
            buf: String::new(),
            pending: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.buf.contains("\r\n\r\n") {
            assert!(s.fill(deadline), "no response head from {url}");
        }
        let (head, body) = s.buf.split_once("\r\n\r\n").unwrap();
        s.status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        s.buf = body.to_owned();
        s
    }

    /// The rest of a finite body (bounded in time).
    fn rest(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Reads more; false at the deadline or at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// The next event's data: the JSON of the next message, or (for an `endpoint` event) the
    /// text as a JSON string. `None` when the stream ends or nothing comes within `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.pending.is_empty() {
                return Some(self.pending.remove(0));
            }
            let normalized = self.buf.replace("\r\n", "\n");
            if let Some((event, rest)) = normalized.split_once("\n\n") {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                self.buf = rest.to_owned();
                if data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                if data.is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                self.pending.push(value);
                continue;
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Every message until the stream ends or `quiet` passes without one (bounded).
    fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < 10_000 {
            match self.next(quiet) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }

    /// Messages until one satisfies `done` (included), or `timeout`.
    fn until(&mut self, timeout: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(v) = self.next(deadline.saturating_duration_since(Instant::now())) {
            let finished = done(&v);
            out.push(v);
            if finished {
                break;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Chatty: a backend that counts what reaches it and talks about resources nobody asked for
// ---------------------------------------------------------------------------------------------

/// One JSON-RPC message as the backend received it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    /// `params.name` or `params.uri` (or the subscribed URIs of `subscriptions/listen`).
    target: Vec<String>,
    is_request: bool,
}

const PUBLIC_URI: &str = "public://a";
const SECRET_URI: &str = "secret://x";

struct Chatty {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Chatty {
    fn start() -> Chatty {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| chatty(log.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Chatty {
            url: format!("http://{addr}/mcp"),
            got,
            _runtime: runtime,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Messages (requests and notifications) of `method` naming `target`.
    fn count(&self, method: &str, target: &str) -> usize {
        self.got()
            .iter()
            .filter(|g| g.method == method && g.target.iter().any(|t| t == target))
            .count()
    }
}

fn updated(uri: &str) -> Value {
    notification("notifications/resources/updated", json!({"uri": uri}))
}

fn chatty_result(msg: &Value) -> Value {
    let entries = |key: &str, items: &[&str]| -> Vec<Value> {
        items
            .iter()
            .map(|i| json!({key: i, "name": i, "inputSchema": {"type": "object"}}))
            .collect()
    };
    match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({"protocolVersion": LEGACY,
            "capabilities": {"tools": {}, "prompts": {}, "resources": {"subscribe": true}},
            "serverInfo": {"name": "chatty", "version": "1"}}),
        "tools/list" => {
            json!({"tools": entries("name", &["echo", "get-secret", "delete-everything"])})
        }
        "prompts/list" => json!({"prompts": entries("name", &["public-prompt", "secret-prompt"])}),
        "resources/list" => json!({"resources": entries("uri", &[PUBLIC_URI, SECRET_URI])}),
        "resources/templates/list" => {
            json!({"resourceTemplates": entries("uriTemplate", &["public://t/{id}", "secret://t/{id}"])})
        }
        _ => json!({"content": [{"type": "text", "text": "ok"}]}),
    }
}

async fn chatty(
    log: Arc<Mutex<Vec<Got>>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let sse_ok = req
        .headers()
        .get_all("accept")
        .iter()
        .any(|v| v.to_str().unwrap_or("").contains("text/event-stream"));
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let sse = |events: Vec<Value>| {
        let mut text = String::new();
        for e in events {
            text.push_str(&format!("event: message\ndata: {e}\n\n"));
        }
        let mut r = hyper::Response::new(Full::new(Bytes::from(text)));
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        r
    };
    if method == hyper::Method::GET {
        // The legacy event stream: news about every resource, allowed or not.
        return Ok(sse(vec![updated(SECRET_URI), updated(PUBLIC_URI)]));
    }
    if method != hyper::Method::POST {
        return Ok(hyper::Response::new(Full::new(Bytes::new())));
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (messages, batch) = match parsed {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let mut requests = Vec::new();
    if let Ok(mut l) = log.lock() {
        for m in &messages {
            let method = m["method"].as_str().unwrap_or_default().to_owned();
            let mut target: Vec<String> = ["name", "uri"]
                .iter()
                .filter_map(|k| m["params"][*k].as_str().map(str::to_owned))
                .collect();
            if let Some(subs) = m["params"]["notifications"]["resourceSubscriptions"].as_array() {
                target.extend(subs.iter().filter_map(|s| s.as_str().map(str::to_owned)));
            }
            let is_request = m.get("id").is_some();
            l.push(Got {
                method,
                target,
                is_request,
            });
            if is_request {
                requests.push(m.clone());
            }
        }
    }
    if requests.is_empty() {
        let mut r = hyper::Response::new(Full::new(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::ACCEPTED;
        return Ok(r);
    }
    let respond = |m: &Value| json!({"jsonrpc": "2.0", "id": m["id"], "result": chatty_result(m)});
    let mut resp = if sse_ok {
        let mut events = Vec::new();
        for m in &requests {
            if m["method"] == "subscriptions/listen" {
                // Acknowledges more than was asked for, then reports on both resources.
                let mut subs = m["params"]["notifications"]["resourceSubscriptions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                subs.push(json!(SECRET_URI));
                events.push(notification(
                    "notifications/subscriptions/acknowledged",
                    json!({"_meta": {"io.modelcontextprotocol/subscriptionId": m["id"]},
                           "notifications": {"resourceSubscriptions": subs}}),
                ));
            }
            events.push(updated(SECRET_URI));
            events.push(updated(PUBLIC_URI));
            events.push(respond(m));
        }
        sse(events)
    } else {
        let answers: Vec<Value> = requests.iter().map(respond).collect();
        let body = if batch {
            Value::Array(answers)
        } else {
            answers.into_iter().next().unwrap_or(Value::Null)
        };
        let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    };
    if requests.iter().any(|m| m["method"] == "initialize") {
        resp.headers_mut().insert(
            "mcp-session-id",
            hyper::header::HeaderValue::from_static("chatty-session"),
        );
    }
    Ok(resp)
}

const CHATTY_POLICY: &str = r#"
[[allow]]
name = "bot"
principals = ["apikey:bot"]
services = ["chatty"]
tools = ["echo"]
resources = ["public://*"]
prompts = ["public-*"]
"#;

// ---------------------------------------------------------------------------------------------
// 1. Every list answer is filtered: JSON, batch arrays, SSE, and the 2024-11-05 bridge
// ---------------------------------------------------------------------------------------------

const EVERYTHING_POLICY: &str = r#"
[[allow]]
name = "reader"
principals = ["apikey:bot"]
services = ["everything"]
tools = ["echo", "get-sum"]
resources = ["demo://resource/static/document/architecture.md", "demo://resource/dynamic/text/*"]
prompts = ["simple-prompt"]
"#;

fn all_lists() -> Value {
    json!([
        rpc(1, "prompts/list", json!({})),
        rpc(2, "tools/list", json!({})),
        rpc(3, "resources/list", json!({})),
        rpc(4, "resources/templates/list", json!({})),
    ])
}

fn assert_everything_lists_filtered(msgs: &[Value]) {
    assert_eq!(
        names(&by_id(msgs, 1), "prompts", "name"),
        ["simple-prompt"],
        "prompts/list"
    );
    assert_eq!(
        names(&by_id(msgs, 2), "tools", "name"),
        ["echo", "get-sum"],
        "tools/list"
    );
    assert_eq!(
        names(&by_id(msgs, 3), "resources", "uri"),
        ["demo://resource/static/document/architecture.md"],
        "resources/list"
    );
    assert_eq!(
        names(&by_id(msgs, 4), "resourceTemplates", "uriTemplate"),
        ["demo://resource/dynamic/text/{resourceId}"],
        "resources/templates/list"
    );
}

#[test]
fn every_list_in_a_batch_is_filtered() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let d = deploy("everything", &everything_url, EVERYTHING_POLICY);
    let url = d.edge_setup.url("everything");
    let session = legacy_session(&url);

    // server-everything answers a batch with one SSE event per response.
    let r = post(&url, Some(&session), &all_lists());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_everything_lists_filtered(&http::messages(&r));

    // The same lists in another order, and each on its own.
    let reversed: Vec<Value> = all_lists()
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .cloned()
        .collect();
    let r = post(&url, Some(&session), &Value::Array(reversed));
    assert_everything_lists_filtered(&http::messages(&r));
    let mut single = Vec::new();
    for m in all_lists().as_array().unwrap() {
        single.extend(http::messages(&post(&url, Some(&session), m)));
    }
    assert_everything_lists_filtered(&single);

    // A batch answered as one JSON array (Chatty answers JSON when SSE is not accepted).
    let chatty = Chatty::start();
    let c = deploy("chatty", &chatty.url, CHATTY_POLICY);
    let curl = c.edge_setup.url("chatty");
    let r = http::request(
        "POST",
        &curl,
        &[
            ("Authorization", BEARER),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        all_lists().to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = r.json().as_array().cloned().expect("a JSON batch answer");
    assert_eq!(
        names(&by_id(&msgs, 1), "prompts", "name"),
        ["public-prompt"]
    );
    assert_eq!(names(&by_id(&msgs, 2), "tools", "name"), ["echo"]);
    assert_eq!(names(&by_id(&msgs, 3), "resources", "uri"), [PUBLIC_URI]);
    assert_eq!(
        names(&by_id(&msgs, 4), "resourceTemplates", "uriTemplate"),
        ["public://t/{id}"]
    );

    // Repeated request ids in one batch would make answers ambiguous: refused at the edge.
    let before = chatty.got().len();
    let dup = json!([
        rpc(9, "prompts/list", json!({})),
        rpc(9, "tools/list", json!({}))
    ]);
    let r = post(&curl, None, &dup);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32600, "{}", r.text());
    assert_eq!(
        chatty.got().len(),
        before,
        "a refused batch reached the backend"
    );
}

#[test]
fn every_list_in_a_batch_is_filtered_through_the_2024_11_05_bridge() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let d = deploy("everything", &everything_url, EVERYTHING_POLICY);
    let sse_url = format!("{}/sse", d.edge_setup.url("everything"));
    let mut events = EventStream::open(
        "GET",
        &sse_url,
        &[("Authorization", BEARER), ("Accept", "text/event-stream")],
        b"",
    );
    assert_eq!(events.status, 200);
    let endpoint = events
        .next(Duration::from_secs(10))
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("an endpoint event");
    let post_url = format!("http://127.0.0.1:{}{endpoint}", d.edge_setup.client_port);
    let send = |body: &Value| {
        let r = http::request(
            "POST",
            &post_url,
            &[
                ("Authorization", BEARER),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    };
    send(&initialize(0));
    let init = events.until(Duration::from_secs(20), |m| m["id"] == 0);
    assert!(init.iter().any(|m| m["id"] == 0), "{init:?}");
    send(&notification("notifications/initialized", json!({})));
    send(&all_lists());
    let mut msgs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(1..=4).all(|id| msgs.iter().any(|m: &Value| m["id"] == id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next(left) {
            Some(m) => msgs.push(m),
            None => panic!("not every list was answered: {msgs:?}"),
        }
    }
    assert_everything_lists_filtered(&msgs);
}

// ---------------------------------------------------------------------------------------------
// 2. One audit record per JSON-RPC call
// ---------------------------------------------------------------------------------------------

#[test]
fn every_call_of_a_batch_gets_its_own_audit_record() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let mut d = deploy("everything", &everything_url, EVERYTHING_POLICY);
    let url = d.edge_setup.url("everything");
    let session = legacy_session(&url);

    let call = |id: u64, tool: &str, args: Value| {
        rpc(id, "tools/call", json!({"name": tool, "arguments": args}))
    };
    let batch = json!([
        rpc(10, "ping", json!({})),
        call(11, "echo", json!({"message": "a"})),
        call(12, "get-sum", json!({"a": 1, "b": 2})),
    ]);
    let r = post(&url, Some(&session), &batch);
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = http::messages(&r);
    assert!(
        (10..=12).all(|id| msgs.iter().any(|m| m["id"] == id)),
        "{msgs:?}"
    );
    // A batch with one denied call is refused whole, and says so for every call.
    let denied = json!([
        call(20, "echo", json!({"message": "b"})),
        call(21, "get-env", json!({})),
        notification("notifications/cancelled", json!({"requestId": 11})),
    ]);
    let r = post(&url, Some(&session), &denied);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["id"], 21, "{}", r.text());

    let lines = audit_lines(&mut d);
    // A batch's lines, `dispatched` (written before it went down the tunnel) or with outcomes.
    let of_batch = |id: u64, dispatched: bool| -> Vec<Value> {
        let trace = lines
            .iter()
            .find(|l| l["rpc_id"] == id)
            .unwrap_or_else(|| panic!("no record of call {id}: {lines:#?}"))["trace_id"]
            .clone();
        lines
            .iter()
            .filter(|l| l["trace_id"] == trace && (l["outcome"] == "dispatched") == dispatched)
            .cloned()
            .collect()
    };
    let ok = of_batch(11, false);
    let ahead = of_batch(11, true);
    assert_eq!(ahead.len(), 3, "a dispatched line per message: {ahead:#?}");
    for (a, l) in ahead.iter().zip(&ok) {
        for field in [
            "mcp_method",
            "target",
            "rpc_id",
            "decision",
            "rule",
            "request_id",
        ] {
            assert_eq!(a[field], l[field], "{field}: {a} / {l}");
        }
        assert!(a.get("http_status").is_none(), "{a}");
    }
    let calls: Vec<(Value, Value, Value, Value)> = ok
        .iter()
        .map(|l| {
            (
                l["mcp_method"].clone(),
                l["target"].clone(),
                l["decision"].clone(),
                l["rule"].clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (json!("ping"), Value::Null, json!("allow"), json!("reader")),
            (
                json!("tools/call"),
                json!("echo"),
                json!("allow"),
                json!("reader")
            ),
            (
                json!("tools/call"),
                json!("get-sum"),
                json!("allow"),
                json!("reader")
            ),
        ],
        "{ok:#?}"
    );
    for (i, l) in ok.iter().enumerate() {
        assert_eq!(l["batch_index"], i, "{l}");
        assert_eq!(l["batch_size"], 3, "{l}");
        assert_eq!(l["principal"], "apikey:bot", "{l}");
        assert_eq!(l["outcome"], "ok", "{l}");
        assert_eq!(l["http_status"], 200, "{l}");
    }
    let refused = of_batch(21, false);
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(
        of_batch(21, true).is_empty(),
        "a refused batch is never dispatched"
    );
    for l in &refused {
        assert_eq!(l["decision"], "deny", "{l}");
        assert_eq!(l["outcome"], "denied", "{l}");
        assert_eq!(l["rule"], "default deny", "{l}");
        assert_eq!(l["http_status"], 403, "{l}");
    }
    assert_eq!(refused[1]["target"], "get-env");
    assert_eq!(refused[2]["mcp_method"], "notifications/cancelled");
    assert!(refused[2].get("rpc_id").is_none(), "{}", refused[2]);

    // The chain of one line per call still verifies.
    let out = std::process::Command::new(bin("underpass-edge"))
        .args(["audit", "verify"])
        .arg(d.path().join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

// ---------------------------------------------------------------------------------------------
// 3. Request-shaped notifications are judged like requests
// ---------------------------------------------------------------------------------------------

#[test]
fn denied_calls_sent_as_notifications_never_reach_the_backend() {
    let chatty = Chatty::start();
    let policy = format!("{CHATTY_POLICY}rate = \"3/min\"\n");
    let d = deploy("chatty", &chatty.url, &policy);
    let url = d.edge_setup.url("chatty");
    let call = |tool: &str| notification("tools/call", json!({"name": tool, "arguments": {}}));

    for body in [
        call("get-secret"),
        call("delete-everything"),
        notification("prompts/get", json!({"name": "secret-prompt"})),
        notification("resources/read", json!({"uri": SECRET_URI})),
        notification("resources/subscribe", json!({"uri": SECRET_URI})),
        json!([
            notification("notifications/initialized", json!({})),
            call("get-secret")
        ]),
    ] {
        let r = post(&url, None, &body);
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], -31403, "{}", r.text());
    }
    assert_eq!(chatty.count("tools/call", "get-secret"), 0);
    assert_eq!(chatty.count("tools/call", "delete-everything"), 0);
    assert_eq!(chatty.count("prompts/get", "secret-prompt"), 0);
    assert_eq!(chatty.count("resources/read", SECRET_URI), 0);
    assert_eq!(chatty.count("resources/subscribe", SECRET_URI), 0);

    // An allowed one passes, and notifications count against the rule's rate like requests.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(&url, None, &call("echo")).status);
    }
    assert_eq!(statuses, [202, 202, 202, 429]);
    assert_eq!(chatty.count("tools/call", "echo"), 3);
    assert!(
        chatty.got().iter().all(|g| !g.is_request),
        "only notifications were sent"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Argument constraints and path traversal
// ---------------------------------------------------------------------------------------------

#[test]
fn argument_constraints_refuse_path_traversal() {
    let chatty = Chatty::start();
    let policy = r#"
[[allow]]
name = "docs-glob"
principals = ["apikey:bot"]
tools = ["echo"]
arguments = [{ pointer = "/path", pattern = "/srv/docs/*" }]

[[allow]]
name = "docs-path"
principals = ["apikey:bot"]
tools = ["get-secret"]
arguments = [{ pointer = "/path", path = "/srv/docs/**" }]
"#;
    let d = deploy("chatty", &chatty.url, policy);
    let url = d.edge_setup.url("chatty");
    let vitals = Vitals::of(d.edge.pid());
    let call = |tool: &str, path: &str| {
        rpc(
            1,
            "tools/call",
            json!({"name": tool, "arguments": {"path": path}}),
        )
    };
    for tool in ["echo", "get-secret"] {
        for bad in [
            "/srv/docs/../../etc/passwd",
            "/srv/docs/%2e%2e/%2e%2e/etc/passwd",
            "/srv/docs/%2E%2E/x",
            "/srv/docs/a\u{0}.txt",
            "/srv/docs/..\\..\\etc\\passwd",
            "/srv/docs/%252e%252e/x",
        ] {
            let r = post(&url, None, &call(tool, bad));
            assert_eq!(r.status, 403, "{tool} {bad:?}: {}", r.text());
        }
        assert_eq!(
            post(&url, None, &call(tool, "/srv/docs/a.txt")).status,
            200,
            "{tool}"
        );
    }
    // `path` normalizes and matches per segment: `**` spans directories, `.` and `//` vanish.
    for good in ["/srv/docs/a/b/c.txt", "/srv//docs/./a.txt"] {
        let r = post(&url, None, &call("get-secret", good));
        assert_eq!(r.status, 200, "{good:?}: {}", r.text());
    }
    assert_eq!(chatty.count("tools/call", "echo"), 1);
    assert_eq!(chatty.count("tools/call", "get-secret"), 3);
    assert_survived(
        &vitals,
        "path traversal in arguments",
        || match post(&url, None, &call("echo", "/srv/docs/b.txt")).status {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        },
        || d.edge.log_text(),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Each rule's rate binds the calls that rule allowed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_rules_rate_is_not_bypassed_by_interleaving_calls_another_rule_allows() {
    let chatty = Chatty::start();
    let policy = r#"
[[allow]]
name = "slow-secret"
principals = ["apikey:bot"]
tools = ["get-secret"]
rate = "2/min"

[[allow]]
name = "fast-echo"
principals = ["apikey:bot"]
tools = ["echo"]
rate = "50/s"

[[allow]]
name = "base"
principals = ["apikey:bot"]
rate = "4/min"
"#;
    let d = deploy("chatty", &chatty.url, policy);
    let url = d.edge_setup.url("chatty");
    let vitals = Vitals::of(d.edge.pid());
    let call = |tool: &str| rpc(1, "tools/call", json!({"name": tool, "arguments": {}}));

    // The service's own methods (initialize, lists, ping) are limited by the rule that grants
    // no tools, resources or prompts ("base"), not by the first rule in the file.
    let mut listed = Vec::new();
    for _ in 0..5 {
        listed.push(post(&url, None, &rpc(1, "tools/list", json!({}))).status);
    }
    assert_eq!(listed, [200, 200, 200, 200, 429]);

    // Interleaving echo calls (50/s) does not lend their budget to get-secret (2/min).
    let (mut secret_ok, mut echo_ok) = (0, 0);
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(60));
        match post(&url, None, &call("get-secret")).status {
            200 => secret_ok += 1,
            429 => {}
            other => panic!("get-secret: HTTP {other}"),
        }
        std::thread::sleep(Duration::from_millis(60));
        let r = post(&url, None, &call("echo"));
        assert_eq!(r.status, 200, "echo: {}", r.text());
        echo_ok += 1;
    }
    assert_eq!((secret_ok, echo_ok), (2, 8));
    assert_eq!(chatty.count("tools/call", "get-secret"), 2);
    assert_survived(
        &vitals,
        "rate bypass by interleaving",
        || match post(&url, None, &call("echo")).status {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        },
        || d.edge.log_text(),
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Resource policy on every method that names a resource, and on what comes back
// ---------------------------------------------------------------------------------------------

/// A 2026-07-28 `subscriptions/listen` POST, read as a stream.
fn listen_stream(url: &str, body: &Value) -> EventStream {
    EventStream::open(
        "POST",
        url,
        &[
            ("Authorization", BEARER),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn subscriptions_listen_is_judged_by_resource_policy() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut py = Proc::spawn(
        "py-server",
        scratch.path(),
        std::process::Command::new(peers.path("VENV_PYTHON"))
            .arg(peers.path("PY_SERVER"))
            .args(["--port", &port.to_string()]),
    );
    py.wait_for_log("Uvicorn running", Duration::from_secs(30));
    let hello = "demo://resource/static/document/hello.txt";
    let policy = format!(
        "[[allow]]\nname = \"hello-only\"\nprincipals = [\"apikey:bot\"]\nresources = [\"{hello}\"]\n"
    );
    let d = deploy("py", &format!("http://127.0.0.1:{port}/mcp"), &policy);
    let url = d.edge_setup.url("py");

    // Reading the other resource is denied; so is listening to it, alone or beside an allowed one.
    let read = post_modern(
        &url,
        &modern(1, "resources/read", json!({"uri": "secret://x"})),
    );
    assert_eq!(read.status, 403, "{}", read.text());
    for subs in [json!(["secret://x"]), json!([hello, "secret://x"])] {
        let listen = modern(
            2,
            "subscriptions/listen",
            json!({"notifications": {"resourceSubscriptions": subs}}),
        );
        // Read only the status: a stream the backend accepted would stay open.
        let mut s = listen_stream(&url, &listen);
        assert_eq!(s.status, 403, "{subs}");
        let body = s.rest();
        assert!(body.contains("-31403"), "{body}");
    }

    // Listening to the allowed resource works: the backend acknowledges it.
    let listen = modern(
        3,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": [hello]}}),
    );
    let mut s = listen_stream(&url, &listen);
    assert_eq!(s.status, 200);
    let ack = s.next(Duration::from_secs(20)).expect("an acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([hello])
    );
}

#[test]
fn every_method_naming_a_resource_or_prompt_is_judged() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let d = deploy("everything", &everything_url, EVERYTHING_POLICY);
    let url = d.edge_setup.url("everything");
    let session = legacy_session(&url);
    let denied_doc = "demo://resource/static/document/features.md";
    let allowed_doc = "demo://resource/static/document/architecture.md";
    let complete = |r#ref: Value| {
        rpc(
            5,
            "completion/complete",
            json!({"ref": r#ref, "argument": {"name": "x", "value": ""}}),
        )
    };
    for (body, status) in [
        (
            rpc(1, "resources/subscribe", json!({"uri": denied_doc})),
            403,
        ),
        (
            rpc(2, "resources/unsubscribe", json!({"uri": denied_doc})),
            403,
        ),
        (
            rpc(3, "resources/subscribe", json!({"uri": allowed_doc})),
            200,
        ),
        (
            rpc(
                4,
                "resources/read",
                json!({"uri": "demo://resource/dynamic/blob/1"}),
            ),
            403,
        ),
        (
            rpc(
                4,
                "resources/read",
                json!({"uri": "demo://resource/dynamic/text/1"}),
            ),
            200,
        ),
        (
            complete(json!({"type": "ref/prompt", "name": "completable-prompt"})),
            403,
        ),
        (
            complete(
                json!({"type": "ref/resource", "uri": "demo://resource/dynamic/blob/{resourceId}"}),
            ),
            403,
        ),
        (
            complete(
                json!({"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"}),
            ),
            200,
        ),
        (
            notification("resources/subscribe", json!({"uri": denied_doc})),
            403,
        ),
    ] {
        let r = post(&url, Some(&session), &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
}

#[test]
fn notifications_about_denied_resources_are_filtered_from_every_stream() {
    let chatty = Chatty::start();
    let d = deploy("chatty", &chatty.url, CHATTY_POLICY);
    let url = d.edge_setup.url("chatty");
    let about = |msgs: &[Value], uri: &str| {
        msgs.iter()
            .filter(|m| {
                m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri
            })
            .count()
    };

    // The response stream of a POST.
    let r = post(
        &url,
        None,
        &rpc(1, "tools/call", json!({"name": "echo", "arguments": {}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = http::messages(&r);
    assert_eq!(
        (about(&msgs, PUBLIC_URI), about(&msgs, SECRET_URI)),
        (1, 0),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m["id"] == 1), "{msgs:?}");

    // A legacy GET event stream.
    let r = http::request(
        "GET",
        &url,
        &[("Authorization", BEARER), ("Accept", "text/event-stream")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = http::messages(&r);
    assert_eq!(
        (about(&msgs, PUBLIC_URI), about(&msgs, SECRET_URI)),
        (1, 0),
        "{msgs:?}"
    );

    // A 2026-07-28 subscriptions/listen stream: the acknowledgement names only what the caller
    // may read, and updates about the rest are dropped.
    let listen = modern(
        2,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": [PUBLIC_URI]}}),
    );
    let r = post_modern(&url, &listen);
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = http::messages(&r);
    let ack = msgs
        .iter()
        .find(|m| m["method"] == "notifications/subscriptions/acknowledged")
        .unwrap_or_else(|| panic!("no acknowledgement: {msgs:?}"));
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([PUBLIC_URI]),
        "{ack}"
    );
    assert_eq!(
        (about(&msgs, PUBLIC_URI), about(&msgs, SECRET_URI)),
        (1, 0),
        "{msgs:?}"
    );

    // The 2024-11-05 bridge: answers to POSTs and the backend's GET stream alike.
    let sse_url = format!("{url}/sse");
    let mut events = EventStream::open(
        "GET",
        &sse_url,
        &[("Authorization", BEARER), ("Accept", "text/event-stream")],
        b"",
    );
    let endpoint = events
        .next(Duration::from_secs(10))
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("an endpoint event");
    let post_url = format!("http://127.0.0.1:{}{endpoint}", d.edge_setup.client_port);
    for body in [
        initialize(0),
        notification("notifications/initialized", json!({})),
        rpc(7, "tools/call", json!({"name": "echo", "arguments": {}})),
    ] {
        let r = http::request(
            "POST",
            &post_url,
            &[
                ("Authorization", BEARER),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let msgs = events.drain(Duration::from_secs(3));
    assert!(msgs.iter().any(|m| m["id"] == 7), "{msgs:?}");
    assert!(about(&msgs, PUBLIC_URI) >= 2, "{msgs:?}");
    assert_eq!(about(&msgs, SECRET_URI), 0, "{msgs:?}");
}
