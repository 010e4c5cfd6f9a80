//! The session bridge: serves the Streamable HTTP exchanges (legacy era, 2025-11-25 and older)
//! of a service whose MCP server speaks over a single pipe: a local stdio process, or a
//! 2024-11-05 HTTP+SSE connection. Each is one kind of [`Link`]; see `crate::backends`.
//!
//! # Model
//! Such a server serves exactly one client for its whole life, so every MCP session gets its
//! own link: a POST `initialize` without `Mcp-Session-Id` opens one (spawns a process, opens a
//! connection), and the session id handed back names it until DELETE, idle timeout, crash or
//! connector shutdown.
//!
//! Everything the server sends is one JSON-RPC message at a time on that one pipe; the
//! `router` decides which HTTP stream each message belongs on. Ids and message bodies pass
//! through untouched: no id rewriting, so a session's client must not reuse an id that is
//! still in flight (refused with 409).
//!
//! Modules: `error` (what can go wrong, as status and JSON-RPC code), `client_msg` (the
//! client's messages), `router` (pure routing state), `state` (one session's shared
//! state), `link` (the seam to a kind of server), `session` (the session table, caps and
//! supervision), `streams` (the HTTP streams back).

mod client_msg;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod link;
mod router;
mod session;
mod state;
mod streams;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::time::timeout;

use self::client_msg::{accepts_sse, header, parse_client_body, ClientBody, Inbound, Kind};
use self::session::{PendingInit, SessionTable};
use self::state::SessionState;
use self::streams::{error_answer, json_answer, register, sse_answer, sse_event, Step};
use crate::answer::Answer;
use crate::config::SessionLimits;

pub(crate) use self::client_msg::one_line;
pub use self::error::BridgeError;
pub use self::link::{End, Inbox, Link, LinkOpener, Stop, WriteCmd};

/// A server that has not answered `initialize` by then is considered broken (generous: the
/// first start of an `npx` command may download packages).
const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// One configured service whose sessions are links that `O` opens.
///
/// Dropping it ends every session at once (the supervisors notice their sessions are gone);
/// prefer [`SessionBridge::shutdown`] for a clean stop.
pub struct SessionBridge<O: LinkOpener> {
    table: Arc<SessionTable>,
    opener: O,
}

impl<O: LinkOpener> SessionBridge<O> {
    /// Nothing is started here (no runtime needed): a link is opened per session.
    pub fn new(service: &str, opener: O, limits: SessionLimits) -> Self {
        SessionBridge {
            table: Arc::new(SessionTable::new(service, limits)),
            opener,
        }
    }

