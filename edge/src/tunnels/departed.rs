//! Connectors that left lately. One that announced a drain and then closed its tunnels is most
//! likely being restarted (a rolling update); one whose tunnel was lost (a crash with a
//! supervisor, a network change moving it from QUIC to TCP) redials at once. Either way, for
//! a short while ([`HOLD`]) a request that only it can serve waits for it to come back
//! instead of failing at once (see [`super::registry::Registry::settle`]). Pure: times are
//! passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a request waits for a departed connector (or a draining service) to come back.
/// Covers a connector's quiet period (1 s), its restart and its first dial; and the fallback
/// from a broken QUIC path to TCP (2 s of QUIC attempts, then the TCP handshake).
pub const HOLD: Duration = Duration::from_secs(5);

/// Most connectors remembered (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 1024;

/// Connector name → (when its last tunnel closed, the services it served).
#[derive(Debug, Default)]
pub struct Departed {
    gone: HashMap<String, (Instant, Vec<String>)>,
}

impl Departed {
    /// A tunnel of `connector` serving `services` closed at `now`.
    pub fn record(&mut self, connector: &str, services: &[String], now: Instant) {
        self.gone
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < HOLD);
        if self.gone.len() >= MAX_REMEMBERED {
            if let Some(oldest) = self
                .gone
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(name, _)| name.clone())
            {
                self.gone.remove(&oldest);
            }
        }
        self.gone
            .insert(connector.to_owned(), (now, services.to_vec()));
    }

    /// Whether a connector (`connector`, or any) serving `service` left less than [`HOLD`]
    /// before `now`.
    pub fn expected_back(&self, service: &str, connector: Option<&str>, now: Instant) -> bool {
        self.gone.iter().any(|(name, (at, services))| {
            now.saturating_duration_since(*at) < HOLD
                && connector.is_none_or(|c| c == name)
                && services.iter().any(|s| s == service)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_departed_connector_is_expected_back_for_a_while_for_its_services_only() {
        let t0 = Instant::now();
        let mut d = Departed::default();
        assert!(!d.expected_back("ok", None, t0));
        d.record("dc1", &["ok".into()], t0);
        assert!(d.expected_back("ok", None, t0));
        assert!(d.expected_back("ok", Some("dc1"), t0 + HOLD / 2));
        assert!(!d.expected_back("ok", Some("dc2"), t0));
        assert!(!d.expected_back("other", None, t0));
        assert!(!d.expected_back("ok", None, t0 + HOLD));
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut d = Departed::default();
        for i in 0..(MAX_REMEMBERED + 10) {
            d.record(&format!("dc{i}"), &["ok".into()], t0);
        }
        assert!(d.gone.len() <= MAX_REMEMBERED);
        // Old entries go when new ones come.
        d.record("late", &["ok".into()], t0 + HOLD);
        assert_eq!(d.gone.len(), 1);
    }
}
