//! The admin API's read-only views, as JSON. Nothing here carries secret material: no keys,
//! no API key digests, no tokens, no session ids (sessions are counted, not listed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::feed::Feed;
use crate::certs::Certs;
use crate::config::EdgeConfig;
use crate::tunnels::registry::Registry;

/// The build of this edge.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn rfc3339(t: SystemTime) -> String {
    humantime_serde::re::humantime::format_rfc3339_seconds(t).to_string()
}

/// A Unix time in seconds as RFC 3339, with the seconds left until then (negative: past).
fn expiry(not_after: Option<i64>) -> Value {
    let Some(secs) = not_after else {
        return json!({"not_after": null, "expires_in_seconds": null});
    };
    let at = u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    json!({
        "not_after": at.map(rfc3339),
        "expires_in_seconds": secs.saturating_sub(now),
    })
}

/// Every connector the configuration names or that has a live tunnel, with its tunnels.
pub fn connectors(config: &EdgeConfig, registry: &Registry, edge_addr: SocketAddr) -> Value {
    let mut names: BTreeSet<String> = config
        .services
        .iter()
        .flat_map(|s| s.connectors.iter().cloned())
        .collect();
    let mut tunnels = registry.tunnels();
    tunnels.sort_by_key(|t| t.id);
    names.extend(tunnels.iter().map(|t| t.connector.clone()));
    let list: Vec<Value> = names
        .iter()
        .map(|name| {
            let mine: Vec<Value> = tunnels
                .iter()
                .filter(|t| &t.connector == name)
                .map(|t| {
                    let mut entry = json!({
                        "id": t.id,
                        "transport": t.conn.transport(),
                        "edge_addr": edge_addr.to_string(),
                        "remote_addr": t.conn.remote_addr().to_string(),
                        "since": rfc3339(t.since),
                        "services": t.services,
                        "draining": t.is_draining(),
                        "in_flight": t.load.outstanding(),
                        "build": t.build,
                    });
                    entry["certificate"] = expiry(t.not_after());
                    entry
                })
                .collect();
            json!({
                "name": name,
                "online": !mine.is_empty(),
                "drained": registry.is_drained(name),
                "tunnels": mine,
            })
        })
        .collect();
    json!({"edge": {"version": VERSION, "tunnel_addr": edge_addr.to_string()}, "connectors": list})
}

/// Each configured service: its tunnels, health (at least one tunnel that takes new work),
/// and what its requests did so far.
pub fn services(config: &EdgeConfig, registry: &Registry, feed: &Feed) -> Value {
    let figures = feed.services();
    let tunnels = registry.tunnels();
    let list: Vec<Value> = config
        .services
        .iter()
        .map(|s| {
            let serving: Vec<_> = tunnels.iter().filter(|t| t.serves(&s.name)).collect();
            let usable = serving
                .iter()
                .filter(|t| !registry.is_drained(&t.connector))
                .count();
            let f = figures.get(&s.name);
            json!({
                "name": s.name,
                "connectors": s.connectors,
                "tunnels": serving.len(),
                "healthy": usable > 0,
                "requests": f.map_or(0, |f| f.requests),
                "errors": f.map_or(0, |f| f.errors),
                "denied": f.map_or(0, |f| f.denied),
                "latency_ms": f.and_then(|f| f.latency_ms),
            })
        })
        .collect();
    json!({"services": list})
}

/// Legacy sessions counted per service and per principal (never their ids).
pub fn sessions(registry: &Registry) -> Value {
    let counts = registry.session_counts();
    let mut by_service: BTreeMap<&str, usize> = BTreeMap::new();
    for (service, _, n) in &counts {
        *by_service.entry(service).or_default() += n;
    }
    let by_principal: Vec<Value> = counts
        .iter()
        .map(|(service, principal, n)| {
            json!({"service": service, "principal": principal, "sessions": n})
        })
        .collect();
    json!({
        "total": registry.session_count(),
        "by_service": by_service,
        "by_principal": by_principal,
    })
}

/// The recent denials, newest first, and how many since start.
pub fn denials(feed: &Feed) -> Value {
    let (mut list, total) = feed.denials();
    list.reverse();
    json!({"total": total, "denials": list})
}

/// Expiry of the edge's own certificates and of each live tunnel's connector certificate.
pub fn certificates(certs: &Certs, registry: &Registry) -> Value {
    let mut edge = Vec::new();
    let mut own = |component: &str, leaf: Option<rustls_pki_types::CertificateDer<'static>>| {
        let Some(leaf) = leaf else { return };
        let info = underpass_pki::inspect::inspect_der(&leaf).ok();
        let mut entry = expiry(info.as_ref().map(|i| i.not_after.unix_timestamp()));
        entry["component"] = json!(component);
        entry["identity"] = json!(info
            .as_ref()
            .and_then(|i| i.identity.as_ref())
            .map(|id| id.to_string()));
        edge.push(entry);
    };
    own("tunnel_cert", certs.tunnel_cert.leaf());
    own(
        "clients_cert",
        certs.client_cert.as_ref().and_then(|c| c.leaf()),
    );
    own(
        "admin_cert",
        certs.admin_cert.as_ref().and_then(|c| c.leaf()),
    );
    let mut tunnels = registry.tunnels();
    tunnels.sort_by_key(|t| t.id);
    let connectors: Vec<Value> = tunnels
        .iter()
        .map(|t| {
            let mut entry = expiry(t.not_after());
            entry["connector"] = json!(t.connector);
            entry["tunnel"] = json!(t.id);
            entry["serial"] = json!(t.cert_serial);
            entry
        })
        .collect();
    json!({"edge": edge, "connectors": connectors})
}

#[cfg(test)]
mod tests;
