//! `underpass-fault-backend`: an MCP backend that misbehaves on purpose, for the fault
//! injection tests (`tests/tests/faults.rs`, `tests/tests/network_faults.rs`).
//!
//! Plain HTTP/1.1 written by hand (no HTTP library), so it can also answer what no library
//! would send. The first path segment picks the behaviour, so one process serves every fault
//! as a separate connector service (`http://127.0.0.1:P/<mode>/mcp`):
//! - `ok`: a small stateless MCP server (2025-11-25, JSON answers, no sessions): `initialize`,
//!   notifications (202), `ping`, `tools/list`, `tools/call` of `echo {message}` and
//!   `sleep {ms}` (answers after `ms`, at most a minute; records `{"event":"slept"}` when it
//!   ran to its end, `{"event":"peer_closed"}` when the connector hung up first); GET and
//!   DELETE get 405;
//! - `session`: as `ok`, but `initialize` answers with an `Mcp-Session-Id` (a legacy session,
//!   nominal: later requests are answered whatever id they carry);
//! - `slow`: as `ok`, each answer 200 ms late (a backend under load, for the spreading test);
//! - `stall`: reads the request and never answers (until the peer hangs up);
//! - `close`: reads the request and closes the connection without a byte;
//! - `cut`: sends the head of a 4 KiB JSON answer and 100 bytes of its body, then closes;
//! - `garbage`: answers 4 KiB of bytes that are not HTTP, then closes;
//! - `truncated`: a complete HTTP answer (`application/json`) whose JSON is cut in the middle;
//! - `wrongtype`: a complete HTTP answer with `Content-Type: text/html`;
//! - `sse-stall`: `200 text/event-stream`, one `notifications/progress` event, then nothing
//!   (until the peer hangs up): an answer under way when its tunnel dies;
//! - `junk-sse`: `200 text/event-stream`, then junk (events that are not JSON, lines without a
//!   field, bytes that are not UTF-8) every 20 ms, without end, until the peer hangs up.
//!
//! Hostile lists, for the federated endpoint: each mode is `ok` (it also advertises and answers
//! `prompts/list`, `resources/list` and an empty `resources/templates/list`) except for what its lists say (`tools/list`,
//! `prompts/list`, `resources/list` alike):
//! - `list-malformed`: `result.tools` (`prompts`, `resources`) is not an array (`"nope"`);
//! - `list-duplicates`: `echo` twice, then `dup` three times;
//! - `list-control`: names with control characters (`"bad\u0007name"`, `"new\nline"`) beside
//!   a good `echo`;
//! - `list-many`: 10,000 entries in one page (`echo`, then `many-00001` … `many-09999`);
//! - `list-loop`: every page holds one entry (`echo` on the first page, `again` on the later
//!   ones) and `nextCursor: "again"`: a cursor that loops forever;
//! - `list-long`: `echo` and a name of 77 characters (`LIST_LONG`), which the edge shortens;
//! - `list-slow`: the lists of `ok`, after 5 s (slower than the edge's fan-out deadline; a peer
//!   that hangs up first ends the wait).
//!
//! `--record FILE` appends one JSON line per request read in full, before it is answered
//! (`{"event":"request","mode","http_method","method","tool","request_id","trace_id"}`, from
//! `x-underpass-request-id` and `x-underpass-trace-id`), and `{"event":"peer_closed","mode","request_id"}` when the
//! peer hung up on a `stall` or `junk-sse` answer. Each line is one `write(2)` on an
//! `O_APPEND` file, so a SIGKILL loses nothing already recorded: what is in the file is what
//! reached this backend.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How late the `slow` mode answers.
const SLOW: Duration = Duration::from_millis(200);
/// How late the `list-slow` mode answers its lists.
const LIST_SLOW: Duration = Duration::from_secs(5);
/// The hostile-list modes (see the header).
const LIST_MODES: [&str; 7] = [
    "list-malformed",
    "list-duplicates",
    "list-control",
    "list-many",
    "list-loop",
    "list-long",
    "list-slow",
];
/// The name `list-long` lists beside `echo`: over 64 characters with any prefix.
const LIST_LONG: &str =
    "a-tool-whose-name-runs-far-past-the-sixty-four-characters-that-clients-accept";
