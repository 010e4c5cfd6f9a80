//! What a backend answers to one exchange, whatever its kind, and the one shape of a JSON-RPC
//! error answer the connector gives itself (refusals, unreachable backends, bridge errors).

use std::io;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::json;

/// The answer to one exchange: status and headers at once, the body as it is produced.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: BoxStream<'static, Result<Bytes, io::Error>>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// `status` with no headers and no body (202 for notifications, 200 for DELETE).
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: stream::empty().boxed(),
        }
    }

    /// A JSON-RPC error answer (see [`error_parts`]).
    pub fn error(status: u16, code: i64, message: &str, retry_after: Option<u64>) -> Answer {
        let (headers, body) = error_parts(code, message, retry_after);
        Answer {
            status,
            headers,
            body: stream::once(async move { Ok(body) }).boxed(),
        }
    }
}

/// Headers and body of a JSON-RPC error answer (`id: null`). A capacity refusal carries
/// `Retry-After`, and the same figure as `error.data.retryAfterSeconds` for clients that read
/// only the body.
pub fn error_parts(
    code: i64,
    message: &str,
    retry_after: Option<u64>,
) -> (Vec<(String, Vec<u8>)>, Bytes) {
    let data = retry_after.map(|secs| json!({ "retryAfterSeconds": secs }));
    let body = Bytes::from(underpass_mcp::jsonrpc::error(None, code, message, data).to_string());
    let mut headers = vec![("content-type".into(), b"application/json".to_vec())];
    if let Some(secs) = retry_after {
        headers.push(("retry-after".into(), secs.to_string().into_bytes()));
    }
    (headers, body)
}
