//! The HTTP headers of the edge → connector → backend contract: what the connector adds to
//! every request it hands a backend. Clients cannot set them: the edge drops every header
//! under [`RESERVED_PREFIX`] before a request crosses the tunnel.

/// The prefix of every header in this contract.
pub const RESERVED_PREFIX: &str = "x-underpass-";

/// The edge-signed identity assertion (a short-lived JWT) the backend verifies against the
/// edge's JWKS; the client's own credentials never reach a backend.
pub const ASSERTION_HEADER: &str = "x-underpass-identity";

/// The edge's trace id of the request, for correlating edge, connector and backend logs.
pub const TRACE_HEADER: &str = "x-underpass-trace-id";

/// The edge's unique id of the request (also in its audit record as `request_id`).
pub const REQUEST_ID_HEADER: &str = "x-underpass-request-id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_header_is_reserved() {
        for h in [ASSERTION_HEADER, TRACE_HEADER, REQUEST_ID_HEADER] {
            assert!(h.starts_with(RESERVED_PREFIX), "{h}");
            assert_eq!(
                h,
                h.to_ascii_lowercase(),
                "header names are lowercase on the wire"
            );
        }
    }
}
