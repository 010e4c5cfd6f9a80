//! The one renderer of the edge's own answers: JSON-RPC error bodies built with
//! [`underpass_mcp::jsonrpc::error`] (codes from [`underpass_mcp::jsonrpc::code`]), with
//! the status and headers that go with them. Every refusal the edge gives is made here.

use http::header::HeaderValue;
use http::{Response, StatusCode};
use serde_json::Value;
use underpass_mcp::jsonrpc::{self, code};

use crate::http::body::{full_body, Body};

/// A finished response refusing the request (boxed: responses are large).
pub type Refusal = Box<Response<Body>>;

/// A JSON-RPC error body with `id: null`, as MCP clients expect from a transport-level failure.
pub fn error_response(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    jsonrpc_refusal(status, None, code, message, None)
}

/// A JSON-RPC error answering the message with `id` (or `null`), with optional `data`.
pub fn jsonrpc_refusal(
    status: StatusCode,
    id: Option<&Value>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response<Body> {
    json_response(status, &jsonrpc::error(id, code, message, data))
}

/// `body` as an `application/json` answer with `status`.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(full_body(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `body` as an event stream (200): not cached, not buffered by proxies on the way.
pub fn event_stream_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    let (name, value) = underpass_mcp::sse::NO_BUFFERING_HEADER;
    headers.insert(name, HeaderValue::from_static(value));
    resp
}

/// 429 with `Retry-After` for a per-caller cap (JSON-RPC `-31429`).
pub fn over_cap(message: &str, retry_after_secs: u64) -> Response<Body> {
    retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        code::RATE_LIMITED,
        message,
        retry_after_secs,
    )
}

/// 503 with `Retry-After` for a shared cap that is full (JSON-RPC `-31503`): every tunnel
/// that could carry the request has its most exchanges in flight.
pub fn busy(message: &str, retry_after_secs: u64) -> Response<Body> {
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        code::UNAVAILABLE,
        message,
        retry_after_secs,
    )
}

/// A refusal that says when to come back: the `Retry-After` header and the same figure as
/// `retryAfterSeconds` in the error's data.
fn retry_later(
    status: StatusCode,
    code: i64,
    message: &str,
    retry_after_secs: u64,
) -> Response<Body> {
    let mut resp = jsonrpc_refusal(
        status,
        None,
        code,
        message,
        Some(serde_json::json!({ "retryAfterSeconds": retry_after_secs })),
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs),
    );
    resp
}

/// Logs `detail` (which may name connectors, backends and addresses) under a fresh reference
/// and returns what the client reads: `what` and that reference, nothing of the topology.
pub(crate) fn incident(what: &str, service: &str, detail: &dyn std::fmt::Display) -> String {
    let reference = underpass_shared::incident::new_ref();
    tracing::warn!(service, %reference, "{what}: {detail}");
    format!("{what} (ref {reference})")
}
