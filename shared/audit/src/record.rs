//! What one line of the trail says: [`AuditRecord`] and the typed values in it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::calls::CallAudit;
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
    /// One entry per JSON-RPC message of the request, each written as a line of its own
    /// (see [`AuditRecord::into_lines`]); never serialized itself.
    #[serde(skip)]
    pub calls: Vec<CallAudit>,
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
    /// Set on a line the writer adds about the trail itself (outcome `audit_gap`,
    /// `audit_reopened` or `audit_retention`), never about a client request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<TrailEvent>,
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
