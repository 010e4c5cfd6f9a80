//! A call on the federated endpoint (`tools/call`, `prompts/get`, `resources/read`,
//! `completion/complete`, `resources/(un)subscribe`), routed to the service its federated name
//! or URI names: the message is given back its backend name (and `Mcp-Name` with it), then
//! admitted exactly as on `/mcp/{service}` (policy, rate limits and the audit record see the
//! real service and tool), then sent in the backend's era. `resources/read` results are
//! cached as their backend says.

use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;
use underpass_audit::Outcome;
use underpass_mcp::federation::caching;
use underpass_mcp::federation::names::{split, CLIENT_NAME_LIMIT};
use underpass_mcp::federation::uris::{federated_uri, original_uri};
use underpass_mcp::jsonrpc::code;
use underpass_mcp::{self as mcp, HEADER_NAME};

use crate::config::ServiceConfig;
use crate::federation::cache::Lookup;
use crate::federation::config::Listed;
use crate::federation::endpoint::{rpc_error, stamp, Request};
use crate::federation::lists::{self, Kind};
use crate::federation::upstream::{self, header_value, UpstreamError};
use crate::http::audited::PendingRecord;
use crate::http::body::Body;
use crate::http::headers::SESSION_HEADER;
use crate::http::respond::{json_response, Refusal};
use crate::mcp::admission;

/// Where a method names its target, and whether that is a URI.
fn target_of(method: &str, message: &Value) -> Option<(&'static str, bool)> {
    Some(match method {
        "tools/call" | "prompts/get" => ("/params/name", false),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => ("/params/uri", true),
        "completion/complete" => match message.pointer("/params/ref/type")?.as_str()? {
            "ref/prompt" => ("/params/ref/name", false),
            "ref/resource" => ("/params/ref/uri", true),
            _ => return None,
        },
        _ => return None,
    })
}

/// Routes one call (see the module documentation).
pub async fn route(
    req: &Request<'_>,
    message: mcp::Message,
    _body: Bytes,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    let app = req.app;
    let id = message.id.clone();
    let method = message.method.clone().unwrap_or_default();
    let mut value = message.value;
    let unknown = |what: &str| {
        Box::new(rpc_error(
            id.as_ref(),
            code::INVALID_PARAMS,
            &format!("unknown {what} on this endpoint: list again to see what it serves"),
        ))
    };
    let Some((pointer, is_uri)) = target_of(&method, &value) else {
        return Err(unknown("target"));
    };
    let Some(shown) = value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(unknown("target"));
    };
    let resolved = if is_uri {
        resolve_uri(req, &shown)
    } else {
        resolve_name(req, &method, &shown).await
    };
    let Some((service, original)) = resolved else {
        audit.outcome = Outcome::Error;
        return Err(unknown(if is_uri { "resource" } else { "name" }));
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
    admission::admit(app, req.conn, &service.name, &parts, &body, audit)?;

    let params = value
        .get_mut("params")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let ctx = lists::context(&req.caller.identity);
    let cacheable = method == "resources/read" && caching::request_may_be_cached(Some(&params));
    if cacheable {
        let cached = app
            .federation
            .reads
            .lock()
            .map(|mut c| c.get(&service.name, &method, &original, &ctx, Instant::now()))
            .unwrap_or(Lookup::Miss);
        if let Lookup::Hit(result) = cached {
            app.federation.stats.hit(true);
            return Ok(answer(req, id.as_ref(), service, (*result).clone()));
        }
        app.federation.stats.hit(false);
    }
    match upstream::request(app, &service.name, &req.caller, &method, params).await {
        Ok(result) => {
            if cacheable && caching::result_may_be_cached(&result) {
                let d = caching::directives(&result);
                if let Ok(mut cache) = app.federation.reads.lock() {
                    let bytes = result.to_string().len();
                    cache.put(
                        &service.name,
                        &method,
                        &original,
                        &ctx,
                        d.scope,
                        std::sync::Arc::new(result.clone()),
                        bytes,
                        d.ttl,
                        Instant::now(),
                    );
                }
            }
            Ok(answer(req, id.as_ref(), service, result))
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

/// The answer to the client: the backend's result, its resource URIs made federated.
fn answer(
    req: &Request<'_>,
    id: Option<&Value>,
    service: &ServiceConfig,
    mut result: Value,
) -> Response<Body> {
    if let Some(Value::Array(contents)) = result.get_mut("contents") {
        for c in contents {
            if let Some(uri) = c.get("uri").and_then(Value::as_str) {
                let federated = federated_uri(service.federated_prefix(), uri);
                c["uri"] = Value::from(federated);
            }
        }
    }
    json_response(
        StatusCode::OK,
        &serde_json::json!({"jsonrpc": "2.0", "id": id, "result": stamp(req, result)}),
    )
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
    if let Some(v) = req.endpoint.view {
        // Listed, or an expansion of a listed template (what precedes its first `{`).
        let chosen = v.resources.iter().any(|r| {
            r == shown
                || r.split_once('{')
                    .is_some_and(|(head, _)| shown.starts_with(head))
        });
        if !chosen {
            return None;
        }
    }
    let (prefix, original) = original_uri(shown)?;
    let service = req
        .app
        .config
        .services
        .iter()
        .find(|s| s.federated_prefix() == prefix)?;
    Some((service, original.to_owned()))
}
