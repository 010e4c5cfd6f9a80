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
//! redact = ["secrets", "email", "employee_id"]
//! block = ["secrets"]
//! arguments = [
//!   { pointer = "/path", path = "/srv/docs/**" },
//!   { pointer = "/mode", enum = ["r", "ro"] },
//! ]
//!
//! [[deny]]
//! name = "no-deletes"
//! principals = ["*"]
//! tools = ["*delete*"]
//!
//! [detectors]
//! employee_id = "EMP-[0-9]{6}"
//! ```
//!
//! How a request is decided ([`Policy::decide`]):
//! 1. If any deny rule matches the caller, the service and the target, the request is denied
//!    by that rule (deny wins).
//! 2. Otherwise the first allow rule (in file order) that matches the caller, the service and
//!    the target — including its argument constraints — allows it, and its `rate` and its
//!    obligations (`redact`, `block`: see [`Obligations`]) apply.
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

mod constraint;
mod error;
mod file;
pub mod glob;
mod obligation;
mod rate;
mod scope;
pub mod store;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;

pub use error::PolicyError;
pub use glob::glob_match;
pub use obligation::{Obligations, MAX_DEPTH};
pub use rate::{Rate, RateError};
pub use scope::{Target, ALLOW_ALL, DEFAULT_DENY};

use constraint::Constraint;
use file::{claim_name, constraint, location, scope, PolicyFile};
use scope::Scope;

/// The outcome of [`Policy::decide`]. Its `Display` is what `policy check` prints:
/// `allow (rule "eng-tools")`, `deny (rule "no-deletes")`,
/// `deny (default deny: no allow rule matches)`, `allow (rule "x"; redact secrets, email)`
/// (the rate is not included).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding rule's name, [`DEFAULT_DENY`] or [`ALLOW_ALL`].
    pub rule: String,
    /// The rate of the allow rule that decided, if it has one.
    pub rate: Option<Rate>,
    /// What the allow rule that decided obliges the edge to do with the call.
    pub obligations: Obligations,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.allowed, self.rule.as_str()) {
            (false, DEFAULT_DENY) => f.write_str("deny (default deny: no allow rule matches)"),
            (true, ALLOW_ALL) => f.write_str("allow (allow_all: every request is allowed)"),
            (true, rule) => write!(f, "allow (rule {rule:?}{})", self.obligations),
            (false, rule) => write!(f, "deny (rule {rule:?})"),
        }
    }
}

#[derive(Debug, Clone)]
struct AllowRule {
    scope: Scope,
    rate: Option<Rate>,
    arguments: Vec<Constraint>,
    obligations: Obligations,
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
        target: &Target<'_>,
        args: Arguments<'_>,
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
        let named = obligation::named(file.detectors)?;

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
            let obligations = Obligations::of_rule(&place, rule.redact, rule.block, &named)?;
            policy.allow.push(AllowRule {
                scope,
                rate,
                arguments,
                obligations,
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
        target: &Target<'_>,
        arguments: Option<&Value>,
    ) -> Decision {
        if self.allow_all {
            return Decision {
                allowed: true,
                rule: ALLOW_ALL.to_owned(),
                rate: None,
                obligations: Obligations::default(),
            };
        }
        if let Some(deny) = self.denied_by(principals, service, target) {
            return Decision {
                allowed: false,
                rule: deny.name.clone(),
                rate: None,
                obligations: Obligations::default(),
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
                obligations: rule.obligations.clone(),
            },
            None => Decision {
                allowed: false,
                rule: DEFAULT_DENY.to_owned(),
                rate: None,
                obligations: Obligations::default(),
            },
        }
    }

    /// Whether a listed item (from `tools/list`, `resources/list`, `prompts/list`) should be
    /// shown to the caller: no deny rule matches it and some allow rule would allow it,
    /// ignoring argument constraints.
    pub fn visible(&self, principals: &[String], service: &str, target: &Target<'_>) -> bool {
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
        target: &Target<'_>,
        arguments: Option<&Value>,
    ) -> String {
        self.decide(principals, service, target, arguments)
            .to_string()
    }

    fn denied_by(
        &self,
        principals: &[String],
        service: &str,
        target: &Target<'_>,
    ) -> Option<&Scope> {
        self.deny
            .iter()
            .find(|d| d.covers(principals, service) && (d.targetless() || d.lists(target)))
    }

    fn allowed_by(
        &self,
        principals: &[String],
        service: &str,
        target: &Target<'_>,
        args: Arguments<'_>,
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

#[cfg(test)]
mod tests;
