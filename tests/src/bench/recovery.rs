//! Transport switches, timed: a connector with `transport = "auto"` runs in a network
//! namespace (the echo backend with it), the edge on the host; nftables drops the tunnel's UDP.
//! - cold start with UDP dropped: connector start → the first `tools/call` through it (TCP);
//! - UDP dropped under a steady trickle of calls: drop → both tunnels on TCP, and what the calls
//!   saw meanwhile;
//! - the rule lifted: lift → both tunnels back on QUIC, and what the calls saw.
//!
//! A lift soon after the fallback meets the connector's early re-probe (2–4 s after a fallback);
//! a later one waits for the periodic re-probe (30–60 s; `--reprobe-secs` shortens it). The
//! phase holds the drop 1 s, then 10 s, past the fallback to show both. Needs root (`ip netns`,
//! `nft`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::netns::NetNs;
use underpass_tests::{
    free_port, prepend_top_level, set_connector_edges, write_connector_config, ConnectorPki,
    EdgeSetup, Pki, Proc,
};

use crate::client::Target;
use crate::plan::Plan;
use crate::restart::probe;
use crate::stack::{
    sibling_bin, spawn_edge, tunnel_command_in, BENCH_CLIENTS, BENCH_EDGE, SERVICE,
};
use crate::steady::{around, ms, ms_between, Steady};

/// Tunnels of the connector (`tunnels_per_edge` by default).
const TUNNELS: usize = 2;
/// How long the drop is held past the fallback, per round: within the early re-probe, then
/// past it.
const HOLDS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(10)];

/// Field order is drop order: the processes go before the namespace they run in.
struct Net {
    connector: Option<Proc>,
    _edge: Proc,
    _backend: Proc,
    setup: EdgeSetup,
    connector_config: PathBuf,
    dir: PathBuf,
    ns: NetNs,
}

