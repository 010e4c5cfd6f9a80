//! The JSON-RPC message model: a body parsed strictly into its messages ([`parse`]), each
//! classified (request, notification, response) with the primitive it acts on ([`Target`]).

use serde_json::{Map, Value};

use crate::error::{McpError, MAX_BATCH};
use crate::json::parse_json_strict;

/// The `_meta` key carrying a modern request's protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

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

    /// `params._meta.traceparent`: the W3C trace context a 2026-07-28 message carries in its
    /// body (a string; whether it is well-formed is the caller's to check).
    pub fn meta_traceparent(&self) -> Option<&str> {
        self.params()?.get("_meta")?.get("traceparent")?.as_str()
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

/// Parses and validates a JSON-RPC body: one message, or a batch (a JSON array, 2025-03-26
/// only — the caller decides whether batches are acceptable in its era) of 1 to
/// [`MAX_BATCH`] messages.
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
            if items.len() > MAX_BATCH {
                return Err(McpError::BatchTooLarge(items.len()));
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

#[cfg(test)]
mod tests;
