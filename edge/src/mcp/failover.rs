//! Sending an exchange down a tunnel, and once more down another when the first tunnel was
//! lost before any answer came back, for requests that are safe to repeat.
//!
//! # What may be retried ([`may_retry`])
//! A `POST` outside a legacy session (a session's requests stay with its connector) whose every JSON-RPC
//! message is a request that reads and changes nothing: `server/discover`, `initialize`, any
//! `*/list` method, `resources/read`, `prompts/get`, and `tools/call` of a tool the service's
//! `retry_tools` (edge.toml) names. Never anything else: a notification, a response, any
//! other `tools/call`, a `GET` or `DELETE`. Tool annotations (`readOnlyHint`) are not
//! trusted for this: they are hints a backend gives about itself, and a retried call runs
//! twice; the operator decides.
//!
//! # When ([`tunnel_lost`])
//! Only when the exchange failed before a response head arrived *and* the tunnel's
//! connection is gone (the connector died, the network cut it, the edge closed it). A stream
//! the connector reset or answered badly on a live tunnel is not retried. The second attempt
//! goes to a tunnel of another connector when one serves the service, else to another tunnel
//! of the same connector; there is no third.
//!
//! Each attempt writes its own `dispatched` audit line (the second with `retried: 1`), and
//! the outcome line carries `retried: 1`. The backend sees the same `x-underpass-request-id`
//! on both attempts, so it can tell a repeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use underpass_audit::{AuditRecord, ExchangeTiming, Outcome};
use underpass_mcp::jsonrpc::code;
use underpass_mcp::Target as McpTarget;
use underpass_proto::frame::{RequestHead, ResponseHead};
use underpass_transport::ExchangeRecv;

use crate::app::App;
use crate::http::audited::write_ahead;
use crate::http::respond::{error_response, incident, Refusal};
use crate::mcp::judge::Call;
use crate::tunnels::exchange::{exchange_then, ExchangeError, OnHangUp};
use crate::tunnels::registry::Tunnel;
use crate::tunnels::spread::InFlight;

/// Methods that read and change nothing, besides the `*/list` methods.
const SAFE_METHODS: [&str; 4] = [
    "server/discover",
    "initialize",
    "resources/read",
    "prompts/get",
];

/// Whether one message may be sent twice.
fn safe(call: &Call, retry_tools: &[String]) -> bool {
    if !call.is_request {
        return false;
    }
    match call.method.as_str() {
        "tools/call" => matches!(
            call.targets.as_slice(),
            [McpTarget::Tool(name)] if retry_tools.iter().any(|t| t == name)
        ),
        m => reads_only(m),
    }
}

/// Whether a method reads and changes nothing (`tools/call` aside, which depends on the tool).
pub fn reads_only(method: &str) -> bool {
    SAFE_METHODS.contains(&method) || method.ends_with("/list")
}

/// Whether a request may be sent again on another tunnel (see the module documentation).
pub fn may_retry(
    http_method: &Method,
    in_session: bool,
    calls: &[Call],
    retry_tools: &[String],
) -> bool {
    *http_method == Method::POST
        && !in_session
        && !calls.is_empty()
        && calls.iter().all(|c| safe(c, retry_tools))
}

/// Whether a failed exchange failed because its tunnel is gone (and not because the
/// connector answered badly or reset this one stream).
pub fn tunnel_lost(error: &ExchangeError, tunnel_closed: bool) -> bool {
    tunnel_closed && !matches!(error, ExchangeError::BadStatus(_))
}

/// An exchange under way: the tunnel that carries it, its response head, the rest of the
/// answer, and its place in the tunnel's load (hold it until the answer has been relayed).
pub struct Sent {
    pub tunnel: Arc<Tunnel>,
    pub head: ResponseHead,
    pub recv: ExchangeRecv,
    pub in_flight: InFlight,
}

/// Writes the request's `dispatched` lines and sends it down `tunnel`; when `retry` and the
/// tunnel is lost before an answer, once more down another (see the module documentation).
/// A failure is a 502 that names no topology (the details go to the log under the
/// reference the client gets).
pub async fn send(
    app: &App,
    service: &str,
    tunnel: Arc<Tunnel>,
    head: &RequestHead,
    body: Bytes,
    how: How,
    audit: &mut AuditRecord,
) -> Result<Sent, Refusal> {
    let spare = how.retry.then(|| body.clone());
    let first = attempt(app, tunnel, head, body, how.on_hang_up, audit).await?;
    let (failed, error) = match first {
        Ok(sent) => return Ok(sent),
        Err(failure) => failure,
    };
    let lost = tunnel_lost(&error, failed.conn.close_reason().is_some());
    let again = spare
        .filter(|_| lost)
        .and_then(|body| Some((app.tunnels.pick_other(service, &failed)?, body)));
    let Some((other, body)) = again else {
        return Err(failed_exchange(service, &failed, &error, audit));
    };
    tracing::info!(
        service,
        connector = %failed.connector,
        to = %other.connector,
        request_id = head.request_id,
        "tunnel lost before an answer: sending the request once more on another tunnel: {error}"
    );
    audit.retried = Some(1);
    match attempt(app, other, head, body, how.on_hang_up, audit).await? {
        Ok(sent) => Ok(sent),
        Err((failed, error)) => Err(failed_exchange(service, &failed, &error, audit)),
    }
}

/// How a request is sent: whether it may be sent once more ([`may_retry`]), and what
/// becomes of it if its client leaves before the answer.
#[derive(Debug, Clone, Copy)]
pub struct How {
    pub retry: bool,
    pub on_hang_up: OnHangUp,
}

type Attempt = Result<Sent, (Arc<Tunnel>, ExchangeError)>;

/// One attempt: its `dispatched` lines, then the exchange. The outer error is a refusal to
/// answer at once (the audit log could not take the lines).
async fn attempt(
    app: &App,
    tunnel: Arc<Tunnel>,
    head: &RequestHead,
    body: Bytes,
    on_hang_up: OnHangUp,
    audit: &mut AuditRecord,
) -> Result<Attempt, Refusal> {
    if let Some(refusal) = write_ahead(app, audit).await {
        return Err(Box::new(refusal));
    }
    let in_flight = tunnel.load.begin();
    // A retry's tunnel time counts from the first attempt.
    let sent_at = audit.exchange.map_or_else(Instant::now, |e| e.sent_at);
    let result = exchange_then(&tunnel.conn, head, body, on_hang_up).await;
    audit.exchange = Some(ExchangeTiming {
        sent_at,
        head_after: sent_at.elapsed(),
        backend: result
            .as_ref()
            .ok()
            .and_then(|(h, _)| h.backend_us)
            .map(Duration::from_micros),
    });
    Ok(match result {
        Ok((head, recv)) => Ok(Sent {
            tunnel,
            head,
            recv,
            in_flight,
        }),
        Err(e) => Err((tunnel, e)),
    })
}

fn failed_exchange(
    service: &str,
    tunnel: &Tunnel,
    error: &ExchangeError,
    audit: &mut AuditRecord,
) -> Refusal {
    audit.outcome = Outcome::TunnelError;
    let detail = format!(
        "exchange with connector {:?} failed: {error}",
        tunnel.connector
    );
    Box::new(error_response(
        StatusCode::BAD_GATEWAY,
        code::UPSTREAM_FAILED,
        &incident("the tunnel to the connector failed", service, &detail),
    ))
}

#[cfg(test)]
mod tests;
