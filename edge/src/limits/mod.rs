//! Resource limits on the client side, so that no client (authenticated or not) can take the
//! edge's descriptors, memory or backends from everyone else:
//! - [`ConnTable`]: client connections, in total and per source address, with eviction of
//!   the connection idle longest when full;
//! - [`Activity`]: what "idle" means for a connection or a session (no request in flight);
//! - [`PerKey`]: counters with RAII guards (concurrent requests and sessions per principal);
//! - [`BodyBudget`] and [`read_body`]: the bytes of request bodies held at once, all clients
//!   together, and the deadline for receiving one;
//! - [`attach`]: keeps guards alive until a response body has been sent (or dropped);
//! - [`raise_nofile_limit`]: the soft open-file limit raised to the hard one at start.
//!
//! The knobs are `[clients]` keys (`crate::config::ClientsConfig`); defaults are here.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::ClientsConfig;
use crate::http::body::{Body, BodyError};

pub fn default_max_connections() -> usize {
    8192
}
pub fn default_max_connections_per_ip() -> usize {
    256
}
pub fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_header_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn default_keepalive() -> Duration {
    Duration::from_secs(20)
}
pub fn default_max_streams() -> u32 {
    200
}
pub fn default_max_header_list() -> u32 {
    64 * 1024
}
pub fn default_max_buffered_body_bytes() -> usize {
    256 * 1024 * 1024
}
pub fn default_max_concurrent_per_principal() -> usize {
    256
}
pub fn default_max_sessions_per_principal() -> usize {
    256
}
pub fn default_session_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// Descriptors kept free of client connections: tunnels, audit files, watched files, admin.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Checks the `[clients]` limits for values that would refuse everything or nothing.
pub fn validate(c: &ClientsConfig) -> anyhow::Result<()> {
    let positive = [
        ("max_connections", c.max_connections),
        ("max_connections_per_ip", c.max_connections_per_ip),
        (
            "max_concurrent_per_principal",
            c.max_concurrent_per_principal,
        ),
        ("max_sessions_per_principal", c.max_sessions_per_principal),
        (
            "http2_max_concurrent_streams",
            c.http2_max_concurrent_streams as usize,
        ),
    ];
    for (key, value) in positive {
        if value == 0 {
            anyhow::bail!("[clients] {key} must be at least 1");
        }
    }
    let durations = [
        ("handshake_timeout", c.handshake_timeout),
        ("header_timeout", c.header_timeout),
        ("body_timeout", c.body_timeout),
        ("idle_timeout", c.idle_timeout),
        ("session_idle_timeout", c.session_idle_timeout),
    ];
    for (key, value) in durations {
        if value.is_zero() {
            anyhow::bail!("[clients] {key} must be longer than 0s");
        }
    }
    if c.max_buffered_body_bytes < c.max_request_body {
        anyhow::bail!(
            "[clients] max_buffered_body_bytes ({}) is below max_request_body ({}): a body of \
             the largest allowed size could never be accepted",
            c.max_buffered_body_bytes,
            c.max_request_body
        );
    }
    Ok(())
}

/// The edge-wide limit state, built once from `[clients]`.
pub struct Limits {
    pub conns: Arc<ConnTable>,
    /// Requests in flight per principal.
    pub in_flight: PerKey<String>,
    pub bodies: BodyBudget,
    refused_conns: LogThrottle,
}

impl Limits {
    /// `max_connections` is the already clamped cap (see [`connection_cap`]).
    pub fn new(clients: &ClientsConfig, max_connections: usize) -> Limits {
        Limits {
            conns: Arc::new(ConnTable::new(
                max_connections,
                clients.max_connections_per_ip,
            )),
            in_flight: PerKey::default(),
            bodies: BodyBudget::new(clients.max_buffered_body_bytes),
            refused_conns: LogThrottle::default(),
        }
    }

    /// Logs a refused connection, at most once per [`LogThrottle::EVERY`] with a count.
    pub fn log_refused(&self, why: Refused) {
        if let Some(n) = self.refused_conns.hit() {
            tracing::warn!(
                "refused {n} client connection(s) in the last {}s; latest: {why}",
                LogThrottle::EVERY.as_secs()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Open-file limit

/// Raises the soft open-file limit to the hard one ([`underpass_shared::raise_fd_limit`]);
/// returns the limit now in force (None: unlimited or unknown).
pub fn raise_nofile_limit() -> Option<u64> {
    match underpass_shared::raise_fd_limit() {
        Ok(limit) => limit.soft,
        Err(e) => {
            tracing::warn!("cannot raise the open-file limit to the hard limit: {e}");
            let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            now.current
        }
    }
}

/// `[clients] max_connections`, lowered so that client connections cannot take the
/// descriptors the edge needs for everything else.
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured;
    };
    let room = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room)
}

// ---------------------------------------------------------------------------------------------
// Activity: idle = no request in flight

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Requests in flight on a connection or session, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(now_ms()),
        }
    }
}

