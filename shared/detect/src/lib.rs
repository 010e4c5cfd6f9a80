//! Detectors: secrets and personal data found in text, for the edge's policy obligations
//! (`redact = [...]`, `block = [...]` on a rule) and the audit log's argument redaction.
//!
//! A detector is a built-in ([`BUILTINS`]: `secrets`, `email`, `phone`, `iban`) or a named
//! regex an operator writes. Matching is linear in the text (the `regex` crate: no
//! backtracking), and an operator's pattern is compiled under a size limit, so no input and no
//! pattern can make a scan slow. Nothing here does I/O, and nothing returns a matched value:
//! callers learn a detector's name and a count, or get the text with every match replaced.

#![forbid(unsafe_code)]

mod builtin;

use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use builtin::Check;
pub use builtin::BUILTINS;

/// Longest named pattern accepted, in bytes.
pub const MAX_PATTERN: usize = 1024;
/// Most memory a compiled named pattern may take (the `regex` crate's size limit).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Why a detector could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("detector name {name:?} {reason}: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    BadName { name: String, reason: &'static str },
    #[error(
        "detector {name:?}: the name of a built-in detector ({}); choose another name",
        BUILTINS.join(", ")
    )]
    Builtin { name: String },
    #[error("detector {name:?}: pattern is {len} bytes, more than the {MAX_PATTERN} allowed")]
    TooLong { name: String, len: usize },
    #[error("detector {name:?}: the pattern is not a valid regex: {error}")]
    BadPattern {
        name: String,
        error: Box<regex::Error>,
    },
    #[error(
        "no detector named {name:?}: use a built-in one ({}) or one defined under [detectors]",
        BUILTINS.join(", ")
    )]
    Unknown { name: String },
}

/// One detector: a name, a pattern, and the check a match must pass.
#[derive(Debug, Clone)]
pub struct Detector {
    name: Arc<str>,
    regex: Regex,
    check: Check,
}

impl Detector {
    /// The built-in detector `name`, if there is one.
    pub fn builtin(name: &str) -> Option<Detector> {
        let (pattern, check) = builtin::builtin(name)?;
        // The built-in patterns are constants, compiled in a test; a failure here would be a
        // bug, reported as "no such detector" rather than a panic.
        let regex = Regex::new(&pattern).ok()?;
        Some(Detector {
            name: name.into(),
            regex,
            check,
        })
    }

