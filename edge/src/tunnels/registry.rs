//! Which connectors are online and which services each one serves; which legacy MCP sessions
//! this edge serves, and for which connector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use underpass_proto::frame::codes::GOING_AWAY;

use crate::limits::{Activity, Busy, KeyGuard, PerKey};
use crate::tunnels::departed::{self, Departed};
use crate::tunnels::spread::{self, Load};

/// One live tunnel.
#[derive(Debug)]
pub struct Tunnel {
    pub id: u64,
    pub connector: String,
    pub services: Vec<String>,
    /// The build its connector announced in `Hello` (shown, never trusted), at most
    /// [`MAX_BUILD_LEN`] printable ASCII characters.
    pub build: String,
    pub conn: underpass_transport::TunnelConn,
    /// Canonical serial of the connector's certificate (for revocation).
    pub cert_serial: String,
    /// When the tunnel came up (shown in `/readyz`).
    pub since: std::time::SystemTime,
    /// Exchanges in flight on it (see [`spread`]).
    pub load: Load,
    /// Its connector announced a drain: it gets no new exchanges while another tunnel can
    /// take them.
    draining: AtomicBool,
    /// Every certificate its connector proved or was issued on it: the handshake's chain,
    /// then renewed and re-authenticated chains (revoking any of them, or an issuer among
    /// them, closes the tunnel).
    held: Mutex<Vec<CertificateDer<'static>>>,
    /// End of the newest certificate of its connector (Unix seconds): the tunnel closes then.
    expires: tokio::sync::watch::Sender<Option<i64>>,
}

impl Tunnel {
    pub fn serves(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }

    /// Every certificate this tunnel's connector holds or held here (see `held`).
    pub fn held(&self) -> Vec<CertificateDer<'static>> {
        lock(&self.held).clone()
    }

    /// Sets the end of the handshake's certificate and watches it (renewals move it).
    pub fn expires(&self, not_after: Option<i64>) -> tokio::sync::watch::Receiver<Option<i64>> {
        self.expires.send_replace(not_after);
        self.expires.subscribe()
    }

    /// `chain` (leaf first), valid until `not_after`, is now its connector's, issued to it
    /// here or proven on this tunnel: the tunnel lives until then.
    pub fn extend(&self, chain: Vec<CertificateDer<'static>>, not_after: i64) {
        lock(&self.held).extend(chain);
        self.expires
            .send_modify(|end| *end = Some(end.map_or(not_after, |e| e.max(not_after))));
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// End of the newest certificate its connector holds here (Unix seconds), once known.
    pub fn not_after(&self) -> Option<i64> {
        *self.expires.borrow()
    }

    /// Open and not draining: may take new exchanges.
    fn fresh(&self) -> bool {
        !self.is_draining() && self.conn.close_reason().is_none()
    }
}

/// A legacy session as the edge knows it: its service, the connector that serves it (any of
/// that connector's tunnels) and the backend's own session id. The client holds it sealed
/// (`crate::sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub service: String,
    pub connector: String,
    pub id: String,
}

