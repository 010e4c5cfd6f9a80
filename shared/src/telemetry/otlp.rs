//! Finished spans as an OTLP `ExportTraceServiceRequest` (protobuf), pure.
//!
//! Written straight into bytes with prost's wire primitives and the field numbers of the
//! OpenTelemetry protocol (`opentelemetry/proto/{collector/trace,trace,common,resource}/v1`),
//! instead of building `opentelemetry-proto`'s message structs: those take an allocation per
//! id, key and value of every span (≈ 25 per span), which measured as much as the rest of a
//! request's tracing. A span is encoded once, when recorded, into one buffer of its exact
//! size; a batch is the spans' bytes concatenated under one resource and scope. The unit
//! tests decode what this writes with the official `opentelemetry-proto` messages.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use super::{AttrValue, SpanKind, SpanRecord};

/// The instrumentation scope every span of this product names.
pub const SCOPE: &str = "underpass";

// Field numbers of the OTLP messages written here.
/// `ExportTraceServiceRequest.resource_spans`.
const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.resource`, `ResourceSpans.scope_spans`.
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `ScopeSpans.scope`, `ScopeSpans.spans`.
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
/// `InstrumentationScope.name`, `.version`.
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
/// `Span` fields.
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
/// `Status.message`, `Status.code` (`STATUS_CODE_ERROR` = 2).
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
const STATUS_CODE_ERROR: u64 = 2;
/// `KeyValue.key`, `KeyValue.value`.
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
/// `AnyValue.string_value`, `AnyValue.int_value`.
const ANY_STRING: u32 = 1;
const ANY_INT: u32 = 3;

/// One span, encoded: the `ScopeSpans.spans` field (key, length, `Span` message), ready to be
/// concatenated into a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSpan(Vec<u8>);

impl EncodedSpan {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: an encoded span holds at least its ids.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Encodes one finished span, in one allocation of its exact size.
pub fn encode_span(span: &SpanRecord<'_>) -> EncodedSpan {
    let body = span_len(span);
    let mut buf = Vec::with_capacity(delimited_len(SCOPE_SPANS_SPANS, body));
    delimited_head(SCOPE_SPANS_SPANS, body, &mut buf);
    bytes_field(SPAN_TRACE_ID, &span.trace_id, &mut buf);
    bytes_field(SPAN_SPAN_ID, &span.span_id, &mut buf);
    if let Some(parent) = &span.parent_span_id {
        bytes_field(SPAN_PARENT_SPAN_ID, parent, &mut buf);
    }
    bytes_field(SPAN_NAME, span.name.as_bytes(), &mut buf);
    encode_key(SPAN_KIND, WireType::Varint, &mut buf);
    encode_varint(kind_number(span.kind), &mut buf);
    let start = unix_nanos(span.start);
    fixed64_field(SPAN_START, start, &mut buf);
    fixed64_field(SPAN_END, unix_nanos(span.end).max(start), &mut buf);
    for (key, value) in &span.attributes {
        key_value(SPAN_ATTRIBUTES, key, value, &mut buf);
    }
    if let Some(message) = &span.error {
        delimited_head(SPAN_STATUS, status_len(message), &mut buf);
        bytes_field(STATUS_MESSAGE, message.as_bytes(), &mut buf);
        encode_key(STATUS_CODE, WireType::Varint, &mut buf);
        encode_varint(STATUS_CODE_ERROR, &mut buf);
    }
    debug_assert_eq!(buf.len(), buf.capacity());
    EncodedSpan(buf)
}

/// The request body posted to `/v1/traces`: one resource (`service.name` = `service`), one
/// scope, the spans in order.
pub fn encode(service: &str, spans: &[EncodedSpan]) -> Vec<u8> {
    let version = env!("CARGO_PKG_VERSION");
    let resource_attributes = [
        ("service.name", AttrValue::Str(service.into())),
        ("service.version", AttrValue::Str(version.into())),
    ];
    let resource: usize = resource_attributes
        .iter()
        .map(|(k, v)| delimited_len(RESOURCE_ATTRIBUTES, key_value_len(k, v)))
        .sum();
    let scope =
        delimited_len(SCOPE_NAME, SCOPE.len()) + delimited_len(SCOPE_VERSION, version.len());
    let scope_spans =
        delimited_len(SCOPE_SPANS_SCOPE, scope) + spans.iter().map(EncodedSpan::len).sum::<usize>();
    let resource_spans = delimited_len(RESOURCE_SPANS_RESOURCE, resource)
        + delimited_len(RESOURCE_SPANS_SCOPE_SPANS, scope_spans);

    let mut buf = Vec::with_capacity(delimited_len(REQUEST_RESOURCE_SPANS, resource_spans));
    delimited_head(REQUEST_RESOURCE_SPANS, resource_spans, &mut buf);
    delimited_head(RESOURCE_SPANS_RESOURCE, resource, &mut buf);
    for (key, value) in &resource_attributes {
        key_value(RESOURCE_ATTRIBUTES, key, value, &mut buf);
    }
    delimited_head(RESOURCE_SPANS_SCOPE_SPANS, scope_spans, &mut buf);
    delimited_head(SCOPE_SPANS_SCOPE, scope, &mut buf);
    bytes_field(SCOPE_NAME, SCOPE.as_bytes(), &mut buf);
    bytes_field(SCOPE_VERSION, version.as_bytes(), &mut buf);
    for span in spans {
        buf.extend_from_slice(&span.0);
    }
    buf
}

/// The `Span` message's size without its own key and length.
fn span_len(span: &SpanRecord<'_>) -> usize {
    let mut n = delimited_len(SPAN_TRACE_ID, span.trace_id.len())
        + delimited_len(SPAN_SPAN_ID, span.span_id.len())
        + delimited_len(SPAN_NAME, span.name.len())
        + key_len(SPAN_KIND)
        + encoded_len_varint(kind_number(span.kind))
        + 2 * (key_len(SPAN_START) + 8);
    if let Some(parent) = &span.parent_span_id {
        n += delimited_len(SPAN_PARENT_SPAN_ID, parent.len());
    }
    n += span
        .attributes
        .iter()
        .map(|(k, v)| delimited_len(SPAN_ATTRIBUTES, key_value_len(k, v)))
        .sum::<usize>();
    if let Some(message) = &span.error {
        n += delimited_len(SPAN_STATUS, status_len(message));
    }
    n
}

fn status_len(message: &str) -> usize {
    delimited_len(STATUS_MESSAGE, message.len())
        + key_len(STATUS_CODE)
        + encoded_len_varint(STATUS_CODE_ERROR)
}

fn any_value_len(value: &AttrValue<'_>) -> usize {
    match value {
        AttrValue::Str(s) => delimited_len(ANY_STRING, s.len()),
        AttrValue::Int(i) => key_len(ANY_INT) + encoded_len_varint(*i as u64),
    }
}

fn key_value_len(key: &str, value: &AttrValue<'_>) -> usize {
    delimited_len(KEY_VALUE_KEY, key.len()) + delimited_len(KEY_VALUE_VALUE, any_value_len(value))
}

/// A `KeyValue` as field `tag`.
fn key_value(tag: u32, key: &str, value: &AttrValue<'_>, buf: &mut Vec<u8>) {
    delimited_head(tag, key_value_len(key, value), buf);
    bytes_field(KEY_VALUE_KEY, key.as_bytes(), buf);
    delimited_head(KEY_VALUE_VALUE, any_value_len(value), buf);
    match value {
        AttrValue::Str(s) => bytes_field(ANY_STRING, s.as_bytes(), buf),
        AttrValue::Int(i) => {
            encode_key(ANY_INT, WireType::Varint, buf);
            // int64 on the wire: two's complement as a 64-bit varint.
            encode_varint(*i as u64, buf);
        }
    }
}

/// A length-delimited field's size: key, length, `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A length-delimited field's key and length (its `len` bytes follow).
fn delimited_head(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn bytes_field(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    delimited_head(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

fn fixed64_field(tag: u32, value: u64, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// `Span.SpanKind`: internal 1, server 2, client 3.
fn kind_number(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
