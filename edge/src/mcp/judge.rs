//! Policy and rate decisions for every JSON-RPC message of a request, batch or not.
//!
//! * Every message is judged, requests and notifications alike: a `tools/call` without an id
//!   reaches the backend just as well, so it is judged (and rated) like the request.
//! * A message naming several targets (a `subscriptions/listen` with its resource URIs) is
//!   allowed only if every one of them is.
//! * One denied message refuses the whole request; so does one rule's bucket running short.
//!   Tokens are taken for all counted messages at once, or for none.
//! * A `tools/call` whose arguments carry what its rule's `block` detectors find is refused
//!   (after deny rules, before rates: a blocked call takes no tokens).
//! * Counted against rates: requests, and notifications that name a target. A request naming
//!   no target (`initialize`, `ping`, lists …) counts against the rate of the rule that
//!   allowed it only if that rule grants no targets (see [`Policy::decide`]).

use std::time::{Duration, Instant};

use serde_json::Value;
use underpass_mcp::Target as McpTarget;

use underpass_audit::{CallAudit, Decision as AuditDecision};

use crate::limiter::RateLimiter;
use crate::policy::{Obligations, Policy, Rate, Target};

/// One JSON-RPC message of the request, reduced to what policy needs.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: Option<Value>,
    pub method: String,
    /// The first primitive it names (what the audit log shows).
    pub target: Option<McpTarget>,
    /// Every primitive it names: the target of `tools/call`, `resources/read`, `prompts/get`,
    /// `completion/complete`, `resources/(un)subscribe`, and each resource URI of a
    /// `subscriptions/listen` — whether it was sent as a request or as a notification.
    pub targets: Vec<McpTarget>,
    pub arguments: Option<Value>,
    pub is_request: bool,
    /// What the rule that allowed it obliges the edge to do with its answer (set once the
    /// request is admitted).
    pub obligations: Obligations,
}

/// The name (or URI) of a primitive.
pub fn target_name(t: &McpTarget) -> &str {
    match t {
        McpTarget::Tool(n) | McpTarget::Resource(n) | McpTarget::Prompt(n) => n,
    }
}

/// The decision about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct CallVerdict {
    pub allowed: bool,
    /// The deciding rule (for a message naming several targets: the first denying rule, or
    /// the rule allowing its first target).
    pub rule: String,
    /// The rates the message is counted against: one per distinct rule with a rate.
    pub charges: Vec<(String, Rate)>,
    /// The obligations of the rules that allowed it (every target's, together).
    pub obligations: Obligations,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Message `index` is denied by `rule`.
    Denied { index: usize, rule: String },
    /// Message `index` carries in its arguments what `detector`, one of `rule`'s `block`
    /// detectors, finds.
    Blocked {
        index: usize,
        rule: String,
        detector: String,
    },
    /// Rule `rule`'s bucket is short; `index` is the first message counted against it.
    RateLimited {
        index: usize,
        rule: String,
        rate: Rate,
        retry: Duration,
    },
}

/// The decisions about a whole request.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// One per message; a single entry (for the service itself) when there is none (GET
    /// streams, DELETE).
    pub calls: Vec<CallVerdict>,
    pub refusal: Option<Refusal>,
}

impl Judgement {
    /// The rule to record for the request as a whole: the refusing rule, or the last
    /// message's (as the audit log always did for single messages).
    pub fn rule(&self) -> String {
        match &self.refusal {
            Some(
                Refusal::Denied { rule, .. }
                | Refusal::Blocked { rule, .. }
                | Refusal::RateLimited { rule, .. },
            ) => rule.clone(),
            None => self
                .calls
                .last()
                .map(|c| c.rule.clone())
                .unwrap_or_default(),
        }
    }
}

fn policy_target(t: &McpTarget) -> Target<'_> {
    match t {
        McpTarget::Tool(n) => Target::Tool(n),
        McpTarget::Resource(u) => Target::Resource(u),
        McpTarget::Prompt(n) => Target::Prompt(n),
    }
}

