//! A rolling restart of a whole deployment under steady load, the way an orchestrator does
//! it (issue 13, item 5): two edges behind a TCP load balancer that follows their `/readyz`
//! (like a Kubernetes Service), two connectors each tunnelled to both edges. Each process in
//! turn gets SIGTERM, drains, exits 0 and is started again with the same config and ports,
//! while our load driver, the official TypeScript and Python SDK clients and long-lived
//! legacy sessions call through the load balancer. Not one call may fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::faults::{audit_verify, ms, FaultBackend, Rng};
use underpass_tests::lb::{Lb, LbBackend};
use underpass_tests::load::{self, summarize, Call, Load, Outcome, Plan, SdkCall, SdkLoop};
use underpass_tests::*;

/// Per-call deadline of every driver: far above the ~5 s an edge holds a call for a
/// restarting connector, so a call that fails did so for another reason than our patience.
const DEADLINE: Duration = Duration::from_secs(25);
/// Bound on each wait for a process to drain and exit (its `drain_grace` is 30 s).
const EXIT_WAIT: Duration = Duration::from_secs(45);
/// Bound on each wait for tunnels to come (back) up.
const UP_WAIT: Duration = Duration::from_secs(60);
/// Long-lived legacy sessions held open by [`Sessions`] for the whole run.
const SESSIONS: usize = 3;

/// One edge: its folder, ports and config, and the running process (restarted in place).
struct Edge {
    name: &'static str,
    home: PathBuf,
    setup: EdgeSetup,
    proc: Proc,
    runs: u32,
}

impl Edge {
    fn start(name: &'static str, home: &Path, setup: EdgeSetup) -> Edge {
        let proc = spawn_edge(home, &setup, &format!("{name}-run1"));
        Edge {
            name,
            home: home.to_path_buf(),
            setup,
            proc,
            runs: 1,
        }
    }

    /// Starts it again with the same config (so the same ports); a new log file per run.
    fn restart(&mut self) {
        self.runs += 1;
        let run = format!("{}-run{}", self.name, self.runs);
        self.proc = spawn_edge(&self.home, &self.setup, &run);
    }

    fn audit(&self) -> PathBuf {
        self.home.join("audit.jsonl")
    }
}

fn spawn_edge(home: &Path, setup: &EdgeSetup, run: &str) -> Proc {
    let mut p = Proc::spawn(
        run,
        home,
        Command::new(bin("underpass-edge"))
            .arg("--config")
            .arg(&setup.config)
            .env("RUST_LOG", "info,underpass_edge=debug"),
    );
    p.wait_for_log("tunnel listener up", Duration::from_secs(20));
    p
}

/// One connector, restarted in place like an [`Edge`].
struct Connector {
    name: &'static str,
    home: PathBuf,
    config: PathBuf,
    proc: Proc,
    runs: u32,
}

impl Connector {
    fn restart(&mut self) {
        self.runs += 1;
        let run = format!("{}-run{}", self.name, self.runs);
        self.proc = start_connector(&self.home, &run, &self.config);
    }
}

