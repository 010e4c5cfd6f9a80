//! The state of one session shared by its exchanges, its link and its supervisor: the router,
//! the write queue to the server, activity for the idle timeout. Holds no handle that keeps
//! the server alive, so streams and readers may hold it freely.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

use super::client_msg::{preview, sse_safe};
use super::error::BridgeError;
use super::router::{Delivery, Outgoing, Router};

/// How long the server's reader waits for one slow stream before dropping a message for it:
/// one client that stops reading must not stall the session forever.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a session's writer (a process's stdin task, a connection's poster) is asked to do.
pub enum WriteCmd {
    /// Send one message (newline-terminated) and acknowledge once it is sent.
    Line(Bytes, oneshot::Sender<io::Result<()>>),
    /// Close the pipe to the server (processes: stdin) after the lines queued before.
    Close,
}

pub(super) struct SessionState {
    pub(super) service: Arc<str>,
    pub(super) id: String,
    /// Who opened the session: only they may use it.
    pub(super) principal: Arc<str>,
    /// The server's process id, for a process link.
    pub(super) pid: OnceLock<u32>,
    /// What kind of server it is, for error messages ("stdio", "SSE").
    pub(super) label: &'static str,
    router: Mutex<Router>,
    pub(super) writes: mpsc::Sender<WriteCmd>,
    pub(super) activity: Activity,
    next_event: AtomicU64,
    pub(super) next_exchange: AtomicU64,
    /// Set once the server is gone (its process reaped, its connection closed) and every
    /// stream was told.
    pub(super) finished: watch::Sender<bool>,
}

impl SessionState {
    pub(super) fn new(
        service: Arc<str>,
        principal: &str,
        label: &'static str,
        writes: mpsc::Sender<WriteCmd>,
    ) -> Arc<SessionState> {
        Arc::new(SessionState {
            service,
            id: uuid::Uuid::new_v4().to_string(),
            principal: Arc::from(principal),
            pid: OnceLock::new(),
            label,
            router: Mutex::new(Router::default()),
            writes,
            activity: Activity::new(),
            next_event: AtomicU64::new(1),
            next_exchange: AtomicU64::new(1),
            finished: watch::Sender::new(false),
        })
    }

    pub(super) fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn gone(&self) -> Option<Arc<str>> {
        self.router().gone.clone()
    }

    pub(super) fn gone_reason(&self) -> String {
        self.gone()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "abandoned the request".into())
    }

    /// Event ids are unique across all streams of the session, as the spec requires.
    pub(super) fn next_event_id(&self) -> u64 {
        self.next_event.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues one line for the server and waits until it is written. The line is either
    /// written whole or not at all, even if the caller is cancelled: the writer task owns the
    /// pipe.
    pub(super) async fn write(&self, line: Bytes) -> Result<(), BridgeError> {
        let (ack, done) = oneshot::channel();
        self.writes
            .send(WriteCmd::Line(line, ack))
            .await
            .map_err(|_| BridgeError::UnknownSession)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(BridgeError::UnknownSession),
        }
    }

    /// Routes one message from the server. Non-JSON is logged and skipped: the spec forbids
    /// it, but one misbehaving print must not end the session.
    pub(super) async fn dispatch(&self, raw: &[u8]) {
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            return;
        }
        let msg: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(service = %self.service, session = %self.id,
                    line = %preview(raw), "the {} server sent a non-JSON message, skipped: {e}",
                    self.label);
                return;
            }
        };
        match msg {
            Value::Array(items) => {
                for item in items {
                    let line = Bytes::from(serde_json::to_vec(&item).unwrap_or_default());
                    self.route(&item, line).await;
                }
            }
            msg => self.route(&msg, Bytes::from(sse_safe(raw))).await,
        }
    }

    async fn route(&self, msg: &Value, line: Bytes) {
        let delivery = self.router().route(msg, line, &self.service, &self.id);
        if let Some(d) = delivery {
            self.deliver(d).await;
        }
    }

    /// Sends outside the router lock; a stream that stays full past [`DELIVERY_TIMEOUT`] loses
    /// the message rather than stalling every other stream of the session.
    pub(super) async fn deliver(&self, d: Delivery) {
        match timeout(DELIVERY_TIMEOUT, d.tx.send(d.item)).await {
            Ok(Ok(())) => {}
            Ok(Err(mpsc::error::SendError(item))) => {
                if let (true, Outgoing::Message(line)) = (d.to_listener, item) {
                    // The GET stream closed meanwhile: keep the message for the next one.
                    self.router().push_backlog(line, &self.service, &self.id);
                }
            }
            Err(_) => tracing::warn!(service = %self.service, session = %self.id,
                "a client stopped reading its event stream for {DELIVERY_TIMEOUT:?}: message dropped"),
        }
    }
}

/// Activity for the idle timeout: requests in flight, and when the last exchange touched it.
pub(super) struct Activity {
    busy: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            busy: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    pub(super) fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    pub(super) fn begin(&self) {
        self.touch();
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn end(&self) {
        self.touch();
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// How long the session has been idle; `None` while a request is in flight.
    pub(super) fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(
            self.last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed(),
        )
    }
}