/// Judges one message (or, with `call` = `None`, a request without messages).
pub fn judge_call(
    policy: &Policy,
    principals: &[String],
    service: &str,
    call: Option<&Call>,
) -> CallVerdict {
    let targets: Vec<Target<'_>> = match call {
        Some(c) if !c.targets.is_empty() => c.targets.iter().map(policy_target).collect(),
        _ => vec![Target::Service],
    };
    let counted = call.is_some_and(|c| c.is_request || !c.targets.is_empty());
    let arguments = call.and_then(|c| c.arguments.as_ref());
    let mut verdict = CallVerdict {
        allowed: true,
        rule: String::new(),
        charges: Vec::new(),
        obligations: Obligations::default(),
    };
    for (i, target) in targets.iter().enumerate() {
        let d = policy.decide(principals, service, target, arguments);
        if !d.allowed {
            return CallVerdict {
                allowed: false,
                rule: d.rule,
                charges: Vec::new(),
                obligations: Obligations::default(),
            };
        }
        verdict.obligations.merge(&d.obligations);
        if let (Some(rate), true) = (d.rate, counted) {
            if !verdict.charges.iter().any(|(r, _)| *r == d.rule) {
                verdict.charges.push((d.rule.clone(), rate));
            }
        }
        if i == 0 {
            verdict.rule = d.rule;
        }
    }
    verdict
}

/// Judges every message of a request and, if all are allowed, takes their rate tokens.
pub fn judge(
    policy: &Policy,
    limiter: &RateLimiter,
    principal: &str,
    principals: &[String],
    service: &str,
    calls: &[Call],
    now: Instant,
) -> Judgement {
    let verdicts: Vec<CallVerdict> = if calls.is_empty() {
        vec![judge_call(policy, principals, service, None)]
    } else {
        calls
            .iter()
            .map(|c| judge_call(policy, principals, service, Some(c)))
            .collect()
    };
    if let Some((index, v)) = verdicts.iter().enumerate().find(|(_, v)| !v.allowed) {
        let refusal = Refusal::Denied {
            index,
            rule: v.rule.clone(),
        };
        return Judgement {
            calls: verdicts,
            refusal: Some(refusal),
        };
    }
    let blocked = calls
        .iter()
        .zip(&verdicts)
        .enumerate()
        .find_map(|(index, (c, v))| {
            let detector = v.obligations.blocked_by(c.arguments.as_ref()?)?;
            Some(Refusal::Blocked {
                index,
                rule: v.rule.clone(),
                detector: detector.to_owned(),
            })
        });
    if blocked.is_some() {
        return Judgement {
            calls: verdicts,
            refusal: blocked,
        };
    }
    let charges: Vec<(&str, Rate)> = verdicts
        .iter()
        .flat_map(|v| v.charges.iter().map(|(r, rate)| (r.as_str(), *rate)))
        .collect();
    let refusal = limiter
        .check_all(principal, service, &charges, now)
        .err()
        .map(|e| Refusal::RateLimited {
            index: verdicts
                .iter()
                .position(|v| v.charges.iter().any(|(r, _)| *r == e.rule))
                .unwrap_or(0),
            rule: e.rule,
            rate: e.rate,
            retry: e.retry,
        });
    Judgement {
        calls: verdicts,
        refusal,
    }
}

