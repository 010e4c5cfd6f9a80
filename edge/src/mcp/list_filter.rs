//! Filters what a backend sends back down to what the caller's policy lets it see, in JSON and
//! SSE bodies and on the 2024-11-05 bridge:
//!
//! * the answer to every `tools/list`, `resources/list`, `resources/templates/list` and
//!   `prompts/list` of the request (matched by request id, so every list of a batch is
//!   filtered, whatever the order of the answers);
//! * notifications about resources the caller may not read: `notifications/resources/updated`
//!   is dropped, `notifications/subscriptions/acknowledged` loses the URIs (on every event
//!   stream: POST answers, GET streams, `subscriptions/listen`).
//!
//! It also carries the request's [`Mediator`]: the answers of calls a rule's `redact` or
//! `block` covers go through it (see [`crate::mcp::mediate`]).
//!
//! Every other byte (other events, unknown fields, keep-alives) passes through unchanged.
//! Lists are judged by the policy snapshot that admitted the request; notifications on a
//! long-lived stream by the policy in force when they arrive.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::Value;
use underpass_mcp::{self as mcp, NotificationVerdict, SseParser, Target as McpTarget};

use crate::http::body::BodyError;
use crate::mcp::judge::Call;
use crate::mcp::mediate::{MediationLog, Mediator};
use crate::policy::{Policy, Target};
use crate::reload::Reloadable;

/// Largest JSON answer the edge will buffer to filter (a list) or mediate (an obligation).
const MAX_JSON_LIST: usize = 32 * 1024 * 1024;
/// Largest single event of a filtered event stream: each event is read whole before it is
/// forwarded (a client cannot use part of one anyway); a larger one ends the stream.
const MAX_SSE_EVENT: usize = 64 * 1024 * 1024;

const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// What to filter: the list requests of this exchange, and who asked.
pub struct ListFilter {
    /// (request id, method) of every list request.
    lists: Vec<(Value, String)>,
    /// The policy that admitted the request: lists are filtered by it.
    pub policy: Arc<Policy>,
    /// The policy in force: notifications are filtered by it when they arrive.
    live: Arc<Reloadable<Policy>>,
    pub principals: Vec<String>,
    pub service: String,
    /// The obligations on the request's answers, if any.
    mediator: Option<Mediator>,
}

/// What the filter did to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Left alone.
    Unchanged,
    /// Rewritten in place.
    Rewritten,
    /// Not to be forwarded.
    Drop,
}

/// The few top-level members of a message that decide whether to look closer (parsed without
/// building the rest, which may be a large tool result).
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
}

fn policy_target(t: &McpTarget) -> Target<'_> {
    match t {
        McpTarget::Tool(n) => Target::Tool(n),
        McpTarget::Resource(u) => Target::Resource(u),
        McpTarget::Prompt(n) => Target::Prompt(n),
    }
}

impl ListFilter {
    /// A filter for the answers to `calls` (and any notification that comes with them), unless
    /// the policy is allow-all (then `principals` is not even asked for). What obligations do
    /// goes to `mediation`.
    pub fn for_request(
        calls: &[Call],
        policy: Arc<Policy>,
        live: Arc<Reloadable<Policy>>,
        principals: impl FnOnce() -> Vec<String>,
        service: &str,
        mediation: &MediationLog,
    ) -> Option<Self> {
        if policy.is_allow_all() {
            return None;
        }
        let lists = calls
            .iter()
            .filter(|c| c.is_request && LIST_METHODS.contains(&c.method.as_str()))
            .filter_map(|c| Some((c.id.clone()?, c.method.clone())))
            .collect();
        Some(ListFilter {
            lists,
            policy,
            live,
            principals: principals(),
            service: service.to_owned(),
            mediator: Mediator::for_calls(calls, mediation),
        })
    }

    /// Whether a JSON answer must be read whole: the request lists something, or an
    /// obligation covers one of its answers.
    pub fn reads_json(&self) -> bool {
        !self.lists.is_empty() || self.mediator.is_some()
    }

