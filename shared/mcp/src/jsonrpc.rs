//! The JSON-RPC error codes Underpass emits, in one table, and the one builder of JSON-RPC
//! error objects.
//!
//! MCP (2026-07-28, `basic/index.mdx`, "Error Codes") keeps `-32020..-32099` for codes the
//! specification defines and asks implementations not to use `-32000..-32019`; codes for other
//! purposes belong outside the JSON-RPC reserved range `-32768..-32000`. The gateway's own
//! codes are therefore `-31000 - <HTTP status>` (`-31403` goes with 403, and so on), so a
//! client can read the class of failure from either number. README lists each of them.

use serde_json::{json, Map, Value};

/// Every JSON-RPC error code Underpass puts on the wire.
pub mod code {
    /// JSON-RPC: invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON-RPC: not a valid request object (also: a refused HTTP request shape).
    pub const INVALID_REQUEST: i64 = -32600;
    /// JSON-RPC: unknown method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// JSON-RPC: invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// JSON-RPC: internal error.
    pub const INTERNAL_ERROR: i64 = -32603;

    /// MCP: HTTP headers do not match the body, or required headers are missing/malformed.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP: the request needs a client capability the client did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// MCP: the requested protocol version is not served.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

    /// Gateway (HTTP 401): no valid credentials, or a revoked client certificate.
    pub const UNAUTHENTICATED: i64 = -31401;
    /// Gateway (HTTP 403): the gateway's policy refuses the request.
    pub const POLICY_DENIED: i64 = -31403;
    /// Gateway (HTTP 404): no such service, endpoint or session.
    pub const NOT_FOUND: i64 = -31404;
    /// Gateway (HTTP 429): over a rate limit or a per-caller cap.
    pub const RATE_LIMITED: i64 = -31429;
    /// Gateway (HTTP 502): the tunnel or the backend failed; details are in the edge's log
    /// under the correlation id the message names.
    pub const UPSTREAM_FAILED: i64 = -31502;
    /// Gateway (HTTP 503): no connector serving the service is online, or the gateway is
    /// over a capacity limit; retry later.
    pub const UNAVAILABLE: i64 = -31503;
}

/// A JSON-RPC error response object (`id: null` when the request id is unknown).
pub fn error(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".to_owned(), Value::from(code));
    error.insert("message".to_owned(), Value::from(message));
    if let Some(d) = data {
        error.insert("data".to_owned(), d);
    }
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": Value::Object(error),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::code::*;
    use super::error as jsonrpc_error;

    #[test]
    fn jsonrpc_error_shape() {
        assert_eq!(
            jsonrpc_error(Some(&json!(1)), -32020, "m", None),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"m"}})
        );
        assert_eq!(
            jsonrpc_error(None, -32700, "p", Some(json!({"a":1}))),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"p","data":{"a":1}}})
        );
    }

    #[test]
    fn gateway_codes_stay_outside_the_reserved_range() {
        for c in [
            UNAUTHENTICATED,
            POLICY_DENIED,
            NOT_FOUND,
            RATE_LIMITED,
            UPSTREAM_FAILED,
            UNAVAILABLE,
        ] {
            assert!(!(-32768..=-32000).contains(&c), "{c}");
        }
    }
}
