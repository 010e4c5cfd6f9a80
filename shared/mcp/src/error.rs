//! The refusals of the inspection (a body that is not JSON-RPC, a metadata header that
//! disagrees with the body, a protocol version that is not served), each with its JSON-RPC
//! code and error response, and the bounds their messages name.

use serde_json::{json, Value};

use crate::jsonrpc::code::{
    HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};
use crate::jsonrpc::error as jsonrpc_error;

/// Deepest nesting of arrays and objects [`crate::parse`] accepts (and of a tool's
/// `inputSchema` that [`crate::tool_param_headers`] walks).
pub const MAX_DEPTH: usize = 100;

/// Most messages in one batch [`crate::parse`] accepts. Every message of a batch is judged,
/// audited (a line each) and checked against the others' ids, so an unbounded batch turns one
/// 4 MiB body into ~90,000 audit lines and a quadratic id check; clients batch a handful.
pub const MAX_BATCH: usize = 100;

/// Longest header or body value quoted back in an error message.
const QUOTE_LIMIT: usize = 128;

/// `s`, cut to [`QUOTE_LIMIT`] characters (and an ellipsis) for an error message.
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_LIMIT {
        s.to_owned()
    } else {
        let mut q: String = s.chars().take(QUOTE_LIMIT).collect();
        q.push('…');
        q
    }
}

/// Why a body is not an acceptable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// Not JSON at all (syntax error, invalid UTF-8, trailing bytes, …).
    #[error("parse error: {0}")]
    Json(String),
    /// An object repeats a key (after unescaping).
    #[error("parse error: duplicate object key {0:?}")]
    DuplicateKey(String),
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    #[error("parse error: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A batch (JSON array) without any message.
    #[error("invalid request: empty batch")]
    EmptyBatch,
    /// A batch of more than [`MAX_BATCH`] messages.
    #[error("invalid request: a batch of {0} messages; at most {MAX_BATCH} are accepted")]
    BatchTooLarge(usize),
    /// Valid JSON, but not a JSON-RPC 2.0 message.
    #[error("invalid request: {message}")]
    InvalidMessage {
        /// The message's id, when one could be read.
        id: Option<Value>,
        /// What is wrong.
        message: String,
    },
    /// A well-formed request whose parameters lack what the edge must inspect.
    #[error("invalid params: {message}")]
    InvalidParams {
        /// The request id.
        id: Option<Value>,
        /// What is wrong.
        message: String,
    },
}

impl McpError {
    /// The JSON-RPC error code to answer with.
    pub fn code(&self) -> i64 {
        match self {
            McpError::Json(_) | McpError::DuplicateKey(_) | McpError::TooDeep => PARSE_ERROR,
            McpError::EmptyBatch | McpError::BatchTooLarge(_) | McpError::InvalidMessage { .. } => {
                INVALID_REQUEST
            }
            McpError::InvalidParams { .. } => INVALID_PARAMS,
        }
    }

    /// The id of the offending message, when it could be read.
    pub fn id(&self) -> Option<&Value> {
        match self {
            McpError::InvalidMessage { id, .. } | McpError::InvalidParams { id, .. } => id.as_ref(),
            _ => None,
        }
    }

    /// A JSON-RPC error response describing this error.
    pub fn to_jsonrpc(&self) -> Value {
        jsonrpc_error(self.id(), self.code(), &self.to_string(), None)
    }
}

/// A request metadata header disagrees with the body, is missing, or is malformed.
///
/// Always JSON-RPC code [`HEADER_MISMATCH`] (`-32020`) with HTTP `400 Bad Request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required header is absent.
    #[error("Header mismatch: missing required {header} header")]
    Missing {
        /// The header's name.
        header: String,
    },
    /// The header's value differs from the body's.
    #[error(
        "Header mismatch: {header} header value '{header_value}' does not match body value '{body_value}'"
    )]
    Mismatch {
        /// The header's name.
        header: String,
        /// The header's value (quoted, possibly shortened).
        header_value: String,
        /// The body's value (quoted, possibly shortened).
        body_value: String,
    },
    /// The header's value is malformed (bad characters, bad Base64, repeated, …).
    #[error("Header mismatch: {header} header {reason}")]
    Invalid {
        /// The header's name.
        header: String,
        /// What is wrong.
        reason: String,
    },
}

impl HeaderError {
    /// The JSON-RPC error code: always [`HEADER_MISMATCH`].
    pub fn code(&self) -> i64 {
        HEADER_MISMATCH
    }

    /// The HTTP status to answer with: always 400.
    pub fn http_status(&self) -> u16 {
        400
    }

    /// A JSON-RPC error response describing this error.
    pub fn to_jsonrpc(&self, id: Option<&Value>) -> Value {
        jsonrpc_error(id, self.code(), &self.to_string(), None)
    }

    pub(crate) fn missing(header: &str) -> Self {
        HeaderError::Missing {
            header: header.to_owned(),
        }
    }

    pub(crate) fn mismatch(header: &str, header_value: &str, body_value: &str) -> Self {
        HeaderError::Mismatch {
            header: header.to_owned(),
            header_value: quote(header_value),
            body_value: quote(body_value),
        }
    }

    pub(crate) fn invalid(header: &str, reason: impl Into<String>) -> Self {
        HeaderError::Invalid {
            header: header.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The requested protocol version cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// No `MCP-Protocol-Version` header, and `2025-03-26` (the default the specification
    /// allows for header-less clients) is not among the supported versions. Per the
    /// 2026-07-28 server validation rules this is a `-32020` HeaderMismatch.
    #[error("Header mismatch: missing required MCP-Protocol-Version header")]
    Missing,
    /// The version is unknown or not served: `-32022` UnsupportedProtocolVersion.
    #[error("Unsupported protocol version")]
    Unsupported {
        /// The version the client asked for.
        requested: String,
        /// The versions served.
        supported: Vec<String>,
    },
}

impl VersionError {
    /// The JSON-RPC error code (`-32020` or `-32022`).
    pub fn code(&self) -> i64 {
        match self {
            VersionError::Missing => HEADER_MISMATCH,
            VersionError::Unsupported { .. } => UNSUPPORTED_PROTOCOL_VERSION,
        }
    }

    /// The HTTP status to answer with: always 400.
    pub fn http_status(&self) -> u16 {
        400
    }

    /// The `error.data` member: `{"supported": [...], "requested": "..."}` for an
    /// unsupported version, as `UnsupportedProtocolVersionError` requires.
    pub fn data(&self) -> Option<Value> {
        match self {
            VersionError::Missing => None,
            VersionError::Unsupported {
                requested,
                supported,
            } => Some(json!({ "supported": supported, "requested": requested })),
        }
    }

    /// A JSON-RPC error response describing this error.
    pub fn to_jsonrpc(&self, id: Option<&Value>) -> Value {
        jsonrpc_error(id, self.code(), &self.to_string(), self.data())
    }
}
