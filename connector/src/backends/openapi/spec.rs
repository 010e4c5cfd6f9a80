//! An OpenAPI 3.0 or 3.1 document (JSON or YAML) → the operations served as tools, every
//! `$ref` resolved, filtered by `include`/`exclude`, checked so that a bad document is one
//! clear error at load. Pure.
//!
//! Why no OpenAPI model crate: `openapiv3` reads 3.0 only and `oas3` 3.1 only, and neither
//! inlines schema refs into the standalone JSON Schemas a tool needs. What is read here is a
//! small part of the document (paths, operations, parameters, JSON bodies and responses), so
//! it is read from the JSON tree with the shape checked as it goes.

use serde_json::{Map, Value};

use super::error::OpenapiError;
use super::refs::Resolver;
use crate::config::{OperationFilter, METHODS};

/// Largest document read (file or URL).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Most operations one service may serve as tools.
pub const MAX_OPERATIONS: usize = 1000;
/// Longest tool name (MCP clients commonly refuse longer ones).
pub const MAX_NAME: usize = 64;

/// The operations of a document, ready to be served.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// `info.title` of the document.
    pub title: String,
    /// The operations selected, in document order (paths, then methods in [`METHODS`] order).
    pub operations: Vec<Operation>,
}

impl Catalog {
    pub fn find(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.name == name)
    }
}

/// One operation, as a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The tool name: `operationId` sanitized.
    pub name: String,
    /// Lowercase HTTP method.
    pub method: String,
    /// The path template as in the document, e.g. `/pets/{id}`.
    pub path: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    /// The JSON Schema of a 2xx JSON response whose root is an object.
    pub output_schema: Option<Value>,
}

impl Operation {
    /// `GET /pets/{id}`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }
}

/// Where a parameter goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

impl Location {
    fn parse(s: &str) -> Option<Location> {
        Some(match s {
            "path" => Location::Path,
            "query" => Location::Query,
            "header" => Location::Header,
            "cookie" => Location::Cookie,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }
}

/// A path, query, header or cookie parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub location: Location,
    pub required: bool,
    pub description: Option<String>,
    /// JSON Schema, refs inlined (`{}` when the document gives none).
    pub schema: Value,
    /// Query arrays: repeated `name=v` (`explode`, the default) or one `name=a,b`.
    pub explode: bool,
}

/// A JSON request body, given as the tool argument `arg`.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The tool argument carrying it: `body` (or `requestBody` when a parameter is `body`).
    pub arg: String,
    pub required: bool,
    pub description: Option<String>,
    /// The media type sent, e.g. `application/json`.
    pub content_type: String,
    pub schema: Value,
}

/// The document's tree from its bytes: JSON when it starts with `{`, else YAML (a superset).
pub fn parse_document(bytes: &[u8]) -> Result<Value, OpenapiError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(OpenapiError::TooLarge {
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| OpenapiError::Syntax(format!("not UTF-8: {e}")))?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| OpenapiError::Syntax(format!("JSON: {e}")))
    } else {
        serde_norway::from_str(text).map_err(|e| OpenapiError::Syntax(format!("YAML: {e}")))
    }
}

