//! A small L4 (TCP) load balancer for tests, shaped like a Kubernetes Service in front of
//! pods with readiness probes: a backend takes new connections only while its `/readyz`
//! answers 200 (probed every 50 ms), new connections go round-robin over those, and a connect
//! that fails is tried once on each other ready backend (what kube-proxy's retries and a
//! client's reconnect amount to). Bytes are piped both ways as they come; an end of stream is
//! passed on as a half-close, an error closes both sides. Std threads: the load in tests is
//! small.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each backend's `/readyz` is asked.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Bound on one probe and on one connect to a backend (all loopback: these only guard
/// against a wedged peer).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One backend: where its clients connect, and its readiness URL (`http://host:port/path`).
#[derive(Debug, Clone)]
pub struct LbBackend {
    pub addr: SocketAddr,
    pub readyz: String,
}

struct Shared {
    backends: Vec<LbBackend>,
    ready: Vec<AtomicBool>,
    /// Connections piped to each backend.
    connections: Vec<AtomicU64>,
    /// Connects to a backend that failed and were tried on the next one.
    retried: AtomicU64,
    /// Client connections closed because no ready backend took them.
    dropped: AtomicU64,
    next: AtomicUsize,
    stop: AtomicBool,
    /// Both sockets of each connection being piped, so that `Drop` can end them.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

/// A running load balancer; its threads end when it drops.
pub struct Lb {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What an [`Lb`] counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbStats {
    /// Connections piped, per backend (in the order given).
    pub connections: Vec<u64>,
    pub retried: u64,
    pub dropped: u64,
}

impl Lb {
    /// Listens on a free loopback port. Until the first probe answers, no backend is ready
    /// (new connections would be closed): call [`Lb::wait_ready`] first.
    pub fn start(backends: Vec<LbBackend>) -> Lb {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind load balancer");
        let addr = listener.local_addr().expect("load balancer address");
        // Non-blocking, so that the accept loop sees `stop` without a connection arriving.
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            ready: backends.iter().map(|_| AtomicBool::new(false)).collect(),
            connections: backends.iter().map(|_| AtomicU64::new(0)).collect(),
            backends,
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
        });
        let probe = {
            let shared = shared.clone();
            std::thread::spawn(move || probe_loop(&shared))
        };
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&shared, &listener))
        };
        Lb {
            addr,
            shared,
            threads: vec![probe, accept],
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Whether backend `i` passed its last probe.
    pub fn is_ready(&self, i: usize) -> bool {
        self.shared.ready[i].load(Ordering::SeqCst)
    }

    /// Waits until every backend passed a probe; panics after `timeout`.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if (0..self.shared.backends.len()).all(|i| self.is_ready(i)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "load balancer: not every backend became ready within {timeout:?}: {:?}",
            self.shared.backends
        );
    }

    /// Waits until backend `i` passed a probe; panics after `timeout`.
    pub fn wait_backend(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_ready(i) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "load balancer: {:?} not ready within {timeout:?}",
            self.shared.backends[i]
        );
    }

    pub fn stats(&self) -> LbStats {
        LbStats {
            connections: self
                .shared
                .connections
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .collect(),
            retried: self.shared.retried.load(Ordering::SeqCst),
            dropped: self.shared.dropped.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Pipes end when their sockets do; each removes itself from `open` as it ends.
        if let Ok(open) = self.shared.open.lock() {
            for (a, b) in open.values() {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && self
                .shared
                .open
                .lock()
                .map(|o| !o.is_empty())
                .unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn probe_loop(shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        for (i, b) in shared.backends.iter().enumerate() {
            shared.ready[i].store(probe(&b.readyz), Ordering::SeqCst);
        }
        std::thread::sleep(PROBE_EVERY);
    }
}

/// One readiness probe: a GET whose status is 200 (anything else, or no answer in time: not
/// ready).
fn probe(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(addr) = authority.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = s.set_write_timeout(Some(PROBE_TIMEOUT));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    // The status line is all a probe needs.
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut id: u64 = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                id += 1;
                let shared = shared.clone();
                let conn = id;
                std::thread::spawn(move || serve(&shared, conn, client));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Connects `client` to a ready backend (round-robin; a failed connect goes on to the next
/// ready one, each tried at most once) and pipes the bytes.
fn serve(shared: &Shared, id: u64, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let n = shared.backends.len();
    let first = shared.next.fetch_add(1, Ordering::SeqCst);
    let mut upstream = None;
    for k in 0..n {
        let i = (first + k) % n;
        if !shared.ready[i].load(Ordering::SeqCst) {
            continue;
        }
        match TcpStream::connect_timeout(&shared.backends[i].addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                shared.connections[i].fetch_add(1, Ordering::SeqCst);
                upstream = Some(s);
                break;
            }
            Err(_) => {
                shared.retried.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let Some(upstream) = upstream else {
        // No ready backend took it: the client sees its connection closed, as with a
        // Service without ready endpoints.
        shared.dropped.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    if let Ok(mut open) = shared.open.lock() {
        open.insert(id, (c3, u3));
    }
    let up = std::thread::spawn(move || pipe(client, upstream));
    pipe(u2, c2);
    let _ = up.join();
    if let Ok(mut open) = shared.open.lock() {
        open.remove(&id);
    }
}

/// Copies `from` to `to` until `from` ends; an orderly end is passed on as a half-close of
/// `to` (the other direction goes on), an error closes both sockets both ways.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(k) => {
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
