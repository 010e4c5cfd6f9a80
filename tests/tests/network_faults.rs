//! The tunnel over a lossy or partitioned network, under load: the connector and its backend
//! run in a network namespace joined to the host by a veth pair, and nftables rules in that
//! namespace drop a random share of the tunnel's UDP packets (`numgen random mod 100 < N`;
//! this kernel has no netem), or all of them for a while (a partition). For each fault, as in
//! `faults.rs`: every call ends with a result or a clear error before its deadline, nothing
//! that reached the backend is missing from the audit log, and recovery is measured and
//! printed (never asserted against a clock).
//!
//! Needs root, `ip` and `nft` (tests/run.sh installs nftables); without them these tests fail
//! and say so. Every namespace, link and rule is removed when a test ends, failed or not.

use std::process::Command;
use std::time::Duration;

use underpass_tests::faults::{audit_by_request, audit_verify, ms, unaudited, FaultBackend, Rng};
use underpass_tests::load::{steady_sdk_loops, summarize, Call, Load, Outcome, Plan, SdkCall};
use underpass_tests::netns::NetNs;
use underpass_tests::*;

/// Per-call deadline: far above the tunnel's 1.8 s idle timeout.
const DEADLINE: Duration = Duration::from_secs(25);

/// Field order is drop order: the processes go before the namespace they run in.
struct Net {
    backend: FaultBackend,
    connector: Proc,
    edge: Proc,
    peers: Peers,
    setup: EdgeSetup,
    connector_config: std::path::PathBuf,
    ns: NetNs,
    dir: tempfile::TempDir,
}

/// Edge on the host (clients on loopback, tunnel on the veth address); connector `dc1` and
/// the fault backend inside the namespace.
fn net() -> Net {
    let peers = Peers::get();
    let ns = NetNs::create();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n[audit]\nfile = \"audit.jsonl\"\n",
    );
    setup.set_tunnel_host(&ns.host_addr.to_string());
    let edge = setup.start(dir.path());
    let port = free_port();
    let connector_config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("ok", &FaultBackend::url_at(port, "ok"))],
    );
    set_connector_edges(
        &connector_config,
        &[format!("{}:{}", ns.host_addr, setup.tunnel_port)],
    );
    // The faults here are on UDP only: pinned to QUIC, the connector cannot dodge them by
    // falling back to TCP (tcp_fallback.rs covers the fallback).
    prepend_top_level(&connector_config, "transport = \"quic\"");
    let backend = FaultBackend::start_at(dir.path(), port, &ns.prefix());
    let connector = start_in_ns(&ns, dir.path(), "connector", &connector_config);
    setup.wait_ready("ok", Duration::from_secs(30));
    Net {
        backend,
        connector,
        edge,
        peers,
        setup,
        connector_config,
        ns,
        dir,
    }
}

