//! What an allow rule obliges the edge to do with what it lets through: `redact` (matches in
//! tool results, resource contents and prompt messages replaced) and `block` (a call whose
//! arguments carry a match refused; a result that carries one replaced with an error).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use underpass_detect::{Detector, Detectors};

use crate::policy::error::PolicyError;

/// A rule's obligations; the default is none (the response path then does nothing at all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obligations {
    /// Detectors whose matches are redacted from what the call returns.
    pub redact: Option<Arc<Detectors>>,
    /// Detectors whose matches refuse the call (in its arguments) or its result.
    pub block: Option<Arc<Detectors>>,
}

impl Obligations {
    pub fn is_empty(&self) -> bool {
        self.redact.is_none() && self.block.is_none()
    }

    /// The first `block` detector that finds something in a call's arguments (in any string,
    /// keys included: nothing in arguments is exempt).
    pub fn blocked_by(&self, arguments: &Value) -> Option<&str> {
        let block = self.block.as_deref()?;
        let mut found: Option<&str> = None;
        each_string(arguments, 0, &mut |text| {
            if found.is_none() {
                found = block.first_in(text);
            }
        });
        found
    }

    /// The rule's `redact` and `block` lists, each detector a built-in one or one of `named`.
    pub(super) fn of_rule(
        place: &str,
        redact: Option<Vec<String>>,
        block: Option<Vec<String>>,
        named: &[Detector],
    ) -> Result<Obligations, PolicyError> {
        let resolve = |key: &'static str, names: Option<Vec<String>>| {
            let Some(names) = names else {
                return Ok(None);
            };
            if names.is_empty() {
                return Err(PolicyError::EmptyList {
                    rule: place.to_owned(),
                    key,
                    hint: " (omit it to apply no detector)",
                });
            }
            Detectors::resolve(&names, named)
                .map(|d| Some(Arc::new(d)))
                .map_err(|error| PolicyError::BadDetector {
                    rule: place.to_owned(),
                    key,
                    error,
                })
        };
        Ok(Obligations {
            redact: resolve("redact", redact)?,
            block: resolve("block", block)?,
        })
    }

    /// Both lists together (a batch whose calls several rules allowed gets all of them).
    pub fn merge(&mut self, other: &Obligations) {
        fn join(mine: &mut Option<Arc<Detectors>>, theirs: &Option<Arc<Detectors>>) {
            match (mine.as_mut(), theirs) {
                (_, None) => {}
                (None, Some(t)) => *mine = Some(t.clone()),
                (Some(m), Some(t)) if **m != **t => *m = Arc::new(m.union(t)),
                (Some(_), Some(_)) => {}
            }
        }
        join(&mut self.redact, &other.redact);
        join(&mut self.block, &other.block);
    }
}

impl fmt::Display for Obligations {
    /// `; redact secrets, email; block secrets`, or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, list) in [("redact", &self.redact), ("block", &self.block)] {
            if let Some(list) = list {
                write!(f, "; {key} {}", list.names().collect::<Vec<_>>().join(", "))?;
            }
        }
        Ok(())
    }
}

/// The `[detectors]` table: named regexes rules may list beside the built-in detectors.
pub(super) fn named(
    table: std::collections::BTreeMap<String, String>,
) -> Result<Vec<Detector>, PolicyError> {
    const MAX_NAMED: usize = 64;
    if table.len() > MAX_NAMED {
        return Err(PolicyError::TooManyDetectors {
            count: table.len(),
            max: MAX_NAMED,
        });
    }
    table
        .iter()
        .map(|(name, pattern)| {
            Detector::pattern(name, pattern).map_err(PolicyError::BadNamedDetector)
        })
        .collect()
}

/// Nesting deeper than this is not looked into (the edge's JSON parser stops at 128).
pub const MAX_DEPTH: usize = 128;

/// Every string, object keys included (arguments: nothing in them is exempt).
fn each_string(v: &Value, depth: usize, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) if depth < MAX_DEPTH => {
            items.iter().for_each(|i| each_string(i, depth + 1, f));
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map {
                f(k);
                each_string(v, depth + 1, f);
            }
        }
        _ => {}
    }
}
