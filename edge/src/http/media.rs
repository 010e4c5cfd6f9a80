//! Media types of MCP requests: what a POST carries and what a client accepts.

use http::{HeaderMap, Method, StatusCode};
use underpass_mcp::jsonrpc::code;

use crate::http::respond::{error_response, Refusal};

/// Media types: a POST carries JSON and accepts JSON or an event stream; a GET accepts an
/// event stream (415 / 406 otherwise).
pub fn check_media(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    // Compared in place, ignoring ASCII case: no copy of the headers per request.
    let accept = || headers.get_all(http::header::ACCEPT).iter();
    let no_accept = accept().all(|v| v.as_bytes().is_empty());
    let accepts = |t: &str| {
        no_accept
            || accept().any(|v| {
                contains_ignore_case(v.as_bytes(), t) || contains_ignore_case(v.as_bytes(), "*/*")
            })
    };
    if *method == Method::POST {
        let json = b"application/json";
        let is_json = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.as_bytes().get(..json.len()))
            .is_some_and(|start| start.eq_ignore_ascii_case(json));
        if !is_json {
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

/// Whether `needle` (ASCII) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Whether a response's `Content-Type` says it is an event stream.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: Method, headers: &[(&str, &str)]) -> Option<StatusCode> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        check_media(&method, &map).err().map(|r| r.status())
    }

    #[test]
    fn a_post_carries_json_and_accepts_json_or_an_event_stream() {
        let ct = ("content-type", "application/json");
        assert_eq!(status(Method::POST, &[ct]), None, "no Accept accepts all");
        assert_eq!(
            status(
                Method::POST,
                &[ct, ("accept", "application/json, text/event-stream")]
            ),
            None
        );
        assert_eq!(status(Method::POST, &[ct, ("accept", "*/*")]), None);
        assert_eq!(
            status(
                Method::POST,
                &[ct, ("accept", "text/html"), ("accept", "TEXT/Event-Stream")]
            ),
            None,
            "any Accept field, any case"
        );
        assert_eq!(
            status(
                Method::POST,
                &[("content-type", "Application/JSON; charset=utf-8")]
            ),
            None
        );
        assert_eq!(
            status(Method::POST, &[ct, ("accept", "text/html")]),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
        assert_eq!(
            status(Method::POST, &[("content-type", "text/plain")]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(Method::POST, &[]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(Method::POST, &[("content-type", "application/js")]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn a_get_must_accept_an_event_stream() {
        assert_eq!(
            status(Method::GET, &[("accept", "text/event-stream")]),
            None
        );
        assert_eq!(status(Method::GET, &[]), None);
        assert_eq!(
            status(Method::GET, &[("accept", "application/json")]),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
    }
}
