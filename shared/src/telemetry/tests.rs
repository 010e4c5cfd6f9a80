use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::*;

fn span() -> SpanRecord {
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
        ],
        error: Some("denied".into()),
    }
}

#[test]
fn spans_encode_as_an_otlp_request_that_decodes_back() {
    let bytes = otlp::encode("underpass-edge", [span()]);
    let request = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
    let resource = &request.resource_spans[0];
    let service = resource.resource.as_ref().expect("resource").attributes[0].clone();
    assert_eq!(service.key, "service.name");
    assert_eq!(
        service.value.and_then(|v| v.value),
        Some(Value::StringValue("underpass-edge".into()))
    );
    let got = &resource.scope_spans[0].spans[0];
    assert_eq!(got.trace_id, vec![7; 16]);
    assert_eq!(got.span_id, vec![2; 8]);
    assert_eq!(got.parent_span_id, vec![1; 8]);
    assert_eq!(got.kind, 2, "server");
    assert_eq!(got.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(got.end_time_unix_nano, 1_700_000_001_000_000_000);
    assert_eq!(got.status.as_ref().map(|s| s.code), Some(2), "error");
    assert_eq!(got.attributes.len(), 2);
    // A root span has no parent bytes at all.
    let mut root = span();
    root.parent_span_id = None;
    let request =
        ExportTraceServiceRequest::decode(otlp::encode("x", [root]).as_slice()).expect("decodes");
    assert!(request.resource_spans[0].scope_spans[0].spans[0]
        .parent_span_id
        .is_empty());
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
        tracer.record(span());
    }
    let counts = tracer.counts().expect("on");
    assert_eq!(counts.dropped, 1000 - 2, "{counts:?}");
    assert!(!Tracer::off().is_on());
    assert_eq!(Tracer::off().counts(), None);
}
