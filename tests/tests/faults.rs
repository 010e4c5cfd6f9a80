//! Fault injection with the real binaries under load: the edge, the connector and the backend
//! SIGKILLed at random points of a steady stream of calls (the project's own HTTP client and the
//! official TypeScript and Python SDK clients), and backends that stall, close mid-response or
//! answer garbage. For each fault:
//! - every call ends with a result or a clear error before its deadline (no hang);
//! - nothing that reached the backend is missing from the audit log (the backend records the
//!   `x-underpass-request-id` of each request it read; the audit lines carry `request_id`);
//! - recovery is measured and printed (`--nocapture` shows it), never asserted against a clock.
//!
//! Random points come from a seed printed at the start; `UNDERPASS_FAULT_SEED=N` replays it.

use std::process::Command;
use std::time::Duration;

use underpass_tests::faults::{audit_by_request, audit_verify, ms, unaudited, FaultBackend, Rng};
use underpass_tests::load::{
    steady_sdk_loops, summarize, Call, Load, Outcome, Plan, SdkCall, SdkLoop,
};
use underpass_tests::*;

const EDGE_EXTRA: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
                          [audit]\nfile = \"audit.jsonl\"\n";

/// Per-call deadline: far above the tunnel's 1.8 s idle timeout (the longest a call may wait to
/// learn that its tunnel died), well below "hung".
const DEADLINE: Duration = Duration::from_secs(25);

struct Stack {
    backend: FaultBackend,
    d: Deployment,
    peers: Peers,
}

/// Edge + connector `dc1` serving one service per fault-backend mode (service name = mode).
fn stack(modes: &[&str], connector_keys: &str) -> Stack {
    stack_with(modes, connector_keys, EDGE_EXTRA)
}

fn stack_with(modes: &[&str], connector_keys: &str, edge_extra: &str) -> Stack {
    let peers = Peers::get();
    let port = free_port();
    let urls: Vec<String> = modes
        .iter()
        .map(|m| FaultBackend::url_at(port, m))
        .collect();
    let services: Vec<(&str, &str, &str)> = modes
        .iter()
        .zip(&urls)
        .map(|(m, u)| (*m, u.as_str(), connector_keys))
        .collect();
    let d = Deployment::start_services(false, &services, edge_extra, |_| {});
    let backend = FaultBackend::start_at(d.path(), port, &[]);
    Stack { backend, d, peers }
}

fn audit_path(s: &Stack) -> std::path::PathBuf {
    s.d.path().join("audit.jsonl")
}

fn start_edge(s: &Stack, name: &str) -> Proc {
    let mut p = Proc::spawn(
        name,
        s.d.path(),
        Command::new(bin("underpass-edge"))
            .arg("--config")
            .arg(&s.d.edge_setup.config)
            .env("RUST_LOG", "info,underpass_edge=debug"),
    );
    p.wait_for_log("tunnel listener up", Duration::from_secs(20));
    p
}

fn start_connector_named(s: &Stack, name: &str) -> Proc {
    start_connector(s.d.path(), name, &s.d.connector_config)
}

fn finish_sdk(loops: Vec<SdkLoop>) -> Vec<(String, Vec<SdkCall>)> {
    loops
        .into_iter()
        .map(|l| {
            let name = l.name.clone();
            (name, l.finish(DEADLINE * 4))
        })
        .collect()
}