/// A legacy (`Mcp-Session-Id`) session this edge opened or adopted: the principal that
/// opened it.
#[derive(Debug, Clone)]
pub struct Session {
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
    pub key: SessionKey,
    pub principal: String,
    /// Its tunnel, if still up (to end the session at the backend).
    pub tunnel: Option<Arc<Tunnel>>,
}

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    tunnels: RwLock<HashMap<u64, Arc<Tunnel>>>,
    sessions: RwLock<HashMap<SessionKey, Session>>,
    /// Protocol versions each service's backend announced in `server/discover`.
    versions: RwLock<HashMap<String, Vec<String>>>,
    /// Sessions (and 2024-11-05 bridges) held per principal.
    session_slots: PerKey<String>,
    /// Sessions seen ending here (DELETE, the backend's 404, idle expiry with a DELETE), and
    /// when: their still valid sealed ids get 404 from the edge itself, as before sealing
    /// (some backends answer an ended session with 400). Pruned by [`Registry::expire_idle`],
    /// at most [`MAX_ENDED`].
    ended: Mutex<HashMap<SessionKey, Instant>>,
    /// Connectors whose tunnels closed lately (see [`Registry::settle`]).
    departed: Mutex<Departed>,
    /// Woken whenever a tunnel comes up.
    added: tokio::sync::Notify,
    /// `[tunnel] max_exchanges_per_tunnel` (0: no cap, as in unit tests).
    exchange_cap: usize,
    /// When this edge started: for a moment after, connectors are still dialing in.
    started: Option<Instant>,
    /// Connectors an operator drained (admin API): their tunnels, present and future, get
    /// no new work; requests of their open sessions still reach them.
    drained: RwLock<std::collections::BTreeSet<String>>,
    /// Tunnels accepted since start (`underpass_tunnel_connects_total`).
    pub connects: super::connects::Connects,
    /// The latest figures each connector reported (`Stats`).
    pub connector_stats: super::stats::ConnectorStats,
    /// Set by [`Registry::close_all`]: a tunnel whose handshake ends after it is closed at once.
    closed: AtomicBool,
}

/// Most ended sessions remembered; beyond, the older half is forgotten (their ids then reach
/// the backend, which refuses them itself).
const MAX_ENDED: usize = 16 * 1024;

/// The reason of the tunnels' closes when the edge exits.
const SHUTTING_DOWN: &[u8] = b"edge shutting down";

/// Why no tunnel could be chosen for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionLookup {
    OtherPrincipal,
    /// Ended through this edge.
    Ended,
    TunnelGone,
}

/// Longest connector build string kept.
pub const MAX_BUILD_LEN: usize = 64;

/// A connector's self-described build as shown by the admin API: printable ASCII only, cut
/// to [`MAX_BUILD_LEN`] (a connector's words, never trusted, must not grow the edge's memory
/// or inject markup or control characters into views and logs).
fn shown_build(build: &str) -> String {
    let shown: String = build
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_BUILD_LEN)
        .collect();
    if shown.is_empty() {
        "unknown".to_owned()
    } else {
        shown
    }
}

impl Registry {
    /// An empty registry whose tunnels take at most `exchange_cap` exchanges at once.
    pub fn with_exchange_cap(exchange_cap: usize) -> Self {
        Registry {
            exchange_cap,
            started: Some(Instant::now()),
            ..Registry::default()
        }
    }

