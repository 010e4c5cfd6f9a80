//! Connector-side figures, which connectors report over their control stream (`Stats`; a
//! connector listens on no port): the edge keeps each connector's latest snapshot and
//! exports it as `underpass_connector_*{connector=...}` (`crate::metrics::connectors`).
//!
//! A connector is verified but not trusted with the edge's memory: a snapshot names only
//! services this edge serves (others are dropped), holds at most [`MAX_ENTRIES`] entries
//! (else it is refused), at most [`MAX_CONNECTORS`] connectors are kept, and a connector's
//! figures go [`KEEP_FOR`] after its last snapshot (its tunnels send one every
//! few seconds, so that is soon after its last tunnel left).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use underpass_proto::control::Stats;

use crate::config::EdgeConfig;
use crate::tunnels::connects::MAX_CONNECTORS;

/// Most entries (services plus edges) one snapshot may hold.
pub const MAX_ENTRIES: usize = 256;
/// Longest edge name kept as a label value (longer ones are cut).
const MAX_EDGE_NAME: usize = 128;
/// How long a connector's figures outlive its last snapshot.
pub const KEEP_FOR: Duration = Duration::from_secs(300);
/// Refused snapshots are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a snapshot was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a Stats message with {0} entries (at most {MAX_ENTRIES})")]
    TooManyEntries(usize),
    #[error("figures of {MAX_CONNECTORS} connectors are kept already")]
    TooManyConnectors,
}

struct Kept {
    stats: Stats,
    at: Instant,
}

/// The latest snapshot per connector.
#[derive(Default)]
pub struct ConnectorStats {
    kept: Mutex<BTreeMap<String, Kept>>,
    last_logged: Mutex<Option<Instant>>,
}

impl ConnectorStats {
    /// Keeps `stats` as `connector`'s latest, less the services `serves` says no to.
    pub fn record(
        &self,
        connector: &str,
        mut stats: Stats,
        serves: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Result<(), Refused> {
        let entries = stats.services.len() + stats.connects.len();
        if entries > MAX_ENTRIES {
            return Err(Refused::TooManyEntries(entries));
        }
        // One series per label set: the first entry of a name counts.
        let mut seen = HashSet::new();
        stats
            .services
            .retain(|s| serves(&s.service) && seen.insert(s.service.clone()));
        let mut seen = HashSet::new();
        for c in &mut stats.connects {
            c.edge = c
                .edge
                .chars()
                .filter(char::is_ascii_graphic)
                .take(MAX_EDGE_NAME)
                .collect();
        }
        stats.connects.retain(|c| seen.insert(c.edge.clone()));
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut kept, now);
        if !kept.contains_key(connector) && kept.len() >= MAX_CONNECTORS {
            return Err(Refused::TooManyConnectors);
        }
        kept.insert(connector.to_owned(), Kept { stats, at: now });
        Ok(())
    }

    /// Whether a refused snapshot should be logged now (at most once per [`LOG_EVERY`]).
    pub fn log_refusal(&self, now: Instant) -> bool {
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The snapshots still kept at `now`, by connector.
    pub fn current(&self, now: Instant) -> Vec<(String, Stats)> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut kept, now);
        kept.iter()
            .map(|(name, k)| (name.clone(), k.stats.clone()))
            .collect()
    }
}

/// A `Stats` message from `connector` arrived on one of its tunnels (already counted under
/// the control stream's budget): kept in `store` for the services `config` serves.
pub fn received(store: &ConnectorStats, config: &EdgeConfig, connector: &str, stats: Stats) {
    let serves = |name: &str| config.services.iter().any(|s| s.name == name);
    let now = Instant::now();
    let stats_store = store;
    if let Err(e) = stats_store.record(connector, stats, serves, now) {
        if stats_store.log_refusal(now) {
            tracing::warn!(%connector, "connector figures not kept: {e}");
        }
    }
}

fn prune(kept: &mut BTreeMap<String, Kept>, now: Instant) {
    kept.retain(|_, k| now.saturating_duration_since(k.at) < KEEP_FOR);
}
