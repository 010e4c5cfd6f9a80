//! Access policy (`policy.toml`): default deny, deny wins, `*` globs.
//!
//! The file holds any number of `[[allow]]` and `[[deny]]` rules:
//!
//! ```toml
//! [[allow]]
//! name = "eng-tools"
//! principals = ["client:alice", "group:eng", "apikey:ci-bot"]
//! services = ["everything"]
//! tools = ["echo", "get-*"]
//! resources = ["*"]
//! prompts = ["*"]
//! rate = "120/min"
//! arguments = [
//!   { pointer = "/path", path = "/srv/docs/**" },
//!   { pointer = "/mode", enum = ["r", "ro"] },
//! ]
//!
//! [[deny]]
//! name = "no-deletes"
//! principals = ["*"]
//! tools = ["*delete*"]
//! ```
//!
//! How a request is decided ([`Policy::decide`]):
//! 1. If any deny rule matches the caller, the service and the target, the request is denied
//!    by that rule (deny wins).
//! 2. Otherwise the first allow rule (in file order) that matches the caller, the service and
//!    the target — including its argument constraints — allows it, and its `rate` applies.
//!    A request naming no target (`initialize`, `ping`, the list methods, …) is allowed by
//!    the first rule covering the caller and the service that grants no tools, resources or
//!    prompts, or else by the first rule covering them at all; only in the first case does
//!    the rule's `rate` apply (a rate on a rule granting targets binds calls to those only).
//! 3. Otherwise the request is denied ("default deny").
//!
//! Every pattern is a glob where `*` matches any run of characters (possibly empty) and every
//! other character is literal and case-sensitive (see [`glob_match`]); `path` constraints
//! match file paths segment by segment (see [`crate::glob`]). Empty lists are refused
//! everywhere: to mean "every service", omit `services`; to grant nothing of a kind, omit it.
//!
//! Rates are token buckets per (principal, service, rule): each rule's rate binds the calls
//! that rule allowed, whatever else the caller sends in between.
//!
//! The module is pure: apart from [`Policy::load`] nothing here does I/O, and the rate limiter
//! takes the current time as an argument.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// The rule name reported when no allow rule matches.
pub const DEFAULT_DENY: &str = "default deny";
/// The rule name reported by a [`Policy::allow_all`] policy.
pub const ALLOW_ALL: &str = "allow_all";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a policy could not be loaded. Rule locations read like `allow[2] "eng-tools"`
/// (0-based index within the `[[allow]]` or `[[deny]]` array, then the name if one is given).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("invalid policy file {}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<PolicyError>,
    },
    /// Not TOML, or a key that does not exist, or a value of the wrong type.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A list key is present but empty.
    #[error("{rule}: `{key}` must not be empty{hint}")]
    EmptyList {
        rule: String,
        key: &'static str,
        hint: &'static str,
    },
    /// `name` is empty or reserved.
    #[error("{rule}: invalid name {name:?}: {reason}")]
    BadName {
        rule: String,
        name: String,
        reason: &'static str,
    },
    /// Two rules share a name.
    #[error("duplicate rule name {name:?}: used by {first} and {second}")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    /// `rate` does not parse.
    #[error("{rule}: invalid rate {value:?}: {source}")]
    BadRate {
        rule: String,
        value: String,
        #[source]
        source: RateError,
    },
    /// An `arguments` entry is malformed.
    #[error("{rule}: arguments[{index}]: {reason}")]
    BadConstraint {
        rule: String,
        index: usize,
        reason: String,
    },
}

/// Why a rate string such as `"120/min"` does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not of the form `N/unit`.
    #[error("expected \"N/unit\" with unit s, sec, m, min, h or hour (e.g. \"120/min\")")]
    Format,
    /// `N` is not an integer from 1 to 4294967295.
    #[error("the count must be a whole number from 1 to {}", u32::MAX)]
    Count,
    /// The unit is not one of the accepted ones.
    #[error("unknown unit {0:?}: use s, sec, m, min, h or hour")]
    Unit(String),
}

pub use crate::glob::glob_match;
use crate::glob::{pattern_accepts, PathGlob};

fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}

// ---------------------------------------------------------------------------------------------
// Rate
// ---------------------------------------------------------------------------------------------

/// A token-bucket rate: `burst` requests at once, refilled at `per_second`.
/// `"120/min"` is `Rate { per_second: 2.0, burst: 120 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Parses `N/s`, `N/sec`, `N/m`, `N/min`, `N/h` or `N/hour` (N ≥ 1; spaces around the
    /// parts are ignored).
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let (count, unit) = text.split_once('/').ok_or(RateError::Format)?;
        let (count, unit) = (count.trim(), unit.trim());
        if count.is_empty() || unit.is_empty() {
            return Err(RateError::Format);
        }
        if !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RateError::Count);
        }
        let burst: u32 = count.parse().map_err(|_| RateError::Count)?;
        if burst == 0 {
            return Err(RateError::Count);
        }
        let seconds = match unit {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" | "hour" => 3600.0,
            other => return Err(RateError::Unit(other.to_owned())),
        };
        Ok(Rate {
            per_second: f64::from(burst) / seconds,
            burst,
        })
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rate::parse(s)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s (burst {})", self.per_second, self.burst)
    }
}

// ---------------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------------

/// `policy.toml`: two arrays of tables, both optional. An empty file denies everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// `[[allow]]` rules: tried in file order; the first that matches decides.
    #[serde(default)]
    allow: Vec<AllowFile>,
    /// `[[deny]]` rules: any match denies, whatever the allow rules say.
    #[serde(default)]
    deny: Vec<DenyFile>,
}

