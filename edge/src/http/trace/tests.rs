use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use underpass_audit::{AuditRecord, Decision, Outcome};
use underpass_shared::telemetry::SpanKind;

use super::*;

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn with_header(value: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(value));
    h
}

#[test]
fn the_clients_trace_is_continued_and_the_exchange_span_parents_the_connector() {
    let mut trace = RequestTrace::of(&with_header(CLIENT));
    assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(!trace.adopt_meta("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    trace.admitted();
    trace.exchange_starts();
    let record = AuditRecord {
        service: Some("everything".into()),
        mcp_method: Some("tools/call".into()),
        target: Some("echo".into()),
        principal: Some("apikey:ci".into()),
        decision: Some(Decision::Allow),
        rule: Some("allow[0]".into()),
        http_status: Some(200),
        ..AuditRecord::default()
    };
    let spans = trace.spans(&record, Duration::from_millis(3));
    assert_eq!(spans.len(), 3);
    let (server, admission, exchange) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(server.name, "tools/call everything");
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(
        server.parent_span_id,
        Some(0x00f0_67aa_0ba9_02b7u64.to_be_bytes())
    );
    assert_eq!(admission.parent_span_id, Some(server.span_id));
    assert_eq!(exchange.parent_span_id, Some(server.span_id));
    assert_eq!(exchange.kind, SpanKind::Client);
    assert!(spans
        .iter()
        .all(|s| s.trace_id == server.trace_id && s.error.is_none()));
    assert!(spans
        .iter()
        .all(|s| s.start <= s.end && s.end <= server.end));
    // The connector's parent is the exchange span, in the client's trace and flags.
    let down = trace.tunnel_traceparent();
    let parsed = TraceContext::from_traceparent(down.as_bytes()).expect("valid");
    assert_eq!(parsed.trace_id, server.trace_id);
    assert_eq!(parsed.parent_id, Some(exchange.span_id));
    assert!(parsed.sampled());
}

#[test]
fn without_a_header_meta_names_the_trace_and_a_denial_is_an_error() {
    let mut trace = RequestTrace::of(&HeaderMap::new());
    assert!(trace.sampled(), "a trace the edge starts is recorded");
    assert!(!trace.adopt_meta("garbage"));
    assert!(trace.adopt_meta("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
    assert_eq!(trace.trace_id(), "0af7651916cd43dd8448eb211c80319c");
    assert!(!trace.sampled(), "the caller's flags");
    let record = AuditRecord {
        service: Some("everything".into()),
        mcp_method: Some("tools/call".into()),
        decision: Some(Decision::Deny),
        rule: Some("deny[0]".into()),
        outcome: Outcome::Denied,
        http_status: Some(403),
        ..AuditRecord::default()
    };
    let spans = trace.spans(&record, Duration::from_millis(1));
    assert_eq!(
        spans.len(),
        2,
        "no exchange for a request that never left the edge"
    );
    assert_eq!(spans[0].error.as_deref(), Some("denied"));
    assert_eq!(spans[1].error.as_deref(), Some("denied"));
    assert_eq!(spans[1].end, spans[0].end, "admission ran to the end");
}
