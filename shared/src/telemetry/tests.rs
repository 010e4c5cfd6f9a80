use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::*;

fn span() -> SpanRecord<'static> {
    SpanRecord {
        trace_id: [7; 16],
        span_id: [2; 8],
        parent_span_id: Some([1; 8]),
        name: "tools/call everything".into(),
        kind: SpanKind::Server,
        start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        end: UNIX_EPOCH + Duration::from_secs(1_700_000_001),
        attributes: vec![
            ("mcp.method.name", AttrValue::Str("tools/call".into())),
            ("http.response.status_code", AttrValue::Int(403)),
            ("negative", AttrValue::Int(-5)),
            ("empty", AttrValue::Str("".into())),
        ],
        error: Some("denied".into()),
    }
}

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(bytes).expect("the official messages decode it")
}

#[test]
fn spans_encode_as_an_otlp_request_that_the_official_messages_decode() {
    let mut root = span();
    root.parent_span_id = None;
    root.error = None;
    root.kind = SpanKind::Client;
    root.name = "x".repeat(300).into(); // a length that takes two varint bytes
    let encoded = [otlp::encode_span(&span()), otlp::encode_span(&root)];
    let request = decode(&otlp::encode("underpass-edge", &encoded));
    assert_eq!(request.resource_spans.len(), 1);
    let resource = &request.resource_spans[0];
    let attributes = &resource.resource.as_ref().expect("resource").attributes;
    assert_eq!(attributes[0].key, "service.name");
    assert_eq!(
        attributes[0].value.clone().and_then(|v| v.value),
        Some(Value::StringValue("underpass-edge".into()))
    );
    assert_eq!(attributes[1].key, "service.version");
    let scope_spans = &resource.scope_spans[0];
    let scope = scope_spans.scope.as_ref().expect("scope");
    assert_eq!(scope.name, "underpass");
    assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(scope_spans.spans.len(), 2);

    let got = &scope_spans.spans[0];
    assert_eq!(got.trace_id, vec![7; 16]);
    assert_eq!(got.span_id, vec![2; 8]);
    assert_eq!(got.parent_span_id, vec![1; 8]);
    assert_eq!(got.name, "tools/call everything");
    assert_eq!(got.kind, 2, "server");
    assert_eq!(got.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(got.end_time_unix_nano, 1_700_000_001_000_000_000);
    let status = got.status.as_ref().expect("a failed span has a status");
    assert_eq!((status.code, status.message.as_str()), (2, "denied"));
    let values: Vec<(&str, Option<Value>)> = got
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
        .collect();
    assert_eq!(
        values,
        vec![
            (
                "mcp.method.name",
                Some(Value::StringValue("tools/call".into()))
            ),
            ("http.response.status_code", Some(Value::IntValue(403))),
            ("negative", Some(Value::IntValue(-5))),
            ("empty", Some(Value::StringValue(String::new()))),
        ]
    );

    // A root has no parent bytes at all; a span that did not fail no status.
    let got = &scope_spans.spans[1];
    assert!(got.parent_span_id.is_empty());
    assert!(got.status.is_none());
    assert_eq!(got.kind, 3, "client");
    assert_eq!(got.name.len(), 300);
    // And it is the same message the official structs would have made.
    assert_eq!(
        otlp::encode("s", &[otlp::encode_span(&root)]),
        decode(&otlp::encode("s", &[otlp::encode_span(&root)])).encode_to_vec()
    );
    // No spans: an empty scope, still a valid request.
    assert!(
        decode(&otlp::encode("s", &[])).resource_spans[0].scope_spans[0]
            .spans
            .is_empty()
    );
}

#[test]
fn endpoints_are_http_or_https_and_plaintext_off_loopback_only_by_opt_in() {
    let ok = OtlpEndpoint::try_from("http://127.0.0.1:4318/".to_owned()).expect("valid");
    assert_eq!(ok.traces_url(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(ok.authority(), "127.0.0.1:4318");
    let prefixed = OtlpEndpoint::try_from("http://[::1]:4318/otlp".to_owned()).expect("valid");
    assert_eq!(prefixed.traces_path(), "/otlp/v1/traces");
    assert_eq!(prefixed.authority(), "[::1]:4318");
    let tls = OtlpEndpoint::try_from("https://collector.example".to_owned()).expect("valid");
    assert_eq!(tls.authority(), "collector.example:443");
    for bad in ["ftp://c", "c:4318", "http://c:4318/?x=1", "not a url"] {
        assert!(OtlpEndpoint::try_from(bad.to_owned()).is_err(), "{bad}");
    }
    let remote = TelemetryConfig {
        otlp_endpoint: Some(
            OtlpEndpoint::try_from("http://collector:4318".to_owned()).expect("ok"),
        ),
        ..TelemetryConfig::default()
    };
    assert!(remote.validate().unwrap_err().contains("otlp_insecure"));
    assert!(TelemetryConfig {
        otlp_insecure: true,
        ..remote
    }
    .validate()
    .is_ok());
    let local = TelemetryConfig {
        otlp_endpoint: Some(ok),
        ..TelemetryConfig::default()
    };
    assert!(local.validate().is_ok());
    // https needs the CA bundle that signs the collector, and only https takes one; a
    // collector under TLS may be anywhere.
    let https = TelemetryConfig {
        otlp_endpoint: Some(tls),
        ..TelemetryConfig::default()
    };
    assert!(https.validate().unwrap_err().contains("otlp_ca"));
    let with_ca = TelemetryConfig {
        otlp_ca: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        ..https
    };
    assert!(with_ca.validate().is_ok());
    assert!(TelemetryConfig {
        otlp_endpoint: local.otlp_endpoint.clone(),
        ..with_ca.clone()
    }
    .validate()
    .unwrap_err()
    .contains("plain http"));
    assert!(TelemetryConfig {
        otlp_endpoint: None,
        ..with_ca
    }
    .validate()
    .is_err());
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_and_never_waits() {
    // An endpoint nobody listens on: the buffer of 2 fills before the first export.
    let config = TelemetryConfig {
        otlp_endpoint: Some(OtlpEndpoint::try_from("http://127.0.0.1:9".to_owned()).expect("ok")),
        export_queue: 2,
        ..TelemetryConfig::default()
    };
    let tracer = Tracer::start(&config, "test").expect("starts");
    for _ in 0..1000 {
        tracer.record(&span());
    }
    let counts = tracer.counts().expect("on");
    assert_eq!(counts.dropped, 1000 - 2, "{counts:?}");
    assert!(!Tracer::off().is_on());
    assert_eq!(Tracer::off().counts(), None);
}