fn start_in_ns(ns: &NetNs, dir: &std::path::Path, name: &str, config: &std::path::Path) -> Proc {
    let prefix = ns.prefix();
    Proc::spawn(
        name,
        dir,
        Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg(bin("underpass-connector"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,underpass_connector=debug"),
    )
}

/// p50 and p99 of the successful calls that started in `from..to`.
fn percentiles(calls: &[Call], from: Duration, to: Duration) -> (String, String, usize) {
    let mut lat: Vec<Duration> = calls
        .iter()
        .filter(|c| c.outcome == Outcome::Ok && c.start >= from && c.start < to)
        .map(|c| c.elapsed)
        .collect();
    lat.sort();
    if lat.is_empty() {
        return ("-".into(), "-".into(), 0);
    }
    let at = |q: f64| ms(lat[((lat.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.99), lat.len())
}

fn check(n: &Net, calls: &[Call], sdk: &[(String, Vec<SdkCall>)]) {
    let hung: Vec<&Call> = calls.iter().filter(|c| !c.outcome.is_clear()).collect();
    assert!(
        hung.is_empty(),
        "calls without a result or a clear error: {hung:#?}\n(all: {})",
        summarize(calls)
    );
    for (name, sdk_calls) in sdk {
        let ok = sdk_calls.iter().filter(|c| c.ok).count();
        println!("  {name}: {} calls, {ok} ok", sdk_calls.len());
        let hangs: Vec<&SdkCall> = sdk_calls.iter().filter(|c| c.kind == "timeout").collect();
        assert!(
            hangs.is_empty(),
            "{name}: calls hit their deadline: {hangs:#?}"
        );
        assert!(ok > 0, "{name}: no call succeeded: {sdk_calls:#?}");
    }
    let audit = n.dir.path().join("audit.jsonl");
    let missing = unaudited(&n.backend, &audit);
    assert!(
        missing.is_empty(),
        "{} request(s) reached the backend but are not in the audit log: {missing:?}",
        missing.len()
    );
    let ok_traces: std::collections::BTreeSet<String> = audit_by_request(&audit)
        .values()
        .flatten()
        .filter(|l| l["outcome"] == "ok")
        .filter_map(|l| l["trace_id"].as_str().map(str::to_owned))
        .collect();
    let unrecorded = calls
        .iter()
        .filter(|c| c.outcome == Outcome::Ok && !ok_traces.contains(&c.trace_id))
        .count();
    assert_eq!(unrecorded, 0, "calls served without an `ok` audit line");
    let (code, out) = audit_verify(&audit);
    assert_eq!(code, 0, "audit verify:\n{out}");
}

#[test]
fn packet_loss_on_the_tunnel() {
    let mut rng = Rng::from_env("packet_loss_on_the_tunnel");
    let n = net();
    let url = n.setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.workers = 3;
    let load = Load::start(&plan, &mut rng);
    let sdk = steady_sdk_loops(&n.peers, n.dir.path(), &url, DEADLINE);
    load.wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served before the first fault");
    std::thread::sleep(Duration::from_secs(2));
    let mut phases = vec![("0 %".to_owned(), Duration::ZERO, load.now())];
    for percent in [5u8, 20] {
        n.ns.set_loss(n.setup.tunnel_port, percent);
        let from = load.now();
        std::thread::sleep(Duration::from_secs(5));
        phases.push((format!("{percent} %"), from, load.now()));
    }
    // The rules with their counters while 20 % loss is on: packets were really dropped.
    let rules_seen = n.ns.ruleset();
    n.ns.set_loss(n.setup.tunnel_port, 0);
    let lifted = load.now();
    let steady = load
        .wait_steady(lifted, Duration::from_secs(1), DEADLINE * 2)
        .expect("calls still failing long after the loss was lifted");
    std::thread::sleep(Duration::from_secs(1));
    phases.push(("0 % after".to_owned(), lifted, load.now()));
    let calls = load.finish();
    let sdk: Vec<(String, Vec<SdkCall>)> = sdk
        .into_iter()
        .map(|l| (l.name.clone(), l.finish(DEADLINE * 4)))
        .collect();
    println!("packet loss: calls: {}", summarize(&calls));
    for (name, from, to) in &phases {
        let (p50, p99, count) = percentiles(&calls, *from, *to);
        let failed = calls
            .iter()
            .filter(|c| c.outcome != Outcome::Ok && c.start >= *from && c.start < *to)
            .count();
        println!("  loss {name}: {count} ok calls, {failed} failed, p50 {p50}, p99 {p99}");
    }
    println!(
        "  after lifting the loss, the last call to fail started {} later",
        ms(steady.saturating_sub(lifted))
    );
    println!("  nft rules under 20 % loss:\n{rules_seen}");
    let dropped: u64 = rules_seen
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "no tunnel packet was dropped:\n{rules_seen}");
    check(&n, &calls, &sdk);
    assert!(
        !n.connector.log_text().contains("tunnel closed"),
        "the tunnel did not survive 20 % loss:\n{}",
        n.connector.log_text()
    );
}

#[test]
fn partitions_of_the_tunnel() {
    let mut rng = Rng::from_env("partitions_of_the_tunnel");
    let n = net();
    let url = n.setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.workers = 3;
    let load = Load::start(&plan, &mut rng);
    let sdk = steady_sdk_loops(&n.peers, n.dir.path(), &url, DEADLINE);
    load.wait_ok_after(Duration::ZERO, DEADLINE)
        .expect("no call served before the first fault");
    // A short partition (below the tunnel's 1.8 s idle timeout, and below the ~0.93 s after
    // which QUIC's backed-off probe comes too late for it: the tunnels survive it), then one
    // of 3 s, longer than it (the tunnels die and are dialed again once it lifts).
    for (what, length) in [
        (
            "short",
            rng.between(Duration::from_millis(500), Duration::from_millis(850)),
        ),
        ("long", Duration::from_secs(3)),
    ] {
        std::thread::sleep(rng.between(Duration::from_millis(500), Duration::from_millis(1500)));
        let closed_before = n.connector.log_text().matches("tunnel closed").count();
        n.ns.set_loss(n.setup.tunnel_port, 100);
        let cut = load.now();
        std::thread::sleep(length);
        n.ns.set_loss(n.setup.tunnel_port, 0);
        let lifted = load.now();
        let served = load
            .wait_ok_after(lifted, DEADLINE * 2)
            .expect("no call served after the partition");
        let steady = load
            .wait_steady(lifted, Duration::from_secs(1), DEADLINE * 2)
            .expect("calls still failing long after the partition");
        let closed = n.connector.log_text().matches("tunnel closed").count() - closed_before;
        if what == "short" {
            assert_eq!(
                closed,
                0,
                "a tunnel died in a partition shorter than the idle timeout:\n{}",
                n.connector.log_text()
            );
        } else {
            assert!(
                closed >= 1,
                "the tunnels outlived a partition longer than the idle timeout:\n{}",
                n.connector.log_text()
            );
        }
        println!(
            "{what} partition of {} (from {}): first call served {} after it was lifted, the \
             last call to fail started {} after it",
            ms(length),
            ms(cut),
            ms(served.saturating_sub(lifted)),
            ms(steady.saturating_sub(lifted))
        );
    }
    let calls = load.finish();
    let sdk: Vec<(String, Vec<SdkCall>)> = sdk
        .into_iter()
        .map(|l| (l.name.clone(), l.finish(DEADLINE * 4)))
        .collect();
    println!("partitions: calls: {}", summarize(&calls));
    // Whatever failed was in flight when the long partition killed its tunnel (502), or found
    // no tunnel until the connector was back (503): clear errors, never a hang (`check`).
    for c in calls.iter().filter(|c| c.outcome != Outcome::Ok) {
        assert!(
            matches!(
                c.outcome,
                Outcome::RpcError {
                    status: 502 | 503,
                    ..
                }
            ),
            "{c:#?}"
        );
    }
    check(&n, &calls, &sdk);
    let _ = &n.connector_config;
    let _ = &n.edge;
}

/// What the 500 ms keep-alives cost: the tunnel's UDP packets, both ways, counted by nft over
/// 10 s without a call (two tunnels, the default), printed per tunnel and second. An idle
/// tunnel keeps sending (a peer that stopped would be dropped by the other) and survives.
#[test]
fn keepalives_of_idle_tunnels() {
    let n = net();
    let tunnels = serde_json::from_slice::<serde_json::Value>(
        &http::get(&n.setup.admin("/readyz")).expect("readyz").body,
    )
    .expect("readyz JSON")["tunnels"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(tunnels, 2, "tunnels_per_edge defaults to 2");
    std::thread::sleep(Duration::from_secs(1));
    n.ns.count_udp(n.setup.tunnel_port);
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let packets = n.ns.counted();
    let rate = packets as f64 / tunnels as f64 / window.as_secs_f64();
    println!(
        "idle tunnels: {packets} UDP packets in {} over {tunnels} tunnels: {rate:.1} packets/s per tunnel (both ways)",
        ms(window)
    );
    assert!(
        packets > 0,
        "idle tunnels sent nothing:\n{}",
        n.ns.ruleset()
    );
    assert!(
        !n.connector.log_text().contains("tunnel closed"),
        "an idle tunnel was dropped:\n{}",
        n.connector.log_text()
    );
    let _ = (&n.backend, &n.edge, &n.peers, &n.connector_config, &n.dir);
}
