//! The process of one stdio session: waiting on it, and bringing it down (close stdin, then
//! SIGTERM, then SIGKILL to its process group).

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::bridge::{End, Inbox, Link, Stop};

/// Each step of a clean shutdown (close stdin → SIGTERM → SIGKILL) waits this long.
const GRACE: Duration = Duration::from_secs(2);
/// After the process exited, how long its last stdout lines may take to be routed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Why a process ended by itself.
pub enum Ending {
    /// The process exited on its own.
    Exited(io::Result<ExitStatus>),
    /// The process closed its stdout: it is probably exiting; wait briefly for that.
    StdoutClosed,
    /// Writing to stdin failed: same.
    StdinBroken,
}

/// Owns the child: the only place that waits on it or signals it, so a signal can never hit
/// a reaped (and possibly reused) pid.
pub struct Supervisor {
    child: Child,
    pid: Option<u32>,
    inbox: Inbox,
    reader: JoinHandle<()>,
    writer: JoinHandle<io::Result<()>>,
    /// Set by [`Link::close`]: the reason, the exit status, and whether it was a crash.
    outcome: Option<Outcome>,
}

struct Outcome {
    reason: String,
    status: Option<ExitStatus>,
    crashed: bool,
    /// Whether the stdout reader has already finished (no need to let it drain).
    reader_done: bool,
}

impl Supervisor {
    pub(super) fn new(
        child: Child,
        inbox: Inbox,
        reader: JoinHandle<()>,
        writer: JoinHandle<io::Result<()>>,
    ) -> Self {
        Supervisor {
            pid: child.id(),
            child,
            inbox,
            reader,
            writer,
            outcome: None,
        }
    }

    /// The process stopped talking: report its exit if it exits by itself, else stop it.
    async fn end_quiet(&mut self, what: &str) -> (String, Option<ExitStatus>, bool) {
        match timeout(GRACE, self.child.wait()).await {
            Ok(status) => (exit_reason(&status), status.ok(), true),
            Err(_) => {
                let status = self.terminate().await;
                (what.to_owned(), status.ok(), true)
            }
        }
    }

    /// Close stdin, then SIGTERM, then SIGKILL, [`GRACE`] apart.
    async fn terminate(&mut self) -> io::Result<ExitStatus> {
        self.inbox.close_writes();
        if let Ok(status) = timeout(GRACE, self.child.wait()).await {
            return status;
        }
        self.signal_group(signal::SIGTERM);
        if let Ok(status) = timeout(GRACE, self.child.wait()).await {
            return status;
        }
        self.kill().await
    }

    async fn kill(&mut self) -> io::Result<ExitStatus> {
        self.signal_group(signal::SIGKILL);
        let _ = self.child.start_kill();
        self.child.wait().await
    }

    /// `child.id()` is `None` once the child was reaped, so a reused pid is never signalled.
    fn signal_group(&self, sig: signal::Signal) {
        if let Some(pid) = self.child.id() {
            signal::to_group(pid, sig);
        }
    }

    /// Lets the last stdout lines be routed (a final response, say) before streams are closed.
    async fn drain_reader(&mut self) {
        if timeout(DRAIN_AFTER_EXIT, &mut self.reader).await.is_err() {
            // A grandchild still holds stdout open: stop listening to it.
            self.reader.abort();
        }
    }
}

impl Link for Supervisor {
    type Ended = Ending;

    fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn ended(&mut self) -> Ending {
        tokio::select! {
            status = self.child.wait() => Ending::Exited(status),
            _ = &mut self.reader => Ending::StdoutClosed,
            _ = &mut self.writer => Ending::StdinBroken,
        }
    }

    /// Brings the process down as the ending asks.
    async fn close(&mut self, end: End<Ending>) {
        let reader_done = matches!(end, End::Ended(Ending::StdoutClosed));
        let (reason, status, crashed) = match end {
            End::Ended(Ending::Exited(status)) => (exit_reason(&status), status.ok(), true),
            End::Ended(Ending::StdoutClosed) => self.end_quiet("closed its stdout").await,
            End::Ended(Ending::StdinBroken) => self.end_quiet("stopped reading its stdin").await,
            End::Stopped(stop @ Stop::Dropped) => (stop.reason(), self.kill().await.ok(), false),
            End::Stopped(stop) => (stop.reason(), self.terminate().await.ok(), false),
        };
        self.outcome = Some(Outcome {
            reason,
            status,
            crashed,
            reader_done,
        });
    }

    async fn report(mut self) -> String {
        let Some(Outcome {
            reason,
            status,
            crashed,
            reader_done,
        }) = self.outcome.take()
        else {
            return Stop::Dropped.reason();
        };
        if !reader_done {
            self.drain_reader().await;
        }
        let (service, session, pid) = (self.inbox.service(), self.inbox.session(), self.pid);
        // Clients learn what happened and a reference; the exit status and OS errors stay in
        // the log line with the same reference.
        if crashed {
            let reference = underpass_shared::incident::new_ref();
            tracing::warn!(%service, %session, ?pid, ?status, %reference, "stdio server {reason}");
            format!("{} (ref {reference})", public_reason(&reason))
        } else {
            tracing::info!(%service, %session, ?pid, ?status, "stdio session ended: {reason}");
            reason
        }
    }
}

fn exit_reason(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => format!("exited unexpectedly ({s})"),
        Err(e) => format!("could not be watched: {e}"),
    }
}

/// What a client may learn of why a stdio server ended: the kind of ending, without exit
/// statuses or OS errors.
fn public_reason(reason: &str) -> &'static str {
    if reason.starts_with("exited") {
        "exited unexpectedly"
    } else if reason.starts_with("could not be watched") {
        "could not be watched"
    } else if reason.starts_with("closed its stdout") {
        "closed its stdout"
    } else if reason.starts_with("stopped reading") {
        "stopped reading its stdin"
    } else {
        "ended"
    }
}

/// Signals to a whole process group (std has no API for it).
mod signal {
    pub use rustix::process::Signal;
    pub const SIGKILL: Signal = Signal::KILL;
    pub const SIGTERM: Signal = Signal::TERM;

    /// Signals the group led by `leader` (spawned with `process_group(0)`, so pgid = pid).
    /// The leader is not yet reaped (see the caller), so the group id still belongs to our
    /// child.
    pub fn to_group(leader: u32, sig: Signal) {
        let Some(pgid) = i32::try_from(leader)
            .ok()
            .filter(|&p| p > 1)
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        let _ = rustix::process::kill_process_group(pgid, sig);
    }
}
