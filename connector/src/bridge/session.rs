//! The sessions of one service: the table of live sessions, their places under the caps
//! (`max_processes`, `max_processes_per_principal`), and the supervisor task that runs each
//! session's link until it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;

use super::error::BridgeError;
use super::link::{End, Inbox, Link, LinkOpener, Stop};
use super::state::{Activity, SessionState};
use crate::config::SessionLimits;

/// Lines queued for a session's writer before writers wait.
const WRITE_QUEUE: usize = 64;
/// Upper bound for a DELETE or shutdown to wait for a server to be gone (a process's clean
/// shutdown takes up to three 2 s steps, plus a margin).
const STOP_WAIT: Duration = Duration::from_secs(10);

pub(super) struct SessionTable {
    pub(super) service: Arc<str>,
    pub(super) limits: SessionLimits,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Live sessions; shared with each supervisor's [`Slot`], which outlives the table entry.
    pub(super) counts: Arc<Counts>,
    closing: AtomicBool,
}

impl SessionTable {
    pub(super) fn new(service: &str, limits: SessionLimits) -> SessionTable {
        SessionTable {
            service: Arc::from(service),
            limits,
            sessions: Mutex::new(HashMap::new()),
            counts: Arc::new(Counts::default()),
            closing: AtomicBool::new(false),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `id` if `principal` opened it (else it is unknown to them).
    pub(super) fn lookup(
        &self,
        id: &str,
        principal: &str,
    ) -> Result<Arc<SessionState>, BridgeError> {
        let state = self
            .sessions()
            .get(id)
            .filter(|s| &*s.state.principal == principal)
            .map(|s| s.state.clone())
            .ok_or(BridgeError::UnknownSession)?;
        if state.gone().is_some() {
            return Err(BridgeError::UnknownSession);
        }
        state.activity.touch();
        Ok(state)
    }

    pub(super) fn take(&self, id: &str, principal: &str) -> Option<Arc<Session>> {
        let mut map = self.sessions();
        if map.get(id)?.state.principal.as_ref() != principal {
            return None;
        }
        map.remove(id)
    }

    /// Removes the entry only if it is still this session's.
    pub(super) fn forget(&self, state: &Arc<SessionState>) {
        let mut map = self.sessions();
        if map
            .get(&state.id)
            .is_some_and(|s| Arc::ptr_eq(&s.state, state))
        {
            map.remove(&state.id);
        }
    }

    /// Refuses new sessions from now on and hands back the live ones.
    pub(super) fn close_all(&self) -> Vec<Arc<Session>> {
        let mut map = self.sessions();
        self.closing.store(true, Ordering::SeqCst);
        map.drain().map(|(_, s)| s).collect()
    }

    /// Opens a session for `principal` under the caps and starts its link (and its supervisor).
    pub(super) fn start<O: LinkOpener>(
        self: &Arc<Self>,
        opener: &O,
        principal: &str,
    ) -> Result<Arc<Session>, BridgeError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(BridgeError::ShuttingDown);
        }
        let slot = Slot::reserve(&self.counts, principal, &self.limits).map_err(|full| {
            let service = self.service.to_string();
            match full {
                Full::Service => BridgeError::TooManyProcesses {
                    service,
                    limit: self.limits.max_processes,
                },
                Full::Principal => {
                    tracing::info!(%service, %principal, limit = self.limits.max_processes_per_principal,
                        "initialize refused: the principal holds its limit of sessions");
                    BridgeError::PrincipalProcesses {
                        service,
                        limit: self.limits.max_processes_per_principal,
                    }
                }
            }
        })?;
        let (writes_tx, writes_rx) = mpsc::channel(WRITE_QUEUE);
        let state = SessionState::new(self.service.clone(), principal, O::LABEL, writes_tx);
        let link = opener.open(writes_rx, Inbox(state.clone()))?;
        if let Some(pid) = link.pid() {
            let _ = state.pid.set(pid);
        }
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        tokio::spawn(supervise(
            link,
            state.clone(),
            stop_rx,
            Arc::downgrade(self),
            self.limits.idle_timeout,
            slot,
        ));
        let session = Arc::new(Session {
            state,
            stop: stop_tx,
        });
        let mut map = self.sessions();
        // Checked under the lock that `close_all` drains with, so no server escapes it.
        if self.closing.load(Ordering::SeqCst) {
            return Err(BridgeError::ShuttingDown);
        }
        map.insert(session.state.id.clone(), session.clone());
        Ok(session)
    }
}

