//! The `Mcp-Session-Id` of a legacy (2025-11-25) session as its client holds it: the edge's
//! sealed id (`crate::sessions::seal`), opened on every request, replaced by the backend's
//! own id on the way down the tunnel, and sealed again on the way back. A client never sees
//! a backend's session id, and an id that does not open (tampered, truncated, sealed with a
//! key this edge does not hold, for another service or another principal) is a 404 that never
//! reaches a tunnel.

use http::header::HeaderValue;
use http::{HeaderMap, StatusCode};
use underpass_mcp::jsonrpc::code;

use crate::app::App;
use crate::http::headers::SESSION_HEADER;
use crate::http::respond::{error_response, incident, Refusal};
use crate::sessions::{Payload, Refused};
use crate::tunnels::registry::SessionKey;

/// What the client sent: its sealed id, and the session it names.
#[derive(Debug, Clone)]
pub struct ClientSession {
    pub sealed: String,
    pub key: SessionKey,
}

/// Opens the sealed id `sealed` that `principal` presents for `service`.
pub fn open(
    app: &App,
    service: &str,
    principal: &str,
    sealed: &str,
) -> Result<ClientSession, Refused> {
    let opened = app.sealer.open(sealed, service, principal)?;
    if opened.key_index > 0 {
        tracing::debug!(
            service,
            "session id sealed with an older key (position {} in [sessions] keys)",
            opened.key_index + 1
        );
    }
    Ok(ClientSession {
        sealed: sealed.to_owned(),
        key: SessionKey {
            service: service.to_owned(),
            connector: opened.connector,
            id: opened.backend_id,
        },
    })
}

/// The 404 for a session id that does not open (the reason goes to the log only).
pub fn not_found(service: &str, why: Refused) -> Refusal {
    tracing::debug!(service, "Mcp-Session-Id refused: {why}");
    Box::new(error_response(
        StatusCode::NOT_FOUND,
        code::NOT_FOUND,
        "session not found; initialize a new session",
    ))
}

/// Replaces the backend's `Mcp-Session-Id` in an answer by its sealed form (the client's own
/// sealed id when the backend names the session the client asked for) and returns the
/// session it names. An id that cannot be sealed never reaches the client: 502.
pub fn seal_answer(
    app: &App,
    headers: &mut HeaderMap,
    service: &str,
    principal: &str,
    connector: &str,
    asked: Option<&ClientSession>,
) -> Result<Option<ClientSession>, Refusal> {
    let Some(backend_id) = headers.remove(SESSION_HEADER) else {
        return Ok(None);
    };
    let backend_id = String::from_utf8_lossy(backend_id.as_bytes()).into_owned();
    if let Some(asked) = asked.filter(|a| a.key.id == backend_id && a.key.connector == connector) {
        if let Ok(v) = HeaderValue::from_str(&asked.sealed) {
            headers.insert(SESSION_HEADER, v);
        }
        return Ok(Some(asked.clone()));
    }
    let key = SessionKey {
        service: service.to_owned(),
        connector: connector.to_owned(),
        id: backend_id,
    };
    let sealed = app
        .sealer
        .seal(&Payload {
            service: key.service.clone(),
            principal_hash: crate::sessions::seal::principal_hash(principal),
            connector: key.connector.clone(),
            backend_id: key.id.clone(),
        })
        .map_err(|e| {
            Box::new(error_response(
                StatusCode::BAD_GATEWAY,
                code::UPSTREAM_FAILED,
                &incident(
                    "the backend's session id cannot be sealed",
                    service,
                    &format!("connector {connector:?}: {e}"),
                ),
            ))
        })?;
    // base64url: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&sealed) {
        headers.insert(SESSION_HEADER, v);
    }
    Ok(Some(ClientSession { sealed, key }))
}
