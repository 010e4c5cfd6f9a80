//! The tamper-evident audit trail: one JSON line per client request, hash-chained and
//! anchored by signed checkpoints.
//!
//! # On-disk format
//!
//! `<file>` (and its rotated predecessors `<file>.000001`, `<file>.000002`, …, oldest first)
//! holds one line per record:
//!
//! ```text
//! {"hash":"<64 hex>","seq":7,"prev":"<64 hex>","time":"2025-01-01T00:00:00.000Z",...}
//! ```
//!
//! * `seq` counts records from 0, continuously across rotations;
//! * `prev` is the `hash` of the previous record (64 zeros for record 0);
//! * `hash` is the lowercase hex SHA-256 of `prev` (its 64 ASCII hex digits) followed by the
//!   *canonical bytes* of the line: the exact line text with its leading `"hash":"<64 hex>",`
//!   member removed, i.e. `{` followed by everything after the fixed 75-byte prefix
//!   `{"hash":"<64 hex>",`. A verifier never re-serializes anything, so the hash covers the
//!   bytes exactly as stored.
//!
//! Editing a line breaks its `hash`; removing, inserting or reordering lines breaks `seq`
//! and `prev`. Cutting lines off the end leaves a valid chain, so the chain head is also
//! kept outside the log: `<file>.checkpoints` holds JSON lines
//! `{"seq":N,"hash":"…","file":"<log file name>","time":"…","key":"<base64 public key>","sig":"<base64>"}`,
//! where `sig` is an Ed25519 signature over
//! `underpass-audit-checkpoint-v1\n<seq>\n<hash>\n<file>\n<time>\n`. A checkpoint is written
//! after every `checkpoint_every` records, whenever the [`Auditor`]'s queue runs empty, and at
//! flush and shutdown. The signing key is `<file>.key` (PKCS#8 PEM, mode 0600, created on
//! first open) unless `signing_key` names another; its public key is written, base64, to
//! `<file>.pub`.
//!
//! [`verify`] checks all of it. Without an expected key it trusts `<file>.pub`, which anyone
//! able to rewrite the log could also replace: pinning the key (a copy of `<file>.pub` kept
//! elsewhere, `verify --key FILE`) is stronger, and shipping checkpoints off the host is
//! stronger still (a local attacker who can read the signing key can re-sign anything).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation tag of the string a checkpoint signature covers.
const CHECKPOINT_TAG: &str = "underpass-audit-checkpoint-v1";
/// Every record line starts with `{"hash":"`, then 64 hex digits, then `",`.
const LINE_PREFIX: &[u8] = b"{\"hash\":\"";
const HASH_HEX_LEN: usize = 64;
const PREFIX_LEN: usize = LINE_PREFIX.len() + HASH_HEX_LEN + 2;
/// Records the [`Auditor`] queues before it starts dropping (and counting) them.
const QUEUE_CAPACITY: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The `[audit]` table of `edge.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The audit log, one JSON line per client request. Required. Rotated files are named
    /// `<file>.000001`, `<file>.000002`, …; checkpoints go to `<file>.checkpoints`.
    pub file: PathBuf,
    /// Rotate once the file would grow beyond this many bytes. Default 64 MiB; 0 = never.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Write a signed checkpoint after this many records (also when the queue runs empty,
    /// and at shutdown). Default 1: every record. 0 = only when idle and at shutdown.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Record the (redacted) arguments of tool calls, resource reads and prompt requests.
    /// Default false: arguments may carry personal or secret data.
    #[serde(default)]
    pub log_arguments: bool,
    /// Ed25519 checkpoint signing key (PKCS#8, PEM or DER). Default `<file>.key`. Created,
    /// mode 0600, when missing.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// What the edge does while records cannot be written (disk full, file unwritable, queue
    /// full): `"refuse"` (default) answers MCP requests 503 until writing works again;
    /// `"continue"` keeps serving. Either way the loss is recorded in the chain as a gap
    /// record once writing works again, and `audit verify` reports it.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Rotated files kept; after a rotation the oldest beyond this many are deleted, and the
    /// deletion is recorded in the chain so that the surviving files still verify. Default 0:
    /// keep every file.
    #[serde(default)]
    pub max_files: u64,
    /// Refusals (4xx answers to requests no rule allowed: 401s, 404s, denials, rate limits)
    /// written in full per client address, principal and outcome per `refusal_window_secs`;
    /// the rest of that window is counted into one summary line (`aggregate`). Default 20;
    /// 0 = write every refusal in full.
    #[serde(default = "default_refusals_per_source")]
    pub refusals_per_source: u32,
    /// The window of `refusals_per_source`, in seconds. Default 60.
    #[serde(default = "default_refusal_window_secs")]
    pub refusal_window_secs: u64,
    /// A second file every signed checkpoint is appended to as it is written (e.g. on another
    /// volume, or a path an auditor's log shipper collects): truncating the log together with
    /// `<file>.checkpoints` is caught by `audit verify --checkpoints <this file>`.
    #[serde(default)]
    pub checkpoint_copy: Option<PathBuf>,
    /// A syslog socket (unix datagram, e.g. `/dev/log`) every signed checkpoint is sent to
    /// as it is written (facility auth, severity info, tag `underpass-edge`).
    #[serde(default)]
    pub checkpoint_syslog: Option<PathBuf>,
}

/// The `[audit] on_failure` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Answer MCP requests 503 (`-31503`) while records cannot be written.
    #[default]
    Refuse,
    /// Keep serving while records cannot be written (they are counted into a gap record).
    Continue,
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_refusals_per_source() -> u32 {
    20
}

fn default_refusal_window_secs() -> u64 {
    60
}

fn default_checkpoint_every() -> u64 {
    1
}

impl AuditConfig {
    /// A configuration with every default and the given log file.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            max_bytes: default_max_bytes(),
            checkpoint_every: default_checkpoint_every(),
            log_arguments: false,
            signing_key: None,
            on_failure: OnFailure::default(),
            max_files: 0,
            refusals_per_source: default_refusals_per_source(),
            refusal_window_secs: default_refusal_window_secs(),
            checkpoint_copy: None,
            checkpoint_syslog: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

pub use crate::auth::AuthMethod;

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
    pub outcome: String,
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
    /// (see [`crate::audit_calls`]); never serialized itself.
    #[serde(skip)]
    pub calls: Vec<crate::audit_calls::CallAudit>,
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

/// The current time as RFC 3339 UTC with milliseconds, e.g. `2025-01-31T12:00:00.123Z`.
pub fn now() -> String {
    format_time(SystemTime::now())
}

/// Formats `t` as RFC 3339 UTC with milliseconds (times before 1970 are clamped to 1970).
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm, non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Object keys whose values are never logged (matched case-insensitively, ignoring `-`/`_`,
/// as substrings: `db_password`, `X-Api-Key`, `accessToken`…).
const SENSITIVE_KEYS: &[&str] = &[
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
const REDACTED: &str = "[REDACTED]";
const MAX_ARG_STRING: usize = 1024;
const MAX_ARG_ITEMS: usize = 100;
const MAX_ARG_DEPTH: usize = 16;

/// Prepares request arguments for the audit log: `None` for `null`, otherwise a copy with the
/// values of secret-looking keys replaced by `"[REDACTED]"`, long strings cut to 1 KiB, long
/// arrays and objects cut to 100 entries and nesting cut at depth 16. The caller sets
/// [`AuditRecord::arguments`] from it only when `log_arguments` is on (see
/// [`Auditor::arguments`]).
pub fn redact_arguments(args: &Value) -> Option<Value> {
    if args.is_null() {
        return None;
    }
    Some(redact(args, 0))
}

fn redact(v: &Value, depth: usize) -> Value {
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
        Value::String(s) if s.len() > MAX_ARG_STRING => {
            let mut cut = MAX_ARG_STRING;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(format!("{}…[{} bytes]", &s[..cut], s.len()))
        }
        other => other.clone(),
    }
}

fn is_sensitive(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    SENSITIVE_KEYS.iter().any(|s| k.contains(s))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why the audit log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `file` names no file (e.g. `/` or `..`).
    #[error("audit: {} is not a file path", .0.display())]
    InvalidPath(PathBuf),
    /// The signing key is unreadable or unusable.
    #[error("audit: bad signing key {}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing key does not match the public key earlier checkpoints were signed with.
    #[error(
        "audit: signing key {} does not match {}, the key of the existing checkpoints; \
         restore the original key, or move the old log, checkpoints and .pub aside",
        key.display(), pub_file.display()
    )]
    KeyMismatch {
        /// The signing key in use.
        key: PathBuf,
        /// The recorded public key.
        pub_file: PathBuf,
    },
    /// The last line of the log (or of the checkpoints) is damaged, so the chain cannot be
    /// continued without forking it.
    #[error(
        "audit: the last line of {} is damaged ({reason}); refusing to continue the chain: \
         run the audit verifier, then move the damaged files aside",
        path.display()
    )]
    CorruptTail {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log ends before the newest signed checkpoint: it was truncated or replaced.
    #[error(
        "audit: {} ends at seq {} but {} vouches for seq {checkpoint_seq}: the log was \
         truncated or replaced; refusing to continue the chain (run the audit verifier)",
        path.display(),
        log_seq.map_or_else(|| "none".to_owned(), |s| s.to_string()),
        checkpoints.display()
    )]
    BehindCheckpoint {
        /// The log file.
        path: PathBuf,
        /// Its last seq, if any.
        log_seq: Option<u64>,
        /// The checkpoints file.
        checkpoints: PathBuf,
        /// Seq of its last checkpoint.
        checkpoint_seq: u64,
    },
    /// `checkpoint_syslog` names something that is not a unix socket.
    #[error(
        "audit: checkpoint_syslog {} is not a unix socket (syslog daemons listen on /dev/log)",
        .0.display()
    )]
    NotASocket(PathBuf),
    /// Retention could not delete old files safely (they are kept).
    #[error("audit: retention cannot delete files before {}: {reason}", file.display())]
    Retention {
        /// The oldest file that would be kept.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A record could not be serialized.
    #[error("audit: cannot serialize a record: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The background writer is gone.
    #[error("audit: the writer has stopped")]
    Closed,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and small helpers
// ---------------------------------------------------------------------------------------------

/// `<file><suffix>`, e.g. `audit.jsonl.key`.
fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<file>.<n, 6 digits>`.
fn rotated_name(file: &Path, n: u64) -> PathBuf {
    sidecar(file, &format!(".{n:06}"))
}

/// Rotated files of `file`, oldest first.
fn rotated_files(file: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let Some(name) = file.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some(suffix) = fname.strip_prefix(&prefix) else {
            continue;
        };
        if suffix.len() >= 6 && suffix.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = suffix.parse::<u64>() {
                out.push((n, file.with_file_name(fname)));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// SHA-256 of `prev || "{" || rest`, hex.
fn chain_hash(prev: &str, rest: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"{");
    ctx.update(rest);
    hex(ctx.finish().as_ref())
}

/// Builds a sealed line (with trailing newline) from a serialized body `{"seq":…}`.
fn seal(prev: &str, body: &str) -> (String, String) {
    let rest = body.get(1..).unwrap_or_default();
    let hash = chain_hash(prev, rest.as_bytes());
    let line = format!("{{\"hash\":\"{hash}\",{rest}\n");
    (line, hash)
}

/// The chain fields of a line, and what the writer said about the trail (the rest is
/// ignored here).
#[derive(Deserialize)]
struct LineHead {
    hash: String,
    seq: u64,
    prev: String,
    #[serde(default)]
    trail: Option<Value>,
}

/// Why a line does not check out on its own.
enum LineError {
    Malformed(String),
    BadHash,
}

/// Parses one line (without its newline) and checks its own hash.
fn parse_line(line: &[u8]) -> Result<LineHead, LineError> {
    if line.len() <= PREFIX_LEN
        || !line.starts_with(LINE_PREFIX)
        || &line[PREFIX_LEN - 2..PREFIX_LEN] != b"\","
    {
        return Err(LineError::Malformed(
            "does not start with {\"hash\":\"<64 hex>\",".into(),
        ));
    }
    let stored = &line[LINE_PREFIX.len()..PREFIX_LEN - 2];
    if !stored
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(LineError::Malformed(
            "hash is not 64 lowercase hex digits".into(),
        ));
    }
    let head: LineHead = serde_json::from_slice(line)
        .map_err(|e| LineError::Malformed(format!("not a valid record: {e}")))?;
    if chain_hash(&head.prev, &line[PREFIX_LEN..]) != head.hash {
        return Err(LineError::BadHash);
    }
    Ok(head)
}