    /// Serves one HTTP exchange (legacy MCP era, 2025-11-25 and older) for `principal` (who
    /// the edge authenticated). Never panics on what the client or the server sends; every
    /// failure becomes a status with a JSON-RPC error.
    ///
    /// A session belongs to the principal that opened it: another principal naming its id
    /// gets 404, as at the edge. Sessions count against `max_processes` and, per principal,
    /// `max_processes_per_principal`.
    pub async fn exchange(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> Answer {
        match self.try_exchange(principal, method, headers, body).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(service = %self.table.service, %method, "bridged exchange refused: {e}");
                error_answer(&e)
            }
        }
    }

    /// Ends every session cleanly (a process: close stdin, SIGTERM, SIGKILL; a connection:
    /// close it) and refuses new sessions.
    pub async fn shutdown(&self) {
        let sessions = self.table.close_all();
        futures_util::future::join_all(sessions.iter().map(|s| s.stop_and_wait())).await;
    }

    /// Sessions holding a place under `max_processes` (each a process or a backend
    /// connection), for metrics and tests.
    pub fn session_count(&self) -> usize {
        self.table.counts.total()
    }

    /// Of those, the sessions `principal` holds.
    pub fn session_count_of(&self, principal: &str) -> usize {
        self.table.counts.of(principal)
    }

    async fn try_exchange(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> Result<Answer, BridgeError> {
        let session = header(headers, "mcp-session-id");
        match method {
            "POST" => {
                self.post(principal, session, accepts_sse(headers), &body)
                    .await
            }
            "GET" => {
                let session = session.ok_or(BridgeError::MissingSession)?;
                streams::listen(self.table.lookup(session, principal)?)
            }
            "DELETE" => {
                self.delete(principal, session.ok_or(BridgeError::MissingSession)?)
                    .await
            }
            other => Err(BridgeError::Method(other.to_owned())),
        }
    }

    async fn post(
        &self,
        principal: &str,
        session: Option<&str>,
        sse: bool,
        body: &[u8],
    ) -> Result<Answer, BridgeError> {
        let batch = parse_client_body(body)?;
        match session {
            Some(id) => forward(self.table.lookup(id, principal)?, batch, sse).await,
            None => match batch.single_initialize() {
                Some(init) => self.initialize(principal, init, sse).await,
                None => Err(BridgeError::MissingSession),
            },
        }
    }

    /// Opens the session's link and answers once the server has answered `initialize`, so
    /// that a server that dies at start gets a clear error instead of a session id that
    /// leads nowhere.
    async fn initialize(
        &self,
        principal: &str,
        init: Inbound,
        sse: bool,
    ) -> Result<Answer, BridgeError> {
        let session = self.table.start(&self.opener, principal)?;
        let mut pending = PendingInit {
            table: &self.table,
            session: &session,
            committed: false,
        };
        let state = session.state.clone();
        let mut stream = register(&state, vec![init], false, sse)?;
        stream.write_all().await;
        let mut related = Vec::new();
        let answer = timeout(INIT_TIMEOUT, async {
            loop {
                match stream.step().await {
                    Step::Related(line) => related.push(line),
                    Step::Answers(lines) => return lines,
                    Step::Done => return Vec::new(),
                }
            }
        })
        .await
        .map_err(|_| BridgeError::InitTimeout(INIT_TIMEOUT.as_secs()))?;
        let Some(answer) = answer.into_iter().next() else {
            return Err(O::init_failed(state.gone_reason()));
        };
        if let Some(reason) = state.gone() {
            return Err(O::init_failed(reason.to_string()));
        }
        let succeeded = is_success(&answer);
        let mut resp = if sse {
            related.push(answer);
            let events: Vec<_> = related
                .iter()
                .map(|l| Ok(sse_event(state.next_event_id(), l)))
                .collect();
            sse_answer(futures_util::stream::iter(events))
        } else {
            json_answer(futures_util::stream::once(async move { Ok(answer) }))
        };
        if succeeded {
            pending.committed = true;
            resp.headers
                .push(("mcp-session-id".into(), state.id.as_bytes().to_vec()));
            tracing::info!(service = %state.service, session = %state.id, pid = ?state.pid.get(),
                "{} session opened", state.label);
        }
        Ok(resp)
    }

    async fn delete(&self, principal: &str, session: &str) -> Result<Answer, BridgeError> {
        let session = self
            .table
            .take(session, principal)
            .ok_or(BridgeError::UnknownSession)?;
        session.stop_and_wait().await;
        Ok(Answer::empty(200))
    }
}

/// Writes the client's messages to the session's server and answers: 202 when they are only
/// notifications and responses, else a stream that ends with the last response.
async fn forward(
    state: Arc<SessionState>,
    batch: ClientBody,
    sse: bool,
) -> Result<Answer, BridgeError> {
    let is_batch = batch.is_batch;
    let (requests, others): (Vec<Inbound>, Vec<Inbound>) = batch
        .messages
        .into_iter()
        .partition(|m| m.kind == Kind::Request);
    for cancelled in others.iter().filter_map(|m| m.cancels.as_deref()) {
        cancel(&state, cancelled).await;
    }
    for msg in &others {
        state.write(msg.line.clone()).await?;
    }
    if requests.is_empty() {
        return Ok(Answer::empty(202));
    }
    let mut stream = register(&state, requests, is_batch, sse)?;
    // A failed write needs no answer here: the supervisor then ends the session, which ends
    // this stream with a JSON-RPC error for every request.
    stream.write_all().await;
    Ok(stream.into_answer(sse))
}

/// The client gave up on a request: end its stream now, since the server will not answer it.
async fn cancel(state: &SessionState, key: &str) {
    let delivery = state.router().cancel(key);
    if let Some(d) = delivery {
        state.deliver(d).await;
    }
}

fn is_success(response: &[u8]) -> bool {
    serde_json::from_slice::<Value>(response).is_ok_and(|v| v.get("result").is_some())
}
