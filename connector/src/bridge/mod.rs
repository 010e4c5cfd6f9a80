//! Stdio backends: MCP servers that are local processes speaking newline-delimited JSON-RPC on
//! stdin/stdout, bridged to the Streamable HTTP exchanges (legacy era, 2025-11-25 and older)
//! that reach the connector through the tunnel.
//!
//! # Model
//! A stdio server serves exactly one client for its whole life, so every MCP session gets its
//! own process: a POST `initialize` without `Mcp-Session-Id` spawns one, and the session id
//! handed back names that process until DELETE, idle timeout, crash or connector shutdown.
//!
//! Everything the process writes on stdout is one JSON-RPC message per line. The bridge must
//! decide which HTTP stream each message belongs on, because Streamable HTTP has one SSE stream
//! per POSTed request plus one optional GET stream, while stdio has a single pipe:
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
//!
//! Ids and message bodies pass through untouched: no id rewriting, so a session's client must
//! not reuse an id that is still in flight (refused with 409).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Interval};

/// Longest stdout line accepted; longer messages are skipped (and logged) so that one runaway
/// message cannot exhaust the connector's memory.
const MAX_STDOUT_LINE: usize = 16 * 1024 * 1024;
/// Longest stderr line logged; the rest of a longer line is cut.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// Interval of SSE keep-alive comments: below common proxy and NAT idle timeouts.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Messages queued per HTTP stream before the stdout reader waits for the client to read.
const STREAM_QUEUE: usize = 256;
/// How long the stdout reader waits for one slow stream before dropping a message for it: one
/// client that stops reading must not stall the session forever.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// GET-stream messages kept while no GET stream is open.
const BACKLOG_MAX: usize = 256;
/// Lines queued for stdin before writers wait.
const STDIN_QUEUE: usize = 64;
/// A server that has not answered `initialize` by then is considered broken (generous: the first
/// start of an `npx` command may download packages).
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Each step of a clean shutdown (close stdin → SIGTERM → SIGKILL) waits this long.
const GRACE: Duration = Duration::from_secs(2);
/// After the process exited, how long its last stdout lines may take to be routed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// Upper bound for a DELETE or shutdown to wait for a process to be gone (3 × GRACE + margin).
const STOP_WAIT: Duration = Duration::from_secs(10);
const KEEPALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
/// `Retry-After` of a refused `initialize`: sessions end by DELETE or idle timeout, so asking
/// again at once rarely helps.
const SESSION_RETRY_AFTER_SECS: u64 = 5;

/// Resource limits of one stdio service (`max_processes`, `max_processes_per_principal` and
/// `idle_timeout_secs` of its `[[services]]` entry in connector.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioLimits {
    /// Processes (= sessions, including ones still initializing or shutting down) that may run
    /// at once; beyond it `initialize` is answered 503.
    pub max_processes: usize,
    /// Of those, processes one principal may hold; beyond it that principal's `initialize` is
    /// answered 429, so one caller cannot take every process.
    pub max_processes_per_principal: usize,
    /// A session with no request in flight and no new exchange for this long is shut down
    /// cleanly. An open GET stream alone does not count as activity, so a forgotten client
    /// cannot pin a process forever. `Duration::ZERO` disables the timeout.
    pub idle_timeout: Duration,
}

impl Default for StdioLimits {
    fn default() -> Self {
        StdioLimits {
            max_processes: 32,
            max_processes_per_principal: 8,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Why an exchange could not be served; each maps to an HTTP status and a JSON-RPC error.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("the request body is not valid JSON: {0}")]
    Parse(String),
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(String),
    #[error("missing Mcp-Session-Id header: open a session with an `initialize` request first")]
    MissingSession,
    #[error(
        "session not found (closed, idle too long, or its server process exited): \
         send a new `initialize` request without Mcp-Session-Id"
    )]
    UnknownSession,
    #[error("request id {0} is already in flight in this session: use a fresh id")]
    DuplicateId(String),
    #[error("this session already has an open GET event stream: only one is allowed at a time")]
    StreamBusy,
    #[error("HTTP method {0} is not supported here: use POST, GET or DELETE")]
    Method(String),
    #[error(
        "service {service:?} already has its limit of {limit} open sessions (each a server \
         process or backend connection): close unused sessions with HTTP DELETE, retry later, \
         or raise `max_processes` of this service in connector.toml"
    )]
    TooManyProcesses { service: String, limit: usize },
    #[error(
        "you already hold {limit} open sessions of service {service:?}, the most one caller \
         may hold: close unused sessions with HTTP DELETE, or retry once one has ended \
         (`max_processes_per_principal` of this service in connector.toml)"
    )]
    PrincipalProcesses { service: String, limit: usize },
    #[error("the connector is shutting down: retry in a moment")]
    ShuttingDown,
    #[error("service {0:?} has no command configured")]
    NoCommand(String),
    /// The details (program, OS error) are in the connector's log under `reference`.
    #[error("the stdio MCP server could not be started (ref {reference})")]
    Spawn { reference: String },
    #[error(
        "the stdio server {0} before answering initialize (its stderr is in the connector log)"
    )]
    InitFailed(String),
    #[error("the MCP server {0} before answering initialize")]
    LinkFailed(String),
    #[error("the stdio server did not answer initialize within {0} s")]
    InitTimeout(u64),
}

impl StdioError {
    /// HTTP status, per the Streamable HTTP rules where they say one.
    pub fn status(&self) -> u16 {
        match self {
            StdioError::Parse(_)
            | StdioError::Invalid(_)
            | StdioError::MissingSession
            | StdioError::DuplicateId(_) => 400,
            StdioError::UnknownSession => 404,
            StdioError::Method(_) => 405,
            StdioError::StreamBusy => 409,
            StdioError::NoCommand(_) => 500,
            StdioError::Spawn { .. } | StdioError::InitFailed(_) | StdioError::LinkFailed(_) => 502,
            StdioError::TooManyProcesses { .. } | StdioError::ShuttingDown => 503,
            StdioError::PrincipalProcesses { .. } => 429,
            StdioError::InitTimeout(_) => 504,
        }
    }

    /// Seconds after which a retry may succeed, for `Retry-After` on a capacity refusal.
    fn retry_after(&self) -> Option<u64> {
        match self {
            StdioError::TooManyProcesses { .. } | StdioError::PrincipalProcesses { .. } => {
                Some(SESSION_RETRY_AFTER_SECS)
            }
            StdioError::ShuttingDown => Some(1),
            _ => None,
        }
    }

