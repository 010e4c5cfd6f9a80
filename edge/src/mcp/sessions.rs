//! Legacy sessions cannot pile up: each principal holds at most
//! `[clients] max_sessions_per_principal` of them (`Mcp-Session-Id` sessions and 2024-11-05
//! SSE bridges together; the `initialize` beyond is refused with 429 before it reaches a
//! backend), and a session with no request for `[clients] session_idle_timeout` is forgotten
//! and ended at its backend with a DELETE down its tunnel, unless the edges share
//! `[sessions] keys`: then another edge may be serving the session right now (its client's
//! connection moved), so the edge only forgets it (and gives its place back).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use underpass_mcp::jsonrpc::code;
use underpass_proto::frame::RequestHead;

use underpass_audit::{AuditRecord, Decision as AuditDecision, Outcome};

use crate::app::App;
use crate::assertion::AssertionClaims;
use crate::http::audited::OnBehalf;
use crate::http::headers::SESSION_HEADER;
use crate::http::ids::new_request_id;
use crate::http::respond::{over_cap, Refusal};
use crate::mcp::admission::Admitted;
use crate::tunnels::registry::{ExpiredSession, SessionSlot};

/// For a POST that opens a session (an `initialize` without `Mcp-Session-Id`), a place in
/// the principal's session count; 429 when the principal holds its cap already.
pub fn reserve(
    app: &App,
    parts: &http::request::Parts,
    admitted: &Admitted,
    audit: &mut AuditRecord,
) -> Result<Option<SessionSlot>, Refusal> {
    let opens_session = parts.method == Method::POST
        && !parts.headers.contains_key(SESSION_HEADER)
        && admitted.calls.iter().any(|c| c.method == "initialize");
    if !opens_session {
        return Ok(None);
    }
    reserve_for(app, &admitted.identity.principal, audit).map(Some)
}

/// A place in `principal`'s session count (also for a 2024-11-05 bridge), or the 429.
pub fn reserve_for(
    app: &App,
    principal: &str,
    audit: &mut AuditRecord,
) -> Result<SessionSlot, Refusal> {
    let cap = app.config.clients.max_sessions_per_principal;
    if let Some(slot) = app.tunnels.reserve_session(principal, cap) {
        return Ok(slot);
    }
    audit.decision = Some(AuditDecision::Deny);
    audit.outcome = Outcome::RateLimited;
    audit.jsonrpc_error = Some(code::RATE_LIMITED);
    tracing::info!(
        principal,
        cap,
        "session refused: the principal holds its cap"
    );
    let idle =
        humantime_serde::re::humantime::format_duration(app.config.clients.session_idle_timeout);
    Err(Box::new(over_cap(
        &format!(
            "too many open sessions for this caller: at most {cap} \
             ([clients] max_sessions_per_principal); end one with DELETE, or retry after \
             an idle one expires ([clients] session_idle_timeout = {idle})"
        ),
        60,
    )))
}

/// Forgets idle sessions, for as long as the edge runs.
pub async fn expire_idle_sessions(app: Arc<App>) {
    let idle = app.config.clients.session_idle_timeout;
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let expired = app.tunnels.expire_idle(idle);
        if expired.is_empty() {
            continue;
        }
        let idle_for = humantime_serde::re::humantime::format_duration(idle);
        if app.sealer.is_shared() {
            tracing::info!(
                count = expired.len(),
                "forgot legacy sessions idle here for {idle_for} ([clients] session_idle_timeout); \
                 not ending them at their backends: with [sessions] keys another edge may serve them"
            );
            continue;
        }
        tracing::info!(
            count = expired.len(),
            "forgot legacy sessions idle for {idle_for} ([clients] session_idle_timeout); ending them at their backends"
        );
        for session in &expired {
            app.tunnels.mark_ended(&session.key);
        }
        futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(expired),
            32,
            |session| end_at_backend(&app, session),
        )
        .await;
    }
}

/// DELETE of an expired session down its tunnel, as its client would send it. Best effort:
/// when the tunnel is gone, the connector already ended the session with it.
pub async fn end_at_backend(app: &App, session: ExpiredSession) {
    let Some(tunnel) = session.tunnel else {
        return;
    };
    let assertion = app
        .signer
        .reusable(&AssertionClaims {
            service: &session.key.service,
            principal: &session.principal,
            groups: &[],
            session_id: Some(&session.key.id),
            trace_id: None,
        })
        .map_err(|e| tracing::error!("cannot sign identity assertion: {e}"))
        .ok();
    let head = RequestHead {
        service: session.key.service.clone(),
        method: Method::DELETE.as_str().to_owned(),
        query: String::new(),
        headers: vec![(
            SESSION_HEADER.to_owned(),
            session.key.id.clone().into_bytes(),
        )],
        principal: session.principal.clone(),
        trace_id: format!("{:032x}", rand::random::<u128>()),
        request_id: new_request_id(),
        assertion,
    };
    let mut audit = OnBehalf::new(&head, &session.key.id);
    if !audit.ahead(app).await {
        return;
    }
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        crate::tunnels::exchange::exchange(&tunnel.conn, &head, Bytes::new()),
    )
    .await;
    let status = match &ended {
        Ok(Ok((resp, _))) => Some(resp.status),
        _ => None,
    };
    audit.finish(app, status);
    match ended {
        Ok(Ok((resp, _))) => tracing::debug!(
            service = %session.key.service,
            status = resp.status,
            "expired session ended at the backend"
        ),
        Ok(Err(e)) => {
            tracing::debug!(service = %session.key.service, "cannot end expired session: {e}")
        }
        Err(_) => {
            tracing::debug!(service = %session.key.service, "ending expired session timed out")
        }
    }
}
