//! The `[audit]` table of `edge.toml`.

use std::path::PathBuf;

use serde::Deserialize;

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
    /// Before a request goes down a tunnel, write a `dispatched` line for each of its
    /// messages and wait until it is in the file (written, not synced): an edge killed while
    /// a backend works on a call still leaves a record of it. When that line cannot be
    /// written, `on_failure` decides (`"refuse"`: the request is answered 503 and never
    /// sent). Default true; false writes only the line with the outcome, after the answer.
    #[serde(default = "default_write_ahead")]
    pub write_ahead: bool,
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

pub(crate) fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

pub(crate) fn default_refusals_per_source() -> u32 {
    20
}

pub(crate) fn default_refusal_window_secs() -> u64 {
    60
}

pub(crate) fn default_write_ahead() -> bool {
    true
}

pub(crate) fn default_checkpoint_every() -> u64 {
    1
}

impl AuditConfig {
    /// A configuration with every default and the given log file.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            max_bytes: default_max_bytes(),
            checkpoint_every: default_checkpoint_every(),
            write_ahead: default_write_ahead(),
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
