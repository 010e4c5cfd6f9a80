//! What of a call's arguments may enter the trail: secret-looking keys redacted, secrets
//! found in values (the `secrets` detector the edge's policy obligations use) replaced, sizes
//! cut.

use std::sync::LazyLock;

use serde_json::Value;
use underpass_detect::{Detectors, Tally};

/// What the trail never holds, whatever the key: keys, tokens and JWTs found in values.
static SECRETS: LazyLock<Detectors> = LazyLock::new(Detectors::secrets);

/// Object keys whose values are never logged (matched case-insensitively, ignoring `-`/`_`,
/// as substrings: `db_password`, `X-Api-Key`, `accessToken`…).
pub(crate) const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "cookie",
];
pub(crate) const REDACTED: &str = "[REDACTED]";
pub(crate) const MAX_ARG_STRING: usize = 1024;
pub(crate) const MAX_ARG_ITEMS: usize = 100;
pub(crate) const MAX_ARG_DEPTH: usize = 16;

/// Prepares request arguments for the audit log: `None` for `null`, otherwise a copy with the
/// values of secret-looking keys replaced by `"[REDACTED]"`, what the `secrets` detector finds
/// in the other strings replaced by `[REDACTED:secrets]`, long strings cut to 1 KiB, long
/// arrays and objects cut to 100 entries and nesting cut at depth 16. The caller sets
/// [`AuditRecord::arguments`] from it only when `log_arguments` is on (see
/// [`Auditor::arguments`]).
pub fn redact_arguments(args: &Value) -> Option<Value> {
    if args.is_null() {
        return None;
    }
    Some(redact(args, 0))
}

pub(crate) fn redact(v: &Value, depth: usize) -> Value {
    match v {
        Value::Object(_) | Value::Array(_) if depth >= MAX_ARG_DEPTH => Value::String("[…]".into()),
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .take(MAX_ARG_ITEMS)
                .map(|(k, v)| {
                    let v = if is_sensitive(k) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v, depth + 1)
                    };
                    (k.clone(), v)
                })
                .collect();
            if map.len() > MAX_ARG_ITEMS {
                out.insert(
                    "…".into(),
                    Value::String(format!("{} more keys", map.len() - MAX_ARG_ITEMS)),
                );
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out: Vec<Value> = items
                .iter()
                .take(MAX_ARG_ITEMS)
                .map(|v| redact(v, depth + 1))
                .collect();
            if items.len() > MAX_ARG_ITEMS {
                out.push(Value::String(format!(
                    "… {} more items",
                    items.len() - MAX_ARG_ITEMS
                )));
            }
            Value::Array(out)
        }
        Value::String(s) => {
            // Found before the cut, so that no secret is kept half.
            let found = SECRETS.redact(s, &mut Tally::default());
            let s = found.as_deref().unwrap_or(s);
            if s.len() <= MAX_ARG_STRING {
                return Value::String(s.to_owned());
            }
            let mut cut = MAX_ARG_STRING;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(format!("{}…[{} bytes]", &s[..cut], s.len()))
        }
        other => other.clone(),
    }
}

pub(crate) fn is_sensitive(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    SENSITIVE_KEYS.iter().any(|s| k.contains(s))
}