/// The checks every fault test makes at the end.
fn assert_no_hang_and_all_audited(
    s: &Stack,
    calls: &[Call],
    sdk: &[(String, Vec<SdkCall>)],
    edge_restarts: &[Duration],
) {
    let hung: Vec<&Call> = calls.iter().filter(|c| !c.outcome.is_clear()).collect();
    assert!(
        hung.is_empty(),
        "calls without a result or a clear error: {hung:#?}\n(all: {})",
        summarize(calls)
    );
    for (name, sdk_calls) in sdk {
        let hangs: Vec<&SdkCall> = sdk_calls.iter().filter(|c| c.kind == "timeout").collect();
        assert!(
            hangs.is_empty(),
            "{name}: calls hit their deadline: {hangs:#?}"
        );
        assert!(
            sdk_calls.iter().any(|c| c.ok),
            "{name}: no call succeeded: {sdk_calls:#?}"
        );
    }
    // Write-ahead: a request's `dispatched` line is on the log before it goes down a tunnel,
    // so whatever reached the backend is in the audit log, kills of the edge included.
    let missing = unaudited(&s.backend, &audit_path(s));
    let records = s.backend.records();
    let missing_records: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| {
            r["request_id"]
                .as_str()
                .is_some_and(|id| missing.iter().any(|m| m == id))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} request(s) reached the backend but are not in the audit log: {missing_records:#?}",
        missing.len()
    );
    // The line with the outcome is handed to the writer when the answer has gone out, and
    // appended a moment later: a SIGKILL in between loses it (the `dispatched` line stays).
    // So each kill may cost, per client (one call at a time each), the outcome line of the
    // call it had in flight and of the last call it saw succeed before the edge was back.
    let lost_at_kill = |c: &Call| {
        matches!(c.outcome, Outcome::Broken(_))
            || edge_restarts.iter().any(|&back| {
                calls
                    .iter()
                    .filter(|o| o.worker == c.worker && o.outcome == Outcome::Ok)
                    .filter(|o| o.end() <= back)
                    .max_by_key(|o| o.end())
                    .is_some_and(|last| last.trace_id == c.trace_id)
            })
    };
    if !edge_restarts.is_empty() {
        let audit = audit_by_request(&audit_path(s));
        let without_outcome = audit
            .values()
            .filter(|lines| lines.iter().all(|l| l["outcome"] == "dispatched"))
            .count();
        println!(
            "  dispatched but without an outcome line (in flight at a kill): {without_outcome}"
        );
    }
    // Every call the client saw succeed has an `ok` line (found by its trace id).
    let audit = audit_by_request(&audit_path(s));
    let ok_traces: std::collections::BTreeSet<&str> = audit
        .values()
        .flatten()
        .filter(|l| l["outcome"] == "ok")
        .filter_map(|l| l["trace_id"].as_str())
        .collect();
    let unrecorded: Vec<&Call> = calls
        .iter()
        .filter(|c| c.outcome == Outcome::Ok && !ok_traces.contains(c.trace_id.as_str()))
        .filter(|c| edge_restarts.is_empty() || !lost_at_kill(c))
        .collect();
    assert!(
        unrecorded.is_empty(),
        "calls served to the client without an `ok` audit line: {unrecorded:#?}"
    );
}

fn print_sdk(sdk: &[(String, Vec<SdkCall>)]) {
    for (name, calls) in sdk {
        let ok = calls.iter().filter(|c| c.ok).count();
        let mut errors: Vec<&str> = calls
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.error.as_str())
            .collect();
        errors.dedup();
        errors.truncate(4);
        println!(
            "  {name}: {} calls, {ok} ok, {} errors (first: {errors:?})",
            calls.len(),
            calls.len() - ok
        );
    }
}

/// What a kill test kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Edge,
    Connector,
    Backend,
}

/// SIGKILLs `target` three times at random points of a steady stream of calls (3 workers of
/// our own client, the TypeScript and Python SDK clients), starting it again after a random
/// pause; measures how long until calls are served again, and until every call is.
fn sigkill_under_load(target: Target, name: &str) {
    let mut rng = Rng::from_env(name);
    let mut s = stack(&["ok"], "");
    let url = s.d.edge_setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.workers = 3;
    let load = Load::start(&plan, &mut rng);
    let sdk = steady_sdk_loops(&s.peers, s.d.path(), &url, DEADLINE);
    load.wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served before the first fault");
    let (mut first, mut steady, mut edge_restarts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=3 {
        std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(1200)));
        let killed = load.now();
        match target {
            Target::Edge => s.d.edge.kill(),
            Target::Connector => s.d.connector.kill(),
            Target::Backend => s.backend.kill(),
        }
        std::thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(300)));
        let restarted = load.now();
        if target == Target::Edge {
            edge_restarts.push(restarted);
        }
        match target {
            Target::Edge => s.d.edge = start_edge(&s, &format!("edge-{round}")),
            Target::Connector => {
                s.d.connector = start_connector_named(&s, &format!("connector-{round}"))
            }
            Target::Backend => s.backend.restart(),
        }
        let served = load
            .wait_ok_after(restarted, DEADLINE)
            .unwrap_or_else(|| panic!("round {round}: no call served after the restart"));
        let last_failure = load
            .wait_steady(restarted, Duration::from_secs(1), DEADLINE * 2)
            .unwrap_or_else(|| panic!("round {round}: calls still failing long after the restart"));
        println!(
            "{name} round {round}: {target:?} SIGKILLed at {}, started again {} later; first \
             call served {} after the restart, the last call to fail started {} after it",
            ms(killed),
            ms(restarted - killed),
            ms(served.saturating_sub(restarted)),
            ms(last_failure.saturating_sub(restarted)),
        );
        first.push(ms(served.saturating_sub(restarted)));
        steady.push(ms(last_failure.saturating_sub(restarted)));
    }
    let calls = load.finish();
    let sdk = finish_sdk(sdk);
    println!("{name}: calls: {}", summarize(&calls));
    print_sdk(&sdk);
    println!("{name}: first call served after the restart: {first:?}; last failure: {steady:?}");
    assert_no_hang_and_all_audited(&s, &calls, &sdk, &edge_restarts);
    let (code, out) = audit_verify(&audit_path(&s));
    assert_eq!(code, 0, "audit verify after three kills:\n{out}");
}

