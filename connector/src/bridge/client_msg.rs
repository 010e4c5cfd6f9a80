//! The client's messages as the bridge needs them: classified, keyed for routing, and cut to
//! one line each for the single pipe to the server.
//!
//! The classification is deliberately lenient (see [`kind_of`]) and is not
//! `underpass_mcp::parse`: the edge has already validated the client's body strictly
//! before it entered the tunnel, and the same classifier sorts what *servers* send, which the
//! bridge passes through untouched rather than judges.

use bytes::Bytes;
use serde_json::Value;

use super::error::BridgeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

/// Classifies by the fields present. MCP ids are strings or numbers, never null.
pub(super) fn kind_of(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else {
        return Kind::Invalid;
    };
    let id = obj.get("id");
    let valid_id = id.is_some_and(|id| id.is_string() || id.is_number());
    match obj.get("method") {
        Some(Value::String(_)) if id.is_none() => Kind::Notification,
        Some(Value::String(_)) if valid_id => Kind::Request,
        None if valid_id && (obj.contains_key("result") || obj.contains_key("error")) => {
            Kind::Response
        }
        _ => Kind::Invalid,
    }
}

/// One message from the client, ready for the server's pipe.
pub(super) struct Inbound {
    pub(super) kind: Kind,
    /// The id's JSON text (routing key); empty for notifications.
    pub(super) key: String,
    pub(super) id: Value,
    /// One line, newline-terminated.
    pub(super) line: Bytes,
    pub(super) is_initialize: bool,
    pub(super) progress_token: Option<String>,
    /// For `notifications/cancelled`: the key of the cancelled request.
    pub(super) cancels: Option<String>,
}

pub(super) struct ClientBody {
    pub(super) messages: Vec<Inbound>,
    pub(super) is_batch: bool,
}

impl ClientBody {
    pub(super) fn single_initialize(mut self) -> Option<Inbound> {
        match (self.is_batch, self.messages.pop()) {
            (false, Some(m)) if m.is_initialize && m.kind == Kind::Request => Some(m),
            _ => None,
        }
    }
}

/// Parses a POST body: one message, or a batch (JSON array, allowed by 2025-03-26) whose
/// elements are written to the server one per line.
pub(super) fn parse_client_body(body: &[u8]) -> Result<ClientBody, BridgeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BridgeError::Parse(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BridgeError::Invalid("empty batch".into()));
            }
            let messages = items
                .into_iter()
                .map(|item| {
                    let line = serde_json::to_vec(&item).unwrap_or_default();
                    inbound(item, line)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if messages.iter().any(|m| m.is_initialize) {
                return Err(BridgeError::Invalid(
                    "initialize must not be part of a batch".into(),
                ));
            }
            Ok(ClientBody {
                messages,
                is_batch: true,
            })
        }
        value => Ok(ClientBody {
            messages: vec![inbound(value, one_line(body))?],
            is_batch: false,
        }),
    }
}

pub(super) fn inbound(msg: Value, mut line: Vec<u8>) -> Result<Inbound, BridgeError> {
    let kind = kind_of(&msg);
    if kind == Kind::Invalid {
        return Err(BridgeError::Invalid(
            "expected a request (method and a string or number id), a notification (method, no \
             id) or a response (id with result or error)"
                .into(),
        ));
    }
    line.push(b'\n');
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    Ok(Inbound {
        kind,
        key: if kind == Kind::Notification {
            String::new()
        } else {
            id.to_string()
        },
        id,
        line: Bytes::from(line),
        is_initialize: method == "initialize",
        progress_token: msg
            .pointer("/params/_meta/progressToken")
            .map(Value::to_string),
        cancels: (method == "notifications/cancelled")
            .then(|| msg.pointer("/params/requestId").map(Value::to_string))
            .flatten(),
    })
}

/// The body (or an SSE event's data) as one line, byte for byte otherwise. In valid JSON a CR
/// or LF can only be whitespace between tokens (inside strings they are escaped), so replacing
/// them is lossless.
pub(crate) fn one_line(body: &[u8]) -> Vec<u8> {
    body.trim_ascii()
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect()
}

/// A server's line as SSE data: a CR would end the SSE line early (same reasoning as above).
pub(super) fn sse_safe(line: &[u8]) -> Vec<u8> {
    line.iter()
        .map(|&b| if b == b'\r' { b' ' } else { b })
        .collect()
}

pub(super) fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(super) fn accepts_sse(headers: &[(String, Vec<u8>)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
        .any(|(_, v)| {
            String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains("text/event-stream")
        })
}

/// The start of a message, for a log line.
pub(super) fn preview(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        format!("{text}… ({} bytes)", line.len())
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
