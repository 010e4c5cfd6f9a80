//! The report of names cut to 64 characters (see `underpass_mcp::federation::names`): at start,
//! once each service's tunnel is up, its tools and prompts are listed through the same path
//! the federated endpoint uses ([`lists::listing`], so the cache is warmed too), and each
//! mapping is logged once; the admin API shows what the edge has learned
//! (`GET /api/federation/names`, [`report`]).
//!
//! The edge lists as itself: principal [`EDGE_PRINCIPAL`], its tunnel certificate as the
//! method, no groups. Its exchanges are audited on that principal's behalf like any other the
//! edge originates, and a backend whose list is private caches it for that principal only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{AuthMethod, Identity};
use crate::federation::lists::{self, Kind};
use crate::federation::upstream::Caller;

/// The principal the edge lists as when no client asked (the start report).
pub const EDGE_PRINCIPAL: &str = "underpass-edge";
/// How long the start report waits for a service's first tunnel.
const WAIT_FOR_TUNNELS: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);

/// The caller the edge is when it lists for itself.
pub fn edge_caller() -> Caller {
    Caller {
        identity: Identity {
            principal: EDGE_PRINCIPAL.to_owned(),
            groups: Vec::new(),
            method: AuthMethod::Cert,
            scopes: Vec::new(),
        },
        trace_id: String::new(),
        session: String::new(),
        forwarded: Vec::new(),
        asks: serde_json::json!({}),
    }
}

/// Lists every service's tools and prompts once its tunnel is up (each service as soon as
/// it is; those without a tunnel after [`WAIT_FOR_TUNNELS`] are left to the first client).
/// The shortened names are logged by the reading itself, once per mapping.
pub async fn report_at_start(app: Arc<App>) {
    let caller = edge_caller();
    let mut pending: Vec<usize> = (0..app.config.services.len()).collect();
    let deadline = Instant::now() + WAIT_FOR_TUNNELS;
    while !pending.is_empty() && Instant::now() < deadline {
        let up = app.tunnels.service_counts();
        let mut still = Vec::new();
        for i in pending {
            let Some(service) = app.config.services.get(i) else {
                continue;
            };
            if up.get(&service.name).copied().unwrap_or(0) == 0 {
                still.push(i);
                continue;
            }
            for kind in [Kind::Tools, Kind::Prompts] {
                let listed = tokio::time::timeout(
                    app.config.federation.deadline,
                    lists::listing(&app, service, &caller, kind),
                )
                .await;
                match listed {
                    Ok(Ok(_)) => {}
                    // A backend without prompts (or down) is no finding: the first client
                    // that lists will try again.
                    Ok(Err(e)) => tracing::debug!(service = %service.name, list = kind.method(),
                        "shortened-name report: cannot list: {e}"),
                    Err(_) => tracing::debug!(service = %service.name, list = kind.method(),
                        "shortened-name report: no answer within the [federation] deadline"),
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `GET /api/federation/names`: by service whose lists the edge has read, the names it cut.
pub fn report(app: &App) -> Value {
    let services: serde_json::Map<String, Value> = app
        .federation
        .shortened
        .snapshot()
        .into_iter()
        .map(|(service, names)| {
            let list: Vec<Value> = names
                .iter()
                .map(|n| json!({"kind": n.kind, "original": n.original, "federated": n.federated}))
                .collect();
            (service, Value::Array(list))
        })
        .collect();
    json!({"services": services})
}
