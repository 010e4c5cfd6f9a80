//! JSON-RPC / MCP message inspection for the edge.
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

pub mod jsonrpc;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};

/// Protocol versions the edge understands, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// The first protocol version of the modern (stateless, per-request metadata) era.
pub const MODERN_VERSION: &str = "2026-07-28";

/// The version a server may assume when a request carries no `MCP-Protocol-Version`.
pub const LEGACY_DEFAULT_VERSION: &str = "2025-03-26";

/// The `_meta` key carrying a modern request's protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The protocol version header.
pub const HEADER_PROTOCOL_VERSION: &str = "MCP-Protocol-Version";
/// The header mirroring the JSON-RPC `method`.
pub const HEADER_METHOD: &str = "Mcp-Method";
/// The header mirroring `params.name` / `params.uri`.
pub const HEADER_NAME: &str = "Mcp-Name";
/// The prefix of the headers mirroring `x-mcp-header` tool parameters.
pub const HEADER_PARAM_PREFIX: &str = "Mcp-Param-";

/// Deepest nesting of arrays and objects [`parse`] accepts.
pub const MAX_DEPTH: usize = 100;

pub use crate::jsonrpc::code::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};
pub use crate::jsonrpc::error as jsonrpc_error;

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";
/// Longest header or body value quoted back in an error message.
const QUOTE_LIMIT: usize = 128;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

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
            McpError::EmptyBatch | McpError::InvalidMessage { .. } => INVALID_REQUEST,
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

    fn missing(header: &str) -> Self {
        HeaderError::Missing {
            header: header.to_owned(),
        }
    }

    fn mismatch(header: &str, header_value: &str, body_value: &str) -> Self {
        HeaderError::Mismatch {
            header: header.to_owned(),
            header_value: quote(header_value),
            body_value: quote(body_value),
        }
    }

    fn invalid(header: &str, reason: impl Into<String>) -> Self {
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

/// A tool definition whose `x-mcp-header` annotations break the 2026-07-28 constraints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSchemaError {
    /// The tool has no object `inputSchema`.
    #[error("tool has no inputSchema object")]
    NoInputSchema,
    /// An annotation is not a non-empty HTTP token.
    #[error("x-mcp-header value {0:?} is not a non-empty HTTP field-name token")]
    InvalidName(String),
    /// Two annotations are equal ignoring ASCII case.
    #[error("x-mcp-header value {0:?} is not unique (case-insensitively)")]
    Duplicate(String),
    /// An annotation on a parameter whose type is not string, integer or boolean.
    #[error("x-mcp-header {0:?} is on a parameter that is not string, integer or boolean")]
    NotPrimitive(String),
    /// An annotation not reachable from the root through `properties` alone.
    #[error("x-mcp-header is on a schema not statically reachable through `properties`")]
    Unreachable,
    /// The schema nests deeper than [`MAX_DEPTH`].
    #[error("inputSchema nests deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Why an SSE stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) exceeds the parser's size limit.
    #[error("server-sent event larger than {max} bytes")]
    EventTooLarge {
        /// The limit.
        max: usize,
    },
}

// ---------------------------------------------------------------------------------------
// Strict JSON
// ---------------------------------------------------------------------------------------

enum StrictFail {
    Duplicate(String),
    TooDeep,
}

/// Builds the [`Value`] in one pass, refusing a repeated key (caught when inserting it into
/// its object) and nesting deeper than [`MAX_DEPTH`].
struct Strict<'a> {
    depth: usize,
    fail: &'a RefCell<Option<StrictFail>>,
}

impl<'a> Strict<'a> {
    fn child(&self) -> Strict<'a> {
        Strict {
            depth: self.depth + 1,
            fail: self.fail,
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth >= MAX_DEPTH {
            *self.fail.borrow_mut() = Some(StrictFail::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Keys are compared unescaped: `"a"` and `"\u0061"` are the same key.
            match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self.child())?);
                }
                serde_json::map::Entry::Occupied(taken) => {
                    *self.fail.borrow_mut() = Some(StrictFail::Duplicate(quote(taken.key())));
                    return Err(de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON strictly: one value (surrounding whitespace allowed), valid UTF-8, no
/// repeated object key at any depth (compared after unescaping, so `"a"` and `"\u0061"`
/// collide), nesting at most [`MAX_DEPTH`].
pub fn parse_json_strict(body: &[u8]) -> Result<Value, McpError> {
    let fail = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict {
        depth: 0,
        fail: &fail,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| match fail.into_inner() {
        Some(StrictFail::Duplicate(k)) => McpError::DuplicateKey(k),
        Some(StrictFail::TooDeep) => McpError::TooDeep,
        None => McpError::Json(e.to_string()),
    })
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// The three JSON-RPC message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and a non-null `id`.
    Request,
    /// Has `method` and no `id`.
    Notification,
    /// Has `result` or `error`, and no `method`.
    Response,
}

/// The server primitive a request acts on: what access policy is written against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A tool, by name.
    Tool(String),
    /// A resource, by URI (or, from `resources/templates/list` and `completion/complete`,
    /// by URI template).
    Resource(String),
    /// A prompt, by name.
    Prompt(String),
}

/// One inspected JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Request, notification or response.
    pub kind: Kind,
    /// The id: a string or integer for requests and result responses; `None` for
    /// notifications and for error responses whose id is absent or `null`.
    pub id: Option<Value>,
    /// The method of a request or notification.
    pub method: Option<String>,
    /// The primitive a request or notification acts on: `tools/call` → `params.name`;
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe` → `params.uri`;
    /// `prompts/get` → `params.name`; `completion/complete` → `params.ref` (a prompt name
    /// or a resource URI template). A notification with one of these methods (a request
    /// sent without an id) names its target just the same. `None` for everything else, and
    /// when the name is absent (a name of the wrong type is refused by [`parse`]).
    pub target: Option<Target>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` when it is a string
    /// (modern requests carry it; legacy ones do not).
    pub protocol_version_meta: Option<String>,
    /// The whole message.
    pub value: Value,
}

/// The messages of a request or response body.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    /// The messages, in order (exactly one unless `batch`).
    pub messages: Vec<Message>,
    /// The body was a JSON array (a 2025-03-26 batch; later revisions have no batches).
    pub batch: bool,
}

impl Inspected {
    /// The message of a non-batch body.
    pub fn single(&self) -> Option<&Message> {
        match (self.batch, self.messages.as_slice()) {
            (false, [m]) => Some(m),
            _ => None,
        }
    }

    /// The first request id used by more than one request of the body. Answers to such a
    /// batch cannot be told apart (which `tools/list` did this answer?), so a gateway
    /// refuses it rather than guess.
    pub fn repeated_request_id(&self) -> Option<&Value> {
        let mut seen: Vec<&Value> = Vec::new();
        for id in self
            .messages
            .iter()
            .filter(|m| m.kind == Kind::Request)
            .filter_map(|m| m.id.as_ref())
        {
            if seen.contains(&id) {
                return Some(id);
            }
            seen.push(id);
        }
        None
    }
}

impl Message {
    /// `params`, when it is an object.
    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.value.get("params")?.as_object()
    }

    /// `params.arguments` of a `tools/call` request.
    pub fn tool_arguments(&self) -> Option<&Value> {
        if self.kind != Kind::Request || self.method.as_deref() != Some("tools/call") {
            return None;
        }
        self.params()?.get("arguments")
    }

    /// The URIs a `subscriptions/listen` request subscribes to
    /// (`params.notifications.resourceSubscriptions`, which replaced
    /// `resources/subscribe` in 2026-07-28).
    pub fn resource_subscriptions(&self) -> Vec<&str> {
        if self.kind == Kind::Response || self.method.as_deref() != Some("subscriptions/listen") {
            return Vec::new();
        }
        self.params()
            .and_then(|p| p.get("notifications"))
            .and_then(|n| n.get("resourceSubscriptions"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// Every primitive this message acts on: [`Message::target`] plus the resources of a
    /// `subscriptions/listen` request.
    pub fn targets(&self) -> Vec<Target> {
        let mut out: Vec<Target> = self.target.iter().cloned().collect();
        out.extend(
            self.resource_subscriptions()
                .into_iter()
                .map(|u| Target::Resource(u.to_owned())),
        );
        out
    }

    /// The value of `result` of a result response.
    pub fn result(&self) -> Option<&Value> {
        if self.kind != Kind::Response {
            return None;
        }
        self.value.get("result")
    }
}

/// Parses and validates a JSON-RPC body: one message, or a non-empty batch (a JSON array,
/// 2025-03-26 only — the caller decides whether batches are acceptable in its era).
///
/// JSON is parsed with [`parse_json_strict`]. Each message must be an object with
/// `"jsonrpc": "2.0"`, and be exactly one of: a request (`method` string, `id` string or
/// integer, no `result`/`error`), a notification (`method`, no `id`), or a response (no
/// `method`, exactly one of `result`/`error`; `id` string or integer, or absent/`null` on
/// an error response; `error` has an integer `code` and a string `message`). `params`, if
/// present, must be an object. Requests on a primitive must name it (see
/// [`Message::target`]): a `tools/call` without a string `params.name` is rejected here
/// rather than letting policy see no target.
pub fn parse(body: &[u8]) -> Result<Inspected, McpError> {
    match parse_json_strict(body)? {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(McpError::EmptyBatch);
            }
            let messages = items
                .into_iter()
                .map(message_from_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Inspected {
                messages,
                batch: true,
            })
        }
        other => Ok(Inspected {
            messages: vec![message_from_value(other)?],
            batch: false,
        }),
    }
}

