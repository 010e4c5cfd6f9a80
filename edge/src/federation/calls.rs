//! A call on the federated endpoint (`tools/call`, `prompts/get`, `resources/read`,
//! `completion/complete`, `resources/(un)subscribe`), routed to the service its federated name
//! or URI names: the message is given back its backend name (and `Mcp-Name` with it), then
//! admitted exactly as on `/mcp/{service}` (policy, rate limits and the audit record see the
//! real service and tool), then sent in the backend's era. `resources/read` results are
//! cached as their backend says. A 2025-11-25 client's resource subscriptions at a service
//! that speaks 2026-07-28 only are kept by the edge (see `keep_subscription`).

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::{json, Value};
use underpass_audit::Outcome;
use underpass_mcp::federation::caching;
use underpass_mcp::federation::names::{split, CLIENT_NAME_LIMIT};
use underpass_mcp::federation::tasks;
use underpass_mcp::federation::uris::{federate_content, federated_uri, original_uri};
use underpass_mcp::jsonrpc::code;
use underpass_mcp::{self as mcp, SseEvent, SseParser, HEADER_NAME, HEADER_PARAM_PREFIX};

use crate::config::ServiceConfig;
use crate::federation::asks;
use crate::federation::config::Listed;
use crate::federation::lists::{self, Kind};
use crate::federation::request::{result_response, rpc_error, seal, unseal, Request, TASK};
use crate::federation::state::{CacheKey, Federation};
use crate::federation::upstream::{self, header_value, UpstreamError};
use crate::http::audited::PendingRecord;
use crate::http::body::{full_body, Body, BodyError};
use crate::http::headers::response_headers;
use crate::http::headers::SESSION_HEADER;
use crate::http::respond::{json_response, Refusal};
use crate::mcp::admission;
use crate::mcp::failover::{self, Sent};
use crate::mcp::list_filter;
use crate::mcp::mediate::Mediator;
use crate::tunnels::exchange::{response_stream, OnHangUp};

/// What a call names its target by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    /// A federated tool or prompt name.
    Name,
    /// A federated resource URI.
    Uri,
    /// A task id the endpoint handed out (tasks extension).
    Task,
}

impl By {
    fn what(self) -> &'static str {
        match self {
            By::Name => "name",
            By::Uri => "resource",
            By::Task => "taskId",
        }
    }
}

/// Where a method names its target, and by what.
fn target_of(method: &str, message: &Value) -> Option<(&'static str, By)> {
    Some(match method {
        "tools/call" | "prompts/get" => ("/params/name", By::Name),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            ("/params/uri", By::Uri)
        }
        "completion/complete" => match message.pointer("/params/ref/type")?.as_str()? {
            "ref/prompt" => ("/params/ref/name", By::Name),
            "ref/resource" => ("/params/ref/uri", By::Uri),
            _ => return None,
        },
        m if tasks::METHODS.contains(&m) => ("/params/taskId", By::Task),
        _ => return None,
    })
}