#[test]
fn sigkill_of_the_edge_under_load() {
    sigkill_under_load(Target::Edge, "sigkill_of_the_edge_under_load");
}

#[test]
fn sigkill_of_the_connector_under_load() {
    sigkill_under_load(Target::Connector, "sigkill_of_the_connector_under_load");
}

#[test]
fn sigkill_of_the_backend_under_load() {
    sigkill_under_load(Target::Backend, "sigkill_of_the_backend_under_load");
}

/// A call the backend is still working on when the edge is SIGKILLed: its `dispatched` line
/// is on the audit log, written before the call went down the tunnel. With `write_ahead =
/// false` there is no line at all (the edge writes the outcome after the answer): the gap
/// the write-ahead line closes.
#[test]
fn a_call_in_flight_when_the_edge_is_killed_is_on_the_audit_log() {
    for write_ahead in [true, false] {
        let mut s = stack_with(
            &["stall"],
            "",
            &format!("{EDGE_EXTRA}write_ahead = {write_ahead}\n"),
        );
        let url = s.d.edge_setup.url("stall");
        let call = std::thread::spawn(move || {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                          "params": {"name": "echo", "arguments": {}}});
            http::mcp_post(&url, &[], &body)
        });
        let mut seen = s.backend.request_ids(Some("stall"));
        for _ in 0..1000 {
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            seen = s.backend.request_ids(Some("stall"));
        }
        let id = seen
            .into_iter()
            .next()
            .expect("the call reached the backend within 10 s");
        s.d.edge.kill();
        let answer = call.join().expect("client thread");
        assert!(
            answer.as_ref().map_or(true, |r| r.status != 200),
            "a call answered by a killed edge: {answer:?}"
        );
        let lines = audit_by_request(&audit_path(&s))
            .remove(&id)
            .unwrap_or_default();
        if write_ahead {
            assert_eq!(lines.len(), 1, "write_ahead: {lines:#?}");
            let l = &lines[0];
            assert_eq!(l["outcome"], "dispatched", "{l}");
            assert_eq!(l["mcp_method"], "tools/call", "{l}");
            assert_eq!(l["target"], "echo", "{l}");
            assert_eq!(l["decision"], "allow", "{l}");
            assert!(l.get("http_status").is_none(), "{l}");
        } else {
            assert!(lines.is_empty(), "no write-ahead, yet: {lines:#?}");
        }
        let (code, out) = audit_verify(&audit_path(&s));
        assert_eq!(code, 0, "audit verify after the kill:\n{out}");
    }
}

/// One mode of the misbehaving backend, driven by our own client (2 workers) and both SDK
/// clients (3 calls each), every call with a short deadline.
struct Misbehaviour {
    calls: Vec<Call>,
    sdk: Vec<(String, Vec<SdkCall>)>,
}

