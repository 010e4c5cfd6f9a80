//! One audit line per JSON-RPC call: a request carrying several messages (a batch) is
//! written as one line per message, each with its own method, target, id, decision, rule and
//! (when enabled) arguments; the HTTP-level fields (principal, status, outcome, latency, bytes,
//! trace id …) are shared. So no tool call in a batch runs unaudited.

use serde_json::Value;

use crate::record::{AuditRecord, Decision};

/// What the audit log says about one JSON-RPC message of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallAudit {
    /// The JSON-RPC method.
    pub method: String,
    /// The tool, resource or prompt it names (the first, when it names several).
    pub target: Option<String>,
    /// Its id (absent for notifications and responses without one).
    pub rpc_id: Option<Value>,
    /// Its own decision. A refused request refuses every call in it: calls the policy allowed
    /// are then recorded as denied by the rule that refused the request.
    pub decision: Option<Decision>,
    /// The rule behind `decision`.
    pub rule: Option<String>,
    /// Redacted arguments, only with `log_arguments = true`.
    pub arguments: Option<Value>,
}

impl AuditRecord {
    /// The lines to write for this record: itself when it carries no per-call entries,
    /// otherwise one line per entry (with `batch_index`/`batch_size` when `batch` is set).
    pub fn into_lines(mut self) -> Vec<AuditRecord> {
        let calls = std::mem::take(&mut self.calls);
        if calls.is_empty() {
            return vec![self];
        }
        let size = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let batch = self.batch_size.is_some();
        calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| AuditRecord {
                mcp_method: Some(call.method),
                target: call.target,
                rpc_id: call.rpc_id,
                decision: call.decision.or(self.decision),
                rule: call.rule.or_else(|| self.rule.clone()),
                arguments: call.arguments,
                batch_index: batch.then(|| u32::try_from(i).unwrap_or(u32::MAX)),
                batch_size: batch.then_some(size),
                ..self.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use serde_json::json;

    #[test]
    fn a_record_without_calls_is_one_line() {
        let r = AuditRecord {
            outcome: Outcome::Ok,
            mcp_method: Some("ping".into()),
            ..AuditRecord::default()
        };
        assert_eq!(r.clone().into_lines(), vec![r]);
    }

    #[test]
    fn a_batch_is_one_line_per_call_sharing_the_http_fields() {
        let call = |method: &str, target: Option<&str>, id: Option<Value>, d: Decision| CallAudit {
            method: method.into(),
            target: target.map(str::to_owned),
            rpc_id: id,
            decision: Some(d),
            rule: Some("r".into()),
            arguments: None,
        };
        let r = AuditRecord {
            principal: Some("apikey:bot".into()),
            outcome: Outcome::Ok,
            http_status: Some(200),
            trace_id: Some("t".into()),
            mcp_method: Some("ping".into()),
            batch_size: Some(3),
            calls: vec![
                call("ping", None, Some(json!(1)), Decision::Allow),
                call("tools/call", Some("a"), Some(json!(2)), Decision::Allow),
                call("notifications/cancelled", None, None, Decision::Allow),
            ],
            ..AuditRecord::default()
        };
        let lines = r.into_lines();
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l.batch_index, Some(i as u32));
            assert_eq!(l.batch_size, Some(3));
            assert_eq!(l.principal.as_deref(), Some("apikey:bot"));
            assert_eq!(l.http_status, Some(200));
            assert_eq!(l.trace_id.as_deref(), Some("t"));
            assert!(l.calls.is_empty());
        }
        assert_eq!(lines[1].mcp_method.as_deref(), Some("tools/call"));
        assert_eq!(lines[1].target.as_deref(), Some("a"));
        assert_eq!(lines[1].rpc_id, Some(json!(2)));
        assert_eq!(lines[2].rpc_id, None);
        // Serialized: the new fields appear, the entries themselves never do.
        let text = serde_json::to_string(&lines[1]).unwrap_or_default();
        assert!(
            text.contains(r#""batch_index":1"#) && text.contains(r#""rpc_id":2"#),
            "{text}"
        );
        assert!(!text.contains("calls"), "{text}");

        // A single (non-batch) message keeps the old shape: no batch fields.
        let single = AuditRecord {
            calls: vec![call(
                "tools/call",
                Some("a"),
                Some(json!(7)),
                Decision::Deny,
            )],
            ..AuditRecord::default()
        };
        let lines = single.into_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].batch_index, None);
        assert_eq!(lines[0].decision, Some(Decision::Deny));
    }
}
