//! A minimal MCP backend that records what reaches it (methods, tool calls, headers), so tests
//! can assert what the gateway let through and what it stripped. JSON responses, no sessions.
//!
//! Its unlisted tool `hold` does not answer until [`Recorder::release`]: a long tool call whose
//! end the test decides.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method (`POST`, `GET`, …).
    pub http_method: String,
    /// Path and query of the request.
    pub uri: String,
    /// The JSON-RPC method (empty when the body is none).
    pub method: String,
    pub tool: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The `hold` tool's state: calls waiting, and whether they may finish.
#[derive(Default)]
struct Hold {
    waiting: AtomicUsize,
    released: AtomicBool,
    notify: tokio::sync::Notify,
}

pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    hold: Arc<Hold>,
    _runtime: tokio::runtime::Runtime,
}

pub const TOOLS: [&str; 3] = ["echo", "get-secret", "delete-everything"];

impl Recorder {
    pub fn start() -> Recorder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind recorder");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let hold = Arc::new(Hold::default());
        let holds = hold.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let hold = holds.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(log.clone(), hold.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder {
            url: format!("http://{addr}/mcp"),
            seen,
            hold,
            _runtime: runtime,
        }
    }

    /// `hold` calls waiting for [`Recorder::release`].
    pub fn held(&self) -> usize {
        self.hold.waiting.load(Ordering::SeqCst)
    }

    /// Waits until `n` `hold` calls are waiting; panics after `timeout`.
    pub fn wait_held(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.held() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} hold calls arrived within {timeout:?}",
                self.held()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets every `hold` call (waiting or future) finish.
    pub fn release(&self) {
        self.hold.released.store(true, Ordering::SeqCst);
        self.hold.notify.notify_waiters();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn tool_calls(&self, tool: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.tool.as_deref() == Some(tool))
            .count()
    }
}

async fn handle(
    log: Arc<Mutex<Vec<Seen>>>,
    hold: Arc<Hold>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let http_method = req.method().as_str().to_owned();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    let tool = (method == "tools/call")
        .then(|| msg["params"]["name"].as_str().map(str::to_owned))
        .flatten();
    if let Ok(mut l) = log.lock() {
        l.push(Seen {
            http_method,
            uri,
            method: method.clone(),
            tool: tool.clone(),
            headers,
        });
    }
    if tool.as_deref() == Some("sleep") {
        // A long tool call: `{"ms": N}` (at most a minute).
        let ms = msg["params"]["arguments"]["ms"]
            .as_u64()
            .unwrap_or(0)
            .min(60_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if tool.as_deref() == Some("hold") {
        hold.waiting.fetch_add(1, Ordering::SeqCst);
        while !hold.released.load(Ordering::SeqCst) {
            let notified = hold.notify.notified();
            if hold.released.load(Ordering::SeqCst) {
                break;
            }
            // Bounded: a forgotten release ends the call after a minute.
            if tokio::time::timeout(Duration::from_secs(60), notified)
                .await
                .is_err()
            {
                break;
            }
        }
        hold.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    let id = msg.get("id").cloned();
    let result = match method.as_str() {
        "initialize" => json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "recorder", "version": "1"}
        }),
        "tools/list" => json!({
            "tools": TOOLS.iter().map(|t| json!({"name": t, "inputSchema": {"type": "object"}})).collect::<Vec<_>>()
        }),
        "tools/call" => json!({
            "content": [{"type": "text", "text": format!("called {}", tool.unwrap_or_default())}]
        }),
        _ => json!({}),
    };
    let mut resp = match id {
        None => hyper::Response::new(Full::new(Bytes::new())),
        Some(id) => hyper::Response::new(Full::new(Bytes::from(
            json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        ))),
    };
    if msg.get("id").is_none() {
        *resp.status_mut() = hyper::StatusCode::ACCEPTED;
    } else {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
    }
    Ok(resp)
}