fn is_valid_id(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Validates one JSON-RPC message already parsed into a [`Value`].
pub fn message_from_value(value: Value) -> Result<Message, McpError> {
    let Some(obj) = value.as_object() else {
        return Err(invalid(None, "message is not a JSON object"));
    };
    let raw_id = obj.get("id");
    let readable_id = raw_id.filter(|v| is_valid_id(v)).cloned();
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(readable_id, "\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(p) = obj.get("params") {
        if !p.is_object() {
            return Err(invalid(readable_id, "\"params\" must be an object"));
        }
    }
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");

    if let Some(method) = obj.get("method") {
        let Some(method) = method.as_str() else {
            return Err(invalid(readable_id, "\"method\" must be a string"));
        };
        if has_result || has_error {
            return Err(invalid(
                readable_id,
                "a request or notification cannot carry \"result\" or \"error\"",
            ));
        }
        let kind = match raw_id {
            None => Kind::Notification,
            Some(id) if is_valid_id(id) => Kind::Request,
            Some(_) => {
                return Err(invalid(
                    None,
                    "request \"id\" must be a string or an integer",
                ));
            }
        };
        // A notification shaped like a request (`tools/call` without an id) names its target
        // too: a backend may act on it all the same, so policy must see what it names.
        let target = extract_target(method, obj.get("params"), &readable_id)?;
        if method == "subscriptions/listen" {
            check_subscriptions(obj.get("params"), &readable_id)?;
        }
        let protocol_version_meta = obj
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let method = method.to_owned();
        return Ok(Message {
            kind,
            id: readable_id,
            method: Some(method),
            target,
            protocol_version_meta,
            value,
        });
    }

    match (has_result, has_error) {
        (true, true) => Err(invalid(
            readable_id,
            "a response cannot carry both \"result\" and \"error\"",
        )),
        (false, false) => Err(invalid(
            readable_id,
            "message has neither \"method\" nor \"result\"/\"error\"",
        )),
        (true, false) => {
            if readable_id.is_none() {
                return Err(invalid(
                    None,
                    "result response \"id\" must be a string or an integer",
                ));
            }
            Ok(response(readable_id, value))
        }
        (false, true) => {
            match raw_id {
                None | Some(Value::Null) => {}
                Some(v) if is_valid_id(v) => {}
                Some(_) => {
                    return Err(invalid(
                        None,
                        "error response \"id\" must be a string, an integer or null",
                    ));
                }
            }
            let err = obj.get("error");
            let code_ok = err.and_then(|e| e.get("code")).is_some_and(|c| c.is_i64());
            let msg_ok = err
                .and_then(|e| e.get("message"))
                .is_some_and(Value::is_string);
            if !code_ok || !msg_ok {
                return Err(invalid(
                    readable_id,
                    "\"error\" must be an object with an integer \"code\" and a string \"message\"",
                ));
            }
            Ok(response(readable_id, value))
        }
    }
}

fn response(id: Option<Value>, value: Value) -> Message {
    Message {
        kind: Kind::Response,
        id,
        method: None,
        target: None,
        protocol_version_meta: None,
        value,
    }
}

fn invalid(id: Option<Value>, message: &str) -> McpError {
    McpError::InvalidMessage {
        id,
        message: message.to_owned(),
    }
}

fn invalid_params(id: &Option<Value>, message: String) -> McpError {
    McpError::InvalidParams {
        id: id.clone(),
        message,
    }
}

fn extract_target(
    method: &str,
    params: Option<&Value>,
    id: &Option<Value>,
) -> Result<Option<Target>, McpError> {
    // An absent target is the backend's to answer (the method may not even exist there); a
    // present one of the wrong type is refused here, so no backend can read it differently.
    let get = |key: &str| -> Result<Option<String>, McpError> {
        match params.and_then(|p| p.get(key)) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid_params(
                id,
                format!("{method}: params.{key} must be a string"),
            )),
        }
    };
    Ok(match method {
        "tools/call" => get("name")?.map(Target::Tool),
        "prompts/get" => get("name")?.map(Target::Prompt),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            get("uri")?.map(Target::Resource)
        }
        "completion/complete" => {
            let Some(r) = params.and_then(|p| p.get("ref")) else {
                return Ok(None);
            };
            let ty = r.get("type").and_then(Value::as_str);
            let field = |k: &str| r.get(k).and_then(Value::as_str);
            match (ty, field("name"), field("uri")) {
                (Some("ref/prompt"), Some(name), _) => Some(Target::Prompt(name.to_owned())),
                (Some("ref/resource"), _, Some(uri)) => Some(Target::Resource(uri.to_owned())),
                _ => {
                    return Err(invalid_params(
                        id,
                        "completion/complete requires params.ref to be a ref/prompt with a \
                         string name or a ref/resource with a string uri"
                            .to_owned(),
                    ));
                }
            }
        }
        _ => None,
    })
}

