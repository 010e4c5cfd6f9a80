//! Collectors of the edge's own state, read when scraped: the audit writer's queue and
//! losses, the revocation list's reload state, and what became of recorded spans.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use underpass_audit::Auditor;
use underpass_shared::telemetry::Tracer;

use crate::federation::state::Federation;
use crate::revocation::Revocations;

/// The audit writer's queue and losses.
pub(super) struct AuditMetrics(pub Auditor);

impl std::fmt::Debug for AuditMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditMetrics")
    }
}

impl Collector for AuditMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let depth = ConstGauge::new(i64::try_from(self.0.queued()).unwrap_or(i64::MAX));
        depth.encode(encoder.encode_descriptor(
            "audit_queue_depth",
            "Audit records waiting for the writer",
            None,
            depth.metric_type(),
        )?)?;
        let dropped = ConstCounter::new(self.0.dropped());
        dropped.encode(encoder.encode_descriptor(
            "audit_dropped",
            "Audit records not written (queue full, writer stopped, write failed); each loss is also a gap record in the chain",
            None,
            dropped.metric_type(),
        )?)?;
        Ok(())
    }
}

/// `underpass_revocation_list_reload_failures_total` and
/// `underpass_revocation_list_stale_seconds`.
pub(super) struct RevocationMetrics(pub Arc<Revocations>);

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

/// `underpass_trace_spans_total{result}`: what became of the spans recorded for export.
pub(super) struct SpanMetrics(pub Tracer);

impl std::fmt::Debug for SpanMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanMetrics")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanResult {
    result: &'static str,
}

impl Collector for SpanMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts = self.0.counts().unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "trace_spans",
            "Spans recorded for OTLP export by what became of them: exported, dropped (export queue full) or failed (the collector did not take their batch)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, n) in [
            ("exported", counts.exported),
            ("dropped", counts.dropped),
            ("failed", counts.failed),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&SpanResult { result })?)?;
        }
        Ok(())
    }
}

/// The federated endpoint's cache and the services left out of its answers.
pub(super) struct FederationMetrics(pub Arc<Federation>);

impl std::fmt::Debug for FederationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FederationMetrics")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupResult {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Omitted {
    service: String,
    reason: &'static str,
}

impl Collector for FederationMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let fed = &self.0;
        let mut lookups = encoder.encode_descriptor(
            "federation_cache_lookups",
            "Lookups of the federated endpoint's cache of backend results (lists, server/discover, resources/read), by result",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, n) in [
            ("hit", fed.stats.cache_hits.load(Relaxed)),
            ("miss", fed.stats.cache_misses.load(Relaxed)),
        ] {
            ConstCounter::new(n).encode(lookups.encode_family(&LookupResult { result })?)?;
        }
        let (entries, bytes) = fed.cache_size();
        let entries = ConstGauge::new(i64::try_from(entries).unwrap_or(i64::MAX));
        entries.encode(encoder.encode_descriptor(
            "federation_cache_entries",
            "Entries in the federated endpoint's cache",
            None,
            entries.metric_type(),
        )?)?;
        let bytes = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
        bytes.encode(encoder.encode_descriptor(
            "federation_cache_bytes",
            "Bytes (JSON, approximate) held by the federated endpoint's cache; bounded by [federation] cache_bytes",
            None,
            bytes.metric_type(),
        )?)?;
        let waiting = ConstGauge::new(i64::try_from(fed.asks.waiting()).unwrap_or(i64::MAX));
        waiting.encode(encoder.encode_descriptor(
            "federation_input_requests_waiting",
            "Input requests of 2026-07-28 backends relayed to 2025-11-25 clients and not answered yet",
            None,
            waiting.metric_type(),
        )?)?;
        let omitted: Vec<((String, &'static str), u64)> = fed
            .stats
            .omitted
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "federation_omitted",
            "Services left out of a federated answer, by service and reason (deadline, unavailable, tunnel, http_status, unreadable, error, rate_limited, describe)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for ((service, reason), n) in omitted {
            ConstCounter::new(n).encode(family.encode_family(&Omitted { service, reason })?)?;
        }
        Ok(())
    }
}
