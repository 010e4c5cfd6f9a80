//! Entry points for the fuzz targets in `fuzz/` (not part of the API): the bridge's pure
//! parts (the client's messages, the router) driven the way a session drives them, with
//! channels standing in for the HTTP streams, and the routing promises checked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::client_msg::{parse_client_body, sse_safe, Kind};
use super::router::{Outgoing, Router};

const STREAM_CAPACITY: usize = 4096;

/// One HTTP stream as the fuzz target sees it: what it registered, what it received.
struct Stream {
    rx: mpsc::Receiver<Outgoing>,
    registered: HashSet<String>,
    answered: HashSet<String>,
}

/// A session's router with the client's POSTs, the server's lines and the GET stream as
/// calls; [`RouterHarness::check`] asserts that every response reached the stream that asked.
pub struct RouterHarness {
    router: Router,
    streams: HashMap<u64, Stream>,
    listeners: HashMap<u64, mpsc::Receiver<Outgoing>>,
}

impl Default for RouterHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterHarness {
    pub fn new() -> Self {
        RouterHarness {
            router: Router::default(),
            streams: HashMap::new(),
            listeners: HashMap::new(),
        }
    }

    /// A POST with `body` on exchange `exchange`: cancellations first, then the requests are
    /// registered (as `bridge::forward` does). Returns how many requests were registered.
    pub fn post(&mut self, exchange: u64, body: &[u8], sse: bool) -> Result<usize, String> {
        let batch = parse_client_body(body).map_err(|e| e.to_string())?;
        let (requests, others): (Vec<_>, Vec<_>) = batch
            .messages
            .into_iter()
            .partition(|m| m.kind == Kind::Request);
        for key in others.iter().filter_map(|m| m.cancels.as_deref()) {
            if let Some(d) = self.router.cancel(key) {
                let _ = d.tx.try_send(d.item);
            }
        }
        if requests.is_empty() || self.streams.contains_key(&exchange) {
            return Ok(0);
        }
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        self.router
            .register(exchange, &requests, sse, &tx)
            .map_err(|e| e.to_string())?;
        self.streams.insert(
            exchange,
            Stream {
                rx,
                registered: requests.iter().map(|r| r.key.clone()).collect(),
                answered: HashSet::new(),
            },
        );
        Ok(requests.len())
    }

    /// One line from the server, routed as `SessionState::dispatch` does.
    pub fn server_line(&mut self, raw: &[u8]) {
        let raw = raw.trim_ascii();
        let Ok(msg) = serde_json::from_slice::<Value>(raw) else {
            return;
        };
        let items = match msg {
            Value::Array(items) => items
                .into_iter()
                .map(|item| {
                    let line = Bytes::from(serde_json::to_vec(&item).unwrap_or_default());
                    (item, line)
                })
                .collect(),
            msg => vec![(msg, Bytes::from(sse_safe(raw)))],
        };
        for (msg, line) in items {
            if let Some(d) = self.router.route(&msg, line, "fuzz", "fuzz") {
                let _ = d.tx.try_send(d.item);
            }
        }
    }

    /// The client gives up on exchange `exchange` (its stream drops its routes).
    pub fn drop_exchange(&mut self, exchange: u64) {
        if let Some(stream) = self.streams.remove(&exchange) {
            for key in &stream.registered {
                self.router.unregister(exchange, key);
            }
        }
    }

    /// A GET stream opens; its backlog is delivered at once.
    pub fn attach(&mut self, stream_no: u64) -> Result<usize, String> {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let backlog = self
            .router
            .attach_listener(stream_no, tx)
            .map_err(|e| e.to_string())?;
        self.listeners.insert(stream_no, rx);
        Ok(backlog.len())
    }

    /// The GET stream `stream_no` closes.
    pub fn detach(&mut self, stream_no: u64) {
        self.listeners.remove(&stream_no);
        self.router.detach_listener(stream_no);
    }

    /// The server is gone.
    pub fn close(&mut self) {
        self.router.close(Arc::from("fuzz: server gone"));
    }

    /// Reads what every stream received and checks the routing promises: a response reaches
    /// only the stream that sent a request with its id, at most once; a GET stream never
    /// receives a response.
    pub fn check(&mut self) {
        for (exchange, stream) in &mut self.streams {
            while let Ok(item) = stream.rx.try_recv() {
                if let Outgoing::Response { key, .. } | Outgoing::Cancelled { key } = item {
                    assert!(
                        stream.registered.contains(&key),
                        "exchange {exchange} got the answer to {key}, which it never sent"
                    );
                    assert!(
                        stream.answered.insert(key.clone()),
                        "exchange {exchange} got two answers to {key}"
                    );
                }
            }
        }
        for (stream_no, rx) in &mut self.listeners {
            while let Ok(item) = rx.try_recv() {
                assert!(
                    matches!(item, Outgoing::Message(_)),
                    "GET stream {stream_no} got a response"
                );
            }
        }
    }
}