    pub fn add(
        &self,
        connector: String,
        services: Vec<String>,
        build: &str,
        conn: underpass_transport::TunnelConn,
        cert_serial: String,
    ) -> Arc<Tunnel> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connects.count(&connector, conn.transport());
        let held = Mutex::new(conn.peer_chain());
        let tunnel = Arc::new(Tunnel {
            id,
            connector,
            services,
            build: shown_build(build),
            conn,
            cert_serial,
            since: std::time::SystemTime::now(),
            load: Load::default(),
            draining: AtomicBool::new(false),
            held,
            expires: tokio::sync::watch::Sender::new(None),
        });
        write(&self.tunnels).insert(id, tunnel.clone());
        if self.closed.load(Ordering::SeqCst) {
            // The edge is exiting: this tunnel finished its handshake after `close_all`.
            tunnel.conn.close(GOING_AWAY, SHUTTING_DOWN);
        }
        self.added.notify_waiters();
        tunnel
    }

    /// Forgets a tunnel, and the sessions of its connector once none of its tunnels is left
    /// (their places given back; a later request re-adopts a session whose connector is back).
    pub fn remove(&self, id: u64) {
        let mut tunnels = write(&self.tunnels);
        if let Some(gone) = tunnels.remove(&id) {
            lock(&self.departed).record(&gone.connector, &gone.services, Instant::now());
        }
        write(&self.sessions).retain(|k, _| tunnels.values().any(|t| t.connector == k.connector));
    }

    /// A live tunnel serving `service`, by power of two choices on exchanges in flight (see
    /// [`spread`]); a connector's TCP tunnel is passed over while it has a QUIC one (see
    /// [`super::prefer`]).
    pub fn pick(&self, service: &str) -> Option<Arc<Tunnel>> {
        let drained = read(&self.drained).clone();
        self.pick_where(service, |t| !drained.contains(&t.connector))
    }

    /// Like [`Registry::pick`], among the tunnels `allowed` accepts. A tunnel whose connection
    /// is already closed (not yet removed) is never picked; a draining one only when no other
    /// is left.
    pub fn pick_where(
        &self,
        service: &str,
        allowed: impl Fn(&Tunnel) -> bool,
    ) -> Option<Arc<Tunnel>> {
        let tunnels = read(&self.tunnels);
        let candidates: Vec<&Arc<Tunnel>> = tunnels
            .values()
            .filter(|t| t.serves(service) && allowed(t) && t.conn.close_reason().is_none())
            .filter(|t| self.exchange_cap == 0 || t.load.outstanding() < self.exchange_cap)
            .collect();
        let candidates = super::prefer::fresh_first(candidates, |t| t.is_draining());
        let candidates =
            super::prefer::preferred(candidates, |t| (t.connector.as_str(), t.conn.transport()));
        let loads: Vec<usize> = candidates.iter().map(|t| t.load.outstanding()).collect();
        spread::choose(&loads, rand::random()).map(|i| candidates[i].clone())
    }

    /// Another tunnel for an exchange that failed on `failed`: of another connector when one
    /// serves `service` (the failed tunnel's connector may be gone altogether), else another
    /// tunnel of the same connector.
    pub fn pick_other(&self, service: &str, failed: &Tunnel) -> Option<Arc<Tunnel>> {
        let drained = read(&self.drained).clone();
        self.pick_where(service, |t| {
            t.connector != failed.connector && !drained.contains(&t.connector)
        })
        .or_else(|| {
            self.pick_where(service, |t| {
                t.id != failed.id
                    && (t.connector == failed.connector || !drained.contains(&t.connector))
            })
        })
    }

    /// The tunnel a request of session `key` goes down: one of its connector's (a session
    /// opened on another edge too: the sealed id vouches for it).
    pub fn session_tunnel(
        &self,
        key: &SessionKey,
        principal: &str,
    ) -> Result<Arc<Tunnel>, SessionLookup> {
        if read(&self.sessions)
            .get(key)
            .is_some_and(|s| s.principal != principal)
        {
            return Err(SessionLookup::OtherPrincipal);
        }
        if lock(&self.ended).contains_key(key) {
            return Err(SessionLookup::Ended);
        }
        self.connector_tunnel(&key.service, &key.connector)
            .ok_or(SessionLookup::TunnelGone)
    }

    /// A live tunnel of `connector` serving `service` (spread as [`Registry::pick`] does).
    pub fn connector_tunnel(&self, service: &str, connector: &str) -> Option<Arc<Tunnel>> {
        self.pick_where(service, |t| t.connector == connector)
    }

    /// Waits (at most [`departed::HOLD`]) while the tunnels that could take a request for
    /// `service` (of `connector`, for a session) are all draining, or went away lately, until
    /// a fresh one comes up: a connector being restarted in a rolling update, or moving from
    /// a broken QUIC path to TCP, is back within that, and the request goes on as if nothing
    /// happened. Returns at once otherwise (no connector seen lately is a 503 at once).
    pub async fn settle(&self, service: &str, connector: Option<&str>) {
        let deadline = tokio::time::Instant::now() + departed::HOLD;
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            // Registered before looking, so a tunnel added in between is not missed.
            added.as_mut().enable();
            if !self.awaiting_return(service, connector) {
                return;
            }
            // Also looks again now and then: a draining tunnel may just have closed.
            let next = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            tokio::select! {
                () = added => {}
                () = tokio::time::sleep_until(next) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }

    /// No fresh tunnel for `service` (of `connector`), but a draining one, or one that closed
    /// lately, or (for a session) this edge has only just started.
    fn awaiting_return(&self, service: &str, connector: Option<&str>) -> bool {
        let tunnels = read(&self.tunnels);
        let drained = read(&self.drained);
        // New work (no session) never waits for an operator-drained connector.
        let mut matching = tunnels.values().filter(|t| {
            t.serves(service)
                && match connector {
                    Some(c) => t.connector == c,
                    None => !drained.contains(&t.connector),
                }
        });
        let mut draining = false;
        if matching.any(|t| {
            draining |= t.is_draining();
            t.fresh()
        }) {
            return false;
        }
        // A session's connector not seen yet by an edge that just started (a rolling
        // restart): it is dialing in.
        let starting =
            connector.is_some() && self.started.is_some_and(|at| at.elapsed() < departed::HOLD);
        draining
            || starting
            || lock(&self.departed).expected_back(service, connector, Instant::now())
    }

    /// Whether a live tunnel serves `service` (of `connector`): when none can be picked,
    /// tells "all at their cap" (503, retry shortly) from "none online".
    pub fn serving(&self, service: &str, connector: Option<&str>) -> bool {
        let drained = read(&self.drained);
        read(&self.tunnels).values().any(|t| {
            t.serves(service)
                && match connector {
                    Some(c) => t.connector == c,
                    None => !drained.contains(&t.connector),
                }
                && t.conn.close_reason().is_none()
        })
    }

    /// An operator drains `connector`: none of its tunnels, live or to come, gets new work
    /// until [`Registry::resume`]; its open sessions go on. Returns its live tunnels.
    pub fn drain_connector(&self, connector: &str) -> usize {
        write(&self.drained).insert(connector.to_owned());
        self.connector_tunnels(connector)
    }

    /// Undoes [`Registry::drain_connector`]; returns whether it was drained, and its live
    /// tunnels.
    pub fn resume(&self, connector: &str) -> (bool, usize) {
        let was = write(&self.drained).remove(connector);
        (was, self.connector_tunnels(connector))
    }

    /// Whether an operator drained `connector`.
    pub fn is_drained(&self, connector: &str) -> bool {
        read(&self.drained).contains(connector)
    }

    fn connector_tunnels(&self, connector: &str) -> usize {
        read(&self.tunnels)
            .values()
            .filter(|t| t.connector == connector)
            .count()
    }

    /// Sessions per (service, principal).
    pub fn session_counts(&self) -> Vec<(String, String, usize)> {
        let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for (key, s) in read(&self.sessions).iter() {
            *counts
                .entry((key.service.clone(), s.principal.clone()))
                .or_default() += 1;
        }
        counts.into_iter().map(|((s, p), n)| (s, p, n)).collect()
    }

    /// Forgets the sessions of `principal` (in `service`, if given), remembers they ended
    /// (their ids get 404 here from now on), and returns them to be ended at their backends.
    pub fn end_sessions(&self, principal: &str, service: Option<&str>) -> Vec<ExpiredSession> {
        let mut gone = Vec::new();
        write(&self.sessions).retain(|key, s| {
            let matches = s.principal == principal && service.is_none_or(|svc| key.service == svc);
            if matches {
                gone.push(key.clone());
            }
            !matches
        });
        gone.into_iter()
            .map(|key| {
                self.mark_ended(&key);
                ExpiredSession {
                    tunnel: self.connector_tunnel(&key.service, &key.connector),
                    key,
                    principal: principal.to_owned(),
                }
            })
            .collect()
    }

    /// Closes every tunnel, and any added later (the edge is shutting down); returns them, to
    /// wait until they are [finished](underpass_transport::TunnelConn::finished).
    pub fn close_all(&self) -> Vec<underpass_transport::TunnelConn> {
        self.closed.store(true, Ordering::SeqCst);
        read(&self.tunnels)
            .values()
            .map(|tunnel| {
                tunnel.conn.close(GOING_AWAY, SHUTTING_DOWN);
                tunnel.conn.clone()
            })
            .collect()
    }

    /// Records a session the backend opened; `slot` is its reserved place in the
    /// principal's count (see [`Registry::reserve_session`]), taken now if absent.
    pub fn open_session(&self, key: SessionKey, principal: &str, slot: Option<SessionSlot>) {
        let slot = slot.unwrap_or_else(|| self.session_slots.acquire(&principal.to_owned()));
        // A backend may hand out an id again.
        lock(&self.ended).remove(&key);
        write(&self.sessions).insert(
            key,
            Session {
                principal: principal.to_owned(),
                activity: Arc::default(),
                _slot: Arc::new(slot),
            },
        );
    }

    /// Adopts a session this edge did not know (opened on another edge, or forgotten here
    /// while its connector was away) once its backend answered a request of it: from now on
    /// it counts against its principal and expires here. Returns the request in flight on
    /// it when adopted, `None` when the session was known already.
    pub fn adopt_session(&self, key: &SessionKey, principal: &str) -> Option<Busy> {
        let mut sessions = write(&self.sessions);
        if sessions.contains_key(key) {
            return None;
        }
        let session = Session {
            principal: principal.to_owned(),
            activity: Arc::default(),
            _slot: Arc::new(self.session_slots.acquire(&principal.to_owned())),
        };
        let busy = session.activity.begin();
        sessions.insert(key.clone(), session);
        Some(busy)
    }

    /// A place for one more session of `principal`, unless it holds `cap` already.
    pub fn reserve_session(&self, principal: &str, cap: usize) -> Option<SessionSlot> {
        self.session_slots.try_acquire(&principal.to_owned(), cap)
    }

    /// Marks a request in flight on a session of `principal` until the guard drops (a
    /// session is idle while it has none).
    pub fn use_session(&self, key: &SessionKey, principal: &str) -> Option<Busy> {
        let sessions = read(&self.sessions);
        let session = sessions.get(key)?;
        (session.principal == principal).then(|| session.activity.begin())
    }

    /// Forgets every session with no request for `idle` and returns them (and ended
    /// sessions remembered for longer than `idle`).
    pub fn expire_idle(&self, idle: Duration) -> Vec<ExpiredSession> {
        lock(&self.ended).retain(|_, at| at.elapsed() < idle);
        let mut gone = Vec::new();
        write(&self.sessions).retain(|key, s| {
            let keep = s.activity.idle_for().is_none_or(|d| d < idle);
            if !keep {
                gone.push((key.clone(), s.principal.clone()));
            }
            keep
        });
        gone.into_iter()
            .map(|(key, principal)| ExpiredSession {
                tunnel: self.connector_tunnel(&key.service, &key.connector),
                key,
                principal,
            })
            .collect()
    }

    /// Forgets a session that ended (and remembers that it did).
    pub fn close_session(&self, key: &SessionKey) {
        write(&self.sessions).remove(key);
        self.mark_ended(key);
    }

    /// Remembers that a session ended: its id gets 404 here from now on.
    pub fn mark_ended(&self, key: &SessionKey) {
        let mut ended = lock(&self.ended);
        if ended.len() >= MAX_ENDED {
            let mut times: Vec<Instant> = ended.values().copied().collect();
            let (_, median, _) = times.select_nth_unstable(MAX_ENDED / 2);
            let median = *median;
            ended.retain(|_, at| *at > median);
        }
        ended.insert(key.clone(), Instant::now());
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
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(id: &str) -> SessionKey {
        SessionKey {
            service: "svc".into(),
            connector: "dc1".into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_connectors_build_is_shown_bounded_and_printable() {
        assert_eq!(
            shown_build("underpass-connector 0.1.0"),
            "underpass-connector 0.1.0"
        );
        assert_eq!(shown_build("x\n<script>\u{1b}[31m"), "x<script>[31m");
        assert_eq!(shown_build(&"a".repeat(10_000)).len(), MAX_BUILD_LEN);
        assert_eq!(shown_build("\n\t"), "unknown");
    }

    #[test]
    fn sessions_count_against_their_principal_and_expire_only_when_idle() {
        let r = Registry::default();
        let slot = r.reserve_session("alice", 2).expect("room");
        r.open_session(key("s1"), "alice", Some(slot));
        r.open_session(key("s2"), "alice", None);
        assert!(
            r.reserve_session("alice", 2).is_none(),
            "alice is at her cap"
        );
        assert!(r.reserve_session("bob", 2).is_some(), "bob has his own");
        r.close_session(&key("s2"));
        assert!(
            r.reserve_session("alice", 2).is_some(),
            "a closed session gives back"
        );

        // A request in flight keeps the session; another principal's does not count.
        let busy = r.use_session(&key("s1"), "alice").expect("known session");
        assert!(r.use_session(&key("s1"), "mallory").is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert!(r.expire_idle(Duration::from_millis(10)).is_empty());
        drop(busy);
        std::thread::sleep(Duration::from_millis(30));
        let gone = r.expire_idle(Duration::from_millis(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].key.id.as_str(), gone[0].principal.as_str()),
            ("s1", "alice")
        );
        assert!(gone[0].tunnel.is_none(), "no tunnel of dc1 is up");
        assert_eq!(r.session_count(), 0);
        let both = (r.reserve_session("alice", 2), r.reserve_session("alice", 2));
        assert!(
            both.0.is_some() && both.1.is_some(),
            "expiry gave the places back"
        );
    }

    #[test]
    fn a_session_from_another_edge_is_adopted_once_and_counted() {
        let r = Registry::default();
        assert_eq!(
            r.session_tunnel(&key("far"), "alice").map(|t| t.id),
            Err(SessionLookup::TunnelGone),
            "no tunnel of its connector here"
        );
        let busy = r.adopt_session(&key("far"), "alice").expect("adopted");
        assert!(r.adopt_session(&key("far"), "alice").is_none(), "known now");
        assert_eq!(r.session_count(), 1);
        assert!(r.reserve_session("alice", 1).is_none(), "it counts");
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            r.expire_idle(Duration::from_millis(10)).is_empty(),
            "in use"
        );
        drop(busy);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.expire_idle(Duration::from_millis(10)).len(), 1);
        assert!(
            r.reserve_session("alice", 1).is_some(),
            "expiry gave it back"
        );
        // A session ended here is refused here, until it is reopened or long forgotten.
        r.close_session(&key("far"));
        assert_eq!(
            r.session_tunnel(&key("far"), "alice").map(|t| t.id),
            Err(SessionLookup::Ended)
        );
        r.open_session(key("far"), "alice", None);
        assert_eq!(
            r.session_tunnel(&key("far"), "alice").map(|t| t.id),
            Err(SessionLookup::TunnelGone),
            "reopened (a backend may hand out an id again)"
        );
        r.mark_ended(&key("old"));
        std::thread::sleep(Duration::from_millis(30));
        r.expire_idle(Duration::from_millis(10));
        assert_eq!(
            r.session_tunnel(&key("old"), "alice").map(|t| t.id),
            Err(SessionLookup::TunnelGone),
            "pruned after the idle timeout"
        );
        for i in 0..MAX_ENDED + 10 {
            r.mark_ended(&key(&format!("x{i}")));
        }
        assert!(lock(&r.ended).len() <= MAX_ENDED, "bounded");
        // Another principal never reaches a known session.
        r.open_session(key("mine"), "alice", None);
        assert_eq!(
            r.session_tunnel(&key("mine"), "mallory").map(|t| t.id),
            Err(SessionLookup::OtherPrincipal)
        );
    }
}
