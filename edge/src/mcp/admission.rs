//! Admission of one client request, before anything crosses a tunnel: who is calling, what
//! the body says (strict JSON-RPC inspection and protocol versions), and whether policy and
//! rate limits let every message of it through. [`admit`] runs these steps in that order.
//!
//! Every refusal is answered here, at the edge: a denied call never reaches a connector.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use underpass_audit::{
    AuditRecord, Decision as AuditDecision, Mediation, MediationAction, Outcome,
};
use underpass_mcp::jsonrpc::code::{self, POLICY_DENIED, RATE_LIMITED};
use underpass_mcp::{self as mcp, Kind};

use crate::app::App;
use crate::auth::Identity;
use crate::http::audited::PendingRecord;
use crate::http::conn::ConnInfo;
use crate::http::host::request_authority;
use crate::http::respond::{error_response, json_response, jsonrpc_refusal, Refusal};
use crate::http::well_known::resource_metadata_url;
use crate::mcp::judge::{self, target_name, Call, Judgement};
use crate::policy::{Obligations, Policy};

/// A request the edge let through.
pub struct Admitted {
    pub identity: Identity,
    pub calls: Vec<Call>,
    /// The policy that decided: list filtering of the response uses the same one, even if
    /// a reload lands meanwhile.
    pub policy: Arc<Policy>,
}

/// Who is calling, from the connection and the headers alone: 401 (with the
/// `WWW-Authenticate` challenge) for a revoked or expired client certificate or bad
/// credentials.
pub fn authenticate(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    audit: &mut AuditRecord,
) -> Result<Identity, Refusal> {
    let revoked = conn
        .cert_chain
        .iter()
        .any(|cert| app.security.revocations.is_revoked(cert));
    if revoked {
        audit.outcome = Outcome::Unauthenticated;
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "client certificate revoked",
        )));
    }
    if conn.cert_expired_at(std::time::SystemTime::now()) {
        audit.outcome = Outcome::Unauthenticated;
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "client certificate expired",
        )));
    }
    let identity = match app.security.auth.authenticate(
        conn.cert_principal.as_deref(),
        &parts.headers,
        parts.uri.query(),
    ) {
        Ok(id) => id,
        Err(e) => {
            audit.outcome = Outcome::Unauthenticated;
            let path = if service.is_empty() {
                "/mcp".to_owned()
            } else {
                format!("/mcp/{service}")
            };
            let mut resp = error_response(e.status(), code::UNAUTHENTICATED, &e.message());
            // The caller checked the host (check_host_origin) before admission.
            let authority = request_authority(parts).unwrap_or_default();
            let challenge = app
                .security
                .auth
                .challenge(&e, &resource_metadata_url(app, &authority, &path));
            if let Ok(v) = http::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
            }
            return Err(Box::new(resp));
        }
    };
    Ok(identity)
}

/// Authentication, inspection, policy and rate limit, filling in `audit` as it goes (and the
/// request's trace: the one `params._meta.traceparent` names when no header did, and when
/// admission ended).
pub fn admit(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: &[u8],
    audit: &mut PendingRecord,
) -> Result<Admitted, Refusal> {
    let admitted = admit_traced(app, conn, service, parts, body, audit);
    audit.trace.admitted();
    admitted
}

fn admit_traced(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: &[u8],
    audit: &mut PendingRecord,
) -> Result<Admitted, Refusal> {
    let identity = identify(app, conn, service, parts, audit)?;
    let (mut calls, batch) = inspect(app, service, parts, body, audit)?;
    record_first_call(app, &calls, audit);
    let policy = app.security.policy.get();
    let obligations = decide(app, &identity, service, &calls, batch, &policy, audit)?;
    audit.decision = Some(AuditDecision::Allow);
    // Arguments were needed to judge and to audit, and no longer: a parsed tree is many
    // times its JSON (≈ 16× for an array of small numbers), and the exchange may last long.
    for (call, obligations) in calls.iter_mut().zip(obligations) {
        call.arguments = None;
        call.obligations = obligations;
    }
    Ok(Admitted {
        identity,
        calls,
        policy,
    })
}

/// Who is calling: authenticated before the body was read (`precheck`), or now.
fn identify(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    audit: &mut AuditRecord,
) -> Result<Identity, Refusal> {
    let identity = match parts.extensions.get::<Identity>() {
        Some(identity) => identity.clone(),
        None => authenticate(app, conn, service, parts, audit)?,
    };
    audit.principal = Some(identity.principal.clone());
    audit.auth_method = Some(identity.method);
    Ok(identity)
}

/// The messages of a POST body (none for GET and DELETE), and the batch size if it is a
/// batch: strict parse, protocol versions, no repeated request id.
fn inspect(
    app: &App,
    service: &str,
    parts: &http::request::Parts,
    body: &[u8],
    audit: &mut PendingRecord,
) -> Result<(Vec<Call>, Option<u32>), Refusal> {
    if parts.method != Method::POST {
        return Ok((Vec::new(), None));
    }
    let inspected = parse(body, audit)?;
    if let Some(traceparent) = inspected.single().and_then(|m| m.meta_traceparent()) {
        audit.adopt_meta_trace(traceparent);
    }
    let learned = app.tunnels.versions(service);
    check_protocol(&parts.headers, &inspected, learned.as_deref(), audit)?;
    if let Some(id) = inspected.repeated_request_id() {
        audit.outcome = Outcome::BadRequest;
        audit.jsonrpc_error = Some(mcp::INVALID_REQUEST);
        let message = format!(
            "request id {id} is used more than once in this batch: give each request its own id"
        );
        return Err(Box::new(jsonrpc_refusal(
            StatusCode::BAD_REQUEST,
            Some(id),
            mcp::INVALID_REQUEST,
            &message,
            None,
        )));
    }
    let batch = inspected
        .batch
        .then(|| u32::try_from(inspected.messages.len()).unwrap_or(u32::MAX));
    Ok((calls_of(inspected), batch))
}

