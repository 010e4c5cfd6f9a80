//! The vocabulary of rules: what a request touches ([`Target`]), whom and what a rule covers
//! ([`Scope`]), and the reserved rule names.

use crate::policy::glob::glob_match;

/// The rule name reported when no allow rule matches.
pub const DEFAULT_DENY: &str = "default deny";
/// The rule name reported by a [`Policy::allow_all`] policy.
pub const ALLOW_ALL: &str = "allow_all";

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

#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub(super) name: String,
    pub(super) principals: Vec<String>,
    pub(super) services: Option<Vec<String>>,
    pub(super) tools: Option<Vec<String>>,
    pub(super) resources: Option<Vec<String>>,
    pub(super) prompts: Option<Vec<String>>,
}

impl Scope {
    pub(super) fn covers(&self, principals: &[String], service: &str) -> bool {
        principals.iter().any(|p| any_match(&self.principals, p))
            && self.services.as_ref().is_none_or(|s| any_match(s, service))
    }

    /// Whether the rule's kind lists name this (non-`Service`) target.
    pub(super) fn lists(&self, target: &Target<'_>) -> bool {
        let (list, name) = match target {
            Target::Tool(n) => (&self.tools, n),
            Target::Resource(n) => (&self.resources, n),
            Target::Prompt(n) => (&self.prompts, n),
            Target::Service => return false,
        };
        list.as_ref().is_some_and(|l| any_match(l, name))
    }

    pub(super) fn targetless(&self) -> bool {
        self.tools.is_none() && self.resources.is_none() && self.prompts.is_none()
    }
}

fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}
