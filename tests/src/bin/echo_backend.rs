//! `underpass-echo-backend`: a deliberately fast MCP Streamable HTTP server for benchmarks.
//!
//! hyper directly (no MCP SDK), HTTP/1.1 keep-alive, JSON responses only. It serves
//! `http://<listen>/mcp` with two tools:
//! - `echo {message}` returns `message` as one text content block;
//! - `blob {size}` returns a text of `size` bytes (`x` repeated; cached per size).
//!
//! Both MCP eras:
//! - legacy (2025-11-25): `initialize` opens a session (`Mcp-Session-Id`), every later request
//!   must carry it (400 without, 404 when unknown), `DELETE` ends it; `notifications/*` get 202.
//! - 2026-07-28: a POST with `MCP-Protocol-Version: 2026-07-28` is served without a session;
//!   `Mcp-Method` (and `Mcp-Name` on `tools/call`) must agree with the body (400, -32020).
//!
//! An unlisted tool `ask {message}` answers every 2026-07-28 call `input_required`, asking for
//! the input method `message` names (default `elicitation/create`): a backend that asks without
//! end, for the federation tests.
//!
//! `GET` with a valid session opens an SSE event stream that stays silent until the client
//! goes away (what an idle legacy client holds open).
//!
//! For the federation tests (defaults keep the benchmark's behaviour):
//! - `--tools N` lists N extra tools `tool-00001` … after echo and blob (each answers like
//!   echo), `--page-size P` per `tools/list` page (`nextCursor`: the decimal offset);
//! - `--list-ttl-ms N` (with `--list-scope public|private`): 2026-07-28 answers to `tools/list`
//!   and `server/discover` carry `ttlMs` and `cacheScope` (legacy answers never do);
//! - one resource `echo://readme` (no templates) and one prompt `hello` (no arguments); their
//!   2026-07-28 answers always carry `ttlMs` (0 without `--list-ttl-ms`) and `cacheScope`;
//! - `GET /stats` (no session): the requests served so far per JSON-RPC method, a JSON object.
//!
//! `--modern-only`: a server that speaks 2026-07-28 only, as one written for that era alone
//! would: `initialize`, and any POST without `MCP-Protocol-Version: 2026-07-28`, get 400 with
//! -32022 (UnsupportedProtocolVersion, `data: {"supported": ["2026-07-28"], "requested": …}`);
//! `server/discover` lists `["2026-07-28"]` only.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