/// The last line of a file (without newline) and whether it was newline-terminated;
/// `None` for a missing or empty file. Reads backwards, so big files cost little.
fn read_last_line(path: &Path) -> io::Result<Option<(Vec<u8>, bool)>> {
    const CHUNK: u64 = 64 * 1024;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    let terminated = last[0] == b'\n';
    let end = if terminated { len - 1 } else { len };
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            chunks.push(chunk.split_off(i + 1));
            break;
        }
        chunks.push(chunk);
        pos = start;
    }
    let line: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    Ok(Some((line, terminated)))
}

// ---------------------------------------------------------------------------------------------
// Keys and checkpoints
// ---------------------------------------------------------------------------------------------

/// A signed statement that the chain had reached `seq` with head `hash`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    seq: u64,
    hash: String,
    file: String,
    time: String,
    key: String,
    sig: String,
}

fn checkpoint_message(seq: u64, hash: &str, file: &str, time: &str) -> String {
    format!("{CHECKPOINT_TAG}\n{seq}\n{hash}\n{file}\n{time}\n")
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// PKCS#8 DER from PEM (`PRIVATE KEY`) or raw DER bytes.
fn pkcs8_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    if !text.contains("-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let b64: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if b64.is_empty() {
        return Err("no \"-----BEGIN PRIVATE KEY-----\" block".into());
    }
    B64.decode(b64).map_err(|e| format!("bad PEM base64: {e}"))
}

/// Loads the signing key, creating it (mode 0600) when missing.
fn load_or_create_key(path: &Path) -> Result<Ed25519KeyPair, AuditError> {
    let key_err = |reason: String| AuditError::Key {
        path: path.to_owned(),
        reason,
    };
    match fs::read(path) {
        Ok(bytes) => {
            #[cfg(unix)]
            if let Ok(meta) = fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        "audit signing key {} is readable by group or others; chmod 600 it",
                        path.display()
                    );
                }
            }
            let der = pkcs8_der(&bytes).map_err(key_err)?;
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| key_err(format!("not an Ed25519 PKCS#8 key: {e}")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| key_err("cannot generate a key".into()))?;
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(pem_encode(doc.as_ref()).as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io_err("write the signing key", path))?;
                    tracing::info!("created audit signing key {}", path.display());
                    Ed25519KeyPair::from_pkcs8(doc.as_ref())
                        .map_err(|e| key_err(format!("generated key unusable: {e}")))
                }
                // Someone else created it meanwhile: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(io_err("create the signing key", path)(e)),
            }
        }
        Err(e) => Err(io_err("read the signing key", path)(e)),
    }
}

/// Reads a base64 Ed25519 public key file (as `<file>.pub`).
fn read_public_key(path: &Path) -> Result<Vec<u8>, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let key = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    if key.len() != 32 {
        return Err(format!(
            "an Ed25519 public key has 32 bytes, not {}",
            key.len()
        ));
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// The synchronous writer
// ---------------------------------------------------------------------------------------------

/// How often the writer checks that its files are still the ones their paths name.
const IDENTITY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Distinct reasons a gap record lists.
const MAX_GAP_REASONS: usize = 8;
/// Syslog priority of shipped checkpoints: facility auth (4), severity info (6).
const SYSLOG_PRIORITY: u8 = 4 * 8 + 6;

/// Records lost since the last gap record.
#[derive(Debug, Default, Clone)]
struct GapTally {
    lost: u64,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    reasons: BTreeSet<String>,
}

impl GapTally {
    fn add(&mut self, n: u64, reason: &str, at: SystemTime) {
        self.lost = self.lost.saturating_add(n);
        self.from = Some(self.from.map_or(at, |f| f.min(at)));
        self.to = Some(self.to.map_or(at, |t| t.max(at)));
        if self.reasons.len() < MAX_GAP_REASONS {
            self.reasons.insert(reason.to_owned());
        }
    }

    fn merge(&mut self, other: GapTally) {
        if other.lost == 0 {
            return;
        }
        self.lost = self.lost.saturating_add(other.lost);
        self.from = self.from.min(other.from).or(other.from);
        self.to = self.to.max(other.to);
        for r in other.reasons {
            if self.reasons.len() >= MAX_GAP_REASONS {
                break;
            }
            self.reasons.insert(r);
        }
    }

    fn event(&self) -> TrailEvent {
        let time = |t: Option<SystemTime>| format_time(t.unwrap_or_else(SystemTime::now));
        TrailEvent::Gap {
            lost: self.lost,
            from: time(self.from),
            to: time(self.to),
            reasons: self.reasons.iter().cloned().collect(),
        }
    }
}

/// The chain writer: appends sealed records, rotates by size (deleting the oldest rotated
/// files beyond `max_files`), writes signed checkpoints and ships them to the configured copy
/// and syslog, reopens its files when someone else removed or replaced them, and records a
/// gap record for records it could not write once writing works again. Not shared between
/// threads; the edge uses it through [`Auditor`].
pub struct AuditLog {
    path: PathBuf,
    file_name: String,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u64,
    next_rotation: u64,
    /// Seq the next record gets.
    next_seq: u64,
    /// Hash of the last record ([`GENESIS`] before the first).
    head: String,
    checkpoints_path: PathBuf,
    checkpoints: File,
    checkpoints_size: u64,
    checkpoint_every: u64,
    since_checkpoint: u64,
    /// Seq of the newest checkpoint, if it matches the head.
    checkpointed: Option<u64>,
    key: Ed25519KeyPair,
    public_b64: String,
    /// `checkpoint_copy`: its path, open file and size.
    copy: Option<(PathBuf, File, u64)>,
    /// `checkpoint_syslog`: the socket path and an unbound datagram socket.
    syslog: Option<(PathBuf, UnixDatagram)>,
    /// Records lost since the last gap record.
    gap: GapTally,
    /// When the open files are next compared with what their paths name.
    next_identity_check: Instant,
    /// Failed checkpoint writes and shipments, for logging at the 1st, 2nd, 4th… failure.
    checkpoint_failures: u64,
    /// Test hook: every write fails while set.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .field("head", &self.head)
            .field("lost", &self.gap.lost)
            .finish_non_exhaustive()
    }
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    opts.open(path).map_err(io_err("open", path))
}

/// Whether `path` no longer names the file `open` (removed, or replaced by another file, as
/// an outside log rotation does); `None` when it still does or when that cannot be told.
fn replaced(path: &Path, open: &File) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let open = open.metadata().ok()?;
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && open.nlink() == 0 => Some("was removed"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some("is no longer at its path (renamed away or unlinked)")
        }
        Err(_) => None,
        Ok(m) if (m.dev(), m.ino()) != (open.dev(), open.ino()) => {
            Some("was replaced by another file (rotated by someone else?)")
        }
        Ok(_) => None,
    }
}

