//! A steady stream of MCP calls for the fault injection tests, with the project's own HTTP
//! client for exact counting: every call has a deadline, a trace id of its own (sent as
//! `traceparent`, so it can be found in the audit log and at the backend), and ends in one
//! [`Outcome`]. Plus the official SDK clients in their `loop` mode ([`SdkLoop`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::faults::Rng;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the JSON-RPC result the backend gives.
    Ok,
    /// An HTTP answer that is a JSON-RPC error (any status): a clear error.
    RpcError {
        status: u16,
        code: i64,
        message: String,
    },
    /// No connection could be made (nothing listening): a clear error.
    Refused,
    /// The connection broke before a whole answer arrived (reset, or closed early).
    Broken(String),
    /// An HTTP answer that is neither a result nor a JSON-RPC error.
    Garbled { status: u16, body: String },
    /// The call's deadline passed: a hang.
    Deadline,
}

impl Outcome {
    /// A result, or an error the caller can tell is one at once.
    pub fn is_clear(&self) -> bool {
        !matches!(self, Outcome::Garbled { .. } | Outcome::Deadline)
    }
}

/// One call of a [`Load`].
#[derive(Debug, Clone)]
pub struct Call {
    pub worker: usize,
    /// Its trace id (32 hex digits), sent in `traceparent`.
    pub trace_id: String,
    /// When it started, from the start of the load.
    pub start: Duration,
    pub elapsed: Duration,
    pub outcome: Outcome,
}

impl Call {
    pub fn end(&self) -> Duration {
        self.start + self.elapsed
    }
}

/// What each call of a [`Load`] asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The Streamable HTTP endpoint (`http://127.0.0.1:P/mcp/<service>`).
    pub url: String,
    /// Concurrent workers, each calling in a loop.
    pub workers: usize,
    /// Deadline of each call.
    pub deadline: Duration,
    /// One call in `sleep_every` is `sleep` (a call that stays in flight for a while);
    /// 0: only `echo`.
    pub sleep_every: u32,
    /// Longest `sleep`, in milliseconds (each is uniform in 0..=this).
    pub max_sleep_ms: u64,
    /// Pause between two calls of one worker.
    pub pause: Duration,
    /// Extra headers of every call.
    pub headers: Vec<(String, String)>,
}

impl Plan {
    pub fn new(url: &str) -> Plan {
        Plan {
            url: url.to_owned(),
            workers: 4,
            deadline: Duration::from_secs(30),
            sleep_every: 4,
            max_sleep_ms: 300,
            pause: Duration::from_millis(5),
            headers: Vec::new(),
        }
    }
}

/// Workers calling until stopped.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Time (µs from the start) of the newest `Ok`, for waiting on recovery.
    last_ok_us: Arc<AtomicU64>,
    /// Per worker: when its call in flight started (µs from the start, plus one), 0 if none.
    in_flight: Arc<Vec<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

static TRACE_COUNTER: AtomicU64 = AtomicU64::new(1);

fn new_trace_id(rng: &mut Rng) -> String {
    let n = TRACE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:016x}", rng.next_u64() | 1, n)
}

