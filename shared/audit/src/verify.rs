//! The offline verifier: checks a trail's files, chain and signed checkpoints, and reports
//! the gaps the writer recorded. Needs nothing of the gateway.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::Value;

use crate::chain::{parse_line, LineError, GENESIS};
use crate::files::{read_first_line, rotated_files, rotated_name, sidecar};
use crate::keys::{checkpoint_message, read_public_key, Checkpoint};
use crate::record::TrailEvent;

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
pub(crate) struct CheckpointReader {
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
