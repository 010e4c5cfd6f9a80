//! The input requests the edge relayed to 2025-11-25 clients and waits for them to answer
//! (see `asks`), by session and the id the edge gave each. Bounded per session and for the
//! edge; an entry lives as long as the call waiting on it. A leaf `state` holds.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::oneshot;

/// Most unanswered input requests of one session.
pub const PER_SESSION: usize = 64;
/// Most unanswered input requests of all sessions.
pub const TOTAL: usize = 16_384;

/// Why no more input requests can be relayed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("the session already has {PER_SESSION} input requests unanswered")]
    Session,
    #[error("the edge already has {TOTAL} input requests unanswered")]
    Edge,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<(String, String), oneshot::Sender<Value>>,
    per_session: HashMap<String, usize>,
}

impl Waiting {
    fn remove(&mut self, session: &str, id: &str) -> Option<oneshot::Sender<Value>> {
        let sender = self.by_id.remove(&(session.to_owned(), id.to_owned()))?;
        match self.per_session.get_mut(session) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.per_session.remove(session);
            }
        }
        Some(sender)
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct PendingAsks {
    waiting: Mutex<Waiting>,
}

impl PendingAsks {
    /// Waits for the answer of `session`'s client to the request the edge sent it as `id`.
    pub fn expect(
        &self,
        session: &str,
        id: &str,
    ) -> Result<oneshot::Receiver<Value>, PendingError> {
        let mut w = self.waiting.lock().map_err(|_| PendingError::Edge)?;
        if w.by_id.len() >= TOTAL {
            return Err(PendingError::Edge);
        }
        let count = w.per_session.get(session).copied().unwrap_or(0);
        if count >= PER_SESSION {
            return Err(PendingError::Session);
        }
        let (tx, rx) = oneshot::channel();
        if w.by_id
            .insert((session.to_owned(), id.to_owned()), tx)
            .is_none()
        {
            w.per_session.insert(session.to_owned(), count + 1);
        }
        Ok(rx)
    }

    /// Stops waiting for `id` (answered, or the call ended).
    pub fn forget(&self, session: &str, id: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(session, id);
        }
    }

    /// Hands a response of `session`'s client to the call waiting for it: `false` when none is
    /// (an id the edge never sent this session, or sent and no longer waits for).
    pub fn answer(&self, session: &str, response: Value) -> bool {
        let Some(id) = response.get("id").and_then(Value::as_str) else {
            return false;
        };
        let sender = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(session, id));
        sender.is_some_and(|s| s.send(response).is_ok())
    }

    /// Unanswered input requests held.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.by_id.len())
    }
}

#[cfg(test)]
mod tests;
