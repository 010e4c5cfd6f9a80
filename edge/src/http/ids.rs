//! The ids a request carries: the W3C trace id and the edge's own request id.

use http::HeaderMap;

/// A fresh request id (128 random bits, hex).
pub(crate) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The W3C trace id of the request's `traceparent` (a well-formed one: see
/// [`underpass_proto::trace::parse`]), or a fresh one.
pub(crate) fn trace_id(headers: &HeaderMap) -> String {
    let from_header = headers
        .get(underpass_proto::trace::TRACEPARENT)
        .and_then(|v| underpass_proto::trace::parse(v.as_bytes()))
        .map(|(trace, _, _)| trace.to_owned());
    from_header.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
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
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(trace_id(&h), "4bf92f3577b34da6a3ce929d0e0e4736");
        // Uppercase is not W3C: a new trace.
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        );
        assert_ne!(trace_id(&h), "4bf92f3577b34da6a3ce929d0e0e4736");
        let fresh = trace_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 32);
    }
}
