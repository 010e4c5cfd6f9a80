//! JSON-RPC / MCP message inspection for the edge, the workspace's one table of JSON-RPC
//! error codes ([`jsonrpc`]), and a server-sent events parser and writer ([`sse`]).
//!
//! Everything here is a pure function of its input: no I/O, no clocks, and no panics on
//! any input bytes. The edge uses it to:
//!
//! * parse a request body strictly ([`parse`]): duplicate object keys are rejected at any
//!   depth and nesting is capped, so the policy check and the backend can never read
//!   different values out of the same bytes;
//! * check that the 2026-07-28 request metadata headers agree with the body
//!   ([`validate_modern_headers`], [`validate_param_headers`]) and that the requested
//!   protocol version is served ([`check_protocol_version`]);
//! * drop entries the caller may not see from list results ([`filter_list_result`]);
//! * walk `text/event-stream` responses event by event ([`SseParser`]) and forward
//!   untouched events byte for byte.
//!
//! # What the specification says (and where)
//!
//! * `docs/specification/2026-07-28/basic/transports/streamable-http.mdx`, "Request
//!   Metadata": every POST carries `MCP-Protocol-Version`, which **MUST** equal
//!   `params._meta["io.modelcontextprotocol/protocolVersion"]` (else `400` + `-32020`
//!   HeaderMismatch). `Mcp-Method` mirrors `method` and is required on all requests;
//!   `Mcp-Name` mirrors `params.name` (`tools/call`, `prompts/get`) or `params.uri`
//!   (`resources/read`) and is required for those three. `Mcp-Name` and `Mcp-Param-*` may
//!   carry `=?base64?…?=` values that a server **MUST** decode before comparing. Header
//!   names are case-insensitive, values case-sensitive; optional whitespace around a value
//!   is not part of it (RFC 9110 §5.5). An absent header is a mismatch, as is a value with
//!   invalid characters. An unsupported version is `400` + `-32022` with
//!   `error.data = {"supported": [...], "requested": "..."}`
//!   (`basic/versioning.mdx`). A server that still serves pre-2025-06-18 clients **MAY**
//!   treat an absent header as `2025-03-26`.
//! * `docs/specification/2025-11-25/basic/transports.mdx`, "Protocol Version Header": an
//!   absent header **SHOULD** be taken as `2025-03-26`; an invalid or unsupported one is
//!   `400 Bad Request`.
//! * `docs/specification/2026-07-28/basic/index.mdx`: request ids are strings or integers,
//!   never `null`; `-32020..-32099` are reserved for the codes the specification defines
//!   (`-32020` HeaderMismatch, `-32021` MissingRequiredClientCapability, `-32022`
//!   UnsupportedProtocolVersion).

#![forbid(unsafe_code)]

mod error;
pub mod federation;
pub mod headers;
pub mod json;
pub mod jsonrpc;
pub mod list_filter;
pub mod message;
pub mod param_headers;
pub mod sse;
pub mod version;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

// The inspection API, flat: what the edge imports (`underpass_mcp::parse`, ...).
pub use error::{HeaderError, McpError, VersionError, MAX_BATCH, MAX_DEPTH};
pub use headers::{
    check_meta_version, header_value, validate_modern_headers, HEADER_METHOD, HEADER_NAME,
    HEADER_PARAM_PREFIX, HEADER_PROTOCOL_VERSION,
};
pub use json::parse_json_strict;
pub use jsonrpc::code::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};
pub use jsonrpc::error as jsonrpc_error;
pub use list_filter::{
    filter_list_result, filter_notification, names_primitives, NotificationVerdict,
};
pub use message::{
    message_from_value, parse, Inspected, Kind, Message, Target, META_PROTOCOL_VERSION,
};
pub use param_headers::{
    tool_param_headers, validate_param_headers, ParamHeader, ParamType, ToolSchemaError,
};
pub use sse::{SseError, SseEvent, SseParser, DEFAULT_MAX_EVENT_SIZE};
pub use version::{
    check_protocol_version, Era, LEGACY_DEFAULT_VERSION, MODERN_VERSION, SUPPORTED_VERSIONS,
};
