//! What the request path records, as requests end: counts by service, method and outcome,
//! durations and their split into phases, denials by rule, bytes, and event streams open.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use underpass_audit::{AuditRecord, Outcome};

use super::capped::Capped;
use super::phases::Phases;

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

/// Most distinct rule names kept as label values (per family); beyond, `other`. Rule names
/// come from the policy file, but reloads may bring new ones for as long as the edge runs.
pub const MAX_RULES: usize = 256;

// Label values are `Arc<str>`: a request builds its label sets without allocating (the
// configured services' names are made once, see `RequestMetrics::services`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: Arc<str>,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ServiceLabel {
    pub service: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    service: Arc<str>,
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    service: Arc<str>,
    rule: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MediationLabels {
    service: Arc<str>,
    action: &'static str,
    detector: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    service: Arc<str>,
    direction: &'static str,
}

/// 0.5 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// Counters and histograms updated as requests end.
pub struct RequestMetrics {
    /// The configured services: the only service label values besides `-` and `unknown`.
    services: HashMap<String, Arc<str>>,
    /// The label of requests for no service (`-`) and for one not configured (`unknown`).
    no_service: Arc<str>,
    unknown_service: Arc<str>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ServiceLabel, Histogram>,
    phases: Family<PhaseLabels, Histogram>,
    denials: Family<RuleLabels, Counter>,
    rate_limited: Family<RuleLabels, Counter>,
    /// Rule label values, shared by both rule families.
    rules: Capped,
    mediations: Family<MediationLabels, Counter>,
    /// Detector label values (built-in ones and the policy's named patterns).
    detectors: Capped,
    bytes: Family<BytesLabels, Counter>,
    event_streams: Family<ServiceLabel, Gauge>,
}

impl RequestMetrics {
    pub(super) fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        RequestMetrics {
            services: services
                .into_iter()
                .map(|s| (s.to_owned(), Arc::from(s)))
                .collect(),
            no_service: Arc::from("-"),
            unknown_service: Arc::from("unknown"),
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            phases: Family::new_with_constructor(latency_histogram),
            denials: Family::default(),
            rate_limited: Family::default(),
            rules: Capped::new(MAX_RULES),
            mediations: Family::default(),
            detectors: Capped::new(MAX_RULES),
            bytes: Family::default(),
            event_streams: Family::default(),
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Client requests by service, MCP method and outcome",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a client request's arrival until its answer was sent in full",
            self.duration.clone(),
        );
        registry.register(
            "request_phase_seconds",
            "Time to a response head by phase: edge (arrival until the request went down a tunnel, or until the answer for requests answered by the edge), tunnel (there and back, less the backend's time), backend (as the connector measured it)",
            self.phases.clone(),
        );
        registry.register(
            "denials",
            "Requests the policy denied, by service and deciding rule",
            self.denials.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused for a rate limit, by service and rule (- for a limit that is no policy rule's)",
            self.rate_limited.clone(),
        );
        registry.register(
            "mediations",
            "Matches policy obligations acted on, by service, action (redact: replaced in an answer; block: a call or answer refused) and detector",
            self.mediations.clone(),
        );
        registry.register(
            "client_bytes",
            "Body bytes received from clients (in) and sent to them (out)",
            self.bytes.clone(),
        );
        registry.register(
            "event_streams",
            "Event streams (text/event-stream answers) being sent to clients now",
            self.event_streams.clone(),
        );
    }

    fn service_label(&self, service: Option<&str>) -> Arc<str> {
        match service {
            None => self.no_service.clone(),
            Some(s) => self
                .services
                .get(s)
                .unwrap_or(&self.unknown_service)
                .clone(),
        }
    }

    /// One client request ended (answered in full, cut short, or given up by its client):
    /// it arrived at `started` and took `took`.
    pub fn request_done(&self, record: &AuditRecord, started: Instant, took: Duration) {
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
            .get_or_create(&ServiceLabel {
                service: service.clone(),
            })
            .observe(took.as_secs_f64());
        let phases = match &record.exchange {
            Some(x) => Phases::split(
                x.sent_at.saturating_duration_since(started),
                x.head_after,
                x.backend,
            ),
            None => Phases::edge_only(took),
        };
        for (phase, time) in phases.observed() {
            self.phases
                .get_or_create(&PhaseLabels {
                    service: service.clone(),
                    phase,
                })
                .observe(time.as_secs_f64());
        }
        let rule = || self.rules.label(record.rule.as_deref().unwrap_or("-"));
        match record.outcome {
            Outcome::Denied => {
                self.denials
                    .get_or_create(&RuleLabels {
                        service: service.clone(),
                        rule: rule(),
                    })
                    .inc();
            }
            Outcome::RateLimited => {
                self.rate_limited
                    .get_or_create(&RuleLabels {
                        service: service.clone(),
                        rule: rule(),
                    })
                    .inc();
            }
            _ => {}
        }
        for m in &record.mediation {
            self.mediations
                .get_or_create(&MediationLabels {
                    service: service.clone(),
                    action: m.action.as_str(),
                    detector: self.detectors.label(&m.detector),
                })
                .inc_by(m.count);
        }
        for (direction, n) in [("in", record.bytes_in), ("out", record.bytes_out)] {
            let counter = self.bytes.get_or_create(&BytesLabels {
                service: service.clone(),
                direction,
            });
            counter.inc_by(n.unwrap_or(0));
        }
    }

    /// An event stream to a client of `service` starts: counted until the guard drops.
    pub fn event_stream(&self, service: Option<&str>) -> EventStream {
        let gauge = self
            .event_streams
            .get_or_create(&ServiceLabel {
                service: self.service_label(service),
            })
            .clone();
        gauge.inc();
        EventStream(gauge)
    }
}

/// One event stream open (see [`RequestMetrics::event_stream`]).
pub struct EventStream(Gauge);

impl Drop for EventStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}
