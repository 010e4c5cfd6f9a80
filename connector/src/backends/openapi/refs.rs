//! `$ref`s inside one OpenAPI document: followed (parameters, request bodies, responses) or
//! inlined (schemas), with cycles and unresolvable or external refs refused and the expansion
//! bounded, since refs can multiply a small document into a huge schema.

use serde_json::{Map, Value};

use super::error::OpenapiError;

/// Most JSON values all of a document's inlined schemas may add up to.
pub const MAX_EXPANDED_VALUES: usize = 1_000_000;

/// Refs followed in a row before giving up (a chain `a → b → … ` without a cycle).
const MAX_CHAIN: usize = 64;

/// Resolves the `$ref`s of one document.
pub struct Resolver<'a> {
    root: &'a Value,
    /// OpenAPI 3.0: `nullable: true` becomes a `"null"` type, as JSON Schema says it.
    openapi_30: bool,
    /// Values still allowed to be produced by [`Resolver::inline`].
    budget: usize,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Value, openapi_30: bool) -> Self {
        Resolver {
            root,
            openapi_30,
            budget: MAX_EXPANDED_VALUES,
        }
    }

    /// The value a local ref `#/a/b~1c` points at.
    fn target(&self, reference: &str, at: &str) -> Result<&'a Value, OpenapiError> {
        let unresolvable = || OpenapiError::UnresolvableRef {
            reference: reference.to_owned(),
            at: at.to_owned(),
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(unresolvable());
        };
        // A ref is a URI fragment: percent-decoded first, then a JSON pointer.
        let pointer = percent_encoding::percent_decode_str(pointer)
            .decode_utf8()
            .map_err(|_| unresolvable())?;
        self.root.pointer(&pointer).ok_or_else(unresolvable)
    }

    /// `value` with its `$ref`s followed until a value without one (a parameter, a request
    /// body, a response); `at` names where it is, for errors.
    pub fn follow(&self, mut value: &'a Value, at: &str) -> Result<&'a Value, OpenapiError> {
        let mut seen: Vec<&str> = Vec::new();
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            if seen.contains(&reference) || seen.len() >= MAX_CHAIN {
                seen.push(reference);
                return Err(OpenapiError::CyclicRef {
                    at: at.to_owned(),
                    chain: seen.join(" → "),
                });
            }
            seen.push(reference);
            value = self.target(reference, at)?;
        }
        Ok(value)
    }

    /// A schema with every `$ref` inside it replaced by what it points at, as one tree (a
    /// tool's schema must stand alone). A ref reached again inside itself is a cycle.
    pub fn inline(&mut self, schema: &Value, at: &str) -> Result<Value, OpenapiError> {
        let mut stack = Vec::new();
        self.inline_in(schema, at, &mut stack)
    }

    fn inline_in(
        &mut self,
        value: &Value,
        at: &str,
        stack: &mut Vec<String>,
    ) -> Result<Value, OpenapiError> {
        if self.budget == 0 {
            return Err(OpenapiError::SchemaTooLarge {
                at: at.to_owned(),
                limit: MAX_EXPANDED_VALUES,
            });
        }
        self.budget -= 1;
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    if stack.iter().any(|r| r == reference) || stack.len() >= MAX_CHAIN {
                        let mut chain = stack.clone();
                        chain.push(reference.to_owned());
                        return Err(OpenapiError::CyclicRef {
                            at: at.to_owned(),
                            chain: chain.join(" → "),
                        });
                    }
                    let target = self.target(reference, at)?;
                    stack.push(reference.to_owned());
                    let resolved = self.inline_in(target, at, stack);
                    stack.pop();
                    let mut resolved = resolved?;
                    // Keys beside a `$ref` (3.1 allows them; 3.0 tools write `description`)
                    // add to the target, never replace what it says.
                    if let Value::Object(out) = &mut resolved {
                        for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                            if !out.contains_key(k) {
                                let v = self.inline_in(v, at, stack)?;
                                out.insert(k.clone(), v);
                            }
                        }
                    }
                    return Ok(resolved);
                }
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    // `example(s)` and `properties` values are data or names, never refs to
                    // follow at this level; only schema positions are walked as schemas.
                    let v = if k == "example" || k == "examples" || k == "default" || k == "enum" {
                        v.clone()
                    } else {
                        self.inline_in(v, at, stack)?
                    };
                    out.insert(k.clone(), v);
                }
                if self.openapi_30 {
                    nullable_to_type(&mut out);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.inline_in(v, at, stack))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema's `"type": [t, "null"]`.
fn nullable_to_type(schema: &mut Map<String, Value>) {
    if schema.get("nullable") != Some(&Value::Bool(true)) {
        return;
    }
    schema.remove("nullable");
    if let Some(Value::String(t)) = schema.get("type") {
        let t = Value::Array(vec![Value::String(t.clone()), Value::from("null")]);
        schema.insert("type".to_owned(), t);
    }
}
