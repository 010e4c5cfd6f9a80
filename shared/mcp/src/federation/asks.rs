//! A 2026-07-28 backend asks its client for input by answering a request with an
//! `input_required` result (multi round-trip requests): the client fulfils each input request
//! and sends the request again with the answers. A 2025-11-25 client knows none of that: its
//! server asks with requests of its own on the call's event stream. The edge stands between
//! them; this module is what that takes, as plain functions of their input: what the edge keeps
//! of a legacy client's capabilities, what an `input_required` result asks (and whether the
//! client declared it can answer), and the next round's parameters; and, for a legacy backend
//! that asks with requests of its own, what of the client's answer goes back to it.

use serde_json::{json, Map, Value};

/// The input requests a server may make, and the client capability each needs.
pub const ASKS: [(&str, &str); 3] = [
    ("sampling/createMessage", "sampling"),
    ("elicitation/create", "elicitation"),
    ("roots/list", "roots"),
];

/// Most input requests one `input_required` result may carry.
pub const MAX_REQUESTS: usize = 16;
/// Longest key of an input request.
const MAX_KEY: usize = 256;

/// What a legacy client declared at `initialize` that a backend may ask of it: `sampling`,
/// `elicitation` and `roots`, each reduced to the members the specification defines (so what
/// the edge keeps for a session is small and bounded whatever the client sent).
pub fn asking_capabilities(declared: &Value) -> Value {
    let mut kept = Map::new();
    let member = |of: &Value, key: &str| of.get(key).filter(|v| v.is_object()).is_some();
    if let Some(sampling) = declared.get("sampling").filter(|v| v.is_object()) {
        let mut s = Map::new();
        for key in ["context", "tools"] {
            if member(sampling, key) {
                s.insert(key.into(), json!({}));
            }
        }
        kept.insert("sampling".into(), Value::Object(s));
    }
    if let Some(elicitation) = declared.get("elicitation").filter(|v| v.is_object()) {
        let mut e = Map::new();
        if let Some(form) = elicitation.get("form").filter(|v| v.is_object()) {
            let mut f = Map::new();
            if let Some(apply) = form.get("applyDefaults").filter(|v| v.is_boolean()) {
                f.insert("applyDefaults".into(), apply.clone());
            }
            e.insert("form".into(), Value::Object(f));
        }
        if member(elicitation, "url") {
            e.insert("url".into(), json!({}));
        }
        kept.insert("elicitation".into(), Value::Object(e));
    }
    if let Some(roots) = declared.get("roots").filter(|v| v.is_object()) {
        let mut r = Map::new();
        if let Some(changed) = roots.get("listChanged").filter(|v| v.is_boolean()) {
            r.insert("listChanged".into(), changed.clone());
        }
        kept.insert("roots".into(), Value::Object(r));
    }
    Value::Object(kept)
}

/// One input request of an `input_required` result.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    /// The key its answer goes back under.
    pub key: String,
    pub method: String,
    pub params: Value,
}

/// What an `input_required` result asks: the requests (in key order) and the state to send
/// back with their answers.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    pub requests: Vec<InputRequest>,
    pub state: Option<String>,
}

/// Why the edge cannot relay an `input_required` result to a legacy client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("it asked for nothing and sent no requestState")]
    Empty,
    #[error("it asked for more than {MAX_REQUESTS} inputs at once")]
    TooMany,
    #[error("its input request {0:?} is malformed (a key of at most 256 bytes, an object with a method)")]
    Malformed(String),
    #[error("its input request {key:?} is {method:?}, which no client answers")]
    UnknownMethod { key: String, method: String },
    #[error("its input request {key:?} needs the client's {capability:?} capability, which the client did not declare at initialize")]
    Undeclared {
        key: String,
        capability: &'static str,
    },
}

/// What `result` asks of a client whose declared capabilities are `capabilities`: `None` when
/// it is no `input_required` result (the request's answer).
pub fn input_required(
    result: &Value,
    capabilities: &Value,
) -> Option<Result<InputRequired, AskError>> {
    if !crate::federation::caching::asks_for_input(result) {
        return None;
    }
    Some(read_input_required(result, capabilities))
}

fn read_input_required(result: &Value, capabilities: &Value) -> Result<InputRequired, AskError> {
    let state = result
        .get("requestState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let asked = match result.get("inputRequests") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(AskError::Malformed("inputRequests".into())),
    };
    if asked.is_empty() && state.is_none() {
        return Err(AskError::Empty);
    }
    if asked.len() > MAX_REQUESTS {
        return Err(AskError::TooMany);
    }
    let mut requests = Vec::with_capacity(asked.len());
    for (key, request) in asked {
        let method = request.get("method").and_then(Value::as_str);
        let (Some(method), true) = (method, key.len() <= MAX_KEY) else {
            return Err(AskError::Malformed(key.chars().take(64).collect()));
        };
        may_ask(&key, method, capabilities)?;
        requests.push(InputRequest {
            method: method.to_owned(),
            params: request.get("params").cloned().unwrap_or_else(|| json!({})),
            key,
        });
    }
    Ok(InputRequired { requests, state })
}

/// Whether a server may ask a client that declared `capabilities` for `method` (the input
/// request `key`, named in the error).
pub fn may_ask(key: &str, method: &str, capabilities: &Value) -> Result<(), AskError> {
    let Some((_, capability)) = ASKS.iter().find(|(m, _)| *m == method) else {
        return Err(AskError::UnknownMethod {
            key: key.to_owned(),
            method: method.chars().take(64).collect(),
        });
    };
    if !capabilities.get(capability).is_some_and(Value::is_object) {
        return Err(AskError::Undeclared {
            key: key.to_owned(),
            capability,
        });
    }
    Ok(())
}

/// The parameters of the next round: the request's own, with the client's answers by key and
/// the state the backend gave (each replacing what the previous round carried).
pub fn next_params(params: &Value, answers: Map<String, Value>, state: Option<&str>) -> Value {
    let mut next = match params {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    next.remove("inputResponses");
    next.remove("requestState");
    if !answers.is_empty() {
        next.insert("inputResponses".into(), Value::Object(answers));
    }
    if let Some(state) = state {
        next.insert("requestState".into(), Value::from(state));
    }
    Value::Object(next)
}

/// What goes back to a legacy backend of a client's answer to its request: the result or
/// error, under the backend's id, and nothing else the client put in it; `None` for an answer
/// with neither.
pub fn response_to(backend_id: &Value, answer: &Value) -> Option<Value> {
    let mut response = Map::new();
    response.insert("jsonrpc".into(), Value::from("2.0"));
    response.insert("id".into(), backend_id.clone());
    match (answer.get("result"), answer.get("error")) {
        (Some(result), _) => response.insert("result".into(), result.clone()),
        (None, Some(error)) => response.insert("error".into(), error.clone()),
        (None, None) => return None,
    };
    Some(Value::Object(response))
}

/// The request a legacy client receives for one input request, under the edge's `id`.
pub fn ask_message(id: &str, request: &InputRequest) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": request.method, "params": request.params})
}

#[cfg(test)]
mod tests;
