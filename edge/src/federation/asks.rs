//! What a backend asks a 2025-11-25 client during its `tools/call`, relayed on the call's event
//! stream. A service that speaks 2026-07-28 only asks by answering `input_required` ([`relay`]):
//! the edge turns each input request into a request of its own, waits for the client's answers
//! (they arrive as POSTs of the session, see `pending`), and sends the call again with them,
//! round after round, until the backend answers; a request the client cannot answer ends the
//! call with an error naming it. A legacy backend asks with requests of its own on the call's
//! stream ([`relay_requests`]): each reaches the client under an id of the edge's, the client's
//! answer goes back to the backend under the backend's id; one the client cannot answer is
//! refused to the backend. What the client declared at `initialize` bounds what may be asked.
//!
//! The answers come back to the edge that holds the call's stream: behind a load balancer, a
//! session's POSTs must reach one edge while it has calls waiting for input.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::Response;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use underpass_mcp::federation::asks::{self, InputRequired};
use underpass_mcp::jsonrpc::code;
use underpass_mcp::sse::{KEEPALIVE_COMMENT, KEEPALIVE_INTERVAL};

use crate::app::App;
use crate::federation::pending::PendingAsks;
use crate::federation::upstream::{self, Caller};
use crate::http::body::Body;
use crate::http::respond::event_stream_response;

/// Most rounds of one call: past them the backend is asking without end.
pub const MAX_ROUNDS: usize = 16;
/// Longest the edge waits for the client to answer one round (a person may be answering).
pub const PATIENCE: Duration = Duration::from_secs(600);

/// One call whose answer may ask the client for input.
pub struct Relay {
    pub app: Arc<App>,
    pub service: String,
    /// The caller, with what its client declared it can be asked (`Caller::asks`).
    pub caller: Caller,
    pub method: String,
    /// The backend's name of the tool or prompt (`Mcp-Name`).
    pub name: Option<String>,
    /// The request's parameters as the backend got them in the first round.
    pub params: Value,
    /// Headers each round carries besides the era's (the client's `Mcp-Param-*`).
    pub headers: Vec<(String, Vec<u8>)>,
    pub client_id: Option<Value>,
    /// The id the first round went under.
    pub edge_id: Value,
    /// What the client gets of each message of the backend's (its id given back, its URIs
    /// federated), as for a call that asks nothing.
    pub restore: Box<dyn Fn(Value) -> Value + Send + Sync>,
}

/// The call's answer to the client: an event stream of the backend's messages, the edge's
/// input requests and, last, the backend's answer; `first` is the first round's messages.
pub fn relay(relay: Relay, first: BoxStream<'static, Value>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Value>(16);
    let task = tokio::spawn(run(relay, first, tx));
    sse_response(rx, task.abort_handle())
}

/// The call's answer to the client, for a legacy backend that asks the client with requests
/// of its own on the call's stream: each goes to the client under an id of the edge's, and the
/// client's answer back to the backend under the backend's id, while the call's messages flow.
pub fn relay_requests(relay: Relay, first: BoxStream<'static, Value>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Value>(16);
    let task = tokio::spawn(run_requests(relay, first, tx));
    sse_response(rx, task.abort_handle())
}

/// The id the edge gives a request it sends the client: random, so that no client can guess
/// another's.
fn new_ask_id() -> String {
    format!("underpass-ask-{:016x}", rand::random::<u64>())
}

