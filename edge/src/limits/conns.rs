//! Client connections, capped in total and per source address, with eviction of the one idle
//! longest when full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::activity::Activity;
use super::lock::lock;

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
    drain: &crate::drain::Drain,
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
        () = drain.started() => {
            match until_between_requests(conn.as_mut(), &slot.activity).await {
                Some(r) => return r.err(),
                None => "edge draining",
            }
        }
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

/// While the edge drains, when to close a client connection (driving it meanwhile; `Some` if
/// it ended by itself): at once if a request is in flight (HTTP/1.1 then answers it with
/// `Connection: close`, HTTP/2 sends GOAWAY, and the request finishes), else at its next
/// request, or once it has been idle [`DRAIN_IDLE`]. Closing an idle HTTP/1.1 connection at
/// once would race a request the client is sending on it right then, which would fail;
/// waiting for the next request (or a client's own keep-alive expiry) avoids most of those.
async fn until_between_requests<F, E>(
    mut conn: Pin<&mut F>,
    activity: &Activity,
) -> Option<Result<(), E>>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    loop {
        match activity.idle_for() {
            None => return None,
            Some(idle) if idle >= DRAIN_IDLE => return None,
            Some(_) => {}
        }
        tokio::select! {
            r = conn.as_mut() => return Some(r),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// How long an idle client connection is kept while the edge drains, waiting for the client's
/// next request (answered, then the connection closes).
const DRAIN_IDLE: Duration = Duration::from_secs(2);
