//! One request to the federated endpoint `/mcp` or a view `/mcp/view/{name}`: the edge is the
//! MCP server here. It answers `initialize` (a 2025-11-25 client gets a sealed session the
//! edge keeps), `server/discover` (2026-07-28), `ping` and the lists itself (fanned out, see
//! [`lists`]), and routes calls to their service ([`calls`]). Both eras are served whatever
//! each backend speaks.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use underpass_audit::{Decision, Outcome};
use underpass_mcp::federation::asks;
use underpass_mcp::federation::notifications::Filter;
use underpass_mcp::federation::tasks;
use underpass_mcp::jsonrpc::code;
use underpass_mcp::{self as mcp, Era, Kind as MessageKind, MODERN_VERSION};

use crate::app::App;
use crate::auth::Identity;
use crate::federation::calls;
use crate::federation::listen::{self, Listener};
use crate::federation::lists::{self, Kind};
pub use crate::federation::request::{result_response, rpc_error, server_info, stamp, Request};
use crate::federation::request::{seal, unseal, CURSOR, SESSION};
use crate::federation::stateless;
pub use crate::federation::target::{Endpoint, Target};
use crate::federation::upstream::{self, Caller};
use crate::http::audited::PendingRecord;
use crate::http::body::Body;
use crate::http::conn::ConnInfo;
use crate::http::headers::{forwarding_headers, SESSION_HEADER};
use crate::http::host::check_host_origin;
use crate::http::media::check_media;
use crate::http::respond::{error_response, json_response, jsonrpc_refusal, Refusal};
use crate::mcp::admission;

/// Versions a client may speak to the federated endpoint, newest first.
const VERSIONS: [&str; 4] = [MODERN_VERSION, "2025-11-25", "2025-06-18", "2025-03-26"];

/// Serves one request to `/mcp`, `/mcp/view/{view}`, or `/mcp/{service}` bridged.
pub async fn serve(
    app: &Arc<App>,
    conn: &ConnInfo,
    target: Target<'_>,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut PendingRecord,
) -> Response<Body> {
    match answer(app, conn, target, parts, body, audit).await {
        Ok(resp) => resp,
        Err(refusal) => *refusal,
    }
}

