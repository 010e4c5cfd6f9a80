//! The ids a request carries: the W3C trace id and the edge's own request id.

use http::HeaderMap;

/// A fresh request id (128 random bits, hex).
pub(crate) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The W3C trace id of the request's `traceparent`, or a fresh one.
pub(crate) fn trace_id(headers: &HeaderMap) -> String {
    let from_header = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    match from_header {
        Some(id) => id.to_ascii_lowercase(),
        None => format!("{:032x}", rand::random::<u128>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn trace_ids() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(trace_id(&h), "4bf92f3577b34da6a3ce929d0e0e4736");
        let fresh = trace_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 32);
    }
}
