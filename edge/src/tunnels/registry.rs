//! Which connectors are online and which services each one serves; which legacy MCP session
//! is pinned to which connector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::limits::{Activity, Busy, KeyGuard, PerKey};
use crate::tunnels::spread::{self, Load};

/// One live tunnel.
#[derive(Debug)]
pub struct Tunnel {
    pub id: u64,
    pub connector: String,
    pub services: Vec<String>,
    pub conn: underpass_transport::TunnelConn,
    /// Canonical serial of the connector's certificate (for revocation).
    pub cert_serial: String,
    /// Exchanges in flight on it (see [`spread`]).
    pub load: Load,
}

impl Tunnel {
    pub fn serves(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }
}

/// A legacy (`Mcp-Session-Id`) session: the tunnel that answered its `initialize`, and the
/// principal that opened it.
#[derive(Debug, Clone)]
pub struct Session {
    pub tunnel_id: u64,
    pub principal: String,
    /// Requests in flight on the session and when the last one ended (idle expiry).
    activity: Arc<Activity>,
    /// The session's place in its principal's count (`[clients] max_sessions_per_principal`).
    _slot: Arc<SessionSlot>,
}

/// One session counted against its principal's cap; given back when dropped.
pub type SessionSlot = KeyGuard<String>;

/// A session the edge forgot because it was idle too long.
pub struct ExpiredSession {
    pub service: String,
    pub id: String,
    pub principal: String,
    /// Its tunnel, if still up (to end the session at the backend).
    pub tunnel: Option<Arc<Tunnel>>,
}

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    tunnels: RwLock<HashMap<u64, Arc<Tunnel>>>,
    /// Keyed by (service, session id).
    sessions: RwLock<HashMap<(String, String), Session>>,
    /// Protocol versions each service's backend announced in `server/discover`.
    versions: RwLock<HashMap<String, Vec<String>>>,
    /// Sessions (and 2024-11-05 bridges) held per principal.
    session_slots: PerKey<String>,
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
        conn: underpass_transport::TunnelConn,
        cert_serial: String,
    ) -> Arc<Tunnel> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tunnel = Arc::new(Tunnel {
            id,
            connector,
            services,
            conn,
            cert_serial,
            load: Load::default(),
        });
        write(&self.tunnels).insert(id, tunnel.clone());
        tunnel
    }

    /// Forgets a tunnel and every session pinned to it (their clients get 404 and start anew).
    pub fn remove(&self, id: u64) {
        write(&self.tunnels).remove(&id);
        write(&self.sessions).retain(|_, s| s.tunnel_id != id);
    }

    /// A live tunnel serving `service`, by power of two choices on exchanges in flight (see
    /// [`spread`]).
    pub fn pick(&self, service: &str) -> Option<Arc<Tunnel>> {
        self.pick_where(service, |_| true)
    }

    /// Like [`Registry::pick`], among the tunnels `allowed` accepts. A tunnel whose connection
    /// is already closed (not yet removed) is never picked.
    pub fn pick_where(
        &self,
        service: &str,
        allowed: impl Fn(&Tunnel) -> bool,
    ) -> Option<Arc<Tunnel>> {
        let tunnels = read(&self.tunnels);
        let candidates: Vec<&Arc<Tunnel>> = tunnels
            .values()
            .filter(|t| t.serves(service) && allowed(t) && t.conn.close_reason().is_none())
            .collect();
        let loads: Vec<usize> = candidates.iter().map(|t| t.load.outstanding()).collect();
        spread::choose(&loads, rand::random()).map(|i| candidates[i].clone())
    }

    /// Another tunnel for an exchange that failed on `failed`: of another connector when one
    /// serves `service` (the failed tunnel's connector may be gone altogether), else another
    /// tunnel of the same connector.
    pub fn pick_other(&self, service: &str, failed: &Tunnel) -> Option<Arc<Tunnel>> {
        self.pick_where(service, |t| t.connector != failed.connector)
            .or_else(|| self.pick_where(service, |t| t.id != failed.id))
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

    /// Records a session the backend opened; `slot` is its reserved place in the
    /// principal's count (see [`Registry::reserve_session`]), taken now if absent.
    pub fn open_session(
        &self,
        service: &str,
        session_id: &str,
        tunnel_id: u64,
        principal: &str,
        slot: Option<SessionSlot>,
    ) {
        let slot = slot.unwrap_or_else(|| self.session_slots.acquire(&principal.to_owned()));
        write(&self.sessions).insert(
            (service.to_owned(), session_id.to_owned()),
            Session {
                tunnel_id,
                principal: principal.to_owned(),
                activity: Arc::default(),
                _slot: Arc::new(slot),
            },
        );
    }

    /// A place for one more session of `principal`, unless it holds `cap` already.
    pub fn reserve_session(&self, principal: &str, cap: usize) -> Option<SessionSlot> {
        self.session_slots.try_acquire(&principal.to_owned(), cap)
    }

    /// Marks a request in flight on a session of `principal` until the guard drops (a
    /// session is idle while it has none).
    pub fn use_session(&self, service: &str, session_id: &str, principal: &str) -> Option<Busy> {
        let sessions = read(&self.sessions);
        let session = sessions.get(&(service.to_owned(), session_id.to_owned()))?;
        (session.principal == principal).then(|| session.activity.begin())
    }

    /// Forgets every session with no request for `idle` and returns them.
    pub fn expire_idle(&self, idle: std::time::Duration) -> Vec<ExpiredSession> {
        let mut gone = Vec::new();
        write(&self.sessions).retain(|key, s| {
            let keep = s.activity.idle_for().is_none_or(|d| d < idle);
            if !keep {
                gone.push((key.clone(), s.tunnel_id, s.principal.clone()));
            }
            keep
        });
        let tunnels = read(&self.tunnels);
        gone.into_iter()
            .map(|((service, id), tunnel_id, principal)| ExpiredSession {
                service,
                id,
                principal,
                tunnel: tunnels.get(&tunnel_id).cloned(),
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sessions_count_against_their_principal_and_expire_only_when_idle() {
        let r = Registry::default();
        let slot = r.reserve_session("alice", 2).expect("room");
        r.open_session("svc", "s1", 7, "alice", Some(slot));
        r.open_session("svc", "s2", 7, "alice", None);
        assert!(
            r.reserve_session("alice", 2).is_none(),
            "alice is at her cap"
        );
        assert!(r.reserve_session("bob", 2).is_some(), "bob has his own");
        r.close_session("svc", "s2");
        assert!(
            r.reserve_session("alice", 2).is_some(),
            "a closed session gives back"
        );

        // A request in flight keeps the session; another principal's does not count.
        let busy = r.use_session("svc", "s1", "alice").expect("known session");
        assert!(r.use_session("svc", "s1", "mallory").is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert!(r.expire_idle(Duration::from_millis(10)).is_empty());
        drop(busy);
        std::thread::sleep(Duration::from_millis(30));
        let gone = r.expire_idle(Duration::from_millis(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].id.as_str(), gone[0].principal.as_str()),
            ("s1", "alice")
        );
        assert!(gone[0].tunnel.is_none(), "tunnel 7 is not up");
        assert_eq!(r.session_count(), 0);
        let both = (r.reserve_session("alice", 2), r.reserve_session("alice", 2));
        assert!(
            both.0.is_some() && both.1.is_some(),
            "expiry gave the places back"
        );
    }
}
