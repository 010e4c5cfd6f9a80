//! Strict JSON: one pass that builds the [`Value`] and refuses a repeated object key at any
//! depth and nesting deeper than [`MAX_DEPTH`], so the policy check and the backend can never
//! read different values out of the same bytes.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::{quote, McpError, MAX_DEPTH};

enum StrictFail {
    Duplicate(String),
    TooDeep,
}

/// Builds the [`Value`] in one pass, refusing a repeated key (caught when inserting it into
/// its object) and nesting deeper than [`MAX_DEPTH`].
struct Strict<'a> {
    depth: usize,
    fail: &'a RefCell<Option<StrictFail>>,
}

impl<'a> Strict<'a> {
    fn child(&self) -> Strict<'a> {
        Strict {
            depth: self.depth + 1,
            fail: self.fail,
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth >= MAX_DEPTH {
            *self.fail.borrow_mut() = Some(StrictFail::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Keys are compared unescaped: `"a"` and `"\u0061"` are the same key.
            match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self.child())?);
                }
                serde_json::map::Entry::Occupied(taken) => {
                    *self.fail.borrow_mut() = Some(StrictFail::Duplicate(quote(taken.key())));
                    return Err(de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON strictly: one value (surrounding whitespace allowed), valid UTF-8, no
/// repeated object key at any depth (compared after unescaping, so `"a"` and `"\u0061"`
/// collide), nesting at most [`MAX_DEPTH`].
pub fn parse_json_strict(body: &[u8]) -> Result<Value, McpError> {
    let fail = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict {
        depth: 0,
        fail: &fail,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| match fail.into_inner() {
        Some(StrictFail::Duplicate(k)) => McpError::DuplicateKey(k),
        Some(StrictFail::TooDeep) => McpError::TooDeep,
        None => McpError::Json(e.to_string()),
    })
}

#[cfg(test)]
mod tests;