/// The first line of a file (without newline), if it has a complete one.
fn read_first_line(path: &Path) -> io::Result<Option<Vec<u8>>> {
    const MAX_LINE: u64 = 16 * 1024 * 1024;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    BufReader::new(f.take(MAX_LINE)).read_until(b'\n', &mut buf)?;
    if buf.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// The last checkpoint of a checkpoints file (or copy), if it has any.
fn newest_checkpoint(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let Some((line, terminated)) = read_last_line(path).map_err(io_err("read", path))? else {
        return Ok(None);
    };
    serde_json::from_slice(&line)
        .ok()
        .filter(|_| terminated)
        .map(Some)
        .ok_or_else(|| AuditError::CorruptTail {
            path: path.to_owned(),
            reason: "not a complete checkpoint".into(),
        })
}

/// What is lost when `record` is: one request, or all the refusals a summary line counts.
fn records_in(record: &AuditRecord) -> u64 {
    record.aggregate.as_ref().map_or(1, |a| a.count.max(1))
}

impl AuditLog {
    /// Opens (or creates) the log and resumes the chain from its last record. Refuses to
    /// start when the last line is damaged, when the log ends before the newest signed
    /// checkpoint, when the signing key is not the one `<file>.pub` records, or when the
    /// checkpoint copy or syslog socket cannot be used.
    pub fn open(config: &AuditConfig) -> Result<Self, AuditError> {
        let path = config.file.clone();
        let file_name = path
            .file_name()
            .ok_or_else(|| AuditError::InvalidPath(path.clone()))?
            .to_string_lossy()
            .into_owned();

        // Key and its public half.
        let key_path = config
            .signing_key
            .clone()
            .unwrap_or_else(|| sidecar(&path, ".key"));
        let key = load_or_create_key(&key_path)?;
        let public_b64 = B64.encode(key.public_key().as_ref());
        let pub_path = sidecar(&path, ".pub");
        match fs::read_to_string(&pub_path) {
            Ok(text) if text.trim() == public_b64 => {}
            Ok(_) => {
                return Err(AuditError::KeyMismatch {
                    key: key_path,
                    pub_file: pub_path,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::write(&pub_path, format!("{public_b64}\n"))
                    .map_err(io_err("write the public key", &pub_path))?;
            }
            Err(e) => return Err(io_err("read", &pub_path)(e)),
        }

        // Where the chain stands.
        let rotated = rotated_files(&path).map_err(io_err("list rotated files of", &path))?;
        let next_rotation = rotated.last().map_or(1, |(n, _)| n + 1);
        let mut tail = None;
        for candidate in std::iter::once(&path).chain(rotated.iter().rev().map(|(_, p)| p)) {
            if let Some(t) = read_last_line(candidate).map_err(io_err("read", candidate))? {
                tail = Some((candidate.clone(), t));
                break;
            }
        }
        let (next_seq, head) = match tail {
            None => (0, GENESIS.to_owned()),
            Some((p, (line, terminated))) => {
                let corrupt = |reason: &str| AuditError::CorruptTail {
                    path: p.clone(),
                    reason: reason.to_owned(),
                };
                if !terminated {
                    return Err(corrupt("incomplete line: no final newline"));
                }
                match parse_line(&line) {
                    Ok(h) => (h.seq.saturating_add(1), h.hash),
                    Err(LineError::BadHash) => {
                        return Err(corrupt("its hash does not match its contents"))
                    }
                    Err(LineError::Malformed(m)) => return Err(corrupt(&m)),
                }
            }
        };
        let last_seq = next_seq.checked_sub(1);

        // The log must not be behind the newest checkpoint, local or shipped.
        let checkpoints_path = sidecar(&path, ".checkpoints");
        let newest = newest_checkpoint(&checkpoints_path)?;
        let shipped = match &config.checkpoint_copy {
            Some(copy) => newest_checkpoint(copy)?.map(|cp| (copy.clone(), cp)),
            None => None,
        };
        for (file, cp) in newest
            .iter()
            .map(|cp| (checkpoints_path.clone(), cp))
            .chain(shipped.iter().map(|(f, cp)| (f.clone(), cp)))
        {
            let behind = match last_seq {
                None => true,
                Some(s) => cp.seq > s || (cp.seq == s && cp.hash != head),
            };
            if behind {
                return Err(AuditError::BehindCheckpoint {
                    path,
                    log_seq: last_seq,
                    checkpoints: file,
                    checkpoint_seq: cp.seq,
                });
            }
        }
        let checkpointed = newest.filter(|cp| Some(cp.seq) == last_seq).and(last_seq);

        // Where checkpoints are shipped.
        let copy = match &config.checkpoint_copy {
            None => None,
            Some(p) => {
                let f = open_append(p)?;
                let size = f.metadata().map_err(io_err("stat", p))?.len();
                Some((p.clone(), f, size))
            }
        };
        let syslog = match &config.checkpoint_syslog {
            None => None,
            Some(p) => {
                use std::os::unix::fs::FileTypeExt;
                let meta = fs::metadata(p).map_err(io_err("find the syslog socket", p))?;
                if !meta.file_type().is_socket() {
                    return Err(AuditError::NotASocket(p.clone()));
                }
                let socket = UnixDatagram::unbound().map_err(io_err("create a socket for", p))?;
                // A stuck syslog must not stall the audit writer: a checkpoint it cannot take
                // at once is logged as not shipped (the next one supersedes it).
                socket
                    .set_nonblocking(true)
                    .map_err(io_err("set up a socket for", p))?;
                Some((p.clone(), socket))
            }
        };

        let file = open_append(&path)?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        let checkpoints = open_append(&checkpoints_path)?;
        let checkpoints_size = checkpoints
            .metadata()
            .map_err(io_err("stat", &checkpoints_path))?
            .len();
        Ok(Self {
            path,
            file_name,
            file,
            size,
            max_bytes: config.max_bytes,
            max_files: config.max_files,
            next_rotation,
            next_seq,
            head,
            checkpoints_path,
            checkpoints,
            checkpoints_size,
            checkpoint_every: config.checkpoint_every,
            since_checkpoint: 0,
            checkpointed,
            key,
            public_b64,
            copy,
            syslog,
            gap: GapTally::default(),
            next_identity_check: Instant::now() + IDENTITY_CHECK_EVERY,
            checkpoint_failures: 0,
            #[cfg(test)]
            fail_writes: Arc::default(),
        })
    }

    /// Appends one record (an empty `time` is set to now) and returns its seq. Rotates first
    /// when the line would push the file past `max_bytes`; checkpoints every
    /// `checkpoint_every` records. When records were lost before, a gap record saying so goes
    /// first. On a failed write the partial line is cut off again, the chain does not
    /// advance, and the record is counted into the next gap record.
    pub fn append(&mut self, record: &AuditRecord) -> Result<u64, AuditError> {
        let result = self
            .reopen_if_replaced()
            .and_then(|()| self.write_gap())
            .and_then(|()| self.write_record(record));
        if let Err(e) = &result {
            self.gap
                .add(records_in(record), &e.to_string(), SystemTime::now());
        }
        result
    }

    /// True while nothing was lost since the last gap record.
    pub fn is_healthy(&self) -> bool {
        self.gap.lost == 0
    }

    /// Records lost and not yet recorded in a gap record.
    pub fn lost(&self) -> u64 {
        self.gap.lost
    }

    /// Checks the files (reopening one that was removed or replaced) and writes the pending
    /// gap record, if any: after a failure, this is how the writer finds out that writing
    /// works again without waiting for the next request.
    pub fn recover(&mut self) -> Result<(), AuditError> {
        self.reopen_if_replaced()?;
        self.write_gap()
    }

    /// Counts records lost before they reached the writer (e.g. from a full queue).
    fn note_lost(&mut self, tally: GapTally) {
        self.gap.merge(tally);
    }

    fn write_gap(&mut self) -> Result<(), AuditError> {
        if self.gap.lost == 0 {
            return Ok(());
        }
        let record = AuditRecord {
            time: now(),
            outcome: "audit_gap".into(),
            trail: Some(self.gap.event()),
            ..AuditRecord::default()
        };
        self.write_record(&record)?;
        tracing::warn!(
            lost = self.gap.lost,
            "audit log writable again: recorded a gap of {} lost record(s) in the chain",
            self.gap.lost
        );
        self.gap = GapTally::default();
        Ok(())
    }

    /// Seals the next line for `record`: (line with newline, its hash).
    fn seal_next(&self, record: &AuditRecord) -> Result<(String, String), AuditError> {
        #[derive(Serialize)]
        struct Chained<'a> {
            seq: u64,
            prev: &'a str,
            #[serde(flatten)]
            record: &'a AuditRecord,
        }
        let body = serde_json::to_string(&Chained {
            seq: self.next_seq,
            prev: &self.head,
            record,
        })?;
        Ok(seal(&self.head, &body))
    }

    fn write_record(&mut self, record: &AuditRecord) -> Result<u64, AuditError> {
        let stamped;
        let record = if record.time.is_empty() {
            stamped = AuditRecord {
                time: now(),
                ..record.clone()
            };
            &stamped
        } else {
            record
        };
        let (mut line, mut hash) = self.seal_next(record)?;
        let len = line.len() as u64;
        if self.max_bytes > 0 && self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
            // Retention may have written a line into the fresh file: seal against it.
            (line, hash) = self.seal_next(record)?;
        }
        self.write_sealed(&line, hash)
    }

    fn write_sealed(&mut self, line: &str, hash: String) -> Result<u64, AuditError> {
        if let Err(e) = self.write_log(line.as_bytes()) {
            // Best effort: never leave half a line that would block the next start.
            let _ = self.file.set_len(self.size);
            return Err(io_err("append to", &self.path)(e));
        }
        let seq = self.next_seq;
        self.size += line.len() as u64;
        self.head = hash;
        self.next_seq += 1;
        self.since_checkpoint += 1;
        if self.checkpoint_every > 0 && self.since_checkpoint >= self.checkpoint_every {
            // The record is written; a checkpoint that fails is retried with the next one.
            if let Err(e) = self.checkpoint() {
                self.checkpoint_failed(&e.to_string());
            }
        }
        Ok(seq)
    }

    fn write_log(&mut self, bytes: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(io::Error::other(
                "injected failure: no space left on device",
            ));
        }
        self.file.write_all(bytes)
    }

    fn checkpoint_failed(&mut self, why: &str) {
        self.checkpoint_failures += 1;
        if self.checkpoint_failures.is_power_of_two() {
            tracing::error!(
                failures = self.checkpoint_failures,
                "audit checkpoint not written or not shipped: {why}"
            );
        }
    }

    /// Reopens the log, the checkpoints and the checkpoint copy when someone else removed or
    /// replaced them (checked at most once per second). A reopened log gets a line saying so,
    /// and the chain goes on in it. When reopening fails, the next call tries again.
    fn reopen_if_replaced(&mut self) -> Result<(), AuditError> {
        let now_instant = Instant::now();
        if now_instant < self.next_identity_check {
            return Ok(());
        }
        if let Some(why) = replaced(&self.path, &self.file) {
            let file = open_append(&self.path)?;
            let size = file.metadata().map_err(io_err("stat", &self.path))?.len();
            tracing::warn!(
                "audit log {} {why} while open: opened a new file there; the chain goes on in it",
                self.path.display()
            );
            self.file = file;
            self.size = size;
            let note = AuditRecord {
                time: now(),
                outcome: "audit_reopened".into(),
                trail: Some(TrailEvent::Reopened {
                    reason: format!("{} {why} while the edge had it open", self.file_name),
                    last_seq_before: self.next_seq.checked_sub(1),
                }),
                ..AuditRecord::default()
            };
            let (line, hash) = self.seal_next(&note)?;
            self.write_sealed(&line, hash)?;
        }
        if let Some(why) = replaced(&self.checkpoints_path, &self.checkpoints) {
            let file = open_append(&self.checkpoints_path)?;
            self.checkpoints_size = file
                .metadata()
                .map_err(io_err("stat", &self.checkpoints_path))?
                .len();
            self.checkpoints = file;
            tracing::warn!(
                "audit checkpoints {} {why} while open: opened a new file there",
                self.checkpoints_path.display()
            );
        }
        if let Some((path, file, size)) = self.copy.as_mut() {
            if let Some(why) = replaced(path, file) {
                let f = open_append(path)?;
                *size = f.metadata().map_err(io_err("stat", path))?.len();
                *file = f;
                tracing::warn!(
                    "checkpoint copy {} {why}: opened a new file there",
                    path.display()
                );
            }
        }
        self.next_identity_check = now_instant + IDENTITY_CHECK_EVERY;
        Ok(())
    }

    /// Renames the current file to `<file>.<N>` and starts a fresh one; then applies
    /// retention.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.file.sync_all().map_err(io_err("sync", &self.path))?;
        let target = rotated_name(&self.path, self.next_rotation);
        if target.exists() {
            return Err(AuditError::Io {
                action: "rotate to",
                path: target,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        fs::rename(&self.path, &target).map_err(io_err("rotate to", &target))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.next_rotation += 1;
        tracing::info!("audit log rotated to {}", target.display());
        if self.max_files > 0 {
            if let Err(e) = self.apply_retention() {
                tracing::error!("{e}; the old files are kept");
            }
        }
        Ok(())
    }

    /// Deletes the oldest rotated files beyond `max_files`. First a line in the chain names
    /// them and the seq and `prev` the oldest kept file starts with (so that `verify` accepts
    /// the shortened trail, and nothing else); then the files go, and checkpoints before the
    /// kept trail are dropped from `<file>.checkpoints`.
    fn apply_retention(&mut self) -> Result<(), AuditError> {
        let rotated =
            rotated_files(&self.path).map_err(io_err("list rotated files of", &self.path))?;
        let keep = usize::try_from(self.max_files).unwrap_or(usize::MAX);
        let excess = rotated.len().saturating_sub(keep);
        if excess == 0 {
            return Ok(());
        }
        let (victims, kept) = rotated.split_at(excess);
        let Some((_, oldest_kept)) = kept.first() else {
            return Ok(());
        };
        let retention_err = |reason: String| AuditError::Retention {
            file: oldest_kept.clone(),
            reason,
        };
        let first = read_first_line(oldest_kept)
            .map_err(io_err("read", oldest_kept))?
            .ok_or_else(|| retention_err("it has no complete first line".into()))?;
        let first = parse_line(&first).map_err(|e| {
            retention_err(match e {
                LineError::BadHash => "its first line's hash does not match".into(),
                LineError::Malformed(m) => m,
            })
        })?;
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let note = AuditRecord {
            time: now(),
            outcome: "audit_retention".into(),
            trail: Some(TrailEvent::Retention {
                deleted: victims.iter().map(|(_, p)| name(p)).collect(),
                first_kept: ChainPoint {
                    file: name(oldest_kept),
                    seq: first.seq,
                    prev: first.prev.clone(),
                },
            }),
            ..AuditRecord::default()
        };
        let (line, hash) = self.seal_next(&note)?;
        self.write_sealed(&line, hash)?;
        for (_, victim) in victims {
            fs::remove_file(victim).map_err(io_err("delete", victim))?;
            tracing::info!("audit retention: deleted {}", victim.display());
        }
        self.trim_checkpoints(first.seq)
    }

    /// Rewrites `<file>.checkpoints` without the checkpoints for records before `first_seq`.
    fn trim_checkpoints(&mut self, first_seq: u64) -> Result<(), AuditError> {
        let tmp = sidecar(&self.checkpoints_path, ".tmp");
        let src =
            File::open(&self.checkpoints_path).map_err(io_err("read", &self.checkpoints_path))?;
        let mut out = OpenOptions::new();
        out.write(true).create(true).truncate(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            out.mode(0o640);
        }
        let mut out = out.open(&tmp).map_err(io_err("create", &tmp))?;
        let mut reader = BufReader::new(src);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(io_err("read", &self.checkpoints_path))?;
            if n == 0 {
                break;
            }
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let keep =
                serde_json::from_slice::<Checkpoint>(text).map_or(true, |cp| cp.seq >= first_seq);
            if keep {
                out.write_all(&buf).map_err(io_err("write", &tmp))?;
            }
        }
        out.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, &self.checkpoints_path)
            .map_err(io_err("replace", &self.checkpoints_path))?;
        self.checkpoints = open_append(&self.checkpoints_path)?;
        self.checkpoints_size = self
            .checkpoints
            .metadata()
            .map_err(io_err("stat", &self.checkpoints_path))?
            .len();
        Ok(())
    }

    /// Writes a signed checkpoint of the current head, unless there is nothing new to vouch
    /// for, and ships it to the checkpoint copy and syslog. Does not sync (see
    /// [`AuditLog::flush`]).
    pub fn checkpoint(&mut self) -> Result<(), AuditError> {
        let Some(seq) = self.next_seq.checked_sub(1) else {
            return Ok(());
        };
        if self.checkpointed == Some(seq) {
            return Ok(());
        }
        let time = now();
        let sig = self
            .key
            .sign(checkpoint_message(seq, &self.head, &self.file_name, &time).as_bytes());
        let cp = Checkpoint {
            seq,
            hash: self.head.clone(),
            file: self.file_name.clone(),
            time,
            key: self.public_b64.clone(),
            sig: B64.encode(sig.as_ref()),
        };
        let mut line = serde_json::to_string(&cp)?;
        line.push('\n');
        #[cfg(test)]
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(io_err("append to", &self.checkpoints_path)(
                io::Error::other("injected failure: no space left on device"),
            ));
        }
        if let Err(e) = self.checkpoints.write_all(line.as_bytes()) {
            let _ = self.checkpoints.set_len(self.checkpoints_size);
            return Err(io_err("append to", &self.checkpoints_path)(e));
        }
        self.checkpoints_size += line.len() as u64;
        self.checkpointed = Some(seq);
        self.since_checkpoint = 0;
        self.ship(&line);
        Ok(())
    }

    /// Sends a checkpoint line to the copy and to syslog; failures are logged, not fatal.
    fn ship(&mut self, line: &str) {
        let mut failed = Vec::new();
        if let Some((path, file, size)) = self.copy.as_mut() {
            match file.write_all(line.as_bytes()) {
                Ok(()) => *size += line.len() as u64,
                Err(e) => {
                    let _ = file.set_len(*size);
                    failed.push(format!("cannot append to {}: {e}", path.display()));
                }
            }
        }
        if let Some((path, socket)) = &self.syslog {
            let msg = format!(
                "<{SYSLOG_PRIORITY}>underpass-edge[{}]: audit-checkpoint {}",
                std::process::id(),
                line.trim_end()
            );
            if let Err(e) = socket.send_to(msg.as_bytes(), path) {
                failed.push(format!("cannot send to syslog {}: {e}", path.display()));
            }
        }
        for why in failed {
            self.checkpoint_failed(&why);
        }
    }

    /// Syncs the log to disk, writes a checkpoint of the head and syncs that (and the
    /// checkpoint copy) too.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        self.file.sync_data().map_err(io_err("sync", &self.path))?;
        self.checkpoint()?;
        if let Some((path, file, _)) = &self.copy {
            file.sync_data().map_err(io_err("sync", path))?;
        }
        self.checkpoints
            .sync_data()
            .map_err(io_err("sync", &self.checkpoints_path))
    }
}