    /// A named pattern (`[detectors] name = "regex"` in `policy.toml`).
    pub fn pattern(name: &str, pattern: &str) -> Result<Detector, DetectError> {
        check_name(name)?;
        if BUILTINS.contains(&name) {
            return Err(DetectError::Builtin { name: name.into() });
        }
        if pattern.len() > MAX_PATTERN {
            return Err(DetectError::TooLong {
                name: name.into(),
                len: pattern.len(),
            });
        }
        let regex = RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|error| DetectError::BadPattern {
                name: name.into(),
                error: Box::new(error),
            })?;
        if regex.is_match("") {
            // A pattern that matches nothing at all would "find" itself everywhere.
            return Err(DetectError::BadPattern {
                name: name.into(),
                error: Box::new(regex::Error::Syntax(
                    "it matches the empty text, so it would match everywhere".into(),
                )),
            });
        }
        Ok(Detector {
            name: name.into(),
            regex,
            check: Check::None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matches that count, as byte ranges.
    fn matches<'t>(&'t self, text: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
        self.regex.find_iter(text).filter_map(move |m| {
            let len = self.check.accept(m.as_str())?;
            Some((m.start(), m.start() + len))
        })
    }

    /// Whether `text` holds something this detector finds.
    pub fn finds(&self, text: &str) -> bool {
        self.matches(text).next().is_some()
    }
}

fn check_name(name: &str) -> Result<(), DetectError> {
    let reason = if name.is_empty() || name.len() > 64 {
        Some("is empty or longer than 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("has characters outside a-z, 0-9, '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DetectError::BadName {
            name: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// What detectors found in one place: a detector's name and how many matches it replaced or
/// saw, never the values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(Vec<(Arc<str>, u64)>);

impl Tally {
    fn add(&mut self, name: &Arc<str>, count: u64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += count,
            None => self.0.push((name.clone(), count)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (detector, count), in the order the detectors first found something.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(n, c)| (&**n, *c))
    }

    /// Adds another tally's counts to this one.
    pub fn merge(&mut self, other: &Tally) {
        for (name, count) in &other.0 {
            self.add(name, *count);
        }
    }
}

/// An ordered set of detectors (a rule's `redact` or `block` list, or the audit log's).
#[derive(Debug, Clone, Default)]
pub struct Detectors {
    list: Vec<Detector>,
    /// Whether every detector is a built-in one (see [`Detectors::may_find_in_json`]).
    builtin_only: bool,
}

impl Detectors {
    /// The detectors named, each a built-in one or one of `named`, in the order given (each
    /// once).
    pub fn resolve(names: &[String], named: &[Detector]) -> Result<Detectors, DetectError> {
        let mut list: Vec<Detector> = Vec::with_capacity(names.len());
        let mut builtin_only = true;
        for name in names {
            if list.iter().any(|d| &*d.name == name) {
                continue;
            }
            let detector = match Detector::builtin(name) {
                Some(d) => d,
                None => {
                    builtin_only = false;
                    named
                        .iter()
                        .find(|d| &*d.name == name)
                        .cloned()
                        .ok_or_else(|| DetectError::Unknown { name: name.clone() })?
                }
            };
            list.push(detector);
        }
        Ok(Detectors { list, builtin_only })
    }

    /// The `secrets` detector alone.
    pub fn secrets() -> Detectors {
        Detectors {
            list: Detector::builtin("secrets").into_iter().collect(),
            builtin_only: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// This set's detectors, then those of `other` it lacks (by name: names are unique
    /// within a policy).
    pub fn union(&self, other: &Detectors) -> Detectors {
        let mut list = self.list.clone();
        for d in &other.list {
            if !list.iter().any(|m| m.name == d.name) {
                list.push(d.clone());
            }
        }
        Detectors {
            list,
            builtin_only: self.builtin_only && other.builtin_only,
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(Detector::name)
    }

    /// The first detector (in order) that finds something in `text`.
    pub fn first_in(&self, text: &str) -> Option<&str> {
        self.list.iter().find(|d| d.finds(text)).map(Detector::name)
    }

    /// `text` with every match replaced by `[REDACTED:<detector>]`, detector after detector,
    /// the counts added to `tally`; `None` when nothing was found (the text is then kept as
    /// it is, byte for byte).
    pub fn redact(&self, text: &str, tally: &mut Tally) -> Option<String> {
        let mut current: Option<String> = None;
        for detector in &self.list {
            let source = current.as_deref().unwrap_or(text);
            let mut out = String::new();
            let mut last = 0;
            let mut count = 0u64;
            for (start, end) in detector.matches(source) {
                out.push_str(&source[last..start]);
                out.push_str("[REDACTED:");
                out.push_str(&detector.name);
                out.push(']');
                last = end;
                count += 1;
            }
            if count > 0 {
                out.push_str(&source[last..]);
                tally.add(&detector.name, count);
                current = Some(out);
            }
        }
        current
    }

    /// Whether the raw text of a JSON document may hold something a detector finds in one of
    /// its decoded strings: `false` means it certainly does not, so the document need not be
    /// parsed. A JSON escape can hide a match from a scan of the raw text, so text with a
    /// `\u` or `\/` escape (which no common encoder writes for plain characters) is always
    /// looked at closely, and so is text with any escape when an operator's pattern is in
    /// the set (it may match a quote, a backslash or a newline). The built-in patterns match
    /// none of the characters JSON must escape.
    pub fn may_find_in_json(&self, raw: &str) -> bool {
        if self.list.is_empty() {
            return false;
        }
        let escaped = if self.builtin_only {
            raw.contains("\\u") || raw.contains("\\/")
        } else {
            raw.contains('\\')
        };
        escaped || self.list.iter().any(|d| d.regex.is_match(raw))
    }
}

impl PartialEq for Detectors {
    /// Two sets are equal when they name the same detectors in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.names().eq(other.names())
    }
}

#[cfg(test)]
mod tests;
