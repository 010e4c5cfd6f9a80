//! Names on the federated endpoint: `{prefix}{separator}{name}` for tools and prompts.
//!
//! The specification asks tool names to be 1–128 characters of `[A-Za-z0-9_.-]` (a SHOULD);
//! the clients that feed them to language models refuse names over 64 characters. A federated
//! name longer than [`CLIENT_NAME_LIMIT`] is therefore cut and given a stable hash of the whole
//! name, so the same backend name always gets the same federated name on every edge, across
//! restarts. A cut name cannot be split back: the [`NameTable`] of the service's list maps it.
//!
//! Routing splits at the *first* separator ([`split`]), which is why a prefix may not contain
//! the separator (the edge's configuration refuses one that does).

use std::collections::HashMap;

/// Longest name a federated list hands a client.
pub const CLIENT_NAME_LIMIT: usize = 64;
/// Longest backend name taken at all (bytes): longer ones are dropped from lists.
pub const MAX_BACKEND_NAME: usize = 1024;
/// Hex digits of the hash that ends a cut name.
const HASH_DIGITS: usize = 12;

/// Why a backend's name is left out of a federated list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is {0} bytes long, more than {MAX_BACKEND_NAME}")]
    TooLong(usize),
    #[error("the name holds control characters")]
    ControlCharacter,
    #[error("the name appears more than once in the backend's list")]
    Duplicate,
    #[error("the name shortens to the same federated name as another of the service")]
    Collision,
}

/// Whether a name a backend listed can be served: not empty, at most [`MAX_BACKEND_NAME`]
/// bytes, no control characters (they could forge log lines or confuse a client's display).
pub fn check_backend_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_BACKEND_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(())
}

/// FNV-1a, 64 bits: stable across builds and machines (unlike `std`'s hasher), and enough to
/// tell apart the few long names of one service (collisions are detected anyway).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The federated name of `name` from the service with `prefix`: `{prefix}{separator}{name}`,
/// or, when that is over [`CLIENT_NAME_LIMIT`] characters, its first characters, `-` and 12
/// hex digits of the hash of the whole name (exactly [`CLIENT_NAME_LIMIT`] characters; the
/// configuration keeps prefix and separator far shorter).
pub fn federated_name(prefix: &str, separator: &str, name: &str) -> String {
    let full = format!("{prefix}{separator}{name}");
    if full.chars().count() <= CLIENT_NAME_LIMIT {
        return full;
    }
    let keep = CLIENT_NAME_LIMIT - HASH_DIGITS - 1;
    let mut cut: String = full.chars().take(keep).collect();
    let hash = fnv1a(full.as_bytes());
    cut.push('-');
    cut.push_str(&format!("{hash:016x}")[..HASH_DIGITS]);
    cut
}

/// Splits a federated name at the first separator: `(prefix, rest)`. `None` without one.
pub fn split<'a>(federated: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    federated
        .split_once(separator)
        .filter(|(prefix, rest)| !prefix.is_empty() && !rest.is_empty())
}

/// One service's names both ways, built from the names its backend listed.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    to_federated: HashMap<String, String>,
    to_original: HashMap<String, String>,
    /// The names that were cut, `(federated, original)`.
    cut: Vec<(String, String)>,
}

/// A listed name left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The name as a log may show it (control characters escaped, at most 128 characters).
    pub shown: String,
    pub why: NameError,
}

/// A name shown escaped and bounded, for a log line.
pub fn shown(name: &str) -> String {
    name.chars()
        .take(128)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

impl NameTable {
    /// The table of `names` (in list order). Invalid names, second and later copies of a name
    /// (all copies are dropped: which one the backend would run is unknown) and names that cut
    /// to the federated name of another are left out and reported.
    pub fn build<'a>(
        prefix: &str,
        separator: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> (NameTable, Vec<Dropped>) {
        let names = names.into_iter();
        let mut dropped = Vec::new();
        let mut copies: HashMap<&str, u32> = HashMap::with_capacity(names.size_hint().0);
        let mut order = Vec::with_capacity(names.size_hint().0);
        for name in names {
            match check_backend_name(name) {
                Err(why) => dropped.push(Dropped {
                    shown: shown(name),
                    why,
                }),
                Ok(()) => {
                    let count = copies.entry(name).or_default();
                    *count += 1;
                    if *count == 1 {
                        order.push(name);
                    }
                }
            }
        }
        let mut table = NameTable {
            to_federated: HashMap::with_capacity(order.len()),
            to_original: HashMap::with_capacity(order.len()),
            cut: Vec::new(),
        };
        // Distinct names whose federated names are shorter than the limit are distinct
        // federated names; only a cut name (always at the limit) can meet another there.
        let mut at_limit: HashMap<String, Vec<&str>> = HashMap::new();
        for name in order {
            if copies.get(name).copied().unwrap_or(0) > 1 {
                dropped.push(Dropped {
                    shown: shown(name),
                    why: NameError::Duplicate,
                });
                continue;
            }
            let federated = federated_name(prefix, separator, name);
            if federated.chars().count() == CLIENT_NAME_LIMIT {
                at_limit.entry(federated).or_default().push(name);
            } else {
                table.insert(name, federated, false);
            }
        }
        for (federated, originals) in at_limit {
            if let [original] = originals.as_slice() {
                let cut = federated.len() != prefix.len() + separator.len() + original.len();
                table.insert(original, federated, cut);
            } else {
                dropped.extend(originals.iter().map(|n| Dropped {
                    shown: shown(n),
                    why: NameError::Collision,
                }));
            }
        }
        (table, dropped)
    }

    fn insert(&mut self, original: &str, federated: String, cut: bool) {
        if cut {
            self.cut.push((federated.clone(), original.to_owned()));
        }
        self.to_federated
            .insert(original.to_owned(), federated.clone());
        self.to_original.insert(federated, original.to_owned());
    }

    /// The federated name of a backend name the table holds.
    pub fn federated(&self, original: &str) -> Option<&str> {
        self.to_federated.get(original).map(String::as_str)
    }

    /// The backend name of a federated name the table holds.
    pub fn original(&self, federated: &str) -> Option<&str> {
        self.to_original.get(federated).map(String::as_str)
    }

    /// The names that were cut, `(federated, original)`, sorted: what the edge reports.
    pub fn shortened(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .cut
            .iter()
            .map(|(f, o)| (f.as_str(), o.as_str()))
            .collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.to_original.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to_original.is_empty()
    }
}

#[cfg(test)]
mod tests;