/// [`relay_requests`]' task: the call's messages to the client, the backend's requests with
/// them, the client's answers back to the backend.
async fn run_requests(r: Relay, mut answers: BoxStream<'static, Value>, tx: mpsc::Sender<Value>) {
    let mut expected = Expected {
        pending: &r.app.federation.asks,
        session: &r.caller.session,
        ids: Vec::new(),
    };
    let mut waiting = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            msg = answers.next() => {
                let Some(msg) = msg else {
                    let _ = tx.send(error(&r, "its answer ended without a result")).await;
                    return;
                };
                match msg.get("method").and_then(Value::as_str) {
                    Some(method) => match msg.get("id").cloned() {
                        Some(backend_id) => {
                            let method = method.to_owned();
                            let Some(rx) = ask(&r, &mut expected, msg, &method, &tx).await else {
                                if tx.is_closed() {
                                    return;
                                }
                                continue;
                            };
                            let answered = async move {
                                (backend_id, tokio::time::timeout(PATIENCE, rx).await)
                            };
                            waiting.push(answered);
                        }
                        // Progress and log notifications of the call, as they come.
                        None => {
                            if tx.send((r.restore)(msg)).await.is_err() {
                                return;
                            }
                        }
                    },
                    None if msg.get("id") == Some(&r.edge_id) => {
                        let _ = tx.send((r.restore)(msg)).await;
                        return;
                    }
                    // A response to nothing the edge asked: not the client's to see.
                    None => {}
                }
            }
            Some((backend_id, answer)) = waiting.next(), if !waiting.is_empty() => {
                let response = match answer {
                    Ok(Ok(answer)) => asks::response_to(&backend_id, &answer),
                    _ => None,
                };
                let response = response.unwrap_or_else(|| {
                    let why = "the client did not answer";
                    underpass_mcp::jsonrpc_error(Some(&backend_id), code::INTERNAL_ERROR, why, None)
                });
                if let Err(e) = upstream::respond(&r.app, &r.service, &r.caller, response).await {
                    let why = format!("the client's answer could not reach it: {e}");
                    let _ = tx.send(error(&r, &why)).await;
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

/// Sends the client a request the backend made (`msg`, its `method`) under an id of the
/// edge's, and returns where its answer will come; `None` when it is not sent: one the client
/// did not declare it can answer, or one too many, is refused to the backend at once (and a
/// client gone is seen by the caller).
async fn ask(
    r: &Relay,
    expected: &mut Expected<'_>,
    mut msg: Value,
    method: &str,
    tx: &mpsc::Sender<Value>,
) -> Option<oneshot::Receiver<Value>> {
    let backend_id = msg.get("id").cloned().unwrap_or(Value::Null);
    let ask_id = new_ask_id();
    let allowed = asks::may_ask(&backend_id.to_string(), method, &r.caller.asks)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let pending = expected.pending.expect(expected.session, &ask_id);
            pending.map_err(|e| e.to_string())
        });
    let rx = match allowed {
        Ok(rx) => rx,
        Err(why) => {
            tracing::info!(service = %r.service, "federated call: a request of the backend not relayed: {why}");
            let no =
                underpass_mcp::jsonrpc_error(Some(&backend_id), code::METHOD_NOT_FOUND, &why, None);
            let _ = upstream::respond(&r.app, &r.service, &r.caller, no).await;
            return None;
        }
    };
    expected.ids.push((method.to_owned(), ask_id.clone()));
    msg["id"] = Value::from(ask_id);
    tx.send(msg).await.ok()?;
    Some(rx)
}

/// [`relay`]'s task: round after round until the backend's answer, or an error saying why
/// not.
async fn run(r: Relay, first: BoxStream<'static, Value>, tx: mpsc::Sender<Value>) {
    let mut answers = first;
    let mut edge_id = r.edge_id.clone();
    let mut params = r.params.clone();
    for _round in 0..MAX_ROUNDS {
        let mut last = None;
        while let Some(msg) = answers.next().await {
            let is_answer = msg.get("id") == Some(&edge_id) && msg.get("method").is_none();
            if is_answer {
                last = Some(msg);
                break;
            }
            // Progress and log notifications of the call, as they come.
            if tx.send((r.restore)(msg)).await.is_err() {
                return;
            }
        }
        drop(answers);
        let Some(mut last) = last else {
            let _ = tx
                .send(error(&r, "its answer ended without a result"))
                .await;
            return;
        };
        let asked = last
            .get("result")
            .and_then(|result| asks::input_required(result, &r.caller.asks));
        let input = match asked {
            None => {
                last["id"] = r.edge_id.clone();
                let _ = tx.send((r.restore)(last)).await;
                return;
            }
            Some(Err(e)) => {
                tracing::info!(service = %r.service, "federated call: input the client cannot be asked for: {e}");
                let _ = tx
                    .send(error(&r, &format!("it asked for input: {e}")))
                    .await;
                return;
            }
            Some(Ok(input)) => input,
        };
        let answered = match gather(&r, &input, &tx).await {
            Ok(answered) => answered,
            Err(Gathered::Gone) => return,
            Err(Gathered::Failed(why)) => {
                let _ = tx.send(error(&r, &why)).await;
                return;
            }
        };
        params = asks::next_params(&params, answered, input.state.as_deref());
        let sent = upstream::call(
            &r.app,
            &r.service,
            &r.caller,
            &r.method,
            r.name.as_deref(),
            params.clone(),
            r.headers.clone(),
        )
        .await;
        match sent {
            Ok((id, stream)) => (edge_id, answers) = (id, stream),
            Err(e) => {
                let _ = tx.send(error(&r, &e.to_string())).await;
                return;
            }
        }
    }
    let why = format!("it asked for input more than {MAX_ROUNDS} times");
    let _ = tx.send(error(&r, &why)).await;
}

/// Why a round's answers were not gathered.
enum Gathered {
    /// The client went away: nobody to tell.
    Gone,
    Failed(String),
}

/// The ids a round waits for, forgotten however the round ends (answered, failed, or its
/// task aborted because the client went away).
struct Expected<'a> {
    pending: &'a PendingAsks,
    session: &'a str,
    /// The key of each request and the id the edge sent it under.
    ids: Vec<(String, String)>,
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        for (_, id) in &self.ids {
            self.pending.forget(self.session, id);
        }
    }
}

