//! Readiness: the pre-flight checks ([`crate::doctor`]) run at start in the background (the
//! tunnels do not wait for them), each FAIL and WARN logged with what to do, and run again
//! every [`RECHECK`], so readiness recovers once a problem is fixed and turns off when one
//! appears. The running connector's checks are [`crate::doctor::Scope::Running`]: local ones
//! and a TCP connection per HTTP backend; its edges are judged by its live tunnels. With
//! `[health]` a loopback listener ([`server`]) serves `GET /healthz` (the process answers) and
//! `GET /readyz`: 503 until the checks ran once, while any check fails or while no tunnel is
//! up; 200 otherwise. The decision is the plain function [`readiness`].

mod server;

pub use server::ask;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::live::LiveTunnels;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_shared::doctor::{Check, Status};

use crate::config::ConnectorConfig;

/// Period of re-running the checks while one fails.
pub const RECHECK: Duration = Duration::from_secs(30);
/// Environment variable overriding [`RECHECK`] in whole seconds (for tests). Not a config key:
/// operators have no reason to change it.
pub const RECHECK_ENV: &str = "UNDERPASS_DOCTOR_RECHECK_SECS";

/// What readiness reads: the tunnels, and the failed checks of the last run (`None` before
/// the first run ends).
#[derive(Debug)]
pub struct Health {
    pub edges: Vec<String>,
    pub live: Arc<LiveTunnels>,
    problems: Mutex<Option<Vec<Check>>>,
}

impl Health {
    pub fn new(edges: Vec<String>, live: Arc<LiveTunnels>) -> Self {
        Health {
            edges,
            live,
            problems: Mutex::new(None),
        }
    }

    fn set_problems(&self, failed: Vec<Check>) {
        *self.problems.lock().unwrap_or_else(PoisonError::into_inner) = Some(failed);
    }

    /// The status code and JSON body of `/readyz` now.
    pub fn readyz(&self) -> (u16, Value) {
        let problems = self
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        readiness(&self.edges, &self.live.snapshot(), problems.as_deref())
    }
}

/// Ready when the checks ran, none failed, and at least one tunnel is up. The body says why
/// not: `problems` lists the failed checks with what to do.
pub fn readiness(
    edges: &[String],
    live: &BTreeMap<String, usize>,
    problems: Option<&[Check]>,
) -> (u16, Value) {
    let tunnels: BTreeMap<&str, usize> = edges
        .iter()
        .map(|e| (e.as_str(), live.get(e).copied().unwrap_or(0)))
        .collect();
    let up: usize = tunnels.values().sum();
    let listed: Vec<Value> = problems
        .unwrap_or_default()
        .iter()
        .map(|c| json!({"check": c.name, "detail": c.detail, "todo": c.todo}))
        .collect();
    let checked = problems.is_some();
    let ready = checked && listed.is_empty() && up > 0;
    let mut reasons = Vec::new();
    if !checked {
        reasons.push("pre-flight checks running".to_owned());
    }
    if !listed.is_empty() {
        reasons.push(format!("{} check(s) failing", listed.len()));
    }
    if up == 0 {
        reasons.push("no tunnel is up".to_owned());
    }
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "reasons": reasons,
        "checked": checked,
        "tunnels": tunnels,
        "problems": listed,
    });
    (if ready { 200 } else { 503 }, body)
}

/// Starts the health listener (when `[health]` is set: bound now, so a taken port fails the
/// start) and the background checks.
pub async fn start(config: &Arc<ConnectorConfig>, live: Arc<LiveTunnels>) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(config.edges.clone(), live));
    if let Some(h) = &config.health {
        server::start(h.listen, health.clone()).await?;
    }
    tokio::spawn(check_loop(config.clone(), health));
    Ok(())
}

fn recheck_period() -> Duration {
    std::env::var(RECHECK_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(RECHECK, Duration::from_secs)
}

/// Runs the checks, logs what changed, and runs them again every `period`.
async fn check_loop(config: Arc<ConnectorConfig>, health: Arc<Health>) {
    let period = recheck_period();
    let mut told: BTreeMap<String, Status> = BTreeMap::new();
    loop {
        let checks = crate::doctor::run_checks(&config, crate::doctor::Scope::Running).await;
        for line in changes(&told, &checks) {
            match line {
                Change::Problem(c) => tracing::warn!(
                    check = %c.name,
                    result = c.status.as_str(),
                    "pre-flight check: {}",
                    c.explain()
                ),
                Change::Recovered(name) => {
                    tracing::info!(check = %name, "pre-flight check passes again")
                }
            }
        }
        told = checks.iter().map(|c| (c.name.clone(), c.status)).collect();
        let failed: Vec<Check> = checks.into_iter().filter(Check::failed).collect();
        health.set_problems(failed);
        // Always again: a backend that stops later turns readiness off too (the running
        // checks are local, and a TCP connection per HTTP backend).
        tokio::time::sleep(period).await;
    }
}

/// A log line of a check run.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// A FAIL or WARN not told before in this state.
    Problem(&'a Check),
    /// Failed or warned before, passes now.
    Recovered(String),
}

/// What to log after a run, given what was told after the previous one: problems once per
/// state, recoveries once.
pub fn changes<'a>(told: &BTreeMap<String, Status>, checks: &'a [Check]) -> Vec<Change<'a>> {
    let problem = |s: Status| matches!(s, Status::Fail | Status::Warn);
    checks
        .iter()
        .filter_map(|c| {
            let before = told.get(&c.name).copied();
            if problem(c.status) && before != Some(c.status) {
                Some(Change::Problem(c))
            } else if !problem(c.status) && before.is_some_and(problem) {
                Some(Change::Recovered(c.name.clone()))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