impl Load {
    pub fn start(plan: &Plan, rng: &mut Rng) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let last_ok_us = Arc::new(AtomicU64::new(0));
        let in_flight: Arc<Vec<AtomicU64>> =
            Arc::new((0..plan.workers).map(|_| AtomicU64::new(0)).collect());
        let threads = (0..plan.workers)
            .map(|worker| {
                let (plan, stop, calls, last_ok_us, in_flight) = (
                    plan.clone(),
                    stop.clone(),
                    calls.clone(),
                    last_ok_us.clone(),
                    in_flight.clone(),
                );
                let mut rng = rng.fork();
                std::thread::spawn(move || {
                    let mut n: u32 = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let trace_id = new_trace_id(&mut rng);
                        let sleep_ms = (plan.sleep_every > 0 && n % plan.sleep_every == 0)
                            .then(|| rng.below(plan.max_sleep_ms + 1));
                        let start = started.elapsed();
                        in_flight[worker].store(start.as_micros() as u64 + 1, Ordering::SeqCst);
                        let outcome = call_tool(&plan, &trace_id, sleep_ms);
                        let elapsed = started.elapsed() - start;
                        if outcome == Outcome::Ok {
                            last_ok_us
                                .fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                        }
                        let failed = outcome != Outcome::Ok;
                        if let Ok(mut c) = calls.lock() {
                            c.push(Call {
                                worker,
                                trace_id,
                                start,
                                elapsed,
                                outcome,
                            });
                        }
                        in_flight[worker].store(0, Ordering::SeqCst);
                        // A failing path (nothing listening) is not hammered in a tight loop.
                        std::thread::sleep(if failed {
                            plan.pause.max(Duration::from_millis(20))
                        } else {
                            plan.pause
                        });
                    }
                })
            })
            .collect();
        Load {
            started,
            stop,
            calls,
            last_ok_us,
            in_flight,
            threads,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until a call that started at or after `since` (load time) succeeded; returns
    /// when it ended (load time), or `None` after `timeout`.
    pub fn wait_ok_after(&self, since: Duration, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(at) = self.first_ok_after(since) {
                return Some(at);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// When the first call that started at or after `since` and succeeded ended.
    pub fn first_ok_after(&self, since: Duration) -> Option<Duration> {
        if Duration::from_micros(self.last_ok_us.load(Ordering::SeqCst)) < since {
            return None;
        }
        let calls = self.calls.lock().ok()?;
        calls
            .iter()
            .filter(|c| c.start >= since && c.outcome == Outcome::Ok)
            .map(Call::end)
            .min()
    }

    /// When the last call that started at or after `since` and failed started, if any: from
    /// then on every call succeeded (full recovery).
    pub fn last_failure_after(&self, since: Duration) -> Option<Duration> {
        let calls = self.calls.lock().ok()?;
        calls
            .iter()
            .filter(|c| c.start >= since && c.outcome != Outcome::Ok)
            .map(|c| c.start)
            .max()
    }

    /// When the oldest call still in flight started.
    pub fn oldest_in_flight(&self) -> Option<Duration> {
        self.in_flight
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .filter(|&us| us > 0)
            .min()
            .map(|us| Duration::from_micros(us - 1))
    }

    /// Waits until the calls are steady again after `since`: for `quiet`, every call that
    /// started ended well and none is older than that. Returns when the last call that
    /// failed after `since` started (`since` itself if none did), or `None` after `timeout`.
    pub fn wait_steady(
        &self,
        since: Duration,
        quiet: Duration,
        timeout: Duration,
    ) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let now = self.now();
            let last_failure = self.last_failure_after(since).unwrap_or(since);
            let oldest = self.oldest_in_flight().unwrap_or(now);
            let window_start = now.saturating_sub(quiet);
            if last_failure < window_start
                && oldest >= window_start
                && self.first_ok_after(window_start).is_some()
            {
                return Some(last_failure);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Calls ended so far.
    pub fn count(&self) -> usize {
        self.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Stops the workers (each finishes its call in flight, bounded by its deadline) and
    /// returns every call.
    pub fn finish(mut self) -> Vec<Call> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        calls.sort_by_key(|c| c.start);
        calls
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A `traceparent` carrying `trace_id`.
pub fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-01")
}

/// One `tools/call` (`echo`, or `sleep` for `sleep_ms`) within the plan's deadline.
pub fn call_tool(plan: &Plan, trace_id: &str, sleep_ms: Option<u64>) -> Outcome {
    let body = match sleep_ms {
        Some(ms) => json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"sleep","arguments":{"ms": ms}}}),
        None => json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message": trace_id}}}),
    };
    let expect = match sleep_ms {
        Some(ms) => format!("slept {ms} ms"),
        None => format!("echo: {trace_id}"),
    };
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        (
            "Accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        ),
        ("MCP-Protocol-Version".to_owned(), "2025-11-25".to_owned()),
        ("traceparent".to_owned(), traceparent(trace_id)),
    ];
    headers.extend(plan.headers.iter().cloned());
    match post(
        &plan.url,
        &headers,
        body.to_string().as_bytes(),
        plan.deadline,
    ) {
        Err(e) => e,
        Ok((status, content_type, body)) => classify(status, &content_type, &body, &expect),
    }
}

/// What an HTTP answer to a `tools/call` says.
pub fn classify(status: u16, content_type: &str, body: &[u8], expect: &str) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let messages: Vec<Value> = if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    };
    for m in &messages {
        if let Some(err) = m.get("error") {
            return Outcome::RpcError {
                status,
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
            };
        }
        let got = m["result"]["content"][0]["text"].as_str();
        if status == 200 && got == Some(expect) {
            return Outcome::Ok;
        }
    }
    let mut shown: String = text.chars().take(200).collect();
    if text.len() > shown.len() {
        shown.push('…');
    }
    Outcome::Garbled {
        status,
        body: shown,
    }
}

/// POSTs `body` to a plain `http://` URL within `deadline`: status, content type and the
/// whole body, or the [`Outcome`] that ended it early.
pub fn post(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    deadline: Duration,
) -> Result<(u16, String, Vec<u8>), Outcome> {
    let end = Instant::now() + deadline;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Outcome::Broken("only http:// URLs".into()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| Outcome::Broken(format!("not an address: {authority}")))?;
    let mut stream = match TcpStream::connect_timeout(&addr, deadline) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Outcome::Refused)
        }
        Err(e) if is_timeout(&e) => return Err(Outcome::Deadline),
        Err(e) => return Err(Outcome::Broken(format!("connect: {e}"))),
    };
    let _ = stream.set_nodelay(true);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    let _ = stream.set_write_timeout(Some(deadline));
    if let Err(e) = stream.write_all(&out) {
        return Err(if is_timeout(&e) {
            Outcome::Deadline
        } else {
            Outcome::Broken(format!("write: {e}"))
        });
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Outcome::Deadline);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => return Err(Outcome::Deadline),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Outcome::Broken(format!("read: {e}"))),
        }
    }
    let complete = crate::http::parse(&raw)
        .ok()
        .filter(|r| body_complete(&raw, r));
    match complete {
        Some(r) => {
            let ct = r.header("content-type").unwrap_or("").to_owned();
            Ok((r.status, ct, r.body))
        }
        None if raw.is_empty() => Err(Outcome::Broken("closed without an answer".into())),
        None => Err(Outcome::Broken(format!(
            "answer cut short after {} bytes",
            raw.len()
        ))),
    }
}