/// Routes one call (see the module documentation).
pub async fn route(
    req: &Request<'_>,
    message: mcp::Message,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    let app = req.app;
    let id = message.id.clone();
    let method = message.method.clone().unwrap_or_default();
    let mut value = message.value;
    let unknown = |what: &str| {
        let hint = if what == By::Task.what() {
            "use one a tools/call on this endpoint returned"
        } else {
            "list again to see what it serves"
        };
        Box::new(rpc_error(
            id.as_ref(),
            code::INVALID_PARAMS,
            &format!("unknown {what} on this endpoint: {hint}"),
        ))
    };
    let Some((pointer, by)) = target_of(&method, &value) else {
        return Err(unknown("target"));
    };
    let Some(shown) = value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(unknown("target"));
    };
    let resolved = if let Some(single) = req.endpoint.single {
        Some((single, shown.clone()))
    } else {
        match by {
            By::Uri => resolve_uri(req, &shown),
            By::Name => resolve_name(req, &method, &shown).await,
            By::Task => resolve_task(req, &shown),
        }
    };
    let Some((service, original)) = resolved else {
        audit.outcome = Outcome::Error;
        return Err(unknown(by.what()));
    };
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = Value::from(original.as_str());
    }
    let body = Bytes::from(value.to_string());
    let mut parts = req.parts.clone();
    parts.headers.remove(SESSION_HEADER);
    if parts.headers.contains_key(HEADER_NAME) {
        if let Ok(v) = http::HeaderValue::from_bytes(&header_value(&original)) {
            parts.headers.insert(HEADER_NAME, v);
        }
    }
    audit.service = Some(service.name.clone());
    audit.path = None;
    let admitted = admission::admit(app, req.conn, &service.name, &parts, &body, audit)?;
    let mediator = Mediator::for_calls(&admitted.calls, &audit.mediation);

    let mut params = value
        .get_mut("params")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if !req.modern {
        with_log_level(req, &mut params);
    }
    if method == "tools/call" {
        return stream_call(req, service, &original, id, params, mediator, audit).await;
    }
    let subscription = matches!(
        method.as_str(),
        "resources/subscribe" | "resources/unsubscribe"
    );
    if subscription && !req.modern {
        if let Some(kept) =
            keep_subscription(req, service, &method, &original, id.as_ref(), audit).await
        {
            return kept;
        }
    }
    let context = upstream::context(&req.caller.identity, &req.caller.asks);
    let key = CacheKey {
        service: &service.name,
        method: &method,
        param: &original,
        context: &context,
    };
    let fed = &app.federation;
    let cacheable = method == "resources/read" && caching::request_may_be_cached(Some(&params));
    if cacheable {
        if let Some(result) = fed.lookup(&fed.reads, &key) {
            let result = (*result).clone();
            return Ok(answer(req, id.as_ref(), service, result, mediator.as_ref()));
        }
    }
    match upstream::request(app, &service.name, &req.caller, &method, params).await {
        Ok(mut result) if by == By::Task => {
            // The task goes by the client's id; its inlined result by federated URIs.
            if let Some(task_id) = result.get_mut("taskId") {
                *task_id = Value::from(shown);
            }
            if let (Some(inner), None) = (result.get_mut("result"), req.endpoint.single) {
                federate_content(inner, service.federated_prefix());
            }
            Ok(result_response(req, id.as_ref(), result))
        }
        Ok(result) if !req.modern && caching::asks_for_input(&result) => {
            // The client's capabilities went with `tools/call` only (see `asks`): a backend
            // that asks anyway gets the client nothing it could read.
            audit.outcome = Outcome::BackendError;
            Ok(rpc_error(
                id.as_ref(),
                code::UPSTREAM_FAILED,
                &format!(
                    "service {:?} asked for input on {method}, which the edge relays to a \
                     2025-11-25 client on tools/call only",
                    service.name
                ),
            ))
        }
        Ok(result) => {
            if cacheable && caching::result_may_be_cached(&result) {
                let hints = caching::directives(&result);
                let bytes = result.to_string().len();
                let kept = std::sync::Arc::new(result.clone());
                Federation::keep(&fed.reads, &key, hints, kept, bytes);
            }
            Ok(answer(req, id.as_ref(), service, result, mediator.as_ref()))
        }
        Err(UpstreamError::Rpc {
            code,
            message,
            data,
        }) => {
            audit.outcome = Outcome::Error;
            audit.jsonrpc_error = Some(code);
            Ok(json_response(
                StatusCode::OK,
                &mcp::jsonrpc_error(id.as_ref(), code, &message, data),
            ))
        }
        Err(UpstreamError::Unavailable) => {
            audit.outcome = Outcome::Unavailable;
            Ok(rpc_error(
                id.as_ref(),
                code::UNAVAILABLE,
                &format!(
                    "service {:?} is unavailable: no connector serving it is online; retry later",
                    service.name
                ),
            ))
        }
        Err(e) => {
            audit.outcome = Outcome::BackendError;
            tracing::warn!(service = %service.name, %method, "federated call failed: {e}");
            Ok(rpc_error(
                id.as_ref(),
                code::UPSTREAM_FAILED,
                &format!("service {:?} failed: {e}", service.name),
            ))
        }
    }
}