const LEGACY_VERSION: &str = "2025-11-25";
const MODERN_VERSION: &str = "2026-07-28";
const MAX_BLOB: usize = 256 * 1024 * 1024;
const MAX_REQUEST: usize = 16 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "underpass-echo-backend",
    version,
    about = "Fast echo MCP backend for benchmarks"
)]
struct Args {
    /// Address to listen on (loopback only); the endpoint is http://<listen>/mcp.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Tokio worker threads (0 = a current-thread runtime).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Answer with `Transfer-Encoding: chunked` (no `Content-Length`), as Node.js
    /// `writeHead` + `end` does: to measure what chunked answers cost a path against sized ones.
    #[arg(long)]
    chunked: bool,
    /// In the 2026-07-28 era, `tools/list` and `server/discover` answers carry `ttlMs: N`.
    #[arg(long)]
    list_ttl_ms: Option<u64>,
    /// The `cacheScope` that goes with `--list-ttl-ms`.
    #[arg(long, value_enum, default_value_t = Scope::Private)]
    list_scope: Scope,
    /// Extra tools `tool-00001` … listed after echo and blob.
    #[arg(long, default_value_t = 0)]
    tools: usize,
    /// At most this many tools per `tools/list` page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    page_size: u64,
    /// Speak 2026-07-28 only: refuse `initialize` and every request of another era (-32022).
    #[arg(long)]
    modern_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scope {
    Public,
    Private,
}

/// What the command line asks of the lists.
#[derive(Debug, Clone, Copy)]
struct Lists {
    ttl_ms: Option<u64>,
    scope: Scope,
    extra_tools: usize,
    page_size: usize,
}

impl Default for Lists {
    fn default() -> Self {
        Lists {
            ttl_ms: None,
            scope: Scope::Private,
            extra_tools: 0,
            page_size: 1000,
        }
    }
}

/// `--chunked`: answers carry no length.
static CHUNKED: AtomicBool = AtomicBool::new(false);

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    CHUNKED.store(args.chunked, Ordering::Relaxed);
    if !args.listen.ip().is_loopback() {
        eprintln!("underpass-echo-backend: refusing to listen on a non-loopback address");
        return std::process::ExitCode::FAILURE;
    }
    let rt = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let lists = Lists {
        ttl_ms: args.list_ttl_ms,
        scope: args.list_scope,
        extra_tools: args.tools,
        page_size: usize::try_from(args.page_size).unwrap_or(usize::MAX),
    };
    match rt.block_on(serve(args.listen, lists, args.modern_only)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-echo-backend: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct State {
    sessions: Mutex<HashSet<String>>,
    blobs: RwLock<HashMap<usize, Bytes>>,
    counter: AtomicU64,
    seed: std::collections::hash_map::RandomState,
    lists: Lists,
    served: Served,
    /// `--modern-only`.
    modern_only: bool,
}

/// The JSON-RPC methods counted one by one for `GET /stats`; any other is counted as `other`
/// (a client cannot grow the table).
const COUNTED: [&str; 13] = [
    "initialize",
    "notifications/initialized",
    "server/discover",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "notifications/cancelled",
    "other",
];

/// Requests served per method: one atomic each, so counting costs the benchmark nothing.
#[derive(Default)]
struct Served([AtomicU64; COUNTED.len()]);

impl Served {
    fn count(&self, method: &str) {
        let i = COUNTED
            .iter()
            .position(|m| *m == method)
            .unwrap_or(COUNTED.len() - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `{"tools/list": 3, ...}`: the methods served at least once.
    fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = COUNTED
            .iter()
            .zip(&self.0)
            .map(|(m, n)| (*m, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| (m.to_owned(), n.into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

impl State {
    fn new_session_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut a = self.seed.build_hasher();
        a.write_u64(n);
        let hi = a.finish();
        let mut b = self.seed.build_hasher();
        b.write_u64(!n);
        let lo = b.finish();
        format!("{hi:016x}{lo:016x}")
    }

    fn blob(&self, size: usize) -> Bytes {
        if let Some(b) = self
            .blobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&size)
        {
            return b.clone();
        }
        let b = Bytes::from(vec![b'x'; size]);
        self.blobs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(size, b.clone());
        b
    }
}

async fn serve(addr: SocketAddr, lists: Lists, modern_only: bool) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let state = Arc::new(State {
        lists,
        modern_only,
        ..State::default()
    });
    println!(
        "underpass-echo-backend listening on http://{}/mcp",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A response body made of a few ready chunks (no copy of large blobs) and their length
/// (`None`: sent chunked), or a silent stream.
enum Out {
    Chunks(VecDeque<Bytes>, Option<u64>),
    Silent,
}

impl Body for Out {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Out::Chunks(q, _) => Poll::Ready(q.pop_front().map(|b| Ok(Frame::data(b)))),
            // Never woken: hyper drops the body when the client goes away.
            Out::Silent => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        matches!(self, Out::Chunks(q, _) if q.is_empty())
    }
    fn size_hint(&self) -> SizeHint {
        match self {
            Out::Chunks(_, Some(n)) => SizeHint::with_exact(*n),
            Out::Chunks(_, None) | Out::Silent => SizeHint::default(),
        }
    }
}

fn chunks(parts: Vec<Bytes>) -> Out {
    let n = parts.iter().map(|b| b.len() as u64).sum();
    let sized = !CHUNKED.load(Ordering::Relaxed);
    Out::Chunks(parts.into(), sized.then_some(n))
}

fn reply(status: StatusCode, parts: Vec<Bytes>) -> Response<Out> {
    let mut r = Response::new(chunks(parts));
    *r.status_mut() = status;
    if status != StatusCode::ACCEPTED {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

fn rpc_error(status: StatusCode, id: &str, code: i32, message: &str) -> Response<Out> {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":{code},\"message\":{}}}}}",
        serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into())
    );
    reply(status, vec![Bytes::from(body)])
}

#[derive(Deserialize)]
struct Rpc {
    #[serde(default)]
    id: Option<serde_json::Value>,
    method: String,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize, Default)]
struct Params {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<ToolArgs>,
    #[serde(default, rename = "protocolVersion")]
    protocol_version: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize, Default)]
struct ToolArgs {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    size: Option<usize>,
    /// `blob`: end the text with AWS's example key id (what redaction costs with a match).
    #[serde(default)]
    secret: bool,
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Out> {
    if req.uri().path() == "/stats" && req.method() == Method::GET {
        return reply(StatusCode::OK, vec![Bytes::from(state.served.to_json())]);
    }
    if req.uri().path() != "/mcp" {
        return rpc_error(StatusCode::NOT_FOUND, "null", -32601, "no such endpoint");
    }
    let modern = header(&req, "mcp-protocol-version") == Some(MODERN_VERSION);
    let session = header(&req, "mcp-session-id").map(str::to_owned);
    let known = |id: &str| {
        state
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    };
    match *req.method() {
        Method::POST => {}
        Method::DELETE => {
            let Some(id) = session else {
                return rpc_error(StatusCode::BAD_REQUEST, "null", -32600, "no session");
            };
            let removed = state
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return if removed {
                reply(StatusCode::OK, vec![])
            } else {
                rpc_error(StatusCode::NOT_FOUND, "null", -32001, "session not found")
            };
        }
        Method::GET => {
            return match session {
                Some(id) if known(&id) => {
                    let mut r = Response::new(Out::Silent);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    );
                    r
                }
                Some(_) => rpc_error(StatusCode::NOT_FOUND, "null", -32001, "session not found"),
                None => rpc_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "null",
                    -32600,
                    "GET needs a session",
                ),
            };
        }
        _ => {
            return rpc_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "null",
                -32600,
                "POST, GET or DELETE",
            )
        }
    }

    let version_header = header(&req, "mcp-protocol-version").map(str::to_owned);
    let mcp_method = header(&req, "mcp-method").map(str::to_owned);
    let mcp_name = header(&req, "mcp-name").map(str::to_owned);
    let body = match http_body_util::Limited::new(req.into_body(), MAX_REQUEST)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return rpc_error(StatusCode::BAD_REQUEST, "null", -32700, "unreadable body"),
    };
    let rpc: Rpc = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                "null",
                -32700,
                &format!("parse error: {e}"),
            )
        }
    };
    let id = match &rpc.id {
        Some(v) => v.to_string(),
        None => "null".to_owned(),
    };
    let params = rpc.params.unwrap_or_default();
    if state.modern_only {
        let asked = params.protocol_version.as_deref();
        if let Some(refusal) = modern_only_refusal(
            rpc.id.as_ref(),
            &rpc.method,
            version_header.as_deref(),
            asked,
        ) {
            return reply(
                StatusCode::BAD_REQUEST,
                vec![Bytes::from(refusal.to_string())],
            );
        }
    }

    let mut session_header = None;
    if modern {
        if mcp_method.as_deref() != Some(rpc.method.as_str()) {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                -32020,
                "Mcp-Method header does not match the body",
            );
        }
        if rpc.method == "tools/call" && mcp_name.as_deref() != params.name.as_deref() {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                -32020,
                "Mcp-Name header does not match the body",
            );
        }
    } else if rpc.method == "initialize" {
        let sid = state.new_session_id();
        state
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.clone());
        session_header = Some(sid);
    } else {
        match &session {
            None => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    &id,
                    -32600,
                    "missing Mcp-Session-Id",
                )
            }
            Some(s) if !known(s) => {
                return rpc_error(StatusCode::NOT_FOUND, &id, -32001, "session not found")
            }
            Some(_) => {}
        }
    }

    state.served.count(&rpc.method);
    if rpc.id.is_none() {
        // A notification (e.g. notifications/initialized).
        return reply(StatusCode::ACCEPTED, vec![]);
    }

    let complete = if modern {
        ",\"resultType\":\"complete\""
    } else {
        ""
    };
    let mut resp = match rpc.method.as_str() {
        "initialize" | "server/discover" => {
            let version = match params.protocol_version.as_deref() {
                _ if state.modern_only => MODERN_VERSION,
                Some(v @ ("2025-11-25" | "2025-06-18" | "2025-03-26")) => v,
                _ if modern => MODERN_VERSION,
                _ => LEGACY_VERSION,
            };
            let discover = rpc.method == "server/discover";
            let cache = cache_fields(&state.lists, modern && discover);
            let info = format!(
                "{{\"name\":\"underpass-echo-backend\",\"version\":\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            );
            // What a 2026-07-28 client reads of a discover answer (the SDKs validate it).
            let modern_fields = if discover {
                let supported = supported_versions(state.modern_only);
                format!(
                    ",\"supportedVersions\":{supported},\
                     \"_meta\":{{\"io.modelcontextprotocol/serverInfo\":{info}}}"
                )
            } else {
                String::new()
            };
            let body = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"protocolVersion\":\"{version}\",\
                 \"capabilities\":{{\"tools\":{{}},\"resources\":{{}},\"prompts\":{{}}}},\
                 \"serverInfo\":{info}{modern_fields}{cache}{complete}}}}}"
            );
            reply(StatusCode::OK, vec![Bytes::from(body)])
        }
        "ping" => reply(
            StatusCode::OK,
            vec![Bytes::from(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}"
            ))],
        ),
        "tools/list" => {
            let page = match tools_page(&state.lists, params.cursor.as_deref()) {
                Ok(p) => p,
                Err(e) => return rpc_error(StatusCode::OK, &id, -32602, &e),
            };
            let cache = cache_fields(&state.lists, modern);
            reply(
                StatusCode::OK,
                vec![Bytes::from(format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"tools\":[{page}{cache}{complete}}}}}"
                ))],
            )
        }
        "resources/list"
        | "resources/read"
        | "resources/templates/list"
        | "prompts/list"
        | "prompts/get" => match extras(&rpc.method, &params) {
            Ok(mut v) => {
                if modern {
                    v["resultType"] = "complete".into();
                    // Required of these results on the 2026-07-28 wire (0: do not cache).
                    if rpc.method != "prompts/get" {
                        v["ttlMs"] = state.lists.ttl_ms.unwrap_or(0).into();
                        v["cacheScope"] = scope_name(state.lists.scope).into();
                    }
                }
                let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{v}}}");
                reply(StatusCode::OK, vec![Bytes::from(body)])
            }
            Err((code, message)) => rpc_error(StatusCode::OK, &id, code, message),
        },
        "tools/call" if modern && params.name.as_deref() == Some("ask") => {
            let args = params.arguments.unwrap_or_default();
            let method = args.message.as_deref();
            let asked = serde_json::json!({"again": {
                "method": method.unwrap_or("elicitation/create"),
                "params": {"message": "once more", "requestedSchema": {"type": "object"}},
            }});
            let body = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"resultType\":\"input_required\",\"inputRequests\":{asked},\"requestState\":\"loop\"}}}}"
            );
            reply(StatusCode::OK, vec![Bytes::from(body)])
        }
        "tools/call" => {
            let args = params.arguments.unwrap_or_default();
            let text = match params.name.as_deref() {
                Some(n) if n == "echo" || is_extra_tool(n, state.lists.extra_tools) => match args
                    .message
                {
                    Some(m) => {
                        Bytes::from(serde_json::to_string(&m).unwrap_or_else(|_| "\"\"".into()))
                    }
                    None => return rpc_error(StatusCode::OK, &id, -32602, "echo needs message"),
                },
                Some("blob") => match args.size {
                    Some(n) if n <= MAX_BLOB => {
                        // `x` needs no JSON escaping: quote it around the cached bytes.
                        let blob = state.blob(n);
                        let prefix = format!(
                            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\""
                        );
                        let key = if args.secret {
                            " AKIAIOSFODNN7EXAMPLE"
                        } else {
                            ""
                        };
                        let suffix = format!("{key}\"}}],\"isError\":false{complete}}}}}");
                        return reply(
                            StatusCode::OK,
                            vec![Bytes::from(prefix), blob, Bytes::from(suffix)],
                        );
                    }
                    _ => {
                        return rpc_error(StatusCode::OK, &id, -32602, "blob needs size <= 256 MiB")
                    }
                },
                _ => return rpc_error(StatusCode::OK, &id, -32602, "unknown tool"),
            };
            let mut out = Vec::with_capacity(text.len() + 128);
            out.extend_from_slice(
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&text);
            out.extend_from_slice(format!("}}],\"isError\":false{complete}}}}}").as_bytes());
            reply(StatusCode::OK, vec![Bytes::from(out)])
        }
        other => rpc_error(
            StatusCode::OK,
            &id,
            -32601,
            &format!("method not found: {other}"),
        ),
    };
    if let Some(sid) = session_header {
        if let Ok(v) = HeaderValue::from_str(&sid) {
            resp.headers_mut().insert("mcp-session-id", v);
        }
    }
    resp
}

