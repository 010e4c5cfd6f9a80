//! Policy obligations applied to what crosses the edge (README, "Redaction and blocking"):
//! a call whose arguments carry what a rule's `block` detectors find is refused (by the judge,
//! with [`Obligations::blocked_by`]); the answer to a `tools/call`, `resources/read` or
//! `prompts/get` that carries it is replaced with an error; what a rule's `redact` detectors
//! find in such an answer is replaced by `[REDACTED:<detector>]`.
//!
//! Pure: a [`Mediator`] rewrites one message at a time (JSON bodies, SSE events, the
//! federated endpoint's messages alike) and keeps what it did, without the values, for the
//! request's audit record. An answer it leaves alone is forwarded byte for byte by its
//! callers, and one no obligation covers is not even parsed.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use underpass_audit::{Mediation, MediationAction};
use underpass_detect::Tally;
use underpass_mcp::jsonrpc::code::POLICY_DENIED;

use crate::mcp::judge::Call;
use crate::policy::{Obligations, MAX_DEPTH};

/// What obligations did during one request, for its audit record (and metrics).
pub type MediationLog = Arc<Mutex<Vec<Mediation>>>;

/// Where the answer of a mediated method keeps what is read by people and models.
fn location(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" => Some("tools/call result"),
        "resources/read" => Some("resources/read contents"),
        "prompts/get" => Some("prompts/get messages"),
        _ => None,
    }
}

/// The obligations on the answer to one call.
#[derive(Debug, Clone)]
struct Covered {
    id: Value,
    location: &'static str,
    obligations: Obligations,
}

/// The obligations on the answers of one request, by JSON-RPC id.
#[derive(Debug, Clone)]
pub struct Mediator {
    answers: Vec<Covered>,
    log: MediationLog,
}

impl Mediator {
    /// The mediator of a request's answers; `None` when no call of it carries an obligation
    /// on a mediated method (then nothing on the response path changes).
    pub fn for_calls(calls: &[Call], log: &MediationLog) -> Option<Mediator> {
        let answers: Vec<Covered> = calls
            .iter()
            .filter(|c| c.is_request && !c.obligations.is_empty())
            .filter_map(|c| {
                Some(Covered {
                    id: c.id.clone()?,
                    location: location(&c.method)?,
                    obligations: c.obligations.clone(),
                })
            })
            .collect();
        (!answers.is_empty()).then(|| Mediator {
            answers,
            log: log.clone(),
        })
    }

    /// Whether the answer with this id is mediated.
    pub fn covers(&self, id: &Value) -> bool {
        self.answers.iter().any(|a| &a.id == id)
    }

    /// Whether the raw JSON text of a message may need a change (false: forward it as is).
    pub fn may_change(&self, raw: &str) -> bool {
        self.answers.iter().any(|a| {
            [&a.obligations.block, &a.obligations.redact]
                .into_iter()
                .flatten()
                .any(|d| d.may_find_in_json(raw))
        })
    }

    /// Applies the obligations to one message, if it answers a mediated call; true when it
    /// was rewritten (a blocked answer becomes an error with the same id).
    pub fn apply(&self, msg: &mut Value) -> bool {
        let Some(covered) = msg
            .get("id")
            .and_then(|id| self.answers.iter().find(|a| &a.id == id))
        else {
            return false;
        };
        let Some(result) = msg.get_mut("result") else {
            return false;
        };
        let mut done = Vec::new();
        let rewritten = mediate_result(covered, result, &mut done);
        if let Some(detector) = done
            .iter()
            .find(|m| m.action == MediationAction::Block)
            .map(|m| m.detector.clone())
        {
            *msg = underpass_mcp::jsonrpc::error(
                Some(&covered.id),
                POLICY_DENIED,
                &format!(
                    "the gateway's policy withholds this answer: it carries what detector \
                     {detector:?} finds"
                ),
                Some(serde_json::json!({ "detector": detector })),
            );
        }
        if !done.is_empty() {
            if let Ok(mut log) = self.log.lock() {
                log.extend(done);
            }
        }
        rewritten
    }
}

/// Block first (nothing of a blocked answer is kept), then redact.
fn mediate_result(covered: &Covered, result: &mut Value, done: &mut Vec<Mediation>) -> bool {
    let record = |action, detector: &str, count| Mediation {
        action,
        detector: detector.to_owned(),
        location: covered.location.to_owned(),
        count,
        rpc_id: Some(covered.id.clone()),
    };
    if let Some(block) = &covered.obligations.block {
        let mut found = None;
        each_text(result, 0, &mut |text| {
            if found.is_none() {
                found = block.first_in(text).map(str::to_owned);
            }
        });
        if let Some(detector) = found {
            done.push(record(MediationAction::Block, &detector, 1));
            return true;
        }
    }
    let Some(redact) = &covered.obligations.redact else {
        return false;
    };
    let mut tally = Tally::default();
    each_text_mut(result, 0, &mut |text| {
        if let Some(clean) = redact.redact(text, &mut tally) {
            *text = clean;
        }
    });
    for (detector, count) in tally.iter() {
        done.push(record(MediationAction::Redact, detector, count));
    }
    !tally.is_empty()
}

/// Members that hold no text a person or model reads: identifiers and encoded bytes (`data`
/// only in an image or audio clip, `media`).
fn skipped(key: &str, media: bool) -> bool {
    matches!(key, "uri" | "mimeType" | "type" | "blob") || (media && key == "data")
}

/// Whether an object is an image or an audio clip (its `data` is base64 bytes).
fn is_media(object: &serde_json::Map<String, Value>) -> bool {
    matches!(
        object.get("type").and_then(Value::as_str),
        Some("image" | "audio")
    )
}

/// Every string of an answer that is text (see [`skipped`]).
fn each_text(v: &Value, depth: usize, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) if depth < MAX_DEPTH => {
            items.iter().for_each(|i| each_text(i, depth + 1, f));
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            let media = is_media(map);
            for (k, v) in map {
                if !skipped(k, media) {
                    each_text(v, depth + 1, f);
                }
            }
        }
        _ => {}
    }
}

fn each_text_mut(v: &mut Value, depth: usize, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) if depth < MAX_DEPTH => {
            items
                .iter_mut()
                .for_each(|i| each_text_mut(i, depth + 1, f));
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            let media = is_media(map);
            for (k, v) in map.iter_mut() {
                if !skipped(k, media) {
                    each_text_mut(v, depth + 1, f);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
