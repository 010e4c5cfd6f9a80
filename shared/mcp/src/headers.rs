//! The 2026-07-28 request metadata headers (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`): reading them, decoding `=?base64?…?=` values, and checking them against the
//! body.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::error::HeaderError;
use crate::message::{Kind, Message, META_PROTOCOL_VERSION};

/// The protocol version header.
pub const HEADER_PROTOCOL_VERSION: &str = "MCP-Protocol-Version";
/// The header mirroring the JSON-RPC `method`.
pub const HEADER_METHOD: &str = "Mcp-Method";
/// The header mirroring `params.name` / `params.uri`.
pub const HEADER_NAME: &str = "Mcp-Name";
/// The prefix of the headers mirroring `x-mcp-header` tool parameters.
pub const HEADER_PARAM_PREFIX: &str = "Mcp-Param-";

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// A header value without the optional whitespace around it (RFC 9110 §5.5).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// The single value of a header (names compared case-insensitively, optional whitespace
/// trimmed). Repeated headers are accepted only when all their values are equal.
pub fn header_value<'a>(
    headers: &[(&str, &'a str)],
    name: &str,
) -> Result<Option<&'a str>, HeaderError> {
    let mut found: Option<&'a str> = None;
    for (n, v) in headers {
        if !n.eq_ignore_ascii_case(name) {
            continue;
        }
        let v = trim_ows(v);
        match found {
            None => found = Some(v),
            Some(prev) if prev == v => {}
            Some(_) => {
                return Err(HeaderError::invalid(
                    name,
                    "is repeated with different values",
                ));
            }
        }
    }
    Ok(found)
}

/// Rejects values that are not visible ASCII, space or tab (RFC 9110 field values as the
/// 2026-07-28 "Value Encoding" rules restrict them).
pub(crate) fn check_chars(name: &str, value: &str) -> Result<(), HeaderError> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        Ok(())
    } else {
        Err(HeaderError::invalid(name, "contains invalid characters"))
    }
}

/// Decodes a `Mcp-Name` / `Mcp-Param-*` value: `=?base64?…?=` is strict standard Base64
/// of UTF-8 (padding required); anything else is literal.
pub(crate) fn decode_header_value<'a>(
    name: &str,
    value: &'a str,
) -> Result<Cow<'a, str>, HeaderError> {
    check_chars(name, value)?;
    if value.len() >= BASE64_PREFIX.len() + BASE64_SUFFIX.len() {
        if let Some(inner) = value
            .strip_prefix(BASE64_PREFIX)
            .and_then(|v| v.strip_suffix(BASE64_SUFFIX))
        {
            let bytes = base64_decode(inner.as_bytes())
                .ok_or_else(|| HeaderError::invalid(name, "has an invalid Base64 value"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| HeaderError::invalid(name, "has a Base64 value that is not UTF-8"))?;
            return Ok(Cow::Owned(text));
        }
    }
    Ok(Cow::Borrowed(value))
}

/// Strict RFC 4648 §4 Base64: length a multiple of 4, `=` only as final padding, unused
/// bits zero (the `base64` crate's standard engine requires canonical padding and refuses
/// trailing bits by default).
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    BASE64.decode(input).ok()
}

/// Checks `MCP-Protocol-Version` against `params._meta["io.modelcontextprotocol/protocolVersion"]`.
///
/// When the body names a version (any value, not only a string), the header must be
/// present and equal to it; otherwise `-32020`. A body without the key passes (a legacy
/// request, or a modern one the backend rejects with `-32602` for missing `_meta`).
pub fn check_meta_version(header: Option<&str>, msg: &Message) -> Result<(), HeaderError> {
    let Some(meta) = msg
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
    else {
        return Ok(());
    };
    let Some(header) = header else {
        return Err(HeaderError::missing(HEADER_PROTOCOL_VERSION));
    };
    let header = trim_ows(header);
    match meta.as_str() {
        Some(v) if v == header => Ok(()),
        Some(v) => Err(HeaderError::mismatch(HEADER_PROTOCOL_VERSION, header, v)),
        None => Err(HeaderError::mismatch(
            HEADER_PROTOCOL_VERSION,
            header,
            &meta.to_string(),
        )),
    }
}

/// Checks the 2026-07-28 standard request headers against the body.
///
/// * `MCP-Protocol-Version`: required; equal to `_meta`'s protocol version when the body
///   carries one ([`check_meta_version`]). Whether the version is *served* is
///   [`check_protocol_version`](crate::check_protocol_version)'s job; run it first so `header = body = v999` yields
///   `-32022`, and header ≠ body yields `-32020`.
/// * `Mcp-Method`: required on requests, equal to `method` (case-sensitive). On
///   notifications (for which 2026-07-28 defines no header rules) it is optional but must
///   match when present; a response has no method, so any `Mcp-Method` is a mismatch.
/// * `Mcp-Name`: required on `tools/call` / `prompts/get` (`params.name`) and
///   `resources/read` (`params.uri`), Base64 sentinel decoded before comparing. On
///   `tasks/get`, `tasks/update`, `tasks/cancel` (tasks extension) it is optional and must
///   equal `params.taskId` when present. Elsewhere it is not interpreted.
///
/// Header names are case-insensitive; optional whitespace around values is ignored;
/// values with characters outside visible ASCII/space/tab are rejected. Every failure is
/// `-32020` with HTTP 400. `Mcp-Param-*` headers need the tool's schema: see
/// [`validate_param_headers`](crate::validate_param_headers).
pub fn validate_modern_headers(headers: &[(&str, &str)], msg: &Message) -> Result<(), HeaderError> {
    // MCP-Protocol-Version
    let version = header_value(headers, HEADER_PROTOCOL_VERSION)?;
    let Some(version) = version else {
        return Err(HeaderError::missing(HEADER_PROTOCOL_VERSION));
    };
    check_chars(HEADER_PROTOCOL_VERSION, version)?;
    check_meta_version(Some(version), msg)?;

    // Mcp-Method
    let method_header = header_value(headers, HEADER_METHOD)?;
    if let Some(h) = method_header {
        check_chars(HEADER_METHOD, h)?;
    }
    match (msg.kind, method_header, msg.method.as_deref()) {
        (Kind::Request, None, _) => return Err(HeaderError::missing(HEADER_METHOD)),
        (_, Some(h), Some(m)) if h != m => {
            return Err(HeaderError::mismatch(HEADER_METHOD, h, m));
        }
        (_, Some(h), None) => return Err(HeaderError::mismatch(HEADER_METHOD, h, "")),
        _ => {}
    }

    // Mcp-Name
    if msg.kind != Kind::Request {
        return Ok(());
    }
    let method = msg.method.as_deref().unwrap_or_default();
    let (source, required) = match method {
        "tools/call" | "prompts/get" => ("name", true),
        "resources/read" => ("uri", true),
        "tasks/get" | "tasks/update" | "tasks/cancel" => ("taskId", false),
        _ => return Ok(()),
    };
    let body = msg
        .params()
        .and_then(|p| p.get(source))
        .and_then(Value::as_str);
    match header_value(headers, HEADER_NAME)? {
        None if required => Err(HeaderError::missing(HEADER_NAME)),
        None => Ok(()),
        Some(raw) => {
            let decoded = decode_header_value(HEADER_NAME, raw)?;
            match body {
                Some(b) if b == decoded => Ok(()),
                Some(b) => Err(HeaderError::mismatch(HEADER_NAME, &decoded, b)),
                None => Err(HeaderError::mismatch(HEADER_NAME, &decoded, "")),
            }
        }
    }
}

#[cfg(test)]
mod tests;
