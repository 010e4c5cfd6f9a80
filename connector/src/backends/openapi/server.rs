//! The MCP server an OpenAPI service is, over one exchange: `initialize` (2025-11-25 and
//! older, no session: the server is stateless), `server/discover` (2026-07-28), `ping`,
//! `tools/list`, `tools/call`; notifications and responses 202; anything else "method not
//! found". Pure: a call is handed back as [`Step::Call`] for the shell to make.

use serde_json::{json, Value};
use underpass_mcp::jsonrpc::{self, code};
use underpass_mcp::version::{Era, SUPPORTED_VERSIONS};

use super::spec::Catalog;
use super::tools::tool;

/// The legacy version offered when a client asks for one this server does not know.
const LEGACY_LATEST: &str = "2025-11-25";

/// How long a 2026-07-28 client may keep the tool list and discover answer: the document is
/// read once, so the list changes only when the connector restarts.
const LIST_TTL_MS: u64 = 60_000;

/// What to do with one exchange.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Answer at once: HTTP status and JSON body.
    Reply(u16, Value),
    /// A notification or a response: 202, no body.
    Accepted,
    /// Make the call of tool `name`, then answer with [`call_answer`].
    Call {
        id: Value,
        name: String,
        arguments: Option<Value>,
        modern: bool,
    },
}

/// The step for one HTTP exchange (`method`, `version`: its `MCP-Protocol-Version` header).
pub fn step(
    catalog: &Catalog,
    service: &str,
    method: &str,
    version: Option<&str>,
    body: &[u8],
) -> Step {
    if method != "POST" {
        // No event stream and no session to end: Streamable HTTP's answer is 405.
        return Step::Reply(
            405,
            jsonrpc::error(None, code::INVALID_REQUEST, "only POST is served", None),
        );
    }
    let modern = version.is_some_and(|v| Era::of(v.trim()) == Era::Modern);
    let message: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("parse error: {e}");
            return Step::Reply(400, jsonrpc::error(None, code::PARSE_ERROR, &msg, None));
        }
    };
    let Some(object) = message.as_object() else {
        let msg = "a JSON-RPC message must be an object (batches are not served)";
        return Step::Reply(400, jsonrpc::error(None, code::INVALID_REQUEST, msg, None));
    };
    let id = object.get("id").cloned();
    let Some(rpc_method) = object.get("method").and_then(Value::as_str) else {
        // A response (to nothing this server asked) or garbage without a method.
        return if id.is_some() && (object.contains_key("result") || object.contains_key("error")) {
            Step::Accepted
        } else {
            let msg = "no method";
            Step::Reply(
                400,
                jsonrpc::error(id.as_ref(), code::INVALID_REQUEST, msg, None),
            )
        };
    };
    let Some(id) = id else {
        return Step::Accepted;
    };
    let params = object.get("params");
    let complete = |mut result: Value| {
        if modern {
            result["resultType"] = Value::from("complete");
        }
        Step::Reply(200, json!({"jsonrpc": "2.0", "id": id, "result": result}))
    };
    let info = json!({
        "name": service,
        "title": catalog.title,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let capabilities = json!({ "tools": { "listChanged": false } });
    match rpc_method {
        "initialize" => {
            let asked = params
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str);
            let version = asked
                .filter(|v| SUPPORTED_VERSIONS.contains(v) && Era::of(v) == Era::Legacy)
                .unwrap_or(LEGACY_LATEST);
            complete(json!({
                "protocolVersion": version,
                "capabilities": capabilities,
                "serverInfo": info,
            }))
        }
        "server/discover" => complete(json!({
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": capabilities,
            "serverInfo": info,
            "_meta": { "io.modelcontextprotocol/serverInfo": info },
            "ttlMs": LIST_TTL_MS,
            "cacheScope": "public",
        })),
        "ping" => complete(json!({})),
        "tools/list" => {
            let tools: Vec<Value> = catalog.operations.iter().map(tool).collect();
            let mut result = json!({ "tools": tools });
            if modern {
                result["ttlMs"] = Value::from(LIST_TTL_MS);
                result["cacheScope"] = Value::from("public");
            }
            complete(result)
        }
        "tools/call" => {
            let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
            match name {
                Some(name) if catalog.find(name).is_some() => Step::Call {
                    id,
                    name: name.to_owned(),
                    arguments: params.and_then(|p| p.get("arguments")).cloned(),
                    modern,
                },
                Some(name) => {
                    let msg = format!("unknown tool: {name}");
                    Step::Reply(
                        200,
                        jsonrpc::error(Some(&id), code::INVALID_PARAMS, &msg, None),
                    )
                }
                None => {
                    let msg = "tools/call needs a tool `name`";
                    Step::Reply(
                        200,
                        jsonrpc::error(Some(&id), code::INVALID_PARAMS, msg, None),
                    )
                }
            }
        }
        other => {
            let msg = format!("method not found: {other}");
            Step::Reply(
                200,
                jsonrpc::error(Some(&id), code::METHOD_NOT_FOUND, &msg, None),
            )
        }
    }
}

/// The answer to a [`Step::Call`] with the tool `result`.
pub fn call_answer(id: &Value, mut result: Value, modern: bool) -> Value {
    if modern {
        result["resultType"] = Value::from("complete");
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}