impl Net {
    fn start(dir: &Path, backend_threads: usize) -> Result<Net, String> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if uid != "0" {
            return Err(
                "the recovery phase needs root (a network namespace and nftables); \
                        run as root or leave it out with --phases"
                    .into(),
            );
        }
        let ns = NetNs::create();
        let dir = dir.join("recovery");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pki = Pki::init(&dir.join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");

        let backend_port = free_port();
        let mut backend = Proc::spawn(
            "echo-backend-ns",
            &dir,
            std::process::Command::new(&ns.prefix()[0])
                .args(&ns.prefix()[1..])
                .arg(sibling_bin("underpass-echo-backend"))
                .args([
                    "--listen",
                    &format!("127.0.0.1:{backend_port}"),
                    "--threads",
                    &backend_threads.to_string(),
                ]),
        );
        backend.wait_for_log("listening on", Duration::from_secs(20));

        let setup = EdgeSetup::write(&dir, false, &[(SERVICE, &["dc1"])], BENCH_EDGE);
        setup.add_clients_keys(BENCH_CLIENTS);
        setup.set_tunnel_host(&ns.host_addr.to_string());
        let mut edge = spawn_edge(&dir, &setup.config, "edge", &[]);
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));

        let connector_config = write_connector_config(
            &dir,
            "connector.toml",
            "dc1",
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &[(SERVICE, &format!("http://127.0.0.1:{backend_port}/mcp"))],
        );
        set_connector_edges(
            &connector_config,
            &[format!("{}:{}", ns.host_addr, setup.tunnel_port)],
        );
        prepend_top_level(&connector_config, "transport = \"auto\"");
        Ok(Net {
            connector: None,
            _edge: edge,
            _backend: backend,
            setup,
            connector_config,
            dir,
            ns,
        })
    }

    fn target(&self) -> Target {
        Target::new(
            ([127, 0, 0, 1], self.setup.client_port).into(),
            &format!("/mcp/{SERVICE}"),
        )
    }

    fn drop_udp(&self, on: bool) {
        self.ns
            .set_loss(self.setup.tunnel_port, if on { 100 } else { 0 });
    }

    /// Waits until `/readyz` lists [`TUNNELS`] tunnels, all on `transport`; returns when.
    fn wait_all_on(&self, transport: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.setup.tunnels();
            if seen.len() == TUNNELS && seen.iter().all(|(_, t)| t == transport) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not all {TUNNELS} tunnels on {transport} within {timeout:?}: {seen:?}\nconnector log:\n{}",
                    self.connector.as_ref().map(Proc::log_text).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The recovery phase; `reprobe_secs` overrides the connector's re-probe period.
pub(crate) fn recovery_phase(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    dir: &Path,
    backend_threads: usize,
    reprobe_secs: Option<u64>,
) -> (Vec<Value>, Option<String>) {
    let mut runs = Vec::new();
    let result = (|| -> Result<(), String> {
        let mut net = Net::start(dir, backend_threads)?;
        let v = cold_start(rt, &mut net, reprobe_secs)?;
        eprintln!("  recovery, cold start with UDP dropped: {v}");
        runs.push(v);
        for i in 0..plan.restarts {
            for hold in HOLDS {
                let v = switch(rt, &net, hold)?;
                eprintln!(
                    "  recovery {} (drop held {hold:?} past the fallback): {v}",
                    i + 1
                );
                runs.push(v);
            }
        }
        Ok(())
    })();
    (runs, result.err())
}

/// Starts the connector with UDP dropped; times the first call through it, then lifts the
/// rule and times the return to QUIC.
fn cold_start(
    rt: &tokio::runtime::Runtime,
    net: &mut Net,
    reprobe_secs: Option<u64>,
) -> Result<Value, String> {
    net.drop_udp(true);
    let mut cmd = tunnel_command_in(
        &net.ns.prefix(),
        "underpass-connector",
        &net.connector_config,
    );
    if let Some(s) = reprobe_secs {
        cmd.env("UNDERPASS_QUIC_REPROBE_SECS", s.to_string());
    }
    let started = Instant::now();
    net.connector = Some(Proc::spawn("connector", &net.dir, &mut cmd));
    let t = net.target();
    let deadline = started + Duration::from_secs(30);
    let first_call = rt.block_on(async {
        while Instant::now() < deadline {
            if probe(&t).await {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    });
    let first_call = first_call.ok_or("no call passed within 30 s of the connector starting")?;
    let on_tcp = net.wait_all_on("tcp", Duration::from_secs(30))? - started;
    let load = Steady::start(rt, &t);
    std::thread::sleep(Duration::from_secs(1));
    let lifted = load.t0.elapsed();
    net.drop_udp(false);
    let back = net.wait_all_on("quic", Duration::from_secs(150));
    let back = back.map(|at| at - load.t0);
    std::thread::sleep(Duration::from_secs(1));
    let until = load.t0.elapsed();
    let calls = load.finish(rt);
    let back = back?;
    let mut v = around(&calls, lifted, until, back);
    v["event"] = json!("cold start, UDP dropped; then lifted");
    v["first_call_ms"] = json!(ms(first_call));
    v["all_tunnels_on_tcp_ms"] = json!(ms(on_tcp));
    v["lift_to_quic_ms"] = json!(ms_between(lifted, back));
    Ok(v)
}

/// On QUIC under load: drops UDP, waits for the fallback, holds `hold`, lifts the rule and
/// waits for QUIC.
fn switch(rt: &tokio::runtime::Runtime, net: &Net, hold: Duration) -> Result<Value, String> {
    net.wait_all_on("quic", Duration::from_secs(150))?;
    let load = Steady::start(rt, &net.target());
    std::thread::sleep(Duration::from_secs(1));
    let dropped = load.t0.elapsed();
    net.drop_udp(true);
    let on_tcp = net
        .wait_all_on("tcp", Duration::from_secs(30))
        .map(|at| at - load.t0);
    let Ok(on_tcp) = on_tcp else {
        net.drop_udp(false);
        let _ = load.finish(rt);
        return Err(on_tcp.err().unwrap_or_default());
    };
    std::thread::sleep(hold);
    let lifted = load.t0.elapsed();
    net.drop_udp(false);
    let back = net
        .wait_all_on("quic", Duration::from_secs(150))
        .map(|at| at - load.t0);
    std::thread::sleep(Duration::from_secs(1));
    let until = load.t0.elapsed();
    let calls = load.finish(rt);
    let back = back?;
    let (before, after): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.start < lifted);
    let mut v = json!({
        "event": format!("UDP dropped under load, held {} s past the fallback, lifted", hold.as_secs()),
        "hold_s": hold.as_secs(),
        "drop_to_tcp_ms": ms_between(dropped, on_tcp),
        "lift_to_quic_ms": ms_between(lifted, back),
    });
    v["while_dropped"] = around(&before, dropped, lifted, on_tcp);
    v["after_lift"] = around(&after, lifted, until, back);
    Ok(v)
}

/// The table of the recovery runs.
pub(crate) fn table(runs: &[Value], reprobe_secs: Option<u64>) -> String {
    let mut out = format!(
        "\n## Transport recovery (`transport = \"auto\"`, UDP to the edge dropped by nftables; \
         re-probe every {})\n\n",
        match reprobe_secs {
            Some(s) => format!("{s}–{} s (`--reprobe-secs`)", 2 * s),
            None => "30–60 s, the default; 2–4 s after a fallback".into(),
        }
    );
    if let Some(cold) = runs.first() {
        out.push_str(&format!(
            "Cold start with UDP dropped: first call through the tunnel {} ms after the connector \
             started; both tunnels on TCP at {} ms. Rule lifted: both on QUIC {} ms later, {} of \
             {} calls failed.\n\n",
            cold["first_call_ms"],
            cold["all_tunnels_on_tcp_ms"],
            cold["lift_to_quic_ms"],
            cold["failed"],
            cold["calls"]
        ));
    }
    out.push_str(
        "| run | held past fallback | drop → all on TCP ms | failed while dropped | of calls | last failure ends ms after drop | lift → all on QUIC ms | failed after lift | of calls |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, v) in runs.iter().skip(1).enumerate() {
        out.push_str(&format!(
            "| {} | {} s | {} | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            v["hold_s"],
            v["drop_to_tcp_ms"],
            v["while_dropped"]["failed"],
            v["while_dropped"]["calls"],
            v["while_dropped"]["last_failed_end_ms"],
            v["lift_to_quic_ms"],
            v["after_lift"]["failed"],
            v["after_lift"]["calls"],
        ));
    }
    out
}