    /// Filters one message: a list answer to one of our requests, or a notification about
    /// primitives.
    pub fn apply(&self, msg: &mut Value) -> Applied {
        // A `result` without an `id` answers nothing; a client may read it as the notification
        // its `method` names, so it is judged as one below.
        if let (Some(_), Some(id)) = (msg.get("result"), msg.get("id")) {
            // Ids are unique within a request (the edge refuses repeats), but apply every
            // list method of that id all the same: each touches only its own list.
            let methods: Vec<String> = self
                .lists
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, m)| m.clone())
                .collect();
            let mut applied = Applied::Unchanged;
            for method in &methods {
                let removed = mcp::filter_list_result(method, msg, |t| {
                    self.policy
                        .visible(&self.principals, &self.service, &policy_target(t))
                });
                tracing::debug!(method = %method, removed, "list filtered by policy");
                applied = Applied::Rewritten;
            }
            if self.mediator.as_ref().is_some_and(|m| m.apply(msg)) {
                applied = Applied::Rewritten;
            }
            return applied;
        }
        let policy = self.live.get();
        let verdict = mcp::filter_notification(msg, |t| {
            policy.visible(&self.principals, &self.service, &policy_target(t))
        });
        match verdict {
            NotificationVerdict::Unchanged => Applied::Unchanged,
            NotificationVerdict::Rewritten => Applied::Rewritten,
            NotificationVerdict::Drop => {
                tracing::debug!("notification about a hidden resource dropped");
                Applied::Drop
            }
        }
    }

    /// Filters the text of one SSE event's data: `None` = forward it unchanged,
    /// `Some(None)` = drop the event, `Some(Some(text))` = forward `text` instead.
    ///
    /// Only events that can concern the filter are parsed in full: answers to our list
    /// requests and notifications naming primitives.
    pub fn apply_text(&self, data: &str) -> Option<Option<String>> {
        // The quick look is for objects only: serde reads a struct from an array too (`[{…}]`
        // as a `Peek` whose `id` is the whole message), which let a batch through unjudged.
        if data.trim_start().starts_with('{') {
            match serde_json::from_str::<Peek>(data) {
                Ok(peek) => {
                    let ours = peek
                        .id
                        .as_ref()
                        .is_some_and(|id| self.lists.iter().any(|(i, _)| i == id));
                    let named = peek.method.as_deref().is_some_and(mcp::names_primitives);
                    // A mediated answer is parsed only when a detector may find something.
                    let mediated = self.mediator.as_ref().is_some_and(|m| {
                        peek.id.as_ref().is_some_and(|id| m.covers(id)) && m.may_change(data)
                    });
                    if !ours && !named && !mediated {
                        return None;
                    }
                }
                // Not JSON: not a message.
                Err(e) if !e.is_data() => return None,
                // A member of an odd type, a repeated one …: the full look below.
                Err(_) => {}
            }
        }
        let mut msg = match mcp::parse_json_strict(data.as_bytes()) {
            Ok(v) => v,
            Err(mcp::McpError::Json(_)) => return None,
            Err(e) => {
                // A repeated `id` or `method`: no telling which one a client reads.
                tracing::warn!("event from the backend dropped: {e}");
                return Some(None);
            }
        };
        let applied = match &mut msg {
            Value::Array(items) => {
                let before = items.len();
                let mut rewritten = false;
                items.retain_mut(|m| match self.apply(m) {
                    Applied::Unchanged => true,
                    Applied::Rewritten => {
                        rewritten = true;
                        true
                    }
                    Applied::Drop => false,
                });
                if items.len() != before || rewritten {
                    Applied::Rewritten
                } else {
                    Applied::Unchanged
                }
            }
            one => self.apply(one),
        };
        match applied {
            Applied::Unchanged => None,
            Applied::Rewritten => Some(Some(msg.to_string())),
            Applied::Drop => Some(None),
        }
    }

    /// Filters a whole JSON body (a response object, or a batch array): `None` = forward it
    /// unchanged, otherwise the body to forward instead (empty when the body was one message
    /// that must not be forwarded).
    pub fn filter_json(&self, body: &[u8]) -> Option<Bytes> {
        if self.lists.is_empty() {
            let text = std::str::from_utf8(body).ok()?;
            if !self.mediator.as_ref().is_some_and(|m| m.may_change(text)) {
                return None;
            }
        }
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let changed = match &mut v {
            Value::Array(items) => {
                let mut changed = false;
                items.retain_mut(|m| match self.apply(m) {
                    Applied::Unchanged => true,
                    Applied::Rewritten => {
                        changed = true;
                        true
                    }
                    Applied::Drop => {
                        changed = true;
                        false
                    }
                });
                changed
            }
            other => match self.apply(other) {
                Applied::Unchanged => false,
                Applied::Rewritten => true,
                Applied::Drop => return Some(Bytes::new()),
            },
        };
        changed.then(|| Bytes::from(v.to_string()))
    }
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send>>;

