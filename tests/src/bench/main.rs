//! `underpass-bench`: what the gateway costs, measured against going direct.
//!
//! Starts everything itself from the release build (a throwaway PKI via `underpass-certs`,
//! `underpass-echo-backend`, an edge with plaintext clients on loopback, anonymous auth and
//! allow-all policy, one connector) and measures the same echo backend **direct** and
//! **through edge + connector**, side by side:
//! - `tools/call` latency (p50/p90/p99/max) and throughput with a 100-byte and a 1 MiB result
//!   at several concurrencies, in both MCP eras (legacy with a session, 2026-07-28 stateless);
//!   closed loop, one HTTP/1.1 keep-alive connection per worker;
//! - resident memory of edge and connector with many idle legacy sessions;
//! - time from SIGTERM of the edge until a `tools/call` through the restarted edge succeeds,
//!   and the same after SIGKILL (a crash: the edge says no goodbye, so the connector learns of
//!   the restart from the new edge's stateless reset).
//!
//! A third, **reference** path (`relay`, 100-byte results only) goes through two chained
//! `underpass-tcp-relay` processes that do nothing but copy bytes (load generator → relay 1 →
//! relay 2 → echo backend): the floor that any two-process tunnel pays on this machine for two
//! extra TCP hops and process wake-ups. It is reported beside the tunnel, never as a target.
//!
//! Prints markdown tables; `--json FILE` writes every figure. Loopback only; every loop is
//! bounded by a deadline.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use underpass_tests::{bin, free_port, write_connector_config, ConnectorPki, EdgeSetup, Pki, Proc};

const SERVICE: &str = "echo";
const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";
const SMALL: usize = 100;
const LARGE: usize = 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment of the fresh edge and connector of the sessions phase. mimalloc backs its heap
/// with 2 MiB transparent huge pages by default, so RSS moves in 2 MiB steps (and a fresh
/// daemon sits at ~27 MiB instead of ~12): steps that would swamp a growth of about a KiB per
/// session. With 4 KiB pages RSS follows what the sessions really hold.
const SESSIONS_ENV: &[(&str, &str)] = &[("MIMALLOC_ALLOW_THP", "0")];
/// Workers fetching 1 MiB results in the background of the mixed phase.
const MIXED_BULK_WORKERS: usize = 16;

#[derive(Debug, Parser)]
#[command(
    name = "underpass-bench",
    version,
    about = "Underpass load generator: direct vs through edge + connector"
)]
struct Args {
    /// Shortened run (under two minutes).
    #[arg(long)]
    quick: bool,
    /// Tiny run of a second or two, to keep the instrument from rotting (used by a test).
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Measured seconds per latency cell (default 3; --quick 1; --smoke 0.1).
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds per latency cell, not measured (default 1; --quick 0.3; --smoke 0.05).
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrencies (default 1,16,64,256; --smoke 2).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Result sizes in bytes (default 100,1048576).
    #[arg(long, value_delimiter = ',')]
    payloads: Option<Vec<usize>>,
    /// Eras: legacy, modern (default both).
    #[arg(long, value_delimiter = ',')]
    eras: Option<Vec<String>>,
    /// Idle legacy session counts (default 1000,10000; --smoke 50).
    #[arg(long, value_delimiter = ',')]
    sessions: Option<Vec<usize>>,
    /// Also measure idle sessions that each hold a GET event stream open.
    #[arg(long)]
    session_streams: bool,
    /// Edge restarts to time per signal, SIGTERM then SIGKILL (default 3; --quick and --smoke 1).
    #[arg(long)]
    restarts: Option<usize>,
    /// Phases to run: latency, mixed (small calls while 1 MiB results stream), restart,
    /// sessions (default all).
    #[arg(long, value_delimiter = ',')]
    phases: Option<Vec<String>>,
    /// Load-generator threads, each with its own current-thread runtime and a share of the
    /// workers (c=1 uses one).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Worker threads of the echo backend (0 = current-thread runtime).
    #[arg(long, default_value_t = 2)]
    backend_threads: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the scratch folder (configs, PKI, logs) and print its path.
    #[arg(long)]
    keep: bool,
    /// Paths to measure in the latency phase: direct, relay (the two-hop TCP relay reference,
    /// 100-byte results only), tunnel (default all three).
    #[arg(long, value_delimiter = ',')]
    paths: Option<Vec<String>>,
    /// A fixed number of measured requests per latency cell instead of a duration (for
    /// syscall and allocation counts; the mixed phase always runs for the duration).
    #[arg(long)]
    requests: Option<u64>,
    /// Extra environment for the edge and connector processes only, e.g.
    /// `TOKIO_WORKER_THREADS=1` or `LD_PRELOAD=...` (repeatable; for experiments).
    #[arg(long, value_name = "KEY=VALUE")]
    tunnel_env: Vec<String>,
    /// Print the process ids and wait for Enter before the latency phase (to attach a profiler).
    #[arg(long)]
    pause: bool,
}

struct Plan {
    duration: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    payloads: Vec<usize>,
    eras: Vec<Era>,
    sessions: Vec<usize>,
    restarts: usize,
    phases: Vec<String>,
    paths: Vec<&'static str>,
    requests: Option<u64>,
    fresh_for_sessions: bool,
}

impl Plan {
    fn from(a: &Args) -> Plan {
        let (d, w, c, s, r) = if a.smoke {
            (0.1, 0.05, vec![2], vec![50], 1)
        } else if a.quick {
            (1.0, 0.3, vec![1, 16, 64, 256], vec![1000, 10000], 1)
        } else {
            (3.0, 1.0, vec![1, 16, 64, 256], vec![1000, 10000], 3)
        };
        let eras = a
            .eras
            .clone()
            .unwrap_or_else(|| vec!["legacy".into(), "modern".into()])
            .iter()
            .map(|e| match e.as_str() {
                "legacy" => Era::Legacy,
                "modern" => Era::Modern,
                other => panic!("unknown era {other:?}: legacy or modern"),
            })
            .collect();
        Plan {
            duration: Duration::from_secs_f64(a.duration.unwrap_or(d)),
            warmup: Duration::from_secs_f64(a.warmup.unwrap_or(w)),
            concurrency: a.concurrency.clone().unwrap_or(c),
            payloads: a.payloads.clone().unwrap_or_else(|| vec![SMALL, LARGE]),
            eras,
            sessions: a.sessions.clone().unwrap_or(s),
            restarts: a.restarts.unwrap_or(r),
            phases: a.phases.clone().unwrap_or_else(|| {
                ["latency", "mixed", "restart", "sessions"]
                    .map(String::from)
                    .to_vec()
            }),
            paths: a
                .paths
                .clone()
                .unwrap_or_else(|| vec!["direct".into(), "relay".into(), "tunnel".into()])
                .iter()
                .map(|p| match p.as_str() {
                    "direct" => "direct",
                    "relay" => "relay",
                    "tunnel" => "tunnel",
                    other => panic!("unknown path {other:?}: direct, relay or tunnel"),
                })
                .collect(),
            requests: a.requests,
            fresh_for_sessions: !a.smoke,
        }
    }
    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
    /// Whether a latency cell is measured: the relay reference only with small results.
    fn measures(&self, path: &str, payload: usize) -> bool {
        path != "relay" || payload == SMALL
    }
    /// Whether the relay processes are needed at all.
    fn needs_relay(&self) -> bool {
        self.runs("latency")
            && self.paths.contains(&"relay")
            && self.payloads.iter().any(|&p| self.measures("relay", p))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Legacy,
    Modern,
}

impl Era {
    fn name(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A log-bucketed histogram (HDR-style: 64 linear sub-buckets per power of two, ~1.6% precision).

#[derive(Clone)]
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    sum: u128,
}

const SUB: u32 = 6;
const LINEAR: u64 = 2 << SUB; // values below this are exact

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; Self::index(u64::MAX) + 1],
            n: 0,
            max: 0,
            sum: 0,
        }
    }
    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB + 1
        let sub = (v >> (e - SUB)) & ((1 << SUB) - 1);
        (LINEAR + (e - SUB - 1) as u64 * (1 << SUB) + sub) as usize
    }
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let e = (i - LINEAR) / (1 << SUB) + SUB as u64 + 1;
        let sub = (i - LINEAR) % (1 << SUB);
        let width = 1u64 << (e - SUB as u64);
        (((1 << SUB) + sub) << (e - SUB as u64)) + width / 2
    }
    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += v as u128;
    }
    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
    fn mean(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            (self.sum / self.n as u128) as u64
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MCP over one HTTP/1.1 keep-alive connection.

/// Where requests go: an address and the request path.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    path: String,
    host: HeaderValue,
}

