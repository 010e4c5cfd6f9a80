//! `GET /metrics` on the admin listener: OpenMetrics text from `prometheus-client`, families
//! prefixed `underpass_`. Values are read when scraped (collectors), so nothing on the request
//! path pays for them.
//!
//! Families:
//! - `underpass_requests_total{service,method,outcome}`: client requests by configured service
//!   (`-` for none, `unknown` for a name the edge does not serve), MCP method (a known one,
//!   `other`, or `-` for requests without one) and outcome (the audit record's);
//! - `underpass_request_duration_seconds{service}`: from the request's arrival until its
//!   answer was sent in full (an event stream counts until it ends);
//! - `underpass_tunnels{connector,transport}`: live tunnels;
//! - `underpass_sessions`: legacy sessions this edge holds;
//! - `underpass_audit_queue_depth`, `underpass_audit_dropped_total`: the audit writer's queue
//!   and the records it could not write (with `[audit]`);
//! - the revocation list's fail-closed state, which an operator must be able to alert on (a list
//!   that stopped reloading keeps the last good one in force, silently for clients).
//!
//! Every label value comes from configuration or a fixed set, never verbatim from a client: a
//! client choosing service or method names cannot grow the exposition.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use underpass_audit::{AuditRecord, Auditor};
use underpass_shared::telemetry::Tracer;

use crate::revocation::Revocations;
use crate::tunnels::registry::Registry as Tunnels;

/// MCP methods counted under their own name; any other is `other`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

/// What the request path records: counters and histograms updated as requests end.
pub struct RequestMetrics {
    /// The configured services: the only service label values besides `-` and `unknown`.
    services: HashSet<String>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ServiceLabel, Histogram>,
}

impl RequestMetrics {
    fn service_label(&self, service: Option<&str>) -> String {
        match service {
            None => "-".to_owned(),
            Some(s) if self.services.contains(s) => s.to_owned(),
            Some(_) => "unknown".to_owned(),
        }
    }

    /// One client request ended (answered in full, cut short, or given up by its client).
    pub fn request_done(&self, record: &AuditRecord, took: Duration) {
        let service = self.service_label(record.service.as_deref());
        let method = match record.mcp_method.as_deref() {
            None => "-",
            Some(m) => KNOWN_METHODS
                .iter()
                .find(|k| **k == m)
                .copied()
                .unwrap_or("other"),
        };
        self.requests
            .get_or_create(&RequestLabels {
                service: service.clone(),
                method,
                outcome: record.outcome.as_str(),
            })
            .inc();
        self.duration
            .get_or_create(&ServiceLabel { service })
            .observe(took.as_secs_f64());
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every family the edge exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Arc<RequestMetrics>,
}

impl Metrics {
    /// `services`: the configured service names (label values); `tunnels` and `revocations`
    /// are read when scraped.
    pub fn new<'a>(
        services: impl IntoIterator<Item = &'a str>,
        tunnels: Arc<Tunnels>,
        revocations: Arc<Revocations>,
        auditor: Option<Auditor>,
        tracer: &Tracer,
    ) -> Self {
        let mut registry = Registry::with_prefix("underpass");
        let requests = Arc::new(RequestMetrics {
            services: services.into_iter().map(str::to_owned).collect(),
            requests: Family::default(),
            // 0.5 ms to about 33 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 17))
            }),
        });
        registry.register(
            "requests",
            "Client requests by service, MCP method and outcome",
            requests.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a client request's arrival until its answer was sent in full",
            requests.duration.clone(),
        );
        registry.register_collector(Box::new(TunnelMetrics(tunnels)));
        if let Some(auditor) = auditor {
            registry.register_collector(Box::new(AuditMetrics(auditor)));
        }
        registry.register_collector(Box::new(RevocationMetrics(revocations)));
        if tracer.is_on() {
            registry.register_collector(Box::new(SpanMetrics(tracer.clone())));
        }
        Metrics { registry, requests }
    }

    /// The exposition, read now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// `underpass_tunnels{connector,transport}`, counted when scraped.