/// How many entries `list-many` puts in its one page.
const LIST_MANY: usize = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "underpass-fault-backend",
    about = "An MCP backend that misbehaves on purpose"
)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Append a JSON line per request received (and per stalled request the peer gave up).
    #[arg(long)]
    record: Option<PathBuf>,
}

struct Recorder(Option<Mutex<File>>);

impl Recorder {
    fn write(&self, line: &Value) {
        if let Some(file) = &self.0 {
            let mut text = line.to_string();
            text.push('\n');
            if let Ok(mut f) = file.lock() {
                // One write per line: it is in the file, or (on a failure) loudly not.
                if let Err(e) = f.write_all(text.as_bytes()) {
                    eprintln!("underpass-fault-backend: cannot record: {e}");
                }
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("underpass-fault-backend: refusing to listen on a non-loopback address");
        return std::process::ExitCode::FAILURE;
    }
    let record = match &args.record {
        None => None,
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("underpass-fault-backend: {}: {e}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("underpass-fault-backend: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args.listen, Arc::new(Recorder(record)))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-fault-backend: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr, recorder: Arc<Recorder>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "underpass-fault-backend listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let _ = connection(stream, &recorder).await;
        });
    }
}

/// One request as read from the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads requests off one connection and answers each as its path's mode says.
async fn connection(mut stream: TcpStream, recorder: &Recorder) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let mode = mode_of(&req.path).to_owned();
        let msg: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let rpc_method = msg["method"].as_str().unwrap_or("").to_owned();
        let tool = (rpc_method == "tools/call")
            .then(|| msg["params"]["name"].as_str().map(str::to_owned))
            .flatten();
        let request_id = req.header("x-underpass-request-id").map(str::to_owned);
        recorder.write(&json!({
            "event": "request",
            "mode": mode,
            "trace_id": req.header("x-underpass-trace-id"),
            "http_method": req.method,
            "method": rpc_method,
            "tool": tool,
            "request_id": request_id,
        }));
        let keep = match mode.as_str() {
            "ok" | "session" => answer_ok(&mut stream, &req, &msg, recorder).await?,
            m if LIST_MODES.contains(&m) => answer_ok(&mut stream, &req, &msg, recorder).await?,
            "slow" => {
                tokio::time::sleep(SLOW).await;
                answer_ok(&mut stream, &req, &msg, recorder).await?
            }
            "stall" => {
                wait_for_hangup(&mut stream).await;
                recorder.write(
                    &json!({"event": "peer_closed", "mode": mode, "request_id": request_id}),
                );
                false
            }
            "close" => false,
            "cut" => {
                let body = json!({"jsonrpc": "2.0", "id": msg.get("id"), "result": {
                    "content": [{"type": "text", "text": "x".repeat(4096)}]}})
                .to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body.as_bytes()[..100]).await?;
                stream.flush().await?;
                false
            }
            "garbage" => {
                let junk: Vec<u8> = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                stream
                    .write_all(b"\x00\xff\xfeSSH-2.0-not-http\r\n")
                    .await?;
                stream.write_all(&junk).await?;
                false
            }
            "truncated" => {
                let full = json!({"jsonrpc": "2.0", "id": msg.get("id"), "result": {
                    "content": [{"type": "text", "text": "this answer is cut"}]}})
                .to_string();
                let cut = &full[..full.len() / 2];
                respond(&mut stream, 200, "application/json", cut.as_bytes()).await?;
                true
            }
            "wrongtype" => {
                respond(
                    &mut stream,
                    200,
                    "text/html",
                    b"<html><body>502 upstream says hello</body></html>",
                )
                .await?;
                true
            }
            "sse-stall" => {
                progress_then_stall(&mut stream).await;
                recorder.write(
                    &json!({"event": "peer_closed", "mode": mode, "request_id": request_id}),
                );
                false
            }
            "junk-sse" => {
                junk_events(&mut stream).await;
                recorder.write(
                    &json!({"event": "peer_closed", "mode": mode, "request_id": request_id}),
                );
                false
            }
            _ => {
                respond(&mut stream, 404, "text/plain", b"no such mode").await?;
                true
            }
        };
        if !keep {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// The next request of the connection (`None` at a clean end between requests).
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(bad("eof in head"))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        req.body = read_chunked(stream, buf).await?;
    } else {
        let len: usize = req
            .header("content-length")
            .map(|v| v.parse().map_err(|_| bad("bad content-length")))
            .transpose()?
            .unwrap_or(0);
        if len > MAX_BODY {
            return Err(bad("body too large"));
        }
        fill(stream, buf, len).await?;
        req.body = buf.drain(..len).collect();
    }
    Ok(Some(req))
}