/// One `[[allow]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    /// Optional name shown in decisions and the audit trail; default `allow[<index>]`
    /// (0-based). Must be unique across all rules.
    name: Option<String>,
    /// Required, non-empty: globs over the caller's principals (`client:<name>`,
    /// `jwt:<sub>`, `group:<g>`, `apikey:<name>`, `anonymous`). Matches if any glob matches
    /// any of the caller's principals.
    principals: Vec<String>,
    /// Globs over service names; absent = every service.
    services: Option<Vec<String>>,
    /// Globs over tool names for `tools/call`; absent = no tool is granted by this rule.
    tools: Option<Vec<String>>,
    /// Globs over resource URIs for `resources/read` and friends; absent = none granted.
    resources: Option<Vec<String>>,
    /// Globs over prompt names for `prompts/get`; absent = none granted.
    prompts: Option<Vec<String>>,
    /// Optional rate limit of the calls this rule allows, per principal and service (a
    /// bucket of its own: other rules' calls never draw on it): `N/s`, `N/sec`, `N/m`,
    /// `N/min`, `N/h`, `N/hour`; N is also the burst. Requests and notifications that name a
    /// target count; so do the service's other methods when this rule grants no tools,
    /// resources or prompts (see [`Policy::decide`]).
    rate: Option<String>,
    /// Optional constraints on `tools/call` arguments; all must hold for the rule to allow a
    /// tool call (they do not affect resources, prompts or other methods).
    #[serde(default)]
    arguments: Vec<ConstraintFile>,
}

/// One `[[deny]]` table. A deny rule that lists none of `tools`, `resources`, `prompts` denies
/// every method of the matched services (including `initialize` and the list methods).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyFile {
    /// Optional name; default `deny[<index>]` (0-based). Unique across all rules.
    name: Option<String>,
    /// Required, non-empty: globs over the caller's principals.
    principals: Vec<String>,
    /// Globs over service names; absent = every service.
    services: Option<Vec<String>>,
    /// Globs over tool names to deny.
    tools: Option<Vec<String>>,
    /// Globs over resource URIs to deny.
    resources: Option<Vec<String>>,
    /// Globs over prompt names to deny.
    prompts: Option<Vec<String>>,
}

/// One entry of `arguments`: exactly one of `pattern`, `path` and `enum`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintFile {
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

// ---------------------------------------------------------------------------------------------
// The compiled policy
// ---------------------------------------------------------------------------------------------

/// What a request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `tools/call` of this tool.
    Tool(&'a str),
    /// A resource by URI (`resources/read`, `resources/subscribe`, …).
    Resource(&'a str),
    /// `prompts/get` of this prompt.
    Prompt(&'a str),
    /// Any other method of the service: `initialize`, `ping`, the list methods, notifications…
    Service,
}

/// The outcome of [`Policy::decide`]. Its `Display` is what `policy check` prints:
/// `allow (rule "eng-tools")`, `deny (rule "no-deletes")`,
/// `deny (default deny: no allow rule matches)` (the rate is not included).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding rule's name, [`DEFAULT_DENY`] or [`ALLOW_ALL`].
    pub rule: String,
    /// The rate of the allow rule that decided, if it has one.
    pub rate: Option<Rate>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.allowed, self.rule.as_str()) {
            (false, DEFAULT_DENY) => f.write_str("deny (default deny: no allow rule matches)"),
            (true, ALLOW_ALL) => f.write_str("allow (allow_all: every request is allowed)"),
            (true, rule) => write!(f, "allow (rule {rule:?})"),
            (false, rule) => write!(f, "deny (rule {rule:?})"),
        }
    }
}

#[derive(Debug, Clone)]
struct Scope {
    name: String,
    principals: Vec<String>,
    services: Option<Vec<String>>,
    tools: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    prompts: Option<Vec<String>>,
}

impl Scope {
    fn covers(&self, principals: &[String], service: &str) -> bool {
        principals.iter().any(|p| any_match(&self.principals, p))
            && self.services.as_ref().is_none_or(|s| any_match(s, service))
    }

    /// Whether the rule's kind lists name this (non-`Service`) target.
    fn lists(&self, target: &Target) -> bool {
        let (list, name) = match target {
            Target::Tool(n) => (&self.tools, n),
            Target::Resource(n) => (&self.resources, n),
            Target::Prompt(n) => (&self.prompts, n),
            Target::Service => return false,
        };
        list.as_ref().is_some_and(|l| any_match(l, name))
    }

    fn targetless(&self) -> bool {
        self.tools.is_none() && self.resources.is_none() && self.prompts.is_none()
    }
}

#[derive(Debug, Clone)]
enum Check {
    Pattern(String),
    Path(PathGlob),
    OneOf(Vec<Value>),
}

#[derive(Debug, Clone)]
struct Constraint {
    pointer: String,
    check: Check,
}

impl Constraint {
    fn holds(&self, arguments: Option<&Value>) -> bool {
        let Some(value) = arguments.and_then(|a| a.pointer(&self.pointer)) else {
            return false;
        };
        match &self.check {
            Check::Pattern(p) => value.as_str().is_some_and(|s| pattern_accepts(p, s)),
            Check::Path(g) => value.as_str().is_some_and(|s| g.matches(s)),
            Check::OneOf(options) => options.iter().any(|o| scalar_eq(o, value)),
        }
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                a == b
            } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                a == b
            } else {
                matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a == b)
            }
        }
        _ => false,
    }
}

#[derive(Debug, Clone)]
struct AllowRule {
    scope: Scope,
    rate: Option<Rate>,
    arguments: Vec<Constraint>,
}

/// How argument constraints are treated when looking for an allow rule.
#[derive(Clone, Copy)]
enum Arguments<'v> {
    Check(Option<&'v Value>),
    Ignore,
}

impl AllowRule {
    fn allows(
        &self,
        principals: &[String],
        service: &str,
        target: &Target,
        args: Arguments,
    ) -> bool {
        if !self.scope.covers(principals, service) {
            return false;
        }
        match target {
            Target::Service => true,
            Target::Tool(_) => {
                self.scope.lists(target)
                    && match args {
                        Arguments::Ignore => true,
                        Arguments::Check(v) => self.arguments.iter().all(|c| c.holds(v)),
                    }
            }
            _ => self.scope.lists(target),
        }
    }
}

/// A validated `policy.toml`, or the development-only allow-all policy.
/// [`Default`] is the empty policy, which denies everything.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<AllowRule>,
    deny: Vec<Scope>,
    allow_all: bool,
}

