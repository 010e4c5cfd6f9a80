//! Client-facing HTTP: route `/mcp/{service}`, authenticate, pick a tunnel (or the one a
//! session is pinned to), and relay the exchange on its own QUIC stream, streaming the
//! response back as it arrives.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use underpass_shared::frame::RequestHead;
use underpass_shared::jsonrpc::code;

use crate::assertion::AssertionClaims;
use crate::audit::AuditRecord;
use crate::auth::PROTECTED_RESOURCE_WELL_KNOWN;
use crate::config::EdgeConfig;
use crate::exchange::{exchange, response_stream};
use crate::filter::{self, ListFilter};
use crate::gate;
use crate::registry::{Registry, SessionLookup};

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";

pub struct State {
    pub config: Arc<EdgeConfig>,
    pub registry: Arc<Registry>,
    pub revocations: Arc<crate::revocation::Revocations>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub policy: Arc<crate::policy::PolicyStore>,
    pub limiter: crate::policy::RateLimiter,
    pub auditor: Option<crate::audit::Auditor>,
    pub signer: crate::assertion::AssertionSigner,
    pub bridges: crate::legacy_sse::Bridges,
    pub limits: crate::limits::Limits,
}

/// What the edge knows of the client connection before reading a request.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// `client:<name>` when the client presented a valid client certificate.
    pub cert_principal: Option<String>,
    /// Serial of that certificate: re-checked per request, so a revocation bites at once.
    pub cert_serial: Option<String>,
    /// The client's address as the edge's socket saw it: recorded in the audit log, and the
    /// source of `X-Forwarded-For`.
    pub peer: Option<std::net::SocketAddr>,
}

impl ConnInfo {
    /// What a verified client certificate says (its chain and role passed the TLS verifier).
    pub fn from_client_cert(leaf: &[u8]) -> ConnInfo {
        ConnInfo {
            cert_principal: underpass_shared::identity::SpiffeId::from_certificate_der(leaf)
                .ok()
                .map(|id| format!("client:{}", id.name)),
            cert_serial: underpass_pki::revocation::certificate_serial(leaf).ok(),
            peer: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Service(&'a str),
    LegacySse(&'a str),
    Federated,
    NotFound,
}

pub fn route(path: &str) -> Route<'_> {
    match path.strip_prefix("/mcp") {
        Some("" | "/") => Route::Federated,
        Some(rest) => {
            let Some(rest) = rest.strip_prefix('/') else {
                return Route::NotFound;
            };
            match rest.split_once('/') {
                None if !rest.is_empty() => Route::Service(rest),
                Some((svc, "sse")) if !svc.is_empty() => Route::LegacySse(svc),
                _ => Route::NotFound,
            }
        }
        None => Route::NotFound,
    }
}

pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    // Authenticate from the headers, then read the (bounded) body before any other
    // decision: answering early and leaving it unread makes HTTP/2 reset the stream, which
    // some clients report as a transport error. Refusals drain the body without keeping it.
    let (mut parts, mut body) = req.into_parts();
    // Every answer gets an audit record, refusals included.
    let mut audit = crate::audited::request_record(&conn, &parts);
    let held = match crate::precheck::before_body(&state, &conn, &mut parts, &mut body, &mut audit)
        .await
    {
        Ok(held) => held,
        Err(refusal) => return Ok(audited(&state, refusal, audit, started)),
    };
    let body = if crate::precheck::reads_body(&parts) {
        match crate::precheck::read_body(&state, &mut body).await {
            Ok(body) => body,
            Err(refusal) => return Ok(held.attach(audited(&state, refusal, audit, started))),
        }
    } else {
        crate::precheck::drain(&mut body).await;
        Bytes::new()
    };
    audit.bytes_in = Some(body.len() as u64);
    if let Some(rest) = parts.uri.path().strip_prefix(PROTECTED_RESOURCE_WELL_KNOWN) {
        let resp = protected_resource_metadata(&state, &parts, rest);
        return Ok(audited(&state, resp, audit, started));
    }
    let resp = match route(parts.uri.path()) {
        Route::Service(service) => {
            audit.session = parts
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match crate::audited::refuse_unaudited(&state, &mut audit) {
                Some(refusal) => refusal,
                None => relay(&state, &conn, service, &parts, body, &mut audit).await,
            }
        }
        Route::LegacySse(service) => match crate::audited::refuse_unaudited(&state, &mut audit) {
            Some(refusal) => refusal,
            None => match parts.method {
                Method::GET => {
                    crate::legacy_sse::open(&state, &conn, service, &parts, &mut audit).await
                }
                Method::POST => {
                    crate::legacy_sse::post(&state, &conn, service, &parts, body, &mut audit).await
                }
                _ => error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    code::INVALID_REQUEST,
                    "the 2024-11-05 SSE endpoint takes GET and POST",
                ),
            },
        },
        Route::Federated => error_response(
            StatusCode::NOT_IMPLEMENTED,
            code::METHOD_NOT_FOUND,
            "the federated endpoint /mcp is not available in this build; use /mcp/{service}",
        ),
        Route::NotFound => error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "no such endpoint; MCP services are served at /mcp/{service}",
        ),
    };
    Ok(held.attach(audited(&state, resp, audit, started)))
}

