//! The HTTP streams back to the client: a POST's answers (as JSON or as an SSE stream with
//! the messages related to its requests), and the session's one GET event stream.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use underpass_mcp::sse::{KEEPALIVE_COMMENT, KEEPALIVE_INTERVAL, NO_BUFFERING_HEADER};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Interval;

use super::client_msg::Inbound;
use super::error::BridgeError;
use super::router::Outgoing;
use super::state::SessionState;
use crate::answer::Answer;

/// Interval of SSE keep-alive comments: below common proxy and NAT idle timeouts.
/// Messages queued per HTTP stream before the server's reader waits for the client to read.
const STREAM_QUEUE: usize = 256;

/// Registers `requests` for routing before they are written, so that no response can arrive
/// before its route exists.
pub(super) fn register(
    state: &Arc<SessionState>,
    requests: Vec<Inbound>,
    batch: bool,
    sse: bool,
) -> Result<RequestStream, BridgeError> {
    let exchange = state.next_exchange.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    state.router().register(exchange, &requests, sse, &tx)?;
    state.activity.begin();
    let registration = Registration {
        state: state.clone(),
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
        state: state.clone(),
        _registration: registration,
    })
}

/// Removes a request exchange's routes when it ends, however it ends (answered, client gone,
/// body dropped early), and ends its activity.
struct Registration {
    state: Arc<SessionState>,
    exchange: u64,
    keys: Vec<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut router = self.state.router();
            for key in &self.keys {
                router.unregister(self.exchange, key);
            }
        }
        self.state.activity.end();
    }
}

/// The requests of one POST, waiting for their responses.
pub(super) struct RequestStream {
    rx: mpsc::Receiver<Outgoing>,
    /// Request id key → the id itself, for requests not yet answered.
    waiting: Vec<(String, Value)>,
    /// Lines still to write to the server.
    lines: Vec<Bytes>,
    batch: bool,
    state: Arc<SessionState>,
    _registration: Registration,
}

pub(super) enum Step {
    /// A message to pass on before the responses.
    Related(Bytes),
    /// Responses (real ones, or JSON-RPC errors when the server is gone).
    Answers(Vec<Bytes>),
    /// Every request is answered or cancelled.
    Done,
}

impl RequestStream {
    pub(super) async fn write_all(&mut self) {
        for line in std::mem::take(&mut self.lines) {
            if self.state.write(line).await.is_err() {
                tracing::debug!(service = %self.state.service, session = %self.state.id,
                    "writing to the server failed; the session is ending");
                return;
            }
        }
    }

    /// Cancel-safe: state changes only after a message was received.
    pub(super) async fn step(&mut self) -> Step {
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
        let reason = self.state.gone_reason();
        let label = self.state.label;
        let message =
            format!("the {label} MCP server {reason}; start a new session with initialize");
        self.waiting
            .drain(..)
            .map(|(_, id)| {
                let error = underpass_mcp::jsonrpc::error(
                    Some(&id),
                    underpass_mcp::jsonrpc::code::UPSTREAM_FAILED,
                    &message,
                    None,
                );
                Bytes::from(error.to_string())
            })
            .collect()
    }

    /// The answer to a POST: a stream of SSE events, or one JSON body.
    pub(super) fn into_answer(self, sse: bool) -> Answer {
        if sse {
            sse_answer(stream::unfold(
                SseRequest {
                    stream: self,
                    keepalive: keepalive_timer(),
                },
                |mut s| async move { s.next_chunk().await.map(|chunk| (Ok(chunk), s)) },
            ))
        } else {
            json_answer(stream::once(collect_json(self)).map(Ok))
        }
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
                Step::Related(line) => Some(sse_event(self.stream.state.next_event_id(), &line)),
                Step::Answers(lines) => Some(self.events(&lines)),
                Step::Done => None,
            },
            _ = self.keepalive.tick() => Some(Bytes::from_static(KEEPALIVE_COMMENT)),
        }
    }

    fn events(&self, lines: &[Bytes]) -> Bytes {
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(&sse_event(self.stream.state.next_event_id(), line));
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

/// Opens the session's one GET event stream: server messages not tied to a request, the
/// backlog first.
pub(super) fn listen(state: Arc<SessionState>) -> Result<Answer, BridgeError> {
    let stream_no = state.next_exchange.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let backlog = state.router().attach_listener(stream_no, tx)?;
    let listener = Listener {
        rx,
        backlog,
        keepalive: keepalive_timer(),
        _attached: Attachment {
            state: state.clone(),
            stream_no,
        },
        state,
    };
    Ok(sse_answer(stream::unfold(listener, |mut l| async move {
        l.next_chunk().await.map(|chunk| (Ok(chunk), l))
    })))
}

/// Detaches the GET stream when its body is dropped.
struct Attachment {
    state: Arc<SessionState>,
    stream_no: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.state.router().detach_listener(self.stream_no);
        self.state.activity.touch();
    }
}

/// The session's GET stream: server messages not tied to a request.
struct Listener {
    rx: mpsc::Receiver<Outgoing>,
    backlog: VecDeque<Bytes>,
    keepalive: Interval,
    state: Arc<SessionState>,
    _attached: Attachment,
}

impl Listener {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(line) = self.backlog.pop_front() {
            return Some(sse_event(self.state.next_event_id(), &line));
        }
        loop {
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(Outgoing::Message(line)) => {
                        return Some(sse_event(self.state.next_event_id(), &line));
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
    let mut t = tokio::time::interval_at(
        tokio::time::Instant::now() + KEEPALIVE_INTERVAL,
        KEEPALIVE_INTERVAL,
    );
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

pub(super) fn sse_event(id: u64, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(format!("id: {id}\ndata: ").as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(super) fn sse_answer(
    body: impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) -> Answer {
    Answer {
        status: 200,
        headers: vec![
            ("content-type".into(), b"text/event-stream".to_vec()),
            ("cache-control".into(), b"no-cache".to_vec()),
            (
                NO_BUFFERING_HEADER.0.into(),
                NO_BUFFERING_HEADER.1.as_bytes().to_vec(),
            ),
        ],
        body: body.boxed(),
    }
}

pub(super) fn json_answer(
    body: impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.boxed(),
    }
}

pub(super) fn error_answer(e: &BridgeError) -> Answer {
    Answer::error(e.status(), e.rpc_code(), &e.to_string(), e.retry_after())
}
