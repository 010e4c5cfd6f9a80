//! What the federated endpoint, as a 2026-07-28 server itself, refuses before serving a
//! request (SEP-2575): a protocol version it does not speak (400, -32022, with the versions
//! it does), a method the stateless era removed or one it does not serve (404, -32601), and a
//! request whose `_meta` lacks the protocol version or the client's capabilities (400, -32602),
//! and a method of the tasks extension from a client that did not declare it (400, -32021).
//! Pure: `endpoint` turns a refusal into the answer.

use serde_json::{json, Value};
use underpass_mcp::federation::tasks;
use underpass_mcp::jsonrpc::code;
use underpass_mcp::{self as mcp, Era, Kind};

/// Methods a 2026-07-28 client may call on the federated endpoint.
const SERVED: [&str; 13] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
];

/// A refusal: the HTTP status and the JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

/// Checks one message against the stateless era's rules; `version` is the request's
/// `MCP-Protocol-Version` (absent: a legacy request), `served` the versions the endpoint
/// offers (listed in the refusal of any other).
pub fn check(
    version: Option<&str>,
    message: &mcp::Message,
    served: &[&str],
) -> Result<(), Refused> {
    let Some(version) = version.map(str::trim) else {
        return Ok(());
    };
    if !mcp::SUPPORTED_VERSIONS.contains(&version) {
        return Err(Refused {
            status: 400,
            code: code::UNSUPPORTED_PROTOCOL_VERSION,
            message: format!("unsupported protocol version {version:?}: use one of those listed"),
            data: Some(json!({"supported": served, "requested": version})),
        });
    }
    if Era::of(version) != Era::Modern || message.kind != Kind::Request {
        return Ok(());
    }
    let method = message.method.as_deref().unwrap_or("");
    if !SERVED.contains(&method) {
        return Err(Refused {
            status: 404,
            code: code::METHOD_NOT_FOUND,
            message: format!("method {method:?} does not exist in {version}"),
            data: None,
        });
    }
    let meta = message.value.pointer("/params/_meta");
    for (key, what) in [
        (
            "io.modelcontextprotocol/protocolVersion",
            "the protocol version",
        ),
        (
            "io.modelcontextprotocol/clientCapabilities",
            "the client's capabilities",
        ),
    ] {
        if meta.and_then(|m| m.get(key)).is_none_or(Value::is_null) {
            return Err(Refused {
                status: 400,
                code: code::INVALID_PARAMS,
                message: format!("params._meta must carry {key:?} ({what}) in {version}"),
                data: None,
            });
        }
    }
    if tasks::METHODS.contains(&method) && !tasks::declared(message.value.get("params")) {
        return Err(Refused {
            status: 400,
            code: code::MISSING_REQUIRED_CLIENT_CAPABILITY,
            message: format!(
                "{method} needs the {} extension: declare it in params._meta's client capabilities",
                tasks::EXTENSION
            ),
            data: Some(json!({"requiredCapabilities": {"extensions": {tasks::EXTENSION: {}}}})),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