    fn rpc_code(&self) -> i64 {
        use underpass_shared::jsonrpc::code;
        match self {
            StdioError::Parse(_) => code::PARSE_ERROR,
            StdioError::Invalid(_) | StdioError::MissingSession | StdioError::DuplicateId(_) => {
                code::INVALID_REQUEST
            }
            StdioError::UnknownSession => code::NOT_FOUND,
            StdioError::Method(_) | StdioError::StreamBusy => code::INVALID_REQUEST,
            StdioError::NoCommand(_) => code::INTERNAL_ERROR,
            StdioError::Spawn { .. }
            | StdioError::InitFailed(_)
            | StdioError::LinkFailed(_)
            | StdioError::InitTimeout(_) => code::UPSTREAM_FAILED,
            StdioError::TooManyProcesses { .. } | StdioError::ShuttingDown => code::UNAVAILABLE,
            StdioError::PrincipalProcesses { .. } => code::RATE_LIMITED,
        }
    }
}

/// The answer to one exchange: status and headers at once, the body as it is produced.
pub struct StdioResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: BoxStream<'static, Result<Bytes, io::Error>>,
}

impl std::fmt::Debug for StdioResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// One configured stdio service and the processes of its sessions.
///
/// Dropping it kills every process (the supervisors notice their sessions are gone); prefer
/// [`StdioService::shutdown`] for a clean stop.
pub struct StdioService {
    inner: Arc<Inner>,
}

