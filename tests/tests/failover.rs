//! High availability with the real binaries: several tunnels per connector and per edge
//! address, several connectors serving one service, new exchanges spread by load, and a
//! connector SIGKILLed under steady load (our own load driver and the official TypeScript and
//! Python SDK clients): its loss is detected and measured (printed, never asserted against a
//! clock), calls in flight on it end with a clear 502 instead of hanging, no call started
//! after the loss was detected fails, and calls that are safe to repeat are sent again on the
//! surviving connector.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use underpass_tests::faults::{audit_by_request, audit_verify, ms, unaudited, FaultBackend, Rng};
use underpass_tests::load::{
    call_tool, steady_sdk_loops, summarize, Call, Load, Outcome, Plan, SdkCall,
};
use underpass_tests::*;

/// Per-call deadline of the load: far above the 2 s in which a dead tunnel is detected.
const DEADLINE: Duration = Duration::from_secs(25);

const EDGE_EXTRA: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
                          [audit]\nfile = \"audit.jsonl\"\n";

/// An edge and the connectors serving its services, each connector with a fault backend of
/// its own (in its own folder, so each records what reached it). Field order is drop order.
struct Ha {
    connectors: Vec<Proc>,
    backends: Vec<FaultBackend>,
    edge: Proc,
    setup: EdgeSetup,
    peers: Peers,
    dir: tempfile::TempDir,
}

/// One connector of an [`Ha`]: its name, the fault-backend mode it serves every service
/// with, and the `tunnels_per_edge` line (empty for the default).
struct Spec<'a> {
    name: &'a str,
    mode: &'a str,
    tunnels: &'a str,
}

