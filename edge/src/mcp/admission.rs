//! Admission of one client request, before anything crosses a tunnel: Host and Origin checks
//! (DNS rebinding), authentication, JSON-RPC inspection, policy and rate limits.
//!
//! Every refusal is answered here, at the edge: a denied call never reaches a connector.

use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use underpass_shared::mcp::{self, Kind};

use crate::audit::{AuditRecord, Decision as AuditDecision};
use crate::auth::{Identity, PROTECTED_RESOURCE_WELL_KNOWN};
use crate::relay::{error_response, Body, ConnInfo, State};

use underpass_shared::jsonrpc::code;
pub use underpass_shared::jsonrpc::code::{POLICY_DENIED, RATE_LIMITED};

pub use crate::judge::{target_name, Call};

/// A request the edge let through.
pub struct Admitted {
    pub identity: Identity,
    pub calls: Vec<Call>,
    /// The policy that decided: list filtering of the response uses the same one, even if
    /// a reload lands meanwhile.
    pub policy: std::sync::Arc<crate::policy::Policy>,
}

/// A finished response refusing the request (boxed: responses are large).
pub type Refusal = Box<http::Response<Body>>;

/// Host and Origin validation against DNS rebinding: [`check_host`], then a browser `Origin`
/// must be the edge itself or explicitly allowed.
pub fn check_host_origin(state: &State, parts: &http::request::Parts) -> Result<(), Refusal> {
    let authority = check_host(state, parts)?;
    let Some(origin) = parts.headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
    let same_origin =
        origin == format!("https://{authority}") || origin == format!("http://{authority}");
    let listed = state
        .config
        .clients
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&origin) || o == "*");
    if !same_origin && !listed {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            &format!("Origin {origin:?} is not allowed (see [clients] allowed_origins)"),
        )));
    }
    Ok(())
}

/// The authority (host and port) the client addressed, lowercased: `:authority` on HTTP/2 and
/// the target of an absolute-form HTTP/1.1 request (both land in the request URI), else
/// `Host`. A request naming two different authorities is malformed (RFC 9113 §8.3.1), and one
/// naming none is refused: every check below and every URL the edge echoes depend on it.
pub fn request_authority(parts: &http::request::Parts) -> Result<String, Refusal> {
    let bad = |message: &str| {
        Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            message,
        ))
    };
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("more than one Host header"));
    }
    let host = match host.map(|h| h.to_str()) {
        Some(Ok(h)) => Some(h.trim().to_ascii_lowercase()),
        Some(Err(_)) => return Err(bad("the Host header is not visible ASCII")),
        None => None,
    };
    let target = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase());
    match (target, host) {
        (Some(t), Some(h)) if t != h => Err(bad(
            "the request names two different hosts (:authority or target vs Host)",
        )),
        (Some(a), _) | (None, Some(a)) if !a.is_empty() => Ok(a),
        _ => Err(bad(
            "the request names no host (send Host, or :authority over HTTP/2)",
        )),
    }
}

/// The host check against DNS rebinding, on every protocol: a loopback listener answers only
/// to loopback names; with `allowed_hosts`, only those names (and loopback names on a loopback
/// listener). Returns the request's authority (see [`request_authority`]).
pub fn check_host(state: &State, parts: &http::request::Parts) -> Result<String, Refusal> {
    let clients = &state.config.clients;
    let authority = request_authority(parts)?;
    let name = host_name(&authority);
    let allowed = if clients.allowed_hosts.is_empty() {
        !clients.listen.ip().is_loopback() || is_loopback_name(name)
    } else {
        clients
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
            || (clients.listen.ip().is_loopback() && is_loopback_name(name))
    };
    if !allowed {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            &format!("Host {authority:?} is not served here (see [clients] allowed_hosts)"),
        )));
    }
    Ok(authority)
}

fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL of the RFC 9728 metadata for `path`, from `[auth] resource`, else from the
/// authority the request addressed (port included), which the caller has checked with
/// [`check_host`]: the edge never echoes a host it does not serve.
pub fn resource_metadata_url(state: &State, authority: &str, path: &str) -> String {
    if let Some(url) = state.auth.resource_metadata_url(path) {
        return url;
    }
    let scheme = if state.config.clients.insecure_plaintext {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{authority}{PROTECTED_RESOURCE_WELL_KNOWN}{path}")
}

/// Who is calling, from the connection and the headers alone: 401 (with the
/// `WWW-Authenticate` challenge) for a revoked client certificate or bad credentials.
pub fn authenticate(
    state: &State,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    audit: &mut AuditRecord,
) -> Result<Identity, Refusal> {
    let revoked = conn
        .cert_serial
        .as_deref()
        .is_some_and(|s| state.revocations.is_revoked_serial(s));
    if revoked {
        audit.outcome = underpass_audit::Outcome::Unauthenticated;
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "client certificate revoked",
        )));
    }
    let identity = match state.auth.authenticate(
        conn.cert_principal.as_deref(),
        &parts.headers,
        parts.uri.query(),
    ) {
        Ok(id) => id,
        Err(e) => {
            audit.outcome = underpass_audit::Outcome::Unauthenticated;
            let path = format!("/mcp/{service}");
            let mut resp = error_response(e.status(), code::UNAUTHENTICATED, &e.message());
            // The caller checked the host (check_host_origin) before admission.
            let authority = request_authority(parts).unwrap_or_default();
            let challenge = state
                .auth
                .challenge(&e, &resource_metadata_url(state, &authority, &path));
            if let Ok(v) = http::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
            }
            return Err(Box::new(resp));
        }
    };
    Ok(identity)
}