/// The operations of `doc` selected by `include` (empty: all) and not by `exclude`.
pub fn catalog(
    doc: &Value,
    include: &OperationFilter,
    exclude: &OperationFilter,
) -> Result<Catalog, OpenapiError> {
    let version = doc.get("openapi").and_then(Value::as_str).ok_or_else(|| {
        OpenapiError::Version("no `openapi` version string (Swagger 2.0 is not read)".into())
    })?;
    let openapi_30 = if version.starts_with("3.0") {
        true
    } else if version.starts_with("3.1") {
        false
    } else {
        return Err(OpenapiError::Version(format!("`openapi: {version}`")));
    };
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut resolver = Resolver::new(doc, openapi_30);
    let mut operations: Vec<Operation> = Vec::new();
    let paths = match doc.get("paths") {
        None => None,
        Some(Value::Object(paths)) => Some(paths),
        Some(_) => return Err(invalid("paths", "not an object")),
    };
    for (path, item) in paths.into_iter().flatten() {
        let item = resolver.follow(item, &format!("paths.{path}"))?;
        let item = object(item, &format!("paths.{path}"))?;
        let shared = item.get("parameters");
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let label = format!("{} {path}", method.to_uppercase());
            let op = object(op, &label)?;
            let tags: Vec<String> = match op.get("tags") {
                None => Vec::new(),
                Some(Value::Array(t)) => t
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(_) => return Err(invalid(&label, "`tags` is not an array")),
            };
            let selected = (include.is_empty() || include.matches(method, path, &tags))
                && !exclude.matches(method, path, &tags);
            if !selected {
                continue;
            }
            if operations.len() == MAX_OPERATIONS {
                return Err(OpenapiError::TooManyOperations {
                    limit: MAX_OPERATIONS,
                });
            }
            let operation = operation(&mut resolver, method, path, &label, op, shared)?;
            if let Some(other) = operations.iter().find(|o| o.name == operation.name) {
                return Err(OpenapiError::DuplicateName {
                    name: operation.name,
                    first: other.label(),
                    second: label,
                });
            }
            operations.push(operation);
        }
    }
    if operations.is_empty() {
        return Err(OpenapiError::NoOperations);
    }
    Ok(Catalog { title, operations })
}

fn invalid(at: &str, what: &str) -> OpenapiError {
    OpenapiError::Invalid {
        at: at.to_owned(),
        what: what.to_owned(),
    }
}

fn object<'v>(v: &'v Value, at: &str) -> Result<&'v Map<String, Value>, OpenapiError> {
    v.as_object().ok_or_else(|| invalid(at, "not an object"))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An operationId as a tool name: `[A-Za-z0-9_-]` kept, anything else `_`, at most
/// [`MAX_NAME`] characters.
pub fn tool_name(operation_id: &str) -> String {
    operation_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect()
}

fn operation(
    resolver: &mut Resolver<'_>,
    method: &str,
    path: &str,
    label: &str,
    op: &Map<String, Value>,
    shared: Option<&Value>,
) -> Result<Operation, OpenapiError> {
    let Some(id) = op.get("operationId").and_then(Value::as_str) else {
        return Err(OpenapiError::NoOperationId(label.to_owned()));
    };
    let name = tool_name(id);
    if name.is_empty() {
        return Err(OpenapiError::EmptyName(label.to_owned()));
    }
    let params = parameters(resolver, label, shared, op.get("parameters"))?;
    for p in params.iter().filter(|p| p.location == Location::Path) {
        if !path.contains(&format!("{{{}}}", p.name)) {
            return Err(invalid(
                label,
                &format!("path parameter {:?} is not in the path", p.name),
            ));
        }
    }
    // Every `{name}` of the template needs its parameter, or the call would send it as is.
    for name in path
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(n, _)| n)
    {
        if !params
            .iter()
            .any(|p| p.location == Location::Path && p.name == name)
        {
            return Err(invalid(
                label,
                &format!("the path's {{{name}}} has no path parameter"),
            ));
        }
    }
    let body = match op.get("requestBody") {
        None => None,
        Some(b) => body(resolver, label, b, &params)?,
    };
    Ok(Operation {
        name,
        method: method.to_owned(),
        path: path.to_owned(),
        summary: text(op.get("summary")),
        description: text(op.get("description")),
        params,
        body,
        output_schema: output_schema(resolver, label, op.get("responses"))?,
    })
}

