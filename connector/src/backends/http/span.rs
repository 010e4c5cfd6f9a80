//! The span of one backend call: a child of the span the edge named in the exchange's
//! `traceparent` (its tunnel exchange), in the request's trace, recorded when it ends.

use std::time::SystemTime;

use underpass_proto::frame::RequestHead;
use underpass_proto::trace::{TraceContext, TRACEPARENT};
use underpass_shared::telemetry::{AttrValue, SpanKind, SpanRecord, Tracer};

/// A backend call under way; recorded when dropped (with the answer, or on [`BackendSpan::fail`]).
pub(super) struct BackendSpan {
    tracer: Tracer,
    span: Option<SpanRecord<'static>>,
}

impl BackendSpan {
    /// The span of the call `head` asks for, when spans are exported and the trace is
    /// sampled; `span_id` is the parent id the backend gets in its `traceparent`.
    pub(super) fn start(tracer: &Tracer, head: &RequestHead, span_id: [u8; 8]) -> Option<Self> {
        if !tracer.is_on() {
            return None;
        }
        let context = context_of(head)?;
        if !context.sampled() {
            return None;
        }
        let mut attributes = vec![
            (
                "underpass.service",
                AttrValue::Str(head.service.clone().into()),
            ),
            (
                "http.request.method",
                AttrValue::Str(head.method.clone().into()),
            ),
        ];
        if !head.request_id.is_empty() {
            attributes.push((
                "underpass.request_id",
                AttrValue::Str(head.request_id.clone().into()),
            ));
        }
        let now = SystemTime::now();
        Some(BackendSpan {
            tracer: tracer.clone(),
            span: Some(SpanRecord {
                trace_id: context.trace_id,
                span_id,
                parent_span_id: context.parent_id,
                name: format!("backend {}", head.service).into(),
                kind: SpanKind::Client,
                start: now,
                end: now,
                attributes,
                error: None,
            }),
        })
    }

    /// The backend answered with `status` (a 5xx marks the span failed).
    pub(super) fn answered(mut self, status: u16) -> Self {
        if let Some(span) = self.span.as_mut() {
            span.attributes
                .push(("http.response.status_code", AttrValue::Int(status.into())));
            if status >= 500 {
                span.error = Some(format!("the backend answered {status}").into());
            }
        }
        self
    }

    /// Ends the span now, failed: the call got no answer.
    pub(super) fn fail(mut self, error: String) {
        if let Some(span) = self.span.as_mut() {
            span.error = Some(error.into());
        }
        // Recorded by drop.
    }
}

impl Drop for BackendSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.end = SystemTime::now();
            self.tracer.record(&span);
        }
    }
}

/// The trace the exchange belongs to: the edge's `traceparent` when it names the request's
/// trace (its parent is then the edge's exchange span), else the request's trace id alone.
fn context_of(head: &RequestHead) -> Option<TraceContext> {
    let from_edge = head
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
        .and_then(|(_, value)| TraceContext::from_traceparent(value))
        .filter(|c| c.trace_id_hex() == head.trace_id);
    from_edge.or_else(|| TraceContext::of_trace_id(&head.trace_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(traceparent: Option<&str>) -> RequestHead {
        RequestHead {
            service: "everything".into(),
            method: "POST".into(),
            query: String::new(),
            headers: traceparent
                .map(|t| vec![("traceparent".to_owned(), t.as_bytes().to_vec())])
                .unwrap_or_default(),
            principal: "anonymous".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            request_id: "r1".into(),
            assertion: None,
        }
    }

    #[test]
    fn the_call_is_a_child_of_the_edges_exchange_in_the_requests_trace() {
        let edge = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = context_of(&head(Some(edge))).expect("context");
        assert_eq!(c.parent_id, Some(0x00f0_67aa_0ba9_02b7u64.to_be_bytes()));
        // A traceparent of another trace (a client's, forwarded by an edge that exports
        // nothing) is not the parent: the call is then a root in the request's trace.
        let other = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        let c = context_of(&head(Some(other))).expect("context");
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent_id, None);
        assert!(context_of(&head(None)).is_some());
        // Not sampled by the caller: no span.
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!context_of(&head(Some(unsampled)))
            .expect("context")
            .sampled());
    }
}
