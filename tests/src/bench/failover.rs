//! Failover after SIGKILL: two connectors serve the benchmark's service; under a steady
//! trickle of calls one is killed (no goodbye: the edge learns of it from the QUIC idle
//! timeout, or the TCP carrier's), and the phase times how long until the edge drops its
//! tunnels and what the calls around the kill saw. The killed connector is started again
//! before the next run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::plan::Plan;
use crate::stack::{spawn_connector, Stack};
use crate::steady::{around, ms, ms_between, Steady};

/// Tunnels of one connector (`tunnels_per_edge` by default).
const TUNNELS: usize = 2;

/// Waits until `/readyz` lists `dc1` with `dc1` tunnels and `dc2` with `dc2`.
fn wait_tunnels(stack: &Stack, dc1: usize, dc2: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = stack.edge_setup.tunnels();
        let count = |n: &str| seen.iter().filter(|(c, _)| c == n).count();
        if count("dc1") == dc1 && count("dc2") == dc2 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not {dc1} tunnels of dc1 and {dc2} of dc2 within {timeout:?}: {seen:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The failover phase: `plan.restarts` kills of `dc1` while `dc2` serves too.
pub(crate) fn failover_phase(
    rt: &tokio::runtime::Runtime,
    stack: &mut Stack,
    plan: &Plan,
) -> (Vec<Value>, Option<String>) {
    let (mut dc2, _) = stack.spawn_second_connector();
    let mut runs = Vec::new();
    for i in 0..plan.restarts {
        match kill_once(rt, stack) {
            Ok(v) => {
                eprintln!("  failover {} (SIGKILL): {v}", i + 1);
                runs.push(v);
            }
            Err(e) => {
                eprintln!("  failover {} failed: {e}", i + 1);
                return (runs, Some(e));
            }
        }
    }
    // The next phases get the stack as they expect it: dc1 alone (dc2 drains on SIGTERM).
    dc2.stop();
    let error = wait_tunnels(stack, TUNNELS, 0, Duration::from_secs(30)).err();
    (runs, error)
}

fn kill_once(rt: &tokio::runtime::Runtime, stack: &mut Stack) -> Result<Value, String> {
    wait_tunnels(stack, TUNNELS, TUNNELS, Duration::from_secs(30))?;
    let load = Steady::start(rt, &stack.tunnel());
    std::thread::sleep(Duration::from_secs(1));
    let killed = load.t0.elapsed();
    stack.connector.kill();
    // Detection: the edge no longer lists a tunnel of dc1.
    let deadline = Instant::now() + Duration::from_secs(30);
    let detected = loop {
        if !stack.edge_setup.tunnels().iter().any(|(c, _)| c == "dc1") {
            break load.t0.elapsed();
        }
        if Instant::now() > deadline {
            let _ = load.finish(rt);
            return Err("the edge still lists dc1 30 s after it was killed".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs(1));
    let until = load.t0.elapsed();
    let calls = load.finish(rt);
    let mut v = around(&calls, killed, until, detected);
    v["detect_ms"] = json!(ms_between(killed, detected));
    v["window_s"] = json!(ms(until) / 1000.0);

    stack.restarts += 1;
    stack.connector = spawn_connector(
        &stack.dir,
        &stack.connector_config,
        &format!("connector-{}", stack.restarts),
        &[],
    );
    Ok(v)
}

/// The table of the failover runs.
pub(crate) fn table(runs: &[Value]) -> String {
    let mut out = String::from(
        "\n## Failover (one of two connectors SIGKILLed under ~1000 small calls/s)\n\
         detect: kill → the edge drops the dead connector's tunnels. Failed calls are those \
         sent to its tunnels before detection; `after detect` must be 0.\n\n\
         | run | detect ms | calls | failed | after detect | first failed call started, ms after kill | last failure ends ms | slowest ok call ms |\n\
         |---|---:|---:|---:|---:|---|---:|---:|\n",
    );
    for (i, v) in runs.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            v["detect_ms"],
            v["calls"],
            v["failed"],
            v["failed_started_after_settled"],
            v["first_failed_start_ms"],
            v["last_failed_end_ms"],
            v["slowest_ok_ms"],
        ));
    }
    out
}
