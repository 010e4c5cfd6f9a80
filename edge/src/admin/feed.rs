//! What the admin API learns from finished requests (fed where the edge counts them,
//! `http::audited`): per configured service the requests, errors and denials so far and the
//! latencies of the last requests (for percentiles), and the ring of recent denials. A leaf:
//! it depends on nothing of the request path, which only calls [`Feed::request_done`].
//!
//! Bounded: services are the configured ones (a client's made-up name is not kept), the
//! latencies are a fixed window per service, the denials a fixed ring.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use underpass_audit::{AuditRecord, Outcome};

use super::denials::{is_denial, Denial, Ring};

/// Latencies kept per service for the percentiles.
const WINDOW: usize = 512;

/// One service's figures.
#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    errors: u64,
    denied: u64,
    /// The last [`WINDOW`] latencies, in microseconds (a ring: `next` is the oldest).
    latencies: Vec<u64>,
    next: usize,
}

/// One service's figures, as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceFigures {
    pub requests: u64,
    /// Requests that did not end `ok` and were not denials (backend, tunnel, capacity, client
    /// errors).
    pub errors: u64,
    pub denied: u64,
    /// Latency percentiles over the last requests, in milliseconds (absent before any).
    pub latency_ms: Option<Percentiles>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    /// How many requests they are computed over.
    pub over: usize,
}

/// Nearest-rank percentiles of `values` (microseconds) in whole milliseconds, rounded up.
pub fn percentiles(values: &[u64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |p: usize| {
        let rank = (p * sorted.len()).div_ceil(100).max(1);
        sorted[rank - 1].div_ceil(1000)
    };
    Some(Percentiles {
        p50: at(50),
        p90: at(90),
        p99: at(99),
        over: sorted.len(),
    })
}

/// The admin API's figures, fed by the request path.
#[derive(Debug, Default)]
pub struct Feed {
    services: HashMap<String, Mutex<Stats>>,
    denials: Mutex<Ring>,
    last_done: Mutex<Option<SystemTime>>,
}

impl Feed {
    /// Figures for the configured `services`.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Feed {
        Feed {
            services: services
                .into_iter()
                .map(|s| (s.to_owned(), Mutex::default()))
                .collect(),
            ..Feed::default()
        }
    }

    /// One client request ended (its record as audited).
    pub fn request_done(&self, record: &AuditRecord, took: Duration) {
        let now = SystemTime::now();
        *lock(&self.last_done) = Some(now);
        let denied = is_denial(record.outcome);
        if let Some(stats) = record.service.as_deref().and_then(|s| self.services.get(s)) {
            let mut s = lock(stats);
            s.requests += 1;
            if denied {
                s.denied += 1;
            } else if record.outcome != Outcome::Ok {
                s.errors += 1;
            }
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            if s.latencies.len() < WINDOW {
                s.latencies.push(us);
            } else {
                let at = s.next;
                s.latencies[at] = us;
            }
            s.next = (s.next + 1) % WINDOW;
        }
        if denied {
            let time = underpass_audit::format_time(now);
            if let Some(d) = Denial::of(record, time) {
                lock(&self.denials).push(d);
            }
        }
    }

    /// The figures of every configured service, by name.
    pub fn services(&self) -> HashMap<String, ServiceFigures> {
        self.services
            .iter()
            .map(|(name, stats)| {
                let s = lock(stats);
                let figures = ServiceFigures {
                    requests: s.requests,
                    errors: s.errors,
                    denied: s.denied,
                    latency_ms: percentiles(&s.latencies),
                };
                (name.clone(), figures)
            })
            .collect()
    }

    /// The recent denials (oldest first) and how many there were since start.
    pub fn denials(&self) -> (Vec<Denial>, u64) {
        let ring = lock(&self.denials);
        (ring.list(), ring.total())
    }

    /// When the last client request ended.
    pub fn last_done(&self) -> Option<SystemTime> {
        *lock(&self.last_done)
    }
}

// A poisoned lock means a panic mid-update of plain counters: keep serving them.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
