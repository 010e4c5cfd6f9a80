//! Bounded-rate logging of repeated events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock::lock;

/// Says when to log a repeated event: at most once per [`LogThrottle::EVERY`], with the
/// number of events since the last line.
#[derive(Default)]
pub struct LogThrottle {
    count: AtomicU64,
    pub(super) last: Mutex<Option<Instant>>,
}

impl LogThrottle {
    pub const EVERY: Duration = Duration::from_secs(10);

    /// Counts one event; Some(events since the last line) when a line is due.
    pub fn hit(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = lock(&self.last);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            return None;
        }
        *last = Some(now);
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}
