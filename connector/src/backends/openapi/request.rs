//! A tool call's arguments → the HTTP request of its operation: path parameters
//! percent-encoded into the path template, query parameters, headers, cookies, the JSON body.
//! Pure; a missing or ill-shaped argument is an [`ArgError`] the client reads as a tool error.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::spec::{Location, Operation, Param};

/// Everything but RFC 3986's unreserved characters is encoded: a value cannot add a path
/// segment, a query parameter or a fragment.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The HTTP request of one call, before the connector adds its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Uppercase, e.g. `GET`.
    pub method: String,
    /// The base URL's path with the operation's path appended, and the query.
    pub path_and_query: String,
    /// Header and cookie parameters (names as in the document).
    pub headers: Vec<(String, String)>,
    /// The JSON body and its media type.
    pub body: Option<(String, Vec<u8>)>,
}

/// Why the arguments do not make a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("`arguments` must be an object")]
    NotObject,
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("missing required argument {0:?}")]
    Missing(String),
    #[error("argument {name:?}: {what}")]
    Shape { name: String, what: &'static str },
}

/// The request for `op` under the base URL's `base_path` (and its own `base_query`).
pub fn build(
    op: &Operation,
    base_path: &str,
    base_query: Option<&str>,
    arguments: Option<&Value>,
) -> Result<HttpCall, ArgError> {
    let empty = Map::new();
    let args = match arguments {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ArgError::NotObject),
    };
    let body_arg = op.body.as_ref().map(|b| b.arg.as_str());
    if let Some(unknown) = args
        .keys()
        .find(|k| Some(k.as_str()) != body_arg && op.params.iter().all(|p| &p.name != *k))
    {
        return Err(ArgError::Unknown(unknown.clone()));
    }
    let mut path = op.path.clone();
    let mut query: Vec<String> = base_query
        .filter(|q| !q.is_empty())
        .map(|q| vec![q.to_owned()])
        .unwrap_or_default();
    let mut headers = Vec::new();
    let mut cookies = Vec::new();
    for p in &op.params {
        let value = match args.get(&p.name) {
            None | Some(Value::Null) if p.required => {
                return Err(ArgError::Missing(p.name.clone()))
            }
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        match p.location {
            Location::Path => {
                let v = joined(p, value)?;
                if v.is_empty() || v == "." || v == ".." {
                    return Err(shape(p, "a path parameter cannot be empty, `.` or `..`"));
                }
                let encoded = utf8_percent_encode(&v, COMPONENT).to_string();
                path = path.replace(&format!("{{{}}}", p.name), &encoded);
            }
            Location::Query => {
                let key = utf8_percent_encode(&p.name, COMPONENT).to_string();
                match value {
                    Value::Array(items) if p.explode => {
                        for item in items {
                            let v = scalar(p, item)?;
                            query.push(format!("{key}={}", utf8_percent_encode(&v, COMPONENT)));
                        }
                    }
                    // No deepObject: an object goes as its JSON text.
                    Value::Object(_) => query.push(format!(
                        "{key}={}",
                        utf8_percent_encode(&value.to_string(), COMPONENT)
                    )),
                    _ => {
                        let v = joined(p, value)?;
                        query.push(format!("{key}={}", utf8_percent_encode(&v, COMPONENT)));
                    }
                }
            }
            Location::Header => {
                let v = joined(p, value)?;
                if v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                    return Err(shape(p, "a header value cannot hold control characters"));
                }
                headers.push((p.name.clone(), v));
            }
            Location::Cookie => {
                let v = joined(p, value)?;
                cookies.push(format!("{}={}", p.name, utf8_percent_encode(&v, COMPONENT)));
            }
        }
    }
    if !cookies.is_empty() {
        headers.push(("cookie".to_owned(), cookies.join("; ")));
    }
    let body = match &op.body {
        None => None,
        Some(b) => match args.get(&b.arg) {
            None if b.required => return Err(ArgError::Missing(b.arg.clone())),
            None => None,
            Some(v) => Some((b.content_type.clone(), v.to_string().into_bytes())),
        },
    };
    let mut path_and_query = base_path.trim_end_matches('/').to_owned();
    path_and_query.push_str(&path);
    if !query.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&query.join("&"));
    }
    Ok(HttpCall {
        method: op.method.to_uppercase(),
        path_and_query,
        headers,
        body,
    })
}

fn shape(p: &Param, what: &'static str) -> ArgError {
    ArgError::Shape {
        name: p.name.clone(),
        what,
    }
}

/// A string, number or boolean as text.
fn scalar(p: &Param, v: &Value) -> Result<String, ArgError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(shape(p, "expected a string, number or boolean")),
    }
}

/// A scalar, or an array of scalars comma-joined (OpenAPI's `simple` and unexploded `form`).
fn joined(p: &Param, v: &Value) -> Result<String, ArgError> {
    match v {
        Value::Array(items) => Ok(items
            .iter()
            .map(|i| scalar(p, i))
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        _ => scalar(p, v),
    }
}
