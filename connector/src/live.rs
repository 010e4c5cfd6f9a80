//! Live tunnels per edge, counted by the dialers ([`crate::tunnel`]) and read by readiness
//! ([`crate::health`]) — a leaf, so the tunnel code depends on nothing above it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Live tunnels per edge (as configured in `edges`), counted by the dialers.
#[derive(Debug, Default)]
pub struct LiveTunnels {
    counts: Mutex<BTreeMap<String, usize>>,
}

/// One live tunnel; dropping it counts it down.
#[derive(Debug)]
pub struct Up {
    live: Arc<LiveTunnels>,
    edge: String,
}

impl LiveTunnels {
    /// Counts a tunnel to `edge` up until the returned guard is dropped.
    pub fn up(self: &Arc<Self>, edge: &str) -> Up {
        *self.lock().entry(edge.to_owned()).or_default() += 1;
        Up {
            live: self.clone(),
            edge: edge.to_owned(),
        }
    }

    /// Live tunnels per edge now.
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(n) = self.live.lock().get_mut(&self.edge) {
            *n = n.saturating_sub(1);
        }
    }
}