/// The `supportedVersions` of a discover answer (JSON): 2026-07-28 alone with `--modern-only`.
fn supported_versions(modern_only: bool) -> String {
    let versions: &[&str] = if modern_only {
        &[MODERN_VERSION]
    } else {
        &[MODERN_VERSION, LEGACY_VERSION]
    };
    serde_json::Value::from(versions).to_string()
}

/// With `--modern-only`, the answer (sent with 400) to a request a 2026-07-28-only server does
/// not take: `initialize` (that era has none), or any request whose `MCP-Protocol-Version`
/// header is not 2026-07-28. `requested` is what it asked for: `initialize`'s
/// `protocolVersion`, else the header (null without either). `None`: the request is served.
fn modern_only_refusal(
    id: Option<&serde_json::Value>,
    method: &str,
    version_header: Option<&str>,
    asked: Option<&str>,
) -> Option<serde_json::Value> {
    if method != "initialize" && version_header == Some(MODERN_VERSION) {
        return None;
    }
    let requested = match method {
        "initialize" => asked.or(version_header),
        _ => version_header,
    };
    Some(serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(serde_json::Value::Null),
        "error": {
            "code": -32022,
            "message": "Unsupported protocol version",
            "data": {"supported": [MODERN_VERSION], "requested": requested},
        },
    }))
}

