//! Where each message from the server goes: the pure routing state of one session, with no
//! I/O (the caller sends the [`Delivery`] it returns, outside the router's lock).
//!
//! A server has one pipe, Streamable HTTP has a stream per POSTed request plus one GET stream:
//! - a **response** goes to the POST exchange that sent the request with that id, and ends it;
//! - a **progress notification** goes to the exchange whose request carried its progressToken;
//! - **session-wide notifications** (`…/list_changed`, `notifications/resources/updated`) go to
//!   the GET stream;
//! - anything else the server sends on its own (server→client requests such as sampling,
//!   elicitation or roots, log messages, other notifications) relates to whatever is running:
//!   it goes to the oldest request still waiting on an SSE stream, else to the GET stream.
//!
//! Messages meant for the GET stream while none is open wait in a bounded backlog and are sent
//! first when one opens (servers often announce `list_changed` before the client listens).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::client_msg::{kind_of, preview, Inbound, Kind};
use super::error::BridgeError;

/// GET-stream messages kept while no GET stream is open.
const BACKLOG_MAX: usize = 256;

/// What travels from the server's reader to one HTTP stream.
pub(super) enum Outgoing {
    /// A message related to the stream (progress, log, server→client request, notification).
    Message(Bytes),
    /// The response to one of the stream's requests.
    Response { key: String, line: Bytes },
    /// The client cancelled one of the stream's requests: no response will come.
    Cancelled { key: String },
}

/// A message to send to one stream.
pub(super) struct Delivery {
    pub(super) tx: mpsc::Sender<Outgoing>,
    pub(super) item: Outgoing,
    /// Whether `tx` is the GET stream (whose messages go back to the backlog if it closed).
    pub(super) to_listener: bool,
}

struct Pending {
    /// Order of registration: unattributed messages go to the oldest request.
    seq: u64,
    exchange: u64,
    sse: bool,
    progress_token: Option<String>,
    tx: mpsc::Sender<Outgoing>,
}

/// Where each message from the server goes. Dropping a sender here is what ends a stream
/// when the server is gone; the stream then reads [`Router::gone`] for the reason.
#[derive(Default)]
pub(super) struct Router {
    next_seq: u64,
    /// By request id (its JSON text, so `1` and `"1"` differ as JSON-RPC says).
    pending: HashMap<String, Pending>,
    /// progressToken (JSON text) → request id key.
    progress: HashMap<String, String>,
    listener: Option<(u64, mpsc::Sender<Outgoing>)>,
    backlog: VecDeque<Bytes>,
    backlog_overflowed: bool,
    /// Why the server is gone (what clients read), once it is.
    pub(super) gone: Option<Arc<str>>,
}

impl Router {
    pub(super) fn register(
        &mut self,
        exchange: u64,
        requests: &[Inbound],
        sse: bool,
        tx: &mpsc::Sender<Outgoing>,
    ) -> Result<(), BridgeError> {
        if self.gone.is_some() {
            return Err(BridgeError::UnknownSession);
        }
        for (i, r) in requests.iter().enumerate() {
            if self.pending.contains_key(&r.key) || requests[..i].iter().any(|o| o.key == r.key) {
                return Err(BridgeError::DuplicateId(r.key.clone()));
            }
        }
        for r in requests {
            self.next_seq += 1;
            if let Some(token) = &r.progress_token {
                self.progress.insert(token.clone(), r.key.clone());
            }
            let pending = Pending {
                seq: self.next_seq,
                exchange,
                sse,
                progress_token: r.progress_token.clone(),
                tx: tx.clone(),
            };
            self.pending.insert(r.key.clone(), pending);
        }
        Ok(())
    }

