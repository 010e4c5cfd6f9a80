//! The recent denials the admin API and the dashboard show: a bounded ring, newest last, of
//! requests the edge refused for who was calling or what they asked (policy, rate limits,
//! missing or bad credentials, Host/Origin). Every text field is cut to a bounded length: a
//! client chooses principals' claims and tool names, and must not grow the edge's memory.

use std::collections::VecDeque;

use serde::Serialize;
use underpass_audit::{AuditRecord, Decision, Outcome};

/// Denials kept.
pub const CAPACITY: usize = 100;
/// Longest text kept per field, in bytes (cut at a character boundary, `…` appended).
const MAX_FIELD: usize = 128;

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// RFC 3339 UTC.
    pub time: String,
    pub principal: Option<String>,
    pub service: Option<String>,
    /// The MCP method (`tools/call`).
    pub method: Option<String>,
    /// The tool, resource or prompt it named.
    pub target: Option<String>,
    /// The rule that decided (`deny[0]`, `default`), if a policy rule did.
    pub rule: Option<String>,
    /// The audit outcome (`denied`, `rate_limited`, `unauthenticated`, `forbidden`).
    pub reason: &'static str,
    pub status: Option<u16>,
}

/// Whether an ended request is a denial: refused for its caller or what it asked.
pub fn is_denial(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Denied | Outcome::RateLimited | Outcome::Unauthenticated | Outcome::Forbidden
    )
}

impl Denial {
    /// The denial a finished request's record describes, if it is one. In a batch, the
    /// first call the policy denied names method, target and rule.
    pub fn of(record: &AuditRecord, time: String) -> Option<Denial> {
        if !is_denial(record.outcome) {
            return None;
        }
        let call = record
            .calls
            .iter()
            .find(|c| c.decision == Some(Decision::Deny))
            .or(record.calls.first());
        let (method, target, rule) = match call {
            Some(c) => (
                Some(c.method.as_str()),
                c.target.as_deref(),
                c.rule.as_deref().or(record.rule.as_deref()),
            ),
            None => (
                record.mcp_method.as_deref(),
                record.target.as_deref(),
                record.rule.as_deref(),
            ),
        };
        Some(Denial {
            time,
            principal: cut(record.principal.as_deref()),
            service: cut(record.service.as_deref()),
            method: cut(method),
            target: cut(target),
            rule: cut(rule),
            reason: record.outcome.as_str(),
            status: record.http_status,
        })
    }
}

fn cut(text: Option<&str>) -> Option<String> {
    let text = text?;
    if text.len() <= MAX_FIELD {
        return Some(text.to_owned());
    }
    let mut end = MAX_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}…", &text[..end]))
}

/// The ring: at most [`CAPACITY`] denials, the oldest dropped first.
#[derive(Debug, Default)]
pub struct Ring {
    items: VecDeque<Denial>,
    /// Denials seen since start (also those dropped from the ring).
    total: u64,
}

impl Ring {
    pub fn push(&mut self, denial: Denial) {
        if self.items.len() == CAPACITY {
            self.items.pop_front();
        }
        self.items.push_back(denial);
        self.total += 1;
    }

    /// The denials kept, oldest first.
    pub fn list(&self) -> Vec<Denial> {
        self.items.iter().cloned().collect()
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests;
