//! One page of a backend's list, read in a single pass over its JSON text: each item split
//! where the edge changes it (name or URI, description) and the rest of it kept as the text
//! the backend sent. The items, most of the bytes, are never built into trees, and the text
//! is scanned once (a tool's schema is copied, not parsed).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Kind;
use crate::federation::upstream::UpstreamError;

/// One page of a list answer: its items (`None` for one that is not an object with a string
/// name or URI), and its other members (`nextCursor`, caching hints, `_meta`) as a tree.
pub struct Page {
    pub items: Vec<Option<Split>>,
    pub rest: Value,
}

impl Page {
    /// Reads a list result. A duplicated member counts once, the last, as in a parsed object.
    pub fn read(kind: Kind, result: &RawValue) -> Result<Page, UpstreamError> {
        let unreadable = || {
            UpstreamError::Unreadable(format!(
                "its {} answer has no `{}` list",
                kind.method(),
                kind.key()
            ))
        };
        let mut reader = serde_json::Deserializer::from_str(result.get());
        let (items, rest) = reader.deserialize_any(PageVisitor(kind)).map_err(|e| {
            if e.is_data() {
                unreadable()
            } else {
                UpstreamError::Unreadable(format!("its {} answer: {e}", kind.method()))
            }
        })?;
        Ok(Page {
            items: items.ok_or_else(unreadable)?,
            rest: Value::Object(rest),
        })
    }
}

/// One item of a backend's list, split where the edge changes it: its name or URI, its
/// description (JSON text), and its other members as JSON text without the braces, in key
/// order (never parsed below the top level).
pub struct Split {
    pub original: String,
    pub description: Option<String>,
    pub rest: String,
}

impl Split {
    /// `None` for an item that is not an object or lacks a string name (or URI).
    pub fn of(kind: Kind, item: &RawValue) -> Option<Split> {
        let mut reader = serde_json::Deserializer::from_str(item.get());
        ItemSeed(kind).deserialize(&mut reader).ok().flatten()
    }
}

/// Writes `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f);
    if plain {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// The visitor methods of the JSON values that are neither object nor array: each `Ok(None)`
/// (the value is read, and is not what was looked for).
macro_rules! scalars_are_none {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

/// A member name, borrowed from the text when it holds no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The result object: its list (`None` when the member is missing or not an array) and the
/// other members.
struct PageVisitor(Kind);

impl<'de> Visitor<'de> for PageVisitor {
    type Value = (Option<Vec<Option<Split>>>, Map<String, Value>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = None;
        let mut rest = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if key == self.0.key() {
                items = map.next_value_seed(ItemsSeed(self.0))?;
            } else {
                rest.insert(key.into_owned(), map.next_value()?);
            }
        }
        Ok((items, rest))
    }
}

/// The list member: `None` unless it is an array.
struct ItemsSeed(Kind);

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Option<Vec<Option<Split>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Option<Vec<Option<Split>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(ItemSeed(self.0))? {
            items.push(item);
        }
        Ok(Some(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    scalars_are_none!();
}

/// One item: `None` unless it is an object with a string name (or URI).
struct ItemSeed(Kind);

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Option<Split>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Option<Split>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let id = self.0.id_field();
        let mut original = None;
        let mut description = None;
        let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if key == id {
                original = serde_json::from_str::<String>(value.get()).ok();
            } else if key == "description" {
                description = Some(value.get().to_owned());
            } else {
                members.push((key, value));
            }
        }
        // Key order, and the last of a duplicated member: what a parsed object holds.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let size = members.iter().map(|(k, v)| k.len() + v.get().len() + 4);
        let mut rest = String::with_capacity(size.sum());
        for (i, (key, value)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !rest.is_empty() {
                rest.push(',');
            }
            push_json_str(&mut rest, key);
            rest.push(':');
            rest.push_str(value.get());
        }
        Ok(original.map(|original| Split {
            original,
            description,
            rest,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    scalars_are_none!();
}