impl Policy {
    /// Development mode (`[policy] allow_all = true`): every request is allowed by rule
    /// [`ALLOW_ALL`], with no rate limit.
    pub fn allow_all() -> Policy {
        Policy {
            allow_all: true,
            ..Policy::default()
        }
    }

    /// Whether this is the [`Policy::allow_all`] policy.
    pub fn is_allow_all(&self) -> bool {
        self.allow_all
    }

    /// Number of rules (allow + deny).
    pub fn rule_count(&self) -> usize {
        self.allow.len() + self.deny.len()
    }

    /// Reads and validates a `policy.toml`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text).map_err(|e| PolicyError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Parses and validates the text of a `policy.toml`.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut policy = Policy::default();

        for (index, rule) in file.allow.into_iter().enumerate() {
            let place = location("allow", index, rule.name.as_deref());
            let scope = scope(
                &place,
                "allow",
                index,
                rule.name,
                rule.principals,
                rule.services,
                [rule.tools, rule.resources, rule.prompts],
            )?;
            claim_name(&mut names, &scope.name, &place)?;
            let rate = match rule.rate {
                None => None,
                Some(value) => {
                    Some(Rate::parse(&value).map_err(|source| PolicyError::BadRate {
                        rule: place.clone(),
                        value,
                        source,
                    })?)
                }
            };
            let arguments = rule
                .arguments
                .into_iter()
                .enumerate()
                .map(|(i, c)| constraint(&place, i, c))
                .collect::<Result<Vec<_>, _>>()?;
            policy.allow.push(AllowRule {
                scope,
                rate,
                arguments,
            });
        }

        for (index, rule) in file.deny.into_iter().enumerate() {
            let place = location("deny", index, rule.name.as_deref());
            let scope = scope(
                &place,
                "deny",
                index,
                rule.name,
                rule.principals,
                rule.services,
                [rule.tools, rule.resources, rule.prompts],
            )?;
            claim_name(&mut names, &scope.name, &place)?;
            policy.deny.push(scope);
        }
        Ok(policy)
    }

    /// Decides one request. `principals` are all of the caller's principals (its own plus its
    /// groups); `arguments` are the `tools/call` arguments (only used for [`Target::Tool`]).
    ///
    /// [`Target::Service`] (a method naming no target) is allowed by the first covering rule
    /// that grants no tools, resources or prompts, else by the first covering rule; the
    /// decision carries the rule's `rate` only in the first case.
    pub fn decide(
        &self,
        principals: &[String],
        service: &str,
        target: &Target,
        arguments: Option<&Value>,
    ) -> Decision {
        if self.allow_all {
            return Decision {
                allowed: true,
                rule: ALLOW_ALL.to_owned(),
                rate: None,
            };
        }
        if let Some(deny) = self.denied_by(principals, service, target) {
            return Decision {
                allowed: false,
                rule: deny.name.clone(),
                rate: None,
            };
        }
        match self.allowed_by(principals, service, target, Arguments::Check(arguments)) {
            Some(rule) => Decision {
                allowed: true,
                rule: rule.scope.name.clone(),
                // A rule granting tools, resources or prompts rates the calls to those only,
                // not the service's own methods it lets through as well.
                rate: rule
                    .rate
                    .filter(|_| *target != Target::Service || rule.scope.targetless()),
            },
            None => Decision {
                allowed: false,
                rule: DEFAULT_DENY.to_owned(),
                rate: None,
            },
        }
    }

    /// Whether a listed item (from `tools/list`, `resources/list`, `prompts/list`) should be
    /// shown to the caller: no deny rule matches it and some allow rule would allow it,
    /// ignoring argument constraints.
    pub fn visible(&self, principals: &[String], service: &str, target: &Target) -> bool {
        self.allow_all
            || (self.denied_by(principals, service, target).is_none()
                && self
                    .allowed_by(principals, service, target, Arguments::Ignore)
                    .is_some())
    }

    /// Shorthand for `decide(..).to_string()`, e.g. `allow (rule "eng-tools")`.
    pub fn explain(
        &self,
        principals: &[String],
        service: &str,
        target: &Target,
        arguments: Option<&Value>,
    ) -> String {
        self.decide(principals, service, target, arguments)
            .to_string()
    }

    fn denied_by(&self, principals: &[String], service: &str, target: &Target) -> Option<&Scope> {
        self.deny
            .iter()
            .find(|d| d.covers(principals, service) && (d.targetless() || d.lists(target)))
    }

    fn allowed_by(
        &self,
        principals: &[String],
        service: &str,
        target: &Target,
        args: Arguments,
    ) -> Option<&AllowRule> {
        let allows = |a: &&AllowRule| a.allows(principals, service, target, args);
        if *target == Target::Service {
            // The service's own methods belong first to a rule about just the service.
            if let Some(rule) = self
                .allow
                .iter()
                .filter(|a| a.scope.targetless())
                .find(allows)
            {
                return Some(rule);
            }
        }
        self.allow.iter().find(allows)
    }
}

fn location(kind: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{kind}[{index}] {n:?}"),
        None => format!("{kind}[{index}]"),
    }
}

fn non_empty(
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

fn scope(
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

fn claim_name(
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

fn constraint(place: &str, index: usize, c: ConstraintFile) -> Result<Constraint, PolicyError> {
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

// ---------------------------------------------------------------------------------------------
// Rate limiter
// ---------------------------------------------------------------------------------------------

/// Buckets are swept at least this often…
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// …and also whenever the map grows past this many entries (then twice its size after a sweep).
const PRUNE_MIN_LEN: usize = 1024;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    rate: Rate,
}

impl Bucket {
    fn capacity(rate: &Rate) -> f64 {
        f64::from(rate.burst.max(1))
    }

    /// Tokens available at `now` (never more than the capacity).
    fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let refill = elapsed * self.rate.per_second.max(0.0);
        (self.tokens + refill).min(Bucket::capacity(&self.rate))
    }
}

/// A bucket's key: (principal, service, rule).
type BucketKey = (String, String, String);

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<BucketKey, Bucket>,
    last_prune: Option<Instant>,
    prune_len: usize,
}

/// Token buckets per (principal, service, rule): each rule's rate binds the calls that rule
/// allowed, and calls another rule allowed never draw on (or refill) its bucket. A bucket
/// starts full (`burst` tokens), each counted call takes one, and it refills at `per_second`.
/// Full buckets are forgotten from time to time (a new bucket starts full, so this changes
/// nothing but memory).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

/// A rate limit a request would exceed.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// The rule whose bucket is short.
    pub rule: String,
    /// Its rate.
    pub rate: Rate,
    /// How long until the bucket holds enough tokens (`Duration::MAX` if it never will: a
    /// batch needing more calls of one rule than its burst).
    pub retry: Duration,
}