async fn answer(
    app: &Arc<App>,
    conn: &ConnInfo,
    target: Target<'_>,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    if let Err(refusal) = check_host_origin(&app.config.clients, parts) {
        audit.outcome = Outcome::Forbidden;
        return Err(refusal);
    }
    let endpoint = match target {
        Target::Federated => Endpoint {
            key: "/mcp".to_owned(),
            view: None,
            single: None,
        },
        Target::Bridged(service) => match app.config.services.iter().find(|s| s.name == service) {
            Some(s) => Endpoint {
                key: format!("/mcp/{service}"),
                view: None,
                single: Some(s),
            },
            None => {
                return Err(Box::new(error_response(
                    StatusCode::NOT_FOUND,
                    code::NOT_FOUND,
                    &format!("unknown service {service:?}"),
                )))
            }
        },
        Target::View(name) => match app.config.views.iter().find(|v| v.name == name) {
            Some(v) => Endpoint {
                key: format!("/mcp/view/{name}"),
                view: Some(v),
                single: None,
            },
            None => {
                return Err(Box::new(error_response(
                    StatusCode::NOT_FOUND,
                    code::NOT_FOUND,
                    &format!("no view {name:?}: views are the [[views]] of edge.toml"),
                )))
            }
        },
    };
    if ![Method::POST, Method::GET, Method::DELETE].contains(&parts.method) {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            code::INVALID_REQUEST,
            "the federated endpoint takes POST, GET (a session's event stream) and DELETE (to \
             end a session)",
        );
        resp.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("POST, GET, DELETE"),
        );
        return Err(Box::new(resp));
    }
    if let Err(refusal) = check_media(&parts.method, &parts.headers) {
        audit.outcome = Outcome::BadRequest;
        return Err(refusal);
    }
    let identity = match parts.extensions.get::<Identity>() {
        Some(identity) => identity.clone(),
        None => admission::authenticate(app, conn, "", parts, audit)?,
    };
    audit.principal = Some(identity.principal.clone());
    audit.auth_method = Some(identity.method);
    let opened = open_session(app, &endpoint, &identity.principal, parts)?;
    let (session, client_capabilities) = match opened {
        Some((id, capabilities)) => (Some(id), capabilities),
        None => (None, json!({})),
    };
    if parts.method == Method::DELETE {
        return match session {
            Some(id) => {
                app.federation.ended.set(&id, ());
                app.federation.subscribed.end(&id);
                Ok(json_response(StatusCode::OK, &json!({})))
            }
            None => Err(session_not_found()),
        };
    }
    let modern = parts
        .headers
        .get(mcp::HEADER_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| Era::of(v.trim()) == Era::Modern);
    let caller = Caller {
        identity,
        trace_id: audit.trace_id.clone().unwrap_or_default(),
        session: session.clone().unwrap_or_default(),
        forwarded: forwarding_headers(conn, parts, !app.config.clients.insecure_plaintext),
        asks: if modern {
            json!({})
        } else {
            client_capabilities
        },
    };
    let req = Request {
        app,
        conn,
        parts,
        endpoint,
        caller,
        modern,
    };
    if parts.method == Method::GET {
        return event_stream(&req, session.is_some(), audit).await;
    }
    let inspected = admission::parse(&body, audit)?;
    let Some(message) = inspected.single().filter(|_| !inspected.batch).cloned() else {
        audit.outcome = Outcome::BadRequest;
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "the federated endpoint takes one message per request, not a batch",
        )));
    };
    admission::check_protocol(&parts.headers, &inspected, None, audit)?;
    let version = parts.headers.get(mcp::HEADER_PROTOCOL_VERSION);
    let version = version.map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Err(r) = stateless::check(version, &message, &VERSIONS) {
        audit.outcome = Outcome::BadRequest;
        audit.jsonrpc_error = Some(r.code);
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
        let id = message.id.as_ref();
        return Err(Box::new(jsonrpc_refusal(
            status, id, r.code, &r.message, r.data,
        )));
    }
    audit.mcp_method = message.method.clone();
    if message.kind != MessageKind::Request {
        // A response answers what the edge asked the client for a call in flight (`asks`);
        // other responses and notifications concern no backend the edge could name: taken,
        // and dropped (a legacy client's `notifications/initialized`, cancellations of calls
        // whose answers the edge is reading whole).
        if message.kind == MessageKind::Response && !req.caller.session.is_empty() {
            app.federation
                .asks
                .answer(&req.caller.session, message.value.clone());
        }
        audit.decision = Some(Decision::Allow);
        let mut resp = Response::new(crate::http::body::full_body(""));
        *resp.status_mut() = StatusCode::ACCEPTED;
        return Ok(resp);
    }
    let id = message.id.clone();
    let method = message.method.clone().unwrap_or_default();
    let result = match method.as_str() {
        "initialize" => return initialize(&req, &message, audit).await,
        "server/discover" => Ok(discover_result(describe(&req).await)),
        "ping" => Ok(json!({})),
        "subscriptions/listen" if req.modern => {
            audit.decision = Some(Decision::Allow);
            let filter = Filter::of_params(message.value.get("params"));
            let id = id.unwrap_or(Value::Null);
            return Ok(listen::serve(&req, Listener::Subscription { id, filter }).await);
        }
        "logging/setLevel" => calls::set_log_level(&req, &message),
        m if Kind::of(m).is_some() => {
            return list(&req, Kind::of(m), &message, audit).await;
        }
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "completion/complete"
        | "resources/subscribe"
        | "resources/unsubscribe" => {
            return calls::route(&req, message, audit).await;
        }
        m if req.modern && tasks::METHODS.contains(&m) => {
            return calls::route(&req, message, audit).await;
        }
        _ => Err(Box::new(rpc_error(
            id.as_ref(),
            code::METHOD_NOT_FOUND,
            &format!("the federated endpoint does not serve {method:?}"),
        ))),
    }?;
    audit.decision = Some(Decision::Allow);
    Ok(result_response(&req, id.as_ref(), result))
}