const ECHO_TOOL: &str = "{\"name\":\"echo\",\"description\":\"Returns message\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}},\"required\":[\"message\"]}}";
const BLOB_TOOL: &str = "{\"name\":\"blob\",\"description\":\"Returns a text of size bytes\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\"}},\"required\":[\"size\"]}}";

/// `,"ttlMs":N,"cacheScope":"…"` for a 2026-07-28 list answer when `--list-ttl-ms` is set;
/// nothing otherwise (the legacy era has no such fields).
fn cache_fields(lists: &Lists, modern: bool) -> String {
    match lists.ttl_ms {
        Some(ttl) if modern => {
            let scope = scope_name(lists.scope);
            format!(",\"ttlMs\":{ttl},\"cacheScope\":\"{scope}\"")
        }
        _ => String::new(),
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Public => "public",
        Scope::Private => "private",
    }
}

/// The name of extra tool `i` (1-based).
fn extra_tool_name(i: usize) -> String {
    format!("tool-{i:05}")
}

/// Whether `name` is one of the `extra` tools (exactly as listed: `tool-00007`, not `tool-7`).
fn is_extra_tool(name: &str, extra: usize) -> bool {
    name.strip_prefix("tool-")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|i| (1..=extra).contains(&i) && extra_tool_name(i) == name)
}