impl StdioService {
    /// Nothing is started here (no runtime needed): processes are spawned per session.
    pub fn new(
        service: &str,
        command: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
        limits: StdioLimits,
    ) -> Self {
        StdioService {
            inner: Arc::new(Inner {
                service: Arc::from(service),
                backend: Backend::Process { command, env, cwd },
                limits,
                sessions: Mutex::new(HashMap::new()),
                processes: Arc::new(Counts::default()),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// A service whose sessions are not processes but connections that `opener` runs (see
    /// [`crate::backends::sse`]); everything else (routing, streams, limits) is shared.
    /// `max_processes` then caps connections.
    pub(crate) fn with_link(
        service: &str,
        opener: Arc<dyn LinkOpener>,
        limits: StdioLimits,
    ) -> Self {
        StdioService {
            inner: Arc::new(Inner {
                service: Arc::from(service),
                backend: Backend::Link(opener),
                limits,
                sessions: Mutex::new(HashMap::new()),
                processes: Arc::new(Counts::default()),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Serves one HTTP exchange (legacy MCP era, 2025-11-25 and older) for `principal` (who
    /// the edge authenticated). Never panics on what the client or the process sends; every
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
    ) -> StdioResponse {
        match self.try_exchange(principal, method, headers, body).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(service = %self.inner.service, %method, "stdio exchange refused: {e}");
                error_response(&e)
            }
        }
    }

    /// Ends every process cleanly (close stdin, SIGTERM, SIGKILL) and refuses new sessions.
    pub async fn shutdown(&self) {
        let sessions: Vec<Arc<Session>> = {
            let mut map = self.inner.sessions();
            self.inner.closing.store(true, Ordering::SeqCst);
            map.drain().map(|(_, s)| s).collect()
        };
        futures_util::future::join_all(sessions.iter().map(|s| s.stop_and_wait())).await;
    }

    /// Processes currently running for this service (for metrics and tests).
    pub fn process_count(&self) -> usize {
        self.inner.processes.total()
    }

    /// Processes currently running for this service on behalf of `principal`.
    pub fn process_count_of(&self, principal: &str) -> usize {
        self.inner.processes.of(principal)
    }

    async fn try_exchange(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> Result<StdioResponse, StdioError> {
        let session = header(headers, "mcp-session-id");
        match method {
            "POST" => {
                self.post(principal, session, accepts_sse(headers), &body)
                    .await
            }
            "GET" => self.get(principal, session.ok_or(StdioError::MissingSession)?),
            "DELETE" => {
                self.delete(principal, session.ok_or(StdioError::MissingSession)?)
                    .await
            }
            other => Err(StdioError::Method(other.to_owned())),
        }
    }

    async fn post(
        &self,
        principal: &str,
        session: Option<&str>,
        sse: bool,
        body: &[u8],
    ) -> Result<StdioResponse, StdioError> {
        let batch = parse_client_body(body)?;
        match session {
            Some(id) => forward(self.inner.lookup(id, principal)?, batch, sse).await,
            None => match batch.single_initialize() {
                Some(init) => self.initialize(principal, init, sse).await,
                None => Err(StdioError::MissingSession),
            },
        }
    }

    /// Spawns the session's process and answers once it has answered `initialize`, so that a
    /// server that dies at start gets a clear error instead of a session id that leads nowhere.
    async fn initialize(
        &self,
        principal: &str,
        init: Inbound,
        sse: bool,
    ) -> Result<StdioResponse, StdioError> {
        let session = self.inner.start_session(principal)?;
        let mut pending = PendingInit {
            inner: &self.inner,
            session: &session,
            committed: false,
        };
        let shared = session.shared.clone();
        let mut stream = register(&shared, vec![init], false, sse)?;
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
        .map_err(|_| StdioError::InitTimeout(INIT_TIMEOUT.as_secs()))?;
        let failed = |reason: String| {
            if shared.label == "stdio" {
                StdioError::InitFailed(reason)
            } else {
                StdioError::LinkFailed(reason)
            }
        };
        let Some(answer) = answer.into_iter().next() else {
            return Err(failed(shared.gone_reason()));
        };
        if let Some(reason) = shared.gone() {
            return Err(failed(reason.to_string()));
        }
        let succeeded = is_success(&answer);
        let mut resp = if sse {
            related.push(answer);
            let events: Vec<_> = related
                .iter()
                .map(|l| Ok(sse_event(shared.next_event_id(), l)))
                .collect();
            sse_response(stream::iter(events))
        } else {
            json_response(stream::once(async move { Ok(answer) }))
        };
        if succeeded {
            pending.committed = true;
            resp.headers
                .push(("mcp-session-id".into(), shared.id.as_bytes().to_vec()));
            tracing::info!(service = %shared.service, session = %shared.id, pid = ?shared.pid, "stdio session opened");
        }
        Ok(resp)
    }

    fn get(&self, principal: &str, session: &str) -> Result<StdioResponse, StdioError> {
        let shared = self.inner.lookup(session, principal)?;
        let stream_no = shared.next_exchange.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let backlog = shared.router().attach_listener(stream_no, tx)?;
        let listener = Listener {
            rx,
            backlog,
            keepalive: keepalive_timer(),
            _attached: Attachment {
                shared: shared.clone(),
                stream_no,
            },
            shared,
        };
        Ok(sse_response(stream::unfold(listener, |mut l| async move {
            l.next_chunk().await.map(|chunk| (Ok(chunk), l))
        })))
    }

    async fn delete(&self, principal: &str, session: &str) -> Result<StdioResponse, StdioError> {
        let session = self
            .inner
            .take(session, principal)
            .ok_or(StdioError::UnknownSession)?;
        session.stop_and_wait().await;
        Ok(StdioResponse {
            status: 200,
            headers: Vec::new(),
            body: stream::empty().boxed(),
        })
    }
}

/// Writes the client's messages to the session's process and answers: 202 when they are only
/// notifications and responses, else a stream that ends with the last response.
async fn forward(
    shared: Arc<Shared>,
    batch: ClientBody,
    sse: bool,
) -> Result<StdioResponse, StdioError> {
    let is_batch = batch.is_batch;
    let (requests, others): (Vec<Inbound>, Vec<Inbound>) = batch
        .messages
        .into_iter()
        .partition(|m| m.kind == Kind::Request);
    for cancelled in others.iter().filter_map(|m| m.cancels.as_deref()) {
        cancel(&shared, cancelled).await;
    }
    for msg in &others {
        shared.write(msg.line.clone()).await?;
    }
    if requests.is_empty() {
        return Ok(StdioResponse {
            status: 202,
            headers: Vec::new(),
            body: stream::empty().boxed(),
        });
    }
    let mut stream = register(&shared, requests, is_batch, sse)?;
    // A failed write needs no answer here: the supervisor then ends the session, which ends
    // this stream with a JSON-RPC error for every request.
    stream.write_all().await;
    Ok(if sse {
        sse_response(stream::unfold(
            SseRequest {
                stream,
                keepalive: keepalive_timer(),
            },
            |mut s| async move { s.next_chunk().await.map(|chunk| (Ok(chunk), s)) },
        ))
    } else {
        json_response(stream::once(collect_json(stream)).map(Ok))
    })
}

/// The client gave up on a request: end its stream now, since the server will not answer it.
async fn cancel(shared: &Shared, key: &str) {
    let delivery = shared.router().cancel(key);
    if let Some(d) = delivery {
        shared.deliver(d).await;
    }
}

/// Registers `requests` for routing before they are written, so that no response can arrive
/// before its route exists.
fn register(
    shared: &Arc<Shared>,
    requests: Vec<Inbound>,
    batch: bool,
    sse: bool,
) -> Result<RequestStream, StdioError> {
    let exchange = shared.next_exchange.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    shared.router().register(exchange, &requests, sse, &tx)?;
    shared.activity.begin();
    let registration = Registration {
        shared: shared.clone(),
        exchange,
        keys: requests.iter().map(|r| r.key.clone()).collect(),
    };
    Ok(RequestStream {
        rx,
        waiting: requests
            .iter()
            .map(|r| (r.key.clone(), r.id.clone()))
            .collect(),
        lines: requests.into_iter().map(|r| r.line).collect(),
        batch,
        shared: shared.clone(),
        _registration: registration,
    })
}

// ---------------------------------------------------------------------------------------------
// Service state
// ---------------------------------------------------------------------------------------------

/// Runs the connection of one session to a server that is not a local process.
pub(crate) trait LinkOpener: Send + Sync + 'static {
    /// Sends each [`WriteCmd::Line`] of `writes` to the server (acknowledging it once sent)
    /// and hands every message the server sends to `inbox`. Resolves, with a reason that
    /// completes "the MCP server …", once the connection is lost; dropped to close it.
    fn run(&self, writes: mpsc::Receiver<WriteCmd>, inbox: Inbox) -> BoxFuture<'static, String>;
}

/// Where a link delivers the server's messages.
#[derive(Clone)]
pub(crate) struct Inbox(Arc<Shared>);

impl Inbox {
    /// Routes one JSON-RPC message (or batch) that must not contain CR or LF.
    pub(crate) async fn dispatch(&self, raw: &[u8]) {
        self.0.dispatch(raw).await;
    }

    pub(crate) fn service(&self) -> &str {
        &self.0.service
    }

    pub(crate) fn session(&self) -> &str {
        &self.0.id
    }
}

enum Backend {
    Process {
        command: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Link(Arc<dyn LinkOpener>),
}

struct Inner {
    service: Arc<str>,
    backend: Backend,
    limits: StdioLimits,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Live processes; shared with each supervisor's [`Slot`], which outlives the session entry.
    processes: Arc<Counts>,
    closing: AtomicBool,
}

impl Inner {
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `id` if `principal` opened it (else it is unknown to them).
    fn lookup(&self, id: &str, principal: &str) -> Result<Arc<Shared>, StdioError> {
        let shared = self
            .sessions()
            .get(id)
            .filter(|s| &*s.shared.principal == principal)
            .map(|s| s.shared.clone())
            .ok_or(StdioError::UnknownSession)?;
        if shared.gone().is_some() {
            return Err(StdioError::UnknownSession);
        }
        shared.activity.touch();
        Ok(shared)
    }

    fn take(&self, id: &str, principal: &str) -> Option<Arc<Session>> {
        let mut map = self.sessions();
        if map.get(id)?.shared.principal.as_ref() != principal {
            return None;
        }
        map.remove(id)
    }

    /// Removes the entry only if it is still this process's session.
    fn forget(&self, shared: &Arc<Shared>) {
        let mut map = self.sessions();
        if map
            .get(&shared.id)
            .is_some_and(|s| Arc::ptr_eq(&s.shared, shared))
        {
            map.remove(&shared.id);
        }
    }

    fn start_session(self: &Arc<Self>, principal: &str) -> Result<Arc<Session>, StdioError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(StdioError::ShuttingDown);
        }
        let slot = Slot::reserve(&self.processes, principal, &self.limits).map_err(|full| {
            let service = self.service.to_string();
            match full {
                Full::Service => StdioError::TooManyProcesses {
                    service,
                    limit: self.limits.max_processes,
                },
                Full::Principal => {
                    tracing::info!(%service, %principal, limit = self.limits.max_processes_per_principal,
                        "initialize refused: the principal holds its limit of sessions");
                    StdioError::PrincipalProcesses {
                        service,
                        limit: self.limits.max_processes_per_principal,
                    }
                }
            }
        })?;
        let session = match &self.backend {
            Backend::Process { .. } => launch(self, self.spawn()?, slot, principal)?,
            Backend::Link(opener) => launch_link(self, opener.as_ref(), slot, principal),
        };
        let mut map = self.sessions();
        // Checked under the lock that `shutdown` drains with, so no process escapes it.
        if self.closing.load(Ordering::SeqCst) {
            return Err(StdioError::ShuttingDown);
        }
        map.insert(session.shared.id.clone(), session.clone());
        Ok(session)
    }

    fn spawn(&self) -> Result<Child, StdioError> {
        let Backend::Process { command, env, cwd } = &self.backend else {
            return Err(StdioError::NoCommand(self.service.to_string()));
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| StdioError::NoCommand(self.service.to_string()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: shutdown signals reach wrappers' children too (`npx` →
            // `node`), and a Ctrl-C meant for the connector does not kill servers mid-request.
            .process_group(0);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.spawn()
            .map_err(|e| self.spawn_failed(&format!("cannot start {program:?}: {e}")))
    }

    /// Logs why a process could not be started; the client learns only the reference.
    fn spawn_failed(&self, detail: &str) -> StdioError {
        let reference = underpass_shared::incident::new_ref();
        tracing::warn!(service = %self.service, %reference, "stdio server not started: {detail}");
        StdioError::Spawn { reference }
    }
}

/// Starts the tasks around a freshly spawned process and returns its session (not yet listed).
fn launch(
    inner: &Arc<Inner>,
    mut child: Child,
    slot: Slot,
    principal: &str,
) -> Result<Arc<Session>, StdioError> {
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        return Err(inner.spawn_failed("its stdio pipes were not created"));
    };
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let shared = new_shared(inner, child.id(), stdin_tx, "stdio", principal);
    let writer = tokio::spawn(write_stdin(stdin, stdin_rx));
    let reader = tokio::spawn(read_stdout(stdout, shared.clone()));
    tokio::spawn(log_stderr(
        stderr,
        shared.service.clone(),
        shared.id.clone(),
    ));
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    tokio::spawn(
        Supervisor {
            child,
            shared: shared.clone(),
            stop: stop_rx,
            reader,
            writer,
            service: Arc::downgrade(inner),
            idle: inner.limits.idle_timeout,
            slot: Some(slot),
        }
        .run(),
    );
    Ok(Arc::new(Session {
        shared,
        stop: stop_tx,
    }))
}

fn new_shared(
    inner: &Inner,
    pid: Option<u32>,
    stdin: mpsc::Sender<WriteCmd>,
    label: &'static str,
    principal: &str,
) -> Arc<Shared> {
    Arc::new(Shared {
        service: inner.service.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        principal: Arc::from(principal),
        pid,
        label,
        router: Mutex::new(Router::default()),
        stdin,
        activity: Activity::new(),
        next_event: AtomicU64::new(1),
        next_exchange: AtomicU64::new(1),
        finished: watch::Sender::new(false),
    })
}

/// Starts a link session: its connection runs inside a supervisor task that ends it on
/// connection loss, stop, drop or idle timeout.
fn launch_link(
    inner: &Arc<Inner>,
    opener: &dyn LinkOpener,
    slot: Slot,
    principal: &str,
) -> Arc<Session> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    let shared = new_shared(inner, None, tx, "SSE", principal);
    let link = opener.run(rx, Inbox(shared.clone()));
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    tokio::spawn(supervise_link(
        shared.clone(),
        link,
        stop_rx,
        Arc::downgrade(inner),
        inner.limits.idle_timeout,
        slot,
    ));
    Arc::new(Session {
        shared,
        stop: stop_tx,
    })
}

async fn supervise_link(
    shared: Arc<Shared>,
    link: BoxFuture<'static, String>,
    mut stop: mpsc::UnboundedReceiver<()>,
    service: Weak<Inner>,
    idle: Duration,
    slot: Slot,
) {
    // The link future is dropped when the select ends, which closes the connection.
    let (reason, lost) = tokio::select! {
        reason = link => (reason, true),
        cmd = stop.recv() => match cmd {
            Some(()) => ("session was closed".to_owned(), false),
            None => ("was stopped".to_owned(), false),
        },
        _ = idle_expired(&shared.activity, idle) => {
            (format!("session was closed after {} s idle", idle.as_secs()), false)
        }
    };
    if let Some(inner) = service.upgrade() {
        inner.forget(&shared);
    }
    drop(slot);
    let (service, session) = (&shared.service, &shared.id);
    // A lost link's reason names the backend (its URL, the error): it goes to the log, and
    // clients get a reference to it.
    let public = if lost {
        let reference = underpass_shared::incident::new_ref();
        tracing::warn!(%service, %session, %reference, "MCP server connection lost: the server {reason}");
        format!("lost its connection (ref {reference})")
    } else {
        tracing::info!(%service, %session, "MCP server session ended: {reason}");
        reason
    };
    shared.router().close(Arc::from(public.as_str()));
    shared.finished.send_replace(true);
}

/// Live processes of a service, in total and per principal.
#[derive(Default)]
struct Counts {
    state: Mutex<(usize, HashMap<Arc<str>, usize>)>,
}

impl Counts {
    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<Arc<str>, usize>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn total(&self) -> usize {
        self.lock().0
    }

    fn of(&self, principal: &str) -> usize {
        self.lock().1.get(principal).copied().unwrap_or(0)
    }
}

/// Which cap refused a new process.
enum Full {
    Service,
    Principal,
}

/// One place in the process caps, held by a supervisor until its process is reaped.
struct Slot {
    counts: Arc<Counts>,
    principal: Arc<str>,
}

impl Slot {
    fn reserve(counts: &Arc<Counts>, principal: &str, limits: &StdioLimits) -> Result<Slot, Full> {
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

/// A listed session. Dropping the last handle closes `stop`, which makes the supervisor kill
/// the process: that is how dropping the service (or an abandoned initialize) kills processes.
struct Session {
    shared: Arc<Shared>,
    stop: mpsc::UnboundedSender<()>,
}

impl Session {
    /// Asks for a clean shutdown and waits until the process is reaped.
    async fn stop_and_wait(&self) {
        let mut finished = self.shared.finished.subscribe();
        let _ = self.stop.send(());
        let _ = timeout(STOP_WAIT, finished.wait_for(|done| *done)).await;
    }
}

/// An `initialize` in progress: unless committed, its session is unlisted and stopped, also
/// when the exchange is cancelled.
struct PendingInit<'a> {
    inner: &'a Inner,
    session: &'a Arc<Session>,
    committed: bool,
}

impl Drop for PendingInit<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.inner.forget(&self.session.shared);
            let _ = self.session.stop.send(());
        }
    }
}

/// State of one session shared by its exchanges and tasks. Holds no handle that keeps the
/// process alive, so streams and readers may hold it freely.
struct Shared {
    service: Arc<str>,
    id: String,
    /// Who opened the session: only they may use it.
    principal: Arc<str>,
    pid: Option<u32>,
    /// What kind of server it is, for error messages ("stdio", "SSE").
    label: &'static str,
    router: Mutex<Router>,
    stdin: mpsc::Sender<WriteCmd>,
    activity: Activity,
    next_event: AtomicU64,
    next_exchange: AtomicU64,
    /// Set once the process is reaped and every stream was told.
    finished: watch::Sender<bool>,
}

impl Shared {
    fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn gone(&self) -> Option<Arc<str>> {
        self.router().gone.clone()
    }

    fn gone_reason(&self) -> String {
        self.gone()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "abandoned the request".into())
    }

    /// Event ids are unique across all streams of the session, as the spec requires.
    fn next_event_id(&self) -> u64 {
        self.next_event.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues one line for stdin and waits until it is written. The line is either written
    /// whole or not at all, even if the caller is cancelled: the writer task owns stdin.
    async fn write(&self, line: Bytes) -> Result<(), StdioError> {
        let (ack, done) = oneshot::channel();
        self.stdin
            .send(WriteCmd::Line(line, ack))
            .await
            .map_err(|_| StdioError::UnknownSession)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(StdioError::UnknownSession),
        }
    }

    /// Routes one stdout line. Non-JSON lines are logged and skipped: the spec forbids them,
    /// but one misbehaving print must not end the session.
    async fn dispatch(&self, raw: &[u8]) {
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            return;
        }
        let msg: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(service = %self.service, session = %self.id,
                    line = %preview(raw), "stdio server wrote a non-JSON line on stdout, skipped: {e}");
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
    async fn deliver(&self, d: Delivery) {
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
struct Activity {
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

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn begin(&self) {
        self.touch();
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.touch();
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// How long the session has been idle; `None` while a request is in flight.
    fn idle_for(&self) -> Option<Duration> {
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

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/// What travels from the stdout reader to one HTTP stream.
enum Outgoing {
    /// A message related to the stream (progress, log, server→client request, notification).
    Message(Bytes),
    /// The response to one of the stream's requests.
    Response { key: String, line: Bytes },
    /// The client cancelled one of the stream's requests: no response will come.
    Cancelled { key: String },
}

struct Delivery {
    tx: mpsc::Sender<Outgoing>,
    item: Outgoing,
    to_listener: bool,
}

struct Pending {
    /// Order of registration: unattributed messages go to the oldest request.
    seq: u64,
    exchange: u64,
    sse: bool,
    progress_token: Option<String>,
    tx: mpsc::Sender<Outgoing>,
}

/// Where each message from the process goes. Dropping a sender here is what ends a stream
/// when the process is gone; the stream then reads [`Router::gone`] for the reason.
#[derive(Default)]
struct Router {
    next_seq: u64,
    /// By request id (its JSON text, so `1` and `"1"` differ as JSON-RPC says).
    pending: HashMap<String, Pending>,
    /// progressToken (JSON text) → request id key.
    progress: HashMap<String, String>,
    listener: Option<(u64, mpsc::Sender<Outgoing>)>,
    backlog: VecDeque<Bytes>,
    backlog_overflowed: bool,
    gone: Option<Arc<str>>,
}

impl Router {
    fn register(
        &mut self,
        exchange: u64,
        requests: &[Inbound],
        sse: bool,
        tx: &mpsc::Sender<Outgoing>,
    ) -> Result<(), StdioError> {
        if self.gone.is_some() {
            return Err(StdioError::UnknownSession);
        }
        for (i, r) in requests.iter().enumerate() {
            if self.pending.contains_key(&r.key) || requests[..i].iter().any(|o| o.key == r.key) {
                return Err(StdioError::DuplicateId(r.key.clone()));
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
    fn unregister(&mut self, exchange: u64, key: &str) {
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

    fn cancel(&mut self, key: &str) -> Option<Delivery> {
        let pending = self.remove(key)?;
        Some(Delivery {
            tx: pending.tx,
            item: Outgoing::Cancelled {
                key: key.to_owned(),
            },
            to_listener: false,
        })
    }

    fn route(
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
                    "stdio server wrote a line that is no JSON-RPC message, skipped");
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

    fn push_backlog(&mut self, line: Bytes, service: &str, session: &str) {
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
    fn attach_listener(
        &mut self,
        stream_no: u64,
        tx: mpsc::Sender<Outgoing>,
    ) -> Result<VecDeque<Bytes>, StdioError> {
        if self.gone.is_some() {
            return Err(StdioError::UnknownSession);
        }
        if self.listener.as_ref().is_some_and(|(_, t)| !t.is_closed()) {
            return Err(StdioError::StreamBusy);
        }
        self.listener = Some((stream_no, tx));
        self.backlog_overflowed = false;
        Ok(std::mem::take(&mut self.backlog))
    }

    fn detach_listener(&mut self, stream_no: u64) {
        if self.listener.as_ref().is_some_and(|(n, _)| *n == stream_no) {
            self.listener = None;
        }
    }

    /// The process is gone: every route is dropped, which ends every stream.
    fn close(&mut self, reason: Arc<str>) {
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

// ---------------------------------------------------------------------------------------------
// Streams back to the client
// ---------------------------------------------------------------------------------------------

/// Removes a request exchange's routes when it ends, however it ends (answered, client gone,
/// body dropped early), and ends its activity.
struct Registration {
    shared: Arc<Shared>,
    exchange: u64,
    keys: Vec<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut router = self.shared.router();
            for key in &self.keys {
                router.unregister(self.exchange, key);
            }
        }
        self.shared.activity.end();
    }
}

/// The requests of one POST, waiting for their responses.
struct RequestStream {
    rx: mpsc::Receiver<Outgoing>,
    /// Request id key → the id itself, for requests not yet answered.
    waiting: Vec<(String, Value)>,
    /// Lines still to write to stdin.
    lines: Vec<Bytes>,
    batch: bool,
    shared: Arc<Shared>,
    _registration: Registration,
}

enum Step {
    /// A message to pass on before the responses.
    Related(Bytes),
    /// Responses (real ones, or JSON-RPC errors when the process is gone).
    Answers(Vec<Bytes>),
    /// Every request is answered or cancelled.
    Done,
}

impl RequestStream {
    async fn write_all(&mut self) {
        for line in std::mem::take(&mut self.lines) {
            if self.shared.write(line).await.is_err() {
                tracing::debug!(service = %self.shared.service, session = %self.shared.id,
                    "stdin write failed; the session is ending");
                return;
            }
        }
    }

    /// Cancel-safe: state changes only after a message was received.
    async fn step(&mut self) -> Step {
        loop {
            if self.waiting.is_empty() {
                return Step::Done;
            }
            match self.rx.recv().await {
                Some(Outgoing::Message(line)) => return Step::Related(line),
                Some(Outgoing::Response { key, line }) => {
                    self.waiting.retain(|(k, _)| *k != key);
                    return Step::Answers(vec![line]);
                }
                Some(Outgoing::Cancelled { key }) => self.waiting.retain(|(k, _)| *k != key),
                None => return Step::Answers(self.fail_all()),
            }
        }
    }

    /// JSON-RPC errors for every request still waiting, so clients are not left hanging.
    fn fail_all(&mut self) -> Vec<Bytes> {
        let reason = self.shared.gone_reason();
        let label = self.shared.label;
        let message =
            format!("the {label} MCP server {reason}; start a new session with initialize");
        self.waiting
            .drain(..)
            .map(|(_, id)| {
                rpc_error(
                    &id,
                    underpass_shared::jsonrpc::code::UPSTREAM_FAILED,
                    &message,
                )
            })
            .collect()
    }
}

struct SseRequest {
    stream: RequestStream,
    keepalive: Interval,
}

impl SseRequest {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        tokio::select! {
            step = self.stream.step() => match step {
                Step::Related(line) => Some(sse_event(self.stream.shared.next_event_id(), &line)),
                Step::Answers(lines) => Some(self.events(&lines)),
                Step::Done => None,
            },
            _ = self.keepalive.tick() => Some(Bytes::from_static(KEEPALIVE_COMMENT)),
        }
    }

    fn events(&self, lines: &[Bytes]) -> Bytes {
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(&sse_event(self.stream.shared.next_event_id(), line));
        }
        Bytes::from(out)
    }
}

/// A JSON answer: the response, or an array of responses for a batch.
async fn collect_json(mut stream: RequestStream) -> Bytes {
    let mut answers = Vec::new();
    loop {
        match stream.step().await {
            Step::Related(_) => {}
            Step::Answers(lines) => answers.extend(lines),
            Step::Done => break,
        }
    }
    if !stream.batch {
        return answers.pop().unwrap_or_default();
    }
    let mut out = b"[".to_vec();
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(a);
    }
    out.push(b']');
    Bytes::from(out)
}

/// Detaches the GET stream when its body is dropped.
struct Attachment {
    shared: Arc<Shared>,
    stream_no: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.shared.router().detach_listener(self.stream_no);
        self.shared.activity.touch();
    }
}

/// The session's GET stream: server messages not tied to a request.
struct Listener {
    rx: mpsc::Receiver<Outgoing>,
    backlog: VecDeque<Bytes>,
    keepalive: Interval,
    shared: Arc<Shared>,
    _attached: Attachment,
}

impl Listener {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(line) = self.backlog.pop_front() {
            return Some(sse_event(self.shared.next_event_id(), &line));
        }
        loop {
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(Outgoing::Message(line)) => {
                        return Some(sse_event(self.shared.next_event_id(), &line));
                    }
                    Some(_) => continue,
                    None => return None,
                },
                _ = self.keepalive.tick() => return Some(Bytes::from_static(KEEPALIVE_COMMENT)),
            }
        }
    }
}

fn keepalive_timer() -> Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

fn sse_event(id: u64, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(format!("id: {id}\ndata: ").as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn sse_response(
    body: impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) -> StdioResponse {
    StdioResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), b"text/event-stream".to_vec()),
            ("cache-control".into(), b"no-cache".to_vec()),
            ("x-accel-buffering".into(), b"no".to_vec()),
        ],
        body: body.boxed(),
    }
}

fn json_response(
    body: impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) -> StdioResponse {
    StdioResponse {
        status: 200,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.boxed(),
    }
}

fn error_response(e: &StdioError) -> StdioResponse {
    let retry = e.retry_after();
    let data = retry.map(|secs| json!({ "retryAfterSeconds": secs }));
    let body = Bytes::from(
        underpass_shared::jsonrpc::error(None, e.rpc_code(), &e.to_string(), data).to_string(),
    );
    let mut headers = vec![("content-type".into(), b"application/json".to_vec())];
    if let Some(secs) = retry {
        headers.push(("retry-after".into(), secs.to_string().into_bytes()));
    }
    StdioResponse {
        status: e.status(),
        headers,
        body: stream::once(async move { Ok(body) }).boxed(),
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Bytes {
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    Bytes::from(v.to_string())
}

fn is_success(response: &[u8]) -> bool {
    serde_json::from_slice::<Value>(response).is_ok_and(|v| v.get("result").is_some())
}

// ---------------------------------------------------------------------------------------------
// Client messages
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

/// Classifies by the fields present. MCP ids are strings or numbers, never null.
fn kind_of(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else {
        return Kind::Invalid;
    };
    let id = obj.get("id");
    let valid_id = id.is_some_and(|id| id.is_string() || id.is_number());
    match obj.get("method") {
        Some(Value::String(_)) if id.is_none() => Kind::Notification,
        Some(Value::String(_)) if valid_id => Kind::Request,
        None if valid_id && (obj.contains_key("result") || obj.contains_key("error")) => {
            Kind::Response
        }
        _ => Kind::Invalid,
    }
}

/// One message from the client, ready for stdin.
struct Inbound {
    kind: Kind,
    /// The id's JSON text (routing key); empty for notifications.
    key: String,
    id: Value,
    /// One line, newline-terminated.
    line: Bytes,
    is_initialize: bool,
    progress_token: Option<String>,
    /// For `notifications/cancelled`: the key of the cancelled request.
    cancels: Option<String>,
}

struct ClientBody {
    messages: Vec<Inbound>,
    is_batch: bool,
}

impl ClientBody {
    fn single_initialize(mut self) -> Option<Inbound> {
        match (self.is_batch, self.messages.pop()) {
            (false, Some(m)) if m.is_initialize && m.kind == Kind::Request => Some(m),
            _ => None,
        }
    }
}

/// Parses a POST body: one message, or a batch (JSON array, allowed by 2025-03-26) whose
/// elements are written to stdin one per line.
fn parse_client_body(body: &[u8]) -> Result<ClientBody, StdioError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| StdioError::Parse(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(StdioError::Invalid("empty batch".into()));
            }
            let messages = items
                .into_iter()
                .map(|item| {
                    let line = serde_json::to_vec(&item).unwrap_or_default();
                    inbound(item, line)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if messages.iter().any(|m| m.is_initialize) {
                return Err(StdioError::Invalid(
                    "initialize must not be part of a batch".into(),
                ));
            }
            Ok(ClientBody {
                messages,
                is_batch: true,
            })
        }
        value => Ok(ClientBody {
            messages: vec![inbound(value, one_line(body))?],
            is_batch: false,
        }),
    }
}

fn inbound(msg: Value, mut line: Vec<u8>) -> Result<Inbound, StdioError> {
    let kind = kind_of(&msg);
    if kind == Kind::Invalid {
        return Err(StdioError::Invalid(
            "expected a request (method and a string or number id), a notification (method, no \
             id) or a response (id with result or error)"
                .into(),
        ));
    }
    line.push(b'\n');
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    Ok(Inbound {
        kind,
        key: if kind == Kind::Notification {
            String::new()
        } else {
            id.to_string()
        },
        id,
        line: Bytes::from(line),
        is_initialize: method == "initialize",
        progress_token: msg
            .pointer("/params/_meta/progressToken")
            .map(Value::to_string),
        cancels: (method == "notifications/cancelled")
            .then(|| msg.pointer("/params/requestId").map(Value::to_string))
            .flatten(),
    })
}

/// The body as one stdio line, byte for byte otherwise. In valid JSON a CR or LF can only be
/// whitespace between tokens (inside strings they are escaped), so replacing them is lossless.
fn one_line(body: &[u8]) -> Vec<u8> {
    body.trim_ascii()
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect()
}

/// A stdout line as SSE data: a CR would end the SSE line early (same reasoning as above).
fn sse_safe(line: &[u8]) -> Vec<u8> {
    line.iter()
        .map(|&b| if b == b'\r' { b' ' } else { b })
        .collect()
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn accepts_sse(headers: &[(String, Vec<u8>)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
        .any(|(_, v)| {
            String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains("text/event-stream")
        })
}

fn preview(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        format!("{text}… ({} bytes)", line.len())
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Process I/O tasks
// ---------------------------------------------------------------------------------------------

/// What a session's writer (stdin task or link) is asked to do.
pub(crate) enum WriteCmd {
    /// Send one message (newline-terminated) and acknowledge once it is sent.
    Line(Bytes, oneshot::Sender<io::Result<()>>),
    /// Close the stdin pipe (processes only).
    Close,
}

/// Owns stdin, so lines are never interleaved or cut by a cancelled exchange. Ends (closing
/// stdin) on `Close` or on the first write error.
async fn write_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<WriteCmd>) -> io::Result<()> {
    while let Some(cmd) = rx.recv().await {
        let WriteCmd::Line(line, ack) = cmd else {
            return Ok(());
        };
        let result = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        }
        .await;
        let failed = result
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        let _ = ack.send(result);
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

async fn read_stdout(stdout: ChildStdout, shared: Arc<Shared>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    loop {
        match read_line_bounded(&mut reader, &mut buf, MAX_STDOUT_LINE).await {
            Ok(Line::Eof) => return,
            Ok(Line::Whole) => shared.dispatch(&buf).await,
            Ok(Line::Cut { len }) => {
                tracing::warn!(service = %shared.service, session = %shared.id,
                    "stdio server wrote a {len}-byte line on stdout, over the {MAX_STDOUT_LINE}-byte limit: skipped");
            }
            Err(e) => {
                tracing::warn!(service = %shared.service, session = %shared.id, "reading stdout failed: {e}");
                return;
            }
        }
    }
}

/// Forwards stderr to the log line by line; per the spec stderr is logging, not an error sign.
async fn log_stderr(stderr: ChildStderr, service: Arc<str>, session: String) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        match read_line_bounded(&mut reader, &mut buf, MAX_STDERR_LINE).await {
            Ok(Line::Whole) => {
                let text = String::from_utf8_lossy(buf.trim_ascii_end());
                tracing::info!(%service, %session, "stderr: {text}");
            }
            Ok(Line::Cut { len }) => {
                let text = String::from_utf8_lossy(&buf);
                tracing::info!(%service, %session, "stderr: {text}… (line of {len} bytes cut)");
            }
            Ok(Line::Eof) | Err(_) => return,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `buf` holds the whole line, without its newline.
    Whole,
    /// The line was longer than the cap: `buf` holds its first `cap` bytes.
    Cut {
        len: usize,
    },
    Eof,
}

/// Reads one line into `buf` without ever holding more than `cap` bytes of it.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut len = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match len {
                0 => Line::Eof,
                n if n > cap => Line::Cut { len: n },
                _ => Line::Whole,
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len();
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(if len > cap {
                Line::Cut { len }
            } else {
                Line::Whole
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------------

/// Why a session ends.
enum Ending {
    /// The process exited on its own.
    Exited(io::Result<ExitStatus>),
    /// The process closed its stdout: it is probably exiting; wait briefly for that.
    StdoutClosed,
    /// Writing to stdin failed: same.
    StdinBroken,
    /// DELETE, shutdown or idle: a clean stop.
    Stop(String),
    /// Every handle to the session was dropped (service dropped, initialize abandoned): kill.
    Dropped,
}

/// Owns the child: the only place that waits on it or signals it, so a signal can never hit
/// a reaped (and possibly reused) pid.
struct Supervisor {
    child: Child,
    shared: Arc<Shared>,
    stop: mpsc::UnboundedReceiver<()>,
    reader: JoinHandle<()>,
    writer: JoinHandle<io::Result<()>>,
    service: Weak<Inner>,
    idle: Duration,
    /// Released as soon as the child is reaped.
    slot: Option<Slot>,
}

impl Supervisor {
    async fn run(mut self) {
        let ending = self.watch().await;
        if let Some(inner) = self.service.upgrade() {
            inner.forget(&self.shared);
        }
        let reader_done = matches!(ending, Ending::StdoutClosed);
        let (reason, status, crashed) = self.end(ending).await;
        self.slot.take();
        if !reader_done {
            self.drain_reader().await;
        }
        let (service, session, pid) = (&self.shared.service, &self.shared.id, self.shared.pid);
        // Clients learn what happened and a reference; the exit status and OS errors stay in
        // the log line with the same reference.
        let public = if crashed {
            let reference = underpass_shared::incident::new_ref();
            tracing::warn!(%service, %session, ?pid, ?status, %reference, "stdio server {reason}");
            format!("{} (ref {reference})", public_reason(&reason))
        } else {
            tracing::info!(%service, %session, ?pid, ?status, "stdio session ended: {reason}");
            reason
        };
        self.shared.router().close(Arc::from(public.as_str()));
        self.shared.finished.send_replace(true);
    }

    async fn watch(&mut self) -> Ending {
        let idle = idle_expired(&self.shared.activity, self.idle);
        tokio::select! {
            status = self.child.wait() => Ending::Exited(status),
            cmd = self.stop.recv() => match cmd {
                Some(()) => Ending::Stop("was closed".into()),
                None => Ending::Dropped,
            },
            _ = idle => Ending::Stop(format!("was closed after {} s idle", self.idle.as_secs())),
            _ = &mut self.reader => Ending::StdoutClosed,
            _ = &mut self.writer => Ending::StdinBroken,
        }
    }

    /// Brings the process down as the ending asks; returns the reason for clients, the exit
    /// status, and whether it was a crash.
    async fn end(&mut self, ending: Ending) -> (String, Option<ExitStatus>, bool) {
        match ending {
            Ending::Exited(status) => (exit_reason(&status), status.ok(), true),
            Ending::StdoutClosed => self.end_quiet("closed its stdout").await,
            Ending::StdinBroken => self.end_quiet("stopped reading its stdin").await,
            Ending::Stop(why) => (format!("session {why}"), self.terminate().await.ok(), false),
            Ending::Dropped => ("was stopped".into(), self.kill().await.ok(), false),
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
        let _ = self.shared.stdin.try_send(WriteCmd::Close);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_lines() {
        let data: &[u8] = b"short\r\n0123456789abcdef\nlast";
        let mut r = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
            Line::Whole
        );
        assert_eq!(buf, b"short\r");
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
            Line::Cut { len: 16 }
        );
        assert_eq!(buf, b"01234567");
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
            Line::Whole
        );
        assert_eq!(buf, b"last");
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 8).await.unwrap(),
            Line::Eof
        );
    }

    #[test]
    fn kinds() {
        let k = |s: &str| kind_of(&serde_json::from_str(s).unwrap());
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Kind::Request
        );
        assert_eq!(k(r#"{"jsonrpc":"2.0","method":"n"}"#), Kind::Notification);
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Kind::Response
        );
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
            Kind::Invalid
        );
        assert_eq!(k(r#"{"jsonrpc":"2.0","id":1}"#), Kind::Invalid);
        assert_eq!(k("3"), Kind::Invalid);
    }

    #[test]
    fn pretty_bodies_become_one_line() {
        let body = b"{\n  \"jsonrpc\": \"2.0\",\r\n  \"method\": \"a\\nb\"\n}\n";
        let parsed = parse_client_body(body).unwrap();
        let line = &parsed.messages[0].line;
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let back: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(back["method"], "a\nb");
    }

    #[test]
    fn client_body_fields() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}}"#;
        let m = parse_client_body(body).unwrap().messages.remove(0);
        assert_eq!((m.kind, m.key.as_str()), (Kind::Request, "7"));
        assert_eq!(m.progress_token.as_deref(), Some("\"t\""));
        let body =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x"}}"#;
        let m = parse_client_body(body).unwrap().messages.remove(0);
        assert_eq!(m.cancels.as_deref(), Some("\"x\""));
        assert!(matches!(
            parse_client_body(b"[]"),
            Err(StdioError::Invalid(_))
        ));
        assert!(matches!(parse_client_body(b"{"), Err(StdioError::Parse(_))));
        let init = br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#;
        assert!(matches!(
            parse_client_body(init),
            Err(StdioError::Invalid(_))
        ));
    }

    #[test]
    fn routing_prefers_progress_token_then_oldest_sse_request() {
        let mut router = Router::default();
        let (tx_a, _rx_a) = mpsc::channel(4);
        let (tx_b, _rx_b) = mpsc::channel(4);
        let req = |id: u64, token: Option<&str>| {
            let mut v = json!({"jsonrpc":"2.0","id":id,"method":"tools/call"});
            if let Some(t) = token {
                v["params"] = json!({"_meta": {"progressToken": t}});
            }
            inbound(v.clone(), v.to_string().into_bytes()).unwrap()
        };
        router.register(1, &[req(1, None)], true, &tx_a).unwrap();
        router
            .register(2, &[req(2, Some("p"))], true, &tx_b)
            .unwrap();
        assert!(matches!(
            router.register(3, &[req(2, None)], true, &tx_b),
            Err(StdioError::DuplicateId(_))
        ));
        let route = |r: &mut Router, v: Value| r.route(&v, Bytes::new(), "s", "x");
        let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}});
        let d = route(&mut router, progress).unwrap();
        assert!(d.tx.same_channel(&tx_b));
        let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{}});
        let d = route(&mut router, log).unwrap();
        assert!(d.tx.same_channel(&tx_a));
        let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
        assert!(route(&mut router, changed).is_none());
        assert_eq!(router.backlog.len(), 1);
        let resp = json!({"jsonrpc":"2.0","id":1,"result":{}});
        assert!(matches!(
            route(&mut router, resp.clone()).unwrap().item,
            Outgoing::Response { .. }
        ));
        assert!(route(&mut router, resp).is_none());
        router.unregister(2, "2");
        assert!(router.pending.is_empty() && router.progress.is_empty());
    }
}