/// Reads until `buf` holds at least `n` bytes.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
    while buf.len() < n {
        let mut chunk = [0u8; 8192];
        let got = stream.read(&mut chunk).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Ok(())
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk");
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            let need = buf.len() + 1;
            fill(stream, buf, need).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        buf.drain(..line_end + 2);
        if body.len() + size > MAX_BODY {
            return Err(bad());
        }
        fill(stream, buf, size + 2).await?;
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return Ok(body);
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_with(stream, status, content_type, &[], body).await
}

async fn respond_with(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Other",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await
}

/// The `ok` mode: a small, correct, stateless MCP server. Returns whether to keep the
/// connection.
async fn answer_ok(
    stream: &mut TcpStream,
    req: &Request,
    msg: &Value,
    recorder: &Recorder,
) -> std::io::Result<bool> {
    if req.method != "POST" {
        respond(stream, 405, "text/plain", b"POST only").await?;
        return Ok(true);
    }
    let Some(id) = msg.get("id").cloned() else {
        respond(stream, 202, "", b"").await?;
        return Ok(true);
    };
    let method = msg["method"].as_str().unwrap_or("");
    let params = &msg["params"];
    let mode = mode_of(&req.path);
    let lists = LIST_MODES.contains(&mode);
    if mode == "list-slow" && list_key(method).is_some() {
        tokio::select! {
            () = tokio::time::sleep(LIST_SLOW) => {}
            () = wait_for_hangup(stream) => {
                recorder.write(&json!({"event": "peer_closed", "mode": mode,
                    "request_id": req.header("x-underpass-request-id")}));
                return Ok(false);
            }
        }
    }
    let result = match method {
        m if lists && list_key(m).is_some() => hostile_list(mode, m, params),
        "resources/templates/list" if lists => json!({"resourceTemplates": []}),
        "initialize" => {
            let asked = params["protocolVersion"].as_str().unwrap_or("");
            let version = if ["2025-11-25", "2025-06-18", "2025-03-26"].contains(&asked) {
                asked
            } else {
                "2025-11-25"
            };
            let capabilities = if lists {
                json!({"tools": {}, "prompts": {}, "resources": {}})
            } else {
                json!({"tools": {}})
            };
            json!({
                "protocolVersion": version,
                "capabilities": capabilities,
                "serverInfo": {"name": "fault-backend", "version": "1"}
            })
        }
        "ping" => json!({}),
        "tools/list" => ok_tools(),
        "tools/call" => {
            let args = &params["arguments"];
            match params["name"].as_str().unwrap_or("") {
                "echo" => {
                    let text = args["message"].as_str().unwrap_or("");
                    json!({"content": [{"type": "text", "text": format!("echo: {text}")}]})
                }
                "sleep" => {
                    let ms = args["ms"].as_u64().unwrap_or(0).min(60_000);
                    let request_id = req.header("x-underpass-request-id");
                    // A connector that gives up on the request closes the connection: that is
                    // how this backend sees a cancellation.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        () = wait_for_hangup(stream) => {
                            recorder.write(&json!({
                                "event": "peer_closed", "mode": mode, "request_id": request_id}));
                            return Ok(false);
                        }
                    }
                    recorder.write(&json!({"event": "slept", "ms": ms, "request_id": request_id}));
                    json!({"content": [{"type": "text", "text": format!("slept {ms} ms")}]})
                }
                other => {
                    let body = json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": -32602, "message": format!("unknown tool {other:?}")}});
                    respond(stream, 200, "application/json", body.to_string().as_bytes()).await?;
                    return Ok(true);
                }
            }
        }
        _ => {
            let body = json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": "method not found"}});
            respond(stream, 200, "application/json", body.to_string().as_bytes()).await?;
            return Ok(true);
        }
    };
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    if method == "initialize" && req.path.starts_with("/session/") {
        // The `session` mode: as `ok`, but `initialize` opens a (nominal) legacy session.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("fb-{}-{n}", std::process::id());
        let headers = [("Mcp-Session-Id", session.as_str())];
        respond_with(stream, 200, "application/json", &headers, body.as_bytes()).await?;
        return Ok(true);
    }
    respond(stream, 200, "application/json", body.as_bytes()).await?;
    Ok(true)
}