/// One page of `tools/list` after `cursor` (the decimal offset this backend handed out): the
/// tools' JSON separated by commas, `]`, and `,"nextCursor":"…"` when more follow.
fn tools_page(lists: &Lists, cursor: Option<&str>) -> Result<String, String> {
    let total = 2 + lists.extra_tools;
    let start = match cursor {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n > 0 && n < total => n,
            _ => return Err(format!("invalid cursor {c:?}")),
        },
    };
    let end = start.saturating_add(lists.page_size).min(total);
    let mut out = String::with_capacity((end - start) * 120);
    for i in start..end {
        if i > start {
            out.push(',');
        }
        match i {
            0 => out.push_str(ECHO_TOOL),
            1 => out.push_str(BLOB_TOOL),
            n => out.push_str(&format!(
                "{{\"name\":\"{}\",\"description\":\"Returns message\",\"inputSchema\":{{\"type\":\"object\",\"properties\":{{\"message\":{{\"type\":\"string\"}}}}}}}}",
                extra_tool_name(n - 1)
            )),
        }
    }
    out.push(']');
    if end < total {
        out.push_str(&format!(",\"nextCursor\":\"{end}\""));
    }
    Ok(out)
}

const README_URI: &str = "echo://readme";

/// The answers of the resource and prompt methods (the error's code and message otherwise).
fn extras(method: &str, params: &Params) -> Result<serde_json::Value, (i32, &'static str)> {
    use serde_json::json;
    match method {
        "resources/list" => Ok(json!({"resources": [
            {"uri": README_URI, "name": "readme", "mimeType": "text/plain"}]})),
        "resources/read" if params.uri.as_deref() == Some(README_URI) => Ok(json!({"contents": [
            {"uri": README_URI, "mimeType": "text/plain", "text": "echo backend readme"}]})),
        "resources/read" => Err((-32002, "resource not found")),
        "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
        "prompts/list" => Ok(json!({"prompts": [
            {"name": "hello", "description": "Says hello", "arguments": []}]})),
        "prompts/get" if params.name.as_deref() == Some("hello") => Ok(json!({"messages": [
            {"role": "user", "content": {"type": "text", "text": "hello"}}]})),
        "prompts/get" => Err((-32602, "unknown prompt")),
        _ => Err((-32601, "method not found")),
    }
}

#[cfg(test)]
#[path = "echo_backend/tests.rs"]
mod tests;