/// Slack for floating-point rounding, so that retrying exactly after the advised delay works.
const EPSILON: f64 = 1e-9;

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Takes one token from the bucket of (`principal`, `service`, `rule`) at time `now`, or
    /// says how long to wait until one is available. See [`RateLimiter::check_all`].
    pub fn check(
        &self,
        principal: &str,
        service: &str,
        rule: &str,
        rate: &Rate,
        now: Instant,
    ) -> Result<(), Duration> {
        self.check_all(principal, service, &[(rule, *rate)], now)
            .map_err(|e| e.retry)
    }

    /// Takes one token per entry of `charges` (a rule and its rate; a rule may appear several
    /// times, e.g. for the calls of a batch) — all of them, or none: if any bucket is short,
    /// nothing is taken and the first short one is returned. A bucket whose rate changed
    /// (policy reload) keeps its level, capped at the new burst. A `burst` of 0 is taken as 1.
    pub fn check_all(
        &self,
        principal: &str,
        service: &str,
        charges: &[(&str, Rate)],
        now: Instant,
    ) -> Result<(), Exceeded> {
        let mut needs: Vec<(&str, Rate, u32)> = Vec::new();
        for (rule, rate) in charges {
            match needs.iter_mut().find(|(r, _, _)| r == rule) {
                Some(n) => n.2 += 1,
                None => needs.push((rule, *rate, 1)),
            }
        }
        if needs.is_empty() {
            return Ok(());
        }
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        maybe_prune(buckets, now);
        let key = |rule: &str| (principal.to_owned(), service.to_owned(), rule.to_owned());
        // First bring every bucket up to date and check it…
        for (rule, rate, n) in &needs {
            let bucket = buckets.map.entry(key(rule)).or_insert_with(|| Bucket {
                tokens: Bucket::capacity(rate),
                updated: now,
                rate: *rate,
            });
            let level = bucket.level(now);
            bucket.rate = *rate;
            bucket.tokens = level.min(Bucket::capacity(rate));
            if now > bucket.updated {
                bucket.updated = now;
            }
            let n = f64::from(*n);
            if bucket.tokens + EPSILON < n {
                let missing = n - bucket.tokens;
                let wait = if rate.per_second > 0.0 && n <= Bucket::capacity(rate) {
                    // Round up to the microsecond so the advised retry is never early.
                    (missing / rate.per_second * 1e6).ceil() / 1e6
                } else {
                    f64::INFINITY
                };
                return Err(Exceeded {
                    rule: (*rule).to_owned(),
                    rate: *rate,
                    retry: Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX),
                });
            }
        }
        // …then take the tokens.
        for (rule, _, n) in &needs {
            if let Some(bucket) = buckets.map.get_mut(&key(rule)) {
                bucket.tokens = (bucket.tokens - f64::from(*n)).max(0.0);
            }
        }
        Ok(())
    }

    /// Forgets every bucket that would be full at `now`.
    pub fn prune(&self, now: Instant) {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut guard, now);
    }

    /// Number of buckets currently tracked.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether no bucket is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn maybe_prune(buckets: &mut Buckets, now: Instant) {
    let last = *buckets.last_prune.get_or_insert(now);
    if now.saturating_duration_since(last) >= PRUNE_INTERVAL
        || buckets.map.len() >= buckets.prune_len.max(PRUNE_MIN_LEN)
    {
        prune(buckets, now);
    }
}