fn misbehave(s: &Stack, mode: &str, deadline: Duration) -> Misbehaviour {
    let url = s.d.edge_setup.url(mode);
    let mut rng = Rng::new(7);
    let mut plan = Plan::new(&url);
    plan.workers = 2;
    plan.deadline = deadline;
    plan.sleep_every = 0;
    plan.pause = Duration::from_millis(50);
    let load = Load::start(&plan, &mut rng);
    let args = [
        "loop".to_owned(),
        "--calls=3".to_owned(),
        format!("--timeout-ms={}", deadline.as_millis()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut py_args = args.clone();
    py_args.push("--mode=legacy");
    let loops = vec![
        SdkLoop::start(
            &format!("ts-{mode}"),
            s.d.path(),
            &mut ts_client(&s.peers, &url, &args),
        ),
        SdkLoop::start(
            &format!("py-{mode}"),
            s.d.path(),
            &mut py_client(&s.peers, &url, &py_args),
        ),
    ];
    let deadline_at = std::time::Instant::now() + deadline * 4;
    while load.count() < 6 && std::time::Instant::now() < deadline_at {
        std::thread::sleep(Duration::from_millis(20));
    }
    let calls = load.finish();
    // The loops end by themselves after their 3 calls.
    let sdk = loops
        .into_iter()
        .map(|l| (l.name.clone(), l.wait(deadline * 8)))
        .collect();
    Misbehaviour { calls, sdk }
}

/// How a client learns that a misbehaving backend failed its call.
fn assert_misbehaviour(mode: &str, m: &Misbehaviour) {
    assert!(!m.calls.is_empty(), "{mode}: no call made");
    for c in &m.calls {
        let fine = match mode {
            // Nothing usable came back: the edge says so (502), or the stream it had begun
            // breaks off, which the client sees as a broken answer.
            // An answer of a type no MCP client reads (an HTML page): 502 from the edge.
            "close" | "garbage" | "cut" | "wrongtype" => matches!(
                c.outcome,
                Outcome::RpcError { status: 502, .. } | Outcome::Broken(_)
            ),
            // A whole HTTP answer whose body is no JSON-RPC message: passed on as the backend
            // sent it, and the client's parser rejects it at once (no deadline hit).
            "truncated" => matches!(c.outcome, Outcome::Garbled { .. }),
            // No answer ever ends: no fixed timeout cuts a long tool call, so the client's
            // own deadline ends it (and the edge then cancels the backend request).
            _ => c.outcome == Outcome::Deadline,
        };
        assert!(fine, "{mode}: {:?}", c.outcome);
    }
    for (name, calls) in &m.sdk {
        assert!(
            calls.iter().all(|c| !c.ok),
            "{name}: a call succeeded against a broken backend: {calls:#?}"
        );
        if !matches!(mode, "stall" | "junk-sse") {
            assert!(
                calls.iter().all(|c| c.kind != "timeout"),
                "{name}: a call hit its deadline instead of failing: {calls:#?}"
            );
        }
    }
}

#[test]
fn misbehaving_backends() {
    let modes = [
        "close",
        "garbage",
        "cut",
        "truncated",
        "wrongtype",
        "stall",
        "junk-sse",
    ];
    let s = stack(&modes, "");
    for mode in modes {
        let m = misbehave(&s, mode, Duration::from_secs(4));
        println!("{mode}: {}", summarize(&m.calls));
        for c in m.calls.iter().take(1) {
            println!("   e.g. {:?}", c.outcome);
        }
        print_sdk(&m.sdk);
        assert_misbehaviour(mode, &m);
    }
    // A client that gave up on an endless answer leaves no backend request behind.
    for mode in ["stall", "junk-sse"] {
        let served = s.backend.request_ids(Some(mode)).len();
        let closed = (0..100)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(100));
                s.backend.peer_closed(mode)
            })
            .find(|&n| n >= served)
            .unwrap_or_else(|| s.backend.peer_closed(mode));
        println!("{mode}: the edge cancelled {closed} of {served} backend requests");
        assert_eq!(closed, served, "{mode}: backend requests left running");
    }
    let missing = unaudited(&s.backend, &audit_path(&s));
    assert!(
        missing.is_empty(),
        "requests that reached the backend without an audit line: {missing:?}"
    );
    let (code, out) = audit_verify(&audit_path(&s));
    assert_eq!(code, 0, "audit verify:\n{out}");
}
