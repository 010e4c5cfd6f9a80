//! `GET /metrics` on the admin listener: OpenMetrics text from `prometheus-client`, families
//! prefixed `underpass_`. Counters the request path updates are plain atomics; everything
//! else is read when scraped (collectors), so nothing on the request path pays for it.
//!
//! Families (README's metrics table lists each with its labels and their values):
//! - [`request`]: requests by service, MCP method and outcome, their duration and its split
//!   into phases ([`phases`]), denials and rate-limit refusals by rule, client body bytes,
//!   event streams open;
//! - [`tunnels`]: live tunnels, their RTT, tunnels accepted since start, legacy sessions;
//! - [`connectors`]: what connectors report about themselves (`Stats` control messages);
//! - [`state`]: the audit writer's queue and drops, the revocation list's fail-closed state,
//!   spans recorded for export.
//!
//! Every label value comes from configuration, a verified certificate or a fixed set, never
//! verbatim from a client; sets that can grow are capped ([`capped`]): a client choosing
//! service or method names cannot grow the exposition.

pub mod capped;
pub mod connectors;
pub mod phases;
pub mod request;
mod state;
pub mod tunnels;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use underpass_audit::Auditor;
use underpass_shared::telemetry::Tracer;

pub use request::{EventStream, RequestMetrics};

use crate::federation::state::Federation;
use crate::revocation::Revocations;
use crate::tunnels::registry::Registry as Tunnels;

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
        federation: Arc<Federation>,
    ) -> Self {
        let mut registry = Registry::with_prefix("underpass");
        let requests = Arc::new(RequestMetrics::new(services));
        requests.register(&mut registry);
        registry.register_collector(Box::new(connectors::ConnectorMetrics(tunnels.clone())));
        registry.register_collector(Box::new(tunnels::TunnelMetrics(tunnels)));
        if let Some(auditor) = auditor {
            registry.register_collector(Box::new(state::AuditMetrics(auditor)));
        }
        registry.register_collector(Box::new(state::RevocationMetrics(revocations)));
        if tracer.is_on() {
            registry.register_collector(Box::new(state::SpanMetrics(tracer.clone())));
        }
        registry.register_collector(Box::new(state::FederationMetrics(federation)));
        Metrics { registry, requests }
    }

    /// The exposition, read now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