/// Whether the body of a parsed answer arrived whole (as its `Content-Length` or chunked
/// framing says); a body framed by the connection's end is whole when it ended.
fn body_complete(raw: &[u8], reply: &crate::http::Reply) -> bool {
    if let Some(len) = reply
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        return reply.body.len() == len;
    }
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        // `parse` only succeeds on a chunked body with its last chunk; check it is there.
        return raw.windows(5).any(|w| w == b"0\r\n\r\n");
    }
    true
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Calls that did not end well, grouped for a failure message.
pub fn summarize(calls: &[Call]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for c in calls {
        let key = match &c.outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::RpcError { status, code, .. } => format!("rpc error {status}/{code}"),
            Outcome::Refused => "refused".to_owned(),
            Outcome::Broken(why) => format!("broken: {}", why.split(':').next().unwrap_or("")),
            Outcome::Garbled { status, .. } => format!("garbled {status}"),
            Outcome::Deadline => "DEADLINE".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An official SDK client (`tests/peers/ts-client.mjs` or `py-client.py`) in `loop` mode:
/// tool calls until [`SdkLoop::finish`] (or its own bounds), one JSON line each (`{"i", "ok",
/// "ms", "kind", "error"?}`), every call bounded by its `--timeout-ms`, a failed call followed
/// by a fresh connection.
pub struct SdkLoop {
    pub name: String,
    stop_file: std::path::PathBuf,
    proc: crate::Proc,
}

/// One line of an SDK loop's output.
#[derive(Debug, Clone)]
pub struct SdkCall {
    pub ok: bool,
    /// `timeout` when the client's own per-call deadline ended it.
    pub kind: String,
    pub error: String,
    pub ms: u64,
}

/// The TypeScript (2025-11-25) and Python (2024-11-05 bridge) SDK clients calling `url` in a
/// steady loop (up to 5000 calls or 2 minutes, each with `deadline`), until their `finish`.
pub fn steady_sdk_loops(
    peers: &crate::Peers,
    dir: &std::path::Path,
    url: &str,
    deadline: Duration,
) -> Vec<SdkLoop> {
    let common = [
        "loop".to_owned(),
        "--calls=5000".to_owned(),
        "--for-ms=120000".to_owned(),
        format!("--timeout-ms={}", deadline.as_millis()),
        "--interval-ms=25".to_owned(),
    ];
    let args: Vec<&str> = common.iter().map(String::as_str).collect();
    let mut py_args = args.clone();
    py_args.push("--mode=legacy");
    vec![
        SdkLoop::start("ts-loop", dir, &mut crate::ts_client(peers, url, &args)),
        SdkLoop::start("py-loop", dir, &mut crate::py_client(peers, url, &py_args)),
    ]
}

impl SdkLoop {
    /// Starts `cmd` (an SDK client aimed at the edge, with its `loop` arguments; a
    /// `--stop-file` is added).
    pub fn start(name: &str, dir: &std::path::Path, cmd: &mut Command) -> SdkLoop {
        let stop_file = dir.join(format!("{name}.stop"));
        cmd.arg(format!("--stop-file={}", stop_file.display()))
            .stdin(Stdio::null());
        SdkLoop {
            name: name.to_owned(),
            stop_file,
            proc: crate::Proc::spawn(name, dir, cmd),
        }
    }

    /// Asks the loop to end after its call in flight, waits (at most `timeout`) and returns
    /// its calls.
    pub fn finish(self, timeout: Duration) -> Vec<SdkCall> {
        std::fs::write(&self.stop_file, b"stop").expect("write stop file");
        self.wait(timeout)
    }

    /// Waits (at most `timeout`) for the loop to end by itself and returns its calls.
    pub fn wait(mut self, timeout: Duration) -> Vec<SdkCall> {
        let status = self.proc.wait_exit(timeout);
        let log = self.proc.log_text();
        let calls: Vec<SdkCall> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("i").is_some())
            .map(|v| SdkCall {
                ok: v["ok"].as_bool().unwrap_or(false),
                kind: v["kind"].as_str().unwrap_or("").to_owned(),
                error: v["error"].as_str().unwrap_or("").to_owned(),
                ms: v["ms"].as_u64().unwrap_or(0),
            })
            .collect();
        assert!(
            status.success() && !calls.is_empty(),
            "{} loop failed ({status}):\n{log}",
            self.name
        );
        calls
    }
}

/// The SDK calls that hit their client's deadline (a hang).
pub fn sdk_hangs(calls: &[SdkCall]) -> Vec<&SdkCall> {
    calls.iter().filter(|c| c.kind == "timeout").collect()
}
