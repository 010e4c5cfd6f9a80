//! `/mcp/{service}`, the Streamable HTTP endpoint (both protocol eras): one client exchange,
//! admitted at the edge, relayed on its own stream of a tunnel (a fresh pick, or one of the
//! connector its sealed legacy session names; once more on another when that tunnel is lost
//! and the request is safe to repeat, see [`failover`]), and the response streamed back as it
//! arrives.
//!
//! [`serve`] is a pipeline of named steps; each either hands its result to the next or ends
//! the request with a finished refusal (and says why in the audit record).

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::StreamBody;
use hyper::body::Frame;
use underpass_audit::{AuditRecord, Outcome};
use underpass_mcp::jsonrpc::code;
use underpass_proto::frame::{RequestHead, ResponseHead};
use underpass_proto::trace::TRACEPARENT;

use crate::app::App;
use crate::assertion::AssertionClaims;
use crate::http::audited::PendingRecord;
use crate::http::body::{full_body, Body, BodyError};
use crate::http::conn::ConnInfo;
use crate::http::headers::{response_headers, upstream_headers, SESSION_HEADER};
use crate::http::host::check_host_origin;
use crate::http::ids::new_request_id;
use crate::http::media::check_media;
use crate::http::respond::{busy, error_response, incident, Refusal};
use crate::mcp::admission::{self, Admitted};
use crate::mcp::discover::discovered_versions;
use crate::mcp::failover::{self, How, Sent};
use crate::mcp::list_filter::{self, ListFilter};
use crate::mcp::session_id::{self, ClientSession};
use crate::mcp::sessions;
use crate::tunnels::exchange::{response_stream, OnHangUp};
use crate::tunnels::registry::{SessionKey, SessionLookup, SessionSlot, Tunnel};

type Chunks = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, BodyError>>;

/// Serves one request to `/mcp/{service}`: the answer, or the refusal that ended it.
pub async fn serve(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut PendingRecord,
) -> Response<Body> {
    match relay(app, conn, service, parts, body, audit).await {
        Ok(resp) => resp,
        Err(refusal) => *refusal,
    }
}

async fn relay(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    body: Bytes,
    audit: &mut PendingRecord,
) -> Result<Response<Body>, Refusal> {
    check_endpoint(app, service, parts, audit)?;
    let admitted = admission::admit(app, conn, service, parts, &body, audit)?;
    let principal = admitted.identity.principal.as_str();
    let session = client_session(app, service, principal, parts)?;
    let session_slot = sessions::reserve(app, parts, &admitted, audit)?;
    let session_key = session.as_ref().map(|s| &s.key);
    // A connector in a rolling restart is waited for (a few seconds at most), not failed.
    app.tunnels
        .settle(service, session_key.map(|k| k.connector.as_str()))
        .await;
    let tunnel = pick_tunnel(app, service, session_key, principal)?;
    let traceparent = app.tracer.is_on().then(|| audit.trace.tunnel_traceparent());
    let head = request_head(
        app,
        conn,
        service,
        parts,
        &admitted,
        session.as_ref().map(|s| s.key.id.as_str()),
        audit,
        traceparent,
    );
    let retry = failover::may_retry(
        &parts.method,
        session.is_some(),
        &admitted.calls,
        app.config.retry_tools(service),
    );
    let hang_up = on_hang_up(parts, session.is_some());
    audit.trace.exchange_starts();
    let Sent {
        tunnel,
        head: resp_head,
        recv,
        in_flight,
    } = failover::send(
        app,
        service,
        tunnel,
        &head,
        body,
        How {
            retry,
            on_hang_up: hang_up,
        },
        audit,
    )
    .await?;

    let status = upstream_status(&resp_head, audit);
    let (mut headers, is_sse) = response_headers(resp_head.headers);
    let answered = session_id::seal_answer(
        app,
        &mut headers,
        service,
        principal,
        &tunnel.connector,
        session.as_ref(),
    )?;
    if status.is_success() && admitted.calls.iter().any(|c| c.is_request) {
        answer_is_mcp(&headers, is_sse, service, audit)?;
    }
    let tracked = track_session(
        app,
        parts,
        principal,
        status,
        session.as_ref(),
        answered,
        session_slot,
    );
    let adopted = match tracked {
        Tracked::Opened(sealed) => {
            audit.session = Some(sealed);
            None
        }
        Tracked::Adopted(busy) => Some(busy),
        Tracked::Nothing => None,
    };

    // The exchange counts in its tunnel's load until its answer has been relayed.
    let mut stream = response_stream(
        recv,
        is_sse,
        &tunnel.connector,
        on_hang_up(parts, session.is_some()),
        // Only an event stream can end with it: built for those alone (a JSON answer's
        // request would pay for an error it never sends).
        is_sse.then(|| lost_mid_answer(&admitted.calls)).flatten(),
    )
    .map(move |chunk| {
        let _counted = &in_flight;
        chunk
    })
    .boxed();
    if status.is_success() && admitted.calls.iter().any(|c| c.method == "server/discover") {
        stream = learn_versions(app, service, stream, is_sse).await?;
    }
    let body = filter_body(app, service, &admitted, status, is_sse, stream, audit).await?;
    let resp = response(status, headers, body);
    Ok(match adopted {
        Some(busy) => crate::limits::attach(resp, busy),
        None => resp,
    })
}

