//! `policy.toml` as written (serde), and its compilation into rules with the operator's
//! error messages.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::policy::constraint::{Check, Constraint};
use crate::policy::error::PolicyError;
use crate::policy::glob::PathGlob;
use crate::policy::scope::{Scope, ALLOW_ALL, DEFAULT_DENY};

/// `policy.toml`: two arrays of tables, both optional. An empty file denies everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    /// `[[allow]]` rules: tried in file order; the first that matches decides.
    #[serde(default)]
    pub(super) allow: Vec<AllowFile>,
    /// `[[deny]]` rules: any match denies, whatever the allow rules say.
    #[serde(default)]
    pub(super) deny: Vec<DenyFile>,
    /// Named detectors (`name = "regex"`, at most 64) that rules may list in `redact` and
    /// `block` beside the built-in ones (`secrets`, `email`, `phone`, `iban`). Names are
    /// 1 to 64 characters of `a-z`, `0-9`, `_` and `-`; patterns are `regex` crate syntax, at
    /// most 1 KiB, and must not match the empty text.
    #[serde(default)]
    pub(super) detectors: std::collections::BTreeMap<String, String>,
}

/// One `[[allow]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowFile {
    /// Optional name shown in decisions and the audit trail; default `allow[<index>]`
    /// (0-based). Must be unique across all rules.
    pub(super) name: Option<String>,
    /// Required, non-empty: globs over the caller's principals (`client:<name>`,
    /// `jwt:<sub>`, `group:<g>`, `apikey:<name>`, `anonymous`). Matches if any glob matches
    /// any of the caller's principals.
    pub(super) principals: Vec<String>,
    /// Globs over service names; absent = every service.
    pub(super) services: Option<Vec<String>>,
    /// Globs over tool names for `tools/call`; absent = no tool is granted by this rule.
    pub(super) tools: Option<Vec<String>>,
    /// Globs over resource URIs for `resources/read` and friends; absent = none granted.
    pub(super) resources: Option<Vec<String>>,
    /// Globs over prompt names for `prompts/get`; absent = none granted.
    pub(super) prompts: Option<Vec<String>>,
    /// Optional rate limit of the calls this rule allows, per principal and service (a
    /// bucket of its own: other rules' calls never draw on it): `N/s`, `N/sec`, `N/m`,
    /// `N/min`, `N/h`, `N/hour`; N is also the burst. Requests and notifications that name a
    /// target count; so do the service's other methods when this rule grants no tools,
    /// resources or prompts (see [`Policy::decide`]).
    pub(super) rate: Option<String>,
    /// Optional constraints on `tools/call` arguments; all must hold for the rule to allow a
    /// tool call (they do not affect resources, prompts or other methods).
    #[serde(default)]
    pub(super) arguments: Vec<ConstraintFile>,
    /// Detectors whose matches are replaced by `[REDACTED:<detector>]` in what the calls this
    /// rule allows return: tool results, resource contents, prompt messages (JSON answers
    /// and event streams alike). Each redaction is audited (detector, place, count).
    pub(super) redact: Option<Vec<String>>,
    /// Detectors whose matches refuse a call this rule allows: found in its arguments, the
    /// call is refused with 403 naming the detector (never the value); found in its result,
    /// the result is replaced with an error. Each block is audited.
    pub(super) block: Option<Vec<String>>,
}

/// One `[[deny]]` table. A deny rule that lists none of `tools`, `resources`, `prompts` denies
/// every method of the matched services (including `initialize` and the list methods).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyFile {
    /// Optional name; default `deny[<index>]` (0-based). Unique across all rules.
    pub(super) name: Option<String>,
    /// Required, non-empty: globs over the caller's principals.
    pub(super) principals: Vec<String>,
    /// Globs over service names; absent = every service.
    pub(super) services: Option<Vec<String>>,
    /// Globs over tool names to deny.
    pub(super) tools: Option<Vec<String>>,
    /// Globs over resource URIs to deny.
    pub(super) resources: Option<Vec<String>>,
    /// Globs over prompt names to deny.
    pub(super) prompts: Option<Vec<String>>,
}

/// One entry of `arguments`: exactly one of `pattern`, `path` and `enum`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConstraintFile {
    /// RFC 6901 JSON pointer into the call's `arguments` object; must start with `/`
    /// (`~0` = `~`, `~1` = `/`; array elements by index, e.g. `/paths/0`).
    pointer: String,
    /// The value must be a string matching this glob (`*` = any run of characters). Never
    /// matched: a value with NUL; and, when the pattern contains `/`, a value with control
    /// characters or a `..` segment, as written or percent-decoded (see
    /// [`crate::glob::pattern_accepts`]). For file paths prefer `path`.
    pattern: Option<String>,
    /// The value must be a file path this path glob accepts, e.g. `/srv/docs/**`: `*` within
    /// a segment, `**` across segments; `..` segments, `\`, NUL and control characters are
    /// refused, also percent-encoded; `//` and `.` are normalized (see [`crate::glob`]).
    path: Option<String>,
    /// The value must equal one of these strings, numbers or booleans (compared as JSON
    /// values of the same type; numbers compare numerically, so `1` equals `1.0`).
    #[serde(rename = "enum")]
    one_of: Option<Vec<toml::Value>>,
}