/// Authentication, inspection, policy and rate limit, filling in `audit` as it goes.
pub fn admit(
    state: &State,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: &[u8],
    audit: &mut AuditRecord,
) -> Result<Admitted, Refusal> {
    // Authenticated before the body was read (`crate::precheck`), or now.
    let identity = match parts.extensions.get::<Identity>() {
        Some(identity) => identity.clone(),
        None => authenticate(state, conn, service, parts, audit)?,
    };
    audit.principal = Some(identity.principal.clone());
    audit.auth_method = Some(identity.method);

    let mut batch = None;
    let calls = if parts.method == Method::POST {
        // Strict parse: duplicate keys are refused, so the policy and the backend can never
        // read different values from the same body.
        let inspected = match mcp::parse(body) {
            Ok(i) => i,
            Err(e) => {
                audit.outcome = underpass_audit::Outcome::BadRequest;
                audit.jsonrpc_error = Some(e.code());
                return Err(Box::new(json_response(
                    StatusCode::BAD_REQUEST,
                    &e.to_jsonrpc(),
                )));
            }
        };
        let learned = state.registry.versions(service);
        check_protocol(&parts.headers, &inspected, learned.as_deref(), audit)?;
        if let Some(id) = inspected.repeated_request_id() {
            audit.outcome = underpass_audit::Outcome::BadRequest;
            audit.jsonrpc_error = Some(mcp::INVALID_REQUEST);
            let message = format!(
                "request id {id} is used more than once in this batch: give each request its own id"
            );
            let e = mcp::jsonrpc_error(Some(id), mcp::INVALID_REQUEST, &message, None);
            return Err(Box::new(json_response(StatusCode::BAD_REQUEST, &e)));
        }
        batch = inspected
            .batch
            .then(|| u32::try_from(inspected.messages.len()).unwrap_or(u32::MAX));
        calls_of(inspected)
    } else {
        Vec::new()
    };
    if let Some(first) = calls.first() {
        audit.mcp_method = Some(first.method.clone());
        audit.target = first.target.as_ref().map(|t| target_name(t).to_owned());
        audit.arguments = state
            .auditor
            .as_ref()
            .and_then(|a| a.arguments(first.arguments.as_ref()));
    }

    // Every message is judged (requests and notifications, every target each names); one
    // refusal refuses the request, and each message gets an audit line of its own.
    let principals = identity.principals();
    let policy = state.policy.get();
    let judged = crate::judge::judge(
        &policy,
        &state.limiter,
        &identity.principal,
        &principals,
        service,
        &calls,
        Instant::now(),
    );
    if let Some(auditor) = &state.auditor {
        audit.batch_size = batch;
        audit.calls = crate::judge::audit_entries(&calls, &judged, |a| auditor.arguments(a));
    }
    audit.rule = Some(judged.rule());
    match judged.refusal {
        None => {}
        Some(crate::judge::Refusal::Denied { index, rule }) => {
            audit.decision = Some(AuditDecision::Deny);
            audit.outcome = underpass_audit::Outcome::Denied;
            audit.jsonrpc_error = Some(POLICY_DENIED);
            tracing::info!(principal = %identity.principal, service, rule = %rule, "denied by policy");
            return Err(Box::new(jsonrpc_refusal(
                StatusCode::FORBIDDEN,
                calls.get(index).and_then(|c| c.id.as_ref()),
                POLICY_DENIED,
                "denied by the gateway's policy",
                None,
            )));
        }
        Some(crate::judge::Refusal::RateLimited {
            index, rate, retry, ..
        }) => {
            let secs = retry.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
            audit.decision = Some(AuditDecision::Deny);
            audit.outcome = underpass_audit::Outcome::RateLimited;
            audit.jsonrpc_error = Some(RATE_LIMITED);
            let mut resp = jsonrpc_refusal(
                StatusCode::TOO_MANY_REQUESTS,
                calls.get(index).and_then(|c| c.id.as_ref()),
                RATE_LIMITED,
                &format!("rate limit of {rate} exceeded; retry in {secs} s"),
                Some(serde_json::json!({ "retryAfterSeconds": secs })),
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            return Err(Box::new(resp));
        }
    }
    audit.decision = Some(AuditDecision::Allow);
    Ok(Admitted {
        identity,
        calls,
        policy,
    })
}

/// Media types: a POST carries JSON and accepts JSON or an event stream; a GET accepts an
/// event stream (415 / 406 otherwise).
pub fn check_media(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    let accept = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let accepts = |t: &str| accept.is_empty() || accept.contains(t) || accept.contains("*/*");
    if *method == Method::POST {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/json") {
            return Err(Box::new(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                "MCP requests are JSON: send Content-Type: application/json",
            )));
        }
        if !accepts("application/json") && !accepts("text/event-stream") {
            return Err(Box::new(error_response(
                StatusCode::NOT_ACCEPTABLE,
                code::INVALID_REQUEST,
                "Accept must include application/json and text/event-stream",
            )));
        }
    } else if *method == Method::GET && !accepts("text/event-stream") {
        return Err(Box::new(error_response(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "a GET opens an event stream: Accept must include text/event-stream",
        )));
    }
    Ok(())
}