async fn relay(
    state: &State,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut AuditRecord,
) -> Response<Body> {
    let config = &state.config;
    if let Err(refusal) = gate::check_host_origin(state, parts) {
        audit.outcome = underpass_audit::Outcome::Forbidden;
        return *refusal;
    }
    if !config.has_service(service) {
        return error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            &format!("unknown service {service:?}: this edge serves no such MCP service"),
        );
    }
    if let Some(refusal) = method_not_allowed(&parts.method) {
        return refusal; // before policy runs, so that its record carries no decision
    }
    if let Err(refusal) = gate::check_media(&parts.method, &parts.headers) {
        audit.outcome = underpass_audit::Outcome::BadRequest;
        return *refusal;
    }
    let admitted = match gate::admit(state, conn, service, parts, &body, audit) {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    let principal = admitted.identity.principal.clone();
    let mut session_slot = match crate::session_caps::reserve(state, parts, &admitted, audit) {
        Ok(slot) => slot,
        Err(refusal) => return *refusal,
    };

    let session_id = match parts.headers.get(SESSION_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(id)) => Some(id.to_owned()),
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                "Mcp-Session-Id is not visible ASCII",
            )
        }
    };
    let tunnel = match &session_id {
        Some(id) => match state.registry.session_tunnel(service, id, &principal) {
            Ok(t) => t,
            Err(why) => {
                let msg = match why {
                    SessionLookup::TunnelGone => "session ended: its connector went away; initialize a new session",
                    SessionLookup::Unknown | SessionLookup::OtherPrincipal => {
                        "session not found; initialize a new session"
                    }
                };
                return error_response(StatusCode::NOT_FOUND, code::NOT_FOUND, msg);
            }
        },
        None => match state.registry.pick(service) {
            Some(t) => t,
            None => {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::UNAVAILABLE,
                    &format!("service {service:?} is known but no connector serving it is online; retry later"),
                )
            }
        },
    };

    let trace_id = audit.trace_id.clone().unwrap_or_default();
    let request_id = audit.request_id.clone().unwrap_or_else(new_request_id);
    let assertion = state
        .signer
        .reusable(&AssertionClaims {
            service,
            principal: &principal,
            groups: &admitted.identity.groups,
            session_id: session_id.as_deref(),
            trace_id: None,
        })
        .map_err(|e| tracing::error!("cannot sign identity assertion: {e}"))
        .ok();
    let head = RequestHead {
        service: service.to_owned(),
        method: parts.method.as_str().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: upstream_headers(state, conn, parts),
        principal: principal.clone(),
        trace_id,
        request_id,
        assertion,
    };

    let (resp_head, recv) = match exchange(&tunnel.conn, &head, body).await {
        Ok(r) => r,
        Err(e) => {
            audit.outcome = underpass_audit::Outcome::TunnelError;
            let detail = format!("exchange with connector {:?} failed: {e}", tunnel.connector);
            return error_response(
                StatusCode::BAD_GATEWAY,
                code::UPSTREAM_FAILED,
                &incident("the tunnel to the connector failed", service, &detail),
            );
        }
    };

    let status = StatusCode::from_u16(resp_head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_server_error() {
        audit.outcome = underpass_audit::Outcome::BackendError;
    } else if status.is_client_error() {
        audit.outcome = underpass_audit::Outcome::Error;
    }
    let mut builder = Response::builder().status(status);
    let mut is_sse = false;
    if let Some(h) = builder.headers_mut() {
        for (name, value) in resp_head.headers {
            let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::from_bytes(&value))
            else {
                continue;
            };
            if is_hop_by_hop(&name) || name == http::header::SET_COOKIE {
                continue;
            }
            if name == http::header::CONTENT_TYPE
                && value.as_bytes().starts_with(b"text/event-stream")
            {
                is_sse = true;
            }
            h.append(name, value);
        }
        if is_sse {
            // Tell nginx-style proxies in front of us not to buffer the stream.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
        }
        if status.is_success() {
            if let (None, Some(id)) = (
                &session_id,
                h.get(SESSION_HEADER).and_then(|v| v.to_str().ok()),
            ) {
                state.registry.open_session(
                    service,
                    id,
                    tunnel.id,
                    &principal,
                    session_slot.take(),
                );
                audit.session = Some(id.to_owned());
            }
        }
    }
    if let (Some(id), true) = (
        &session_id,
        parts.method == Method::DELETE && status.is_success(),
    ) {
        state.registry.close_session(service, id);
    }
    let mut stream = response_stream(recv, is_sse);
    if status.is_success() && admitted.calls.iter().any(|c| c.method == "server/discover") {
        // Small and rare: read it whole to learn the versions this service supports.
        match filter::collect_json(stream).await {
            Ok(raw) => {
                if let Some(v) = discovered_versions(&raw, is_sse) {
                    state.registry.learn_versions(service, v);
                }
                stream =
                    futures_util::stream::once(async move { Ok(Frame::data(Bytes::from(raw))) })
                        .boxed();
            }
            Err(e) => {
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    code::UPSTREAM_FAILED,
                    &incident("the discover response was unreadable", service, &e),
                )
            }
        }
    }
    let principals = admitted.identity.principals();
    let list_filter = ListFilter::for_request(
        &admitted.calls,
        admitted.policy.clone(),
        state.policy.clone(),
        principals,
        service,
    )
    .filter(|f| status.is_success() && (is_sse || f.has_lists()));
    let body = match (list_filter, is_sse) {
        (None, _) => UnsyncBoxBody::new(StreamBody::new(stream)),
        (Some(f), true) => UnsyncBoxBody::new(StreamBody::new(filter::filter_sse(stream, f))),
        (Some(f), false) => match filter::collect_json(stream).await {
            Ok(raw) => full_body(f.filter_json(&raw).unwrap_or_else(|| Bytes::from(raw))),
            Err(e) => {
                audit.outcome = underpass_audit::Outcome::BackendError;
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    code::UPSTREAM_FAILED,
                    &incident("the list response was unreadable", service, &e),
                );
            }
        },
    };
    builder.body(body).unwrap_or_else(|e| {
        error_response(
            StatusCode::BAD_GATEWAY,
            code::UPSTREAM_FAILED,
            &incident("the backend's response head was unusable", service, &e),
        )
    })
}