pub(super) fn location(kind: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{kind}[{index}] {n:?}"),
        None => format!("{kind}[{index}]"),
    }
}

pub(super) fn non_empty(
    place: &str,
    key: &'static str,
    list: Option<Vec<String>>,
    hint: &'static str,
) -> Result<Option<Vec<String>>, PolicyError> {
    match list {
        Some(l) if l.is_empty() => Err(PolicyError::EmptyList {
            rule: place.to_owned(),
            key,
            hint,
        }),
        other => Ok(other),
    }
}

pub(super) fn scope(
    place: &str,
    kind: &str,
    index: usize,
    name: Option<String>,
    principals: Vec<String>,
    services: Option<Vec<String>>,
    [tools, resources, prompts]: [Option<Vec<String>>; 3],
) -> Result<Scope, PolicyError> {
    let name = match name {
        None => format!("{kind}[{index}]"),
        Some(n) => {
            let reason = if n.trim().is_empty() {
                Some("must not be empty")
            } else if n == DEFAULT_DENY || n == ALLOW_ALL {
                Some("reserved")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(PolicyError::BadName {
                    rule: place.to_owned(),
                    name: n,
                    reason,
                });
            }
            n
        }
    };
    const OMIT_KIND: &str = " (omit the key to grant or deny nothing of that kind)";
    let principals = non_empty(
        place,
        "principals",
        Some(principals),
        " (use [\"*\"] for everyone)",
    )?
    .unwrap_or_default();
    Ok(Scope {
        name,
        principals,
        services: non_empty(
            place,
            "services",
            services,
            " (omit it to mean every service)",
        )?,
        tools: non_empty(place, "tools", tools, OMIT_KIND)?,
        resources: non_empty(place, "resources", resources, OMIT_KIND)?,
        prompts: non_empty(place, "prompts", prompts, OMIT_KIND)?,
    })
}

pub(super) fn claim_name(
    names: &mut HashMap<String, String>,
    name: &str,
    place: &str,
) -> Result<(), PolicyError> {
    if let Some(first) = names.get(name) {
        return Err(PolicyError::DuplicateName {
            name: name.to_owned(),
            first: first.clone(),
            second: place.to_owned(),
        });
    }
    names.insert(name.to_owned(), place.to_owned());
    Ok(())
}

pub(super) fn constraint(
    place: &str,
    index: usize,
    c: ConstraintFile,
) -> Result<Constraint, PolicyError> {
    let bad = |reason: String| PolicyError::BadConstraint {
        rule: place.to_owned(),
        index,
        reason,
    };
    if !c.pointer.starts_with('/') {
        return Err(bad(format!(
            "pointer {:?} must start with \"/\" (e.g. \"/path\"): arguments is an object, so the \
             whole-document pointer \"\" is not accepted",
            c.pointer
        )));
    }
    let mut chars = c.pointer.chars();
    while let Some(ch) = chars.next() {
        if ch == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(bad(format!(
                "pointer {:?}: \"~\" must be followed by 0 or 1 (RFC 6901)",
                c.pointer
            )));
        }
    }
    const SEVERAL: &str = "give only one of `pattern`, `path` and `enum`, not several";
    let given = [c.pattern.is_some(), c.path.is_some(), c.one_of.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(bad(SEVERAL.into()));
    }
    if let Some(p) = c.path {
        let glob = PathGlob::parse(&p).map_err(|e| bad(format!("path {p:?}: {e}")))?;
        return Ok(Constraint {
            pointer: c.pointer,
            check: Check::Path(glob),
        });
    }
    let check = match (c.pattern, c.one_of) {
        (Some(p), None) => Check::Pattern(p),
        (None, Some(options)) => {
            if options.is_empty() {
                return Err(bad("`enum` must not be empty".to_owned()));
            }
            let options = options
                .into_iter()
                .map(|o| match o {
                    toml::Value::String(s) => Ok(Value::String(s)),
                    toml::Value::Integer(i) => Ok(Value::from(i)),
                    toml::Value::Boolean(b) => Ok(Value::Bool(b)),
                    toml::Value::Float(f) => serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .ok_or_else(|| bad(format!("`enum` value {f} is not a finite number"))),
                    other => Err(bad(format!(
                        "`enum` values must be strings, numbers or booleans, not {}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Check::OneOf(options)
        }
        (Some(_), Some(_)) => return Err(bad(SEVERAL.into())),
        (None, None) => return Err(bad("give one of `pattern`, `path` or `enum`".into())),
    };
    Ok(Constraint {
        pointer: c.pointer,
        check,
    })
}