/// The behaviour named by a path's first segment.
fn mode_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// The `ok` mode's tools.
fn ok_tools() -> Value {
    json!({"tools": [
        {"name": "echo", "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}},
        {"name": "sleep", "inputSchema": {"type": "object", "properties": {"ms": {"type": "number"}}}},
    ]})
}

/// The key of a list method's result (`tools/list` → `tools`), `None` for other methods.
fn list_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/list" => Some("tools"),
        "prompts/list" => Some("prompts"),
        "resources/list" => Some("resources"),
        _ => None,
    }
}

/// One entry of a list named `name`, shaped as the list's kind wants.
fn list_entry(key: &str, name: &str) -> Value {
    match key {
        "tools" => json!({"name": name, "inputSchema": {"type": "object",
            "properties": {"message": {"type": "string"}}}}),
        "resources" => json!({"uri": format!("fault://{name}"), "name": name}),
        _ => json!({"name": name}),
    }
}

/// The result a `list-*` mode gives a list method (`tools/list`, `prompts/list`,
/// `resources/list`); see the header.
fn hostile_list(mode: &str, method: &str, params: &Value) -> Value {
    let Some(key) = list_key(method) else {
        return json!({});
    };
    let entries = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| list_entry(key, n))
            .collect::<Vec<_>>()
            .into()
    };
    match mode {
        "list-malformed" => json!({ key: "nope" }),
        "list-duplicates" => json!({ key: entries(&["echo", "echo", "dup", "dup", "dup"]) }),
        "list-control" => json!({ key: entries(&["bad\u{7}name", "new\nline", "echo"]) }),
        "list-long" => json!({ key: entries(&["echo", LIST_LONG]) }),
        "list-many" => {
            let many: Vec<Value> = std::iter::once(list_entry(key, "echo"))
                .chain((1..LIST_MANY).map(|i| list_entry(key, &format!("many-{i:05}"))))
                .collect();
            json!({ key: many })
        }
        "list-loop" => {
            let name = if params["cursor"].is_null() {
                "echo"
            } else {
                "again"
            };
            json!({ key: entries(&[name]), "nextCursor": "again" })
        }
        // `list-slow` (late, not wrong) and anything else: the `ok` lists.
        _ if key == "tools" => ok_tools(),
        _ => json!({ key: entries(&["echo"]) }),
    }
}

/// Holds the connection without answering until the peer hangs up (or an hour passes).
async fn wait_for_hangup(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3600), wait).await;
}