fn prune(buckets: &mut Buckets, now: Instant) {
    buckets
        .map
        .retain(|_, b| b.level(now) + EPSILON < Bucket::capacity(&b.rate));
    buckets.last_prune = Some(now);
    buckets.prune_len = buckets.map.len().saturating_mul(2);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The policy in force, swapped atomically on reload: requests in flight keep the policy they
/// started with, sessions are untouched, and a broken file keeps the previous policy.
pub struct PolicyStore {
    path: Option<std::path::PathBuf>,
    current: std::sync::RwLock<std::sync::Arc<Policy>>,
}

impl PolicyStore {
    /// `path` = None means `allow_all` (development only).
    pub fn load(path: Option<std::path::PathBuf>) -> Result<Self, PolicyError> {
        let policy = match &path {
            Some(p) => Policy::load(p)?,
            None => Policy::allow_all(),
        };
        Ok(PolicyStore {
            path,
            current: std::sync::RwLock::new(std::sync::Arc::new(policy)),
        })
    }

    /// A store holding `policy` for good (no file to reload).
    pub fn fixed(policy: std::sync::Arc<Policy>) -> Self {
        PolicyStore {
            path: None,
            current: std::sync::RwLock::new(policy),
        }
    }

    pub fn get(&self) -> std::sync::Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reload(&self) {
        let Some(path) = &self.path else { return };
        match Policy::load(path) {
            Ok(p) => {
                tracing::info!(path = %path.display(), rules = p.rule_count(), "policy reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(p);
            }
            Err(e) => tracing::error!("policy not reloaded, keeping the previous one: {e}"),
        }
    }

    /// Reloads when the file changes and on SIGHUP.
    pub async fn watch(self: std::sync::Arc<Self>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        crate::watch::file(path, |_| self.reload()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn policy(text: &str) -> Policy {
        match Policy::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("policy should parse: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match Policy::parse(text) {
            Ok(_) => panic!("policy should not parse:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const EXAMPLE: &str = r#"
        [[allow]]
        name = "eng-tools"
        principals = ["client:alice", "group:eng", "apikey:ci-bot"]
        services = ["everything"]
        tools = ["echo", "get-*", "delete-temp"]
        resources = ["*"]
        rate = "120/min"

        [[allow]]
        name = "docs-reader"
        principals = ["client:alice"]
        services = ["everything"]
        tools = ["read-file"]
        arguments = [
          { pointer = "/path", pattern = "/srv/docs/*" },
          { pointer = "/mode", enum = ["r", "ro", 4, true] },
        ]

        [[allow]]
        name = "echo-anywhere"
        principals = ["jwt:*"]
        services = ["dev-*"]
        tools = ["echo"]

        [[deny]]
        name = "no-deletes"
        principals = ["*"]
        tools = ["*delete*"]

        [[deny]]
        name = "mallory-out"
        principals = ["client:mallory"]
        services = ["everything"]
    "#;

    #[test]
    fn default_deny() {
        let pol = policy(EXAMPLE);
        let d = pol.decide(
            &p(&["client:bob"]),
            "everything",
            &Target::Tool("echo"),
            None,
        );
        assert!(!d.allowed);
        assert_eq!(d.rule, DEFAULT_DENY);
        assert_eq!(d.to_string(), "deny (default deny: no allow rule matches)");
        // The empty policy denies everything, including the service itself.
        let empty = policy("");
        assert!(
            !empty
                .decide(&p(&["client:alice"]), "x", &Target::Service, None)
                .allowed
        );
        // No principals at all: nothing matches, not even "*".
        assert!(
            !pol.decide(&[], "everything", &Target::Service, None)
                .allowed
        );
    }

    #[test]
    fn allow_by_principal_and_group() {
        let pol = policy(EXAMPLE);
        let d = pol.decide(
            &p(&["client:alice"]),
            "everything",
            &Target::Tool("echo"),
            None,
        );
        assert!(d.allowed);
        assert_eq!(d.rule, "eng-tools");
        assert_eq!(
            d.rate,
            Some(Rate {
                per_second: 2.0,
                burst: 120
            })
        );
        assert_eq!(d.to_string(), "allow (rule \"eng-tools\")");
        // Via a group, with a tool glob.
        let bob = p(&["jwt:bob", "group:eng"]);
        assert!(
            pol.decide(&bob, "everything", &Target::Tool("get-user"), None)
                .allowed
        );
        // Principal glob: jwt:* on dev-* services.
        let d = pol.decide(&p(&["jwt:carol"]), "dev-1", &Target::Tool("echo"), None);
        assert_eq!(
            (d.allowed, d.rule.as_str(), d.rate),
            (true, "echo-anywhere", None)
        );
        assert!(
            !pol.decide(
                &p(&["jwt:carol"]),
                "everything",
                &Target::Tool("echo"),
                None
            )
            .allowed
        );
    }

    #[test]
    fn deny_wins() {
        let pol = policy(EXAMPLE);
        let d = pol.decide(
            &p(&["client:alice"]),
            "everything",
            &Target::Tool("delete-temp"),
            None,
        );
        assert!(!d.allowed);
        assert_eq!(d.rule, "no-deletes");
        assert_eq!(d.to_string(), "deny (rule \"no-deletes\")");
        // A deny that lists tools does not block other kinds or the service.
        assert!(
            pol.decide(&p(&["client:alice"]), "everything", &Target::Service, None)
                .allowed
        );
        assert!(
            pol.decide(
                &p(&["client:alice"]),
                "everything",
                &Target::Resource("file:///delete"),
                None
            )
            .allowed
        );
    }

    #[test]
    fn unlisted_kinds_are_not_granted() {
        let pol = policy(EXAMPLE);
        let alice = p(&["client:alice"]);
        // eng-tools lists tools and resources but not prompts.
        let d = pol.decide(&alice, "everything", &Target::Prompt("greet"), None);
        assert_eq!((d.allowed, d.rule.as_str()), (false, DEFAULT_DENY));
        assert!(
            pol.decide(&alice, "everything", &Target::Resource("file:///x"), None)
                .allowed
        );
        assert!(
            !pol.decide(&alice, "everything", &Target::Tool("set-x"), None)
                .allowed
        );
        // A rule with no kinds grants only the service's other methods.
        let pol = policy("[[allow]]\nprincipals = [\"*\"]\n");
        assert!(pol.decide(&alice, "any", &Target::Service, None).allowed);
        assert!(
            !pol.decide(&alice, "any", &Target::Tool("echo"), None)
                .allowed
        );
        assert!(
            !pol.decide(&alice, "any", &Target::Resource("r"), None)
                .allowed
        );
    }

    #[test]
    fn targetless_deny_blocks_whole_service() {
        let pol = policy(
            r#"
            [[allow]]
            principals = ["*"]
            tools = ["*"]
            resources = ["*"]
            prompts = ["*"]
            [[deny]]
            principals = ["client:mallory"]
            services = ["secret"]
            "#,
        );
        let m = p(&["client:mallory"]);
        for target in [
            Target::Service,
            Target::Tool("echo"),
            Target::Resource("r"),
            Target::Prompt("p"),
        ] {
            let d = pol.decide(&m, "secret", &target, None);
            assert_eq!(
                (d.allowed, d.rule.as_str()),
                (false, "deny[0]"),
                "{target:?}"
            );
            assert!(!pol.visible(&m, "secret", &target));
            assert!(pol.decide(&m, "public", &target, None).allowed);
        }
        let d = pol.decide(&p(&["client:ok"]), "secret", &Target::Service, None);
        assert_eq!((d.allowed, d.rule.as_str()), (true, "allow[0]"));
    }

    #[test]
    fn service_glob() {
        let pol = policy(
            r#"
            [[allow]]
            principals = ["group:ops"]
            services = ["prod-*", "staging"]
            tools = ["*"]
            "#,
        );
        let ops = p(&["jwt:x", "group:ops"]);
        assert!(
            pol.decide(&ops, "prod-db", &Target::Tool("q"), None)
                .allowed
        );
        assert!(pol.decide(&ops, "prod-", &Target::Tool("q"), None).allowed);
        assert!(pol.decide(&ops, "staging", &Target::Service, None).allowed);
        assert!(
            !pol.decide(&ops, "staging-2", &Target::Service, None)
                .allowed
        );
        assert!(!pol.decide(&ops, "Prod-db", &Target::Service, None).allowed);
    }

    #[test]
    fn argument_constraints() {
        let pol = policy(EXAMPLE);
        let alice = p(&["client:alice"]);
        let tool = Target::Tool("read-file");
        let ok = |args: Value| pol.decide(&alice, "everything", &tool, Some(&args)).allowed;
        // pattern and enum both pass
        assert!(ok(json!({"path": "/srv/docs/a.txt", "mode": "ro"})));
        assert!(ok(json!({"path": "/srv/docs/", "mode": 4})));
        assert!(ok(json!({"path": "/srv/docs/x", "mode": 4.0})));
        assert!(ok(json!({"path": "/srv/docs/x", "mode": true})));
        // pattern fails
        assert!(!ok(json!({"path": "/etc/passwd", "mode": "r"})));
        // enum fails, including type mismatches
        assert!(!ok(json!({"path": "/srv/docs/a", "mode": "rw"})));
        assert!(!ok(json!({"path": "/srv/docs/a", "mode": "4"})));
        assert!(!ok(json!({"path": "/srv/docs/a", "mode": false})));
        assert!(!ok(json!({"path": "/srv/docs/a", "mode": ["r"]})));
        // pattern on a non-string
        assert!(!ok(json!({"path": 7, "mode": "r"})));
        // missing values / no arguments at all
        assert!(!ok(json!({"path": "/srv/docs/a"})));
        assert!(!ok(json!({})));
        assert!(!pol.decide(&alice, "everything", &tool, None).allowed);
        // constraints apply only to tools: resources are unaffected
        assert!(
            pol.decide(&alice, "everything", &Target::Resource("x"), None)
                .allowed
        );
        // a failing rule lets a later rule allow
        let pol = policy(
            r#"
            [[allow]]
            name = "strict"
            principals = ["*"]
            tools = ["run"]
            arguments = [{ pointer = "/a~1b/0", enum = ["yes"] }]
            [[allow]]
            name = "fallback"
            principals = ["group:admin"]
            tools = ["run"]
            "#,
        );
        let args = json!({"a/b": ["yes"]});
        let d = pol.decide(&alice, "s", &Target::Tool("run"), Some(&args));
        assert_eq!(d.rule, "strict");
        let admin = p(&["client:root", "group:admin"]);
        let d = pol.decide(&admin, "s", &Target::Tool("run"), Some(&json!({})));
        assert_eq!((d.allowed, d.rule.as_str()), (true, "fallback"));
        assert!(
            !pol.decide(&alice, "s", &Target::Tool("run"), Some(&json!({})))
                .allowed
        );
    }

    #[test]
    fn visible_filters_lists() {
        let pol = policy(EXAMPLE);
        let alice = p(&["client:alice"]);
        // Allowed only with arguments, but visible regardless of them.
        assert!(pol.visible(&alice, "everything", &Target::Tool("read-file")));
        assert!(pol.visible(&alice, "everything", &Target::Tool("get-x")));
        assert!(!pol.visible(&alice, "everything", &Target::Tool("delete-temp")));
        assert!(!pol.visible(&alice, "everything", &Target::Tool("other")));
        assert!(!pol.visible(&alice, "everything", &Target::Prompt("p")));
        assert!(!pol.visible(&alice, "elsewhere", &Target::Tool("echo")));
        assert!(!pol.visible(&p(&["client:mallory"]), "everything", &Target::Service));
    }

    #[test]
    fn allow_all_policy() {
        let pol = Policy::allow_all();
        assert!(pol.is_allow_all());
        let d = pol.decide(&[], "x", &Target::Tool("rm-rf"), None);
        assert_eq!(
            (d.allowed, d.rule.as_str(), d.rate),
            (true, ALLOW_ALL, None)
        );
        assert!(pol.visible(&[], "x", &Target::Prompt("p")));
        assert!(pol
            .explain(&[], "x", &Target::Service, None)
            .starts_with("allow"));
    }

    #[test]
    fn rate_parsing() {
        let r = |s: &str| Rate::parse(s);
        assert_eq!(
            r("120/min"),
            Ok(Rate {
                per_second: 2.0,
                burst: 120
            })
        );
        assert_eq!(
            r("120/m"),
            Ok(Rate {
                per_second: 2.0,
                burst: 120
            })
        );
        assert_eq!(
            r("5/s"),
            Ok(Rate {
                per_second: 5.0,
                burst: 5
            })
        );
        assert_eq!(
            r("5/sec"),
            Ok(Rate {
                per_second: 5.0,
                burst: 5
            })
        );
        assert_eq!(
            r("3600/h"),
            Ok(Rate {
                per_second: 1.0,
                burst: 3600
            })
        );
        assert_eq!(
            r(" 36 / hour "),
            Ok(Rate {
                per_second: 0.01,
                burst: 36
            })
        );
        assert_eq!(
            "1/s".parse::<Rate>(),
            Ok(Rate {
                per_second: 1.0,
                burst: 1
            })
        );
        assert_eq!(r("0/min"), Err(RateError::Count));
        assert_eq!(r("-1/min"), Err(RateError::Count));
        assert_eq!(r("+1/min"), Err(RateError::Count));
        assert_eq!(r("1.5/min"), Err(RateError::Count));
        assert_eq!(r("99999999999/s"), Err(RateError::Count));
        assert_eq!(r("10/day"), Err(RateError::Unit("day".into())));
        assert_eq!(r("10/MIN"), Err(RateError::Unit("MIN".into())));
        assert_eq!(r("10"), Err(RateError::Format));
        assert_eq!(r("/min"), Err(RateError::Format));
        assert_eq!(r("10/"), Err(RateError::Format));
        assert_eq!(r(""), Err(RateError::Format));
        let e = parse_err("[[allow]]\nname = \"x\"\nprincipals = [\"*\"]\nrate = \"0/min\"\n");
        assert!(e.contains("allow[0] \"x\"") && e.contains("0/min"), "{e}");
    }

    #[test]
    fn rate_limiter_trips_and_recovers() {
        let limiter = RateLimiter::new();
        let rate = Rate::parse("3/min").unwrap_or(Rate {
            per_second: 0.0,
            burst: 0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("client:a", "svc", "r", &rate, t0), Ok(()));
        }
        let Err(wait) = limiter.check("client:a", "svc", "r", &rate, t0) else {
            panic!("the 4th request must be refused");
        };
        assert!(
            wait > Duration::from_millis(19_999) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Other principals and services have their own buckets.
        assert_eq!(limiter.check("client:b", "svc", "r", &rate, t0), Ok(()));
        assert_eq!(limiter.check("client:a", "other", "r", &rate, t0), Ok(()));
        // Not yet…
        assert!(limiter
            .check(
                "client:a",
                "svc",
                "r",
                &rate,
                t0 + wait - Duration::from_millis(10)
            )
            .is_err());
        // …but exactly after the advised delay, one request goes through, and then no more.
        let t1 = t0 + wait;
        assert_eq!(limiter.check("client:a", "svc", "r", &rate, t1), Ok(()));
        let Err(again) = limiter.check("client:a", "svc", "r", &rate, t1) else {
            panic!("the bucket should be empty again");
        };
        assert!(again <= Duration::from_secs(20) && again > Duration::from_secs(19));
        // After a long idle period the bucket is full again: burst, then refusal.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check("client:a", "svc", "r", &rate, t2), Ok(()));
        }
        assert!(limiter.check("client:a", "svc", "r", &rate, t2).is_err());
        // A time going backwards is treated as no time passing.
        assert!(limiter.check("client:a", "svc", "r", &rate, t0).is_err());
    }

    #[test]
    fn each_rule_has_its_own_bucket() {
        // The bypass of issue 10: a 2/min rule interleaved with a 50/s rule used to share one
        // bucket per (principal, service), refilled at whichever rate decided last.
        let limiter = RateLimiter::new();
        let slow = Rate::parse("2/min").unwrap_or(Rate {
            per_second: 0.0,
            burst: 0,
        });
        let fast = Rate::parse("50/s").unwrap_or(slow);
        let t0 = Instant::now();
        let mut slow_ok = 0;
        for i in 0..100u64 {
            let t = t0 + Duration::from_millis(100 * i);
            if limiter.check("client:a", "svc", "slow", &slow, t).is_ok() {
                slow_ok += 1;
            }
            assert_eq!(limiter.check("client:a", "svc", "fast", &fast, t), Ok(()));
        }
        // 10 s: the burst of 2, plus at most one refill at 2/min… none within 10 s.
        assert_eq!(slow_ok, 2);
    }

    #[test]
    fn check_all_takes_every_token_or_none() {
        let limiter = RateLimiter::new();
        let two = Rate {
            per_second: 1.0 / 60.0,
            burst: 2,
        };
        let many = Rate {
            per_second: 1.0,
            burst: 100,
        };
        let t0 = Instant::now();
        // A batch of three calls of a rule with burst 2 can never pass; nothing is taken.
        let e = limiter
            .check_all(
                "p",
                "s",
                &[("a", two), ("b", many), ("a", two), ("a", two)],
                t0,
            )
            .unwrap_err();
        assert_eq!((e.rule.as_str(), e.retry), ("a", Duration::MAX));
        assert_eq!(
            limiter.check_all("p", "s", &[("a", two), ("a", two)], t0),
            Ok(())
        );
        // Now "a" is empty: a batch touching it is refused whole, "b" keeps its tokens.
        let e = limiter
            .check_all("p", "s", &[("b", many), ("a", two)], t0)
            .unwrap_err();
        assert_eq!(e.rule, "a");
        assert!(e.retry > Duration::from_secs(59) && e.retry <= Duration::from_secs(60));
        for _ in 0..100 {
            assert_eq!(limiter.check("p", "s", "b", &many, t0), Ok(()));
        }
        assert!(limiter.check("p", "s", "b", &many, t0).is_err());
        assert_eq!(limiter.check_all("p", "s", &[], t0), Ok(()));
    }

    #[test]
    fn service_methods_belong_to_service_only_rules() {
        let pol = policy(
            r#"
            [[allow]]
            name = "slow-tool"
            principals = ["apikey:bot"]
            tools = ["a"]
            rate = "2/min"
            [[allow]]
            name = "base"
            principals = ["apikey:bot"]
            rate = "10/s"
            "#,
        );
        let bot = p(&["apikey:bot"]);
        let d = pol.decide(&bot, "s", &Target::Service, None);
        assert_eq!((d.allowed, d.rule.as_str()), (true, "base"));
        assert_eq!(d.rate.map(|r| r.burst), Some(10));
        let d = pol.decide(&bot, "s", &Target::Tool("a"), None);
        assert_eq!(
            (d.rule.as_str(), d.rate.map(|r| r.burst)),
            ("slow-tool", Some(2))
        );
        // Without a service-only rule, the first covering rule lets the service's methods
        // through, but its rate binds only the tools it grants.
        let pol = policy(
            "[[allow]]\nname = \"slow-tool\"\nprincipals = [\"*\"]\ntools = [\"a\"]\nrate = \"2/min\"\n",
        );
        let d = pol.decide(&bot, "s", &Target::Service, None);
        assert_eq!(
            (d.allowed, d.rule.as_str(), d.rate),
            (true, "slow-tool", None)
        );
        assert!(pol
            .decide(&bot, "s", &Target::Tool("a"), None)
            .rate
            .is_some());
    }

    #[test]
    fn path_and_pattern_constraints_refuse_traversal() {
        let pol = policy(
            r#"
            [[allow]]
            name = "glob"
            principals = ["*"]
            tools = ["g"]
            arguments = [{ pointer = "/path", pattern = "/srv/docs/*" }]
            [[allow]]
            name = "path"
            principals = ["*"]
            tools = ["p"]
            arguments = [{ pointer = "/path", path = "/srv/docs/**" }]
            "#,
        );
        let who = p(&["client:x"]);
        let ok = |tool: &str, path: Value| {
            pol.decide(
                &who,
                "s",
                &Target::Tool(tool),
                Some(&json!({ "path": path })),
            )
            .allowed
        };
        for tool in ["g", "p"] {
            assert!(ok(tool, json!("/srv/docs/a.txt")), "{tool}");
            for bad in [
                "/srv/docs/../../etc/passwd",
                "/srv/docs/%2e%2e/x",
                "/srv/docs/a\u{0}",
                "/srv/docs/..\\x",
            ] {
                assert!(!ok(tool, json!(bad)), "{tool} {bad:?}");
            }
            assert!(!ok(tool, json!(["/srv/docs/a"])), "{tool}: not a string");
        }
        assert!(ok("p", json!("/srv/docs/a/b")));
        assert!(ok("p", json!("/srv//docs/./a")));
        assert!(!ok("p", json!("/srv/docs/a/../b")));
    }

    #[test]
    fn rate_limiter_prunes_full_buckets() {
        let limiter = RateLimiter::new();
        let rate = Rate {
            per_second: 1.0,
            burst: 2,
        };
        let t0 = Instant::now();
        for i in 0..10 {
            let _ = limiter.check(&format!("p{i}"), "s", "r", &rate, t0);
        }
        assert_eq!(limiter.len(), 10);
        limiter.prune(t0);
        assert_eq!(limiter.len(), 10, "half-empty buckets are kept");
        // Refilled after 1 s: forgotten by the next periodic sweep.
        let _ = limiter.check("fresh", "s", "r", &rate, t0 + PRUNE_INTERVAL);
        assert_eq!(limiter.len(), 1);
        assert!(!limiter.is_empty());
        // A degenerate rate never panics.
        let zero = Rate {
            per_second: 0.0,
            burst: 0,
        };
        assert_eq!(limiter.check("z", "s", "r", &zero, t0), Ok(()));
        assert_eq!(limiter.check("z", "s", "r", &zero, t0), Err(Duration::MAX));
    }

    #[test]
    fn parse_errors() {
        let e = parse_err("[[allow]]\nprincipals = [\"*\"]\ntool = [\"echo\"]\n");
        assert!(e.contains("unknown field `tool`"), "{e}");
        let e = parse_err("[[deny]]\nprincipals = [\"*\"]\nrate = \"1/s\"\n");
        assert!(e.contains("unknown field `rate`"), "{e}");
        let e = parse_err("[policy]\n");
        assert!(e.contains("unknown field `policy`"), "{e}");
        let e = parse_err("[[allow]]\nprincipals = []\n");
        assert!(
            e.contains("allow[0]") && e.contains("`principals` must not be empty"),
            "{e}"
        );
        let e = parse_err("[[allow]]\nservices = [\"x\"]\n");
        assert!(e.contains("principals"), "{e}");
        let e = parse_err("[[deny]]\nprincipals = [\"*\"]\ntools = []\n");
        assert!(
            e.contains("deny[0]") && e.contains("`tools` must not be empty"),
            "{e}"
        );
        let e = parse_err(
            "[[allow]]\nname = \"a\"\nprincipals = [\"*\"]\n[[deny]]\nname = \"a\"\nprincipals = [\"*\"]\n",
        );
        assert!(e.contains("duplicate rule name \"a\""), "{e}");
        assert!(
            e.contains("allow[0] \"a\"") && e.contains("deny[0] \"a\""),
            "{e}"
        );
        // a name may not collide with a default name either
        let e = parse_err(
            "[[allow]]\nprincipals = [\"*\"]\n[[allow]]\nname = \"allow[0]\"\nprincipals = [\"*\"]\n",
        );
        assert!(e.contains("duplicate rule name"), "{e}");
        let e = parse_err("[[allow]]\nname = \"default deny\"\nprincipals = [\"*\"]\n");
        assert!(e.contains("reserved"), "{e}");
        let e = parse_err("[[allow]]\nname = \"\"\nprincipals = [\"*\"]\n");
        assert!(e.contains("must not be empty"), "{e}");
    }

    #[test]
    fn constraint_errors() {
        let rule = |c: &str| {
            format!("[[allow]]\nprincipals = [\"*\"]\ntools = [\"*\"]\narguments = [{c}]\n")
        };
        let e = parse_err(&rule(r#"{ pointer = "path", pattern = "*" }"#));
        assert!(
            e.contains("arguments[0]") && e.contains("must start with \"/\""),
            "{e}"
        );
        let e = parse_err(&rule(r#"{ pointer = "", pattern = "*" }"#));
        assert!(e.contains("must start with"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a~2", pattern = "*" }"#));
        assert!(e.contains("~"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", pattern = "*", enum = ["x"] }"#));
        assert!(e.contains("only one of"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", pattern = "*", path = "/x" }"#));
        assert!(e.contains("only one of"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", path = "/srv/../etc" }"#));
        assert!(e.contains("arguments[0]") && e.contains(".."), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", path = "/srv/x**" }"#));
        assert!(e.contains("whole segment"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a" }"#));
        assert!(e.contains("one of"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", enum = [] }"#));
        assert!(e.contains("must not be empty"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", enum = [["x"]] }"#));
        assert!(e.contains("strings, numbers or booleans"), "{e}");
        let e = parse_err(&rule(r#"{ pointer = "/a", regex = "x" }"#));
        assert!(e.contains("unknown field `regex`"), "{e}");
    }

    #[test]
    fn load_reports_path() {
        let missing = Path::new("/nonexistent/underpass/policy.toml");
        let e = Policy::load(missing).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("/nonexistent/underpass/policy.toml")),
            "{e:?}"
        );
    }
}