// ---------------------------------------------------------------------------------------------
// Summaries of repeated refusals
// ---------------------------------------------------------------------------------------------

/// Distinct (source, principal, outcome) keys tracked at once; refusals beyond them share
/// one key with source `*`, so that many addresses cannot grow the table without bound.
const MAX_SAMPLED_KEYS: usize = 4096;

/// Per (source, principal, outcome): the first `per_window` refusals of a window pass in
/// full, the rest are counted into one summary line when the window ends.
#[derive(Debug)]
struct Sampler {
    per_window: u32,
    window: Duration,
    state: Mutex<SamplerState>,
}

#[derive(Debug, Default)]
struct SamplerState {
    windows: HashMap<SampleKey, Window>,
    /// Summaries of windows that ended, waiting for the writer.
    ended: Vec<AuditRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SampleKey {
    source: Option<String>,
    principal: Option<String>,
    outcome: String,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    http_status: Option<u16>,
}

impl Window {
    fn new(started: Instant) -> Self {
        Self {
            started,
            written: 0,
            suppressed: 0,
            from: None,
            to: None,
            http_status: None,
        }
    }

    fn summary(&self, key: &SampleKey) -> Option<AuditRecord> {
        if self.suppressed == 0 {
            return None;
        }
        let time = |t: Option<SystemTime>| format_time(t.unwrap_or_else(SystemTime::now));
        Some(AuditRecord {
            time: now(),
            source: key.source.clone(),
            principal: key.principal.clone(),
            outcome: key.outcome.clone(),
            http_status: self.http_status,
            aggregate: Some(Aggregate {
                count: self.suppressed,
                from: time(self.from),
                to: time(self.to),
            }),
            ..AuditRecord::default()
        })
    }
}

/// A refusal: a 4xx answer that no rule allowed (unauthenticated, not found, denied, rate
/// limited, bad request…). Allowed requests and the writer's own lines are never summarized.
fn is_refusal(record: &AuditRecord) -> bool {
    record.http_status.is_some_and(|s| (400..500).contains(&s))
        && record.decision != Some(Decision::Allow)
        && record.trail.is_none()
        && record.aggregate.is_none()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sampler {
    fn new(config: &AuditConfig) -> Option<Self> {
        (config.refusals_per_source > 0).then(|| Self {
            per_window: config.refusals_per_source,
            window: Duration::from_secs(config.refusal_window_secs.max(1)),
            state: Mutex::default(),
        })
    }

    /// The record, or `None` when it is counted into its window's summary instead.
    fn admit(&self, record: AuditRecord) -> Option<AuditRecord> {
        if !is_refusal(&record) {
            return Some(record);
        }
        let now_instant = Instant::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut key = SampleKey {
            source: record.source.clone(),
            principal: record.principal.clone(),
            outcome: record.outcome.clone(),
        };
        if state.windows.len() >= MAX_SAMPLED_KEYS && !state.windows.contains_key(&key) {
            key.source = Some("*".into());
            key.principal = None;
        }
        let window = state
            .windows
            .entry(key.clone())
            .or_insert_with(|| Window::new(now_instant));
        if now_instant.duration_since(window.started) >= self.window {
            state.ended.extend(window.summary(&key));
            *window = Window::new(now_instant);
        }
        if window.written < self.per_window {
            window.written += 1;
            return Some(record);
        }
        let t = SystemTime::now();
        window.suppressed += 1;
        window.from.get_or_insert(t);
        window.to = Some(t);
        window.http_status = record.http_status;
        None
    }

    /// Summaries of the windows that have ended (of every window when `all`), which are
    /// forgotten.
    fn due(&self, all: bool) -> Vec<AuditRecord> {
        let now_instant = Instant::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut out = std::mem::take(&mut state.ended);
        let window = self.window;
        state.windows.retain(|key, w| {
            let ended = all || now_instant.duration_since(w.started) >= window;
            if ended {
                out.extend(w.summary(key));
            }
            !ended
        });
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The asynchronous handle
// ---------------------------------------------------------------------------------------------

/// How often the writer wakes when idle (and at least how often under load) to retry a
/// failed log, check its files and write the summaries of ended refusal windows.
const TICK: Duration = Duration::from_secs(1);

enum Msg {
    Record(Box<AuditRecord>),
    Shutdown(oneshot::Sender<Result<(), AuditError>>),
}

/// What the handles and the writer thread share.
#[derive(Debug)]
struct Shared {
    on_failure: OnFailure,
    /// The writer's word: nothing lost since the last gap record.
    healthy: AtomicBool,
    dropped: AtomicU64,
    /// Records dropped because the queue was full, not yet handed to the writer.
    queue_lost: Mutex<GapTally>,
    sampler: Option<Sampler>,
}

/// Cloneable handle to a background writer thread. [`Auditor::record`] never blocks: records
/// go through a bounded queue (16384 entries). A record that cannot be written (queue full,
/// write failed) is counted in [`Auditor::dropped`], logged (at the 1st, 2nd, 4th, 8th…
/// loss), and counted into a gap record the writer puts in the chain once writing works
/// again; with `on_failure = "refuse"`, [`Auditor::accepting`] says no meanwhile.
#[derive(Debug, Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    log_arguments: bool,
}

fn count_drop(dropped: &AtomicU64, why: &str) {
    let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(dropped = n, "audit record dropped ({why})");
    }
}

impl Auditor {
    /// Opens the log (errors surface here) and starts the writer thread.
    pub fn start(config: &AuditConfig) -> Result<Self, AuditError> {
        let log = AuditLog::open(config)?;
        Self::spawn(log, config, QUEUE_CAPACITY)
    }

    fn spawn(log: AuditLog, config: &AuditConfig, capacity: usize) -> Result<Self, AuditError> {
        let (auditor, writer) = Self::unstarted(log, config, capacity);
        writer.start(&config.file)?;
        Ok(auditor)
    }

    /// A handle and its writer, not yet running.
    fn unstarted(log: AuditLog, config: &AuditConfig, capacity: usize) -> (Self, PendingWriter) {
        let (tx, rx) = mpsc::channel::<Msg>(capacity);
        let shared = Arc::new(Shared {
            on_failure: config.on_failure,
            healthy: AtomicBool::new(log.is_healthy()),
            dropped: AtomicU64::new(0),
            queue_lost: Mutex::default(),
            sampler: Sampler::new(config),
        });
        let writer = Writer {
            log,
            shared: shared.clone(),
        };
        let auditor = Self {
            tx,
            shared,
            log_arguments: config.log_arguments,
        };
        (auditor, PendingWriter { writer, rx })
    }

    /// Queues a record without blocking (or counts it into its refusal summary).
    pub fn record(&self, record: AuditRecord) {
        let record = match &self.shared.sampler {
            Some(sampler) => match sampler.admit(record) {
                Some(r) => r,
                None => return,
            },
            None => record,
        };
        let lost = records_in(&record);
        match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                count_drop(&self.shared.dropped, "queue full");
                lock(&self.shared.queue_lost).add(lost, "queue full", SystemTime::now());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                count_drop(&self.shared.dropped, "writer stopped")
            }
        }
    }

    /// Whether records are being written: nothing lost since the last gap record, and room
    /// in the queue. Two atomic loads: cheap enough for every request.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
            && self.tx.capacity() > 0
            && !self.tx.is_closed()
    }

    /// Whether the edge may serve a request now: always with `on_failure = "continue"`, only
    /// while [`Auditor::healthy`] with `"refuse"`.
    pub fn accepting(&self) -> bool {
        self.shared.on_failure == OnFailure::Continue || self.healthy()
    }

    /// Records not written in full: queue full, writer stopped, or write failed.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// What goes into [`AuditRecord::arguments`]: the redacted arguments when
    /// `log_arguments` is on, else `None`.
    pub fn arguments(&self, args: Option<&Value>) -> Option<Value> {
        if self.log_arguments {
            args.and_then(redact_arguments)
        } else {
            None
        }
    }

    /// Writes everything queued before this call (and the summaries of open refusal
    /// windows), syncs, writes a final checkpoint and stops the writer. Records sent by other
    /// clones afterwards are counted as dropped.
    pub async fn shutdown(self) -> Result<(), AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Shutdown(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }
}

/// The writer thread's state.
struct Writer {
    log: AuditLog,
    shared: Arc<Shared>,
}

/// A writer and its queue, before its thread runs.
struct PendingWriter {
    writer: Writer,
    rx: mpsc::Receiver<Msg>,
}

