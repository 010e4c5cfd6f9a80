//! Spans for OpenTelemetry, exported over OTLP/HTTP (`[telemetry] otlp_endpoint`): the
//! daemons record finished spans ([`SpanRecord`]) into a bounded buffer, and one task takes
//! what gathered there every 200 ms and posts it in batches to `{otlp_endpoint}/v1/traces`
//! (protobuf, the official definitions of `opentelemetry-proto`). Recording is a push under
//! an uncontended lock: it never waits for the exporter and wakes no task (a channel would
//! wake the export task for every span, which cost more than building the spans). When the
//! buffer is full (the endpoint is slow or down) a span is dropped and counted. Without an
//! endpoint the [`Tracer`] is off and a record is one branch.

mod config;
mod export;
pub mod otlp;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

pub use config::{OtlpEndpoint, TelemetryConfig};

/// What kind of work a span stands for (the OTLP span kinds this product uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the process (admission).
    Internal,
    /// A request this process serves (the client's request at the edge).
    Server,
    /// A request this process makes (the tunnel exchange, the backend call).
    Client,
}

/// A span attribute's value (borrowed from what the span describes, or owned).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
}

/// One finished span. It borrows what it describes: recording encodes it at once
/// ([`otlp::encode_span`]), so nothing of it is copied but its bytes.
#[derive(Debug, Clone)]
pub struct SpanRecord<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The span that caused this one, absent for a trace's root.
    pub parent_span_id: Option<[u8; 8]>,
    /// Most names are fixed (`admission`); the request's is made per request.
    pub name: Cow<'a, str>,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, AttrValue<'a>)>,
    /// Set when the work failed: the status message.
    pub error: Option<Cow<'a, str>>,
}

/// What became of the spans recorded so far.
#[derive(Debug, Default)]
pub struct SpanStats {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of [`SpanStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    /// Accepted by the endpoint.
    pub exported: u64,
    /// Dropped because the export buffer was full.
    pub dropped: u64,
    /// Lost because their batch could not be delivered.
    pub failed: u64,
}

impl SpanStats {
    pub fn counts(&self) -> SpanCounts {
        SpanCounts {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Where finished spans go: nowhere (off), or the export buffer. Cheap to clone.
#[derive(Clone, Default)]
pub struct Tracer {
    on: Option<Arc<Buffer>>,
}

/// Finished spans, encoded, waiting for the export task, at most `capacity`.
struct Buffer {
    spans: Mutex<Vec<otlp::EncodedSpan>>,
    capacity: usize,
    stats: SpanStats,
}

impl Buffer {
    fn new(capacity: usize) -> Buffer {
        Buffer {
            spans: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            stats: SpanStats::default(),
        }
    }

    fn push(&self, span: otlp::EncodedSpan) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if spans.len() < self.capacity {
            spans.push(span);
        } else {
            drop(spans);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything gathered so far, swapped for `empty` (the exporter's spare, emptied, so
    /// its allocation is used again).
    fn take(&self, empty: Vec<otlp::EncodedSpan>) -> Vec<otlp::EncodedSpan> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *spans, empty)
    }
}

impl Tracer {
    /// A tracer that records nothing.
    pub fn off() -> Tracer {
        Tracer::default()
    }

    /// The tracer `config` asks for: off without an endpoint; else the export task is spawned
    /// on the current Tokio runtime. `default_service` names the process in the spans'
    /// resource (`service.name`) unless the config names it. Fails on an `otlp_ca` that
    /// cannot be read.
    pub fn start(config: &TelemetryConfig, default_service: &str) -> Result<Tracer, String> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(Tracer::off());
        };
        let tls = match &config.otlp_ca {
            Some(ca) => Some(Arc::new(
                underpass_transport::tls::https_client_crypto(ca)
                    .map_err(|e| format!("[telemetry] otlp_ca: {e}"))?,
            )),
            None => None,
        };
        let buffer = Arc::new(Buffer::new(config.export_queue));
        let service = config
            .service_name
            .clone()
            .unwrap_or_else(|| default_service.to_owned());
        tracing::info!(
            "telemetry: spans exported to {} (OTLP/HTTP, service.name {service})",
            endpoint.traces_url()
        );
        tokio::spawn(export::run(
            Arc::downgrade(&buffer),
            export::Collector::new(endpoint.clone(), tls),
            service,
        ));
        Ok(Tracer { on: Some(buffer) })
    }

    /// Whether spans are recorded at all (callers skip building them when not).
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// Keeps a finished span for export, encoded; never waits (a full buffer drops it,
    /// counted).
    pub fn record(&self, span: &SpanRecord<'_>) {
        if let Some(buffer) = &self.on {
            buffer.push(otlp::encode_span(span));
        }
    }

    /// What became of the spans so far; `None` when off.
    pub fn counts(&self) -> Option<SpanCounts> {
        self.on.as_ref().map(|b| b.stats.counts())
    }
}

/// A fresh span id (64 random bits, never all zeros).
pub fn new_span_id() -> [u8; 8] {
    rand::random::<u64>().max(1).to_be_bytes()
}