/// `resources/(un)subscribe` of a 2025-11-25 client to a service that speaks 2026-07-28 only,
/// which has no such method: kept by the edge for the client's session (`subscribed`), and
/// asked of the backend by that session's event stream (`listen`). `None` when the service
/// speaks the client's era (or cannot be reached now): the request goes on as it is.
async fn keep_subscription(
    req: &Request<'_>,
    service: &ServiceConfig,
    method: &str,
    uri: &str,
    id: Option<&Value>,
    audit: &mut PendingRecord,
) -> Option<Result<Response<Body>, Refusal>> {
    let app = req.app;
    let plan = upstream::plan(app, &service.name, &req.caller).await.ok()?;
    if !plan.is_modern() {
        return None;
    }
    let refuse = |audit: &mut PendingRecord, code: i64, message: &str| {
        audit.outcome = Outcome::Error;
        audit.jsonrpc_error = Some(code);
        Some(Err(Box::new(rpc_error(id, code, message))))
    };
    let session = &req.caller.session;
    if session.is_empty() {
        return refuse(
            audit,
            code::INVALID_REQUEST,
            &format!("{method} needs a session: initialize first and send its Mcp-Session-Id"),
        );
    }
    let offers = upstream::describe(app, &plan, &req.caller)
        .await
        .is_ok_and(|d| d.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true)));
    if !offers {
        return refuse(
            audit,
            code::METHOD_NOT_FOUND,
            &format!(
                "service {:?} offers no resource subscriptions",
                service.name
            ),
        );
    }
    let subscribed = &app.federation.subscribed;
    let principal = &req.caller.identity.principal;
    let now = Instant::now();
    if method == "resources/subscribe" {
        if let Err(e) = subscribed.subscribe(session, principal, &service.name, uri, now) {
            audit.outcome = Outcome::RateLimited;
            audit.jsonrpc_error = Some(code::RATE_LIMITED);
            return Some(Err(Box::new(rpc_error(
                id,
                code::RATE_LIMITED,
                &e.to_string(),
            ))));
        }
    } else {
        subscribed.unsubscribe(session, &service.name, uri, now);
    }
    Some(Ok(result_response(req, id, json!({}))))
}