impl PendingWriter {
    /// Starts the writer thread (with its own small runtime for the idle timer).
    fn start(self, file: &Path) -> Result<(), AuditError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(io_err("start the writer thread for", file))?;
        let Self { writer, rx } = self;
        std::thread::Builder::new()
            .name("underpass-audit".into())
            .spawn(move || writer.run(rx, &runtime))
            .map_err(io_err("start the writer thread for", file))?;
        Ok(())
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>, runtime: &tokio::runtime::Runtime) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Idle: make the checkpoint current before waiting.
                    if self.log.is_healthy() {
                        if let Err(e) = self.log.checkpoint() {
                            self.log.checkpoint_failed(&e.to_string());
                        }
                    }
                    let wait = next_tick.saturating_duration_since(Instant::now());
                    // (The timer must be made inside the runtime.)
                    let next =
                        runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
                    match next {
                        Ok(Some(m)) => Some(m),
                        Ok(None) => break,
                        Err(_) => None,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            if Instant::now() >= next_tick {
                self.tick(false);
                next_tick = Instant::now() + TICK;
            }
            match msg {
                None => {}
                Some(Msg::Record(rec)) => self.write(&rec),
                Some(Msg::Shutdown(reply)) => {
                    // Refuse further records (senders see them as dropped), write what is
                    // already queued, then seal.
                    rx.close();
                    while let Ok(msg) = rx.try_recv() {
                        match msg {
                            Msg::Record(rec) => self.write(&rec),
                            Msg::Shutdown(other) => {
                                let _ = other.send(Ok(()));
                            }
                        }
                    }
                    let _ = reply.send(self.finish());
                    return;
                }
            }
        }
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }

    fn take_queue_losses(&mut self) {
        let tally = std::mem::take(&mut *lock(&self.shared.queue_lost));
        self.log.note_lost(tally);
    }

    fn write(&mut self, rec: &AuditRecord) {
        let was_healthy = self.log.is_healthy();
        self.take_queue_losses();
        if let Err(e) = self.log.append(rec) {
            count_drop(&self.shared.dropped, "write failed");
            if was_healthy {
                let refusing = if self.shared.on_failure == OnFailure::Refuse {
                    "; MCP requests are refused (503) until it works again (on_failure = \"refuse\")"
                } else {
                    "; requests are still served (on_failure = \"continue\")"
                };
                tracing::error!(
                    "{e}: records are counted into a gap record until writing works again{refusing}"
                );
            }
        }
        self.shared
            .healthy
            .store(self.log.is_healthy(), Ordering::Relaxed);
    }

    fn tick(&mut self, all: bool) {
        if let Some(sampler) = &self.shared.sampler {
            for summary in sampler.due(all) {
                self.write(&summary);
            }
        }
        self.take_queue_losses();
        if let Err(e) = self.log.recover() {
            tracing::debug!("audit log still not writable: {e}");
        }
        self.shared
            .healthy
            .store(self.log.is_healthy(), Ordering::Relaxed);
    }

    fn finish(&mut self) -> Result<(), AuditError> {
        self.tick(true);
        if !self.log.is_healthy() {
            tracing::error!(
                lost = self.log.lost(),
                "audit: {} record(s) were lost and the gap could not be recorded before shutdown",
                self.log.lost()
            );
        }
        self.log.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// A log that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Log files checked (rotated ones and the current one).
    pub files: usize,
    /// Seq of the last record.
    pub last_seq: Option<u64>,
    /// Hash of the last record ([`GENESIS`] for an empty log).
    pub last_hash: String,
    /// Valid checkpoints seen.
    pub checkpoints: u64,
    /// Records after the newest checkpoint (not covered against truncation; normally 0, or
    /// a few after a crash).
    pub unsigned_tail: u64,
    /// Seq of the first record checked: 0, unless retention (`max_files`) deleted the oldest
    /// files, as a line in the chain attests.
    pub first_seq: u64,
    /// The gap records in the chain: records the edge could not write.
    pub gaps: Vec<GapReport>,
}

impl VerifyReport {
    /// Records the gap records say were lost.
    pub fn lost(&self) -> u64 {
        self.gaps.iter().map(|g| g.lost).sum()
    }
}

/// One gap record, as `verify` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapReport {
    /// Seq of the gap record.
    pub seq: u64,
    /// Records lost.
    pub lost: u64,
    /// When the first was lost.
    pub from: String,
    /// When the last was lost.
    pub to: String,
    /// Why.
    pub reasons: Vec<String>,
}

/// What [`verify_with`] checks against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Expected checkpoint public key file; default `<file>.pub`.
    pub key: Option<PathBuf>,
    /// Checkpoints to check against; default `<file>.checkpoints`. A copy kept elsewhere
    /// (`checkpoint_copy`, syslog) catches a log cut short together with its checkpoints.
    pub checkpoints: Option<PathBuf>,
    /// The log must reach at least this seq (e.g. the last seq an auditor saw before).
    pub expect_min_seq: Option<u64>,
}

