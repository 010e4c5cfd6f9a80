//! Edge restarts: SIGTERM or SIGKILL the edge, start it again, time the first successful
//! `tools/call` through it.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{connect, Caller, Target};
use crate::plan::{Era, Plan, SMALL};
use crate::stack::{spawn_edge, Stack};

/// One attempt: a fresh connection and a stateless tools/call. Succeeds on 200.
pub(crate) async fn probe(t: &Target) -> bool {
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
pub(crate) fn restart_once(
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

/// The restart phase: `plan.restarts` restarts by SIGTERM, then as many by SIGKILL. Returns
/// the runs, and the error that stopped the phase, if one did.
pub(crate) fn restart_phase(
    rt: &tokio::runtime::Runtime,
    stack: &mut Stack,
    plan: &Plan,
) -> (Vec<Value>, Option<String>) {
    let mut restarts: Vec<Value> = Vec::new();
    let mut last_ready: Option<Instant> = None;
    for signal in ["TERM", "KILL"] {
        for i in 0..plan.restarts {
            // The connector resets its reconnect backoff only for tunnels that lived 10 s:
            // space restarts so that each one starts from a healthy tunnel.
            if let Some(last) = last_ready {
                let wait = Duration::from_millis(10_500).saturating_sub(last.elapsed());
                std::thread::sleep(wait);
            }
            match restart_once(rt, stack, signal) {
                Ok(v) => {
                    eprintln!("  edge restart {} (SIG{signal}): {v}", i + 1);
                    restarts.push(v);
                }
                Err(e) => {
                    eprintln!("  edge restart {} (SIG{signal}) failed: {e}", i + 1);
                    return (restarts, Some(e));
                }
            }
            last_ready = Some(Instant::now());
        }
    }
    (restarts, None)
}