/// Runs one session's link until it ends by itself, is stopped (DELETE, shutdown, every
/// handle dropped) or idles out; then unlists the session, brings the server down, releases
/// its place under the caps and ends every stream with the reason.
async fn supervise<L: Link>(
    mut link: L,
    state: Arc<SessionState>,
    mut stop: mpsc::UnboundedReceiver<()>,
    table: Weak<SessionTable>,
    idle: Duration,
    slot: Slot,
) {
    let end = tokio::select! {
        ended = link.ended() => End::Ended(ended),
        cmd = stop.recv() => End::Stopped(match cmd {
            Some(()) => Stop::Closed,
            None => Stop::Dropped,
        }),
        () = idle_expired(&state.activity, idle) => End::Stopped(Stop::Idle(idle)),
    };
    if let Some(table) = table.upgrade() {
        table.forget(&state);
    }
    link.close(end).await;
    // Released as soon as the server holds nothing any more.
    drop(slot);
    let public = link.report().await;
    state.router().close(Arc::from(public.as_str()));
    state.finished.send_replace(true);
}

/// Returns once the session has been idle for `limit`; never when `limit` is zero.
async fn idle_expired(activity: &Activity, limit: Duration) {
    if limit.is_zero() {
        return std::future::pending().await;
    }
    loop {
        match activity.idle_for() {
            Some(idle) if idle >= limit => return,
            Some(idle) => tokio::time::sleep(limit - idle).await,
            None => tokio::time::sleep(limit).await,
        }
    }
}

/// Live sessions of a service, in total and per principal.
#[derive(Default)]
pub(super) struct Counts {
    state: Mutex<(usize, HashMap<Arc<str>, usize>)>,
}

impl Counts {
    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<Arc<str>, usize>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn total(&self) -> usize {
        self.lock().0
    }

    pub(super) fn of(&self, principal: &str) -> usize {
        self.lock().1.get(principal).copied().unwrap_or(0)
    }
}

/// Which cap refused a new session.
enum Full {
    Service,
    Principal,
}

/// One place under the caps, held by a supervisor until its server is gone.
struct Slot {
    counts: Arc<Counts>,
    principal: Arc<str>,
}

impl Slot {
    fn reserve(
        counts: &Arc<Counts>,
        principal: &str,
        limits: &SessionLimits,
    ) -> Result<Slot, Full> {
        let mut state = counts.lock();
        let (total, per) = &mut *state;
        let held = per.get(principal).copied().unwrap_or(0);
        if held >= limits.max_processes_per_principal {
            return Err(Full::Principal);
        }
        if *total >= limits.max_processes {
            return Err(Full::Service);
        }
        *total += 1;
        let principal: Arc<str> = Arc::from(principal);
        per.insert(principal.clone(), held + 1);
        Ok(Slot {
            counts: counts.clone(),
            principal,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.counts.lock();
        let (total, per) = &mut *state;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.principal);
            }
        }
    }
}

/// A listed session. Dropping the last handle closes `stop`, which makes the supervisor end
/// the server at once: that is how dropping the service (or an abandoned initialize) kills
/// processes.
pub(super) struct Session {
    pub(super) state: Arc<SessionState>,
    stop: mpsc::UnboundedSender<()>,
}

impl Session {
    /// Asks for a clean shutdown and waits until the server is gone.
    pub(super) async fn stop_and_wait(&self) {
        let mut finished = self.state.finished.subscribe();
        let _ = self.stop.send(());
        let _ = timeout(STOP_WAIT, finished.wait_for(|done| *done)).await;
    }
}

/// An `initialize` in progress: unless committed, its session is unlisted and stopped, also
/// when the exchange is cancelled.
pub(super) struct PendingInit<'a> {
    pub(super) table: &'a SessionTable,
    pub(super) session: &'a Arc<Session>,
    pub(super) committed: bool,
}

impl Drop for PendingInit<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.table.forget(&self.session.state);
            let _ = self.session.stop.send(());
        }
    }
}