/// An edge serving `services` (name, extra keys of its `[[services]]` entry) through every
/// connector of `specs`.
fn ha(services: &[(&str, &str)], specs: &[Spec<'_>]) -> Ha {
    let peers = Peers::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
    let granted: Vec<(&str, &[&str])> = services.iter().map(|(s, _)| (*s, &names[..])).collect();
    let setup = EdgeSetup::write(dir.path(), false, &granted, EDGE_EXTRA);
    let mut text = std::fs::read_to_string(&setup.config).expect("edge.toml");
    let list: Vec<String> = names.iter().map(|c| format!("\"{c}\"")).collect();
    for (service, keys) in services.iter().filter(|(_, k)| !k.is_empty()) {
        let entry = format!("name = \"{service}\"\nconnectors = [{}]\n", list.join(", "));
        text = text.replacen(&entry, &format!("{entry}{keys}\n"), 1);
    }
    std::fs::write(&setup.config, text).expect("write edge.toml");
    let edge = setup.start(dir.path());
    let mut backends = Vec::new();
    let mut connectors = Vec::new();
    for spec in specs {
        let home = dir.path().join(spec.name);
        std::fs::create_dir_all(&home).expect("connector folder");
        let backend = FaultBackend::start_at(&home, free_port(), &[]);
        let (cert, key) = pki.issue("connector", spec.name);
        let urls: Vec<(&str, String)> = services
            .iter()
            .map(|(s, _)| (*s, backend.url(spec.mode)))
            .collect();
        let backends_of: Vec<(&str, &str)> = urls.iter().map(|(s, u)| (*s, u.as_str())).collect();
        let config = write_connector_config(
            &home,
            "connector.toml",
            spec.name,
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &backends_of,
        );
        prepend_top_level(&config, spec.tunnels);
        connectors.push(start_connector(dir.path(), spec.name, &config));
        backends.push(backend);
    }
    Ha {
        connectors,
        backends,
        edge,
        setup,
        peers,
        dir,
    }
}

/// `/readyz` as JSON (Null when it does not answer).
fn readyz(setup: &EdgeSetup) -> Value {
    http::get(&setup.admin("/readyz"))
        .ok()
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .unwrap_or(Value::Null)
}

/// Waits until `/readyz` counts `n` tunnels; returns how long that took.
fn wait_tunnels(setup: &EdgeSetup, n: u64, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < timeout {
        last = readyz(setup);
        if last["tunnels"].as_u64() == Some(n) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("/readyz never counted {n} tunnels within {timeout:?}; last: {last}");
}

fn audit_path(h: &Ha) -> PathBuf {
    h.dir.path().join("audit.jsonl")
}

/// Long `sleep` calls under way: their trace ids, and their answers to come.
type Sleepers = Vec<(String, std::thread::JoinHandle<Outcome>)>;

/// `count` `sleep` calls of `ms` each on `url`, started at once.
fn sleepers(url: &str, count: usize, ms: u64, rng: &mut Rng) -> Sleepers {
    (0..count)
        .map(|i| {
            let plan = Plan::new(url);
            let trace = format!("{:016x}{:016x}", rng.next_u64() | 1, 0xa000 + i);
            let t = trace.clone();
            (
                trace,
                std::thread::spawn(move || call_tool(&plan, &t, Some(ms))),
            )
        })
        .collect()
}

fn answers(sleepers: Sleepers) -> Vec<(String, Outcome)> {
    sleepers
        .into_iter()
        .map(|(trace, t)| (trace, t.join().expect("sleeper")))
        .collect()
}

/// The trace ids of the requests that reached `backend`.
fn traces_at(backend: &FaultBackend) -> BTreeSet<String> {
    backend
        .records()
        .iter()
        .filter(|r| r["event"] == "request")
        .filter_map(|r| r["trace_id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until every sleeper reached one backend or the other.
fn wait_arrived(h: &Ha, sleepers: &Sleepers) {
    for _ in 0..1000 {
        let seen: BTreeSet<String> = h.backends.iter().flat_map(traces_at).collect();
        if sleepers.iter().all(|(t, _)| seen.contains(t)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the sleep calls did not all reach a backend within 10 s");
}

fn is_tunnel_502(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::RpcError {
            status: 502,
            code: -31502,
            ..
        }
    )
}

/// Two connectors (two tunnels each, the default) serve `ok` and `retry` (whose `echo` and
/// `sleep` the operator lists as safe to repeat). Under steady load, `dc2` is SIGKILLed.
#[test]
fn sigkill_of_one_of_two_connectors_under_load() {
    let mut rng = Rng::from_env("sigkill_of_one_of_two_connectors_under_load");
    let mut h = ha(
        &[("ok", ""), ("retry", "retry_tools = [\"echo\", \"sleep\"]")],
        &[
            Spec {
                name: "dc1",
                mode: "ok",
                tunnels: "",
            },
            Spec {
                name: "dc2",
                mode: "ok",
                tunnels: "",
            },
        ],
    );
    wait_tunnels(&h.setup, 4, Duration::from_secs(30));
    let (ok_url, retry_url) = (h.setup.url("ok"), h.setup.url("retry"));
    let mut plan = Plan::new(&ok_url);
    plan.workers = 3;
    plan.deadline = DEADLINE;
    let load = Load::start(&plan, &mut rng);
    let mut retry_plan = plan.clone();
    retry_plan.url = retry_url.clone();
    let retry_load = Load::start(&retry_plan, &mut rng);
    let sdk = steady_sdk_loops(&h.peers, h.dir.path(), &ok_url, DEADLINE);
    load.wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served before the kill");
    retry_load
        .wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served on `retry` before the kill");

    // Calls certain to be in flight at the kill, spread over both connectors: 8 s each.
    let sleep_ms = 8000;
    let ok_sleepers = sleepers(&ok_url, 8, sleep_ms, &mut rng);
    let retry_sleepers = sleepers(&retry_url, 8, sleep_ms, &mut rng);
    wait_arrived(&h, &ok_sleepers);
    wait_arrived(&h, &retry_sleepers);
    std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(800)));

    let on_dc2_before = traces_at(&h.backends[1]);
    let (killed_at, killed, retry_killed) = (Instant::now(), load.now(), retry_load.now());
    h.connectors[1].kill();
    let detection = wait_tunnels(&h.setup, 2, Duration::from_secs(20));
    let (detected, retry_detected) = (load.now(), retry_load.now());
    println!(
        "dc2 SIGKILLed; /readyz dropped its 2 tunnels {} later (polled every 10 ms)",
        ms(detection)
    );
    std::thread::sleep(Duration::from_secs(3));
    let calls = load.finish();
    let retry_calls = retry_load.finish();
    let sdk: Vec<(String, Vec<SdkCall>)> = sdk
        .into_iter()
        .map(|l| (l.name.clone(), l.finish(DEADLINE * 4)))
        .collect();
    let ok_sleepers = answers(ok_sleepers);
    let retry_sleepers = answers(retry_sleepers);
    let waited = killed_at.elapsed();

    println!("ok: {}", summarize(&calls));
    println!("retry: {}", summarize(&retry_calls));
    for (name, calls) in &sdk {
        let ok = calls.iter().filter(|c| c.ok).count();
        let errors: BTreeSet<&str> = calls
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.error.as_str())
            .collect();
        println!("{name}: {} calls, {ok} ok, errors: {errors:?}", calls.len());
        assert!(
            calls.iter().all(|c| c.kind != "timeout"),
            "{name}: calls hit their deadline: {calls:#?}"
        );
        assert!(ok > 0, "{name}: no call succeeded");
    }

    // No hang: every call ended with a result or a clear error.
    for (what, calls) in [("ok", &calls), ("retry", &retry_calls)] {
        let unclear: Vec<&Call> = calls.iter().filter(|c| !c.outcome.is_clear()).collect();
        assert!(unclear.is_empty(), "{what}: calls that hung: {unclear:#?}");
    }
    // On `ok` (nothing retried): whatever failed was in flight on, or sent to, the dead
    // tunnels before their loss was detected, and failed with the tunnel's 502.
    let failed: Vec<&Call> = calls.iter().filter(|c| c.outcome != Outcome::Ok).collect();
    for c in &failed {
        assert!(is_tunnel_502(&c.outcome), "not the tunnel's 502: {c:#?}");
        assert!(
            c.start < detected,
            "a call started {} after the loss was detected failed: {c:#?}",
            ms(c.start.saturating_sub(detected))
        );
    }
    let late: Vec<String> = failed
        .iter()
        .map(|c| ms(c.end().saturating_sub(killed)))
        .collect();
    println!(
        "ok: {} calls failed (502), ended this long after the kill: {late:?}",
        failed.len()
    );
    // On `retry`: nothing failed at all.
    let retry_failed: Vec<&Call> = retry_calls
        .iter()
        .filter(|c| c.outcome != Outcome::Ok)
        .collect();
    assert!(
        retry_failed.is_empty(),
        "calls safe to repeat failed (kill at {}, detected at {}): {retry_failed:#?}",
        ms(retry_killed),
        ms(retry_detected)
    );

    // The long calls: on dc1 they finished; on dc2, the `ok` ones ended with the 502 (long
    // before the backend would have answered) and the `retry` ones were sent again to dc1.
    let on_dc1 = traces_at(&h.backends[0]);
    let mut cut = 0;
    for (trace, outcome) in &ok_sleepers {
        if on_dc2_before.contains(trace) {
            cut += 1;
            assert!(is_tunnel_502(outcome), "{trace} on dc2: {outcome:?}");
        } else {
            assert_eq!(*outcome, Outcome::Ok, "{trace} on dc1");
        }
    }
    assert!(
        cut > 0,
        "no long call went to dc2: the load is not spread ({ok_sleepers:?})"
    );
    let audit = audit_by_request(&audit_path(&h));
    let mut retried = 0;
    for (trace, outcome) in &retry_sleepers {
        assert_eq!(*outcome, Outcome::Ok, "{trace} on `retry`");
        if !on_dc2_before.contains(trace) {
            continue;
        }
        retried += 1;
        assert!(on_dc1.contains(trace), "{trace} was not sent again to dc1");
        let lines: Vec<&Value> = audit
            .values()
            .flatten()
            .filter(|l| l["trace_id"] == trace.as_str())
            .collect();
        let dispatched: Vec<&&Value> = lines
            .iter()
            .filter(|l| l["outcome"] == "dispatched")
            .collect();
        assert_eq!(dispatched.len(), 2, "one line per attempt: {lines:#?}");
        assert!(dispatched[0].get("retried").is_none(), "{lines:#?}");
        assert_eq!(dispatched[1]["retried"], 1, "{lines:#?}");
        let outcome: Vec<&&Value> = lines
            .iter()
            .filter(|l| l["outcome"] != "dispatched")
            .collect();
        assert_eq!(outcome.len(), 1, "{lines:#?}");
        assert_eq!(outcome[0]["outcome"], "ok", "{lines:#?}");
        assert_eq!(outcome[0]["retried"], 1, "{lines:#?}");
    }
    assert!(retried > 0, "no long call on `retry` went to dc2");
    // Tool calls on `ok` are never sent twice (the SDKs' `initialize` and `tools/list` may
    // be: they are safe to repeat).
    let twice: Vec<&Vec<Value>> = audit
        .values()
        .filter(|lines| {
            lines
                .iter()
                .any(|l| l["service"] == "ok" && l["mcp_method"] == "tools/call")
                && lines
                    .iter()
                    .filter(|l| l["outcome"] == "dispatched")
                    .count()
                    > 1
        })
        .collect();
    assert!(
        twice.is_empty(),
        "tool calls on `ok` sent twice: {twice:#?}"
    );
    println!(
        "long calls: {cut} of 8 on `ok` cut by the kill with a 502, {retried} of 8 on `retry` \
         sent again to dc1 and answered; {} in all",
        ms(waited)
    );

    for b in &h.backends {
        let missing = unaudited(b, &audit_path(&h));
        assert!(missing.is_empty(), "unaudited requests: {missing:?}");
    }
    let (code, out) = audit_verify(&audit_path(&h));
    assert_eq!(code, 0, "audit verify:\n{out}");
    let _ = &h.edge;
}

/// New calls avoid a connector whose backend is slow: dc1 answers every call 200 ms late,
/// dc2 at once; with one tunnel each, the calls counted at each backend show where they went
/// (a blind round robin sends half to each).
/// An event stream under way when its connector dies ends with the JSON-RPC error answering
/// the request (after the events already relayed), not as a broken stream the client has to
/// make sense of.
#[test]
fn an_event_stream_cut_by_a_dead_connector_ends_with_the_error_answer() {
    let mut h = ha(
        &[("stalls", "")],
        &[Spec {
            name: "dc1",
            mode: "sse-stall",
            tunnels: "",
        }],
    );
    h.setup.wait_ready("stalls", Duration::from_secs(30));
    let url = h.setup.url("stalls");
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 41, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x"}, "_meta": {"progressToken": 1}}
    });
    let answer = std::thread::spawn(move || {
        http::mcp_post(&url, &[("MCP-Protocol-Version", "2025-11-25")], &call)
    });
    // The progress event has passed the edge once the backend recorded the request.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.backends[0].records().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the call never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    h.connectors[0].kill();
    let reply = answer.join().expect("client thread").expect("an answer");
    println!(
        "event stream cut by SIGKILL of its connector: ended {} after the kill",
        ms(killed.elapsed())
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let messages = http::messages(&reply);
    assert_eq!(
        messages.len(),
        2,
        "the progress event, then the error answer: {}",
        reply.text()
    );
    assert_eq!(
        messages[0]["method"], "notifications/progress",
        "{messages:?}"
    );
    assert_eq!(messages[1]["id"], 41, "{messages:?}");
    assert_eq!(messages[1]["error"]["code"], -31502, "{messages:?}");
    assert!(
        messages[1]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("may or may not have run")),
        "{messages:?}"
    );
}

#[test]
fn new_calls_go_mostly_to_the_faster_connector() {
    let mut rng = Rng::from_env("new_calls_go_mostly_to_the_faster_connector");
    let h = ha(
        &[("spread", "")],
        &[
            Spec {
                name: "dc1",
                mode: "slow",
                tunnels: "tunnels_per_edge = 1",
            },
            Spec {
                name: "dc2",
                mode: "ok",
                tunnels: "tunnels_per_edge = 1",
            },
        ],
    );
    wait_tunnels(&h.setup, 2, Duration::from_secs(30));
    let mut plan = Plan::new(&h.setup.url("spread"));
    plan.workers = 4;
    plan.sleep_every = 0;
    let load = Load::start(&plan, &mut rng);
    std::thread::sleep(Duration::from_secs(4));
    let calls = load.finish();
    let count = |b: &FaultBackend| {
        b.records()
            .iter()
            .filter(|r| r["event"] == "request" && r["method"] == "tools/call")
            .count()
    };
    let (slow, fast) = (count(&h.backends[0]), count(&h.backends[1]));
    println!(
        "spreading: {} calls ({}); slow connector served {slow}, fast one {fast}",
        calls.len(),
        summarize(&calls)
    );
    assert!(calls.iter().all(|c| c.outcome == Outcome::Ok));
    assert!(
        slow * 4 < fast,
        "the slow connector got {slow} calls, the fast one {fast}"
    );
}

/// `tunnels_per_edge`: the default keeps two tunnels to an edge; a name that resolves to
/// 127.0.0.1 and ::1 gets tunnels to both addresses.
#[test]
fn tunnels_to_every_address_of_an_edge() {
    let h = ha(
        &[("ok", "")],
        &[Spec {
            name: "dc1",
            mode: "ok",
            tunnels: "",
        }],
    );
    wait_tunnels(&h.setup, 2, Duration::from_secs(30));
    // The two are independent: both are up, each dialed on its own.
    let log = h.connectors[0].log_text();
    assert!(log.contains("slot=1") && log.contains("slot=2"), "{log}");
    // And both carry calls.
    let url = h.setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.sleep_every = 0;
    for i in 0..20 {
        assert_eq!(
            call_tool(&plan, &format!("{:032x}", 0xbeef00 + i), None),
            Outcome::Ok
        );
    }
    drop(h);

    // A name with an IPv4 and an IPv6 address, in a hosts file only the connector sees (its
    // own mount namespace), and an edge listening on both.
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], EDGE_EXTRA);
    let port = setup.tunnel_port;
    setup.set_tunnel_host("[::]");
    let _edge = setup.start(dir.path());
    let backend = FaultBackend::start(dir.path());
    let config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("ok", &backend.url("ok"))],
    );
    let name = "edge.underpass.test";
    set_connector_edges(&config, &[format!("{name}:{port}")]);
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 {name}\n::1 {name}\n")).expect("hosts");
    let resolved = in_own_hosts(&hosts, &mut Command::new("getent"), &["ahosts", name]);
    println!("{name} resolves to:\n{resolved}");
    assert!(
        resolved.contains("127.0.0.1") && resolved.contains("::1"),
        "the test's hosts file is not in force: {resolved}"
    );
    let mut connector = Proc::spawn(
        "connector-dual",
        dir.path(),
        Command::new("unshare")
            .args(["--mount", "--", "sh", "-c", HOSTS_SCRIPT, "sh"])
            .arg(&hosts)
            .arg(bin("underpass-connector"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,underpass_connector=debug"),
    );
    wait_tunnels(&setup, 4, Duration::from_secs(30));
    connector.wait_for_log_count("tunnel up", 4, Duration::from_secs(10));
    let log = connector.log_text();
    let ups: Vec<&str> = log.lines().filter(|l| l.contains("tunnel up")).collect();
    for addr in [
        format!("addr=127.0.0.1:{port}"),
        format!("addr=[::1]:{port}"),
    ] {
        assert_eq!(
            ups.iter().filter(|l| l.contains(&addr)).count(),
            2,
            "two tunnels to {addr}: {ups:#?}"
        );
    }
    let plan = Plan::new(&setup.url("ok"));
    assert_eq!(
        call_tool(&plan, &format!("{:032x}", 0xd0a1), None),
        Outcome::Ok
    );
}

/// Bind-mounts `$1` over /etc/hosts (in the mount namespace `unshare --mount` made) and runs
/// the rest of the arguments in its place.
const HOSTS_SCRIPT: &str = "mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"";

/// Runs `cmd args` with `hosts` as its /etc/hosts; its standard output.
fn in_own_hosts(hosts: &Path, cmd: &mut Command, args: &[&str]) -> String {
    let program = cmd.get_program().to_owned();
    run_ok(
        Command::new("unshare")
            .args(["--mount", "--", "sh", "-c", HOSTS_SCRIPT, "sh"])
            .arg(hosts)
            .arg(program)
            .args(args),
    )
}
