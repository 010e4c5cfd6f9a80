//! `Mcp-Param-*` headers: the `x-mcp-header` annotations of a tool's `inputSchema`
//! ([`tool_param_headers`]) and the check of a `tools/call`'s headers against its arguments
//! ([`validate_param_headers`]).

use std::collections::HashSet;

use serde_json::Value;

use crate::error::{HeaderError, MAX_DEPTH};
use crate::headers::{decode_header_value, header_value, HEADER_PARAM_PREFIX};
use crate::message::{Kind, Message};

/// A tool definition whose `x-mcp-header` annotations break the 2026-07-28 constraints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSchemaError {
    /// The tool has no object `inputSchema`.
    #[error("tool has no inputSchema object")]
    NoInputSchema,
    /// An annotation is not a non-empty HTTP token.
    #[error("x-mcp-header value {0:?} is not a non-empty HTTP field-name token")]
    InvalidName(String),
    /// Two annotations are equal ignoring ASCII case.
    #[error("x-mcp-header value {0:?} is not unique (case-insensitively)")]
    Duplicate(String),
    /// An annotation on a parameter whose type is not string, integer or boolean.
    #[error("x-mcp-header {0:?} is on a parameter that is not string, integer or boolean")]
    NotPrimitive(String),
    /// An annotation not reachable from the root through `properties` alone.
    #[error("x-mcp-header is on a schema not statically reachable through `properties`")]
    Unreachable,
    /// The schema nests deeper than [`MAX_DEPTH`].
    #[error("inputSchema nests deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// The JSON type of an `x-mcp-header` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `"type": "string"`
    String,
    /// `"type": "integer"`
    Integer,
    /// `"type": "boolean"`
    Boolean,
}

/// One `x-mcp-header` annotation of a tool's `inputSchema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The annotation's value: the header is `Mcp-Param-{name}`.
    pub name: String,
    /// The chain of `properties` keys from `arguments` to the value.
    pub path: Vec<String>,
    /// The declared type.
    pub ty: ParamType,
}

impl ParamHeader {
    /// `Mcp-Param-{name}`.
    pub fn header_name(&self) -> String {
        format!("{HEADER_PARAM_PREFIX}{}", self.name)
    }
}

