//! Resource limits on the client side, so that no client (authenticated or not) can take the
//! edge's descriptors, memory or backends from everyone else:
//! - [`ConnTable`]: client connections, in total and per source address, with eviction of
//!   the connection idle longest when full;
//! - [`Activity`]: what "idle" means for a connection or a session (no request in flight);
//! - [`PerKey`]: counters with RAII guards (concurrent requests and sessions per principal);
//! - [`BodyBudget`] and [`read_body`]: the bytes of request bodies held at once, all clients
//!   together, and the deadline for receiving one;
//! - [`attach`]: keeps guards alive until a response body has been sent (or dropped);
//! - [`raise_nofile_limit`]: the soft open-file limit raised to the hard one at start.
//!
//! The knobs are `[clients]` keys (`ClientsConfig` in `config`, which validates them); their
//! defaults are here. Nothing here reads the configuration itself.

mod activity;
mod body;
mod conns;
mod guard;
mod lock;
mod log_throttle;
mod nofile;
mod per_key;

use std::sync::Arc;
use std::time::Duration;

pub use activity::{Activity, Busy};
pub use body::{read_body, BodyBudget, BodyRefused};
pub use conns::{drive, source_key, ConnSlot, ConnTable, Refused};
pub use guard::attach;
pub use log_throttle::LogThrottle;
pub use nofile::{connection_cap, raise_nofile_limit, RESERVED_DESCRIPTORS};
pub use per_key::{KeyGuard, PerKey};

pub fn default_max_connections() -> usize {
    8192
}
pub fn default_max_connections_per_ip() -> usize {
    256
}
pub fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_header_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn default_keepalive() -> Duration {
    Duration::from_secs(20)
}
pub fn default_max_streams() -> u32 {
    200
}
pub fn default_max_header_list() -> u32 {
    64 * 1024
}
pub fn default_max_buffered_body_bytes() -> usize {
    256 * 1024 * 1024
}
pub fn default_max_concurrent_per_principal() -> usize {
    256
}
pub fn default_max_sessions_per_principal() -> usize {
    256
}
pub fn default_session_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// The edge-wide limit state, built once from `[clients]`.
pub struct Limits {
    pub conns: Arc<ConnTable>,
    /// Requests in flight per principal.
    pub in_flight: PerKey<String>,
    pub bodies: BodyBudget,
    refused_conns: LogThrottle,
}

impl Limits {
    /// `max_connections` is the already clamped cap (see [`connection_cap`]); the others are
    /// `[clients] max_connections_per_ip` and `max_buffered_body_bytes`.
    pub fn new(
        max_connections: usize,
        max_connections_per_ip: usize,
        max_buffered_body_bytes: usize,
    ) -> Limits {
        Limits {
            conns: Arc::new(ConnTable::new(max_connections, max_connections_per_ip)),
            in_flight: PerKey::default(),
            bodies: BodyBudget::new(max_buffered_body_bytes),
            refused_conns: LogThrottle::default(),
        }
    }

    /// Logs a refused connection, at most once per [`LogThrottle::EVERY`] with a count.
    pub fn log_refused(&self, why: Refused) {
        if let Some(n) = self.refused_conns.hit() {
            tracing::warn!(
                "refused {n} client connection(s) in the last {}s; latest: {why}",
                LogThrottle::EVERY.as_secs()
            );
        }
    }
}

#[cfg(test)]
use lock::lock;

#[cfg(test)]
mod tests;
