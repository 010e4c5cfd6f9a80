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
//! The knobs are `[clients]` keys (`crate::config::ClientsConfig`); defaults are here.

mod activity;
mod body;
mod conns;
mod guard;
mod log_throttle;
mod nofile;
mod per_key;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::ClientsConfig;

pub use activity::{Activity, Busy};
pub use body::{read_body, BodyBudget, BodyRefused};
pub use conns::{drive, source_key, ConnSlot, ConnTable, Refused};
pub use guard::attach;
pub use log_throttle::LogThrottle;
pub use nofile::{connection_cap, raise_nofile_limit};
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

/// Descriptors kept free of client connections: tunnels, audit files, watched files, admin.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Checks the `[clients]` limits for values that would refuse everything or nothing.
pub fn validate(c: &ClientsConfig) -> anyhow::Result<()> {
    let positive = [
        ("max_connections", c.max_connections),
        ("max_connections_per_ip", c.max_connections_per_ip),
        (
            "max_concurrent_per_principal",
            c.max_concurrent_per_principal,
        ),
        ("max_sessions_per_principal", c.max_sessions_per_principal),
        (
            "http2_max_concurrent_streams",
            c.http2_max_concurrent_streams as usize,
        ),
    ];
    for (key, value) in positive {
        if value == 0 {
            anyhow::bail!("[clients] {key} must be at least 1");
        }
    }
    let durations = [
        ("handshake_timeout", c.handshake_timeout),
        ("header_timeout", c.header_timeout),
        ("body_timeout", c.body_timeout),
        ("idle_timeout", c.idle_timeout),
        ("session_idle_timeout", c.session_idle_timeout),
    ];
    for (key, value) in durations {
        if value.is_zero() {
            anyhow::bail!("[clients] {key} must be longer than 0s");
        }
    }
    if c.max_buffered_body_bytes < c.max_request_body {
        anyhow::bail!(
            "[clients] max_buffered_body_bytes ({}) is below max_request_body ({}): a body of \
             the largest allowed size could never be accepted",
            c.max_buffered_body_bytes,
            c.max_request_body
        );
    }
    Ok(())
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
    /// `max_connections` is the already clamped cap (see [`connection_cap`]).
    pub fn new(clients: &ClientsConfig, max_connections: usize) -> Limits {
        Limits {
            conns: Arc::new(ConnTable::new(
                max_connections,
                clients.max_connections_per_ip,
            )),
            in_flight: PerKey::default(),
            bodies: BodyBudget::new(clients.max_buffered_body_bytes),
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single insert, remove or increment: a panic
    // elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