/// The path item's parameters, overridden by the operation's (same name and location).
fn parameters(
    resolver: &mut Resolver<'_>,
    label: &str,
    shared: Option<&Value>,
    own: Option<&Value>,
) -> Result<Vec<Param>, OpenapiError> {
    let mut out: Vec<Param> = Vec::new();
    for list in [shared, own].into_iter().flatten() {
        let at = format!("{label} parameters");
        let list = list
            .as_array()
            .ok_or_else(|| invalid(&at, "not an array"))?;
        for p in list {
            let p = resolver.follow(p, &at)?;
            let p = object(p, &at)?;
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&at, "a parameter without `name`"))?;
            let location = p
                .get("in")
                .and_then(Value::as_str)
                .and_then(Location::parse)
                .ok_or_else(|| {
                    invalid(
                        &at,
                        &format!("parameter {name:?}: `in` is not path, query, header or cookie"),
                    )
                })?;
            // OpenAPI: header parameters `Accept`, `Content-Type` and `Authorization` are
            // ignored; the connector sets those (and the framing headers) itself.
            if location == Location::Header
                && RESERVED_HEADERS
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(name))
            {
                continue;
            }
            // Parameters described by `content` instead of `schema` are taken as strings.
            let schema = match p.get("schema") {
                Some(s) => resolver.inline(s, &format!("{at} {name:?}"))?,
                None => Value::Object(Map::new()),
            };
            let explode = p.get("explode").and_then(Value::as_bool).unwrap_or(
                p.get("style")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "form"),
            );
            let param = Param {
                name: name.to_owned(),
                location,
                required: location == Location::Path
                    || p.get("required").and_then(Value::as_bool).unwrap_or(false),
                description: text(p.get("description")),
                schema,
                explode,
            };
            out.retain(|q| !(q.name == param.name && q.location == param.location));
            if let Some(clash) = out.iter().find(|q| q.name == param.name) {
                return Err(OpenapiError::ArgumentClash {
                    op: label.to_owned(),
                    name: param.name,
                    a: clash.location.name().to_owned(),
                    b: location.name().to_owned(),
                });
            }
            out.push(param);
        }
    }
    Ok(out)
}

/// Header parameters never taken from a document (OpenAPI ignores the first three; the rest
/// frame the request).
const RESERVED_HEADERS: [&str; 8] = [
    "accept",
    "content-type",
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "cookie",
];

/// A JSON media type: `application/json`, or any `…+json`.
pub fn is_json(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The JSON entry of a `content` map, if any.
fn json_content(content: Option<&Value>) -> Option<(&String, &Value)> {
    content?.as_object()?.iter().find(|(k, _)| is_json(k))
}

fn body(
    resolver: &mut Resolver<'_>,
    label: &str,
    body: &Value,
    params: &[Param],
) -> Result<Option<Body>, OpenapiError> {
    let at = format!("{label} requestBody");
    let body = resolver.follow(body, &at)?;
    let body = object(body, &at)?;
    let required = body
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some((media_type, media)) = json_content(body.get("content")) else {
        if required {
            return Err(invalid(
                &at,
                "a required body with no JSON media type (only JSON bodies are sent): leave the operation out with `exclude`",
            ));
        }
        return Ok(None);
    };
    let schema = match media.get("schema") {
        Some(s) => resolver.inline(s, &at)?,
        None => Value::Object(Map::new()),
    };
    let arg = ["body", "requestBody"]
        .into_iter()
        .find(|a| params.iter().all(|p| p.name != *a))
        .ok_or_else(|| {
            invalid(
                &at,
                "parameters named `body` and `requestBody` leave no argument for the body",
            )
        })?;
    Ok(Some(Body {
        arg: arg.to_owned(),
        required,
        description: text(body.get("description")),
        content_type: media_type.clone(),
        schema,
    }))
}

/// The schema of the first 2xx response (`200`…`299`, then `2XX`) with JSON content, when its
/// root is an object (MCP's `outputSchema` must be one).
fn output_schema(
    resolver: &mut Resolver<'_>,
    label: &str,
    responses: Option<&Value>,
) -> Result<Option<Value>, OpenapiError> {
    let Some(responses) = responses.and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut codes: Vec<&String> = responses
        .keys()
        .filter(|k| k.len() == 3 && k.starts_with('2'))
        .collect();
    codes.sort_by_key(|k| (k.as_str() == "2XX" || k.as_str() == "2xx", k.as_str()));
    let Some(code) = codes.first() else {
        return Ok(None);
    };
    let at = format!("{label} responses.{code}");
    let response = resolver.follow(&responses[code.as_str()], &at)?;
    let Some((_, media)) = json_content(response.get("content")) else {
        return Ok(None);
    };
    let Some(schema) = media.get("schema") else {
        return Ok(None);
    };
    let schema = resolver.inline(schema, &at)?;
    let is_object = match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(_) => false,
        None => schema.get("properties").is_some(),
    };
    Ok(is_object.then_some(schema))
}