/// Logs `detail` (which may name connectors, backends and addresses) under a fresh reference
/// and returns what the client reads: `what` and that reference, nothing of the topology.
pub(crate) fn incident(what: &str, service: &str, detail: &dyn std::fmt::Display) -> String {
    let reference = underpass_shared::incident::new_ref();
    tracing::warn!(service, %reference, "{what}: {detail}");
    format!("{what} (ref {reference})")
}

/// 405 for a method an MCP endpoint does not take.
fn method_not_allowed(method: &Method) -> Option<Response<Body>> {
    if [Method::GET, Method::POST, Method::DELETE].contains(method) {
        return None;
    }
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        code::INVALID_REQUEST,
        "MCP endpoints accept GET, POST and DELETE",
    );
    resp.headers_mut().insert(
        http::header::ALLOW,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    Some(resp)
}

/// The response, writing `audit` when its body ends (when an audit log is configured).
pub(crate) fn audited(
    state: &State,
    resp: Response<Body>,
    audit: AuditRecord,
    started: Instant,
) -> Response<Body> {
    match &state.auditor {
        Some(auditor) => crate::audited::wrap(resp, audit, started, auditor.clone()),
        None => resp,
    }
}

/// `result.supportedVersions` of a `server/discover` response (JSON or SSE body).
fn discovered_versions(raw: &[u8], is_sse: bool) -> Option<Vec<String>> {
    let messages: Vec<serde_json::Value> = if is_sse {
        let mut parser = underpass_shared::mcp::SseParser::default();
        let mut events = parser.feed(raw).ok()?;
        events.extend(parser.feed(b"\n\n").ok()?); // dispatch an unterminated last event
        events
            .iter()
            .filter_map(|e| serde_json::from_str(e.data()?).ok())
            .collect()
    } else {
        vec![serde_json::from_slice(raw).ok()?]
    };
    messages.iter().find_map(|m| {
        let list = m.get("result")?.get("supportedVersions")?.as_array()?;
        Some(
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    use http::header::*;
    [
        CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        TE,
        TRAILER,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        CONTENT_LENGTH,
        HOST,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Forwarding headers a client could forge to lie to a backend about where a request came
/// from: they stop at the edge, which sets its own (see [`forwarding_headers`]).
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
];

/// The headers a request carries to the backend: the client's forwardable ones, and the
/// forwarding headers as the edge observed the request.
pub(crate) fn upstream_headers(
    state: &State,
    conn: &ConnInfo,
    parts: &http::request::Parts,
) -> Vec<(String, Vec<u8>)> {
    let mut headers = forwardable_request_headers(&parts.headers);
    headers.extend(forwarding_headers(
        conn,
        parts,
        !state.config.clients.insecure_plaintext,
    ));
    headers
}

/// `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded` (RFC 7239) from what the edge saw:
/// the peer address of the client's connection, whether it used TLS, and the (already
/// validated) authority it asked for. Whatever the client sent under these names is dropped.
pub fn forwarding_headers(
    conn: &ConnInfo,
    parts: &http::request::Parts,
    tls: bool,
) -> Vec<(String, Vec<u8>)> {
    let proto = if tls { "https" } else { "http" };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            let h = parts.headers.get(http::header::HOST)?.to_str().ok()?;
            Some(h.to_owned())
        })
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
    let mut out = Vec::new();
    let mut forwarded = Vec::new();
    if let Some(remote) = conn.peer {
        let ip = remote.ip().to_canonical();
        out.push(("x-forwarded-for".to_owned(), ip.to_string().into_bytes()));
        forwarded.push(match ip {
            std::net::IpAddr::V4(v4) => format!("for={v4}"),
            std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        });
    }
    out.push(("x-forwarded-proto".to_owned(), proto.as_bytes().to_vec()));
    forwarded.push(format!("proto={proto}"));
    if let Some(host) = host {
        forwarded.push(format!("host=\"{host}\""));
        out.push(("x-forwarded-host".to_owned(), host.into_bytes()));
    }
    out.push(("forwarded".to_owned(), forwarded.join(";").into_bytes()));
    out
}

/// The headers that may cross the tunnel. Credentials stop here (no token passthrough),
/// clients cannot inject the `x-underpass-*` headers the connector adds for backends, nor
/// forwarding headers ([`FORWARDING_HEADERS`]).
pub fn forwardable_request_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let connection_listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            !is_hop_by_hop(name)
                && *name != http::header::AUTHORIZATION
                && *name != http::header::COOKIE
                && !name.as_str().starts_with("x-underpass-")
                && !FORWARDING_HEADERS.contains(&name.as_str())
                && !connection_listed.iter().any(|c| c == name.as_str())
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// A fresh request id (128 random bits, hex).
pub(crate) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The W3C trace id of the request's `traceparent`, or a fresh one.
pub(crate) fn trace_id(headers: &HeaderMap) -> String {
    let from_header = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    match from_header {
        Some(id) => id.to_ascii_lowercase(),
        None => format!("{:032x}", rand::random::<u128>()),
    }
}

/// A complete (non-streamed) body.
pub fn full_body(text: impl Into<Bytes>) -> Body {
    UnsyncBoxBody::new(Full::new(text.into()).map_err(|never| match never {}))
}

/// RFC 9728 protected resource metadata, for `/.well-known/oauth-protected-resource` and its
/// per-service form `/.well-known/oauth-protected-resource/mcp/{service}`.
fn protected_resource_metadata(
    state: &State,
    parts: &http::request::Parts,
    rest: &str,
) -> Response<Body> {
    // Host only, no Origin check: browser-based clients fetch this document cross-origin,
    // and it holds nothing a rebinding attack could steal.
    let authority = match gate::check_host(state, parts) {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    let service = match route(rest) {
        Route::Service(s) if state.config.has_service(s) => Some(s),
        Route::Federated => None,
        _ if rest.is_empty() => None,
        _ => {
            return error_response(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "no such protected resource",
            )
        }
    };
    let path = service
        .map(|s| format!("/mcp/{s}"))
        .unwrap_or_else(|| "/mcp".into());
    let metadata_url = gate::resource_metadata_url(state, &authority, &path);
    let resource = metadata_url.replacen(PROTECTED_RESOURCE_WELL_KNOWN, "", 1);
    let body = state.auth.protected_resource_metadata(&resource);
    let mut resp = Response::new(full_body(body.to_string()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON-RPC error body with `id: null`, as MCP clients expect from a transport-level failure.
pub fn error_response(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    let mut resp = Response::new(full_body(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/mcp/everything"), Route::Service("everything"));
        assert_eq!(route("/mcp/everything/sse"), Route::LegacySse("everything"));
        assert_eq!(route("/mcp"), Route::Federated);
        assert_eq!(route("/mcp/"), Route::Federated);
        for p in [
            "/",
            "/mcpx",
            "/mcp//sse",
            "/mcp/a/b",
            "/mcp/a/sse/x",
            "/other",
        ] {
            assert_eq!(route(p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn credentials_and_hop_headers_stop_at_the_edge() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("cookie", HeaderValue::from_static("sid=1"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-drop-me"),
        );
        h.insert("x-drop-me", HeaderValue::from_static("1"));
        h.insert("x-underpass-principal", HeaderValue::from_static("admin"));
        h.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        h.insert(
            "accept",
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let names: Vec<String> = forwardable_request_headers(&h)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["mcp-protocol-version", "accept"]);
    }

    #[test]
    fn client_forwarding_headers_are_replaced_by_what_the_edge_saw() {
        let req = Request::builder()
            .uri("/mcp/svc")
            .header("host", "mcp.example.com:8443")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-host", "evil.example.com")
            .header("x-forwarded-proto", "gopher")
            .header("x-forwarded-port", "1")
            .header("forwarded", "for=6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .header("accept", "application/json")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let names: Vec<String> = forwardable_request_headers(&parts.headers)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["accept"], "client values stop at the edge");
        let conn = ConnInfo {
            peer: Some("[::ffff:192.0.2.7]:50000".parse().unwrap()),
            ..ConnInfo::default()
        };
        let set: Vec<(String, String)> = forwarding_headers(&conn, &parts, true)
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
            .collect();
        let get = |n: &str| set.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(get("x-forwarded-proto"), Some("https"));
        assert_eq!(get("x-forwarded-host"), Some("mcp.example.com:8443"));
        assert_eq!(
            get("forwarded"),
            Some("for=192.0.2.7;proto=https;host=\"mcp.example.com:8443\"")
        );
        assert_eq!(get("x-real-ip"), None);
        let v6 = ConnInfo {
            peer: Some("[2001:db8::1]:443".parse().unwrap()),
            ..ConnInfo::default()
        };
        let set = forwarding_headers(&v6, &parts, false);
        let fwd = set.iter().find(|(k, _)| k == "forwarded").unwrap();
        assert!(
            fwd.1.starts_with(b"for=\"[2001:db8::1]\";proto=http"),
            "{fwd:?}"
        );
    }

    #[test]
    fn versions_from_discover_answers() {
        let json = br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28","2025-11-25"]}}"#;
        let want = Some(vec!["2026-07-28".to_owned(), "2025-11-25".to_owned()]);
        assert_eq!(discovered_versions(json, false), want);
        let sse = b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{\"supportedVersions\":[\"2026-07-28\",\"2025-11-25\"]}}\n\n";
        assert_eq!(discovered_versions(sse, true), want);
        let unterminated = b": keep-alive\n\ndata: {\"id\":1,\"result\":{\"supportedVersions\":[\"2026-07-28\",\"2025-11-25\"]}}";
        assert_eq!(discovered_versions(unterminated, true), want);
        assert_eq!(discovered_versions(b"not json", false), None);
    }

    #[test]
    fn trace_ids() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(trace_id(&h), "4bf92f3577b34da6a3ce929d0e0e4736");
        let fresh = trace_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 32);
    }
}