/// Filters an SSE body event by event, passing every other event through byte for byte.
pub fn filter_sse(inner: Chunks, filter: ListFilter) -> Chunks {
    let state = (inner, SseParser::new(MAX_SSE_EVENT), filter, false);
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
                    match event.data().and_then(|d| filter.apply_text(d)) {
                        None => {}
                        Some(None) => continue,
                        Some(Some(text)) => event.set_data(text),
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
                return Err("answer over 32 MiB: too large to filter or mediate".into());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"
        [[allow]]
        principals = ["apikey:bot"]
        tools = ["echo"]
        resources = ["public://*"]
        prompts = ["public-*"]
    "#;

    fn filter(calls: &[Call]) -> ListFilter {
        let policy = Arc::new(Policy::parse(POLICY).unwrap_or_default());
        let live = Arc::new(Reloadable::from_arc(policy.clone()));
        ListFilter::for_request(
            calls,
            policy,
            live,
            || vec!["apikey:bot".into()],
            "s",
            &MediationLog::default(),
        )
        .unwrap_or_else(|| panic!("a filter"))
    }

    fn list(id: u64, method: &str) -> Call {
        Call {
            id: Some(json!(id)),
            method: method.into(),
            target: None,
            targets: Vec::new(),
            arguments: None,
            is_request: true,
            obligations: Default::default(),
        }
    }

    fn answer(id: u64, result: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    }

    fn names(v: &Value, list: &str, key: &str) -> Vec<String> {
        v["result"][list]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[key].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_list_of_a_batch_is_filtered_by_its_id() {
        let f = filter(&[
            list(1, "prompts/list"),
            list(2, "tools/list"),
            list(3, "resources/list"),
            list(4, "resources/templates/list"),
        ]);
        let batch = json!([
            answer(
                4,
                json!({"resourceTemplates": [{"uriTemplate": "public://t/{id}"}, {"uriTemplate": "secret://t/{id}"}]})
            ),
            answer(2, json!({"tools": [{"name": "echo"}, {"name": "rm"}]})),
            answer(
                3,
                json!({"resources": [{"uri": "public://a"}, {"uri": "secret://x"}]})
            ),
            answer(
                1,
                json!({"prompts": [{"name": "public-p"}, {"name": "secret-p"}]})
            ),
            answer(9, json!({"tools": [{"name": "rm"}]})),
        ]);
        let out = f
            .filter_json(batch.to_string().as_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(
            names(&v[0], "resourceTemplates", "uriTemplate"),
            ["public://t/{id}"]
        );
        assert_eq!(names(&v[1], "tools", "name"), ["echo"]);
        assert_eq!(names(&v[2], "resources", "uri"), ["public://a"]);
        assert_eq!(names(&v[3], "prompts", "name"), ["public-p"]);
        // An answer to no list request of ours is not a list answer: left alone.
        assert_eq!(names(&v[4], "tools", "name"), ["rm"]);
    }

    #[test]
    fn sse_events_are_filtered_and_hidden_notifications_dropped() {
        let f = filter(&[list(2, "tools/list")]);
        let keep = |m: Value| f.apply_text(&m.to_string());
        // Not ours: forwarded as is, without a full parse.
        assert_eq!(keep(answer(1, json!({"tools": [{"name": "rm"}]}))), None);
        assert_eq!(f.apply_text(""), None);
        assert_eq!(f.apply_text("not json"), None);
        // Our list: rewritten.
        let Some(Some(text)) = keep(answer(
            2,
            json!({"tools": [{"name": "echo"}, {"name": "rm"}]}),
        )) else {
            panic!("the list answer must be rewritten");
        };
        assert_eq!(
            names(
                &serde_json::from_str(&text).unwrap_or_default(),
                "tools",
                "name"
            ),
            ["echo"]
        );
        // Notifications about resources.
        let updated = |uri: &str| json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri": uri}});
        assert_eq!(keep(updated("secret://x")), Some(None));
        assert_eq!(keep(updated("public://a")), None);
        // Escaped method names do not slip past the quick look.
        let escaped = r#"{"jsonrpc":"2.0","method":"notifications\/resources\/updated","params":{"uri":"secret://x"}}"#;
        assert_eq!(f.apply_text(escaped), Some(None));
        // Nor do repeated keys (whichever a client would read).
        for repeated in [
            r#"{"jsonrpc":"2.0","method":"x","method":"notifications/resources/updated","params":{"uri":"secret://x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","method":"x","params":{"uri":"secret://x"}}"#,
        ] {
            assert_eq!(f.apply_text(repeated), Some(None), "{repeated}");
        }
        // Several messages in one event are each judged.
        let both = json!([updated("secret://x"), updated("public://a")]);
        let Some(Some(text)) = keep(both) else {
            panic!("the array must be rewritten");
        };
        assert!(
            text.contains("public://a") && !text.contains("secret://x"),
            "{text}"
        );
        let ack = json!({"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",
            "params":{"notifications":{"resourceSubscriptions":["public://a","secret://x"]}}});
        let Some(Some(text)) = keep(ack) else {
            panic!("the acknowledgement must be rewritten");
        };
        assert!(
            text.contains("public://a") && !text.contains("secret://x"),
            "{text}"
        );
        // Progress, logging, list_changed: untouched.
        assert_eq!(
            keep(
                json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}})
            ),
            None
        );
    }

    /// Found by the `list_filter` fuzz target: an event whose data was a batch of one list
    /// answer (`[{…}]`, or `[{…}, "…"]`) passed the quick look as a message with an odd `id`,
    /// so its hidden entries were forwarded.
    #[test]
    fn a_batch_in_an_event_is_filtered_however_short() {
        let f = filter(&[list(2, "tools/list")]);
        let tools = answer(2, json!({"tools": [{"name": "echo"}, {"name": "rm"}]}));
        let updated = json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri": "secret://x"}});
        for data in [
            json!([tools]),
            json!([tools, "x"]),
            json!([updated]),
            json!([updated, "notifications/resources/updated"]),
        ] {
            let text = format!(" \n{data}");
            match f.apply_text(&text) {
                Some(Some(out)) => assert!(!out.contains("rm") && !out.contains("secret"), "{out}"),
                Some(None) => {}
                None => panic!("forwarded unfiltered: {text}"),
            }
        }
    }

    /// Found by the `list_filter` fuzz target: a JSON body that was one notification about a
    /// hidden resource was forwarded as it was (only batches lost such messages).
    #[test]
    fn a_json_body_about_a_hidden_resource_is_not_forwarded() {
        let f = filter(&[list(2, "tools/list")]);
        let updated = |uri: &str| json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri": uri}});
        let out = f.filter_json(updated("secret://x").to_string().as_bytes());
        assert_eq!(out.as_deref(), Some(&b""[..]));
        assert_eq!(
            f.filter_json(updated("public://a").to_string().as_bytes()),
            None
        );
        let batch = json!([updated("secret://x"), updated("public://a")]).to_string();
        let out = f.filter_json(batch.as_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("public://a") && !text.contains("secret://x"),
            "{text}"
        );
    }

    /// Found by the list_filter fuzz target: a notification about a hidden resource that also
    /// carried a `result` (and no `id`) was taken for an answer and forwarded.
    #[test]
    fn a_notification_with_a_result_member_is_still_judged() {
        let f = filter(&[list(1, "tools/list")]);
        let news = |uri: Value| {
            json!({
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": uri},
                "result": {"prompts": [{"name": "public-p"}]},
            })
        };
        let hidden = news(json!("secret://x"));
        assert_eq!(
            f.filter_json(hidden.to_string().as_bytes()),
            Some(Bytes::new())
        );
        assert_eq!(f.apply_text(&hidden.to_string()), Some(None));
        let batch = json!([
            answer(1, json!({"tools": [{"name": "echo"}, {"name": "rm"}]})),
            news(json!(4)),
            news(json!("public://a")),
        ]);
        let out = f
            .filter_json(batch.to_string().as_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(names(&v[0], "tools", "name"), ["echo"]);
        assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
        assert_eq!(v[1]["params"]["uri"], "public://a");
        let events = f
            .apply_text(&batch.to_string())
            .flatten()
            .unwrap_or_default();
        assert!(
            !events.contains("secret") && !events.contains("\"uri\":4") && !events.contains("rm"),
            "{events}"
        );
    }

    #[test]
    fn numbers_of_a_rewritten_list_keep_their_exact_value() {
        let f = filter(&[list(2, "tools/list")]);
        let body = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object","properties":{"x":{"type":"number","maximum":1.0369198862157576e+65,"minimum":0.1}}}},{"name":"rm"}]}}"#;
        let out = f.filter_json(body).unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("\"rm\""), "{text}");
        assert!(text.contains("1.0369198862157576e+65"), "{text}");
        assert!(text.contains("0.1"), "{text}");
    }

    #[test]
    fn allow_all_needs_no_filter() {
        let policy = Arc::new(Policy::allow_all());
        let live = Arc::new(Reloadable::from_arc(policy.clone()));
        assert!(ListFilter::for_request(
            &[],
            policy,
            live,
            Vec::new,
            "s",
            &MediationLog::default()
        )
        .is_none());
        let f = filter(&[]);
        assert!(!f.reads_json());
    }
}