/// The SSE event that ends an event stream whose tunnel failed mid-answer: the error
/// answering the one request of the POST (none for a POST of notifications or responses only).
fn lost_mid_answer(calls: &[crate::mcp::judge::Call]) -> Option<Bytes> {
    let mut requests = calls.iter().filter(|c| c.is_request);
    let (Some(request), None) = (requests.next(), requests.next()) else {
        return None;
    };
    let error = underpass_mcp::jsonrpc::error(
        request.id.as_ref(),
        code::UPSTREAM_FAILED,
        "the tunnel to the backend failed before the answer was complete; the request may \
         or may not have run",
        None,
    );
    Some(Bytes::from(
        underpass_mcp::sse::SseEvent::new(&error.to_string()).to_bytes(),
    ))
}

/// What the edge learned of a legacy session from an answer.
enum Tracked {
    /// An `initialize` opened one: its sealed id, as the client got it.
    Opened(String),
    /// A session this edge did not know was adopted: the request in flight on it.
    Adopted(crate::limits::Busy),
    Nothing,
}

/// Keeps the session table in step with the backend: an `initialize` answered with a session
/// id opens one (in the place `slot` reserved for it), a successful DELETE or a 404 ends one,
/// and a session this edge did not know that its backend serves is adopted (counted and
/// expired here from now on).
fn track_session(
    app: &App,
    parts: &http::request::Parts,
    principal: &str,
    status: StatusCode,
    asked: Option<&ClientSession>,
    answered: Option<ClientSession>,
    slot: Option<SessionSlot>,
) -> Tracked {
    match (asked, answered) {
        (None, Some(opened)) if status.is_success() => {
            app.tunnels.open_session(opened.key, principal, slot);
            Tracked::Opened(opened.sealed)
        }
        (Some(s), _)
            if (parts.method == Method::DELETE && status.is_success())
                || status == StatusCode::NOT_FOUND =>
        {
            app.tunnels.close_session(&s.key);
            Tracked::Nothing
        }
        (Some(s), _) if status.is_success() => app
            .tunnels
            .adopt_session(&s.key, principal)
            .map_or(Tracked::Nothing, Tracked::Adopted),
        _ => Tracked::Nothing,
    }
}

/// Host and Origin, the service, the method and the media types: everything that can be
/// refused before anyone is authenticated or judged.
fn check_endpoint(
    app: &App,
    service: &str,
    parts: &http::request::Parts,
    audit: &mut AuditRecord,
) -> Result<(), Refusal> {
    if let Err(refusal) = check_host_origin(&app.config.clients, parts) {
        audit.outcome = Outcome::Forbidden;
        return Err(refusal);
    }
    if !app.config.has_service(service) {
        return Err(Box::new(error_response(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            &format!("unknown service {service:?}: this edge serves no such MCP service"),
        )));
    }
    // Before policy runs, so that its record carries no decision.
    method_allowed(&parts.method)?;
    if let Err(refusal) = check_media(&parts.method, &parts.headers) {
        audit.outcome = Outcome::BadRequest;
        return Err(refusal);
    }
    Ok(())
}