    /// Removes a route unless it was already answered and the id reused by another exchange.
    pub(super) fn unregister(&mut self, exchange: u64, key: &str) {
        if self
            .pending
            .get(key)
            .is_some_and(|p| p.exchange == exchange)
        {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: &str) -> Option<Pending> {
        let pending = self.pending.remove(key)?;
        if let Some(token) = &pending.progress_token {
            if self.progress.get(token).is_some_and(|k| k == key) {
                self.progress.remove(token);
            }
        }
        Some(pending)
    }

    pub(super) fn cancel(&mut self, key: &str) -> Option<Delivery> {
        let pending = self.remove(key)?;
        Some(Delivery {
            tx: pending.tx,
            item: Outgoing::Cancelled {
                key: key.to_owned(),
            },
            to_listener: false,
        })
    }

    pub(super) fn route(
        &mut self,
        msg: &Value,
        line: Bytes,
        service: &str,
        session: &str,
    ) -> Option<Delivery> {
        match classify_server(msg) {
            ServerMessage::Response(key) => {
                let Some(pending) = self.remove(&key) else {
                    tracing::debug!(%service, %session, id = %key,
                        "response for a request nobody waits for any more, dropped");
                    return None;
                };
                Some(Delivery {
                    tx: pending.tx,
                    item: Outgoing::Response { key, line },
                    to_listener: false,
                })
            }
            ServerMessage::Progress(token) => {
                let pending = self.progress.get(&token).and_then(|k| self.pending.get(k));
                match pending {
                    Some(p) if p.sse => Some(Delivery {
                        tx: p.tx.clone(),
                        item: Outgoing::Message(line),
                        to_listener: false,
                    }),
                    _ => {
                        tracing::debug!(%service, %session, %token,
                            "progress for no open event stream, dropped");
                        None
                    }
                }
            }
            ServerMessage::SessionWide => self.for_listener(line, service, session),
            ServerMessage::RequestRelated => match self.oldest_sse_request() {
                Some(tx) => Some(Delivery {
                    tx,
                    item: Outgoing::Message(line),
                    to_listener: false,
                }),
                None => self.for_listener(line, service, session),
            },
            ServerMessage::Invalid => {
                tracing::warn!(%service, %session, line = %preview(&line),
                    "the server sent a message that is no JSON-RPC message, skipped");
                None
            }
        }
    }

    fn oldest_sse_request(&self) -> Option<mpsc::Sender<Outgoing>> {
        self.pending
            .values()
            .filter(|p| p.sse && !p.tx.is_closed())
            .min_by_key(|p| p.seq)
            .map(|p| p.tx.clone())
    }

    fn for_listener(&mut self, line: Bytes, service: &str, session: &str) -> Option<Delivery> {
        match &self.listener {
            Some((_, tx)) if !tx.is_closed() => Some(Delivery {
                tx: tx.clone(),
                item: Outgoing::Message(line),
                to_listener: true,
            }),
            _ => {
                self.push_backlog(line, service, session);
                None
            }
        }
    }

    pub(super) fn push_backlog(&mut self, line: Bytes, service: &str, session: &str) {
        if self.gone.is_some() {
            return;
        }
        if self.backlog.len() >= BACKLOG_MAX {
            self.backlog.pop_front();
            if !self.backlog_overflowed {
                self.backlog_overflowed = true;
                tracing::warn!(%service, %session,
                    "no GET event stream open and {BACKLOG_MAX} messages waiting: dropping the oldest");
            }
        }
        self.backlog.push_back(line);
    }

    /// Attaches the session's one GET stream and hands it the backlog.
    pub(super) fn attach_listener(
        &mut self,
        stream_no: u64,
        tx: mpsc::Sender<Outgoing>,
    ) -> Result<VecDeque<Bytes>, BridgeError> {
        if self.gone.is_some() {
            return Err(BridgeError::UnknownSession);
        }
        if self.listener.as_ref().is_some_and(|(_, t)| !t.is_closed()) {
            return Err(BridgeError::StreamBusy);
        }
        self.listener = Some((stream_no, tx));
        self.backlog_overflowed = false;
        Ok(std::mem::take(&mut self.backlog))
    }

    pub(super) fn detach_listener(&mut self, stream_no: u64) {
        if self.listener.as_ref().is_some_and(|(n, _)| *n == stream_no) {
            self.listener = None;
        }
    }

    /// The server is gone: every route is dropped, which ends every stream.
    pub(super) fn close(&mut self, reason: Arc<str>) {
        self.gone = Some(reason);
        self.pending.clear();
        self.progress.clear();
        self.listener = None;
        self.backlog.clear();
    }
}

/// What a message from the server is, for routing.
enum ServerMessage {
    Response(String),
    Progress(String),
    SessionWide,
    RequestRelated,
    Invalid,
}

fn classify_server(msg: &Value) -> ServerMessage {
    match kind_of(msg) {
        Kind::Response => match msg.get("id") {
            Some(id) => ServerMessage::Response(id.to_string()),
            None => ServerMessage::Invalid,
        },
        Kind::Notification => {
            let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
            let token = msg.pointer("/params/progressToken");
            match token {
                Some(t) if method == "notifications/progress" => {
                    ServerMessage::Progress(t.to_string())
                }
                _ if method.ends_with("/list_changed")
                    || method == "notifications/resources/updated" =>
                {
                    ServerMessage::SessionWide
                }
                _ => ServerMessage::RequestRelated,
            }
        }
        Kind::Request => ServerMessage::RequestRelated,
        Kind::Invalid => ServerMessage::Invalid,
    }
}

#[cfg(test)]
mod tests;
