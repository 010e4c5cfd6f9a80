//! Which connectors are online and which services each one serves; which legacy MCP session
//! is pinned to which connector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// One live tunnel.
#[derive(Debug)]
pub struct Tunnel {
    pub id: u64,
    pub connector: String,
    pub services: Vec<String>,
    pub conn: quinn::Connection,
    /// Canonical serial of the connector's certificate (for revocation).
    pub cert_serial: String,
}

/// A legacy (`Mcp-Session-Id`) session: the tunnel that answered its `initialize`, and the
/// principal that opened it.
#[derive(Debug, Clone)]
pub struct Session {
    pub tunnel_id: u64,
    pub principal: String,
}

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    round_robin: AtomicUsize,
    tunnels: RwLock<HashMap<u64, Arc<Tunnel>>>,
    /// Keyed by (service, session id).
    sessions: RwLock<HashMap<(String, String), Session>>,
    /// Protocol versions each service's backend announced in `server/discover`.
    versions: RwLock<HashMap<String, Vec<String>>>,
}

/// Why no tunnel could be chosen for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionLookup {
    Unknown,
    OtherPrincipal,
    TunnelGone,
}

impl Registry {
    pub fn add(
        &self,
        connector: String,
        services: Vec<String>,
        conn: quinn::Connection,
        cert_serial: String,
    ) -> Arc<Tunnel> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tunnel = Arc::new(Tunnel {
            id,
            connector,
            services,
            conn,
            cert_serial,
        });
        write(&self.tunnels).insert(id, tunnel.clone());
        tunnel
    }

    /// Forgets a tunnel and every session pinned to it (their clients get 404 and start anew).
    pub fn remove(&self, id: u64) {
        write(&self.tunnels).remove(&id);
        write(&self.sessions).retain(|_, s| s.tunnel_id != id);
    }

    /// A tunnel serving `service`, spreading load round-robin.
    pub fn pick(&self, service: &str) -> Option<Arc<Tunnel>> {
        let tunnels = read(&self.tunnels);
        let mut candidates: Vec<&Arc<Tunnel>> = tunnels
            .values()
            .filter(|t| t.services.iter().any(|s| s == service))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_by_key(|t| t.id);
        let n = self.round_robin.fetch_add(1, Ordering::Relaxed);
        Some(candidates[n % candidates.len()].clone())
    }

    pub fn session_tunnel(
        &self,
        service: &str,
        session_id: &str,
        principal: &str,
    ) -> Result<Arc<Tunnel>, SessionLookup> {
        let session = read(&self.sessions)
            .get(&(service.to_owned(), session_id.to_owned()))
            .cloned()
            .ok_or(SessionLookup::Unknown)?;
        if session.principal != principal {
            return Err(SessionLookup::OtherPrincipal);
        }
        read(&self.tunnels)
            .get(&session.tunnel_id)
            .cloned()
            .ok_or(SessionLookup::TunnelGone)
    }

    pub fn open_session(&self, service: &str, session_id: &str, tunnel_id: u64, principal: &str) {
        write(&self.sessions).insert(
            (service.to_owned(), session_id.to_owned()),
            Session {
                tunnel_id,
                principal: principal.to_owned(),
            },
        );
    }

    pub fn close_session(&self, service: &str, session_id: &str) {
        write(&self.sessions).remove(&(service.to_owned(), session_id.to_owned()));
    }

    pub fn learn_versions(&self, service: &str, versions: Vec<String>) {
        write(&self.versions).insert(service.to_owned(), versions);
    }

    /// The versions the service's backend announced, once one `server/discover` passed by.
    pub fn versions(&self, service: &str) -> Option<Vec<String>> {
        read(&self.versions).get(service).cloned()
    }

    pub fn tunnels(&self) -> Vec<Arc<Tunnel>> {
        read(&self.tunnels).values().cloned().collect()
    }

    /// Number of tunnels serving each service.
    pub fn service_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for t in read(&self.tunnels).values() {
            for s in &t.services {
                *counts.entry(s.clone()).or_default() += 1;
            }
        }
        counts
    }

    pub fn tunnel_count(&self) -> usize {
        read(&self.tunnels).len()
    }

    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }
}

// A poisoned lock only means another thread panicked mid-update of a map whose every update
// is a single insert/remove; the data stays consistent, so keep serving.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