fn check_subscriptions(params: Option<&Value>, id: &Option<Value>) -> Result<(), McpError> {
    let subs = params
        .and_then(|p| p.get("notifications"))
        .and_then(|n| n.get("resourceSubscriptions"));
    match subs {
        None => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(invalid_params(
            id,
            "params.notifications.resourceSubscriptions must be an array of strings".to_owned(),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Protocol versions
// ---------------------------------------------------------------------------------------

/// The two eras of MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28 and later: stateless, per-request `_meta`, metadata headers.
    Modern,
    /// 2025-11-25 and earlier: `initialize` handshake, sessions.
    Legacy,
}

impl Era {
    /// The era of a `YYYY-MM-DD` protocol version (anything else is taken as legacy).
    pub fn of(version: &str) -> Era {
        let b = version.as_bytes();
        let is_date = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if is_date && version >= MODERN_VERSION {
            Era::Modern
        } else {
            Era::Legacy
        }
    }
}

/// Decides the era of a request from its `MCP-Protocol-Version` header value.
///
/// * Absent: legacy, as `2025-03-26` (2025-11-25 transports: **SHOULD** assume it;
///   2026-07-28: **MAY**) — provided `supported` contains `2025-03-26`; otherwise
///   [`VersionError::Missing`] (`-32020`).
/// * Present (optional whitespace trimmed) and in `supported`: its era.
/// * Otherwise [`VersionError::Unsupported`] (`-32022`, `400`, with
///   `data.supported` = `supported` and `data.requested` echoing the value).
///
/// A request whose `_meta` names a version must also match this header: see
/// [`check_meta_version`] (run as part of [`validate_modern_headers`]).
pub fn check_protocol_version(
    header: Option<&str>,
    supported: &[&str],
) -> Result<Era, VersionError> {
    let Some(raw) = header else {
        return if supported.contains(&LEGACY_DEFAULT_VERSION) {
            Ok(Era::Legacy)
        } else {
            Err(VersionError::Missing)
        };
    };
    let version = trim_ows(raw);
    if supported.contains(&version) {
        Ok(Era::of(version))
    } else {
        Err(VersionError::Unsupported {
            requested: version.to_owned(),
            supported: supported.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

/// Checks `MCP-Protocol-Version` against `params._meta["io.modelcontextprotocol/protocolVersion"]`.
///
/// When the body names a version (any value, not only a string), the header must be
/// present and equal to it; otherwise `-32020`. A body without the key passes (a legacy
/// request, or a modern one the backend rejects with `-32602` for missing `_meta`).
pub fn check_meta_version(header: Option<&str>, msg: &Message) -> Result<(), HeaderError> {
    let Some(meta) = msg
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
    else {
        return Ok(());
    };
    let Some(header) = header else {
        return Err(HeaderError::missing(HEADER_PROTOCOL_VERSION));
    };
    let header = trim_ows(header);
    match meta.as_str() {
        Some(v) if v == header => Ok(()),
        Some(v) => Err(HeaderError::mismatch(HEADER_PROTOCOL_VERSION, header, v)),
        None => Err(HeaderError::mismatch(
            HEADER_PROTOCOL_VERSION,
            header,
            &meta.to_string(),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Header validation (2026-07-28)
// ---------------------------------------------------------------------------------------

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_LIMIT {
        s.to_owned()
    } else {
        let mut q: String = s.chars().take(QUOTE_LIMIT).collect();
        q.push('…');
        q
    }
}

/// The single value of a header (names compared case-insensitively, optional whitespace
/// trimmed). Repeated headers are accepted only when all their values are equal.
pub fn header_value<'a>(
    headers: &[(&str, &'a str)],
    name: &str,
) -> Result<Option<&'a str>, HeaderError> {
    let mut found: Option<&'a str> = None;
    for (n, v) in headers {
        if !n.eq_ignore_ascii_case(name) {
            continue;
        }
        let v = trim_ows(v);
        match found {
            None => found = Some(v),
            Some(prev) if prev == v => {}
            Some(_) => {
                return Err(HeaderError::invalid(
                    name,
                    "is repeated with different values",
                ));
            }
        }
    }
    Ok(found)
}

/// Rejects values that are not visible ASCII, space or tab (RFC 9110 field values as the
/// 2026-07-28 "Value Encoding" rules restrict them).
fn check_chars(name: &str, value: &str) -> Result<(), HeaderError> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        Ok(())
    } else {
        Err(HeaderError::invalid(name, "contains invalid characters"))
    }
}

/// Decodes a `Mcp-Name` / `Mcp-Param-*` value: `=?base64?…?=` is strict standard Base64
/// of UTF-8 (padding required); anything else is literal.
fn decode_header_value<'a>(name: &str, value: &'a str) -> Result<Cow<'a, str>, HeaderError> {
    check_chars(name, value)?;
    if value.len() >= BASE64_PREFIX.len() + BASE64_SUFFIX.len() {
        if let Some(inner) = value
            .strip_prefix(BASE64_PREFIX)
            .and_then(|v| v.strip_suffix(BASE64_SUFFIX))
        {
            let bytes = base64_decode(inner.as_bytes())
                .ok_or_else(|| HeaderError::invalid(name, "has an invalid Base64 value"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| HeaderError::invalid(name, "has a Base64 value that is not UTF-8"))?;
            return Ok(Cow::Owned(text));
        }
    }
    Ok(Cow::Borrowed(value))
}

fn base64_digit(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Strict RFC 4648 §4 Base64: length a multiple of 4, `=` only as final padding, unused
/// bits zero.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (qi, quad) in input.chunks_exact(4).enumerate() {
        let last = qi + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc: u32 = 0;
        for &c in &quad[..4 - pad] {
            acc = (acc << 6) | base64_digit(c)?;
        }
        match pad {
            0 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            1 => {
                // 18 bits: 16 data bits, 2 that must be zero.
                if acc & 0x3 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            }
            _ => {
                // 12 bits: 8 data bits, 4 that must be zero.
                if acc & 0xf != 0 {
                    return None;
                }
                out.push((acc >> 4) as u8);
            }
        }
    }
    Some(out)
}

/// Checks the 2026-07-28 standard request headers against the body.
///
/// * `MCP-Protocol-Version`: required; equal to `_meta`'s protocol version when the body
///   carries one ([`check_meta_version`]). Whether the version is *served* is
///   [`check_protocol_version`]'s job; run it first so `header = body = v999` yields
///   `-32022`, and header ≠ body yields `-32020`.
/// * `Mcp-Method`: required on requests, equal to `method` (case-sensitive). On
///   notifications (for which 2026-07-28 defines no header rules) it is optional but must
///   match when present; a response has no method, so any `Mcp-Method` is a mismatch.
/// * `Mcp-Name`: required on `tools/call` / `prompts/get` (`params.name`) and
///   `resources/read` (`params.uri`), Base64 sentinel decoded before comparing. On
///   `tasks/get`, `tasks/update`, `tasks/cancel` (tasks extension) it is optional and must
///   equal `params.taskId` when present. Elsewhere it is not interpreted.
///
/// Header names are case-insensitive; optional whitespace around values is ignored;
/// values with characters outside visible ASCII/space/tab are rejected. Every failure is
/// `-32020` with HTTP 400. `Mcp-Param-*` headers need the tool's schema: see
/// [`validate_param_headers`].
pub fn validate_modern_headers(headers: &[(&str, &str)], msg: &Message) -> Result<(), HeaderError> {
    // MCP-Protocol-Version
    let version = header_value(headers, HEADER_PROTOCOL_VERSION)?;
    let Some(version) = version else {
        return Err(HeaderError::missing(HEADER_PROTOCOL_VERSION));
    };
    check_chars(HEADER_PROTOCOL_VERSION, version)?;
    check_meta_version(Some(version), msg)?;

    // Mcp-Method
    let method_header = header_value(headers, HEADER_METHOD)?;
    if let Some(h) = method_header {
        check_chars(HEADER_METHOD, h)?;
    }
    match (msg.kind, method_header, msg.method.as_deref()) {
        (Kind::Request, None, _) => return Err(HeaderError::missing(HEADER_METHOD)),
        (_, Some(h), Some(m)) if h != m => {
            return Err(HeaderError::mismatch(HEADER_METHOD, h, m));
        }
        (_, Some(h), None) => return Err(HeaderError::mismatch(HEADER_METHOD, h, "")),
        _ => {}
    }

    // Mcp-Name
    if msg.kind != Kind::Request {
        return Ok(());
    }
    let method = msg.method.as_deref().unwrap_or_default();
    let (source, required) = match method {
        "tools/call" | "prompts/get" => ("name", true),
        "resources/read" => ("uri", true),
        "tasks/get" | "tasks/update" | "tasks/cancel" => ("taskId", false),
        _ => return Ok(()),
    };
    let body = msg
        .params()
        .and_then(|p| p.get(source))
        .and_then(Value::as_str);
    match header_value(headers, HEADER_NAME)? {
        None if required => Err(HeaderError::missing(HEADER_NAME)),
        None => Ok(()),
        Some(raw) => {
            let decoded = decode_header_value(HEADER_NAME, raw)?;
            match body {
                Some(b) if b == decoded => Ok(()),
                Some(b) => Err(HeaderError::mismatch(HEADER_NAME, &decoded, b)),
                None => Err(HeaderError::mismatch(HEADER_NAME, &decoded, "")),
            }
        }
    }
}

/// The JSON type of an `x-mcp-header` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `"type": "string"`
    String,
    /// `"type": "integer"`
    Integer,
    /// `"type": "boolean"`
    Boolean,
}

/// One `x-mcp-header` annotation of a tool's `inputSchema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The annotation's value: the header is `Mcp-Param-{name}`.
    pub name: String,
    /// The chain of `properties` keys from `arguments` to the value.
    pub path: Vec<String>,
    /// The declared type.
    pub ty: ParamType,
}

impl ParamHeader {
    /// `Mcp-Param-{name}`.
    pub fn header_name(&self) -> String {
        format!("{HEADER_PARAM_PREFIX}{}", self.name)
    }
}

const SUBSCHEMA_MAPS: &[&str] = &[
    "$defs",
    "definitions",
    "patternProperties",
    "dependentSchemas",
];
const SUBSCHEMA_ONE: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
];
const SUBSCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads the `x-mcp-header` annotations of a tool definition (an element of
/// `tools/list`'s `result.tools`), enforcing the 2026-07-28 constraints: each value a
/// non-empty token, unique ignoring case, only on `string` / `integer` / `boolean`
/// parameters, only on properties reachable from the root through `properties` alone.
/// A tool breaking them is invalid as a whole (clients must drop it from `tools/list`).
pub fn tool_param_headers(tool: &Value) -> Result<Vec<ParamHeader>, ToolSchemaError> {
    let schema = tool
        .get("inputSchema")
        .filter(|s| s.is_object())
        .ok_or(ToolSchemaError::NoInputSchema)?;
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk_schema(schema, Some(&mut path), 0, &mut out)?;
    let mut seen = HashSet::new();
    for p in &out {
        if !seen.insert(p.name.to_ascii_lowercase()) {
            return Err(ToolSchemaError::Duplicate(p.name.clone()));
        }
    }
    Ok(out)
}

/// `path` is `Some` while the schema is statically reachable from the root through
/// `properties` alone (empty at the root itself).
fn walk_schema(
    schema: &Value,
    path: Option<&mut Vec<String>>,
    depth: usize,
    out: &mut Vec<ParamHeader>,
) -> Result<(), ToolSchemaError> {
    if depth > MAX_DEPTH {
        return Err(ToolSchemaError::TooDeep);
    }
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    let mut path = path;
    if let Some(annotation) = obj.get("x-mcp-header") {
        let Some(p) = path.as_deref().filter(|p| !p.is_empty()) else {
            return Err(ToolSchemaError::Unreachable);
        };
        let name = annotation
            .as_str()
            .filter(|n| !n.is_empty() && n.bytes().all(is_tchar))
            .ok_or_else(|| ToolSchemaError::InvalidName(annotation.to_string()))?;
        let ty = match obj.get("type").and_then(Value::as_str) {
            Some("string") => ParamType::String,
            Some("integer") => ParamType::Integer,
            Some("boolean") => ParamType::Boolean,
            _ => return Err(ToolSchemaError::NotPrimitive(name.to_owned())),
        };
        out.push(ParamHeader {
            name: name.to_owned(),
            path: p.clone(),
            ty,
        });
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            match path.as_deref_mut() {
                Some(p) => {
                    p.push(key.clone());
                    let r = walk_schema(sub, Some(p), depth + 1, out);
                    p.pop();
                    r?;
                }
                None => walk_schema(sub, None, depth + 1, out)?,
            }
        }
    }
    for key in SUBSCHEMA_MAPS {
        if let Some(m) = obj.get(*key).and_then(Value::as_object) {
            for sub in m.values() {
                walk_schema(sub, None, depth + 1, out)?;
            }
        }
    }
    for key in SUBSCHEMA_ONE {
        if let Some(sub) = obj.get(*key).filter(|v| v.is_object()) {
            walk_schema(sub, None, depth + 1, out)?;
        }
    }
    for key in SUBSCHEMA_LISTS {
        if let Some(list) = obj.get(*key).and_then(Value::as_array) {
            for sub in list {
                walk_schema(sub, None, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

fn numbers_equal(header: &str, body: &serde_json::Number) -> bool {
    if let (Ok(h), Some(b)) = (header.parse::<i128>(), body.as_i128()) {
        return h == b;
    }
    match (header.parse::<f64>(), body.as_f64()) {
        (Ok(h), Some(b)) => h.is_finite() && h == b,
        _ => false,
    }
}

/// Checks the `Mcp-Param-*` headers of a `tools/call` against its `params.arguments`,
/// given the called tool's annotations (from [`tool_param_headers`]).
///
/// For each annotation: a non-null value in the body needs the header (missing →
/// `-32020`), and the decoded header must equal it — strings exactly, booleans as
/// `true`/`false`, integers numerically (`42.0` = `42`). A null or absent value needs no
/// header; a header sent anyway is a mismatch. Invalid characters or Base64 are
/// rejected. `Mcp-Param-*` headers with no annotation are ignored (intermediaries must
/// forward them). Messages other than `tools/call` requests pass.
pub fn validate_param_headers(
    headers: &[(&str, &str)],
    msg: &Message,
    params: &[ParamHeader],
) -> Result<(), HeaderError> {
    if msg.kind != Kind::Request || msg.method.as_deref() != Some("tools/call") {
        return Ok(());
    }
    let args = msg.tool_arguments();
    for p in params {
        let header = p.header_name();
        let mut value = args;
        for key in &p.path {
            value = value.and_then(|v| v.get(key));
        }
        let value = value.filter(|v| !v.is_null());
        let raw = header_value(headers, &header)?;
        let (raw, value) = match (raw, value) {
            (None, None) => continue,
            (None, Some(_)) => return Err(HeaderError::missing(&header)),
            (Some(raw), None) => {
                let decoded = decode_header_value(&header, raw)?;
                return Err(HeaderError::mismatch(&header, &decoded, ""));
            }
            (Some(raw), Some(value)) => (raw, value),
        };
        let decoded = decode_header_value(&header, raw)?;
        let equal = match value {
            Value::String(s) => *s == decoded,
            Value::Bool(b) => decoded == if *b { "true" } else { "false" },
            Value::Number(n) => numbers_equal(&decoded, n),
            _ => false,
        };
        if !equal {
            let body = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Err(HeaderError::mismatch(&header, &decoded, &body));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// List filtering
// ---------------------------------------------------------------------------------------

/// Removes from a list response the entries `keep` rejects, and returns how many were
/// removed.
///
/// `response` is a JSON-RPC response object; the list is `result.tools` (`tools/list`,
/// keyed by `name`), `result.resources` (`resources/list`, `uri`),
/// `result.resourceTemplates` (`resources/templates/list`, `uriTemplate`, offered as a
/// [`Target::Resource`]) or `result.prompts` (`prompts/list`, `name`). An entry whose key
/// is not a string cannot be judged and is removed. Everything else (other fields,
/// `nextCursor`, `_meta`, entry order) is untouched; other methods and error responses
/// are left alone (returns 0).
pub fn filter_list_result(
    method: &str,
    response: &mut Value,
    keep: impl Fn(&Target) -> bool,
) -> usize {
    let (list, key, make): (&str, &str, fn(String) -> Target) = match method {
        "tools/list" => ("tools", "name", Target::Tool),
        "resources/list" => ("resources", "uri", Target::Resource),
        "resources/templates/list" => ("resourceTemplates", "uriTemplate", Target::Resource),
        "prompts/list" => ("prompts", "name", Target::Prompt),
        _ => return 0,
    };
    let Some(entries) = response
        .get_mut("result")
        .and_then(|r| r.get_mut(list))
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    let before = entries.len();
    entries.retain(|entry| match entry.get(key).and_then(Value::as_str) {
        Some(k) => keep(&make(k.to_owned())),
        None => false,
    });
    before - entries.len()
}

/// What [`filter_notification`] decided about a server-to-client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationVerdict {
    /// Not about a primitive the caller may not see: forward it as it is.
    Unchanged,
    /// Entries about primitives the caller may not see were removed from it.
    Rewritten,
    /// It is about a primitive the caller may not see: do not forward it.
    Drop,
}

/// Judges a server-to-client notification that names primitives, with `keep` saying which
/// the caller may see:
///
/// * `notifications/resources/updated` (`params.uri`, 2025-11-25 and 2026-07-28): dropped
///   when the URI is not kept, or is not a string;
/// * `notifications/subscriptions/acknowledged` (2026-07-28, `params.notifications.
///   resourceSubscriptions`, the URIs a `subscriptions/listen` stream will report on): the
///   URIs not kept (and entries that are not strings) are removed.
///
/// Every other message (requests, responses, `list_changed`, progress, logging …) names
/// no primitive and is left alone.
pub fn filter_notification(msg: &mut Value, keep: impl Fn(&Target) -> bool) -> NotificationVerdict {
    let resource = |uri: &str| Target::Resource(uri.to_owned());
    if msg.get("id").is_some() {
        return NotificationVerdict::Unchanged;
    }
    match msg.get("method").and_then(Value::as_str) {
        Some("notifications/resources/updated") => {
            match msg.pointer("/params/uri").and_then(Value::as_str) {
                Some(uri) if keep(&resource(uri)) => NotificationVerdict::Unchanged,
                _ => NotificationVerdict::Drop,
            }
        }
        Some("notifications/subscriptions/acknowledged") => {
            let Some(list) = msg
                .pointer_mut("/params/notifications/resourceSubscriptions")
                .and_then(Value::as_array_mut)
            else {
                return NotificationVerdict::Unchanged;
            };
            let before = list.len();
            list.retain(|u| u.as_str().is_some_and(|u| keep(&resource(u))));
            if list.len() == before {
                NotificationVerdict::Unchanged
            } else {
                NotificationVerdict::Rewritten
            }
        }
        _ => NotificationVerdict::Unchanged,
    }
}

/// Whether a server-to-client message with this method may need [`filter_notification`].
pub fn names_primitives(method: &str) -> bool {
    matches!(
        method,
        "notifications/resources/updated" | "notifications/subscriptions/acknowledged"
    )
}

// ---------------------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------------------

/// The default limit of [`SseParser::new`]: 16 MiB per event.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// One unit of an SSE stream, as the parser delimits it.
///
/// Most are events: the lines of one block up to and including the blank line that ends
/// it. To forward keep-alives without delay, a comment line or a blank line arriving
/// outside any block is its own unit, as is the `\n` of a `\r\n` split across chunks
/// after its block was already emitted. Concatenating the [`SseEvent::to_bytes`] of the
/// unmodified units gives back the input exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    raw: Option<Vec<u8>>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
}

impl SseEvent {
    /// A new `message` event (no `event:` line) carrying `data`.
    pub fn new(data: &str) -> Self {
        SseEvent {
            data: Some(data.to_owned()),
            ..SseEvent::default()
        }
    }

    /// The `event:` type, if set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The data (data lines joined by `\n`), if the block had any `data` line. Only
    /// blocks with data are dispatched to an `EventSource`.
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The `id:` value, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The `retry:` value, if set (and a valid integer).
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The text of a stand-alone comment unit (without the `:`).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Whether an `EventSource` would dispatch this unit (it has data).
    pub fn is_dispatched(&self) -> bool {
        self.data.is_some()
    }

    /// The bytes as received, unless the unit was built or modified.
    pub fn raw(&self) -> Option<&[u8]> {
        self.raw.as_deref()
    }

    /// Replaces the data; the unit is then re-serialized by [`SseEvent::to_bytes`].
    pub fn set_data(&mut self, data: impl Into<String>) {
        self.data = Some(data.into());
        self.raw = None;
    }

    /// Sets the `event:` type; the unit is then re-serialized.
    pub fn set_event(&mut self, event: Option<String>) {
        self.event = event;
        self.raw = None;
    }

    /// Sets the `id:`; the unit is then re-serialized.
    pub fn set_id(&mut self, id: Option<String>) {
        self.id = id;
        self.raw = None;
    }

    /// The bytes to forward: the received bytes of an unmodified unit, otherwise a fresh
    /// serialization with `\n` line endings (CR, LF and NUL that cannot be represented in
    /// a field are dropped; data lines are split on any line ending).
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|c| *c != '\r' && *c != '\n' && *c != '\0')
                .collect()
        };
        let mut out = Vec::new();
        let fields = self.event.is_some()
            || self.id.is_some()
            || self.retry.is_some()
            || self.data.is_some();
        if let Some(c) = &self.comment {
            out.push(b':');
            out.extend_from_slice(clean(c).as_bytes());
            out.push(b'\n');
            if !fields {
                return out;
            }
        }
        if let Some(e) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(clean(e).as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(clean(id).as_bytes());
            out.push(b'\n');
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(format!("retry: {r}\n").as_bytes());
        }
        if let Some(d) = &self.data {
            let normalized = d.replace("\r\n", "\n").replace('\r', "\n");
            for line in normalized.split('\n') {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        out.push(b'\n');
        out
    }
}

/// An incremental `text/event-stream` parser (WHATWG HTML "Server-sent events"): lines
/// end in `\r\n`, `\n` or `\r`, also when split across chunks; a leading BOM is ignored;
/// `:` lines are comments; `data` lines accumulate, `event`, `id` (without NUL) and
/// `retry` (digits only) are recorded; unknown fields are ignored.
#[derive(Debug)]
pub struct SseParser {
    max_event_size: usize,
    /// The current line, without its terminator.
    line: Vec<u8>,
    /// The raw bytes of the block being built (complete lines with terminators).
    block_raw: Vec<u8>,
    block: SseEvent,
    /// The last byte seen was a `\r` ending a line: a leading `\n` belongs to it.
    after_cr: bool,
    first_line: bool,
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_SIZE)
    }
}

impl SseParser {
    /// A parser refusing any event (or stand-alone line) longer than `max_event_size`
    /// bytes.
    pub fn new(max_event_size: usize) -> Self {
        SseParser {
            max_event_size,
            line: Vec::new(),
            block_raw: Vec::new(),
            block: SseEvent::default(),
            after_cr: false,
            first_line: true,
            failed: false,
        }
    }

    /// Consumes the next chunk of the stream and returns the units it completes.
    ///
    /// After an error the parser stays failed: the stream must be abandoned.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(SseError::EventTooLarge {
                max: self.max_event_size,
            });
        }
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            if let Some((&first, tail)) = rest.split_first() {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                    if self.block_raw.is_empty() {
                        out.push(SseEvent {
                            raw: Some(b"\n".to_vec()),
                            ..SseEvent::default()
                        });
                    } else {
                        self.block_raw.push(b'\n');
                    }
                }
            }
        }
        while !rest.is_empty() {
            let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(rest);
                self.check_size(0)?;
                break;
            };
            self.line.extend_from_slice(&rest[..pos]);
            let term_len = if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.after_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            self.check_size(term_len)?;
            let term = &rest[pos..pos + term_len];
            self.end_line(term, &mut out);
            rest = &rest[pos + term_len..];
        }
        Ok(out)
    }

    /// Ends the stream: returns the bytes of an unfinished block (which an
    /// `EventSource` would discard) so they can be forwarded or dropped.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.block_raw);
        rest.append(&mut self.line);
        self.block = SseEvent::default();
        rest
    }

    fn check_size(&mut self, extra: usize) -> Result<(), SseError> {
        let size = self
            .block_raw
            .len()
            .saturating_add(self.line.len())
            .saturating_add(extra);
        if size > self.max_event_size {
            self.failed = true;
            self.line = Vec::new();
            self.block_raw = Vec::new();
            return Err(SseError::EventTooLarge {
                max: self.max_event_size,
            });
        }
        Ok(())
    }

    fn end_line(&mut self, term: &[u8], out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        let mut content: &[u8] = &line;
        if self.first_line {
            self.first_line = false;
            if let Some(rest) = content.strip_prefix(b"\xEF\xBB\xBF") {
                content = rest;
            }
        }
        let mut raw = line.clone();
        raw.extend_from_slice(term);

        if content.is_empty() {
            if self.block_raw.is_empty() {
                out.push(SseEvent {
                    raw: Some(raw),
                    ..SseEvent::default()
                });
            } else {
                self.block_raw.extend_from_slice(&raw);
                let mut event = std::mem::take(&mut self.block);
                event.raw = Some(std::mem::take(&mut self.block_raw));
                if let Some(d) = event.data.as_mut() {
                    // Data lines were each followed by '\n'; drop the last one.
                    d.pop();
                }
                out.push(event);
            }
        } else if let Some(text) = content.strip_prefix(b":") {
            if self.block_raw.is_empty() {
                out.push(SseEvent {
                    raw: Some(raw),
                    comment: Some(String::from_utf8_lossy(text).into_owned()),
                    ..SseEvent::default()
                });
            } else {
                self.block_raw.extend_from_slice(&raw);
            }
        } else {
            let (field, value) = match content.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &content[i + 1..];
                    (&content[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (content, &b""[..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"data" => {
                    let d = self.block.data.get_or_insert_with(String::new);
                    d.push_str(&value);
                    d.push('\n');
                }
                b"event" => self.block.event = Some(value.into_owned()),
                b"id" if !value.contains('\0') => {
                    self.block.id = Some(value.into_owned());
                }
                b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    if let Ok(r) = value.parse() {
                        self.block.retry = Some(r);
                    }
                }
                _ => {}
            }
            self.block_raw.extend_from_slice(&raw);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Inspected, McpError> {
        parse(s.as_bytes())
    }

    fn one(s: &str) -> Message {
        let i = p(s).expect("parses");
        assert!(!i.batch);
        i.single().expect("single").clone()
    }

    // ----- strict JSON -----

    #[test]
    fn duplicate_keys_rejected_everywhere() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1,"x":2}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"l":[{"k":1,"k":1}]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1,"\u0061":2}}"#,
            r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","method":"n","method":"m"}]"#,
        ] {
            let e = p(body).unwrap_err();
            assert!(matches!(e, McpError::DuplicateKey(_)), "{body}: {e:?}");
            assert_eq!(e.code(), PARSE_ERROR);
        }
        // Same key in sibling objects is fine.
        p(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":{"k":1},"b":{"k":1}}}"#).unwrap();
    }

    #[test]
    fn strict_parse_builds_what_serde_json_builds() {
        for doc in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":null}"#,
            r#"{"s":"\u00e9\n\"q\"","t":true,"f":false,"o":{},"l":[],"u":"\ud83d\ude00"}"#,
            r#" [ {"k" : {"deep": [[[{"x": "y"}]]]}} , 0.0 , "" ] "#,
            r#""just a string""#,
        ] {
            let expected: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(
                parse_json_strict(doc.as_bytes()).unwrap(),
                expected,
                "{doc}"
            );
        }
        for bad in ["", "{", r#"{"a":1}x"#, "[1,]", "\u{feff}{}"] {
            assert!(
                matches!(parse_json_strict(bad.as_bytes()), Err(McpError::Json(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn nesting_is_capped() {
        let nest = |n: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{}1{}}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        // Top-level object and params make two levels.
        p(&nest(MAX_DEPTH - 2)).unwrap();
        assert_eq!(p(&nest(MAX_DEPTH - 1)).unwrap_err(), McpError::TooDeep);
        assert_eq!(p(&nest(100_000)).unwrap_err(), McpError::TooDeep);
        let objs = format!("{}1{}", r#"{"a":"#.repeat(5000), "}".repeat(5000));
        assert_eq!(p(&objs).unwrap_err(), McpError::TooDeep);
    }

    #[test]
    fn bad_json_rejected() {
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"} x",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"m\xff\"}",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"\\ud800\"}",
            b"{\"jsonrpc\":\"2.0\",\"id\":1e400,\"method\":\"m\"}",
            b"\x00",
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.code(), PARSE_ERROR, "{body:?}");
        }
    }

    // ----- message shapes -----

    #[test]
    fn request_notification_response() {
        let m = one(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#);
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id, Some(json!("a")));
        assert_eq!(m.method.as_deref(), Some("tools/list"));
        assert_eq!(m.target, None);

        let m = one(r#"{"jsonrpc":"2.0","id":-7,"method":"ping","params":{}}"#);
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id, Some(json!(-7)));

        let m = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(m.kind, Kind::Notification);
        assert_eq!(m.id, None);

        let m = one(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#);
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.result(), Some(&json!({"tools":[]})));

        let m = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#);
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.id, None);
        let m = one(r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"x","data":[1]}}"#);
        assert_eq!(m.kind, Kind::Response);
    }

    #[test]
    fn invalid_shapes() {
        for body in [
            r#"1"#,
            r#""s""#,
            r#"null"#,
            r#"{"id":1,"method":"m"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
            r#"{"jsonrpc":2.0,"id":1,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
            r#"{"jsonrpc":"2.0","id":[1],"error":{"code":1,"message":"m"}}"#,
            r#"[1]"#,
            r#"[[{"jsonrpc":"2.0","method":"m"}]]"#,
        ] {
            let e = p(body).unwrap_err();
            assert_eq!(e.code(), INVALID_REQUEST, "{body}: {e:?}");
        }
        assert_eq!(p("[]").unwrap_err(), McpError::EmptyBatch);
        assert_eq!(p(" [ ] ").unwrap_err().code(), INVALID_REQUEST);
        // The id is recovered for the error answer when it is readable.
        let e = p(r#"{"jsonrpc":"2.0","id":9,"method":"m","params":1}"#).unwrap_err();
        assert_eq!(e.id(), Some(&json!(9)));
        assert_eq!(e.to_jsonrpc()["id"], json!(9));
    }

    #[test]
    fn batch() {
        let i = p(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}},
                     {"jsonrpc":"2.0","method":"notifications/x"},
                     {"jsonrpc":"2.0","id":2,"result":{}}]"#,
        )
        .unwrap();
        assert!(i.batch);
        assert!(i.single().is_none());
        let kinds: Vec<Kind> = i.messages.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [Kind::Request, Kind::Notification, Kind::Response]);
        assert_eq!(i.messages[0].target, Some(Target::Tool("t".into())));
        // One bad member fails the whole batch.
        assert!(p(r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0"}]"#).is_err());
    }

    #[test]
    fn targets() {
        let t = |s: &str| one(s).target;
        assert_eq!(
            t(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}"#
            ),
            Some(Target::Tool("echo".into()))
        );
        assert_eq!(
            t(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#),
            Some(Target::Prompt("p".into()))
        );
        for m in [
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"uri":"file:///a"}}}}"#
            );
            assert_eq!(t(&body), Some(Target::Resource("file:///a".into())));
        }
        assert_eq!(
            t(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":""}}}"#
            ),
            Some(Target::Prompt("p".into()))
        );
        assert_eq!(
            t(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///{x}"},"argument":{"name":"x","value":""}}}"#
            ),
            Some(Target::Resource("file:///{x}".into()))
        );
        // A request-shaped notification names its target like the request would; unknown
        // methods name none.
        assert_eq!(
            t(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#),
            Some(Target::Tool("x".into()))
        );
        assert_eq!(
            t(r#"{"jsonrpc":"2.0","method":"resources/subscribe","params":{"uri":"u"}}"#),
            Some(Target::Resource("u".into()))
        );
        assert_eq!(
            t(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"name":"x"}}"#
            ),
            None
        );
        assert_eq!(
            t(r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"name":"x"}}"#),
            None
        );

        // Without its name, a request names no target: the backend answers it as it would
        // directly (the method may not exist there at all).
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}"#,
        ] {
            assert_eq!(t(body), None, "{body}");
        }
        // A name of the wrong type is refused: no backend may read it differently.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":["a"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"x"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","uri":"x"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a",1]}}}"#,
        ] {
            let e = p(body).unwrap_err();
            assert_eq!(e.code(), INVALID_PARAMS, "{body}");
            assert_eq!(e.id(), Some(&json!(1)));
        }
    }

    #[test]
    fn subscriptions_and_arguments() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///a","file:///b"]}}}"#,
        );
        assert_eq!(m.resource_subscriptions(), ["file:///a", "file:///b"]);
        assert_eq!(
            m.targets(),
            [
                Target::Resource("file:///a".into()),
                Target::Resource("file:///b".into())
            ]
        );
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"q":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(m.tool_arguments(), Some(&json!({"q":"x"})));
        assert_eq!(m.protocol_version_meta.as_deref(), Some("2026-07-28"));
        assert_eq!(m.targets(), [Target::Tool("t".into())]);
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{}}}"#,
        );
        assert_eq!(m.tool_arguments(), None);
        assert_eq!(m.protocol_version_meta, None);
    }

    #[test]
    fn notifications_name_their_targets_like_requests() {
        let m = one(
            r#"{"jsonrpc":"2.0","method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["file:///a"]}}}"#,
        );
        assert_eq!(m.kind, Kind::Notification);
        assert_eq!(m.targets(), [Target::Resource("file:///a".into())]);
        let m = one(r#"{"jsonrpc":"2.0","method":"prompts/get","params":{"name":"p"}}"#);
        assert_eq!(m.targets(), [Target::Prompt("p".into())]);
        // A name of the wrong type is refused in a notification too.
        for body in [
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[1]}}}"#,
        ] {
            assert_eq!(p(body).unwrap_err().code(), INVALID_PARAMS, "{body}");
        }
    }

    #[test]
    fn repeated_request_ids() {
        let ids = |s: &str| p(s).unwrap().repeated_request_id().cloned();
        assert_eq!(
            ids(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]"#),
            None
        );
        assert_eq!(
            ids(
                r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":"1","method":"b"}]"#
            ),
            None
        );
        assert_eq!(
            ids(
                r#"[{"jsonrpc":"2.0","id":"x","method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"x","method":"b"}]"#
            ),
            Some(json!("x"))
        );
        // Responses the client sends back do not count (their ids are the server's).
        assert_eq!(
            ids(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"result":{}}]"#),
            None
        );
    }

    #[test]
    fn notifications_about_hidden_resources() {
        let keep = |t: &Target| matches!(t, Target::Resource(u) if u.starts_with("public:"));
        let mut m = json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"secret:x"}});
        assert_eq!(filter_notification(&mut m, keep), NotificationVerdict::Drop);
        let mut m = json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"public:a"}});
        assert_eq!(
            filter_notification(&mut m, keep),
            NotificationVerdict::Unchanged
        );
        let mut m =
            json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":7}});
        assert_eq!(filter_notification(&mut m, keep), NotificationVerdict::Drop);
        let mut m = json!({"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",
            "params":{"_meta":{"io.modelcontextprotocol/subscriptionId":1},
                      "notifications":{"toolsListChanged":true,"resourceSubscriptions":["public:a","secret:x",3]}}});
        assert_eq!(
            filter_notification(&mut m, keep),
            NotificationVerdict::Rewritten
        );
        assert_eq!(
            m["params"]["notifications"],
            json!({"toolsListChanged":true,"resourceSubscriptions":["public:a"]})
        );
        assert_eq!(
            filter_notification(&mut m, keep),
            NotificationVerdict::Unchanged
        );
        for mut other in [
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}),
            json!({"jsonrpc":"2.0","method":"notifications/resources/list_changed"}),
            json!({"jsonrpc":"2.0","id":1,"result":{"uri":"secret:x"}}),
            json!({"jsonrpc":"2.0","id":1,"method":"notifications/resources/updated","params":{"uri":"secret:x"}}),
        ] {
            assert_eq!(
                filter_notification(&mut other, keep),
                NotificationVerdict::Unchanged,
                "{other}"
            );
        }
        assert!(names_primitives("notifications/resources/updated"));
        assert!(!names_primitives("notifications/progress"));
    }

    // ----- versions -----

    #[test]
    fn protocol_versions() {
        assert_eq!(
            check_protocol_version(Some("2026-07-28"), SUPPORTED_VERSIONS),
            Ok(Era::Modern)
        );
        assert_eq!(
            check_protocol_version(Some(" 2025-11-25\t"), SUPPORTED_VERSIONS),
            Ok(Era::Legacy)
        );
        assert_eq!(
            check_protocol_version(Some("2024-11-05"), SUPPORTED_VERSIONS),
            Ok(Era::Legacy)
        );
        assert_eq!(
            check_protocol_version(None, SUPPORTED_VERSIONS),
            Ok(Era::Legacy)
        );
        assert_eq!(
            check_protocol_version(None, &["2026-07-28"]),
            Err(VersionError::Missing)
        );
        assert_eq!(VersionError::Missing.code(), HEADER_MISMATCH);

        let e = check_protocol_version(Some("v999.0.0"), SUPPORTED_VERSIONS).unwrap_err();
        assert_eq!(e.code(), UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.http_status(), 400);
        let body = e.to_jsonrpc(Some(&json!(301)));
        assert_eq!(body["id"], json!(301));
        assert_eq!(body["error"]["code"], json!(-32022));
        assert_eq!(
            body["error"]["message"],
            json!("Unsupported protocol version")
        );
        assert_eq!(body["error"]["data"]["requested"], json!("v999.0.0"));
        assert_eq!(
            body["error"]["data"]["supported"],
            json!(SUPPORTED_VERSIONS)
        );
        // Version matching is exact.
        assert!(check_protocol_version(Some("2026-07-28x"), SUPPORTED_VERSIONS).is_err());
        assert!(check_protocol_version(Some(""), SUPPORTED_VERSIONS).is_err());
        assert_eq!(Era::of("2027-01-01"), Era::Modern);
        assert_eq!(Era::of("v999"), Era::Legacy);
    }

    // ----- headers (cases from the conformance suite's http-header-validation) -----

    fn modern(method: &str, params: Value) -> Message {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let body = json!({"jsonrpc":"2.0","id":100,"method":method,"params":params});
        one(&body.to_string())
    }

    const V: (&str, &str) = ("MCP-Protocol-Version", "2026-07-28");

    #[test]
    fn standard_headers_accept() {
        let list = modern("tools/list", json!({}));
        validate_modern_headers(&[V, ("Mcp-Method", "tools/list")], &list).unwrap();
        validate_modern_headers(&[V, ("mcp-method", "tools/list")], &list).unwrap();
        validate_modern_headers(&[V, ("MCP-METHOD", "tools/list")], &list).unwrap();
        validate_modern_headers(
            &[
                ("mcp-protocol-version", " 2026-07-28 "),
                ("Mcp-Method", "\ttools/list "),
            ],
            &list,
        )
        .unwrap();
        // Mcp-Name is not interpreted on methods that define no source for it.
        validate_modern_headers(&[V, ("Mcp-Method", "tools/list"), ("Mcp-Name", "x")], &list)
            .unwrap();

        let call = modern("tools/call", json!({"name":"echo","arguments":{}}));
        validate_modern_headers(
            &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
            &call,
        )
        .unwrap();
        // ServerAcceptsWhitespaceHeaderValue
        validate_modern_headers(
            &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "  echo  ")],
            &call,
        )
        .unwrap();
        // Identical repeats are harmless.
        validate_modern_headers(
            &[
                V,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "echo"),
                ("mcp-name", "echo"),
            ],
            &call,
        )
        .unwrap();

        let read = modern("resources/read", json!({"uri":"file:///projects/a.json"}));
        validate_modern_headers(
            &[
                V,
                ("Mcp-Method", "resources/read"),
                ("Mcp-Name", "file:///projects/a.json"),
            ],
            &read,
        )
        .unwrap();

        // Base64 sentinel on Mcp-Name, e.g. a non-ASCII tool name.
        let call = modern("tools/call", json!({"name":"Hello, 世界"}));
        validate_modern_headers(
            &[
                V,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "=?base64?SGVsbG8sIOS4lueVjA==?="),
            ],
            &call,
        )
        .unwrap();

        // Tasks: Mcp-Name is optional, checked against taskId when present.
        let get = modern("tasks/get", json!({"taskId":"t-1"}));
        validate_modern_headers(&[V, ("Mcp-Method", "tasks/get")], &get).unwrap();
        validate_modern_headers(&[V, ("Mcp-Method", "tasks/get"), ("Mcp-Name", "t-1")], &get)
            .unwrap();
        assert!(validate_modern_headers(
            &[V, ("Mcp-Method", "tasks/get"), ("Mcp-Name", "t-2")],
            &get
        )
        .is_err());

        // Notifications: Mcp-Method optional, but must match when sent.
        let n = one(r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#);
        validate_modern_headers(&[V], &n).unwrap();
        validate_modern_headers(&[V, ("Mcp-Method", "notifications/cancelled")], &n).unwrap();
        assert!(validate_modern_headers(&[V, ("Mcp-Method", "tools/call")], &n).is_err());
    }

    #[test]
    fn standard_headers_reject() {
        let list = modern("tools/list", json!({}));
        let call = modern("tools/call", json!({"name":"echo","arguments":{}}));
        let cases: Vec<(&[(&str, &str)], &Message)> = vec![
            // ServerRejectsMismatchedMethodHeader
            (&[V, ("Mcp-Method", "prompts/list")], &list),
            // ServerRejectsMissingMethodHeader
            (&[V], &list),
            // ServerRejectsCaseMismatchValue
            (&[V, ("Mcp-Method", "TOOLS/LIST")], &list),
            // ServerRejectsMismatchedNameHeader
            (
                &[
                    V,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "wrong_tool_name"),
                ],
                &call,
            ),
            // ServerRejectsMissingNameHeader
            (&[V, ("Mcp-Method", "tools/call")], &call),
            // Missing protocol version header.
            (&[("Mcp-Method", "tools/list")], &list),
            // Header ≠ _meta version (HttpServerHeaderMismatch400).
            (
                &[
                    ("MCP-Protocol-Version", "2025-11-25"),
                    ("Mcp-Method", "tools/list"),
                ],
                &list,
            ),
            // Conflicting repeats.
            (
                &[
                    V,
                    ("Mcp-Method", "tools/list"),
                    ("mcp-method", "tools/call"),
                ],
                &list,
            ),
            // Invalid characters.
            (&[V, ("Mcp-Method", "tools/list\u{0}")], &list),
            (
                &[V, ("Mcp-Method", "tools/call"), ("Mcp-Name", "échō")],
                &call,
            ),
            // Bad Base64 in Mcp-Name.
            (
                &[
                    V,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "=?base64?ZWNobw?="),
                ],
                &call,
            ),
            // Base64 of a different name.
            (
                &[
                    V,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "=?base64?ZWNoMg==?="),
                ],
                &call,
            ),
        ];
        for (headers, msg) in cases {
            let e = validate_modern_headers(headers, msg).unwrap_err();
            assert_eq!(e.code(), -32020, "{headers:?}");
            assert_eq!(e.http_status(), 400);
            let body = e.to_jsonrpc(msg.id.as_ref());
            assert_eq!(body["error"]["code"], json!(-32020));
            assert_eq!(body["id"], json!(100));
        }
        // A response never has a method to mirror.
        let r = one(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        assert!(validate_modern_headers(&[V, ("Mcp-Method", "x")], &r).is_err());
        validate_modern_headers(&[V], &r).unwrap();
    }

    #[test]
    fn meta_version() {
        let m = modern("tools/list", json!({}));
        check_meta_version(Some("2026-07-28"), &m).unwrap();
        assert!(matches!(
            check_meta_version(None, &m),
            Err(HeaderError::Missing { .. })
        ));
        assert!(matches!(
            check_meta_version(Some("v999.0.0"), &m),
            Err(HeaderError::Mismatch { .. })
        ));
        let odd = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}"#,
        );
        assert!(check_meta_version(Some("20260728"), &odd).is_err());
        let legacy = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        check_meta_version(Some("2025-11-25"), &legacy).unwrap();
        check_meta_version(None, &legacy).unwrap();
    }

    // ----- Mcp-Param-* (cases from http-custom-header-server-validation) -----

    fn tool() -> Value {
        json!({
            "name": "test_custom_headers",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"},
                    "priority": {"type": "integer", "x-mcp-header": "Priority"},
                    "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
                    "nested": {"type": "object", "properties": {
                        "zone": {"type": "string", "x-mcp-header": "Zone"}
                    }},
                    "query": {"type": "string"}
                },
                "required": ["region", "priority", "query"]
            }
        })
    }

    fn call(args: Value) -> Message {
        modern(
            "tools/call",
            json!({"name":"test_custom_headers","arguments":args}),
        )
    }

    #[test]
    fn param_annotations() {
        let mut ph = tool_param_headers(&tool()).unwrap();
        ph.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<_> = ph
            .iter()
            .map(|p| (p.name.as_str(), p.path.join("."), p.ty))
            .collect();
        assert_eq!(
            names,
            [
                ("Priority", "priority".to_owned(), ParamType::Integer),
                ("Region", "region".to_owned(), ParamType::String),
                ("Verbose", "verbose".to_owned(), ParamType::Boolean),
                ("Zone", "nested.zone".to_owned(), ParamType::String),
            ]
        );
        assert_eq!(ph[1].header_name(), "Mcp-Param-Region");

        let bad = |prop: Value| {
            tool_param_headers(
                &json!({"name":"t","inputSchema":{"type":"object","properties":prop}}),
            )
        };
        assert!(bad(json!({"v":{"type":"string","x-mcp-header":""}})).is_err());
        assert!(bad(json!({"v":{"type":"object","x-mcp-header":"Data"}})).is_err());
        assert!(bad(json!({"v":{"type":"array","x-mcp-header":"Items"}})).is_err());
        assert!(bad(json!({"v":{"type":"null","x-mcp-header":"Nil"}})).is_err());
        assert!(bad(json!({"v":{"type":"number","x-mcp-header":"Score"}})).is_err());
        assert!(bad(json!({"a":{"type":"string","x-mcp-header":"Region"},"b":{"type":"string","x-mcp-header":"Region"}})).is_err());
        assert!(bad(json!({"a":{"type":"string","x-mcp-header":"MyField"},"b":{"type":"string","x-mcp-header":"myfield"}})).is_err());
        assert!(bad(json!({"v":{"type":"string","x-mcp-header":"My Region"}})).is_err());
        assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Region:Primary"}})).is_err());
        assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Région"}})).is_err());
        assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Region\t1"}})).is_err());
        assert!(
            bad(json!({"v":{"type":"array","items":{"type":"string","x-mcp-header":"I"}}}))
                .is_err()
        );
        assert!(bad(json!({"v":{"oneOf":[{"type":"string","x-mcp-header":"O"}]}})).is_err());
        assert_eq!(
            tool_param_headers(
                &json!({"name":"t","inputSchema":{"$defs":{"d":{"type":"string","x-mcp-header":"D"}}}})
            ),
            Err(ToolSchemaError::Unreachable)
        );
        // A parameter literally named "x-mcp-header" is not an annotation.
        assert_eq!(bad(json!({"x-mcp-header":{"type":"object"}})), Ok(vec![]));
        assert_eq!(
            tool_param_headers(&json!({"name":"t"})),
            Err(ToolSchemaError::NoInputSchema)
        );
    }

    #[test]
    fn param_headers() {
        let ph = tool_param_headers(&tool()).unwrap();
        let base = [
            V,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "test_custom_headers"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            base.iter().chain(extra).copied().collect()
        };
        let ok = |args: Value, extra: &[(&'static str, &'static str)]| {
            let m = call(args);
            validate_modern_headers(&with(extra), &m).unwrap();
            validate_param_headers(&with(extra), &m, &ph)
        };
        let args = |region: &str| json!({"region": region, "priority": 0, "query": "q"});
        let prio = ("Mcp-Param-Priority", "0");

        // ServerAcceptsValidBase64
        ok(
            args("Hello"),
            &[("Mcp-Param-Region", "=?base64?SGVsbG8=?="), prio],
        )
        .unwrap();
        // ServerRejectsInvalidBase64Padding / ServerRejectsInvalidBase64Chars
        for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?="] {
            let v: &'static str = Box::leak(bad.to_owned().into_boxed_str());
            let e = ok(args("Hello"), &[("Mcp-Param-Region", v), prio]).unwrap_err();
            assert_eq!(e.code(), -32020);
        }
        // ServerLiteralMissingBase64Prefix / Suffix
        ok(args("SGVsbG8="), &[("Mcp-Param-Region", "SGVsbG8="), prio]).unwrap();
        ok(
            args("=?base64?SGVsbG8="),
            &[("Mcp-Param-Region", "=?base64?SGVsbG8="), prio],
        )
        .unwrap();
        // ServerRejectsMissingCustomHeader
        assert!(matches!(
            ok(args("test-value"), &[prio]),
            Err(HeaderError::Missing { .. })
        ));
        // Mismatch, case-insensitive names, whitespace.
        assert!(ok(args("us-west1"), &[("Mcp-Param-Region", "us-east1"), prio]).is_err());
        ok(
            args("us-west1"),
            &[
                ("mcp-param-region", " us-west1 "),
                ("MCP-PARAM-PRIORITY", "0"),
            ],
        )
        .unwrap();
        // Integers compare numerically; booleans as true/false.
        let m = json!({"region":"r","priority":42,"verbose":true,"query":"q"});
        ok(
            m.clone(),
            &[
                ("Mcp-Param-Region", "r"),
                ("Mcp-Param-Priority", "42.0"),
                ("Mcp-Param-Verbose", "true"),
            ],
        )
        .unwrap();
        assert!(ok(
            m.clone(),
            &[
                ("Mcp-Param-Region", "r"),
                ("Mcp-Param-Priority", "43"),
                ("Mcp-Param-Verbose", "true")
            ]
        )
        .is_err());
        assert!(ok(
            m.clone(),
            &[
                ("Mcp-Param-Region", "r"),
                ("Mcp-Param-Priority", "42"),
                ("Mcp-Param-Verbose", "True")
            ]
        )
        .is_err());
        assert!(ok(
            m,
            &[("Mcp-Param-Region", "r"), ("Mcp-Param-Priority", "42")]
        )
        .is_err());
        // Null or absent: no header expected; one sent anyway is a mismatch.
        let m = json!({"region":"r","priority":1,"verbose":null,"query":"q"});
        ok(
            m.clone(),
            &[("Mcp-Param-Region", "r"), ("Mcp-Param-Priority", "1")],
        )
        .unwrap();
        assert!(ok(
            m,
            &[
                ("Mcp-Param-Region", "r"),
                ("Mcp-Param-Priority", "1"),
                ("Mcp-Param-Verbose", "false")
            ]
        )
        .is_err());
        // Nested path.
        let m = json!({"region":"r","priority":1,"nested":{"zone":"z 1"},"query":"q"});
        ok(
            m,
            &[
                ("Mcp-Param-Region", "r"),
                ("Mcp-Param-Priority", "1"),
                ("Mcp-Param-Zone", "z 1"),
            ],
        )
        .unwrap();
        // Unknown Mcp-Param-* headers are ignored; unannotated parameters are not checked.
        ok(
            args("r"),
            &[("Mcp-Param-Region", "r"), prio, ("Mcp-Param-Query", "zzz")],
        )
        .unwrap();
        // Non-ASCII body values must be Base64 in the header.
        ok(
            args("Hello, 世界"),
            &[
                ("Mcp-Param-Region", "=?base64?SGVsbG8sIOS4lueVjA==?="),
                prio,
            ],
        )
        .unwrap();
        assert!(ok(
            args("Hello, 世界"),
            &[("Mcp-Param-Region", "Hello, 世界"), prio]
        )
        .is_err());
        ok(
            args(" padded "),
            &[("Mcp-Param-Region", "=?base64?IHBhZGRlZCA=?="), prio],
        )
        .unwrap();
    }

    #[test]
    fn base64_strict() {
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert_eq!(base64_decode(b"SGVsbG8=").unwrap(), b"Hello");
        assert_eq!(base64_decode(b"SGVsbA==").unwrap(), b"Hell");
        assert_eq!(base64_decode(b"SGVs").unwrap(), b"Hel");
        assert_eq!(base64_decode(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        for bad in [
            &b"SGVsbG8"[..],
            b"SGVsbG9=",
            b"SGVsbA=a",
            b"S===",
            b"====",
            b"SG=s",
            b"SGVs\n",
            b"SGV-",
        ] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }

    // ----- list filtering -----

    #[test]
    fn list_filtering() {
        let mut tools = json!({"jsonrpc":"2.0","id":1,"result":{
            "tools":[{"name":"a","x":1},{"name":"b"},{"name":7},{"title":"no name"},{"name":"c","inputSchema":{}}],
            "nextCursor":"cur","resultType":"complete","ttlMs":0,"_meta":{"k":"v"}}});
        let n = filter_list_result("tools/list", &mut tools, |t| *t != Target::Tool("b".into()));
        assert_eq!(n, 3);
        assert_eq!(
            tools,
            json!({"jsonrpc":"2.0","id":1,"result":{
                "tools":[{"name":"a","x":1},{"name":"c","inputSchema":{}}],
                "nextCursor":"cur","resultType":"complete","ttlMs":0,"_meta":{"k":"v"}}})
        );

        let mut res = json!({"jsonrpc":"2.0","id":2,"result":{"resources":[
            {"uri":"file:///a","name":"a"},{"uri":"file:///secret","name":"s"}],"extra":true}});
        let n = filter_list_result("resources/list", &mut res, |t| match t {
            Target::Resource(u) => !u.contains("secret"),
            _ => false,
        });
        assert_eq!(n, 1);
        assert_eq!(
            res["result"]["resources"],
            json!([{"uri":"file:///a","name":"a"}])
        );
        assert_eq!(res["result"]["extra"], json!(true));

        let mut tpl = json!({"jsonrpc":"2.0","id":3,"result":{"resourceTemplates":[
            {"uriTemplate":"file:///{path}","name":"f"},{"uriTemplate":"db://{t}","name":"d"}],"nextCursor":"n"}});
        let n = filter_list_result("resources/templates/list", &mut tpl, |t| {
            *t == Target::Resource("db://{t}".into())
        });
        assert_eq!(n, 1);
        assert_eq!(
            tpl["result"]["resourceTemplates"],
            json!([{"uriTemplate":"db://{t}","name":"d"}])
        );
        assert_eq!(tpl["result"]["nextCursor"], json!("n"));

        let mut prompts =
            json!({"jsonrpc":"2.0","id":4,"result":{"prompts":[{"name":"p1"},{"name":"p2"}]}});
        assert_eq!(
            filter_list_result("prompts/list", &mut prompts, |_| true),
            0
        );
        assert_eq!(
            filter_list_result(
                "prompts/list",
                &mut prompts,
                |t| matches!(t, Target::Prompt(p) if p == "p2")
            ),
            1
        );
        assert_eq!(prompts["result"]["prompts"], json!([{"name":"p2"}]));

        // Other methods, errors and odd shapes are untouched.
        let mut err = json!({"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"m"}});
        let before = err.clone();
        assert_eq!(filter_list_result("tools/list", &mut err, |_| false), 0);
        assert_eq!(err, before);
        let mut other = json!({"jsonrpc":"2.0","id":6,"result":{"tools":[{"name":"a"}]}});
        assert_eq!(filter_list_result("tools/call", &mut other, |_| false), 0);
        let mut odd = json!({"result":{"tools":{"name":"a"}}});
        assert_eq!(filter_list_result("tools/list", &mut odd, |_| false), 0);
        let mut odd = json!([1]);
        assert_eq!(filter_list_result("tools/list", &mut odd, |_| false), 0);
    }

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

    // ----- SSE -----

    fn feed_all(parser: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(parser.feed(c).unwrap());
        }
        out
    }

    fn dispatched(events: &[SseEvent]) -> Vec<(Option<String>, String, Option<String>)> {
        events
            .iter()
            .filter(|e| e.is_dispatched())
            .map(|e| {
                (
                    e.event().map(str::to_owned),
                    e.data().unwrap().to_owned(),
                    e.id().map(str::to_owned),
                )
            })
            .collect()
    }

    const STREAM: &[u8] =
        b"\xEF\xBB\xBF: hello\r\n\r\nevent: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n\
data: line1\ndata:line2\ndata:  spaced\n: inner comment\nretry: 3000\n\n\
id\rdata\r\r:keepalive\r\n\r\ndata: {\"jsonrpc\":\"2.0\"}\n\nunknown: x\nid: a\0b\ndata: z\n\n";

    #[test]
    fn sse_whole_stream() {
        let mut p = SseParser::default();
        let events = p.feed(STREAM).unwrap();
        assert!(p.finish().is_empty());
        let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
        assert_eq!(joined, STREAM);
        assert_eq!(
            dispatched(&events),
            [
                (Some("message".into()), "{\"a\":1}".into(), Some("1".into())),
                (None, "line1\nline2\n spaced".into(), None),
                (None, "".into(), Some("".into())),
                (None, "{\"jsonrpc\":\"2.0\"}".into(), None),
                (None, "z".into(), None),
            ]
        );
        let retry: Vec<_> = events.iter().filter_map(SseEvent::retry).collect();
        assert_eq!(retry, [3000]);
        let comments: Vec<_> = events.iter().filter_map(SseEvent::comment).collect();
        assert_eq!(comments, [" hello", "keepalive"]);
    }

    #[test]
    fn sse_every_split_point() {
        let mut whole = SseParser::default();
        let expected = dispatched(&whole.feed(STREAM).unwrap());
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let mut p = SseParser::default();
                let events = feed_all(&mut p, &[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]);
                assert_eq!(dispatched(&events), expected, "split at {i},{j}");
                let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
                assert_eq!(joined, STREAM, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let mut p = SseParser::default();
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        let events = feed_all(&mut p, &chunks);
        assert_eq!(dispatched(&events), expected);
        let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
        assert_eq!(joined, STREAM);
    }

    #[test]
    fn sse_keepalive_is_immediate() {
        let mut p = SseParser::default();
        let e = p.feed(b":\r\n").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].comment(), Some(""));
        assert_eq!(e[0].to_bytes(), b":\r\n");
        assert!(!e[0].is_dispatched());
        // An event is held until its blank line.
        assert!(p.feed(b"data: x\n").unwrap().is_empty());
        let e = p.feed(b"\n").unwrap();
        assert_eq!(e[0].data(), Some("x"));
    }

    #[test]
    fn sse_rewrite() {
        let mut p = SseParser::default();
        let mut events = p
            .feed(b"event: message\r\nid: 7\r\ndata: {\"old\":1}\r\n\r\n")
            .unwrap();
        assert_eq!(events.len(), 1);
        events[0].set_data("{\"new\":2}\nsecond");
        assert_eq!(
            events[0].to_bytes(),
            b"event: message\nid: 7\ndata: {\"new\":2}\ndata: second\n\n"
        );
        // The rewrite parses back to the same event.
        let mut q = SseParser::default();
        let back = q.feed(&events[0].to_bytes()).unwrap();
        assert_eq!(back[0].data(), Some("{\"new\":2}\nsecond"));
        assert_eq!(back[0].id(), Some("7"));
        assert_eq!(back[0].event(), Some("message"));
        // Fresh events; field values cannot inject lines.
        assert_eq!(SseEvent::new("x").to_bytes(), b"data: x\n\n");
        let mut e = SseEvent::new(" lead");
        e.set_event(Some("a\r\nevil: 1".into()));
        e.set_id(Some("i\n".into()));
        assert_eq!(e.to_bytes(), b"event: aevil: 1\nid: i\ndata:  lead\n\n");
        let mut q = SseParser::default();
        assert_eq!(q.feed(&e.to_bytes()).unwrap()[0].data(), Some(" lead"));
    }

    #[test]
    fn sse_oversize() {
        let mut p = SseParser::new(32);
        assert!(p.feed(b"data: 0123456789\n").unwrap().is_empty());
        let err = p.feed(b"data: 0123456789abcdef\n").unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { max: 32 });
        assert!(p.feed(b"\n").is_err());
        // A single endless line hits the limit too, whatever the chunking.
        let mut p = SseParser::new(1024);
        let mut failed = false;
        for _ in 0..100 {
            if p.feed(&[b'a'; 100]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        // Exactly at the limit is fine.
        let mut p = SseParser::new(11);
        assert_eq!(p.feed(b"data: abc\n\n").unwrap().len(), 1);
        let mut p = SseParser::new(10);
        assert!(p.feed(b"data: abc\n\n").is_err());
    }

    #[test]
    fn sse_unfinished_tail() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: a\ndata: b").unwrap().is_empty());
        assert_eq!(p.finish(), b"data: a\ndata: b");
        assert!(p.finish().is_empty());
    }

    #[test]
    fn never_panics_on_garbage() {
        // A small deterministic fuzz pass over mutated inputs.
        let seeds: [&[u8]; 4] = [
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,2,{"y":null}]}}}"#,
            br#"[{"jsonrpc":"2.0","id":"q","result":{"tools":[]}}]"#,
            STREAM,
            b"=?base64?SGVsbG8=?=",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in seeds {
            for _ in 0..2000 {
                let mut b = seed.to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                if let Ok(ins) = parse(&b) {
                    for m in &ins.messages {
                        let s = String::from_utf8_lossy(&b).into_owned();
                        let _ = validate_modern_headers(&[("Mcp-Name", &s), V], m);
                        let _ = m.targets();
                    }
                }
                let mut v = serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null);
                let _ = filter_list_result("tools/list", &mut v, |_| false);
                let _ = tool_param_headers(&v);
                let mut sse = SseParser::new(64);
                let _ = sse.feed(&b);
                let _ = base64_decode(&b);
            }
        }
    }
}