/// How a log failed verification. Line numbers count from 1.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The expected public key could not be loaded.
    #[error("cannot use public key {}: {reason}", file.display())]
    Key {
        /// The key file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A log file is missing (a gap in the rotation numbers, or no current file).
    #[error("{} is missing: log files were deleted", file.display())]
    MissingFile {
        /// The file that should exist.
        file: PathBuf,
    },
    /// A line is not a sealed record.
    #[error("{}:{line}: malformed record: {reason}", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A line's hash does not match its contents.
    #[error("{}:{line}: hash mismatch: the record was edited", file.display())]
    BadHash {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
    },
    /// A line carries the wrong seq.
    #[error(
        "{}:{line}: expected seq {expected}, found {found}: {}",
        file.display(),
        if found > expected {
            "records were removed (or an earlier log file is missing)"
        } else {
            "records were inserted, duplicated or reordered"
        }
    )]
    SeqMismatch {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// The seq that should be there.
        expected: u64,
        /// The seq that is there.
        found: u64,
    },
    /// A line's `prev` is not the previous line's hash.
    #[error(
        "{}:{line}: prev does not match the previous record's hash: records were removed, \
         inserted or reordered",
        file.display()
    )]
    BrokenChain {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
    },
    /// A signed checkpoint vouches for a record the log no longer has.
    #[error(
        "{}:{line}: log truncated: it ends at seq {} but this checkpoint vouches for seq \
         {checkpoint_seq}",
        file.display(),
        last_seq.map_or_else(|| "none (empty)".to_owned(), |s| s.to_string())
    )]
    Truncated {
        /// The checkpoints file.
        file: PathBuf,
        /// The checkpoint's line.
        line: u64,
        /// The last seq in the log.
        last_seq: Option<u64>,
        /// The seq the checkpoint vouches for.
        checkpoint_seq: u64,
    },
    /// A signed checkpoint names a different hash for a seq: the chain was rewritten.
    #[error(
        "{}:{line}: checkpoint for seq {seq} does not match the log's record: the chain was \
         rewritten from there on",
        file.display()
    )]
    CheckpointMismatch {
        /// The checkpoints file.
        file: PathBuf,
        /// The checkpoint's line.
        line: u64,
        /// The seq concerned.
        seq: u64,
    },
    /// A checkpoint's signature does not verify: it was forged or altered.
    #[error("{}:{line}: bad checkpoint signature: forged or altered", file.display())]
    BadSignature {
        /// The checkpoints file.
        file: PathBuf,
        /// The checkpoint's line.
        line: u64,
    },
    /// A checkpoint is signed by a key other than the expected one.
    #[error("{}:{line}: checkpoint signed by an unexpected key", file.display())]
    WrongKey {
        /// The checkpoints file.
        file: PathBuf,
        /// The checkpoint's line.
        line: u64,
    },
    /// A checkpoint line is not a checkpoint, or checkpoints go backwards.
    #[error("{}:{line}: malformed checkpoint: {reason}", file.display())]
    BadCheckpoint {
        /// The checkpoints file.
        file: PathBuf,
        /// The checkpoint's line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log has records but no checkpoint at all, so truncation cannot be ruled out.
    #[error("{}: no checkpoint vouches for the log's {records} records", file.display())]
    NoCheckpoint {
        /// The checkpoints file.
        file: PathBuf,
        /// Records in the log.
        records: u64,
    },
    /// The log ends before the seq it was expected to reach (`--expect-min-seq`).
    #[error(
        "log truncated: it ends at seq {} but was expected to reach at least seq {expected}",
        last_seq.map_or_else(|| "none (empty)".to_owned(), |s| s.to_string())
    )]
    EndsTooEarly {
        /// The last seq in the log.
        last_seq: Option<u64>,
        /// The seq it should reach.
        expected: u64,
    },
    /// A line the writer added about the trail does not say what it should.
    #[error("{}:{line}: malformed {event} record: {reason}", file.display())]
    BadTrailRecord {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// Its `trail.event`.
        event: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads checkpoints one at a time, checking each one's key and signature.
struct CheckpointReader {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    line: u64,
    key: Vec<u8>,
    key_b64: String,
    last_seq: Option<u64>,
    peeked: Option<(u64, Checkpoint)>,
    valid: u64,
}

impl CheckpointReader {
    fn peek(&mut self) -> Result<Option<&(u64, Checkpoint)>, VerifyError> {
        if self.peeked.is_none() {
            self.peeked = self.read()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn advance(&mut self) {
        self.peeked = None;
    }

    fn read(&mut self) -> Result<Option<(u64, Checkpoint)>, VerifyError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| VerifyError::Io {
                file: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        let bad = |reason: String| VerifyError::BadCheckpoint {
            file: self.path.clone(),
            line,
            reason,
        };
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let cp: Checkpoint = serde_json::from_slice(&buf).map_err(|e| bad(e.to_string()))?;
        if cp.key != self.key_b64 {
            return Err(VerifyError::WrongKey {
                file: self.path.clone(),
                line,
            });
        }
        let sig = B64.decode(&cp.sig).map_err(|_| VerifyError::BadSignature {
            file: self.path.clone(),
            line,
        })?;
        let msg = checkpoint_message(cp.seq, &cp.hash, &cp.file, &cp.time);
        UnparsedPublicKey::new(&ED25519, &self.key)
            .verify(msg.as_bytes(), &sig)
            .map_err(|_| VerifyError::BadSignature {
                file: self.path.clone(),
                line,
            })?;
        if self.last_seq.is_some_and(|s| cp.seq < s) {
            return Err(bad(format!(
                "seq {} comes after a checkpoint for seq {}",
                cp.seq,
                self.last_seq.unwrap_or_default()
            )));
        }
        self.last_seq = Some(cp.seq);
        self.valid += 1;
        Ok(Some((line, cp)))
    }
}

/// Verifies the whole trail of `file`: every rotated file in order, then `file`, then the
/// checkpoints against the chain. With `expected_key` (a file holding the base64 public
/// key) checkpoints must be signed by that key; without it `<file>.pub` is trusted, which is
/// weaker: whoever can rewrite the log may have replaced it too. Verifying a log that is
/// being written may report a race on its newest line; verify stopped or rotated logs.
pub fn verify(file: &Path, expected_key: Option<&Path>) -> Result<VerifyReport, VerifyError> {
    verify_with(
        file,
        &VerifyOptions {
            key: expected_key.map(Path::to_path_buf),
            ..VerifyOptions::default()
        },
    )
}

/// [`verify`] with every option. The trail starts at seq 0 of `<file>.000001` (or of `file`
/// when nothing was rotated), or, when retention deleted the oldest files, at the first
/// record of the oldest file left, provided a retention line later in the chain names
/// exactly that record's seq and `prev`. Gap records do not fail verification: they are
/// listed in the report ([`VerifyReport::gaps`]), and the caller must say so.
pub fn verify_with(file: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let key_file = opts.key.clone().unwrap_or_else(|| sidecar(file, ".pub"));
    let key = read_public_key(&key_file).map_err(|reason| VerifyError::Key {
        file: key_file.clone(),
        reason,
    })?;

    let rotated = rotated_files(file).map_err(|source| VerifyError::Io {
        file: file.to_owned(),
        source,
    })?;
    let first_number = rotated.first().map(|(n, _)| *n);
    let mut files = Vec::with_capacity(rotated.len() + 1);
    for (i, (n, p)) in rotated.into_iter().enumerate() {
        let expected = first_number.unwrap_or(1) + i as u64;
        if n != expected {
            return Err(VerifyError::MissingFile {
                file: rotated_name(file, expected),
            });
        }
        files.push(p);
    }
    if !file.exists() {
        return Err(VerifyError::MissingFile {
            file: file.to_owned(),
        });
    }
    files.push(file.to_owned());

    // Retention deleted files before the oldest one left: start from its first record, and
    // require a retention line that vouches for exactly that start.
    let anchor: Option<(u64, String)> = match first_number {
        Some(n) if n > 1 => {
            let missing = || VerifyError::MissingFile {
                file: rotated_name(file, n - 1),
            };
            let first = read_first_line(&files[0])
                .map_err(|source| VerifyError::Io {
                    file: files[0].clone(),
                    source,
                })?
                .ok_or_else(missing)?;
            let head = parse_line(&first).map_err(|e| match e {
                LineError::BadHash => VerifyError::BadHash {
                    file: files[0].clone(),
                    line: 1,
                },
                LineError::Malformed(reason) => VerifyError::Malformed {
                    file: files[0].clone(),
                    line: 1,
                    reason,
                },
            })?;
            Some((head.seq, head.prev))
        }
        _ => None,
    };
    let mut anchor_vouched = false;

    let checkpoints_path = opts
        .checkpoints
        .clone()
        .unwrap_or_else(|| sidecar(file, ".checkpoints"));
    let reader = match File::open(&checkpoints_path) {
        Ok(f) => Some(BufReader::new(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(VerifyError::Io {
                file: checkpoints_path,
                source,
            })
        }
    };
    let mut cps = CheckpointReader {
        path: checkpoints_path.clone(),
        reader,
        line: 0,
        key_b64: B64.encode(&key),
        key,
        last_seq: None,
        peeked: None,
        valid: 0,
    };

    let (first_seq, mut prev) = anchor.clone().unwrap_or_else(|| (0, GENESIS.to_owned()));
    let mut expected_seq = first_seq;
    // Checkpoints of records retention deleted vouch for nothing that is left.
    while let Some((_, cp)) = cps.peek()? {
        if cp.seq >= first_seq {
            break;
        }
        cps.advance();
    }
    let mut last_checkpoint: Option<u64> = None;
    let mut gaps = Vec::new();
    for path in &files {
        let f = File::open(path).map_err(|source| VerifyError::Io {
            file: path.clone(),
            source,
        })?;
        let mut reader = BufReader::new(f);
        let mut buf = Vec::new();
        let mut line: u64 = 0;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| VerifyError::Io {
                    file: path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            line += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let head = parse_line(&buf).map_err(|e| match e {
                LineError::BadHash => VerifyError::BadHash {
                    file: path.clone(),
                    line,
                },
                LineError::Malformed(reason) => VerifyError::Malformed {
                    file: path.clone(),
                    line,
                    reason,
                },
            })?;
            if head.seq != expected_seq {
                return Err(VerifyError::SeqMismatch {
                    file: path.clone(),
                    line,
                    expected: expected_seq,
                    found: head.seq,
                });
            }
            if head.prev != prev {
                return Err(VerifyError::BrokenChain {
                    file: path.clone(),
                    line,
                });
            }
            while let Some((cp_line, cp)) = cps.peek()? {
                if cp.seq > head.seq {
                    break;
                }
                if cp.seq < head.seq || cp.hash != head.hash {
                    return Err(VerifyError::CheckpointMismatch {
                        file: checkpoints_path.clone(),
                        line: *cp_line,
                        seq: cp.seq,
                    });
                }
                last_checkpoint = Some(cp.seq);
                cps.advance();
            }
            if let Some(trail) = head.trail {
                let bad = |event: &str, reason: String| VerifyError::BadTrailRecord {
                    file: path.clone(),
                    line,
                    event: event.to_owned(),
                    reason,
                };
                let event = trail
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match event.as_str() {
                    "gap" | "retention" => {
                        match serde_json::from_value::<TrailEvent>(trail)
                            .map_err(|e| bad(&event, e.to_string()))?
                        {
                            TrailEvent::Gap {
                                lost,
                                from,
                                to,
                                reasons,
                            } => gaps.push(GapReport {
                                seq: head.seq,
                                lost,
                                from,
                                to,
                                reasons,
                            }),
                            TrailEvent::Retention { first_kept, .. } => {
                                if anchor.as_ref().is_some_and(|(seq, prev)| {
                                    first_kept.seq == *seq && first_kept.prev == *prev
                                }) {
                                    anchor_vouched = true;
                                }
                            }
                            TrailEvent::Reopened { .. } => {}
                        }
                    }
                    _ => {}
                }
            }
            expected_seq = head.seq + 1;
            prev = head.hash;
        }
    }

    if let (Some(n), false) = (first_number.filter(|n| *n > 1), anchor_vouched) {
        // Older files are gone and no retention line in the chain says they were deleted
        // by retention at exactly this point.
        return Err(VerifyError::MissingFile {
            file: rotated_name(file, n - 1),
        });
    }
    let last_seq = expected_seq
        .checked_sub(1)
        .filter(|_| expected_seq > first_seq);
    if let Some((line, cp)) = cps.peek()? {
        return Err(VerifyError::Truncated {
            file: checkpoints_path,
            line: *line,
            last_seq,
            checkpoint_seq: cp.seq,
        });
    }
    let records = expected_seq - first_seq;
    if records > 0 && last_checkpoint.is_none() {
        return Err(VerifyError::NoCheckpoint {
            file: checkpoints_path,
            records,
        });
    }
    if let Some(min) = opts.expect_min_seq {
        if last_seq.is_none_or(|s| s < min) {
            return Err(VerifyError::EndsTooEarly {
                last_seq,
                expected: min,
            });
        }
    }
    Ok(VerifyReport {
        records,
        files: files.len(),
        last_seq,
        last_hash: prev,
        checkpoints: cps.valid,
        unsigned_tail: last_checkpoint.map_or(records, |c| expected_seq - c - 1),
        first_seq,
        gaps,
    })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "underpass-audit-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }
        fn log(&self) -> PathBuf {
            self.0.join("audit.jsonl")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            principal: Some("client:alice".into()),
            auth_method: Some(AuthMethod::Cert),
            service: Some("everything".into()),
            mcp_method: Some("tools/call".into()),
            target: Some(format!("tool-{i}")),
            decision: Some(Decision::Allow),
            rule: Some("allow[0]".into()),
            outcome: "ok".into(),
            http_status: Some(200),
            latency_us: Some(1234),
            bytes_in: Some(100),
            bytes_out: Some(200),
            ..Default::default()
        }
    }

    fn write_log(config: &AuditConfig, n: u64) {
        let mut log = AuditLog::open(config).expect("open");
        for i in 0..n {
            log.append(&record(i)).expect("append");
        }
        log.flush().expect("flush");
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        fs::write(path, text).expect("write");
    }

    fn setup(name: &str, n: u64) -> (TempDir, AuditConfig) {
        let dir = TempDir::new(name);
        let config = AuditConfig::new(dir.log());
        write_log(&config, n);
        (dir, config)
    }

    #[test]
    fn formats_rfc3339() {
        let at = |s: u64, ms: u64| {
            format_time(UNIX_EPOCH + std::time::Duration::from_millis(s * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: AuditConfig = toml::from_str("file = \"a.jsonl\"").expect("parse");
        assert_eq!(c, AuditConfig::new("a.jsonl"));
        assert!(toml::from_str::<AuditConfig>("file = \"a\"\nbogus = 1").is_err());
        assert!(toml::from_str::<AuditConfig>("max_bytes = 1").is_err());
    }

    #[test]
    fn line_format() {
        let (dir, _) = setup("format", 2);
        let l = lines(&dir.log());
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("{\"hash\":\""));
        let v: Value = serde_json::from_str(&l[0]).expect("json");
        assert_eq!(v["seq"], 0);
        assert_eq!(v["prev"], GENESIS);
        assert_eq!(v["auth_method"], "cert");
        assert_eq!(v["decision"], "allow");
        assert!(v.get("arguments").is_none());
        assert!(v.get("jsonrpc_error").is_none());
        assert_eq!(v["time"].as_str().map(str::len), Some(24));
        let v1: Value = serde_json::from_str(&l[1]).expect("json");
        assert_eq!(v1["prev"], v["hash"]);
        assert!(dir.log().with_extension("jsonl.pub").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(sidecar(&dir.log(), ".key"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn clean_log_verifies() {
        let (dir, _) = setup("clean", 10);
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!(r.records, 10);
        assert_eq!(r.files, 1);
        assert_eq!(r.last_seq, Some(9));
        assert_eq!(r.checkpoints, 10);
        assert_eq!(r.unsigned_tail, 0);
        let pinned = dir.0.join("pinned.pub");
        fs::copy(sidecar(&dir.log(), ".pub"), &pinned).expect("copy");
        verify(&dir.log(), Some(&pinned)).expect("verify pinned");
    }

    #[test]
    fn empty_log_verifies() {
        let (dir, _) = setup("empty", 0);
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!(r.records, 0);
        assert_eq!(r.last_hash, GENESIS);
    }

    fn rotated_setup(name: &str) -> (TempDir, AuditConfig) {
        let dir = TempDir::new(name);
        let mut config = AuditConfig::new(dir.log());
        let line_len = {
            let (d, c) = setup("probe", 1);
            let _ = c;
            fs::metadata(d.log()).expect("probe").len()
        };
        config.max_bytes = line_len * 5 + 10; // 5 lines per file
        write_log(&config, 18); // 5 + 5 + 5 + 3: three rotations
        (dir, config)
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let (dir, config) = rotated_setup("rotate");
        for n in 1..=3 {
            assert_eq!(lines(&rotated_name(&dir.log(), n)).len(), 5);
        }
        assert!(!rotated_name(&dir.log(), 4).exists());
        assert_eq!(lines(&dir.log()).len(), 3);
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.files, r.last_seq), (18, 4, Some(17)));
        // Reopen continues the rotation numbering and the chain.
        write_log(&config, 5);
        assert!(rotated_name(&dir.log(), 4).exists());
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.files), (23, 5));
    }

    #[test]
    fn edited_field_is_detected() {
        let (dir, _) = setup("edit", 5);
        let mut l = lines(&dir.log());
        l[2] = l[2].replace("client:alice", "client:mallory");
        write_lines(&dir.log(), &l);
        match verify(&dir.log(), None) {
            Err(VerifyError::BadHash { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deleted_line_is_detected() {
        let (dir, _) = setup("delete", 5);
        let mut l = lines(&dir.log());
        l.remove(2);
        write_lines(&dir.log(), &l);
        match verify(&dir.log(), None) {
            Err(VerifyError::SeqMismatch {
                line: 3,
                expected: 2,
                found: 3,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A correctly sealed line with the given seq and prev.
    fn forge(seq: u64, prev: &str) -> String {
        #[derive(Serialize)]
        struct Chained<'a> {
            seq: u64,
            prev: &'a str,
            #[serde(flatten)]
            record: &'a AuditRecord,
        }
        let mut rec = record(99);
        rec.time = now();
        rec.principal = Some("client:mallory".into());
        let body = serde_json::to_string(&Chained {
            seq,
            prev,
            record: &rec,
        })
        .expect("json");
        let (line, _) = seal(prev, &body);
        line.trim_end().to_owned()
    }

    fn hash_of(line: &str) -> String {
        let v: Value = serde_json::from_str(line).expect("json");
        v["hash"].as_str().expect("hash").to_owned()
    }

    #[test]
    fn inserted_line_is_detected() {
        // A correctly sealed forged line: the checkpoint for its seq catches it at once…
        let (dir, _) = setup("insert", 5);
        let mut l = lines(&dir.log());
        let forged = forge(2, &hash_of(&l[1]));
        l.insert(2, forged);
        write_lines(&dir.log(), &l);
        match verify(&dir.log(), None) {
            Err(VerifyError::CheckpointMismatch {
                seq: 2, line: 3, ..
            }) => {}
            other => panic!("{other:?}"),
        }

        // …and without a checkpoint there, the original record after it does not chain.
        let dir = TempDir::new("insert-nocp");
        let mut config = AuditConfig::new(dir.log());
        config.checkpoint_every = 0;
        write_log(&config, 5);
        let mut l = lines(&dir.log());
        let forged = forge(2, &hash_of(&l[1]));
        l.insert(2, forged);
        write_lines(&dir.log(), &l);
        match verify(&dir.log(), None) {
            Err(VerifyError::SeqMismatch {
                line: 4,
                expected: 3,
                found: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rewritten_chain_is_caught_by_checkpoints() {
        // Delete line 3 and re-seal everything after it: internally consistent, but the
        // signed checkpoints remember the original hashes.
        let (dir, _) = setup("rewrite", 5);
        let l = lines(&dir.log());
        let mut out = vec![l[0].clone(), l[1].clone()];
        let mut prev = hash_of(&l[1]);
        for seq in 2..4 {
            let f = forge(seq, &prev);
            prev = hash_of(&f);
            out.push(f);
        }
        write_lines(&dir.log(), &out);
        match verify(&dir.log(), None) {
            Err(VerifyError::CheckpointMismatch {
                seq: 2, line: 3, ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn swapped_lines_are_detected() {
        let (dir, _) = setup("swap", 5);
        let mut l = lines(&dir.log());
        l.swap(1, 2);
        write_lines(&dir.log(), &l);
        match verify(&dir.log(), None) {
            Err(VerifyError::SeqMismatch {
                line: 2,
                expected: 1,
                found: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncation_is_detected() {
        let (dir, config) = setup("truncate", 5);
        let l = lines(&dir.log());
        write_lines(&dir.log(), &l[..3]);
        match verify(&dir.log(), None) {
            Err(VerifyError::Truncated {
                last_seq: Some(2),
                checkpoint_seq: 3,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // And the writer refuses to fork the chain from there.
        match AuditLog::open(&config) {
            Err(AuditError::BehindCheckpoint {
                log_seq: Some(2),
                checkpoint_seq: 4,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // Emptying the log entirely is truncation too.
        write_lines(&dir.log(), &[]);
        match verify(&dir.log(), None) {
            Err(VerifyError::Truncated { last_seq: None, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deleted_rotated_file_is_detected() {
        let (dir, _) = rotated_setup("rotdel-mid");
        fs::remove_file(rotated_name(&dir.log(), 2)).expect("rm");
        match verify(&dir.log(), None) {
            Err(VerifyError::MissingFile { file }) => {
                assert_eq!(file, rotated_name(&dir.log(), 2))
            }
            other => panic!("{other:?}"),
        }

        let (dir, _) = rotated_setup("rotdel-last");
        fs::remove_file(rotated_name(&dir.log(), 3)).expect("rm");
        match verify(&dir.log(), None) {
            Err(VerifyError::SeqMismatch {
                line: 1,
                expected: 10,
                found: 15,
                file,
            }) => assert_eq!(file, dir.log()),
            other => panic!("{other:?}"),
        }

        let (dir, _) = rotated_setup("rotdel-cur");
        fs::remove_file(dir.log()).expect("rm");
        assert!(matches!(
            verify(&dir.log(), None),
            Err(VerifyError::MissingFile { .. })
        ));

        // The oldest file: no retention line vouches for the new start.
        let (dir, _) = rotated_setup("rotdel-first");
        fs::remove_file(rotated_name(&dir.log(), 1)).expect("rm");
        match verify(&dir.log(), None) {
            Err(VerifyError::MissingFile { file }) => {
                assert_eq!(file, rotated_name(&dir.log(), 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forged_checkpoint_is_detected() {
        let (dir, _) = setup("cpforge", 5);
        let cp_path = sidecar(&dir.log(), ".checkpoints");
        let mut cps = lines(&cp_path);
        let mut cp: Checkpoint = serde_json::from_str(&cps[4]).expect("cp");
        cp.seq = 9; // claim more records than were written
        cps[4] = serde_json::to_string(&cp).expect("json");
        write_lines(&cp_path, &cps);
        match verify(&dir.log(), None) {
            Err(VerifyError::BadSignature { line: 5, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replaced_key_is_caught_only_when_pinned() {
        let (dir, _) = setup("cpkey", 3);
        let pinned = dir.0.join("pinned.pub");
        fs::copy(sidecar(&dir.log(), ".pub"), &pinned).expect("copy");
        // The attacker re-signs the checkpoints (say, after truncating) with their own key.
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("gen");
        let evil = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key");
        let evil_pub = B64.encode(evil.public_key().as_ref());
        let cp_path = sidecar(&dir.log(), ".checkpoints");
        let cps: Vec<String> = lines(&cp_path)
            .iter()
            .map(|l| {
                let mut cp: Checkpoint = serde_json::from_str(l).expect("cp");
                let msg = checkpoint_message(cp.seq, &cp.hash, &cp.file, &cp.time);
                cp.sig = B64.encode(evil.sign(msg.as_bytes()).as_ref());
                cp.key = evil_pub.clone();
                serde_json::to_string(&cp).expect("json")
            })
            .collect();
        write_lines(&cp_path, &cps);
        // Checkpoints no longer match .pub…
        assert!(matches!(
            verify(&dir.log(), None),
            Err(VerifyError::WrongKey { line: 1, .. })
        ));
        // …unless .pub is replaced too: then only a pinned key catches it.
        fs::write(sidecar(&dir.log(), ".pub"), &evil_pub).expect("write");
        verify(&dir.log(), None).expect("unpinned trusts .pub");
        assert!(matches!(
            verify(&dir.log(), Some(&pinned)),
            Err(VerifyError::WrongKey { line: 1, .. })
        ));
    }

    #[test]
    fn missing_checkpoints_are_detected() {
        let (dir, _) = setup("nocp", 3);
        fs::remove_file(sidecar(&dir.log(), ".checkpoints")).expect("rm");
        assert!(matches!(
            verify(&dir.log(), None),
            Err(VerifyError::NoCheckpoint { records: 3, .. })
        ));
    }

    #[test]
    fn reopen_resumes_the_chain() {
        let (dir, config) = setup("resume", 3);
        let before = lines(&dir.log());
        write_log(&config, 2);
        let after = lines(&dir.log());
        assert_eq!(after.len(), 5);
        assert_eq!(after[..3], before[..]);
        let v: Value = serde_json::from_str(&after[3]).expect("json");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["prev"].as_str(), Some(hash_of(&after[2]).as_str()));
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!(r.records, 5);
    }

    #[test]
    fn damaged_tail_refuses_to_start() {
        let (dir, config) = setup("tail", 3);
        let mut l = lines(&dir.log());
        l[2] = l[2].replace("tool-2", "tool-X");
        write_lines(&dir.log(), &l);
        assert!(matches!(
            AuditLog::open(&config),
            Err(AuditError::CorruptTail { .. })
        ));

        let (dir, config) = setup("partial", 3);
        let text = fs::read_to_string(dir.log()).expect("read");
        fs::write(dir.log(), &text[..text.len() - 10]).expect("write");
        let err = AuditLog::open(&config).expect_err("must refuse");
        assert!(err.to_string().contains("no final newline"), "{err}");
    }

    #[test]
    fn other_key_refuses_to_start() {
        let (dir, mut config) = setup("otherkey", 1);
        config.signing_key = Some(dir.0.join("other.key"));
        assert!(matches!(
            AuditLog::open(&config),
            Err(AuditError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn checkpoint_every_n() {
        let dir = TempDir::new("every");
        let mut config = AuditConfig::new(dir.log());
        config.checkpoint_every = 4;
        let mut log = AuditLog::open(&config).expect("open");
        for i in 0..10 {
            log.append(&record(i)).expect("append");
        }
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.checkpoints, r.unsigned_tail), (2, 2));
        log.flush().expect("flush");
        log.flush().expect("flush twice");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.checkpoints, r.unsigned_tail), (3, 0));
    }

    #[tokio::test]
    async fn auditor_writes_everything_by_shutdown() {
        let dir = TempDir::new("auditor");
        let mut config = AuditConfig::new(dir.log());
        config.checkpoint_every = 0;
        let auditor = Auditor::start(&config).expect("start");
        let other = auditor.clone();
        for i in 0..200 {
            other.record(record(i));
        }
        assert_eq!(auditor.dropped(), 0);
        auditor.shutdown().await.expect("shutdown");
        other.record(record(1000));
        assert_eq!(other.dropped(), 1);
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.unsigned_tail), (200, 0));
    }

    /// Polls `cond` every 10 ms, for at most 10 s.
    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{what}: not within 10 s");
    }

    #[test]
    fn failed_writes_leave_a_gap_record_that_verify_reports() {
        let dir = TempDir::new("gap");
        let config = AuditConfig::new(dir.log());
        let mut log = AuditLog::open(&config).expect("open");
        let fail = log.fail_writes.clone();
        for i in 0..2 {
            log.append(&record(i)).expect("append");
        }
        fail.store(true, Ordering::Relaxed);
        for i in 2..5 {
            assert!(log.append(&record(i)).is_err());
        }
        assert!(!log.is_healthy());
        assert_eq!(log.lost(), 3);
        assert_eq!(lines(&dir.log()).len(), 2, "no partial line is left");
        // Still failing: the gap record cannot be written either.
        assert!(log.recover().is_err());
        assert_eq!(log.lost(), 3);

        fail.store(false, Ordering::Relaxed);
        log.append(&record(5)).expect("append");
        assert!(log.is_healthy());
        log.flush().expect("flush");
        let l = lines(&dir.log());
        assert_eq!(l.len(), 4);
        let gap: Value = serde_json::from_str(&l[2]).expect("json");
        assert_eq!(gap["outcome"], "audit_gap");
        assert_eq!(gap["trail"]["event"], "gap");
        assert_eq!(gap["trail"]["lost"], 3);
        assert!(gap["trail"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("no space left")));

        let r = verify(&dir.log(), None).expect("the chain itself is intact");
        assert_eq!(r.records, 4);
        assert_eq!(r.lost(), 3);
        assert_eq!(r.gaps.len(), 1);
        assert_eq!(r.gaps[0].seq, 2);
    }

    #[test]
    fn recover_writes_the_gap_without_waiting_for_a_request() {
        let dir = TempDir::new("recover");
        let mut log = AuditLog::open(&AuditConfig::new(dir.log())).expect("open");
        log.fail_writes.store(true, Ordering::Relaxed);
        assert!(log.append(&record(0)).is_err());
        log.fail_writes.store(false, Ordering::Relaxed);
        log.recover().expect("recover");
        assert!(log.is_healthy());
        log.flush().expect("flush");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.lost()), (1, 1));
    }

    #[tokio::test]
    async fn refuse_mode_stops_accepting_while_writes_fail_and_recovers_by_itself() {
        let dir = TempDir::new("refuse");
        let config = AuditConfig::new(dir.log());
        assert_eq!(config.on_failure, OnFailure::Refuse, "the default");
        let log = AuditLog::open(&config).expect("open");
        let fail = log.fail_writes.clone();
        let auditor = Auditor::spawn(log, &config, 64).expect("start");
        assert!(auditor.accepting());
        auditor.record(record(0));
        wait_until("record 0 written", || lines(&dir.log()).len() == 1);
        fail.store(true, Ordering::Relaxed);
        auditor.record(record(1));
        wait_until("refusing", || !auditor.accepting());
        assert!(!auditor.healthy());
        fail.store(false, Ordering::Relaxed);
        // No request needed: the writer retries on its own.
        wait_until("accepting again", || auditor.accepting());
        auditor.record(record(2));
        auditor.shutdown().await.expect("shutdown");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.lost()), (3, 1), "record 0, the gap, record 2");
    }

    #[tokio::test]
    async fn continue_mode_keeps_accepting_and_still_records_the_gap() {
        let dir = TempDir::new("continue");
        let mut config = AuditConfig::new(dir.log());
        config.on_failure = OnFailure::Continue;
        let log = AuditLog::open(&config).expect("open");
        let fail = log.fail_writes.clone();
        let auditor = Auditor::spawn(log, &config, 64).expect("start");
        fail.store(true, Ordering::Relaxed);
        auditor.record(record(0));
        auditor.record(record(1));
        wait_until("both lost", || auditor.dropped() == 2);
        assert!(!auditor.healthy());
        assert!(auditor.accepting(), "continue keeps serving");
        fail.store(false, Ordering::Relaxed);
        auditor.record(record(2));
        auditor.shutdown().await.expect("shutdown");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.lost()), (2, 2));
    }

    #[tokio::test]
    async fn records_dropped_from_a_full_queue_count_into_the_gap() {
        let dir = TempDir::new("queue");
        let config = AuditConfig::new(dir.log());
        let log = AuditLog::open(&config).expect("open");
        let (auditor, writer) = Auditor::unstarted(log, &config, 2);
        for i in 0..5 {
            auditor.record(record(i));
        }
        assert_eq!(auditor.dropped(), 3);
        assert!(!auditor.accepting(), "refuse: the queue is full");
        writer.start(&config.file).expect("start");
        wait_until("queue drained", || auditor.accepting());
        auditor.shutdown().await.expect("shutdown");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!(
            (r.records, r.lost()),
            (3, 3),
            "the gap, then the two queued"
        );
        assert!(r.gaps[0].reasons.iter().any(|x| x == "queue full"));
    }

    #[test]
    fn a_removed_or_renamed_log_is_reopened_and_the_chain_goes_on() {
        let dir = TempDir::new("reopen");
        let mut log = AuditLog::open(&AuditConfig::new(dir.log())).expect("open");
        log.append(&record(0)).expect("append");
        log.append(&record(1)).expect("append");
        fs::remove_file(dir.log()).expect("rm");
        log.next_identity_check = Instant::now();
        log.append(&record(2)).expect("append");
        let l = lines(&dir.log());
        assert_eq!(l.len(), 2, "the note, then the record");
        let note: Value = serde_json::from_str(&l[0]).expect("json");
        assert_eq!(note["outcome"], "audit_reopened");
        assert_eq!(note["seq"], 2);
        assert_eq!(note["trail"]["last_seq_before"], 1);
        assert!(note["trail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("removed")));
        // The deleted records are missing, and verify says so.
        log.flush().expect("flush");
        match verify(&dir.log(), None) {
            Err(VerifyError::SeqMismatch {
                line: 1,
                expected: 0,
                found: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }

        // Renamed away: a new file, the chain goes on.
        fs::rename(dir.log(), dir.0.join("audit.jsonl-old")).expect("mv");
        log.next_identity_check = Instant::now();
        log.append(&record(3)).expect("append");
        let l = lines(&dir.log());
        let note: Value = serde_json::from_str(&l[0]).expect("json");
        assert_eq!(note["seq"], 4);
        assert!(note["trail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no longer at its path")));

        // Replaced by another file (logrotate's `create`): the edge writes to the new one.
        fs::rename(dir.log(), dir.0.join("audit.jsonl-older")).expect("mv");
        fs::write(dir.log(), "").expect("create");
        log.next_identity_check = Instant::now();
        log.append(&record(5)).expect("append");
        let l = lines(&dir.log());
        assert_eq!(l.len(), 2);
        let note: Value = serde_json::from_str(&l[0]).expect("json");
        assert!(note["trail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replaced by another file")));
        // Within the second, nothing is checked.
        fs::remove_file(dir.log()).expect("rm");
        log.next_identity_check = Instant::now() + Duration::from_secs(60);
        log.append(&record(4)).expect("append");
        assert!(!dir.log().exists());
    }

    #[test]
    fn retention_deletes_the_oldest_files_and_the_rest_still_verify() {
        let dir = TempDir::new("retention");
        let mut config = AuditConfig::new(dir.log());
        let line_len = {
            let (d, _) = setup("probe-ret", 1);
            fs::metadata(d.log()).expect("probe").len()
        };
        config.max_bytes = line_len * 3 + 10;
        config.max_files = 2;
        write_log(&config, 30);
        let rotated = rotated_files(&dir.log()).expect("list");
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(rotated[0].0 > 1);
        let r = verify(&dir.log(), None).expect("the kept files verify");
        assert!(r.first_seq > 0);
        assert_eq!(r.last_seq, Some(r.first_seq + r.records - 1));
        // Checkpoints of deleted records were dropped.
        let cps = lines(&sidecar(&dir.log(), ".checkpoints"));
        let first_cp: Checkpoint = serde_json::from_str(&cps[0]).expect("cp");
        assert!(first_cp.seq >= r.first_seq);
        // The retention line names exactly where the kept trail starts.
        let all: Vec<Value> = rotated
            .iter()
            .map(|(_, p)| p.clone())
            .chain([dir.log()])
            .flat_map(|p| lines(&p))
            .map(|l| serde_json::from_str(&l).expect("json"))
            .collect();
        let kept_name = rotated[0]
            .1
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(all.iter().any(|v| v["trail"]["event"] == "retention"
            && v["trail"]["first_kept"]["seq"] == r.first_seq
            && v["trail"]["first_kept"]["file"] == kept_name.as_str()));

        // Deleting one more than retention did is caught.
        fs::remove_file(&rotated[0].1).expect("rm");
        match verify(&dir.log(), None) {
            Err(VerifyError::MissingFile { file }) => assert_eq!(file, rotated[0].1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_are_summarized_per_source_and_outcome() {
        let mut config = AuditConfig::new("unused");
        config.refusals_per_source = 2;
        let sampler = Sampler::new(&config).expect("on");
        let refusal = |source: &str| AuditRecord {
            source: Some(source.into()),
            outcome: "unauthenticated".into(),
            http_status: Some(401),
            ..AuditRecord::default()
        };
        let passed = (0..5)
            .filter(|_| sampler.admit(refusal("10.0.0.1")).is_some())
            .count();
        assert_eq!(passed, 2);
        assert!(
            sampler.admit(refusal("10.0.0.2")).is_some(),
            "another source"
        );
        // Allowed calls, and errors after policy allowed, are never summarized.
        for _ in 0..5 {
            assert!(sampler.admit(record(0)).is_some());
            let mut late = record(0);
            late.http_status = Some(404);
            late.outcome = "not_found".into();
            assert!(sampler.admit(late).is_some());
        }
        assert!(sampler.due(false).is_empty(), "the window is still open");
        let due = sampler.due(true);
        assert_eq!(due.len(), 1);
        let s = &due[0];
        assert_eq!(s.source.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.outcome, "unauthenticated");
        assert_eq!(s.http_status, Some(401));
        assert_eq!(s.aggregate.as_ref().map(|a| a.count), Some(3));
        assert!(sampler.due(true).is_empty(), "summaries are written once");

        // Many sources share one key once the table is full.
        for i in 0..MAX_SAMPLED_KEYS + 10 {
            sampler.admit(refusal(&format!("src-{i}")));
        }
        assert!(lock(&sampler.state).windows.len() <= MAX_SAMPLED_KEYS + 1);
        assert!(lock(&sampler.state)
            .windows
            .keys()
            .any(|k| k.source.as_deref() == Some("*")));

        config.refusals_per_source = 0;
        assert!(Sampler::new(&config).is_none(), "0 = every refusal in full");
    }

    #[test]
    fn checkpoints_are_shipped_and_a_copy_catches_truncation() {
        let dir = TempDir::new("ship");
        let socket_path = dir.0.join("syslog.sock");
        let syslog = UnixDatagram::bind(&socket_path).expect("bind");
        syslog.set_nonblocking(true).expect("nonblocking");
        let mut config = AuditConfig::new(dir.log());
        config.checkpoint_copy = Some(dir.0.join("copy.jsonl"));
        config.checkpoint_syslog = Some(socket_path.clone());
        write_log(&config, 4);
        let local = sidecar(&dir.log(), ".checkpoints");
        let copy = dir.0.join("copy.jsonl");
        assert_eq!(lines(&copy), lines(&local));
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = syslog.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got.len(), 4);
        let last = lines(&local).pop().expect("a checkpoint");
        assert!(got[3].starts_with("<38>underpass-edge["), "{}", got[3]);
        assert!(
            got[3].ends_with(&format!(": audit-checkpoint {last}")),
            "{}",
            got[3]
        );

        // Cut the log and its checkpoints back together: only the copy can tell.
        let l = lines(&dir.log());
        write_lines(&dir.log(), &l[..2]);
        write_lines(&local, &lines(&local)[..2]);
        verify(&dir.log(), None).expect("undetectable from the local files alone");
        let with_copy = VerifyOptions {
            checkpoints: Some(copy),
            ..VerifyOptions::default()
        };
        match verify_with(&dir.log(), &with_copy) {
            Err(VerifyError::Truncated {
                last_seq: Some(1),
                checkpoint_seq: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let min = VerifyOptions {
            expect_min_seq: Some(3),
            ..VerifyOptions::default()
        };
        match verify_with(&dir.log(), &min) {
            Err(VerifyError::EndsTooEarly {
                last_seq: Some(1),
                expected: 3,
            }) => {}
            other => panic!("{other:?}"),
        }
        let ok = VerifyOptions {
            expect_min_seq: Some(1),
            ..VerifyOptions::default()
        };
        verify_with(&dir.log(), &ok).expect("reaches seq 1");

        // The writer refuses to continue a chain the copy vouches beyond.
        match AuditLog::open(&config) {
            Err(AuditError::BehindCheckpoint {
                log_seq: Some(1),
                checkpoint_seq: 3,
                checkpoints,
                ..
            }) => assert_eq!(checkpoints, dir.0.join("copy.jsonl")),
            other => panic!("{other:?}"),
        }

        // A syslog path that is not a socket is refused at start.
        let mut bad = AuditConfig::new(dir.0.join("other.jsonl"));
        bad.checkpoint_syslog = Some(copy_path_that_is_a_file(&dir));
        assert!(matches!(
            AuditLog::open(&bad),
            Err(AuditError::NotASocket(_))
        ));
    }

    fn copy_path_that_is_a_file(dir: &TempDir) -> PathBuf {
        let p = dir.0.join("not-a-socket");
        fs::write(&p, "").expect("write");
        p
    }

    #[test]
    fn arguments_are_redacted() {
        let args = serde_json::json!({
            "path": "/srv/docs",
            "api_key": "sk-123",
            "nested": {"Authorization": "Bearer x", "items": [1, 2]},
            "long": "x".repeat(2000),
        });
        let out = redact_arguments(&args).expect("some");
        assert_eq!(out["path"], "/srv/docs");
        assert_eq!(out["api_key"], REDACTED);
        assert_eq!(out["nested"]["Authorization"], REDACTED);
        assert_eq!(out["nested"]["items"], serde_json::json!([1, 2]));
        assert!(out["long"].as_str().is_some_and(|s| s.len() < 1100));
        assert_eq!(redact_arguments(&Value::Null), None);

        let dir = TempDir::new("args");
        let off = Auditor::start(&AuditConfig::new(dir.log())).expect("start");
        assert_eq!(off.arguments(Some(&args)), None);
        let mut config = AuditConfig::new(dir.0.join("b.jsonl"));
        config.log_arguments = true;
        let on = Auditor::start(&config).expect("start");
        assert_eq!(on.arguments(Some(&args)), Some(out));
    }
}