/// An event stream of junk, without end, until the peer hangs up (or an hour passes).
/// `sse-stall`: an event stream with one progress notification, then silence until the peer
/// hangs up.
async fn progress_then_stall(stream: &mut TcpStream) {
    let event = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        event.len()
    );
    let first = [head.as_bytes(), event, b"\r\n"].concat();
    if stream.write_all(&first).await.is_ok() {
        wait_for_hangup(stream).await;
    }
}

async fn junk_events(stream: &mut TcpStream) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let junk: [&[u8]; 4] = [
        b"data: {this is not json\n\n",
        b"no field at all on this line\n\n",
        b"data: \xff\xfe\xfd not utf-8\n\n",
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"junk\"}}\n\n",
    ];
    let (mut rd, mut wr) = stream.split();
    let feed = async {
        for i in 0usize.. {
            let piece = junk[i % junk.len()];
            let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let hangup = async {
        let mut sink = [0u8; 1024];
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3600), async {
        tokio::select! {
            () = feed => {},
            () = hangup => {},
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &Value, key: &str) -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_list_mode_is_served_and_list_methods_are_recognised() {
        assert_eq!(mode_of("/list-loop/mcp"), "list-loop");
        assert_eq!(mode_of("/"), "");
        for m in ["tools/list", "prompts/list", "resources/list"] {
            assert!(list_key(m).is_some(), "{m}");
        }
        assert_eq!(list_key("tools/call"), None);
        assert_eq!(list_key("resources/templates/list"), None);
    }

    #[test]
    fn malformed_lists_are_not_arrays() {
        for (m, key) in [
            ("tools/list", "tools"),
            ("prompts/list", "prompts"),
            ("resources/list", "resources"),
        ] {
            let v = hostile_list("list-malformed", m, &Value::Null);
            assert_eq!(v[key], json!("nope"), "{m}");
        }
    }

    #[test]
    fn duplicates_and_control_characters() {
        let v = hostile_list("list-duplicates", "tools/list", &Value::Null);
        assert_eq!(names(&v, "tools"), ["echo", "echo", "dup", "dup", "dup"]);
        let v = hostile_list("list-control", "prompts/list", &Value::Null);
        assert_eq!(names(&v, "prompts"), ["bad\u{7}name", "new\nline", "echo"]);
        // On the wire the control characters are JSON escapes a parser turns back into them.
        assert!(v.to_string().contains(r"bad\u0007name"));
        let v = hostile_list("list-control", "resources/list", &Value::Null);
        assert_eq!(v["resources"][2]["uri"], json!("fault://echo"));
    }

    #[test]
    fn many_is_one_page_of_ten_thousand() {
        let v = hostile_list("list-many", "tools/list", &Value::Null);
        let n = names(&v, "tools");
        assert_eq!(n.len(), 10_000);
        assert_eq!(n[0], "echo");
        assert_eq!(n[9_999], "many-09999");
        assert!(v.get("nextCursor").is_none());
    }

    #[test]
    fn loop_hands_back_the_same_cursor_forever() {
        let first = hostile_list("list-loop", "tools/list", &json!({}));
        assert_eq!(names(&first, "tools"), ["echo"]);
        let mut cursor = first["nextCursor"].clone();
        for _ in 0..3 {
            let next = hostile_list("list-loop", "tools/list", &json!({"cursor": cursor}));
            assert_eq!(names(&next, "tools"), ["again"]);
            assert_eq!(next["nextCursor"], json!("again"));
            cursor = next["nextCursor"].clone();
        }
    }

    #[test]
    fn slow_lists_are_the_ok_lists() {
        let v = hostile_list("list-slow", "tools/list", &Value::Null);
        assert_eq!(v, ok_tools());
        let v = hostile_list("list-slow", "resources/list", &Value::Null);
        assert_eq!(v["resources"][0]["uri"], json!("fault://echo"));
    }
}