/// `MCP-Protocol-Version` must name a version the edge speaks; in the 2026-07-28 era the
/// `Mcp-Method` / `Mcp-Name` headers and the body's `_meta` version must agree with the body.
///
/// Which versions a service supports is its backend's to say: once a `server/discover` answer
/// has passed through, the edge refuses stateless-era versions it did not list itself (-32022
/// with that list); legacy versions, and everything before that, the backend answers.
fn check_protocol(
    headers: &HeaderMap,
    parsed: &mcp::Inspected,
    learned: Option<&[String]>,
    audit: &mut AuditRecord,
) -> Result<(), Refusal> {
    let version = headers
        .get(mcp::HEADER_PROTOCOL_VERSION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").trim());
    // Without the header, 2025-11-25 says to assume 2025-03-26: a legacy request.
    let Some(version) = version else {
        return Ok(());
    };
    let id = parsed.messages.first().and_then(|m| m.id.as_ref());
    let refuse = |audit: &mut AuditRecord, status: u16, code: i64, body: Value| {
        audit.outcome = underpass_audit::Outcome::BadRequest;
        audit.jsonrpc_error = Some(code);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Box::new(json_response(status, &body))
    };
    // A learned list only speaks for the stateless era: a legacy version is negotiated per
    // session by `initialize`, and a backend that agreed to it there serves it, whatever its
    // `server/discover` answer lists.
    if let Some(supported) = learned.filter(|_| mcp::Era::of(version) == mcp::Era::Modern) {
        let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
        if let Err(e) = mcp::check_protocol_version(Some(version), &supported) {
            return Err(refuse(audit, e.http_status(), e.code(), e.to_jsonrpc(id)));
        }
    }
    let Ok(era) = mcp::check_protocol_version(Some(version), mcp::SUPPORTED_VERSIONS) else {
        return Ok(()); // a version the edge does not know: the backend's to refuse
    };
    if era != mcp::Era::Modern {
        return Ok(());
    }
    if parsed.batch {
        let e = mcp::jsonrpc_error(
            None,
            mcp::INVALID_REQUEST,
            "batches do not exist in 2026-07-28: send one message per request",
            None,
        );
        return Err(refuse(audit, 400, mcp::INVALID_REQUEST, e));
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    for msg in &parsed.messages {
        let checked = mcp::check_meta_version(Some(version), msg)
            .and_then(|()| mcp::validate_modern_headers(&pairs, msg));
        if let Err(e) = checked {
            return Err(refuse(
                audit,
                e.http_status(),
                e.code(),
                e.to_jsonrpc(msg.id.as_ref()),
            ));
        }
    }
    Ok(())
}

fn calls_of(inspected: mcp::Inspected) -> Vec<Call> {
    inspected
        .messages
        .into_iter()
        .map(|m| Call {
            is_request: m.kind == Kind::Request,
            arguments: m.tool_arguments().cloned(),
            targets: m.targets(),
            id: m.id,
            method: m.method.unwrap_or_default(),
            target: m.target,
        })
        .collect()
}

fn jsonrpc_refusal(
    status: StatusCode,
    id: Option<&Value>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> http::Response<Body> {
    json_response(status, &mcp::jsonrpc_error(id, code, message, data))
}

fn json_response(status: StatusCode, body: &Value) -> http::Response<Body> {
    let mut resp = http::Response::new(crate::relay::full_body(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:8443"), "localhost");
        assert_eq!(host_name("[::1]:8443"), "::1");
        assert_eq!(host_name("edge.example.com"), "edge.example.com");
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("::1"));
        assert!(is_loopback_name("localhost"));
        assert!(!is_loopback_name("evil.example.com"));
        assert!(!is_loopback_name("localhost.evil.com"));
    }
}
