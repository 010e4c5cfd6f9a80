//! The connector's own figures, cumulative since start, which it reports to each edge in a
//! `Stats` control message ([`STATS_EVERY`]; the connector listens on no port): exchanges per
//! service and result, backend bytes, exchanges in flight, tunnels established per edge.
//! The edge keeps the latest snapshot per connector, so sending it on every tunnel does not
//! count anything twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use underpass_proto::control::{EdgeConnects, ServiceStats, Stats};

/// How often each tunnel's control stream carries a `Stats` message.
pub const STATS_EVERY: Duration = Duration::from_secs(10);
/// The first one, soon after `Welcome`.
pub const FIRST_STATS_AFTER: Duration = Duration::from_secs(1);

/// How an exchange ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The backend answered (whatever its status).
    Ok,
    /// The backend failed: unreachable, or a broken answer.
    BackendError,
    /// Refused before the backend, over the service's caps.
    Refused,
}

#[derive(Default)]
struct ServiceCounters {
    ok: AtomicU64,
    backend_error: AtomicU64,
    refused: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The counters, fixed to the configured services (an exchange for another is not counted).
#[derive(Default)]
pub struct ConnectorStats {
    services: HashMap<String, ServiceCounters>,
    in_flight: AtomicU64,
    connects: Mutex<BTreeMap<String, u64>>,
}

impl ConnectorStats {
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        ConnectorStats {
            services: services
                .into_iter()
                .map(|s| (s.to_owned(), ServiceCounters::default()))
                .collect(),
            ..ConnectorStats::default()
        }
    }

    /// An exchange of `service` ended as `how`.
    pub fn served(&self, service: &str, how: Served) {
        if let Some(c) = self.services.get(service) {
            let counter = match how {
                Served::Ok => &c.ok,
                Served::BackendError => &c.backend_error,
                Served::Refused => &c.refused,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Body bytes sent to `service`'s backend (`to`) and received from it (`from`).
    pub fn bytes(&self, service: &str, to: u64, from: u64) {
        if let Some(c) = self.services.get(service) {
            c.bytes_in.fetch_add(to, Ordering::Relaxed);
            c.bytes_out.fetch_add(from, Ordering::Relaxed);
        }
    }

    /// An exchange is being served until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// A tunnel to `edge` (as configured) was established.
    pub fn connected(&self, edge: &str) {
        let mut connects = self.connects.lock().unwrap_or_else(|p| p.into_inner());
        *connects.entry(edge.to_owned()).or_insert(0) += 1;
    }

    /// The figures now; the bridge counts come from the backends.
    pub fn snapshot(&self, stdio_processes: u64, bridge_sessions: u64) -> Stats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut services: Vec<ServiceStats> = self
            .services
            .iter()
            .map(|(name, c)| ServiceStats {
                service: name.clone(),
                ok: load(&c.ok),
                backend_error: load(&c.backend_error),
                refused: load(&c.refused),
                bytes_in: load(&c.bytes_in),
                bytes_out: load(&c.bytes_out),
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let connects = self
            .connects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(edge, n)| EdgeConnects {
                edge: edge.clone(),
                connects: *n,
            })
            .collect();
        Stats {
            services,
            stdio_processes,
            bridge_sessions,
            in_flight: load(&self.in_flight),
            connects,
        }
    }
}

/// One exchange in flight (see [`ConnectorStats::in_flight`]).
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