struct TunnelMetrics(Arc<Tunnels>);

impl std::fmt::Debug for TunnelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelMetrics")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TunnelLabels {
    connector: String,
    transport: &'static str,
}

impl Collector for TunnelMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut counts = std::collections::BTreeMap::new();
        for tunnel in self.0.tunnels() {
            let labels = TunnelLabels {
                connector: tunnel.connector.clone(),
                transport: tunnel.conn.transport(),
            };
            *counts.entry(labels).or_insert(0i64) += 1;
        }
        let mut family = encoder.encode_descriptor(
            "tunnels",
            "Live tunnels by connector and transport",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (labels, count) in counts {
            ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
        }
        let sessions = ConstGauge::new(i64::try_from(self.0.session_count()).unwrap_or(i64::MAX));
        sessions.encode(encoder.encode_descriptor(
            "sessions",
            "Legacy MCP sessions this edge holds",
            None,
            sessions.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The audit writer's queue and losses.
struct AuditMetrics(Auditor);

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

/// `underpass_trace_spans_total{result}`: what became of the spans recorded for export.
struct SpanMetrics(Tracer);

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

#[cfg(test)]
mod tests {
    use super::*;
    use underpass_audit::Outcome;

    #[test]
    fn label_values_come_from_the_configuration_or_a_fixed_set() {
        let revocations = Revocations::load(None).unwrap();
        let metrics = Metrics::new(
            ["ok"],
            Arc::new(Tunnels::default()),
            revocations,
            None,
            &Tracer::off(),
        );
        let record = |service: Option<&str>, method: Option<&str>, outcome| AuditRecord {
            service: service.map(str::to_owned),
            mcp_method: method.map(str::to_owned),
            outcome,
            ..AuditRecord::default()
        };
        let r = &metrics.requests;
        let ms = Duration::from_millis(3);
        r.request_done(&record(Some("ok"), Some("tools/call"), Outcome::Ok), ms);
        r.request_done(&record(Some("ok"), Some("tools/call"), Outcome::Ok), ms);
        r.request_done(&record(Some("ok"), Some("tools/call"), Outcome::Denied), ms);
        // A client's made-up service and method names are not label values.
        for i in 0..50 {
            let (service, method) = (format!("svc{i}"), format!("x/{i}"));
            r.request_done(
                &record(Some(&service), Some(&method), Outcome::NotFound),
                ms,
            );
        }
        r.request_done(&record(None, None, Outcome::NotFound), ms);
        let text = metrics.render().unwrap();
        let line = |l: &str| text.lines().any(|t| t == l);
        assert!(
            line(r#"underpass_requests_total{service="ok",method="tools/call",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            line(
                r#"underpass_requests_total{service="ok",method="tools/call",outcome="denied"} 1"#
            ),
            "{text}"
        );
        assert!(
            line(
                r#"underpass_requests_total{service="unknown",method="other",outcome="not_found"} 50"#
            ),
            "{text}"
        );
        assert!(
            line(r#"underpass_requests_total{service="-",method="-",outcome="not_found"} 1"#),
            "{text}"
        );
        assert!(!text.contains("svc1"), "{text}");
        assert!(
            line(r#"underpass_request_duration_seconds_count{service="ok"} 3"#),
            "{text}"
        );
        assert!(text.contains("# TYPE underpass_tunnels gauge"), "{text}");
    }

    #[test]
    fn a_list_that_broke_shows_as_failures_and_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, "0a1b spiffe://underpass.local/connector/dc1 -\n").unwrap();
        let revocations = Revocations::load(Some(path.clone())).unwrap();
        let metrics = Metrics::new(
            ["ok"],
            Arc::new(Tunnels::default()),
            revocations.clone(),
            None,
            &Tracer::off(),
        );
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
