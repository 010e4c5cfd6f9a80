//! How much a connector may send on its control stream: a token bucket of control messages
//! (every frame after the `Hello`, of a known type or not). A connector over it closes its
//! own tunnel: control messages are rare (none is defined beyond the handshake yet; drain
//! notices and health reports will come a few per minute), so a flood is a broken or hostile
//! connector, and every message costs the edge a decode and, for an unknown type, a log line.
//! Pure: the caller passes the time.

use std::time::Instant;

/// Control messages per second a connector may send, averaged.
pub const CONTROL_MESSAGES_PER_SEC: u32 = 20;
/// Control messages a connector may send at once.
pub const CONTROL_BURST: u32 = 100;

/// The control messages a connector may still send.
#[derive(Debug)]
pub struct ControlBudget {
    tokens: f64,
    last: Instant,
}

impl ControlBudget {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        ControlBudget {
            tokens: f64::from(CONTROL_BURST),
            last: now,
        }
    }

    /// Takes `n` messages received at `now`; false when the connector is over its budget.
    pub fn take(&mut self, n: usize, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64()
            * f64::from(CONTROL_MESSAGES_PER_SEC);
        self.tokens = (self.tokens + refill).min(f64::from(CONTROL_BURST));
        self.last = now;
        self.tokens -= n as f64;
        self.tokens >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_a_flood_does_not() {
        let t0 = Instant::now();
        let mut b = ControlBudget::new(t0);
        assert!(b.take(CONTROL_BURST as usize, t0));
        assert!(!b.take(1, t0));

        let mut b = ControlBudget::new(t0);
        assert!(b.take(CONTROL_BURST as usize, t0));
        // A second later, a second's worth is back, and no more.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.take(CONTROL_MESSAGES_PER_SEC as usize, t1));
        assert!(!b.take(1, t1));
    }

    #[test]
    fn a_steady_rate_within_the_budget_passes_forever() {
        let t0 = Instant::now();
        let mut b = ControlBudget::new(t0);
        for k in 1..=10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(k * 1000 / CONTROL_MESSAGES_PER_SEC));
            assert!(b.take(1, now), "message {k}");
        }
    }
}