/// A `tools/call`, its answer streamed back as it comes (progress notifications on the way):
/// sent under an id of the edge's own (a pooled legacy session is shared by the caller's
/// clients, whose ids may collide), the client's id put back in what returns. A legacy
/// session its backend lost (404) is opened again once.
async fn stream_call(
    req: &Request<'_>,
    service: &ServiceConfig,
    tool: &str,
    client_id: Option<Value>,
    params: Value,
    mediator: Option<Mediator>,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    let app = req.app;
    let unavailable = |audit: &mut PendingRecord, e: UpstreamError| {
        audit.outcome = Outcome::Unavailable;
        Box::new(rpc_error(
            client_id.as_ref(),
            code::UNAVAILABLE,
            &format!(
                "service {:?} is unavailable ({e}); retry later",
                service.name
            ),
        ))
    };
    let mut params = params;
    if !req.modern {
        // What the client can be asked, for a 2026-07-28 backend (see `asks`).
        with_meta(
            &mut params,
            upstream::CLIENT_CAPABILITIES,
            req.caller.asks.clone(),
        );
    }
    let param_headers = param_headers(&req.parts.headers);
    let mut again = true;
    let sent = loop {
        let plan = match upstream::plan(app, &service.name, &req.caller).await {
            Ok(plan) => plan,
            Err(e) => return Err(unavailable(audit, e)),
        };
        let edge_id = app.federation.upstreams.id();
        let message = plan.message(Some(&edge_id), "tools/call", params.clone());
        let mut head = plan.head(app, &req.caller, "tools/call", Some(tool));
        if plan.is_modern() {
            head.headers.extend(param_headers.iter().cloned());
        }
        head.request_id = audit.request_id.clone().unwrap_or(head.request_id);
        let how = failover::How {
            retry: false,
            on_hang_up: OnHangUp::Cancel,
        };
        let body = Bytes::from(message.to_string());
        let sent = failover::send(
            app,
            &service.name,
            plan.tunnel.clone(),
            &head,
            body,
            how,
            audit,
        )
        .await?;
        if sent.head.status == 404 && !plan.is_modern() && again {
            again = false;
            app.federation
                .upstreams
                .drop_session(&service.name, &req.caller.pool_key());
            continue;
        }
        break (sent, edge_id, plan.is_modern());
    };
    let (sent, edge_id, modern_backend) = sent;
    let status = StatusCode::from_u16(sent.head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_server_error() {
        audit.outcome = Outcome::BackendError;
    } else if status.is_client_error() {
        audit.outcome = Outcome::Error;
    }
    // A backend may ask a 2025-11-25 client for input: relayed (see `asks`), a 2026-07-28
    // backend's `input_required` always (the client knows none), a legacy backend's requests
    // when the client declared it can be asked.
    let may_be_asked = req.caller.asks.as_object().is_some_and(|a| !a.is_empty());
    if status.is_success() && !req.modern && (modern_backend || may_be_asked) {
        let restore = restorer(req, service, client_id.clone(), edge_id.clone(), mediator);
        let relay = asks::Relay {
            app: app.clone(),
            service: service.name.clone(),
            caller: req.caller.clone(),
            method: "tools/call".into(),
            name: Some(tool.to_owned()),
            params,
            headers: param_headers,
            client_id,
            edge_id,
            restore: Box::new(restore),
        };
        let first = upstream::answers(sent);
        return Ok(match modern_backend {
            true => asks::relay(relay, first),
            false => asks::relay_requests(relay, first),
        });
    }
    let (mut headers, is_sse) = response_headers(sent.head.headers);
    headers.remove(SESSION_HEADER);
    let Sent {
        tunnel,
        recv,
        in_flight,
        ..
    } = sent;
    let stream = response_stream(recv, is_sse, &tunnel.connector, OnHangUp::Cancel, None);
    if !status.is_success() {
        // The backend (or the connector for it) refused or failed: a JSON-RPC error that
        // names the service, with what the answer said (never a backend address: the
        // connector's messages carry a reference instead).
        let raw = list_filter::collect_json(stream).await.unwrap_or_default();
        drop(in_flight);
        let answer = serde_json::from_slice::<Value>(&raw).ok();
        if let Some(error) = answer
            .as_ref()
            .filter(|a| a.get("id") == Some(&edge_id))
            .and_then(|a| a.get("error"))
        {
            // The backend's own JSON-RPC error for the call: the client's, as it said it.
            audit.jsonrpc_error = error.get("code").and_then(Value::as_i64);
            let mut error = error.clone();
            let msg = json!({"jsonrpc": "2.0", "id": client_id, "error": error.take()});
            return Ok(json_response(status, &msg));
        }
        let said = answer
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .map(|m| format!(": {}", m.chars().take(256).collect::<String>()))
            .unwrap_or_default();
        let code = if status.is_server_error() {
            code::UPSTREAM_FAILED
        } else {
            code::INVALID_REQUEST
        };
        return Ok(rpc_error(
            client_id.as_ref(),
            code,
            &format!(
                "service {:?} answered HTTP {}{said}",
                service.name,
                status.as_u16()
            ),
        ));
    }
    let restore = restorer(req, service, client_id, edge_id, mediator);
    let body: Body = if is_sse {
        let mut parser = SseParser::default();
        let events = stream.map(move |frame| {
            let _counted = &in_flight;
            let data = match frame?.into_data() {
                Ok(data) => data,
                Err(_) => return Ok(Frame::data(Bytes::new())),
            };
            let mut out = Vec::new();
            for event in parser
                .feed(&data)
                .map_err(|e| BodyError::from(e.to_string()))?
            {
                let Some(msg) = event
                    .data()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                else {
                    continue;
                };
                out.extend_from_slice(&SseEvent::new(&restore(msg).to_string()).to_bytes());
            }
            Ok(Frame::data(Bytes::from(out)))
        });
        UnsyncBoxBody::new(StreamBody::new(events))
    } else {
        match list_filter::collect_json(stream).await {
            Ok(raw) => {
                drop(in_flight);
                let answer = match serde_json::from_slice::<Value>(&raw) {
                    Ok(Value::Array(items)) => {
                        Value::Array(items.into_iter().map(&restore).collect())
                    }
                    Ok(msg) => restore(msg),
                    Err(_) => {
                        audit.outcome = Outcome::BackendError;
                        return Ok(rpc_error(
                            None,
                            code::UPSTREAM_FAILED,
                            &format!("service {:?} answered with unreadable JSON", service.name),
                        ));
                    }
                };
                full_body(answer.to_string())
            }
            Err(e) => {
                audit.outcome = Outcome::BackendError;
                return Ok(rpc_error(
                    None,
                    code::UPSTREAM_FAILED,
                    &format!("service {:?} failed mid-answer: {e}", service.name),
                ));
            }
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// What the client gets of a message of the call's answer: the answer (the one with
/// `edge_id`) goes back under the client's id. A 2026-07-28 client needs `resultType` in the
/// result, which a legacy backend never sends. Resource URIs in the result are the backend's:
/// federated, unless bridged as they are; a created task's id is sealed with its service.
/// The rule's obligations apply to the answer last.
fn restorer(
    req: &Request<'_>,
    service: &ServiceConfig,
    client_id: Option<Value>,
    edge_id: Value,
    mediator: Option<Mediator>,
) -> impl Fn(Value) -> Value + Send + Sync + 'static {
    let modern = req.modern;
    let prefix = req
        .endpoint
        .single
        .is_none()
        .then(|| service.federated_prefix().to_owned());
    let task_id = task_sealer(req, service);
    move |mut msg: Value| {
        if msg.get("id") == Some(&edge_id) {
            msg["id"] = client_id.clone().unwrap_or(Value::Null);
            if let Some(result) = msg.get_mut("result") {
                if let Some(prefix) = &prefix {
                    federate_content(result, prefix);
                    if let Some(sealed) = tasks::created(result).and_then(&task_id) {
                        result["taskId"] = Value::from(sealed);
                    }
                }
                if let Some(result) = result.as_object_mut().filter(|_| modern) {
                    result
                        .entry("resultType")
                        .or_insert_with(|| Value::from("complete"));
                }
            }
            if let Some(mediator) = &mediator {
                mediator.apply(&mut msg);
            }
        }
        msg
    }
}

/// The levels of `logging/setLevel` (RFC 5424), lowest first.
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// `logging/setLevel` of a 2025-11-25 client: remembered for its session and asked of every
/// 2026-07-28 backend it calls (`_meta` logLevel: that era sends no log unasked). A legacy
/// backend is not told: the edge's session there is shared by the caller's clients.
pub fn set_log_level(req: &Request<'_>, message: &mcp::Message) -> Result<Value, Refusal> {
    let level = message
        .value
        .pointer("/params/level")
        .and_then(Value::as_str);
    let Some(level) = level.filter(|l| LOG_LEVELS.contains(l)) else {
        return Err(Box::new(rpc_error(
            message.id.as_ref(),
            code::INVALID_PARAMS,
            &format!("params.level must be one of {LOG_LEVELS:?}"),
        )));
    };
    if !req.caller.session.is_empty() {
        let levels = &req.app.federation.log_levels;
        levels.set(&req.caller.session, level.to_owned());
    }
    Ok(json!({}))
}

/// A legacy client's call carries the log level its session asked for, in the `_meta` a
/// 2026-07-28 backend reads (a legacy backend's message drops it).
fn with_log_level(req: &Request<'_>, params: &mut Value) {
    if req.caller.session.is_empty() {
        return;
    }
    let Some(level) = req.app.federation.log_levels.get(&req.caller.session) else {
        return;
    };
    with_meta(params, upstream::LOG_LEVEL, Value::from(level));
}

/// Sets `key` in the parameters' `_meta`.
fn with_meta(params: &mut Value, key: &str, value: Value) {
    if !params.is_object() {
        *params = json!({});
    }
    let meta = params
        .as_object_mut()
        .map(|p| p.entry("_meta").or_insert_with(|| json!({})));
    if let Some(Value::Object(meta)) = meta {
        meta.insert(key.into(), value);
    }
}

/// The client's `Mcp-Param-*` headers, for a 2026-07-28 backend: they mirror the call's
/// arguments, which the federated endpoint does not change, and intermediaries must pass them
/// on (SEP-2243); the backend checks them against its tool's schema.
fn param_headers(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| {
            name.as_str()
                .get(..HEADER_PARAM_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(HEADER_PARAM_PREFIX))
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The answer to the client: the backend's result, its resource URIs made federated, the
/// rule's obligations applied (after the cache: what is kept is the backend's own).
fn answer(
    req: &Request<'_>,
    id: Option<&Value>,
    service: &ServiceConfig,
    mut result: Value,
    mediator: Option<&Mediator>,
) -> Response<Body> {
    if let Some(Value::Array(contents)) = result.get_mut("contents") {
        for c in contents {
            if let Some(uri) = c.get("uri").and_then(Value::as_str) {
                let federated = federated_uri(service.federated_prefix(), uri);
                let shown = match req.endpoint.view {
                    Some(v) => v.shown_uri(&federated),
                    None => federated,
                };
                c["uri"] = Value::from(shown);
            }
        }
    }
    if let Some(mediator) = mediator {
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "result": result});
        mediator.apply(&mut msg);
        match msg.get_mut("result") {
            Some(mediated) => result = mediated.take(),
            None => return json_response(StatusCode::OK, &msg),
        }
    }
    result_response(req, id, result)
}

/// How the task ids a service's backend creates are shown to the caller: sealed for this
/// endpoint and principal with the service (only that caller, here, can use it).
fn task_sealer(req: &Request<'_>, service: &ServiceConfig) -> impl Fn(&str) -> Option<String> {
    let app = req.app.clone();
    let key = req.endpoint.key.clone();
    let principal = req.caller.identity.principal.clone();
    let service = service.name.clone();
    move |task_id| {
        seal(
            &app,
            &key,
            &principal,
            TASK,
            &tasks::join(&service, task_id),
        )
    }
}

/// The service and backend task id of a task id this endpoint handed out.
fn resolve_task<'a>(req: &Request<'a>, shown: &str) -> Option<(&'a ServiceConfig, String)> {
    let principal = &req.caller.identity.principal;
    let value = unseal(req.app, &req.endpoint.key, principal, TASK, shown)?;
    let (service, task_id) = tasks::split(&value)?;
    let service = req.app.config.services.iter().find(|s| s.name == service)?;
    Some((service, task_id))
}

/// The service and backend name of a tool or prompt name this endpoint (or view) shows.
async fn resolve_name<'a>(
    req: &Request<'a>,
    method: &str,
    shown: &str,
) -> Option<(&'a ServiceConfig, String)> {
    let app = req.app;
    let (listed, kind) = if method == "tools/call" {
        (Listed::Tool, Kind::Tools)
    } else {
        (Listed::Prompt, Kind::Prompts)
    };
    let federated = match req.endpoint.view {
        Some(v) => {
            let f = v.federated_name(shown);
            if !v.shows(listed, f) {
                return None;
            }
            f
        }
        None => shown,
    };
    let (prefix, rest) = split(federated, &app.config.federation.separator)?;
    let service = app
        .config
        .services
        .iter()
        .find(|s| s.federated_prefix() == prefix)?;
    if federated.chars().count() < CLIENT_NAME_LIMIT {
        return Some((service, rest.to_owned()));
    }
    // A name at the limit may have been cut: its service's list says what it stands for.
    let listing = lists::listing(app, service, &req.caller, kind).await.ok()?;
    let original = listing
        .names
        .original(federated)
        .map_or_else(|| rest.to_owned(), str::to_owned);
    Some((service, original))
}

/// The service and backend URI of a federated URI this endpoint (or view) shows.
fn resolve_uri<'a>(req: &Request<'a>, shown: &str) -> Option<(&'a ServiceConfig, String)> {
    let mut federated = shown.to_owned();
    if let Some(v) = req.endpoint.view {
        federated = v.federated_uri(shown);
        // Listed, or an expansion of a listed template (what precedes its first `{`).
        let chosen = v.resources.iter().any(|r| {
            *r == federated
                || r.split_once('{')
                    .is_some_and(|(head, _)| federated.starts_with(head))
        });
        if !chosen {
            return None;
        }
    }
    let (prefix, original) = original_uri(&federated)?;
    let service = req
        .app
        .config
        .services
        .iter()
        .find(|s| s.federated_prefix() == prefix)?;
    Some((service, original.to_owned()))
}

#[cfg(test)]
mod tests;