/// A `GET`: the event stream of a 2025-11-25 client's session, where the services' list
/// changes and resource updates arrive (2026-07-28 has `subscriptions/listen` instead).
async fn event_stream(
    req: &Request<'_>,
    in_session: bool,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    if req.modern {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            code::INVALID_REQUEST,
            "2026-07-28 has no GET stream: POST subscriptions/listen instead",
        );
        resp.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return Err(Box::new(resp));
    }
    if !in_session {
        audit.outcome = Outcome::BadRequest;
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "a GET opens a session's event stream: initialize first and send its Mcp-Session-Id",
        )));
    }
    audit.decision = Some(Decision::Allow);
    Ok(listen::serve(req, Listener::Session).await)
}

fn session_not_found() -> Refusal {
    Box::new(error_response(
        StatusCode::NOT_FOUND,
        code::NOT_FOUND,
        "session not found; initialize a new session",
    ))
}

/// The session a request names by `Mcp-Session-Id`, and what its client declared it can be
/// asked: 404 unless it was sealed by this endpoint for this principal.
fn open_session(
    app: &App,
    endpoint: &Endpoint<'_>,
    principal: &str,
    parts: &http::request::Parts,
) -> Result<Option<(String, Value)>, Refusal> {
    let Some(id) = parts.headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let id = id.to_str().map_err(|_| session_not_found())?;
    match unseal(app, &endpoint.key, principal, SESSION, id) {
        Some(value) if app.federation.ended.get(id).is_none() => {
            Ok(Some((id.to_owned(), session_capabilities(&value))))
        }
        _ => Err(session_not_found()),
    }
}

/// What a session's sealed value holds: a random id and, base64url after a `.`, the client's
/// capabilities a backend may ask of (`asks::asking_capabilities`), so that every edge that
/// opens the session knows them.
fn session_value(capabilities: &Value) -> String {
    let id = format!("{:032x}", rand::random::<u128>());
    format!("{id}.{}", URL_SAFE_NO_PAD.encode(capabilities.to_string()))
}

/// The capabilities [`session_value`] sealed (none for a value without them).
fn session_capabilities(value: &str) -> Value {
    value
        .split_once('.')
        .and_then(|(_, encoded)| URL_SAFE_NO_PAD.decode(encoded).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The union of what the endpoint's services offer (a view offers what it lists), and the
/// services' instructions, each under its service's name.
async fn describe(req: &Request<'_>) -> (Map<String, Value>, Option<String>) {
    let app = req.app;
    let policy = app.security.policy.get();
    let chosen = lists::services(app, &req.endpoint, &policy, &req.caller.identity);
    let answers = upstream::describe_each(app, &chosen, &req.caller).await;
    let mut capabilities = Map::new();
    let mut instructions = Vec::new();
    for (service, answer) in chosen.iter().zip(answers) {
        let Some(d) = answer else {
            tracing::warn!(service = %service.name, "federated endpoint: service left out of the capabilities: it did not describe itself in time");
            app.federation.stats.omitted(&service.name, "describe");
            continue;
        };
        // A task's id says which service it runs at (see `calls`): the extension is offered
        // to a 2026-07-28 client when some service offers it.
        if req.modern && tasks::offered(&d.capabilities) {
            let extensions = capabilities
                .entry("extensions")
                .or_insert_with(|| json!({}));
            extensions[tasks::EXTENSION] = json!({});
        }
        for cap in ["tools", "prompts", "resources", "completions", "logging"] {
            let Some(theirs) = d.capabilities.get(cap) else {
                continue;
            };
            let ours = capabilities.entry(cap).or_insert_with(|| json!({}));
            // The edge relays changes and resource updates (see `listen`).
            for flag in ["listChanged", "subscribe"] {
                if theirs.get(flag) == Some(&Value::Bool(true)) {
                    ours[flag] = Value::Bool(true);
                }
            }
        }
        if let Some(text) = d.instructions.filter(|t| !t.trim().is_empty()) {
            let text: String = text.chars().take(4096).collect();
            instructions.push(match req.endpoint.single {
                Some(_) => text,
                None => format!("[{}] {text}", service.name),
            });
        }
    }
    if req.endpoint.view.is_some() {
        capabilities.remove("completions");
    }
    (
        capabilities,
        (!instructions.is_empty()).then(|| instructions.join("\n\n")),
    )
}

fn discover_result((capabilities, instructions): (Map<String, Value>, Option<String>)) -> Value {
    let mut result = json!({
        "supportedVersions": VERSIONS,
        "capabilities": capabilities,
        // The set depends on the caller's policy: never shared, never long-lived.
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(text) = instructions {
        result["instructions"] = Value::from(text);
    }
    result
}

/// `initialize` from a 2025-11-25 (or older) client: the edge's answer, and a session it keeps.
async fn initialize(
    req: &Request<'_>,
    message: &mcp::Message,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    let asked = message
        .value
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = VERSIONS[1..]
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(VERSIONS[1]);
    let (capabilities, instructions) = describe(req).await;
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info(),
    });
    if let Some(text) = instructions {
        result["instructions"] = Value::from(text);
    }
    let declared = message.value.pointer("/params/capabilities");
    let capabilities = asks::asking_capabilities(declared.unwrap_or(&Value::Null));
    let sealed = seal(
        req.app,
        &req.endpoint.key,
        &req.caller.identity.principal,
        SESSION,
        &session_value(&capabilities),
    )
    .ok_or_else(|| {
        Box::new(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "the edge could not seal a session id; see its log",
        ))
    })?;
    audit.session = Some(sealed.clone());
    audit.decision = Some(Decision::Allow);
    let mut resp = json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": message.id, "result": result}),
    );
    if let Ok(v) = http::HeaderValue::from_str(&sealed) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    Ok(resp)
}

