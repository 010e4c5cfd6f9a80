//! What one line of the trail says: [`AuditRecord`] and the typed values in it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::Outcome;

/// How a client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A client certificate chained to `client_ca`.
    Cert,
    /// A configured API key.
    ApiKey,
    /// A JWT from the configured issuer.
    Jwt,
    /// No credential (`anonymous = true`).
    Anonymous,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMethod::Cert => "cert",
            AuthMethod::ApiKey => "apikey",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Anonymous => "anonymous",
        })
    }
}

/// What the policy said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Allowed by a rule (or `allow_all`).
    Allow,
    /// Denied (explicitly, or by default).
    Deny,
}

/// What a policy obligation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediationAction {
    /// Matches were replaced by `[REDACTED:<detector>]`.
    Redact,
    /// The call (or its answer) was refused.
    Block,
}

impl MediationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MediationAction::Redact => "redact",
            MediationAction::Block => "block",
        }
    }
}

/// One thing a policy obligation did to a call: which detector, where, how many matches;
/// never the matched values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mediation {
    pub action: MediationAction,
    /// The detector's name (`secrets`, `email`, or a named pattern).
    pub detector: String,
    /// Where: `tools/call arguments`, `tools/call result`, `resources/read contents`,
    /// `prompts/get messages`.
    pub location: String,
    /// How many matches (a block counts the one that refused).
    pub count: u64,
    /// The JSON-RPC id of the call (its line carries it: see [`AuditRecord::into_lines`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_id: Option<Value>,
}

/// One client request. Absent fields are left out of the line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds (see [`now`]); filled in at append time when empty.
    pub time: String,
    /// Authenticated principal, e.g. `client:alice`, `apikey:ci-bot`, `jwt:bob`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// How the principal was authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    /// The service named in the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// JSON-RPC method, e.g. `tools/call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_method: Option<String>,
    /// Tool, resource or prompt name the request is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Policy decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Which rule decided (e.g. `allow[0]`, `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ok`, `error`, `denied`, `rate_limited`, `backend_error`, …
    pub outcome: Outcome,
    /// HTTP status returned to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// JSON-RPC error code returned to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonrpc_error: Option<i64>,
    /// Time from request to response, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Request body size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Response body size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// MCP session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Trace id correlating edge, tunnel and connector logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Unique id the edge gave the request; backends receive it as `x-underpass-request-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Request arguments, only with `log_arguments = true`, after [`redact_arguments`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The JSON-RPC id of the call the line is about (absent for notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_id: Option<Value>,
    /// In a batch: the call's position in it, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<u32>,
    /// In a batch: how many messages it holds (each has a line of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Set when the edge sent the request again on another tunnel (`1`: once, the most it
    /// does) because the first attempt's tunnel was lost before any answer came back; only
    /// for requests safe to repeat. Each attempt has its own `dispatched` line (the second
    /// with `retried: 1`), and the outcome line says how it ended after the retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<u32>,
    /// Serial of a certificate the edge issued for the request (a connector's enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    /// One entry per JSON-RPC message of the request, each written as a line of its own
    /// (see [`AuditRecord::into_lines`]); never serialized itself.
    #[serde(skip)]
    pub calls: Vec<CallAudit>,
    /// When the request went down a tunnel and how long its answer's head took: the edge's
    /// latency metrics split with it; never serialized.
    #[serde(skip)]
    pub exchange: Option<ExchangeTiming>,
    /// IP address the client connected from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// HTTP method of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// Request path, for requests that name no service (at most 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Set on a line that summarizes repeated refusals instead of describing one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// What policy obligations did to the request's calls (redactions, blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mediation: Vec<Mediation>,
    /// Set on a line the writer adds about the trail itself (outcome `audit_gap`,
    /// `audit_reopened` or `audit_retention`), never about a client request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<TrailEvent>,
}

/// The timing of a request's tunnel exchange (see [`AuditRecord::exchange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeTiming {
    /// When the edge started sending the request down a tunnel.
    pub sent_at: std::time::Instant,
    /// From then until the connector's response head arrived (a retry on another tunnel
    /// included).
    pub head_after: std::time::Duration,
    /// What the connector reported as its backend's time to the response head.
    pub backend: Option<std::time::Duration>,
}

/// Repeated refusals, counted instead of written one by one (see `refusals_per_source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Refusals not written in full.
    pub count: u64,
    /// Time of the first of them (RFC 3339).
    pub from: String,
    /// Time of the last of them.
    pub to: String,
}

/// What the writer records about the trail itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrailEvent {
    /// Records were lost (not written) between `from` and `to`: the log could not be written,
    /// or the queue to the writer was full.
    Gap {
        /// How many records were lost.
        lost: u64,
        /// When the first was lost (RFC 3339).
        from: String,
        /// When the last was lost.
        to: String,
        /// Why, e.g. `write failed: No space left on device (os error 28)`, `queue full`.
        reasons: Vec<String>,
    },
    /// The log file was removed or replaced by someone else while the edge had it open; the
    /// writer opened a new file at the same path and goes on with the chain there.
    Reopened {
        /// What happened to the old file.
        reason: String,
        /// Seq of the last record written to the old file, if any.
        last_seq_before: Option<u64>,
    },
    /// Retention (`max_files`) deleted the oldest rotated files; the chain now starts at
    /// `first_kept`, which `audit verify` accepts only because this line says so.
    Retention {
        /// The deleted files.
        deleted: Vec<String>,
        /// Where the surviving trail starts.
        first_kept: ChainPoint,
    },
}

/// A position in the chain: a record's file, seq and `prev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    /// File name (no folder).
    pub file: String,
    /// Seq of its first record.
    pub seq: u64,
    /// `prev` of that record.
    pub prev: String,
}

// One audit line per JSON-RPC call: a request carrying several messages (a batch) is
// written as one line per message, each with its own method, target, id, decision, rule and
// (when enabled) arguments; the HTTP-level fields (principal, status, outcome, latency, bytes,
// trace id …) are shared. So no tool call in a batch runs unaudited.

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
    /// The write-ahead lines of a request about to go down a tunnel: its lines as they stand
    /// (who, what, which rule allowed it), with outcome `dispatched` and nothing yet about an
    /// answer.
    pub fn dispatched_lines(&self) -> Vec<AuditRecord> {
        AuditRecord {
            outcome: Outcome::Dispatched,
            http_status: None,
            jsonrpc_error: None,
            latency_us: None,
            bytes_out: None,
            ..self.clone()
        }
        .into_lines()
    }

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
                // Each call's line carries what was done to that call.
                mediation: self
                    .mediation
                    .iter()
                    .filter(|m| m.rpc_id.is_none() || m.rpc_id == call.rpc_id)
                    .cloned()
                    .collect(),
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