impl Target {
    fn new(addr: SocketAddr, path: &str) -> Target {
        Target {
            addr,
            path: path.to_owned(),
            host: HeaderValue::from_str(&addr.to_string()).expect("host header"),
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

struct Reply {
    status: StatusCode,
    session: Option<String>,
    len: usize,
    body: Option<Vec<u8>>,
}

/// Sends one request and reads the whole response; keeps the body only when `keep` is set.
async fn send(
    sender: &mut Sender,
    t: &Target,
    method: Method,
    headers: &[(&'static str, HeaderValue)],
    body: Bytes,
    keep: bool,
) -> Result<Reply, String> {
    let fut = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("not ready: {e}"))?;
        let mut req = Request::builder()
            .method(method)
            .uri(t.path.as_str())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        h.insert(http::header::HOST, t.host.clone());
        for (n, v) in headers {
            h.insert(HeaderName::from_static(n), v.clone());
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = resp.into_body();
        let mut len = 0;
        let mut kept = keep.then(Vec::new);
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| format!("body: {e}"))?;
            if let Some(d) = f.data_ref() {
                len += d.len();
                if let Some(k) = &mut kept {
                    k.extend_from_slice(d);
                }
            }
        }
        Ok(Reply {
            status,
            session,
            len,
            body: kept,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

fn base_headers() -> Vec<(&'static str, HeaderValue)> {
    vec![
        ("content-type", HeaderValue::from_static("application/json")),
        (
            "accept",
            HeaderValue::from_static("application/json, text/event-stream"),
        ),
    ]
}

/// A legacy session: initialize, then notifications/initialized. Returns its id.
async fn open_session(sender: &mut Sender, t: &Target) -> Result<String, String> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "underpass-bench", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let r = send(
        sender,
        t,
        Method::POST,
        &base_headers(),
        Bytes::from(init.to_string()),
        false,
    )
    .await?;
    if r.status != StatusCode::OK {
        return Err(format!("initialize: HTTP {}", r.status));
    }
    let sid = r.session.ok_or("initialize: no Mcp-Session-Id")?;
    let mut h = base_headers();
    h.push(("mcp-session-id", hv(&sid)));
    h.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = send(
        sender,
        t,
        Method::POST,
        &h,
        Bytes::from_static(note.as_bytes()),
        false,
    )
    .await?;
    if r.status != StatusCode::ACCEPTED {
        return Err(format!("notifications/initialized: HTTP {}", r.status));
    }
    Ok(sid)
}

/// What one worker sends on its connection.
struct Caller {
    era: Era,
    payload: usize,
    headers: Vec<(&'static str, HeaderValue)>,
    session: Option<String>,
    message: String,
    next_id: u64,
}

impl Caller {
    async fn new(
        sender: &mut Sender,
        t: &Target,
        era: Era,
        payload: usize,
    ) -> Result<Caller, String> {
        let mut headers = base_headers();
        let mut session = None;
        match era {
            Era::Legacy => {
                let sid = open_session(sender, t).await?;
                headers.push(("mcp-session-id", hv(&sid)));
                headers.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
                session = Some(sid);
            }
            Era::Modern => {
                headers.push(("mcp-protocol-version", HeaderValue::from_static(MODERN)));
                headers.push(("mcp-method", HeaderValue::from_static("tools/call")));
                headers.push((
                    "mcp-name",
                    HeaderValue::from_static(if payload <= 4096 { "echo" } else { "blob" }),
                ));
            }
        }
        Ok(Caller {
            era,
            payload,
            headers,
            session,
            message: "m".repeat(payload.min(4096)),
            next_id: 1,
        })
    }

    fn body(&mut self) -> Bytes {
        let id = self.next_id;
        self.next_id += 1;
        let call = if self.payload <= 4096 {
            format!(
                r#""name":"echo","arguments":{{"message":"{}"}}"#,
                self.message
            )
        } else {
            format!(r#""name":"blob","arguments":{{"size":{}}}"#, self.payload)
        };
        let meta = match self.era {
            Era::Legacy => String::new(),
            Era::Modern => format!(
                r#","_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientInfo":{{"name":"underpass-bench","version":"{}"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}"#,
                env!("CARGO_PKG_VERSION")
            ),
        };
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{call}{meta}}}}}"#
        ))
    }

    /// One tools/call; checks status and size, and with `verify` the JSON result itself.
    async fn call(
        &mut self,
        sender: &mut Sender,
        t: &Target,
        verify: bool,
    ) -> Result<usize, String> {
        let body = self.body();
        let r = send(sender, t, Method::POST, &self.headers, body, verify).await?;
        if r.status != StatusCode::OK {
            return Err(format!("tools/call: HTTP {}", r.status));
        }
        if r.len < self.payload {
            return Err(format!(
                "tools/call: {} bytes, expected > {}",
                r.len, self.payload
            ));
        }
        if let Some(b) = r.body {
            let v: Value = serde_json::from_slice(&b).map_err(|e| format!("bad JSON: {e}"))?;
            let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
            if text.len() != self.payload {
                return Err(format!("tools/call result: {v:.200}"));
            }
        }
        Ok(r.len)
    }

    async fn close(&self, sender: &mut Sender, t: &Target) {
        if let Some(sid) = &self.session {
            let mut h = base_headers();
            h.push(("mcp-session-id", hv(sid)));
            h.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
            let _ = send(sender, t, Method::DELETE, &h, Bytes::new(), false).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Process figures from /proc.

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (ns; utime + stime of /proc/<pid>/stat, which keeps the time of exited threads)
/// and context switches summed over a process's live threads.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStat {
    cpu_ns: u64,
    csw: u64,
}

/// Busy CPU time of the whole machine (ns), from /proc/stat.
fn machine_busy_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy * 10_000_000
}

fn proc_stat(pid: u32) -> ProcStat {
    let mut s = ProcStat::default();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        if let Some((_, rest)) = text.rsplit_once(')') {
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if f.len() > 12 {
                s.cpu_ns = (f[11] + f[12]) * 10_000_000; // USER_HZ = 100 on Linux
            }
        }
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return s;
    };
    for t in tasks.flatten() {
        let p = t.path();
        if let Ok(text) = std::fs::read_to_string(p.join("status")) {
            for l in text.lines() {
                if l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
                {
                    s.csw += l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The stack: PKI, echo backend, edge, connector.

struct Stack {
    dir: PathBuf,
    edge_setup: EdgeSetup,
    edge: Proc,
    connector: Proc,
    connector_config: PathBuf,
    backend: Proc,
    backend_addr: SocketAddr,
    /// The reference path, when measured: two chained byte-copying relays.
    relay: Option<Relay>,
    restarts: usize,
}

/// `relay1` listens on `addr` and relays to `relay2`, which relays to the echo backend.
struct Relay {
    relay1: Proc,
    relay2: Proc,
    addr: SocketAddr,
}

/// A helper binary of this crate: next to this executable (the same build), else the
/// workspace's release build.
fn sibling_bin(name: &str) -> PathBuf {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)));
    match here {
        Some(p) if p.exists() => p,
        _ => bin(name),
    }
}

/// Starts one `underpass-tcp-relay` on a free loopback port and waits until it listens.
fn spawn_relay(dir: &Path, name: &str, to: SocketAddr) -> (Proc, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut p = Proc::spawn(
        name,
        dir,
        Command::new(sibling_bin("underpass-tcp-relay")).args([
            "--listen",
            &addr.to_string(),
            "--to",
            &to.to_string(),
        ]),
    );
    p.wait_for_log("listening on", Duration::from_secs(20));
    (p, addr)
}

static TUNNEL_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn tunnel_command(binary: &str, config: &Path) -> Command {
    let mut cmd = Command::new(bin(binary));
    cmd.arg("--config").arg(config).env("RUST_LOG", "info");
    for (k, v) in TUNNEL_ENV.get().map(Vec::as_slice).unwrap_or_default() {
        cmd.env(k, v);
    }
    cmd
}

/// An edge with `env` added to its environment.
fn spawn_edge(dir: &Path, config: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
    Proc::spawn(
        name,
        dir,
        tunnel_command("underpass-edge", config).envs(env.iter().copied()),
    )
}

/// A connector with `env` added to its environment.
fn spawn_connector(dir: &Path, config: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
    Proc::spawn(
        name,
        dir,
        tunnel_command("underpass-connector", config).envs(env.iter().copied()),
    )
}

impl Stack {
    fn start(dir: &Path, backend_threads: usize, with_relay: bool) -> Stack {
        let pki = Pki::init(&dir.join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");

        let port = free_port();
        let backend_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut backend = Proc::spawn(
            "echo-backend",
            dir,
            Command::new(sibling_bin("underpass-echo-backend")).args([
                "--listen",
                &backend_addr.to_string(),
                "--threads",
                &backend_threads.to_string(),
            ]),
        );
        backend.wait_for_log("listening on", Duration::from_secs(20));
        // The far end of the chain first, so that every hop listens before anything connects.
        let relay = with_relay.then(|| {
            let (relay2, relay2_addr) = spawn_relay(dir, "relay2", backend_addr);
            let (relay1, addr) = spawn_relay(dir, "relay1", relay2_addr);
            Relay {
                relay1,
                relay2,
                addr,
            }
        });

        let edge_setup = EdgeSetup::write(
            dir,
            false,
            &[(SERVICE, &["dc1"])],
            "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        );
        // Every bench client is one principal (anonymous) from one address, holding up to
        // 10,000 sessions and event streams: lift the per-caller caps the edge applies.
        edge_setup.add_clients_keys(
            "max_connections = 100000\nmax_connections_per_ip = 100000\n\
             max_concurrent_per_principal = 100000\nmax_sessions_per_principal = 100000\n\
             idle_timeout = \"1h\"",
        );
        let mut edge = spawn_edge(dir, &edge_setup.config, "edge", &[]);
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        let connector_config = write_connector_config(
            dir,
            "connector.toml",
            "dc1",
            edge_setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &[(SERVICE, &format!("http://{backend_addr}/mcp"))],
        );
        let connector = spawn_connector(dir, &connector_config, "connector", &[]);
        edge_setup.wait_ready(SERVICE, Duration::from_secs(30));
        Stack {
            dir: dir.to_path_buf(),
            edge_setup,
            edge,
            connector,
            connector_config,
            backend,
            backend_addr,
            relay,
            restarts: 0,
        }
    }

    /// New edge and connector processes (same config, same ports, same backend), with `env`
    /// added to their environment.
    fn fresh_tunnel(&mut self, env: &[(&str, &str)]) {
        self.connector.stop();
        self.edge.stop();
        self.restarts += 1;
        let mut edge = spawn_edge(
            &self.dir,
            &self.edge_setup.config,
            &format!("edge-{}", self.restarts),
            env,
        );
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        self.edge = edge;
        self.connector = spawn_connector(
            &self.dir,
            &self.connector_config,
            &format!("connector-{}", self.restarts),
            env,
        );
        self.edge_setup.wait_ready(SERVICE, Duration::from_secs(30));
    }

    fn direct(&self) -> Target {
        Target::new(self.backend_addr, "/mcp")
    }

    fn relay(&self) -> Option<Target> {
        self.relay.as_ref().map(|r| Target::new(r.addr, "/mcp"))
    }

    fn tunnel(&self) -> Target {
        Target::new(
            ([127, 0, 0, 1], self.edge_setup.client_port).into(),
            &format!("/mcp/{SERVICE}"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Latency and throughput.

#[derive(Default)]
struct WorkerOut {
    hist: Option<Hist>,
    count: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    last: Option<Instant>,
}

async fn worker(
    t: Arc<Target>,
    era: Era,
    payload: usize,
    measure_from: Instant,
    end: Instant,
    budget: Option<Arc<AtomicI64>>,
) -> WorkerOut {
    let mut out = WorkerOut {
        hist: Some(Hist::new()),
        ..Default::default()
    };
    let hist = out.hist.as_mut().expect("hist");
    let mut verified = false;
    // Reconnect after errors (bounded by the deadline).
    while Instant::now() < end {
        let setup = async {
            let mut s = connect(t.addr).await?;
            let c = Caller::new(&mut s, &t, era, payload).await?;
            Ok::<_, String>((s, c))
        };
        let (mut sender, mut caller) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break;
            }
            if let Some(b) = &budget {
                if t0 >= measure_from && b.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    return out;
                }
            }
            match caller.call(&mut sender, &t, !verified).await {
                Ok(n) => {
                    verified = true;
                    let t1 = Instant::now();
                    if t1 >= measure_from && t1 <= end {
                        hist.record((t1 - t0).as_nanos() as u64);
                        out.count += 1;
                        out.bytes += n as u64;
                        out.last = Some(t1);
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(e);
                    break;
                }
            }
        }
        caller.close(&mut sender, &t).await;
        if Instant::now() >= end {
            break;
        }
    }
    out
}

struct Row {
    path: &'static str,
    era: Era,
    concurrency: usize,
    payload: usize,
    hist: Hist,
    rps: f64,
    errors: u64,
    first_error: Option<String>,
    /// CPU µs per request and context switches per request, per process.
    cpu: Vec<(&'static str, f64, f64)>,
    /// CPU used by processes other than ours during the cell, in % of one core (noise).
    foreign_cpu_pct: f64,
    /// The background bulk load this row was measured under (mixed phase).
    bulk: Option<Bulk>,
}

/// A background load of 1 MiB calls running while small calls are measured.
struct Bulk {
    workers: usize,
    rps: f64,
    errors: u64,
}

impl Row {
    fn us(&self, q: f64) -> f64 {
        self.hist.quantile(q) as f64 / 1000.0
    }
    fn gbit(&self) -> f64 {
        self.rps * self.payload as f64 * 8.0 / 1e9
    }
    fn json(&self) -> Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let mut cpu = serde_json::Map::new();
        let mut csw = serde_json::Map::new();
        for (name, c, s) in &self.cpu {
            cpu.insert((*name).into(), json!(r1(*c)));
            csw.insert((*name).into(), json!((s * 100.0).round() / 100.0));
        }
        json!({
            "path": self.path,
            "era": self.era.name(),
            "concurrency": self.concurrency,
            "payload_bytes": self.payload,
            "p50_us": r1(self.us(0.5)),
            "p90_us": r1(self.us(0.9)),
            "p99_us": r1(self.us(0.99)),
            "max_us": r1(self.hist.max as f64 / 1000.0),
            "mean_us": r1(self.hist.mean() as f64 / 1000.0),
            "rps": r1(self.rps),
            "gbit_s": (self.gbit() * 1000.0).round() / 1000.0,
            "requests": self.hist.n,
            "errors": self.errors,
            "first_error": self.first_error,
            "cpu_us_per_req": cpu,
            "ctx_switches_per_req": csw,
            "foreign_cpu_pct": r1(self.foreign_cpu_pct),
            "bulk_workers": self.bulk.as_ref().map(|b| b.workers),
            "bulk_rps": self.bulk.as_ref().map(|b| r1(b.rps)),
            "bulk_errors": self.bulk.as_ref().map(|b| b.errors),
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn run_cell(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    stack: &Stack,
    path: &'static str,
    era: Era,
    concurrency: usize,
    payload: usize,
    bulk_workers: usize,
) -> Row {
    let t = Arc::new(match path {
        "direct" => stack.direct(),
        "relay" => stack
            .relay()
            .expect("relay processes started for the relay path"),
        _ => stack.tunnel(),
    });
    let mut procs: Vec<(&'static str, u32)> = vec![("backend", stack.backend.pid())];
    match (path, &stack.relay) {
        ("tunnel", _) => {
            procs.push(("edge", stack.edge.pid()));
            procs.push(("connector", stack.connector.pid()));
        }
        ("relay", Some(r)) => {
            procs.push(("relay1", r.relay1.pid()));
            procs.push(("relay2", r.relay2.pid()));
        }
        _ => {}
    }
    procs.push(("bench", std::process::id()));
    let start = Instant::now();
    // Connection (and session) setup happens inside the warm-up.
    let measure_from = start + plan.warmup;
    // A fixed request count applies to the latency phase: under a background load the cell
    // runs for the duration, so the load stops when the measurement does.
    let budget = plan
        .requests
        .filter(|_| bulk_workers == 0)
        .map(|n| Arc::new(AtomicI64::new(n as i64)));
    let end = measure_from
        + if budget.is_some() {
            Duration::from_secs(600)
        } else {
            plan.duration
        };
    // wrk-style: each load thread runs its own current-thread runtime and its share of the
    // workers, so a response never wakes a task on another thread of the load generator.
    // A background bulk load (1 MiB calls, not measured) runs on the last load thread, so the
    // measured workers keep threads of their own.
    let measuring = if bulk_workers > 0 {
        clients.len() - 1
    } else {
        clients.len()
    };
    let threads = measuring.min(concurrency).max(1);
    let (outs, bulk_outs, (before, after), (m0, m1)) = std::thread::scope(|scope| {
        let bulk = (bulk_workers > 0).then(|| {
            let (rt, t) = (&clients[clients.len() - 1], t.clone());
            scope.spawn(move || {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..bulk_workers {
                        set.spawn(worker(t.clone(), era, LARGE, measure_from, end, None));
                    }
                    let mut outs = Vec::new();
                    while let Some(r) = set.join_next().await {
                        outs.push(r.unwrap_or_default());
                    }
                    outs
                })
            })
        });
        let handles: Vec<_> = clients[..threads]
            .iter()
            .enumerate()
            .map(|(k, rt)| {
                let n = concurrency / threads + usize::from(k < concurrency % threads);
                let t = t.clone();
                let budget = budget.clone();
                scope.spawn(move || {
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for _ in 0..n {
                            set.spawn(worker(
                                t.clone(),
                                era,
                                payload,
                                measure_from,
                                end,
                                budget.clone(),
                            ));
                        }
                        let mut outs = Vec::new();
                        while let Some(r) = set.join_next().await {
                            outs.push(r.unwrap_or_default());
                        }
                        outs
                    })
                })
            })
            .collect();
        let sleep_until =
            |at: Instant| std::thread::sleep(at.saturating_duration_since(Instant::now()));
        sleep_until(measure_from);
        let before: Vec<ProcStat> = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
        let machine_before = (Instant::now(), machine_busy_ns());
        if budget.is_none() {
            sleep_until(end);
        }
        let after: Vec<ProcStat>;
        let machine_after;
        let outs: Vec<WorkerOut> = if budget.is_none() {
            after = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
            machine_after = (Instant::now(), machine_busy_ns());
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        } else {
            let outs = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            after = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
            machine_after = (Instant::now(), machine_busy_ns());
            outs
        };
        let bulk_outs = bulk.map(|h| h.join().unwrap_or_default());
        (
            outs,
            bulk_outs,
            (before, after),
            (machine_before, machine_after),
        )
    });
    let mut hist = Hist::new();
    let mut errors = 0;
    let mut first_error = None;
    let last = outs.iter().filter_map(|o| o.last).max();
    for o in outs {
        if let Some(h) = &o.hist {
            hist.merge(h);
        }
        errors += o.errors;
        if first_error.is_none() {
            first_error = o.first_error;
        }
    }
    let seconds = match (budget.is_some(), last) {
        (true, Some(l)) => (l - measure_from).as_secs_f64(),
        _ => plan.duration.as_secs_f64(),
    };
    let rps = hist.n as f64 / seconds;
    let bulk = bulk_outs.map(|outs| Bulk {
        workers: bulk_workers,
        rps: outs.iter().map(|o| o.count).sum::<u64>() as f64 / plan.duration.as_secs_f64(),
        errors: outs.iter().map(|o| o.errors).sum(),
    });
    let n = hist.n.max(1) as f64;
    let ours: u64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.cpu_ns.saturating_sub(b.cpu_ns))
        .sum();
    let foreign_cpu_pct = m1.1.saturating_sub(m0.1).saturating_sub(ours) as f64
        / (m1.0 - m0.0).as_nanos().max(1) as f64
        * 100.0;
    // Under a background load the CPU is mostly the load's: per measured request it says nothing.
    let cpu = procs
        .iter()
        .filter(|_| bulk_workers == 0)
        .zip(before.iter().zip(&after))
        .map(|((name, _), (b, a))| {
            (
                *name,
                a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1000.0 / n,
                a.csw.saturating_sub(b.csw) as f64 / n,
            )
        })
        .collect();
    Row {
        path,
        era,
        concurrency,
        payload,
        hist,
        rps,
        errors,
        first_error,
        cpu,
        foreign_cpu_pct,
        bulk,
    }
}

// ---------------------------------------------------------------------------------------------
// Edge restart.

/// One attempt: a fresh connection and a stateless tools/call. Succeeds on 200.
async fn probe(t: &Target) -> bool {
    let attempt = async {
        let mut s = connect(t.addr).await?;
        let mut c = Caller::new(&mut s, t, Era::Modern, SMALL).await?;
        c.call(&mut s, t, false).await
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Ok(_))
    )
}

/// Stops the edge with `signal` (`TERM` or `KILL`), starts it again on the same ports, and
/// times until a `tools/call` through it succeeds.
fn restart_once(
    rt: &tokio::runtime::Runtime,
    stack: &mut Stack,
    signal: &str,
) -> Result<Value, String> {
    let t = stack.tunnel();
    if !rt.block_on(probe(&t)) {
        return Err("the tunnel does not carry traffic before the restart".into());
    }
    let pid = stack.edge.pid();
    let t0 = Instant::now();
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
    let exit_deadline = t0 + Duration::from_secs(10);
    while stack.edge.alive() && Instant::now() < exit_deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if stack.edge.alive() {
        stack.edge.stop();
    }
    let stopped = Instant::now();
    stack.restarts += 1;
    stack.edge = spawn_edge(
        &stack.dir,
        &stack.edge_setup.config,
        &format!("edge-{}", stack.restarts),
        &[],
    );
    let spawned = Instant::now();
    let deadline = spawned + Duration::from_secs(30);
    let mut attempts = 0u32;
    let ready = rt.block_on(async {
        while Instant::now() < deadline {
            attempts += 1;
            if probe(&t).await {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    });
    let ready = ready.ok_or_else(|| {
        format!(
            "no tools/call succeeded within 30 s of the restart; edge log:\n{}",
            stack.edge.log_text()
        )
    })?;
    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    Ok(json!({
        "signal": format!("SIG{signal}"),
        "restart_to_ready_ms": ms(ready - t0),
        "edge_exit_ms": ms(stopped - t0),
        "spawn_to_ready_ms": ms(ready - spawned),
        "probes": attempts,
    }))
}

// ---------------------------------------------------------------------------------------------
// Idle legacy sessions.

struct SessionRow {
    count: usize,
    streams: bool,
    edge_kib: u64,
    connector_kib: u64,
    backend_kib: u64,
    seconds: f64,
}

/// Opens `n` sessions over the given connections; returns the connections and the session ids.
async fn open_sessions(
    senders: Vec<Sender>,
    t: &Target,
    n: usize,
) -> Result<(Vec<Sender>, Vec<String>), String> {
    let per = n.div_ceil(senders.len().max(1));
    let mut set = tokio::task::JoinSet::new();
    let mut left = n;
    for mut s in senders {
        let k = per.min(left);
        left -= k;
        let t = t.clone();
        set.spawn(async move {
            let mut ids = Vec::with_capacity(k);
            for _ in 0..k {
                ids.push(open_session(&mut s, &t).await?);
            }
            Ok::<_, String>((s, ids))
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut back = Vec::new();
    while let Some(r) = set.join_next().await {
        let (s, ids) = r.map_err(|e| e.to_string())??;
        back.push(s);
        all.extend(ids);
    }
    Ok((back, all))
}

/// Holds a GET event stream open for each session; returns the open responses.
async fn open_streams(
    t: &Target,
    ids: &[String],
) -> Result<Vec<(Sender, hyper::Response<hyper::body::Incoming>)>, String> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let t = t.clone();
            let id = id.clone();
            set.spawn(async move {
                let mut s = connect(t.addr).await?;
                s.ready().await.map_err(|e| e.to_string())?;
                let mut req = Request::builder()
                    .method(Method::GET)
                    .uri(t.path.as_str())
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let h = req.headers_mut();
                h.insert(http::header::HOST, t.host.clone());
                h.insert("accept", HeaderValue::from_static("text/event-stream"));
                h.insert("mcp-session-id", hv(&id));
                h.insert("mcp-protocol-version", HeaderValue::from_static(LEGACY));
                let resp = tokio::time::timeout(REQUEST_TIMEOUT, s.send_request(req))
                    .await
                    .map_err(|_| "GET timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                if resp.status() != StatusCode::OK {
                    return Err(format!("GET event stream: HTTP {}", resp.status()));
                }
                Ok((s, resp))
            });
        }
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| e.to_string())??);
        }
    }
    Ok(out)
}

fn settle_rss(pid: u32) -> u64 {
    // Let background frees and lazily touched pages settle.
    std::thread::sleep(Duration::from_millis(300));
    rss_kib(pid)
}

fn sessions_phase(
    rt: &tokio::runtime::Runtime,
    stack: &Stack,
    counts: &[usize],
    streams: bool,
) -> Result<Vec<SessionRow>, String> {
    let t = stack.tunnel();
    const CONNS: usize = 32;
    // Connections (and the edge's per-connection state) exist before the baseline, and are
    // warmed with stateless calls, so the growth measured is the sessions' own.
    let mut senders = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..CONNS {
            let mut s = connect(t.addr).await?;
            let mut c = Caller::new(&mut s, &t, Era::Modern, SMALL).await?;
            for _ in 0..20 {
                c.call(&mut s, &t, false).await?;
            }
            v.push(s);
        }
        Ok::<_, String>(v)
    })?;
    let (e, c, b) = (stack.edge.pid(), stack.connector.pid(), stack.backend.pid());
    let mut rows = vec![SessionRow {
        count: 0,
        streams,
        edge_kib: settle_rss(e),
        connector_kib: rss_kib(c),
        backend_kib: rss_kib(b),
        seconds: 0.0,
    }];
    let mut open = 0;
    let mut held = Vec::new();
    for &count in counts {
        if count <= open {
            continue;
        }
        let started = Instant::now();
        let (back, ids) = rt.block_on(open_sessions(
            std::mem::take(&mut senders),
            &t,
            count - open,
        ))?;
        senders = back;
        if streams {
            held.extend(rt.block_on(open_streams(&t, &ids))?);
        }
        let seconds = started.elapsed().as_secs_f64();
        open = count;
        rows.push(SessionRow {
            count,
            streams,
            edge_kib: settle_rss(e),
            connector_kib: rss_kib(c),
            backend_kib: rss_kib(b),
            seconds,
        });
        eprintln!(
            "  {count} idle sessions{}: edge {} KiB, connector {} KiB ({seconds:.1} s to open)",
            if streams { " with event streams" } else { "" },
            rows.last().map_or(0, |r| r.edge_kib),
            rows.last().map_or(0, |r| r.connector_kib),
        );
    }
    drop(held);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Report.

/// Microseconds as the tables print them: bare µs, or "… ms" from 10 ms up.
fn fmt_us(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Microseconds with their unit, for the progress lines.
fn fmt_duration(x: f64) -> String {
    if x >= 10_000.0 {
        fmt_us(x)
    } else {
        format!("{x:.0} µs")
    }
}

fn payload_name(p: usize) -> String {
    if p >= 1024 * 1024 && p % (1024 * 1024) == 0 {
        format!("{} MiB", p / (1024 * 1024))
    } else if p >= 1024 && p % 1024 == 0 {
        format!("{} KiB", p / 1024)
    } else {
        format!("{p} B")
    }
}

fn cpu_of(r: &Row, name: &str) -> f64 {
    r.cpu
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(0.0, |c| c.1)
}

fn csw_of(r: &Row, name: &str) -> f64 {
    r.cpu
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(0.0, |c| c.2)
}

/// The two processes between load generator and backend: edge and connector for the tunnel,
/// relay 1 and relay 2 for the reference relay (shown in the e and k columns).
fn hops_of(r: &Row) -> (&'static str, &'static str) {
    if r.path == "relay" {
        ("relay1", "relay2")
    } else {
        ("edge", "connector")
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = Plan::from(&args);
    let tunnel_env = args
        .tunnel_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => panic!("--tunnel-env wants KEY=VALUE, got {kv:?}"),
        })
        .collect();
    let _ = TUNNEL_ENV.set(tunnel_env);
    // Control work (restarts, sessions) runs on a small multi-thread runtime; latency cells on
    // `client_threads` current-thread runtimes, one per load thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let clients: Vec<tokio::runtime::Runtime> = (0..args.client_threads.max(1))
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .collect();

    let scratch = tempfile::Builder::new()
        .prefix("underpass-bench-")
        .tempdir()
        .expect("tempdir");
    let dir = scratch.path().to_path_buf();
    if args.keep {
        eprintln!("scratch folder (kept): {}", dir.display());
    }
    let overall = Instant::now();
    eprintln!(
        "starting PKI, echo backend, {}edge and connector in {}",
        if plan.needs_relay() {
            "two TCP relays, "
        } else {
            ""
        },
        dir.display()
    );
    let mut stack = Stack::start(&dir, args.backend_threads, plan.needs_relay());

    if args.pause {
        eprintln!(
            "paused: edge pid {}, connector pid {}, backend pid {}, tunnel http://127.0.0.1:{}/mcp/{SERVICE}, direct http://{}/mcp — press Enter",
            stack.edge.pid(),
            stack.connector.pid(),
            stack.backend.pid(),
            stack.edge_setup.client_port,
            stack.backend_addr
        );
        if let Some(r) = &stack.relay {
            eprintln!(
                "        relay1 pid {}, relay2 pid {}, relay http://{}/mcp",
                r.relay1.pid(),
                r.relay2.pid(),
                r.addr
            );
        }
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    // ---- latency
    let mut rows: Vec<Row> = Vec::new();
    if plan.runs("latency") {
        for &era in &plan.eras {
            for &payload in &plan.payloads {
                for &c in &plan.concurrency {
                    for &path in &plan.paths {
                        if !plan.measures(path, payload) {
                            continue;
                        }
                        let row = run_cell(&clients, &plan, &stack, path, era, c, payload, 0);
                        eprintln!(
                            "  {path:6} {:6} {:>7} c={c:<3}: p50 {:>8}  p99 {:>8}  {:>9.0} rps  errors {}{}",
                            era.name(),
                            payload_name(payload),
                            fmt_duration(row.us(0.5)),
                            fmt_duration(row.us(0.99)),
                            row.rps,
                            row.errors,
                            row.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                        );
                        rows.push(row);
                    }
                }
            }
        }
    }
    // ---- mixed: small calls while large results stream on the same paths
    let mut mixed: Vec<Row> = Vec::new();
    if plan.runs("mixed") && clients.len() < 2 {
        eprintln!("  mixed phase skipped: it needs --client-threads 2 or more");
    } else if plan.runs("mixed") {
        for &era in &plan.eras {
            for path in ["direct", "tunnel"] {
                if !plan.paths.contains(&path) {
                    continue;
                }
                let row = run_cell(
                    &clients,
                    &plan,
                    &stack,
                    path,
                    era,
                    1,
                    SMALL,
                    MIXED_BULK_WORKERS,
                );
                eprintln!(
                    "  {path:6} {:6} 100 B c=1 beside {MIXED_BULK_WORKERS} × 1 MiB: p50 {:>8}  p99 {:>8}  bulk {:.0} rps  errors {}{}",
                    era.name(),
                    fmt_duration(row.us(0.5)),
                    fmt_duration(row.us(0.99)),
                    row.bulk.as_ref().map_or(0.0, |b| b.rps),
                    row.errors + row.bulk.as_ref().map_or(0, |b| b.errors),
                    row.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                );
                mixed.push(row);
            }
        }
    }
    // ---- restart
    let mut restarts: Vec<Value> = Vec::new();
    let mut restart_error = None;
    if plan.runs("restart") {
        let mut last_ready: Option<Instant> = None;
        'signals: for signal in ["TERM", "KILL"] {
            for i in 0..plan.restarts {
                // The connector resets its reconnect backoff only for tunnels that lived 10 s:
                // space restarts so that each one starts from a healthy tunnel.
                if let Some(last) = last_ready {
                    let wait = Duration::from_millis(10_500).saturating_sub(last.elapsed());
                    std::thread::sleep(wait);
                }
                match restart_once(&rt, &mut stack, signal) {
                    Ok(v) => {
                        eprintln!("  edge restart {} (SIG{signal}): {v}", i + 1);
                        restarts.push(v);
                    }
                    Err(e) => {
                        eprintln!("  edge restart {} (SIG{signal}) failed: {e}", i + 1);
                        restart_error = Some(e);
                        break 'signals;
                    }
                }
                last_ready = Some(Instant::now());
            }
        }
    }
    let restart_median_after = |signal: &str| {
        let ms: Vec<f64> = restarts
            .iter()
            .filter(|v| v["signal"] == signal)
            .filter_map(|v| v["restart_to_ready_ms"].as_f64())
            .collect();
        median(&ms)
    };
    let restart_median = restart_median_after("SIGTERM");
    let kill_restart_median = restart_median_after("SIGKILL");

    // ---- sessions
    let mut sessions: Vec<SessionRow> = Vec::new();
    let mut session_error = None;
    if plan.runs("sessions") {
        let mut variants = vec![false];
        if args.session_streams {
            variants.push(true);
        }
        for streams in variants {
            if plan.fresh_for_sessions {
                // Fresh processes: earlier phases leave allocator caches that would hide growth.
                stack.fresh_tunnel(SESSIONS_ENV);
            }
            match sessions_phase(&rt, &stack, &plan.sessions, streams) {
                Ok(r) => sessions.extend(r),
                Err(e) => {
                    eprintln!("  sessions failed: {e}");
                    session_error = Some(e);
                }
            }
        }
    }

    // ---- report
    let mut out = String::new();
    let find = |path: &str, era: Era, c: usize, p: usize| {
        rows.iter()
            .find(|r| r.path == path && r.era == era && r.concurrency == c && r.payload == p)
    };
    let _ = writeln!(out, "\n## Direct vs tunnel (`tools/call`, closed loop, one HTTP/1.1 connection per worker; {} s per cell after {} s warm-up)\n",
        plan.duration.as_secs_f64(), plan.warmup.as_secs_f64());
    let _ = writeln!(out, "| era | result | c | direct p50 µs | tunnel p50 µs | added p50 µs | direct p99 µs | tunnel p99 µs | direct rps | tunnel rps | tunnel/direct | relay/direct | tunnel/relay |");
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    for &era in &plan.eras {
        for &p in &plan.payloads {
            for &c in &plan.concurrency {
                let (Some(d), Some(t)) = (find("direct", era, c, p), find("tunnel", era, c, p))
                else {
                    continue;
                };
                let (relay_direct, tunnel_relay) = match find("relay", era, c, p) {
                    Some(r) => (
                        format!("{:.2}", ratio(r.rps, d.rps)),
                        format!("{:.2}", ratio(t.rps, r.rps)),
                    ),
                    None => ("—".to_string(), "—".to_string()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {c} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {relay_direct} | {tunnel_relay} |",
                    era.name(),
                    payload_name(p),
                    fmt_us(d.us(0.5)),
                    fmt_us(t.us(0.5)),
                    fmt_us(t.us(0.5) - d.us(0.5)),
                    fmt_us(d.us(0.99)),
                    fmt_us(t.us(0.99)),
                    d.rps,
                    t.rps,
                    ratio(t.rps, d.rps),
                );
            }
        }
    }
    if rows.iter().any(|r| r.path == "relay") {
        let _ = writeln!(out, "\nrelay = the reference path, two chained do-nothing byte-copying TCP relays (`underpass-tcp-relay`, 100 B only): the floor of any two-process tunnel on this machine. relay/direct and tunnel/relay are throughput ratios; — where the relay was not measured.");
    }
    if !rows.is_empty() {
        let _ = writeln!(out, "\n### All rows (CPU µs per request of each process: b = backend, e = edge, k = connector, g = load generator; for relay rows e = relay 1 and k = relay 2; cs = context switches per request of edge + connector, or relay 1 + relay 2; other CPU = CPU used by processes that are not part of the benchmark, % of one core: high values mean a noisy cell)\n");
        let _ = writeln!(out, "| path | era | result | c | p50 µs | p90 µs | p99 µs | max µs | rps | Gbit/s | CPU b/e/k/g µs | cs e+k | other CPU % | errors |");
        let _ = writeln!(
            out,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
        );
        for r in &rows {
            let (e, k) = hops_of(r);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.0}/{:.0}/{:.0}/{:.0} | {:.1} | {:.0} | {} |",
                r.path,
                r.era.name(),
                payload_name(r.payload),
                r.concurrency,
                fmt_us(r.us(0.5)),
                fmt_us(r.us(0.9)),
                fmt_us(r.us(0.99)),
                fmt_us(r.hist.max as f64 / 1000.0),
                r.rps,
                r.gbit(),
                cpu_of(r, "backend"),
                cpu_of(r, e),
                cpu_of(r, k),
                cpu_of(r, "bench"),
                csw_of(r, e) + csw_of(r, k),
                r.foreign_cpu_pct,
                r.errors
            );
        }
    }
    if !mixed.is_empty() {
        let _ = writeln!(out, "\n## Small calls beside large ones (100 B `tools/call`, c=1, measured while {MIXED_BULK_WORKERS} other workers fetch 1 MiB results over the same path)\n");
        let _ = writeln!(
            out,
            "| path | era | p50 µs alone | p50 µs beside bulk | p99 µs alone | p99 µs beside bulk | max µs beside bulk | bulk Gbit/s |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for m in &mixed {
            let alone = find(m.path, m.era, 1, SMALL);
            let alone_us = |q: f64| alone.map_or("—".into(), |a| fmt_us(a.us(q)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                m.path,
                m.era.name(),
                alone_us(0.5),
                fmt_us(m.us(0.5)),
                alone_us(0.99),
                fmt_us(m.us(0.99)),
                fmt_us(m.hist.max as f64 / 1000.0),
                m.bulk
                    .as_ref()
                    .map_or(0.0, |b| b.rps * LARGE as f64 * 8.0 / 1e9),
            );
        }
    }
    let base = |streams: bool| {
        sessions
            .iter()
            .find(|s| s.count == 0 && s.streams == streams)
    };
    let per_session = |s: &SessionRow| -> f64 {
        let Some(b) = base(s.streams) else { return 0.0 };
        let grow = (s.edge_kib + s.connector_kib) as f64 - (b.edge_kib + b.connector_kib) as f64;
        grow * 1024.0 / s.count.max(1) as f64
    };
    if !sessions.is_empty() {
        let _ = writeln!(out, "\n## Idle legacy sessions (RSS after initialize + notifications/initialized; fresh edge and connector, allocator without transparent huge pages: {})\n", SESSIONS_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        let _ = writeln!(out, "| sessions | event streams | edge RSS KiB | connector RSS KiB | growth per session (edge + connector) | backend RSS KiB |");
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
        for s in &sessions {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                s.count,
                if s.streams { "yes" } else { "no" },
                s.edge_kib,
                s.connector_kib,
                if s.count == 0 {
                    "—".to_string()
                } else {
                    format!("{:.0} B", per_session(s))
                },
                s.backend_kib
            );
        }
    }
    if !restarts.is_empty() {
        let _ = writeln!(
            out,
            "\n## Edge restart (signal → first successful tools/call through the new edge)\n"
        );
        let _ = writeln!(
            out,
            "SIGTERM: the edge closes its tunnels before it exits. SIGKILL: a crash; the \
             connector learns of it from the restarted edge's stateless reset.\n"
        );
        let _ = writeln!(
            out,
            "| run | signal | restart to ready ms | edge exit ms | spawn to ready ms |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|");
        for (i, v) in restarts.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                v["signal"].as_str().unwrap_or(""),
                v["restart_to_ready_ms"],
                v["edge_exit_ms"],
                v["spawn_to_ready_ms"]
            );
        }
    }

    // ---- targets
    let mut targets: Vec<Value> = Vec::new();
    // `limit: None` makes an informational row (a reference, not a target): printed in the
    // table, left out of the JSON `targets`.
    let mut target = |name: &str,
                      measured: Option<f64>,
                      unit: &str,
                      limit: Option<f64>,
                      le: bool| {
        let met =
            limit.and_then(|limit| measured.map(|m| if le { m <= limit } else { m >= limit }));
        targets.push(json!({
            "target": name, "measured": measured.map(|m| (m * 100.0).round() / 100.0),
            "unit": unit, "limit": limit, "kind": limit.map(|_| if le { "<=" } else { ">=" }), "met": met,
        }));
    };
    for &era in &plan.eras {
        let added = match (find("direct", era, 1, SMALL), find("tunnel", era, 1, SMALL)) {
            (Some(d), Some(t)) => Some(t.us(0.5) - d.us(0.5)),
            _ => None,
        };
        target(
            &format!("added p50, 100 B, c=1, {}", era.name()),
            added,
            "µs",
            Some(150.0),
            true,
        );
        let ratio = match (
            find("direct", era, 64, SMALL),
            find("tunnel", era, 64, SMALL),
        ) {
            (Some(d), Some(t)) if d.rps > 0.0 => Some(t.rps / d.rps),
            _ => None,
        };
        target(
            &format!("throughput tunnel/direct, 100 B, c=64, {}", era.name()),
            ratio,
            "ratio",
            Some(0.5),
            false,
        );
        if plan.paths.contains(&"relay") {
            // A reference beside the target, not a target: what two do-nothing hops allow.
            let floor = match (
                find("direct", era, 64, SMALL),
                find("relay", era, 64, SMALL),
            ) {
                (Some(d), Some(r)) if d.rps > 0.0 => Some(r.rps / d.rps),
                _ => None,
            };
            target(
                &format!(
                    "two-hop TCP relay (floor) throughput/direct, 100 B, c=64, {}",
                    era.name()
                ),
                floor,
                "ratio",
                None,
                false,
            );
        }
        let g1 = find("tunnel", era, 1, LARGE).map(Row::gbit);
        target(
            &format!("1 MiB through the tunnel, c=1, {}", era.name()),
            g1,
            "Gbit/s",
            Some(1.0),
            false,
        );
        let best = rows
            .iter()
            .filter(|r| r.path == "tunnel" && r.era == era && r.payload == LARGE)
            .map(Row::gbit)
            .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
        target(
            &format!("1 MiB through the tunnel, best concurrency, {}", era.name()),
            best,
            "Gbit/s",
            Some(1.0),
            false,
        );
    }
    let s10k = sessions
        .iter()
        .filter(|s| !s.streams && s.count > 0)
        .max_by_key(|s| s.count);
    target(
        &format!(
            "idle legacy sessions ({}), growth per session edge + connector",
            s10k.map_or(0, |s| s.count)
        ),
        s10k.map(|s| per_session(s) / 1024.0),
        "KiB",
        Some(32.0),
        true,
    );
    target(
        "restart to ready (median)",
        restart_median,
        "ms",
        Some(1000.0),
        true,
    );
    target(
        "restart to ready after SIGKILL (median)",
        kill_restart_median,
        "ms",
        None,
        true,
    );

    let _ = writeln!(out, "\n## Targets (issue 5)\n");
    let _ = writeln!(out, "| target | measured | limit | met |");
    let _ = writeln!(out, "|---|---:|---:|---|");
    for t in &targets {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} | {} |",
            t["target"].as_str().unwrap_or(""),
            t["measured"]
                .as_f64()
                .map_or("—".into(), |m| format!("{m}")),
            t["unit"].as_str().unwrap_or(""),
            match t["limit"].as_f64() {
                Some(l) => format!(
                    "{} {l} {}",
                    t["kind"].as_str().unwrap_or(""),
                    t["unit"].as_str().unwrap_or("")
                ),
                None => "—".into(),
            },
            match t["met"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }
    println!("{out}");
    eprintln!("total {:.1} s", overall.elapsed().as_secs_f64());

    if let Some(path) = &args.json {
        let binaries: Vec<Value> = ["underpass-edge", "underpass-connector"]
            .iter()
            .map(|b| {
                let modified = std::fs::metadata(bin(b))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                json!({"name": b, "modified_unix": modified})
            })
            .collect();
        let doc = json!({
            "machine": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            },
            "config": {
                "mode": if args.smoke { "smoke" } else if args.quick { "quick" } else { "full" },
                "duration_s": plan.duration.as_secs_f64(),
                "warmup_s": plan.warmup.as_secs_f64(),
                "client_threads": args.client_threads,
                "backend_threads": args.backend_threads,
                "command": std::env::args().collect::<Vec<_>>().join(" "),
                "tunnel_env": args.tunnel_env,
                "binaries": binaries,
            },
            "latency": rows.iter().filter(|r| r.path != "relay").map(Row::json).collect::<Vec<_>>(),
            // The reference path (two do-nothing TCP relays, 100 B only), kept apart so that
            // `latency` stays direct and tunnel rows; the e/k CPU of these rows is under
            // `relay1` and `relay2`.
            "reference_relay": rows.iter().filter(|r| r.path == "relay").map(Row::json).collect::<Vec<_>>(),
            // 100 B calls at c=1 measured beside `bulk_workers` workers fetching 1 MiB results.
            "mixed": mixed.iter().map(Row::json).collect::<Vec<_>>(),
            // The sessions phase's edge and connector ran with this extra environment.
            "sessions_env": SESSIONS_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "sessions": sessions.iter().map(|s| json!({
                "count": s.count,
                "event_streams": s.streams,
                "edge_rss_kib": s.edge_kib,
                "connector_rss_kib": s.connector_kib,
                "backend_rss_kib": s.backend_kib,
                "per_session_bytes": if s.count == 0 { Value::Null } else { json!(per_session(s).round()) },
                "open_seconds": (s.seconds * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
            "sessions_error": session_error,
            "restart_to_ready_ms": restart_median,
            "kill_restart_to_ready_ms": kill_restart_median,
            "restarts": restarts,
            "restart_error": restart_error,
            "targets": targets.iter().filter(|t| !t["limit"].is_null()).collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&doc).expect("JSON") + "\n",
        ) {
            eprintln!("cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    if args.keep {
        let _ = scratch.keep();
    }
    let failed = rows.iter().chain(&mixed).any(|r| r.hist.n == 0)
        || (plan.runs("restart") && restart_error.is_some())
        || (plan.runs("sessions") && session_error.is_some());
    if failed {
        eprintln!("underpass-bench: some measurements failed (see above)");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::Hist;

    #[test]
    fn histogram_buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let i = Hist::index(v);
            assert!(i >= last);
            last = i;
            let back = Hist::value(i);
            let err = back.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 0.016, "{v} -> {i} -> {back}");
        }
        let mut h = Hist::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
