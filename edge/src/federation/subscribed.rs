//! The resources a 2025-11-25 client subscribed to (`resources/subscribe`) at services that
//! speak 2026-07-28 only, which have no such method: the edge keeps them for the client's
//! session, and its event stream asks those backends for them with `subscriptions/listen`
//! (see `listen`). Each session's set is watched: a stream opens its backends' listens again
//! when the set changes.
//!
//! Bounded three ways, each refusal said to the client: URIs per session
//! ([`MAX_RESOURCE_SUBSCRIPTIONS`], as one `subscriptions/listen` may name), bytes per
//! principal (one caller cannot take what others need), bytes for the whole edge. A session's
//! set is forgotten when the client ends the session, or once it is idle with no stream open.
//! A leaf: `App` holds it; it knows nothing of the edge.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use underpass_mcp::federation::notifications::MAX_RESOURCE_SUBSCRIPTIONS;

/// What one principal's sessions may hold, in bytes of service names and URIs.
pub const PRINCIPAL_BYTES: usize = 1 << 20;
/// What the whole edge may hold.
pub const EDGE_BYTES: usize = 32 << 20;
/// What a session's entry counts for, beside its URIs (so that empty sessions are bounded too).
const ENTRY_BYTES: usize = 256;
/// What each subscribed URI counts for, beside its text.
const URI_BYTES: usize = 64;

/// Why a subscription was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "this session already holds {MAX_RESOURCE_SUBSCRIPTIONS} resource subscriptions: \
         unsubscribe from some first"
    )]
    Session,
    #[error("your sessions hold too many resource subscriptions: unsubscribe from some, or end idle sessions")]
    Principal,
    #[error("the edge holds as many resource subscriptions as it may: retry later")]
    Edge,
}

/// One session's subscriptions.
struct Entry {
    principal: String,
    /// (service, the backend's URI).
    uris: BTreeSet<(String, String)>,
    bytes: usize,
    /// Ticked at every change; each open event stream of the session holds a receiver.
    changed: watch::Sender<()>,
    used: Instant,
}

#[derive(Default)]
struct Held {
    sessions: HashMap<String, Entry>,
    /// Bytes by principal.
    principals: HashMap<String, usize>,
    bytes: usize,
}

impl Held {
    fn charge(&mut self, principal: &str, bytes: usize) -> Result<(), Refused> {
        let theirs = self.principals.get(principal).copied().unwrap_or(0);
        if theirs + bytes > PRINCIPAL_BYTES {
            return Err(Refused::Principal);
        }
        if self.bytes + bytes > EDGE_BYTES {
            return Err(Refused::Edge);
        }
        *self.principals.entry(principal.to_owned()).or_default() += bytes;
        self.bytes += bytes;
        Ok(())
    }

    fn refund(&mut self, principal: &str, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
        if let Some(theirs) = self.principals.get_mut(principal) {
            *theirs = theirs.saturating_sub(bytes);
            if *theirs == 0 {
                self.principals.remove(principal);
            }
        }
    }

    /// The session's entry, made (and charged for) when it has none, charged `extra` bytes
    /// more; nothing is charged or made when a bound refuses.
    fn entry(
        &mut self,
        session: &str,
        principal: &str,
        extra: usize,
        now: Instant,
    ) -> Result<&mut Entry, Refused> {
        let new = !self.sessions.contains_key(session);
        self.charge(principal, extra + if new { ENTRY_BYTES } else { 0 })?;
        let entry = self
            .sessions
            .entry(session.to_owned())
            .or_insert_with(|| Entry {
                principal: principal.to_owned(),
                uris: BTreeSet::new(),
                bytes: ENTRY_BYTES,
                changed: watch::channel(()).0,
                used: now,
            });
        entry.bytes += extra;
        entry.used = now;
        Ok(entry)
    }

    fn remove(&mut self, session: &str) {
        if let Some(entry) = self.sessions.remove(session) {
            self.refund(&entry.principal, entry.bytes);
        }
    }
}

/// What a subscription counts for.
fn uri_bytes(service: &str, uri: &str) -> usize {
    service.len() + uri.len() + URI_BYTES
}

/// The subscriptions of every session (see the module documentation).
#[derive(Default)]
pub struct Subscribed(Mutex<Held>);

impl Subscribed {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes `session` (of `principal`) to `uri` at `service`; subscribing again is no
    /// change.
    pub fn subscribe(
        &self,
        session: &str,
        principal: &str,
        service: &str,
        uri: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        let mut held = self.held();
        let key = (service.to_owned(), uri.to_owned());
        if let Some(entry) = held.sessions.get_mut(session) {
            entry.used = now;
            if entry.uris.contains(&key) {
                return Ok(());
            }
            if entry.uris.len() >= MAX_RESOURCE_SUBSCRIPTIONS {
                return Err(Refused::Session);
            }
        }
        let entry = held.entry(session, principal, uri_bytes(service, uri), now)?;
        entry.uris.insert(key);
        entry.changed.send_replace(());
        Ok(())
    }

    /// Unsubscribes `session` from `uri` at `service` (no change when it was not subscribed).
    pub fn unsubscribe(&self, session: &str, service: &str, uri: &str, now: Instant) {
        let mut held = self.held();
        let Some(entry) = held.sessions.get_mut(session) else {
            return;
        };
        entry.used = now;
        if !entry.uris.remove(&(service.to_owned(), uri.to_owned())) {
            return;
        }
        let bytes = uri_bytes(service, uri);
        entry.bytes = entry.bytes.saturating_sub(bytes);
        entry.changed.send_replace(());
        let principal = entry.principal.clone();
        held.refund(&principal, bytes);
    }

    /// The backend URIs `session` is subscribed to at `service`.
    pub fn uris(&self, session: &str, service: &str) -> Vec<String> {
        self.held()
            .sessions
            .get(session)
            .map(|e| {
                e.uris
                    .iter()
                    .filter(|(s, _)| s == service)
                    .map(|(_, u)| u.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `session` is subscribed to `uri` at `service`.
    pub fn has(&self, session: &str, service: &str, uri: &str) -> bool {
        self.held()
            .sessions
            .get(session)
            .is_some_and(|e| e.uris.contains(&(service.to_owned(), uri.to_owned())))
    }

    /// A receiver that sees every change of `session`'s set from now on; it sees its sender
    /// gone once the session is ended or forgotten. `None` when the session cannot be held.
    pub fn watch(
        &self,
        session: &str,
        principal: &str,
        now: Instant,
    ) -> Option<watch::Receiver<()>> {
        let mut held = self.held();
        let entry = held.entry(session, principal, 0, now).ok()?;
        Some(entry.changed.subscribe())
    }

    /// Forgets `session`'s subscriptions: its client ended it.
    pub fn end(&self, session: &str) {
        self.held().remove(session);
    }

    /// Forgets the sessions unused for `idle` that no stream watches; returns how many.
    pub fn forget_idle(&self, idle: Duration, now: Instant) -> usize {
        let mut held = self.held();
        let doomed: Vec<String> = held
            .sessions
            .iter()
            .filter(|(_, e)| e.changed.receiver_count() == 0 && now.duration_since(e.used) >= idle)
            .map(|(s, _)| s.clone())
            .collect();
        for session in &doomed {
            held.remove(session);
        }
        doomed.len()
    }

    /// Sessions and bytes held.
    pub fn size(&self) -> (usize, usize) {
        let held = self.held();
        (held.sessions.len(), held.bytes)
    }
}

#[cfg(test)]
mod tests;
