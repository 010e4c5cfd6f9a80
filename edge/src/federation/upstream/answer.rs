//! Reading a backend's answer: the answer to one request (its result as JSON text, or its
//! error), or the messages of an answer as they arrive. Bounded by [`MAX_ANSWER`].

use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::Value;
use underpass_mcp::SseParser;

use crate::federation::upstream::UpstreamError;
use crate::mcp::failover::Sent;
use crate::tunnels::exchange::{response_stream, OnHangUp};

/// Largest answer the edge reads whole from a backend.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The JSON-RPC messages of a backend's answer: an event stream's as they arrive
/// ([`messages`]), a JSON answer's once read whole (at most [`MAX_ANSWER`]; a batch gives
/// each of its messages).
pub fn answers(sent: Sent) -> futures_util::stream::BoxStream<'static, Value> {
    if is_event_stream(&sent) {
        return messages(sent);
    }
    let Sent {
        tunnel,
        recv,
        in_flight,
        ..
    } = sent;
    let mut frames = response_stream(recv, false, &tunnel.connector, OnHangUp::Cancel, None);
    futures_util::stream::once(async move {
        let mut json = Vec::new();
        while let Some(Ok(frame)) = frames.next().await {
            if let Ok(data) = frame.into_data() {
                json.extend_from_slice(&data);
                if json.len() > MAX_ANSWER {
                    return Vec::new();
                }
            }
        }
        drop(in_flight);
        match serde_json::from_slice::<Value>(&json) {
            Ok(Value::Array(batch)) => batch,
            Ok(message) => vec![message],
            Err(_) => Vec::new(),
        }
    })
    .flat_map(futures_util::stream::iter)
    .boxed()
}

/// The JSON-RPC messages of an event stream from a backend, as they arrive (events whose
/// data is not JSON are passed over); ends with the stream or its first failure.
pub fn messages(sent: Sent) -> futures_util::stream::BoxStream<'static, Value> {
    let Sent {
        tunnel,
        recv,
        in_flight,
        ..
    } = sent;
    let frames = response_stream(recv, true, &tunnel.connector, OnHangUp::Cancel, None);
    let state = (frames, SseParser::default(), in_flight);
    futures_util::stream::unfold(state, |(mut frames, mut parser, in_flight)| async move {
        loop {
            let data = match frames.next().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Err(_) => return None,
            };
            let messages: Vec<Value> = match parser.feed(&data) {
                Ok(events) => events
                    .iter()
                    .filter_map(|e| e.data().and_then(|d| serde_json::from_str(d).ok()))
                    .collect(),
                Err(_) => return None,
            };
            if !messages.is_empty() {
                let batch = futures_util::stream::iter(messages);
                return Some((batch, (frames, parser, in_flight)));
            }
        }
    })
    .flatten()
    .boxed()
}

pub(super) fn is_event_stream(sent: &Sent) -> bool {
    sent.head
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with(b"text/event-stream"))
}

/// The answer to request `id` in an exchange's body (JSON, or an event stream whose other
/// messages are passed over): its result, or its JSON-RPC error. Bounded by [`MAX_ANSWER`].
pub(super) async fn read_answer(
    sent: Sent,
    id: &Value,
) -> Result<Result<Box<RawValue>, UpstreamError>, UpstreamError> {
    let is_sse = is_event_stream(&sent);
    let Sent {
        tunnel,
        recv,
        in_flight,
        ..
    } = sent;
    let mut stream = response_stream(recv, is_sse, &tunnel.connector, OnHangUp::Cancel, None);
    let mut parser = SseParser::default();
    let mut json = Vec::new();
    let mut read = 0usize;
    let unreadable = |why: &str| UpstreamError::Unreadable(why.to_owned());
    while let Some(frame) = stream.next().await {
        let Ok(data) = frame.map_err(|e| unreadable(&e.to_string()))?.into_data() else {
            continue;
        };
        read += data.len();
        if read > MAX_ANSWER {
            return Err(unreadable("larger than the edge reads whole"));
        }
        if !is_sse {
            json.extend_from_slice(&data);
            continue;
        }
        let events = parser.feed(&data).map_err(|e| unreadable(&e.to_string()))?;
        for event in events {
            let Some(msg) = event
                .data()
                .and_then(|d| serde_json::from_str::<Envelope<'_>>(d).ok())
            else {
                continue;
            };
            if let Some(answer) = msg.answer(id) {
                drop(in_flight);
                return Ok(answer);
            }
        }
    }
    drop(in_flight);
    if is_sse {
        return Err(unreadable("the event stream ended without the answer"));
    }
    let batch = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let found = if batch {
        serde_json::from_slice::<Vec<Envelope<'_>>>(&json)
            .map_err(|e| unreadable(&e.to_string()))?
            .into_iter()
            .find_map(|m| m.answer(id))
    } else {
        serde_json::from_slice::<Envelope<'_>>(&json)
            .map_err(|e| unreadable(&e.to_string()))?
            .answer(id)
    };
    found.ok_or_else(|| unreadable("no answer to the request in the body"))
}

/// A JSON-RPC message as far as an answer goes: its result stays JSON text (a whole list page
/// is not built into a tree here).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    /// `Some` whenever the member is there, `null` included (as the answer it is).
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

/// A member that is present, whatever its value (`Option`'s own reading takes `null` for
/// absent).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl Envelope<'_> {
    /// The result or error, if this message answers `id`.
    fn answer(self, id: &Value) -> Option<Result<Box<RawValue>, UpstreamError>> {
        let own: Value = serde_json::from_str(self.id?.get()).ok()?;
        if own != *id {
            return None;
        }
        if let Some(result) = self.result {
            return Some(Ok(result.to_owned()));
        }
        let error = self.error?;
        Some(Err(UpstreamError::Rpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(512)
                .collect(),
            data: error.get("data").cloned(),
        }))
    }
}

#[cfg(test)]
mod tests;