impl Activity {
    /// Marks a request in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.last_ms.store(now_ms(), Ordering::SeqCst);
        Busy(self.clone())
    }

    /// How long nothing has been in flight; None while a request is.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = self.last_ms.load(Ordering::SeqCst);
        Some(Duration::from_millis(now_ms().saturating_sub(last)))
    }

    /// Resolves once nothing has been in flight for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= timeout => return,
                Some(idle) => timeout - idle,
                None => timeout,
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// A request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Time first: whoever sees the count reach zero must see a fresh time.
        self.0.last_ms.store(now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Counters per key

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single insert, remove or increment: a panic
    // elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many of something each key holds, with guards that give back on drop.
#[derive(Debug)]
pub struct PerKey<K: Hash + Eq> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq> Default for PerKey<K> {
    fn default() -> Self {
        PerKey {
            counts: Arc::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    /// One more for `key`, unless it already holds `cap`.
    pub fn try_acquire(&self, key: &K, cap: usize) -> Option<KeyGuard<K>> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                counts.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(KeyGuard {
            counts: self.counts.clone(),
            key: key.clone(),
        })
    }

    /// One more for `key`, whatever it holds.
    pub fn acquire(&self, key: &K) -> KeyGuard<K> {
        *lock(&self.counts).entry(key.clone()).or_insert(0) += 1;
        KeyGuard {
            counts: self.counts.clone(),
            key: key.clone(),
        }
    }

    pub fn count(&self, key: &K) -> usize {
        lock(&self.counts).get(key).copied().unwrap_or(0)
    }
}

/// One unit held by a key of a [`PerKey`].
pub struct KeyGuard<K: Hash + Eq> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Hash + Eq + std::fmt::Debug> std::fmt::Debug for KeyGuard<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyGuard").field(&self.key).finish()
    }
}

impl<K: Hash + Eq> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// The address a per-source cap counts: IPv4 addresses one by one, IPv6 per /64 (one
/// customer's allocation), IPv4-mapped IPv6 as IPv4.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{ip} already holds {cap} connections ([clients] max_connections_per_ip)")]
    PerIp { ip: IpAddr, cap: usize },
    #[error("{cap} connections open, each with a request in flight ([clients] max_connections)")]
    Full { cap: usize },
}

struct ConnEntry {
    ip: IpAddr,
    activity: Arc<Activity>,
    evict: Arc<Notify>,
    evicting: bool,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, ConnEntry>,
    per_ip: HashMap<IpAddr, usize>,
    /// Entries told to close that have not closed yet (not counted against the cap).
    evicting: usize,
}

/// Every open client connection, capped in total and per source address.
pub struct ConnTable {
    max_total: usize,
    max_per_ip: usize,
    inner: Mutex<Conns>,
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnTable {
        ConnTable {
            max_total,
            max_per_ip,
            inner: Mutex::default(),
        }
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Admits a connection from `ip`. At the total cap, the connection idle longest is told
    /// to close ([`ConnSlot::evicted`]) to make room; if every connection has a request in
    /// flight, the new one is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refused> {
        let ip = source_key(ip);
        let mut guard = lock(&self.inner);
        let conns = &mut *guard;
        let from_ip = conns.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::PerIp {
                ip,
                cap: self.max_per_ip,
            });
        }
        if conns.open.len() - conns.evicting >= self.max_total {
            let victim = conns
                .open
                .iter_mut()
                .filter(|(_, c)| !c.evicting)
                .filter_map(|(_, c)| c.activity.idle_for().map(|idle| (idle, c)))
                .max_by_key(|(idle, _)| *idle)
                .map(|(_, c)| c);
            match victim {
                Some(c) => {
                    c.evicting = true;
                    c.evict.notify_one();
                    conns.evicting += 1;
                }
                None => {
                    return Err(Refused::Full {
                        cap: self.max_total,
                    })
                }
            }
        }
        let id = conns.next_id;
        conns.next_id += 1;
        let activity = Arc::new(Activity::default());
        let evict = Arc::new(Notify::new());
        conns.open.insert(
            id,
            ConnEntry {
                ip,
                activity: activity.clone(),
                evict: evict.clone(),
                evicting: false,
            },
        );
        *conns.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnSlot {
            table: self.clone(),
            id,
            activity,
            evict,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.inner).open.len()
    }
}

/// One admitted connection; leaves the table when dropped.
pub struct ConnSlot {
    table: Arc<ConnTable>,
    id: u64,
    activity: Arc<Activity>,
    evict: Arc<Notify>,
}