/// 405 for a method an MCP endpoint does not take.
fn method_allowed(method: &Method) -> Result<(), Refusal> {
    if [Method::GET, Method::POST, Method::DELETE].contains(method) {
        return Ok(());
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
    Err(Box::new(resp))
}

/// The session the request names by its sealed `Mcp-Session-Id`, if it carries one; 404
/// when the id does not open for this service and principal.
fn client_session(
    app: &App,
    service: &str,
    principal: &str,
    parts: &http::request::Parts,
) -> Result<Option<ClientSession>, Refusal> {
    match parts.headers.get(SESSION_HEADER).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(id)) => session_id::open(app, service, principal, id)
            .map(Some)
            .map_err(|why| session_id::not_found(service, why)),
        Some(Err(_)) => Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Mcp-Session-Id is not visible ASCII",
        ))),
    }
}

/// The tunnel the request goes down: one of its session's connector (a session belongs to
/// the connector that answered its `initialize`, and to the principal that sent it), else
/// any serving the service.
/// What a client leaving before its answer ended means, by protocol era. A 2026-07-28
/// request is cancelled: closing the response stream is how its client cancels. In a legacy
/// (2025-11-25 and earlier) session a disconnect is not a cancellation, so a POST's request
/// runs on at the backend; the client cancels it with `notifications/cancelled` in the
/// session. A legacy request outside a session is cancelled as before: nothing could cancel
/// it later, and a client that gave up leaves no work behind. A GET event stream just ends.
fn on_hang_up(parts: &http::request::Parts, in_session: bool) -> OnHangUp {
    let modern = parts
        .headers
        .get(underpass_mcp::HEADER_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| underpass_mcp::Era::of(v.trim()) == underpass_mcp::Era::Modern);
    if parts.method == Method::POST && in_session && !modern {
        OnHangUp::RunOn
    } else {
        OnHangUp::Cancel
    }
}

fn pick_tunnel(
    app: &App,
    service: &str,
    session: Option<&SessionKey>,
    principal: &str,
) -> Result<std::sync::Arc<Tunnel>, Refusal> {
    let refusal = |status, code, message: &str| Box::new(error_response(status, code, message));
    // Nothing to pick although live tunnels serve it: they are all at their cap.
    let connector = session.map(|k| k.connector.as_str());
    let all_busy = || {
        app.tunnels.serving(service, connector).then(|| {
            Box::new(busy(
                &format!(
                    "every tunnel serving {service:?} has {} exchanges in flight; retry shortly",
                    app.config.tunnel.max_exchanges_per_tunnel
                ),
                1,
            ))
        })
    };
    match session {
        Some(key) => app.tunnels.session_tunnel(key, principal).map_err(|why| {
            let msg = match why {
                SessionLookup::TunnelGone => match all_busy() {
                    Some(busy) => return busy,
                    None => {
                        "session ended: its connector is not connected to this edge; initialize a new session"
                    }
                },
                SessionLookup::OtherPrincipal | SessionLookup::Ended => {
                    "session not found; initialize a new session"
                }
            };
            refusal(StatusCode::NOT_FOUND, code::NOT_FOUND, msg)
        }),
        None => app.tunnels.pick(service).ok_or_else(|| {
            all_busy().unwrap_or_else(|| {
                refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::UNAVAILABLE,
                    &format!(
                        "service {service:?} is known but no connector serving it is online; retry later"
                    ),
                )
            })
        }),
    }
}

/// The head of the exchange: the client's forwardable headers and the edge's forwarding
/// headers, the ids, and the identity assertion in place of the client's credentials. With
/// spans exported, `traceparent` names the edge's exchange span (in place of the client's),
/// so that the connector's span is its child.
#[allow(clippy::too_many_arguments)]
fn request_head(
    app: &App,
    conn: &ConnInfo,
    service: &str,
    parts: &http::request::Parts,
    admitted: &Admitted,
    session_id: Option<&str>,
    audit: &AuditRecord,
    traceparent: Option<String>,
) -> RequestHead {
    let principal = &admitted.identity.principal;
    let assertion = app
        .signer
        .reusable(&AssertionClaims {
            service,
            principal,
            groups: &admitted.identity.groups,
            session_id,
            trace_id: None,
        })
        .map_err(|e| tracing::error!("cannot sign identity assertion: {e}"))
        .ok();
    let mut headers = upstream_headers(conn, parts, !app.config.clients.insecure_plaintext);
    if let Some(id) = session_id {
        // Down the tunnel the session is the backend's own id, never the sealed one.
        headers.retain(|(name, _)| name != SESSION_HEADER);
        headers.push((SESSION_HEADER.to_owned(), id.as_bytes().to_vec()));
    }
    if let Some(traceparent) = traceparent {
        headers.retain(|(name, _)| name != TRACEPARENT);
        headers.push((TRACEPARENT.to_owned(), traceparent.into_bytes()));
    }
    RequestHead {
        service: service.to_owned(),
        method: parts.method.as_str().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        principal: principal.clone(),
        trace_id: audit.trace_id.clone().unwrap_or_default(),
        request_id: audit.request_id.clone().unwrap_or_else(new_request_id),
        assertion,
    }
}

