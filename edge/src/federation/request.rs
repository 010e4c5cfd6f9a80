//! The request the federated endpoint is serving, as the handlers of each method need it, and
//! the answers the edge originates there. Shared by `endpoint` and `calls`.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::app::App;
use crate::federation::target::Endpoint;
use crate::federation::upstream::Caller;
use crate::http::body::Body;
use crate::http::conn::ConnInfo;
use crate::http::respond::json_response;
use crate::sessions::seal::{principal_hash, Payload};

/// What a sealed payload of the endpoint holds in its connector field: a session, a cursor,
/// or a task.
pub const SESSION: &str = "session";
pub const CURSOR: &str = "cursor";
pub const TASK: &str = "task";

/// Seals what only the endpoint of `key` and this principal may hand back: a session (`kind`
/// [`SESSION`]), a cursor ([`CURSOR`]) or a task id ([`TASK`]).
pub fn seal(app: &App, key: &str, principal: &str, kind: &str, value: &str) -> Option<String> {
    app.sealer
        .seal(&Payload {
            service: key.to_owned(),
            principal_hash: principal_hash(principal),
            connector: kind.to_owned(),
            backend_id: value.to_owned(),
        })
        .map_err(|e| tracing::error!("cannot seal a federated {kind}: {e}"))
        .ok()
}

/// What [`seal`] sealed as `kind` for the endpoint of `key` and this principal; `None` for
/// anything else.
pub fn unseal(app: &App, key: &str, principal: &str, kind: &str, sealed: &str) -> Option<String> {
    let opened = app.sealer.open(sealed, key, principal).ok()?;
    (opened.connector == kind).then_some(opened.backend_id)
}

/// The request being served, as the handlers of each method need it.
pub struct Request<'a> {
    pub app: &'a Arc<App>,
    pub conn: &'a ConnInfo,
    pub parts: &'a http::request::Parts,
    pub endpoint: Endpoint<'a>,
    pub caller: Caller,
    pub modern: bool,
}

/// A JSON-RPC error answer (HTTP 200: the request was read and answered).
pub fn rpc_error(id: Option<&Value>, code: i64, message: &str) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &underpass_mcp::jsonrpc_error(id, code, message, None),
    )
}

/// A result answer (HTTP 200), stamped for the client's era.
pub fn result_response(req: &Request<'_>, id: Option<&Value>, result: Value) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": stamp(req, result)}),
    )
}

/// What every result the edge originates for a 2026-07-28 client carries: `resultType` and
/// the edge's own `serverInfo`.
pub fn stamp(req: &Request<'_>, mut result: Value) -> Value {
    if !req.modern {
        return result;
    }
    if let Some(obj) = result.as_object_mut() {
        obj.entry("resultType")
            .or_insert_with(|| Value::from("complete"));
        let meta = obj.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("io.modelcontextprotocol/serverInfo".into(), server_info());
        }
    }
    result
}

pub fn server_info() -> Value {
    json!({"name": "underpass", "version": env!("CARGO_PKG_VERSION")})
}
