//! The tamper-evident audit trail of the Underpass edge: records, their hash chain and signed
//! checkpoints, the writer and its non-blocking handle, and the offline verifier. It knows
//! nothing of HTTP or of the gateway, so `audit verify` needs none of them.
//!
//! The trail: one JSON line per client request (per JSON-RPC message of it), plus, with
//! `write_ahead`, a `dispatched` line of each written before it goes down a tunnel;
//! hash-chained and anchored by signed checkpoints.
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

#![forbid(unsafe_code)]

mod chain;
mod config;
mod error;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod outcome;
mod record;
mod redact;
mod sampler;
mod sink;
mod time;
mod verify;
mod writer;

pub use chain::GENESIS;
pub use config::{AuditConfig, OnFailure};
pub use error::AuditError;
pub use outcome::Outcome;
pub use record::{
    Aggregate, AuditRecord, AuthMethod, CallAudit, ChainPoint, Decision, ExchangeTiming, Mediation,
    MediationAction, TrailEvent,
};
pub use redact::redact_arguments;
pub use sink::Auditor;
pub use time::{format_time, now};
pub use verify::{verify, verify_with, GapReport, VerifyError, VerifyOptions, VerifyReport};
pub use writer::AuditLog;

#[cfg(test)]
mod tests;