/// `/readyz` of `setup`: its status and JSON (`None` when it does not answer).
fn readyz(setup: &EdgeSetup) -> Option<(u16, Value)> {
    let r = http::get(&setup.admin("/readyz")).ok()?;
    Some((
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

/// The connectors `/readyz` lists a tunnel of.
fn connectors_listed(setup: &EdgeSetup) -> BTreeSet<String> {
    readyz(setup)
        .map(|(_, v)| {
            v["connectors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Waits until `/readyz` of every edge lists (`present`) or no longer lists a tunnel of
/// `connector`; returns how long that took.
fn wait_listed(edges: &[&EdgeSetup], connector: &str, present: bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < UP_WAIT {
        if edges
            .iter()
            .all(|e| connectors_listed(e).contains(connector) == present)
        {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let shown: Vec<Option<(u16, Value)>> = edges.iter().map(|e| readyz(e)).collect();
    panic!("{connector} listed != {present} within {UP_WAIT:?}; /readyz: {shown:?}");
}

/// SIGTERM, the way an orchestrator stops a pod.
fn sigterm(p: &Proc) {
    let status = Command::new("kill")
        .args(["-TERM", &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {} failed", p.pid());
}

/// Waits for `p` to exit after its SIGTERM; asserts it exited 0; returns how long it took.
fn wait_drained(p: &mut Proc, since: Instant) -> Duration {
    let status = p.wait_exit(EXIT_WAIT);
    let took = since.elapsed();
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM; log:\n{}",
        p.name,
        p.log_text()
    );
    took
}

/// Polls `/readyz` right after a SIGTERM until it says 503 `draining` (the signal takes a
/// moment to be handled); panics if the edge answers anything else after that or goes away
/// before it was seen draining.
fn expect_draining(e: &mut Edge) -> Duration {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(5) {
        match readyz(&e.setup) {
            Some((503, v)) if v["status"] == "draining" => return start.elapsed(),
            Some((200, _)) => {}
            other => seen.push(format!("{other:?}")),
        }
        if !e.proc.alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "{}: /readyz never said 503 draining after SIGTERM; seen: {seen:?}; log:\n{}",
        e.name,
        e.proc.log_text()
    );
}

/// The lines of `log` that say a tunnel ended (`marker`) for `subject` otherwise than closed
/// by its peer: a drain closes its tunnels itself, so none of them may be lost (found dead
/// by a timeout) instead.
fn not_closed_by_peer(log: &str, marker: &str, subject: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(marker) && l.contains(subject) && !l.contains("closed by peer"))
        .map(str::to_owned)
        .collect()
}

/// The number of `ok` lines an SDK loop has written so far (its log is `dir/<name>.log`).
fn sdk_ok_lines(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("i").is_some() && v["ok"] == true)
        .count()
}

/// The TypeScript (2025-11-25) and Python (`initialize` only) SDK loops of
/// `load::steady_sdk_loops`, with bounds above the whole run (its own stop at 2 minutes or
/// 5000 calls could end a loop before the last restart).
fn sdk_loops(peers: &Peers, dir: &Path, url: &str) -> Vec<SdkLoop> {
    let common = [
        "loop".to_owned(),
        "--calls=1000000".to_owned(),
        "--for-ms=900000".to_owned(),
        format!("--timeout-ms={}", DEADLINE.as_millis()),
        "--interval-ms=25".to_owned(),
    ];
    let args: Vec<&str> = common.iter().map(String::as_str).collect();
    let mut py_args = args.clone();
    py_args.push("--mode=legacy");
    vec![
        SdkLoop::start("ts-loop", dir, &mut ts_client(peers, url, &args)),
        SdkLoop::start("py-loop", dir, &mut py_client(peers, url, &py_args)),
    ]
}

/// Legacy (2025-11-25) sessions with `server-everything`, each opened once through the load
/// balancer and then used for `echo` calls until stopped: every call must reach the backend
/// session it was opened with, whichever edge and connector carry it.
struct Sessions {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<(String, Call)>>>,
    ok: Arc<Mutex<Vec<usize>>>,
}

impl Sessions {
    /// `epoch`: what the calls' start times count from.
    fn start(url: &str, count: usize, epoch: Instant) -> Sessions {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(Mutex::new(vec![0; count]));
        let started = epoch;
        let threads = (0..count)
            .map(|n| {
                let (url, stop, ok) = (url.to_owned(), stop.clone(), ok.clone());
                std::thread::spawn(move || session_loop(&url, n, &stop, &ok, started))
            })
            .collect();
        Sessions { stop, threads, ok }
    }

    /// Successful calls so far, per session.
    fn ok_counts(&self) -> Vec<usize> {
        self.ok.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Stops the sessions; returns every call (with its session id).
    fn finish(self) -> Vec<(String, Call)> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("session thread"))
            .collect()
    }
}

fn mcp_headers(sid: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        (
            "Accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        ),
    ];
    if let Some(sid) = sid {
        h.push(("Mcp-Session-Id".to_owned(), sid.to_owned()));
        h.push(("MCP-Protocol-Version".to_owned(), "2025-11-25".to_owned()));
    }
    h
}

/// Opens a session (set-up: it must work), then calls `echo` in it until `stop`.
fn session_loop(
    url: &str,
    n: usize,
    stop: &AtomicBool,
    ok: &Mutex<Vec<usize>>,
    started: Instant,
) -> Vec<(String, Call)> {
    let sid = open_session(url, n);
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (status, _, _) = load::post(
        url,
        &mcp_headers(Some(&sid)),
        note.to_string().as_bytes(),
        DEADLINE,
    )
    .unwrap_or_else(|o| panic!("session {n}: initialized: {o:?}"));
    assert_eq!(status, 202, "session {n}: notifications/initialized");
    let mut calls = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let message = format!("session {n} call {i}");
        let body = json!({"jsonrpc":"2.0","id":i + 1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message": message}}});
        let start = started.elapsed();
        let outcome = match load::post(
            url,
            &mcp_headers(Some(&sid)),
            body.to_string().as_bytes(),
            DEADLINE,
        ) {
            Err(o) => o,
            Ok((status, ct, body)) => {
                load::classify(status, &ct, &body, &format!("Echo: {message}"))
            }
        };
        if outcome == Outcome::Ok {
            if let Ok(mut v) = ok.lock() {
                v[n] += 1;
            }
        }
        calls.push((
            sid.clone(),
            Call {
                worker: n,
                trace_id: message,
                start,
                elapsed: started.elapsed() - start,
                outcome,
            },
        ));
        std::thread::sleep(Duration::from_millis(30));
    }
    calls
}

/// `initialize` with the raw client, for the `Mcp-Session-Id` header of its answer.
fn open_session(url: &str, n: usize) -> String {
    let r = http::mcp_post(
        url,
        &[],
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"rolling-restart","version":"1"}}}),
    )
    .unwrap_or_else(|e| panic!("session {n}: initialize: {e}"));
    assert_eq!(r.status, 200, "session {n}: initialize: {}", r.text());
    r.header("mcp-session-id")
        .unwrap_or_else(|| panic!("session {n}: no Mcp-Session-Id: {r:?}"))
        .to_owned()
}

/// One step of the rolling restart, for the report.
struct Step {
    what: String,
    /// When SIGTERM was sent, from the start of the load.
    at: Duration,
    /// SIGTERM to exit.
    drain: Duration,
    /// Start to tunnels (back) on every edge.
    up: Duration,
}

/// The test's folder, kept (and its path printed) when the test fails or
/// `UNDERPASS_KEEP_LOGS` is set, for the logs of every run of every process; removed
/// otherwise.
struct KeepOnFailure(Option<tempfile::TempDir>);

impl KeepOnFailure {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("folder").path()
    }
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if std::thread::panicking() || std::env::var_os("UNDERPASS_KEEP_LOGS").is_some() {
                println!("logs kept in {}", dir.keep().display());
            }
        }
    }
}

#[test]
fn rolling_restart_of_two_edges_and_two_connectors_fails_no_call() {
    let mut rng = Rng::from_env("rolling_restart_of_two_edges_and_two_connectors_fails_no_call");
    let peers = Peers::get();
    let dir = KeepOnFailure(Some(tempfile::tempdir().expect("tempdir")));
    let root = dir.path();
    let pki = Pki::init(&root.join("pki"));
    // One edge identity shared by both edges: they are replicas of one service behind one
    // name, as a Deployment's pods would be.
    pki.issue("edge", "edge");
    let key = root.join("session.key");
    run_ok(
        Command::new(bin("underpass-certs"))
            .args(["session-key", "--out"])
            .arg(&key),
    );

    // Backends. A real deployment runs its MCP servers once, and puts several connectors in
    // front of them for availability: so ONE instance of each, fronted by both connectors.
    // `server-everything` keeps legacy sessions in memory (a session continues only if its
    // calls reach that one process); the fault backend's `ok` mode answers the `echo` and
    // `sleep` calls our load driver and the SDK loops make (exact results, stateless).
    let (_everything, everything_url) = start_server_everything(root, &peers);
    let backend = FaultBackend::start(root);
    let services: [(&str, &[&str]); 2] = [("ok", &["dc1", "dc2"]), ("everything", &["dc1", "dc2"])];
    let extra = format!(
        "drain_grace = \"30s\"\n[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
         [audit]\nfile = \"audit.jsonl\"\n[sessions]\nkeys = [{:?}]\n",
        key.display().to_string()
    );
    let mut edges: Vec<Edge> = ["e1", "e2"]
        .into_iter()
        .map(|name| {
            let home = root.join(name);
            std::fs::create_dir_all(&home).expect("edge folder");
            std::os::unix::fs::symlink(root.join("pki"), home.join("pki")).expect("pki link");
            let setup = EdgeSetup::write(&home, false, &services, &extra);
            Edge::start(name, &home, setup)
        })
        .collect();
    let tunnel_addrs: Vec<String> = edges
        .iter()
        .map(|e| format!("\"127.0.0.1:{}\"", e.setup.tunnel_port))
        .collect();

    let mut connectors: Vec<Connector> = ["dc1", "dc2"]
        .into_iter()
        .map(|name| {
            let home = root.join(name);
            std::fs::create_dir_all(&home).expect("connector folder");
            let (cert, key) = pki.issue("connector", name);
            let config = write_connector_config(
                &home,
                "connector.toml",
                name,
                edges[0].setup.tunnel_port,
                ConnectorPki {
                    cert: &cert,
                    key: &key,
                    ca: &pki.ca(),
                },
                &[("ok", &backend.url("ok")), ("everything", &everything_url)],
            );
            let text = std::fs::read_to_string(&config).expect("connector config");
            let text = text.replacen(
                &format!("edges = [\"127.0.0.1:{}\"]", edges[0].setup.tunnel_port),
                &format!("edges = [{}]", tunnel_addrs.join(", ")),
                1,
            );
            std::fs::write(&config, format!("drain_grace = \"30s\"\n{text}"))
                .expect("write connector config");
            let proc = start_connector(&home, &format!("{name}-run1"), &config);
            Connector {
                name,
                home,
                config,
                proc,
                runs: 1,
            }
        })
        .collect();
    {
        let setups: Vec<&EdgeSetup> = edges.iter().map(|e| &e.setup).collect();
        wait_listed(&setups, "dc1", true);
        wait_listed(&setups, "dc2", true);
    }

    let lb = Lb::start(
        edges
            .iter()
            .map(|e| LbBackend {
                addr: format!("127.0.0.1:{}", e.setup.client_port)
                    .parse()
                    .expect("address"),
                readyz: e.setup.admin("/readyz"),
            })
            .collect(),
    );
    lb.wait_ready(Duration::from_secs(10));
    let ok_url = lb.url("/mcp/ok");
    let everything_url_lb = lb.url("/mcp/everything");

    // Steady load through the load balancer only.
    let mut plan = Plan::new(&ok_url);
    plan.workers = 4;
    plan.deadline = DEADLINE;
    // The drivers' times (and the steps') count from here.
    let epoch = Instant::now();
    let load = Load::start(&plan, &mut rng);
    let sdk = sdk_loops(&peers, root, &ok_url);
    let sessions = Sessions::start(&everything_url_lb, SESSIONS, epoch);
    load.wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served before the restarts");
    let warm = Instant::now();
    while Instant::now() < warm + DEADLINE
        && !(sessions.ok_counts().iter().all(|&n| n > 0)
            && ["ts-loop", "py-loop"]
                .iter()
                .all(|n| sdk_ok_lines(root, n) > 0))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "warm: sessions ok {:?}, sdk ok ts {} py {}",
        sessions.ok_counts(),
        sdk_ok_lines(root, "ts-loop"),
        sdk_ok_lines(root, "py-loop")
    );

    let rolling = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    // Tunnels a drain let die instead of closing them, as their other end logged them.
    let mut lost: Vec<String> = Vec::new();
    for (i, e) in edges.iter_mut().enumerate() {
        let sent = Instant::now();
        sigterm(&e.proc);
        let seen = expect_draining(e);
        let drain = wait_drained(&mut e.proc, sent);
        let restarted = Instant::now();
        e.restart();
        let setup = [&e.setup];
        wait_listed(&setup, "dc1", true);
        wait_listed(&setup, "dc2", true);
        let up = restarted.elapsed();
        // As a rolling update does, the next pod is stopped only once this one is seen
        // ready where it matters: by the load balancer.
        lb.wait_backend(i, UP_WAIT);
        let subject = format!("edge=127.0.0.1:{} ", e.setup.tunnel_port);
        for c in &connectors {
            lost.extend(
                not_closed_by_peer(&c.proc.log_text(), "tunnel closed", &subject)
                    .into_iter()
                    .map(|l| format!("{} drained, {} logged: {l}", e.name, c.proc.name)),
            );
        }
        println!(
            "{}: /readyz said draining {} after SIGTERM, exited 0 after {}, tunnels of dc1 \
             and dc2 back {} after its start",
            e.name,
            ms(seen),
            ms(drain),
            ms(up)
        );
        steps.push(Step {
            at: sent - epoch,
            what: format!("edge {}", e.name),
            drain,
            up,
        });
    }
    for c in connectors.iter_mut() {
        let setups: Vec<&EdgeSetup> = edges.iter().map(|e| &e.setup).collect();
        let sent = Instant::now();
        sigterm(&c.proc);
        let drain = wait_drained(&mut c.proc, sent);
        // Its tunnels closed with it: waiting for them to be gone first makes sure the
        // tunnels awaited next are the new ones.
        let gone = wait_listed(&setups, c.name, false);
        let subject = format!("connector={}", c.name);
        for e in &edges {
            lost.extend(
                not_closed_by_peer(&e.proc.log_text(), "tunnel down", &subject)
                    .into_iter()
                    .map(|l| format!("{} drained, {} logged: {l}", c.name, e.proc.name)),
            );
        }
        let restarted = Instant::now();
        c.restart();
        wait_listed(&setups, c.name, true);
        let up = restarted.elapsed();
        println!(
            "{}: exited 0 after {} from SIGTERM, its tunnels gone from both edges {} after \
             its exit, back {} after its start",
            c.name,
            ms(drain),
            ms(gone),
            ms(up)
        );
        steps.push(Step {
            at: sent - epoch,
            what: format!("connector {}", c.name),
            drain,
            up,
        });
    }
    let rolled = rolling.elapsed();
    // The drivers' progress before the tail, to show they kept working after the last step.
    let before_tail = (
        load.count(),
        sessions.ok_counts(),
        sdk_ok_lines(root, "ts-loop"),
        sdk_ok_lines(root, "py-loop"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let after_tail = (
        sessions.ok_counts(),
        sdk_ok_lines(root, "ts-loop"),
        sdk_ok_lines(root, "py-loop"),
    );

    let calls = load.finish();
    let session_calls = sessions.finish();
    let sdk: Vec<(String, Vec<SdkCall>)> = sdk
        .into_iter()
        .map(|l| (l.name.clone(), l.finish(DEADLINE * 2)))
        .collect();
    let stats = lb.stats();

    println!("rolling restart took {} in all", ms(rolled));
    for s in &steps {
        println!(
            "  {} (SIGTERM at {} into the load): drain {}, back up {}",
            s.what,
            ms(s.at),
            ms(s.drain),
            ms(s.up)
        );
    }
    let slowest = |calls: &mut dyn Iterator<Item = &Call>| {
        calls
            .max_by_key(|c| c.elapsed)
            .map(|c| format!("{} (started at {})", ms(c.elapsed), ms(c.start)))
            .unwrap_or_default()
    };
    println!(
        "load driver: {} calls ({}), slowest {}",
        calls.len(),
        summarize(&calls),
        slowest(&mut calls.iter())
    );
    println!(
        "sessions: slowest call {}",
        slowest(&mut session_calls.iter().map(|(_, c)| c))
    );
    println!(
        "sessions: {} calls ({}), ok per session {:?}",
        session_calls.len(),
        summarize(
            &session_calls
                .iter()
                .map(|(_, c)| c.clone())
                .collect::<Vec<_>>()
        ),
        after_tail.0
    );
    for (name, calls) in &sdk {
        let ok = calls.iter().filter(|c| c.ok).count();
        let slowest = calls.iter().map(|c| c.ms).max().unwrap_or(0);
        println!(
            "{name}: {} calls, {ok} ok, slowest {slowest} ms",
            calls.len()
        );
    }
    println!(
        "load balancer: connections per edge {:?}, connects retried {}, dropped {}",
        stats.connections, stats.retried, stats.dropped
    );

    // Zero failed calls, in every driver.
    let failed: Vec<&Call> = calls.iter().filter(|c| c.outcome != Outcome::Ok).collect();
    let failed_sessions: Vec<&(String, Call)> = session_calls
        .iter()
        .filter(|(_, c)| c.outcome != Outcome::Ok)
        .collect();
    let failed_sdk: Vec<(&String, &SdkCall)> = sdk
        .iter()
        .flat_map(|(name, calls)| calls.iter().filter(|c| !c.ok).map(move |c| (name, c)))
        .collect();
    assert!(
        failed.is_empty() && failed_sessions.is_empty() && failed_sdk.is_empty(),
        "calls failed during the rolling restart:\nload driver: {failed:#?}\nsessions: \
         {failed_sessions:#?}\nSDK loops: {failed_sdk:#?}"
    );
    // Each drain closed every tunnel of the process drained (its peers saw them closed, not
    // lost).
    assert!(
        lost.is_empty(),
        "tunnels not closed by a drain:\n{}",
        lost.join("\n")
    );
    // Every driver went on after the last restart (and so through all of them).
    assert!(calls.len() > before_tail.0, "the load driver stalled");
    for (n, (before, after)) in before_tail.1.iter().zip(&after_tail.0).enumerate() {
        assert!(
            after > before,
            "session {n} made no progress after the last restart"
        );
    }
    assert!(
        after_tail.1 > before_tail.2,
        "the TypeScript SDK loop made no progress after the last restart"
    );
    assert!(
        after_tail.2 > before_tail.3,
        "the Python SDK loop made no progress after the last restart"
    );
    // The load balancer sent connections to both edges (or the edges' drain was not tried).
    assert!(stats.connections.iter().all(|&n| n > 0), "{stats:?}");
    // Each edge's audit log holds across its restart (the chain goes on in the same file).
    for e in &edges {
        let (code, out) = audit_verify(&e.audit());
        assert_eq!(code, 0, "{}: audit verify:\n{out}", e.name);
    }
    drop(lb);
    let _ = (&edges, &connectors);
}