/// A federated list: every service's, merged, filtered for the caller, one page of it.
async fn list(
    req: &Request<'_>,
    kind: Option<Kind>,
    message: &mcp::Message,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    let Some(kind) = kind else {
        audit.decision = Some(Decision::Allow);
        return Ok(result_response(req, message.id.as_ref(), json!({})));
    };
    let id = message.id.as_ref();
    let principal = &req.caller.identity.principal;
    let offset = match message.value.pointer("/params/cursor") {
        None | Some(Value::Null) => 0,
        Some(cursor) => cursor
            .as_str()
            .and_then(|c| unseal(req.app, &req.endpoint.key, principal, CURSOR, c))
            .and_then(|value| {
                let (method, offset) = value.split_once(':')?;
                (method == kind.method()).then(|| offset.parse::<usize>().ok())?
            })
            .ok_or_else(|| {
                audit.outcome = Outcome::BadRequest;
                Box::new(rpc_error(
                    id,
                    code::INVALID_PARAMS,
                    "invalid cursor: not one this endpoint handed out for this list and caller; list again without a cursor",
                ))
            })?,
    };
    let policy = req.app.security.policy.get();
    let items = lists::gather(req.app, &req.endpoint, &policy, &req.caller, kind)
        .await
        .map_err(|failed| {
            audit.outcome = Outcome::BackendError;
            Box::new(rpc_error(
                id,
                code::UPSTREAM_FAILED,
                &format!(
                    "service {:?} could not list ({}), and its on_failure is \"fail\"",
                    failed.service, failed.error
                ),
            ))
        })?;
    let (page, next) = lists::page(items, offset, req.app.config.federation.page_size);
    // The items are JSON text already: the rest of the result is built, then joined to them.
    let mut result = Map::new();
    if let Some(next) = next {
        let value = format!("{}:{next}", kind.method());
        if let Some(cursor) = seal(req.app, &req.endpoint.key, principal, CURSOR, &value) {
            result.insert("nextCursor".into(), Value::from(cursor));
        }
    }
    if req.modern {
        result.insert("ttlMs".into(), Value::from(0));
        result.insert("cacheScope".into(), Value::from("private"));
    }
    let rest = stamp(req, Value::Object(result));
    audit.decision = Some(Decision::Allow);
    let text = lists::answer(id, kind.key(), &page, &rest);
    let mut resp = Response::new(crate::http::body::full_body(text));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
