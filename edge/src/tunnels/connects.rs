//! Tunnels accepted since start, by connector and transport
//! (`underpass_tunnel_connects_total`): reconnects show as its rate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::metrics::capped::Capped;

/// Most distinct connector names kept as label values of `tunnel_connects_total`; beyond,
/// `other` (names come from verified certificates, but a CA may issue many).
pub const MAX_CONNECTORS: usize = 1024;

/// Tunnels accepted since start, by connector and transport.
pub struct Connects {
    names: Capped,
    counts: Mutex<BTreeMap<(Arc<str>, &'static str), u64>>,
}

impl Default for Connects {
    fn default() -> Self {
        Connects {
            names: Capped::new(MAX_CONNECTORS),
            counts: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Connects {
    /// A tunnel of `connector` over `transport` was accepted.
    pub fn count(&self, connector: &str, transport: &'static str) {
        let labels = (self.names.label(connector), transport);
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(labels)
            .or_insert(0) += 1;
    }

    /// (connector, transport, tunnels accepted), for `/metrics`.
    pub fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|((connector, transport), n)| (connector.to_string(), *transport, *n))
            .collect()
    }
}
