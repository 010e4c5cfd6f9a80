//! Operations as MCP tool definitions (the `tools` of a `tools/list` answer). Pure.

use serde_json::{json, Map, Value};

use super::spec::{Location, Operation};

/// The tool definition of `op`: its name, a description from the summary and description,
/// an input schema with one property per parameter and one for the JSON body, the output
/// schema of its 2xx JSON response, and `readOnlyHint` for `GET`.
pub fn tool(op: &Operation) -> Value {
    let mut tool = Map::new();
    tool.insert("name".into(), Value::from(op.name.clone()));
    if let Some(summary) = &op.summary {
        tool.insert("title".into(), Value::from(summary.clone()));
    }
    tool.insert("description".into(), Value::from(description(op)));
    tool.insert("inputSchema".into(), input_schema(op));
    if let Some(schema) = &op.output_schema {
        let mut schema = schema.clone();
        if schema.get("type").is_none() {
            schema["type"] = Value::from("object");
        }
        tool.insert("outputSchema".into(), schema);
    }
    let read_only = op.method == "get";
    let mut annotations = json!({ "readOnlyHint": read_only });
    if !read_only {
        // PUT and DELETE are idempotent by HTTP's definition; the API may still say otherwise.
        annotations["idempotentHint"] = Value::from(matches!(op.method.as_str(), "put" | "delete"));
    }
    tool.insert("annotations".into(), annotations);
    Value::Object(tool)
}

/// Summary and description, then what the tool calls (so a model sees the endpoint).
fn description(op: &Operation) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if let Some(s) = &op.summary {
        parts.push(s);
    }
    if let Some(d) = &op.description {
        if op.summary.as_deref() != Some(d.as_str()) {
            parts.push(d);
        }
    }
    let call = op.label();
    parts.push(&call);
    parts.join("\n\n")
}

/// One property per parameter (its schema, with its description and where it goes) and the
/// body under its argument name; required ones listed; no other argument accepted.
pub fn input_schema(op: &Operation) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in &op.params {
        let mut schema = p.schema.clone();
        if let Value::Object(s) = &mut schema {
            let where_ = match p.location {
                Location::Path => "path parameter",
                Location::Query => "query parameter",
                Location::Header => "header",
                Location::Cookie => "cookie",
            };
            let text = match (&p.description, s.get("description").and_then(Value::as_str)) {
                (Some(d), _) => format!("{d} ({where_})"),
                (None, Some(d)) => format!("{d} ({where_})"),
                (None, None) => format!("({where_})"),
            };
            s.insert("description".into(), Value::from(text));
        }
        properties.insert(p.name.clone(), schema);
        if p.required {
            required.push(Value::from(p.name.clone()));
        }
    }
    if let Some(body) = &op.body {
        let mut schema = body.schema.clone();
        if let (Value::Object(s), Some(d)) = (&mut schema, &body.description) {
            s.entry("description")
                .or_insert_with(|| Value::from(d.clone()));
        }
        properties.insert(body.arg.clone(), schema);
        if body.required {
            required.push(Value::from(body.arg.clone()));
        }
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema
}
