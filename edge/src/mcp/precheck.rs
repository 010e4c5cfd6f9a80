//! What the edge decides from a request's headers, before it reads the body:
//! - who is calling: without valid credentials the answer is 401 (the same response, challenge
//!   and audit line as [`admission::admit`] gives), and the body is drained, never held in memory;
//! - whether that principal may have one more request in flight
//!   (`[clients] max_concurrent_per_principal`, 429 beyond);
//! - which legacy session the request keeps from expiring.
//!
//! Then the body is read within the global budget and deadline ([`limits::read_body`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use underpass_mcp::jsonrpc::code;

use underpass_audit::{AuditRecord, Outcome};

use crate::app::App;
use crate::http::body::Body;
use crate::http::conn::ConnInfo;
use crate::http::headers::SESSION_HEADER;
use crate::http::respond::{error_response, over_cap};
use crate::http::router::{route, Route};
use crate::limits::{self, BodyRefused, Busy, KeyGuard};
use crate::mcp::admission;
use crate::mcp::session_id;

/// A request in flight of one principal (shared with work spawned for the request, such as
/// a 2024-11-05 bridge's forward; reachable from the request's extensions).
#[derive(Clone)]
pub struct InFlight(#[allow(dead_code)] Arc<KeyGuard<String>>);

/// What a request holds until its response has been sent.
#[derive(Default)]
pub struct Held {
    _in_flight: Option<InFlight>,
    _session: Option<Busy>,
}

impl Held {
    /// `resp`, holding everything until its body has been sent or dropped.
    pub fn attach(self, resp: Response<Body>) -> Response<Body> {
        if self._in_flight.is_none() && self._session.is_none() {
            return resp;
        }
        limits::attach(resp, self)
    }
}

/// Whether the request's route reads its body (the MCP endpoints); others drain it unread.
pub fn reads_body(parts: &http::request::Parts) -> bool {
    matches!(
        route(parts.uri.path()),
        Route::Service(_) | Route::LegacySse(_) | Route::Federated | Route::View(_)
    )
}

/// Authenticates an MCP request and takes its place among the principal's requests in
/// flight; the identity goes into the request's extensions for [`admission::admit`], and what is
/// known so far into `audit`. A refusal is a finished response, given after the body has been
/// drained.
pub async fn before_body(
    app: &Arc<App>,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    body: &mut Incoming,
    audit: &mut AuditRecord,
) -> Result<Held, Response<Body>> {
    // The federated endpoint has no service of its own (its calls are judged per service).
    let service = match route(parts.uri.path()) {
        Route::Service(s) | Route::LegacySse(s) => s.to_owned(),
        Route::Federated | Route::View(_) => String::new(),
        _ => return Ok(Held::default()),
    };
    let identity = match admission::authenticate(app, conn, &service, parts, audit) {
        Ok(identity) => identity,
        Err(refusal) => return Err(refuse(*refusal, body).await),
    };
    let cap = app.config.clients.max_concurrent_per_principal;
    let Some(slot) = app.limits.in_flight.try_acquire(&identity.principal, cap) else {
        audit.principal = Some(identity.principal.clone());
        audit.auth_method = Some(identity.method);
        audit.outcome = Outcome::RateLimited;
        audit.jsonrpc_error = Some(code::RATE_LIMITED);
        let resp = over_cap(
            &format!(
                "too many requests in flight for this caller: at most {cap} at once \
                 ([clients] max_concurrent_per_principal); retry when one has finished"
            ),
            1,
        );
        return Err(refuse(resp, body).await);
    };
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|id| session_id::open(app, &service, &identity.principal, id).ok())
        .and_then(|s| app.tunnels.use_session(&s.key, &identity.principal));
    let in_flight = InFlight(Arc::new(slot));
    parts.extensions.insert(in_flight.clone());
    parts.extensions.insert(identity);
    Ok(Held {
        _in_flight: Some(in_flight),
        _session: session,
    })
}

async fn refuse(mut resp: Response<Body>, body: &mut Incoming) -> Response<Body> {
    if !drain(body).await {
        close_after(&mut resp);
    }
    resp
}

/// Reads the request body within `[clients]` limits; Err is the finished refusal (413 too
/// large, 503 over the edge's body budget, 408 too slow, 400 unreadable).
pub async fn read_body(app: &App, body: &mut Incoming) -> Result<Bytes, Response<Body>> {
    let clients = &app.config.clients;
    let read = limits::read_body(
        body,
        clients.max_request_body,
        &app.limits.bodies,
        clients.body_timeout,
    )
    .await;
    let e = match read {
        Ok(bytes) => return Ok(bytes),
        Err(e) => e,
    };
    let (status, code) = match e {
        BodyRefused::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, code::INVALID_REQUEST),
        BodyRefused::OverBudget => (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE),
        BodyRefused::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, code::INVALID_REQUEST),
        BodyRefused::Read(_) => (StatusCode::BAD_REQUEST, code::PARSE_ERROR),
    };
    let mut resp = error_response(status, code, &e.to_string());
    match e {
        BodyRefused::TooLarge { .. } => {
            drain(body).await;
            close_after(&mut resp);
        }
        BodyRefused::OverBudget => {
            tracing::warn!("request refused: {e}");
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(1u64));
            if !drain(body).await {
                close_after(&mut resp);
            }
        }
        BodyRefused::TimedOut(_) => close_after(&mut resp),
        BodyRefused::Read(_) => {}
    }
    Err(resp)
}

/// Asks an HTTP/1.1 client to close the connection after this response (hyper drops the
/// header on HTTP/2, where it does not exist).
fn close_after(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// Reads and drops what is left of a refused request body, bounded in bytes and time, so
/// that a client still sending gets to read the refusal (closing a socket with unread data
/// makes the kernel reset the connection, and the client may lose the answer with it).
/// Nothing is kept: memory does not grow with the body. True when the body ended.
pub async fn drain(body: &mut Incoming) -> bool {
    const MAX_DISCARD: usize = 64 * 1024 * 1024;
    const MAX_WAIT: Duration = Duration::from_secs(5);
    let drain = async {
        let mut discarded = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            discarded += frame.data_ref().map_or(0, Bytes::len);
            if discarded > MAX_DISCARD {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(MAX_WAIT, drain).await.unwrap_or(false)
}
