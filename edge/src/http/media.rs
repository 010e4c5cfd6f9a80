//! Media types of MCP requests: what a POST carries and what a client accepts.

use http::{HeaderMap, Method, StatusCode};
use underpass_mcp::jsonrpc::code;

use crate::http::respond::{error_response, Refusal};

/// Media types: a POST carries JSON and accepts JSON or an event stream; a GET accepts an
/// event stream (415 / 406 otherwise).
pub fn check_media(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    let accept = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let accepts = |t: &str| accept.is_empty() || accept.contains(t) || accept.contains("*/*");
    if *method == Method::POST {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/json") {
            return Err(Box::new(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                "MCP requests are JSON: send Content-Type: application/json",
            )));
        }
        if !accepts("application/json") && !accepts("text/event-stream") {
            return Err(Box::new(error_response(
                StatusCode::NOT_ACCEPTABLE,
                code::INVALID_REQUEST,
                "Accept must include application/json and text/event-stream",
            )));
        }
    } else if *method == Method::GET && !accepts("text/event-stream") {
        return Err(Box::new(error_response(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "a GET opens an event stream: Accept must include text/event-stream",
        )));
    }
    Ok(())
}

/// Whether a response's `Content-Type` says it is an event stream.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
