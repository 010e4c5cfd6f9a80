//! Admission of one client request, before anything crosses a tunnel: Host and Origin checks
//! (DNS rebinding), authentication, JSON-RPC inspection, policy and rate limits.
//!
//! Every refusal is answered here, at the edge: a denied call never reaches a connector.

use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use underpass_shared::mcp::{self, Kind, Target as McpTarget};

use crate::audit::{AuditRecord, Decision as AuditDecision};
use crate::auth::{Identity, PROTECTED_RESOURCE_WELL_KNOWN};
use crate::policy::Target;
use crate::relay::{error_response, Body, ConnInfo, State};

use underpass_shared::jsonrpc::code;
pub use underpass_shared::jsonrpc::code::{POLICY_DENIED, RATE_LIMITED};

/// One JSON-RPC message of the request, reduced to what policy needs.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: Option<Value>,
    pub method: String,
    pub target: Option<McpTarget>,
    pub arguments: Option<Value>,
    pub is_request: bool,
}

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

/// Host and Origin validation against DNS rebinding: a loopback listener answers only to
/// loopback names; a browser Origin must be the edge itself or explicitly allowed.
pub fn check_host_origin(state: &State, headers: &HeaderMap) -> Result<(), Refusal> {
    let clients = &state.config.clients;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(host) = &host {
        let name = host_name(host);
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
                &format!("Host {host:?} is not served here (see [clients] allowed_hosts)"),
            )));
        }
    }
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let same_origin = host
            .as_deref()
            .is_some_and(|h| origin == format!("https://{h}") || origin == format!("http://{h}"));
        let listed = clients
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
    }
    Ok(())
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

/// The URL of this service's RFC 9728 metadata, from `[auth] resource` or the Host header.
pub fn resource_metadata_url(state: &State, headers: &HeaderMap, path: &str) -> String {
    if let Some(url) = state.auth.resource_metadata_url(path) {
        return url;
    }
    let scheme = if state.config.clients.insecure_plaintext {
        "http"
    } else {
        "https"
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}{PROTECTED_RESOURCE_WELL_KNOWN}{path}")
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
        audit.outcome = "unauthenticated".into();
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
            audit.outcome = "unauthenticated".into();
            let path = format!("/mcp/{service}");
            let mut resp = error_response(e.status(), code::UNAUTHENTICATED, &e.message());
            let challenge = state
                .auth
                .challenge(&e, &resource_metadata_url(state, &parts.headers, &path));
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

    let calls = if parts.method == Method::POST {
        // Strict parse: duplicate keys are refused, so the policy and the backend can never
        // read different values from the same body.
        let inspected = match mcp::parse(body) {
            Ok(i) => i,
            Err(e) => {
                audit.outcome = "bad_request".into();
                audit.jsonrpc_error = Some(e.code());
                return Err(Box::new(json_response(
                    StatusCode::BAD_REQUEST,
                    &e.to_jsonrpc(),
                )));
            }
        };
        let learned = state.registry.versions(service);
        check_protocol(&parts.headers, &inspected, learned.as_deref(), audit)?;
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

    let principals = identity.principals();
    let policy = state.policy.get();
    // GET streams and DELETE carry no message: they need access to the service itself.
    let checks: Vec<(Option<&Call>, Target<'_>)> = if calls.is_empty() {
        vec![(None, Target::Service)]
    } else {
        calls
            .iter()
            .map(|c| (Some(c), policy_target(c.target.as_ref())))
            .collect()
    };
    let mut rule = String::new();
    for (call, target) in &checks {
        let decision = policy.decide(
            &principals,
            service,
            target,
            call.and_then(|c| c.arguments.as_ref()),
        );
        rule = decision.rule.clone();
        if !decision.allowed {
            audit.decision = Some(AuditDecision::Deny);
            audit.rule = Some(decision.rule.clone());
            audit.outcome = "denied".into();
            audit.jsonrpc_error = Some(POLICY_DENIED);
            tracing::info!(principal = %identity.principal, service, rule = %decision.rule, "denied by policy");
            return Err(Box::new(jsonrpc_refusal(
                StatusCode::FORBIDDEN,
                call.and_then(|c| c.id.as_ref()),
                POLICY_DENIED,
                "denied by the gateway's policy",
                None,
            )));
        }
        let Some(rate) = decision.rate else { continue };
        if !call.is_some_and(|c| c.is_request) {
            continue;
        }
        if let Err(retry) = state
            .limiter
            .check(&identity.principal, service, &rate, Instant::now())
        {
            let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
            audit.decision = Some(AuditDecision::Deny);
            audit.rule = Some(decision.rule.clone());
            audit.outcome = "rate_limited".into();
            audit.jsonrpc_error = Some(RATE_LIMITED);
            let mut resp = jsonrpc_refusal(
                StatusCode::TOO_MANY_REQUESTS,
                call.and_then(|c| c.id.as_ref()),
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
    audit.rule = Some(rule);
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
/// has passed through, the edge refuses other versions itself (-32022 with that list);
/// before that, the backend answers.
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
        audit.outcome = "bad_request".into();
        audit.jsonrpc_error = Some(code);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Box::new(json_response(status, &body))
    };
    if let Some(supported) = learned {
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

fn policy_target(t: Option<&McpTarget>) -> Target<'_> {
    match t {
        Some(McpTarget::Tool(n)) => Target::Tool(n),
        Some(McpTarget::Resource(u)) => Target::Resource(u),
        Some(McpTarget::Prompt(n)) => Target::Prompt(n),
        None => Target::Service,
    }
}

pub fn target_name(t: &McpTarget) -> &str {
    match t {
        McpTarget::Tool(n) | McpTarget::Resource(n) | McpTarget::Prompt(n) => n,
    }
}

fn calls_of(inspected: mcp::Inspected) -> Vec<Call> {
    inspected
        .messages
        .into_iter()
        .map(|m| Call {
            is_request: m.kind == Kind::Request,
            arguments: m.tool_arguments().cloned(),
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
