//! The seam between the bridge and a kind of server: a [`LinkOpener`] starts one [`Link`] per
//! session (a stdio process, a legacy SSE connection; later an in-process translator), and the
//! bridge supervises it. Everything else (routing, streams, limits, idle expiry) is the
//! bridge's, shared by every kind of link.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::error::BridgeError;
use super::state::SessionState;
pub use super::state::WriteCmd;

/// Opens the link of each new session of one service.
pub trait LinkOpener: Send + Sync + 'static {
    type Link: Link;

    /// What kind of server it is, completing "the {LABEL} MCP server …" in errors.
    const LABEL: &'static str;

    /// Starts the link of a new session: it sends each [`WriteCmd::Line`] of `writes` to the
    /// server (acknowledging it once sent) and hands every message the server sends to
    /// `inbox`. An error refuses the `initialize` (the link could not even start).
    fn open(
        &self,
        writes: mpsc::Receiver<WriteCmd>,
        inbox: Inbox,
    ) -> Result<Self::Link, BridgeError>;

    /// The error of an `initialize` whose server went away before answering; `reason`
    /// completes "the server …".
    fn init_failed(reason: String) -> BridgeError {
        BridgeError::LinkFailed(reason)
    }
}

/// One session's running link, owned by the bridge's supervisor task. The supervisor waits
/// for [`Link::ended`], a stop or the idle timeout, then calls [`Link::close`], releases the
/// session's place under the caps, and ends every stream with what [`Link::report`] says.
pub trait Link: Send + 'static {
    /// How the server side ended by itself (a process's exit, a lost connection).
    type Ended: Send;

    /// The server's process id, for the log.
    fn pid(&self) -> Option<u32> {
        None
    }

    /// Resolves once the server side has ended by itself. Must be cancel-safe: the supervisor
    /// races it against stops.
    fn ended(&mut self) -> impl Future<Output = Self::Ended> + Send;

    /// Brings the server down: when this returns it holds no resource any more (process
    /// reaped, connection closed).
    fn close(&mut self, end: End<Self::Ended>) -> impl Future<Output = ()> + Send;

    /// Logs how the session ended and returns what clients read after "the … MCP server":
    /// never the backend's details (URL, exit status, OS error), which stay in the log line,
    /// under a reference the message names when the ending was a failure.
    fn report(self) -> impl Future<Output = String> + Send;
}

/// Why a session's link is closed.
pub enum End<E> {
    /// The server side ended by itself.
    Ended(E),
    /// The bridge ends the session.
    Stopped(Stop),
}

/// Why the bridge ends a session whose server is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// DELETE or shutdown: a clean stop.
    Closed,
    /// No request for this long (`idle_timeout_secs`): a clean stop.
    Idle(Duration),
    /// Every handle to the session was dropped (service dropped, initialize abandoned): end
    /// at once.
    Dropped,
}

impl Stop {
    /// The reason clients read, completing "the … MCP server …".
    pub fn reason(self) -> String {
        match self {
            Stop::Closed => "session was closed".into(),
            Stop::Idle(idle) => format!("session was closed after {} s idle", idle.as_secs()),
            Stop::Dropped => "was stopped".into(),
        }
    }
}

/// Where a link delivers the server's messages.
#[derive(Clone)]
pub struct Inbox(pub(super) Arc<SessionState>);

impl Inbox {
    /// Routes one JSON-RPC message (or batch) that must not contain CR or LF.
    pub async fn dispatch(&self, raw: &[u8]) {
        self.0.dispatch(raw).await;
    }

    pub fn service(&self) -> &str {
        &self.0.service
    }

    pub fn session(&self) -> &str {
        &self.0.id
    }

    /// Asks the link's writer to close its pipe once the lines queued before are written.
    pub fn close_writes(&self) {
        let _ = self.0.writes.try_send(WriteCmd::Close);
    }
}