/// The messages of a body, parsed strictly: duplicate keys are refused, so the policy and the
/// backend can never read different values from the same body. A refusal is the 400 to answer.
pub(crate) fn parse(body: &[u8], audit: &mut AuditRecord) -> Result<mcp::Inspected, Refusal> {
    mcp::parse(body).map_err(|e| {
        audit.outcome = Outcome::BadRequest;
        audit.jsonrpc_error = Some(e.code());
        Box::new(json_response(StatusCode::BAD_REQUEST, &e.to_jsonrpc()))
    })
}

/// The first message's method, target and (redacted, if enabled) arguments, for the record.
fn record_first_call(app: &App, calls: &[Call], audit: &mut AuditRecord) {
    if let Some(first) = calls.first() {
        audit.mcp_method = Some(first.method.clone());
        audit.target = first.target.as_ref().map(|t| target_name(t).to_owned());
        audit.arguments = app
            .auditor
            .as_ref()
            .and_then(|a| a.arguments(first.arguments.as_ref()));
    }
}

/// Every message is judged (requests and notifications, every target each names); one
/// refusal refuses the request, and each message gets an audit line of its own. What the
/// rules that allowed them oblige the edge to do, message by message.
fn decide(
    app: &App,
    identity: &Identity,
    service: &str,
    calls: &[Call],
    batch: Option<u32>,
    policy: &Policy,
    audit: &mut AuditRecord,
) -> Result<Vec<Obligations>, Refusal> {
    let principals = identity.principals();
    let judged: Judgement = judge::judge(
        policy,
        &app.security.limiter,
        &identity.principal,
        &principals,
        service,
        calls,
        Instant::now(),
    );
    if let Some(auditor) = &app.auditor {
        audit.batch_size = batch;
        audit.calls = judge::audit_entries(calls, &judged, |a| auditor.arguments(a));
    }
    audit.rule = Some(judged.rule());
    match judged.refusal {
        None => Ok(judged.calls.into_iter().map(|v| v.obligations).collect()),
        Some(judge::Refusal::Blocked {
            index,
            rule,
            detector,
        }) => {
            audit.decision = Some(AuditDecision::Deny);
            audit.outcome = Outcome::Denied;
            audit.jsonrpc_error = Some(POLICY_DENIED);
            let call = calls.get(index);
            audit.mediation.push(Mediation {
                action: MediationAction::Block,
                detector: detector.clone(),
                location: format!(
                    "{} arguments",
                    call.map(|c| c.method.as_str()).unwrap_or("tools/call")
                ),
                count: 1,
                rpc_id: call.and_then(|c| c.id.clone()),
            });
            tracing::info!(principal = %identity.principal, service, rule = %rule,
                detector = %detector, "call blocked: its arguments carry what a detector finds");
            // The detector's name, never the value: the caller learns what kind of content
            // the policy keeps from crossing.
            Err(Box::new(jsonrpc_refusal(
                StatusCode::FORBIDDEN,
                call.and_then(|c| c.id.as_ref()),
                POLICY_DENIED,
                &format!(
                    "blocked by the gateway's policy (rule {rule}): the arguments carry what \
                     detector {detector:?} finds"
                ),
                Some(serde_json::json!({ "rule": rule, "detector": detector })),
            )))
        }
        Some(judge::Refusal::Denied { index, rule }) => {
            audit.decision = Some(AuditDecision::Deny);
            audit.outcome = Outcome::Denied;
            audit.jsonrpc_error = Some(POLICY_DENIED);
            tracing::info!(principal = %identity.principal, service, rule = %rule, "denied by policy");
            // The rule's name is the operator's label (or `default`): it tells the caller
            // which grant is missing without showing the policy.
            Err(Box::new(jsonrpc_refusal(
                StatusCode::FORBIDDEN,
                calls.get(index).and_then(|c| c.id.as_ref()),
                POLICY_DENIED,
                &format!("denied by the gateway's policy (rule {rule})"),
                Some(serde_json::json!({ "rule": rule })),
            )))
        }
        Some(judge::Refusal::RateLimited {
            index, rate, retry, ..
        }) => {
            let secs = retry.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
            audit.decision = Some(AuditDecision::Deny);
            audit.outcome = Outcome::RateLimited;
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
            Err(Box::new(resp))
        }
    }
}

/// `MCP-Protocol-Version` must name a version the edge speaks; in the 2026-07-28 era the
/// `Mcp-Method` / `Mcp-Name` headers and the body's `_meta` version must agree with the body.
///
/// Which versions a service supports is its backend's to say: once a `server/discover` answer
/// has passed through, the edge refuses stateless-era versions it did not list itself (-32022
/// with that list); legacy versions, and everything before that, the backend answers.
pub(crate) fn check_protocol(
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
        audit.outcome = Outcome::BadRequest;
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
        .map(|mut m| Call {
            is_request: m.kind == Kind::Request,
            // Moved out, not copied: the message is dropped right after.
            arguments: if m.tool_arguments().is_some() {
                m.value.pointer_mut("/params/arguments").map(Value::take)
            } else {
                None
            },
            targets: m.targets(),
            id: m.id,
            method: m.method.unwrap_or_default(),
            target: m.target,
            obligations: Default::default(),
        })
        .collect()
}