/// The backend's status, and what it says about the outcome.
fn upstream_status(head: &ResponseHead, audit: &mut AuditRecord) -> StatusCode {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_server_error() {
        audit.outcome = Outcome::BackendError;
    } else if status.is_client_error() {
        audit.outcome = Outcome::Error;
    }
    status
}

/// A success answer to requests must be JSON or an event stream (the streamable HTTP
/// transport): anything else, such as an HTML page from a proxy in front of the backend, is a
/// 502 that says so instead of a body no client can read.
fn answer_is_mcp(
    headers: &HeaderMap,
    is_sse: bool,
    service: &str,
    audit: &mut AuditRecord,
) -> Result<(), Refusal> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
        .unwrap_or_default();
    if is_sse || content_type.starts_with("application/json") {
        return Ok(());
    }
    audit.outcome = Outcome::BackendError;
    let mut shown = content_type;
    shown.truncate(64);
    Err(Box::new(error_response(
        StatusCode::BAD_GATEWAY,
        code::UPSTREAM_FAILED,
        &incident(
            "the backend answered with neither JSON nor an event stream",
            service,
            &format!("backend answered requests with content type {shown:?}"),
        ),
    )))
}

/// Reads a `server/discover` answer whole (small and rare) to learn the versions the service
/// supports, and passes it on unchanged.
async fn learn_versions(
    app: &App,
    service: &str,
    stream: Chunks,
    is_sse: bool,
) -> Result<Chunks, Refusal> {
    match list_filter::collect_json(stream).await {
        Ok(raw) => {
            if let Some(v) = discovered_versions(&raw, is_sse) {
                app.tunnels.learn_versions(service, v);
            }
            Ok(
                futures_util::stream::once(async move { Ok(Frame::data(Bytes::from(raw))) })
                    .boxed(),
            )
        }
        Err(e) => Err(Box::new(error_response(
            StatusCode::BAD_GATEWAY,
            code::UPSTREAM_FAILED,
            &incident("the discover response was unreadable", service, &e),
        ))),
    }
}

/// The body the client gets: the backend's stream as is, or with what the caller's policy
/// hides filtered out of list answers and notifications, and its obligations applied to the
/// answers they cover.
async fn filter_body(
    app: &App,
    service: &str,
    admitted: &Admitted,
    status: StatusCode,
    is_sse: bool,
    stream: Chunks,
    audit: &mut PendingRecord,
) -> Result<Body, Refusal> {
    let list_filter = ListFilter::for_request(
        &admitted.calls,
        admitted.policy.clone(),
        app.security.policy.clone(),
        || admitted.identity.principals(),
        service,
        &audit.mediation,
    )
    .filter(|f| status.is_success() && (is_sse || f.reads_json()));
    Ok(match (list_filter, is_sse) {
        (None, _) => UnsyncBoxBody::new(StreamBody::new(stream)),
        (Some(f), true) => UnsyncBoxBody::new(StreamBody::new(list_filter::filter_sse(stream, f))),
        (Some(f), false) => match list_filter::collect_json(stream).await {
            Ok(raw) => full_body(f.filter_json(&raw).unwrap_or_else(|| Bytes::from(raw))),
            Err(e) => {
                audit.outcome = Outcome::BackendError;
                return Err(Box::new(error_response(
                    StatusCode::BAD_GATEWAY,
                    code::UPSTREAM_FAILED,
                    &incident(
                        "the answer to filter or mediate was unreadable",
                        service,
                        &e,
                    ),
                )));
            }
        },
    })
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