impl ConnSlot {
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Resolves when the table wants this connection closed to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut conns = lock(&self.table.inner);
        if let Some(entry) = conns.open.remove(&self.id) {
            if entry.evicting {
                conns.evicting = conns.evicting.saturating_sub(1);
            }
            if let Some(n) = conns.per_ip.get_mut(&entry.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    conns.per_ip.remove(&entry.ip);
                }
            }
        }
    }
}

/// Drives one client connection until it ends, closing it once it has had no request in
/// flight for `idle` or when the table evicts it. A request in flight is never cut: after
/// the graceful shutdown the connection is dropped only while nothing is in flight.
pub async fn drive<F, E>(
    conn: Pin<&mut F>,
    graceful_shutdown: impl FnOnce(Pin<&mut F>),
    slot: &ConnSlot,
    idle: Duration,
) -> Option<E>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    /// How long a connection told to close may take to say goodbye while idle.
    const GOODBYE: Duration = Duration::from_secs(1);
    let mut conn = conn;
    let why = tokio::select! {
        r = conn.as_mut() => return r.err(),
        () = slot.activity.idle(idle) => "idle",
        () = slot.evicted() => "evicted to make room",
    };
    tracing::debug!("closing client connection: {why}");
    graceful_shutdown(conn.as_mut());
    loop {
        tokio::select! {
            r = conn.as_mut() => return r.err(),
            () = tokio::time::sleep(GOODBYE) => {
                if slot.activity.idle_for().is_some() {
                    return None;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded-rate logging

/// Says when to log a repeated event: at most once per [`LogThrottle::EVERY`], with the
/// number of events since the last line.
#[derive(Default)]
pub struct LogThrottle {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl LogThrottle {
    pub const EVERY: Duration = Duration::from_secs(10);

    /// Counts one event; Some(events since the last line) when a line is due.
    pub fn hit(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = lock(&self.last);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            return None;
        }
        *last = Some(now);
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/// The bytes of request bodies the edge holds at once, in KiB permits.
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// Why a request body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BodyRefused {
    #[error("request body exceeds the edge's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the edge holds as many request bodies as it may ([clients] max_buffered_body_bytes); retry shortly")]
    OverBudget,
    #[error("request body not received within {0:?} ([clients] body_timeout)")]
    TimedOut(Duration),
    #[error("could not read request body: {0}")]
    Read(String),
}

fn kib(bytes: usize) -> Option<u32> {
    u32::try_from(bytes.div_ceil(1024)).ok()
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let permits = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// KiB still free.
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }

    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BodyRefused> {
        let n = kib(bytes).ok_or(BodyRefused::OverBudget)?;
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyRefused::OverBudget)
    }
}

/// A received body and its share of the budget, released when the last `Bytes` of it drops.
struct Held {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads a whole request body of at most `limit` bytes within `deadline`, holding its size
/// from `budget` (all of a declared `Content-Length` up front, else as it arrives) until
/// the returned bytes are dropped. Never waits for budget: over it, [`BodyRefused::OverBudget`].
pub async fn read_body<B>(
    body: &mut B,
    limit: usize,
    budget: &BodyBudget,
    deadline: Duration,
) -> Result<Bytes, BodyRefused>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = body
        .size_hint()
        .exact()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyRefused::TooLarge { limit });
    }
    let mut permit = budget.take(declared.unwrap_or(0))?;
    let receive = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyRefused::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Err(BodyRefused::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
            let held = permit.num_permits();
            let needed = kib(buf.len()).ok_or(BodyRefused::OverBudget)? as usize;
            if needed > held {
                permit.merge(budget.take((needed - held) * 1024)?);
            }
        }
        Ok(buf.freeze())
    };
    let bytes = match tokio::time::timeout(deadline, receive).await {
        Ok(r) => r?,
        Err(_) => return Err(BodyRefused::TimedOut(deadline)),
    };
    Ok(Bytes::from_owner(Held {
        bytes,
        _permit: permit,
    }))
}

// ---------------------------------------------------------------------------------------------
// Guards that live as long as a response body

struct Guarded<G> {
    inner: Body,
    _guard: G,
}

impl<G: Unpin> HttpBody for Guarded<G> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response, with `guard` dropped only when its body has been sent in full, cut short
/// or dropped: a streamed response keeps counting as in flight.
pub fn attach<G: Send + Unpin + 'static>(resp: Response<Body>, guard: G) -> Response<Body> {
    resp.map(|inner| {
        UnsyncBoxBody::new(Guarded {
            inner,
            _guard: guard,
        })
    })
}

#[cfg(test)]
mod tests;