/// Sends the client each input request of a round and waits for all its answers, by key.
async fn gather(
    r: &Relay,
    input: &InputRequired,
    tx: &mpsc::Sender<Value>,
) -> Result<Map<String, Value>, Gathered> {
    let mut expected = Expected {
        pending: &r.app.federation.asks,
        session: &r.caller.session,
        ids: Vec::with_capacity(input.requests.len()),
    };
    let mut waiting = Vec::with_capacity(input.requests.len());
    for request in &input.requests {
        let id = new_ask_id();
        let rx = expected
            .pending
            .expect(expected.session, &id)
            .map_err(|e| Gathered::Failed(format!("it asked for input, and {e}")))?;
        waiting.push(rx);
        expected.ids.push((request.key.clone(), id));
    }
    for (request, (_, id)) in input.requests.iter().zip(&expected.ids) {
        if tx.send(asks::ask_message(id, request)).await.is_err() {
            return Err(Gathered::Gone);
        }
    }
    let all = futures_util::future::join_all(waiting);
    let answers = tokio::select! {
        answers = tokio::time::timeout(PATIENCE, all) => answers,
        _ = tx.closed() => return Err(Gathered::Gone),
    };
    let Ok(answers) = answers else {
        return Err(Gathered::Failed(format!(
            "the client did not answer its input requests within {} s",
            PATIENCE.as_secs()
        )));
    };
    let mut by_key = Map::new();
    for ((key, _), answer) in expected.ids.iter().zip(answers) {
        let Ok(answer) = answer else {
            return Err(Gathered::Gone);
        };
        match (answer.get("result"), answer.get("error")) {
            (Some(result), _) if result.is_object() => {
                by_key.insert(key.clone(), result.clone());
            }
            (_, Some(error)) => {
                let said = error.get("message").and_then(Value::as_str).unwrap_or("");
                let said: String = said.chars().take(256).collect();
                return Err(Gathered::Failed(format!(
                    "the client refused its input request {key:?}: {said}"
                )));
            }
            _ => {
                return Err(Gathered::Failed(format!(
                    "the client's answer to its input request {key:?} has no result"
                )))
            }
        }
    }
    Ok(by_key)
}

/// The JSON-RPC error that ends the call.
fn error(r: &Relay, why: &str) -> Value {
    let message = format!("service {:?}: {why}", r.service);
    underpass_mcp::jsonrpc_error(r.client_id.as_ref(), code::UPSTREAM_FAILED, &message, None)
}

/// Stops the relay's task when the client's stream is dropped.
struct Abort(tokio::task::AbortHandle);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An event stream of what `rx` carries, with a keep-alive comment when idle; it ends when
/// the relay does.
fn sse_response(rx: mpsc::Receiver<Value>, task: tokio::task::AbortHandle) -> Response<Body> {
    use http_body_util::{BodyExt, StreamBody};
    let frames = futures_util::stream::unfold((rx, Abort(task)), |(mut rx, task)| async move {
        match tokio::time::timeout(KEEPALIVE_INTERVAL, rx.recv()).await {
            Ok(Some(msg)) => Some((Bytes::from(format!("data: {msg}\n\n")), (rx, task))),
            Ok(None) => None,
            Err(_) => Some((Bytes::from_static(KEEPALIVE_COMMENT), (rx, task))),
        }
    })
    .map(|b| Ok::<_, crate::http::body::BodyError>(http_body::Frame::data(b)));
    event_stream_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