const SUBSCHEMA_MAPS: &[&str] = &[
    "$defs",
    "definitions",
    "patternProperties",
    "dependentSchemas",
];
const SUBSCHEMA_ONE: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
];
const SUBSCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads the `x-mcp-header` annotations of a tool definition (an element of
/// `tools/list`'s `result.tools`), enforcing the 2026-07-28 constraints: each value a
/// non-empty token, unique ignoring case, only on `string` / `integer` / `boolean`
/// parameters, only on properties reachable from the root through `properties` alone.
/// A tool breaking them is invalid as a whole (clients must drop it from `tools/list`).
pub fn tool_param_headers(tool: &Value) -> Result<Vec<ParamHeader>, ToolSchemaError> {
    let schema = tool
        .get("inputSchema")
        .filter(|s| s.is_object())
        .ok_or(ToolSchemaError::NoInputSchema)?;
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk_schema(schema, Some(&mut path), 0, &mut out)?;
    let mut seen = HashSet::new();
    for p in &out {
        if !seen.insert(p.name.to_ascii_lowercase()) {
            return Err(ToolSchemaError::Duplicate(p.name.clone()));
        }
    }
    Ok(out)
}

/// `path` is `Some` while the schema is statically reachable from the root through
/// `properties` alone (empty at the root itself).
fn walk_schema(
    schema: &Value,
    path: Option<&mut Vec<String>>,
    depth: usize,
    out: &mut Vec<ParamHeader>,
) -> Result<(), ToolSchemaError> {
    if depth > MAX_DEPTH {
        return Err(ToolSchemaError::TooDeep);
    }
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    let mut path = path;
    if let Some(annotation) = obj.get("x-mcp-header") {
        let Some(p) = path.as_deref().filter(|p| !p.is_empty()) else {
            return Err(ToolSchemaError::Unreachable);
        };
        let name = annotation
            .as_str()
            .filter(|n| !n.is_empty() && n.bytes().all(is_tchar))
            .ok_or_else(|| ToolSchemaError::InvalidName(annotation.to_string()))?;
        let ty = match obj.get("type").and_then(Value::as_str) {
            Some("string") => ParamType::String,
            Some("integer") => ParamType::Integer,
            Some("boolean") => ParamType::Boolean,
            _ => return Err(ToolSchemaError::NotPrimitive(name.to_owned())),
        };
        out.push(ParamHeader {
            name: name.to_owned(),
            path: p.clone(),
            ty,
        });
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            match path.as_deref_mut() {
                Some(p) => {
                    p.push(key.clone());
                    let r = walk_schema(sub, Some(p), depth + 1, out);
                    p.pop();
                    r?;
                }
                None => walk_schema(sub, None, depth + 1, out)?,
            }
        }
    }
    for key in SUBSCHEMA_MAPS {
        if let Some(m) = obj.get(*key).and_then(Value::as_object) {
            for sub in m.values() {
                walk_schema(sub, None, depth + 1, out)?;
            }
        }
    }
    for key in SUBSCHEMA_ONE {
        if let Some(sub) = obj.get(*key).filter(|v| v.is_object()) {
            walk_schema(sub, None, depth + 1, out)?;
        }
    }
    for key in SUBSCHEMA_LISTS {
        if let Some(list) = obj.get(*key).and_then(Value::as_array) {
            for sub in list {
                walk_schema(sub, None, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

fn numbers_equal(header: &str, body: &serde_json::Number) -> bool {
    if let (Ok(h), Some(b)) = (header.parse::<i128>(), body.as_i128()) {
        return h == b;
    }
    match (header.parse::<f64>(), body.as_f64()) {
        (Ok(h), Some(b)) => h.is_finite() && h == b,
        _ => false,
    }
}

/// Checks the `Mcp-Param-*` headers of a `tools/call` against its `params.arguments`,
/// given the called tool's annotations (from [`tool_param_headers`]).
///
/// For each annotation: a non-null value in the body needs the header (missing →
/// `-32020`), and the decoded header must equal it — strings exactly, booleans as
/// `true`/`false`, integers numerically (`42.0` = `42`). A null or absent value needs no
/// header; a header sent anyway is a mismatch. Invalid characters or Base64 are
/// rejected. `Mcp-Param-*` headers with no annotation are ignored (intermediaries must
/// forward them). Messages other than `tools/call` requests pass.
pub fn validate_param_headers(
    headers: &[(&str, &str)],
    msg: &Message,
    params: &[ParamHeader],
) -> Result<(), HeaderError> {
    if msg.kind != Kind::Request || msg.method.as_deref() != Some("tools/call") {
        return Ok(());
    }
    let args = msg.tool_arguments();
    for p in params {
        let header = p.header_name();
        let mut value = args;
        for key in &p.path {
            value = value.and_then(|v| v.get(key));
        }
        let value = value.filter(|v| !v.is_null());
        let raw = header_value(headers, &header)?;
        let (raw, value) = match (raw, value) {
            (None, None) => continue,
            (None, Some(_)) => return Err(HeaderError::missing(&header)),
            (Some(raw), None) => {
                let decoded = decode_header_value(&header, raw)?;
                return Err(HeaderError::mismatch(&header, &decoded, ""));
            }
            (Some(raw), Some(value)) => (raw, value),
        };
        let decoded = decode_header_value(&header, raw)?;
        let equal = match value {
            Value::String(s) => *s == decoded,
            Value::Bool(b) => decoded == if *b { "true" } else { "false" },
            Value::Number(n) => numbers_equal(&decoded, n),
            _ => false,
        };
        if !equal {
            let body = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Err(HeaderError::mismatch(&header, &decoded, &body));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
