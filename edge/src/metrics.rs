//! `GET /metrics` on the admin listener: OpenMetrics text from `prometheus-client`, families
//! prefixed `underpass_`. Values are read when scraped (collectors), so nothing on the request
//! path pays for them.
//!
//! So far: the revocation list's fail-closed state, which an operator must be able to alert on
//! (a list that stopped reloading keeps the last good one in force, silently for clients).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::revocation::Revocations;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every family the edge exports.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(revocations: Arc<Revocations>) -> Self {
        let mut registry = Registry::with_prefix("underpass");
        registry.register_collector(Box::new(RevocationMetrics(revocations)));
        Metrics { registry }
    }

    /// The exposition, read now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// `underpass_revocation_list_reload_failures_total` and
/// `underpass_revocation_list_stale_seconds`.
struct RevocationMetrics(Arc<Revocations>);

impl std::fmt::Debug for RevocationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationMetrics")
    }
}

impl Collector for RevocationMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let failures = ConstCounter::new(stats.reload_failures);
        failures.encode(encoder.encode_descriptor(
            "revocation_list_reload_failures",
            "Reloads of revocation_list that failed (missing, unreadable or malformed file) since start; the last good list stayed in force",
            None,
            failures.metric_type(),
        )?)?;
        let stale = ConstGauge::new(stats.stale_for.map_or(0.0, |d| d.as_secs_f64()));
        stale.encode(encoder.encode_descriptor(
            "revocation_list_stale_seconds",
            "How long the revocation list in force has not matched its file (0 when it does): alert when above zero",
            None,
            stale.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_that_broke_shows_as_failures_and_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, "0a1b spiffe://underpass.local/connector/dc1 -\n").unwrap();
        let revocations = Revocations::load(Some(path.clone())).unwrap();
        let metrics = Metrics::new(revocations.clone());
        let text = metrics.render().unwrap();
        assert!(
            text.contains("underpass_revocation_list_reload_failures_total 0\n"),
            "{text}"
        );
        assert!(
            text.contains("underpass_revocation_list_stale_seconds 0.0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        std::fs::remove_file(&path).unwrap();
        revocations.reload_now();
        let text = metrics.render().unwrap();
        assert!(
            text.contains("underpass_revocation_list_reload_failures_total 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("underpass_revocation_list_stale_seconds 0.0\n"),
            "{text}"
        );
    }
}
