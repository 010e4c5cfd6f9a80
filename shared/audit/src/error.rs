//! Why the audit log cannot be opened or written.

use std::io;
use std::path::{Path, PathBuf};

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

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}
