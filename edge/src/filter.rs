//! Filters `tools/list`, `resources/list`, `resources/templates/list` and `prompts/list`
//! responses down to what the caller's policy lets it use, in JSON and in SSE bodies.
//!
//! Only the response to the list request is rewritten; every other byte (other events,
//! unknown fields, keep-alives) passes through unchanged.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::Frame;
use serde_json::Value;
use underpass_shared::mcp::{self, SseParser, Target as McpTarget};

use crate::gate::Call;
use crate::policy::{Policy, Target};
use crate::relay::BodyError;

/// Largest JSON list response the edge will buffer to filter.
const MAX_JSON_LIST: usize = 32 * 1024 * 1024;

const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// What to filter: the list request of this exchange and who asked.
pub struct ListFilter {
    pub id: Value,
    pub method: String,
    pub policy: Arc<Policy>,
    pub principals: Vec<String>,
    pub service: String,
}

impl ListFilter {
    /// A filter if the request lists something and the policy is not allow-all.
    pub fn for_request(
        calls: &[Call],
        policy: Arc<Policy>,
        principals: Vec<String>,
        service: &str,
    ) -> Option<Self> {
        if policy.is_allow_all() {
            return None;
        }
        let call = calls
            .iter()
            .find(|c| c.is_request && LIST_METHODS.contains(&c.method.as_str()))?;
        Some(ListFilter {
            id: call.id.clone()?,
            method: call.method.clone(),
            policy,
            principals,
            service: service.to_owned(),
        })
    }

    /// Rewrites `msg` if it is the response to our list request; returns whether it did.
    pub fn apply(&self, msg: &mut Value) -> bool {
        if msg.get("id") != Some(&self.id) || msg.get("result").is_none() {
            return false;
        }
        let removed = mcp::filter_list_result(&self.method, msg, |t| {
            let target = match t {
                McpTarget::Tool(n) => Target::Tool(n),
                McpTarget::Resource(u) => Target::Resource(u),
                McpTarget::Prompt(n) => Target::Prompt(n),
            };
            self.policy
                .visible(&self.principals, &self.service, &target)
        });
        tracing::debug!(method = %self.method, removed, "list filtered by policy");
        true
    }

    /// Filters a whole JSON body (a response object, or a batch array).
    pub fn filter_json(&self, body: &[u8]) -> Option<Bytes> {
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let changed = match &mut v {
            Value::Array(items) => items.iter_mut().any(|m| self.apply(m)),
            other => self.apply(other),
        };
        changed.then(|| Bytes::from(v.to_string()))
    }
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send>>;

/// Filters an SSE body event by event, passing every other event through byte for byte.
pub fn filter_sse(inner: Chunks, filter: ListFilter) -> Chunks {
    let state = (inner, SseParser::default(), filter, false);
    futures_util::stream::unfold(state, |(mut inner, mut parser, filter, done)| async move {
        if done {
            return None;
        }
        match inner.next().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    return Some((
                        Ok(Frame::data(Bytes::new())),
                        (inner, parser, filter, false),
                    ));
                };
                let events = match parser.feed(&data) {
                    Ok(e) => e,
                    Err(e) => {
                        return Some((
                            Err(format!("event stream unreadable: {e}").into()),
                            (inner, parser, filter, true),
                        ));
                    }
                };
                let mut out = Vec::with_capacity(data.len());
                for mut event in events {
                    let rewritten = event
                        .data()
                        .and_then(|d| serde_json::from_str::<Value>(d).ok())
                        .and_then(|mut msg| filter.apply(&mut msg).then(|| msg.to_string()));
                    if let Some(text) = rewritten {
                        event.set_data(text);
                    }
                    out.extend_from_slice(&event.to_bytes());
                }
                Some((
                    Ok(Frame::data(Bytes::from(out))),
                    (inner, parser, filter, false),
                ))
            }
            Some(Err(e)) => Some((Err(e), (inner, parser, filter, true))),
            None => {
                let rest = parser.finish();
                if rest.is_empty() {
                    None
                } else {
                    Some((
                        Ok(Frame::data(Bytes::from(rest))),
                        (inner, parser, filter, true),
                    ))
                }
            }
        }
    })
    .boxed()
}

/// Reads a JSON body in full (bounded), for filtering.
pub async fn collect_json(mut inner: Chunks) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    while let Some(frame) = inner.next().await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > MAX_JSON_LIST {
                return Err("list response too large to filter".into());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}
