//! A request's place in its W3C trace, and the spans the edge reports for it: the request
//! (server), its admission (authentication, inspection, policy) and its tunnel exchange
//! (client; its span id is the parent the connector continues). The trace is the client's
//! (`traceparent` header, else `params._meta.traceparent` of a 2026-07-28 request), or one the
//! edge starts. Building the spans is a pure function of the marks and the audit record.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use http::HeaderMap;
use underpass_audit::{AuditRecord, Decision, Outcome};
use underpass_proto::trace::{TraceContext, TRACEPARENT};
use underpass_shared::telemetry::{new_span_id, AttrValue, SpanKind, SpanRecord};

/// What the edge knows of a request's trace, and when its steps happened.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    context: TraceContext,
    /// The context is the client's own header (then `_meta` is not read).
    from_header: bool,
    server_span: [u8; 8],
    exchange_span: [u8; 8],
    started_at: SystemTime,
    started: Instant,
    admitted: Option<Instant>,
    exchange: Option<Instant>,
}

impl RequestTrace {
    /// The trace of a request that just arrived with `headers`.
    pub fn of(headers: &HeaderMap) -> RequestTrace {
        let from_client = headers
            .get(TRACEPARENT)
            .and_then(|v| TraceContext::from_traceparent(v.as_bytes()));
        RequestTrace {
            context: from_client.unwrap_or_else(|| TraceContext::start(rand::random())),
            from_header: from_client.is_some(),
            server_span: new_span_id(),
            exchange_span: new_span_id(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            admitted: None,
            exchange: None,
        }
    }

    /// The trace id, as the audit record and the logs show it.
    pub fn trace_id(&self) -> String {
        self.context.trace_id_hex()
    }

    /// Takes the trace a request's `params._meta.traceparent` names, unless the client sent
    /// a `traceparent` header (which wins); true when it was taken.
    pub fn adopt_meta(&mut self, traceparent: &str) -> bool {
        if self.from_header {
            return false;
        }
        match TraceContext::from_traceparent(traceparent.as_bytes()) {
            Some(context) => {
                self.context = context;
                true
            }
            None => false,
        }
    }

    /// Admission ended (admitted or refused).
    pub fn admitted(&mut self) {
        self.admitted.get_or_insert_with(Instant::now);
    }

    /// The exchange is about to go down a tunnel.
    pub fn exchange_starts(&mut self) {
        self.exchange.get_or_insert_with(Instant::now);
    }

    /// The `traceparent` the exchange carries down the tunnel: the exchange span is the
    /// parent of the connector's backend call.
    pub fn tunnel_traceparent(&self) -> String {
        self.context.traceparent(self.exchange_span)
    }

    /// Whether the spans are to be recorded (the caller's sampling decision).
    pub fn sampled(&self) -> bool {
        self.context.sampled()
    }

    /// The request's spans, ended `took` after arrival, described by its audit `record`
    /// (borrowed: recording encodes them at once).
    pub fn spans<'a>(
        &self,
        record: &'a AuditRecord,
        took: std::time::Duration,
    ) -> Vec<SpanRecord<'a>> {
        let at = |mark: Instant| self.started_at + mark.saturating_duration_since(self.started);
        let end = self.started_at + took;
        let failed = failure(record);
        let service = record.service.as_deref().unwrap_or_default();
        let method = record.mcp_method.as_deref();
        let name = match method {
            Some(m) if !service.is_empty() => Cow::Owned(format!("{m} {service}")),
            Some(m) => Cow::Borrowed(m),
            None => Cow::Owned(format!(
                "{} {}",
                record.http_method.as_deref().unwrap_or("HTTP"),
                service
            )),
        };
        let mut attributes = vec![
            ("underpass.service", AttrValue::Str(service.into())),
            (
                "underpass.outcome",
                AttrValue::Str(record.outcome.as_str().into()),
            ),
        ];
        let optional = [
            ("mcp.method.name", method),
            ("underpass.target", record.target.as_deref()),
            ("enduser.id", record.principal.as_deref()),
            ("underpass.request_id", record.request_id.as_deref()),
            ("http.request.method", record.http_method.as_deref()),
        ];
        attributes.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| Some((k, AttrValue::Str(v?.into())))),
        );
        if let Some(status) = record.http_status {
            attributes.push(("http.response.status_code", AttrValue::Int(status.into())));
        }
        let span = |span_id, parent, name, kind, start, end, attributes, error| SpanRecord {
            trace_id: self.context.trace_id,
            span_id,
            parent_span_id: parent,
            name,
            kind,
            start,
            end,
            attributes,
            error,
        };
        let mut spans = Vec::with_capacity(3);
        spans.push(span(
            self.server_span,
            self.context.parent_id,
            name,
            SpanKind::Server,
            self.started_at,
            end,
            attributes,
            failed.clone(),
        ));
        let decision = match record.decision {
            Some(Decision::Allow) => "allow",
            Some(Decision::Deny) => "deny",
            None => "none",
        };
        let mut admission = vec![("underpass.decision", AttrValue::Str(decision.into()))];
        if let Some(rule) = &record.rule {
            admission.push(("underpass.rule", AttrValue::Str(rule.as_str().into())));
        }
        let refused = matches!(
            record.outcome,
            Outcome::Denied | Outcome::Unauthenticated | Outcome::RateLimited
        );
        spans.push(span(
            new_span_id(),
            Some(self.server_span),
            Cow::Borrowed("admission"),
            SpanKind::Internal,
            self.started_at,
            self.admitted.map_or(end, at),
            admission,
            refused.then(|| record.outcome.as_str().into()),
        ));
        if let Some(exchange) = self.exchange {
            spans.push(span(
                self.exchange_span,
                Some(self.server_span),
                Cow::Borrowed("tunnel exchange"),
                SpanKind::Client,
                at(exchange),
                end,
                Vec::new(),
                failed,
            ));
        }
        spans
    }
}

/// The span status message of a request that did not end well.
fn failure(record: &AuditRecord) -> Option<Cow<'static, str>> {
    (record.outcome != Outcome::Ok).then(|| Cow::Borrowed(record.outcome.as_str()))
}

#[cfg(test)]
mod tests;