/// The audit entries of the messages of a request (none for a request without messages).
/// In a refused request every message is recorded as denied: by its own deny rule, or by
/// the rule that refused the request.
pub fn audit_entries(
    calls: &[Call],
    judgement: &Judgement,
    arguments: impl Fn(Option<&Value>) -> Option<Value>,
) -> Vec<CallAudit> {
    let refused_by = judgement.refusal.as_ref().map(|_| judgement.rule());
    calls
        .iter()
        .zip(&judgement.calls)
        .map(|(call, verdict)| {
            let (decision, rule) = match (&refused_by, verdict.allowed) {
                (None, _) => (AuditDecision::Allow, verdict.rule.clone()),
                (Some(_), false) => (AuditDecision::Deny, verdict.rule.clone()),
                (Some(by), true) => (AuditDecision::Deny, by.clone()),
            };
            CallAudit {
                method: call.method.clone(),
                target: call.targets.first().map(|t| target_name(t).to_owned()),
                rpc_id: call.id.clone(),
                decision: Some(decision),
                rule: Some(rule),
                arguments: arguments(call.arguments.as_ref()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap_or_else(|e| panic!("policy should parse: {e}"))
    }

    fn call(id: Option<u64>, method: &str, targets: Vec<McpTarget>) -> Call {
        Call {
            id: id.map(Value::from),
            method: method.into(),
            target: targets.first().cloned(),
            targets,
            arguments: None,
            is_request: id.is_some(),
            obligations: Default::default(),
        }
    }

    const POLICY: &str = r#"
        [[allow]]
        name = "tools"
        principals = ["apikey:bot"]
        tools = ["echo"]
        resources = ["public://*"]
        rate = "2/min"
        [[allow]]
        name = "base"
        principals = ["apikey:bot"]
        rate = "100/s"
    "#;

    fn run(limiter: &RateLimiter, calls: &[Call]) -> Judgement {
        let pol = policy(POLICY);
        let who = vec!["apikey:bot".to_owned()];
        judge(
            &pol,
            limiter,
            "apikey:bot",
            &who,
            "s",
            calls,
            Instant::now(),
        )
    }

    #[test]
    fn one_denied_message_refuses_the_batch_and_takes_no_tokens() {
        let limiter = RateLimiter::new();
        let calls = [
            call(Some(1), "tools/call", vec![McpTarget::Tool("echo".into())]),
            call(None, "tools/call", vec![McpTarget::Tool("rm".into())]),
        ];
        let j = run(&limiter, &calls);
        assert_eq!(
            j.refusal,
            Some(Refusal::Denied {
                index: 1,
                rule: "default deny".into()
            })
        );
        let entries = audit_entries(&calls, &j, |_| None);
        assert!(entries
            .iter()
            .all(|e| e.decision == Some(AuditDecision::Deny)
                && e.rule.as_deref() == Some("default deny")));
        // The echo bucket is untouched: two calls still pass.
        let one = [call(
            Some(1),
            "tools/call",
            vec![McpTarget::Tool("echo".into())],
        )];
        assert_eq!(run(&limiter, &one).refusal, None);
        assert_eq!(run(&limiter, &one).refusal, None);
        assert!(matches!(
            run(&limiter, &one).refusal,
            Some(Refusal::RateLimited { index: 0, ref rule, .. }) if rule == "tools"
        ));
    }

    #[test]
    fn notifications_naming_a_target_are_judged_and_counted() {
        let limiter = RateLimiter::new();
        let n = |tool: &str| [call(None, "tools/call", vec![McpTarget::Tool(tool.into())])];
        assert!(matches!(
            run(&limiter, &n("get-secret")).refusal,
            Some(Refusal::Denied { .. })
        ));
        assert_eq!(run(&limiter, &n("echo")).refusal, None);
        assert_eq!(run(&limiter, &n("echo")).refusal, None);
        assert!(matches!(
            run(&limiter, &n("echo")).refusal,
            Some(Refusal::RateLimited { .. })
        ));
        // Other notifications are not counted (and are allowed by the service-only rule).
        let j = run(&limiter, &[call(None, "notifications/initialized", vec![])]);
        assert_eq!(j.refusal, None);
        assert_eq!(j.calls[0].rule, "base");
        assert!(j.calls[0].charges.is_empty());
    }

    #[test]
    fn every_target_of_a_message_is_judged() {
        let limiter = RateLimiter::new();
        let listen = |uris: &[&str]| {
            [call(
                Some(1),
                "subscriptions/listen",
                uris.iter()
                    .map(|u| McpTarget::Resource((*u).into()))
                    .collect(),
            )]
        };
        assert_eq!(run(&limiter, &listen(&["public://a"])).refusal, None);
        assert!(matches!(
            run(&limiter, &listen(&["public://a", "secret://x"])).refusal,
            Some(Refusal::Denied { index: 0, .. })
        ));
        // Two targets allowed by one rule take one token of it.
        let j = run(&limiter, &listen(&["public://a", "public://b"]));
        assert_eq!(j.calls[0].charges.len(), 1);
    }

    #[test]
    fn service_methods_use_the_service_only_rule() {
        let limiter = RateLimiter::new();
        let j = run(
            &limiter,
            &[
                call(Some(1), "initialize", vec![]),
                call(Some(2), "tools/list", vec![]),
            ],
        );
        assert_eq!(j.refusal, None);
        assert!(j.calls.iter().all(|c| c.rule == "base"));
        let entries = audit_entries(
            &[
                call(Some(1), "initialize", vec![]),
                call(Some(2), "tools/list", vec![]),
            ],
            &j,
            |_| Some(json!("args")),
        );
        assert_eq!(entries[1].method, "tools/list");
        assert_eq!(entries[1].rpc_id, Some(json!(2)));
        assert_eq!(entries[1].decision, Some(AuditDecision::Allow));
        assert_eq!(entries[1].arguments, Some(json!("args")));
        // No messages (GET, DELETE): the service itself, not counted.
        let j = run(&limiter, &[]);
        assert_eq!(j.calls.len(), 1);
        assert!(j.calls[0].charges.is_empty());
    }
}
