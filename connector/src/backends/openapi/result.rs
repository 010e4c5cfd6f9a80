//! An HTTP response → a tool result: JSON as `structuredContent` (when an object) and as
//! text, anything else as text, a non-2xx status as `isError: true` with the status and body.
//! Pure.

use serde_json::{json, Value};

/// Most bytes of a response body read; more is a tool error saying so.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The tool result of a response with `status`, `content_type` and the whole `body`.
pub fn tool_result(status: u16, content_type: Option<&str>, body: &[u8]) -> Value {
    let ok = (200..300).contains(&status);
    let json = content_type
        .is_some_and(super::spec::is_json)
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten();
    let text = match &json {
        Some(v) => v.to_string(),
        None => body_text(content_type, body),
    };
    if !ok {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let head = format!("HTTP {status} {reason}").trim_end().to_owned();
        let text = if text.is_empty() {
            head
        } else {
            format!("{head}: {text}")
        };
        return error(&text);
    }
    let mut result = json!({
        "content": [{ "type": "text", "text": if text.is_empty() { format!("HTTP {status} (no content)") } else { text } }],
        "isError": false,
    });
    if let Some(v @ Value::Object(_)) = json {
        result["structuredContent"] = v;
    }
    result
}

/// A tool error with `text`.
pub fn error(text: &str) -> Value {
    json!({
        "content": [{ "type": "text", "text": text }],
        "isError": true,
    })
}

/// A body as text: UTF-8 as is; anything else named by its size and type, not dumped.
fn body_text(content_type: Option<&str>, body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(s) => s.to_owned(),
        Err(_) => format!(
            "({} bytes of {}, not text)",
            body.len(),
            content_type.unwrap_or("an unnamed media type")
        ),
    }
}
