//! The synchronous chain writer, [`AuditLog`]: appends sealed records, rotates, applies
//! retention, writes and ships signed checkpoints, and records gaps.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::Ordering;
#[cfg(test)]
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;

use crate::chain::{parse_line, seal, LineError, GENESIS};
use crate::config::AuditConfig;
use crate::error::{io_err, AuditError};
use crate::files::{
    open_append, read_first_line, read_last_line, replaced, rotated_files, rotated_name, sidecar,
};
use crate::keys::{checkpoint_message, load_or_create_key, newest_checkpoint, Checkpoint};
use crate::outcome::Outcome;
use crate::record::{AuditRecord, ChainPoint, TrailEvent};
use crate::time::{format_time, now};

/// How often the writer checks that its files are still the ones their paths name.
pub(crate) const IDENTITY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Distinct reasons a gap record lists.
pub(crate) const MAX_GAP_REASONS: usize = 8;
/// Syslog priority of shipped checkpoints: facility auth (4), severity info (6).
pub(crate) const SYSLOG_PRIORITY: u8 = 4 * 8 + 6;

/// Records lost since the last gap record.
#[derive(Debug, Default, Clone)]
pub(crate) struct GapTally {
    lost: u64,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    reasons: BTreeSet<String>,
}

impl GapTally {
    pub(crate) fn add(&mut self, n: u64, reason: &str, at: SystemTime) {
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
    pub(crate) next_identity_check: Instant,
    /// Failed checkpoint writes and shipments, for logging at the 1st, 2nd, 4th… failure.
    checkpoint_failures: u64,
    /// Test hook: every write fails while set.
    #[cfg(test)]
    pub(crate) fail_writes: Arc<std::sync::atomic::AtomicBool>,
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

/// What is lost when `record` is: one request, or all the refusals a summary line counts.
pub(crate) fn records_in(record: &AuditRecord) -> u64 {
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
    pub(crate) fn note_lost(&mut self, tally: GapTally) {
        self.gap.merge(tally);
    }

    fn write_gap(&mut self) -> Result<(), AuditError> {
        if self.gap.lost == 0 {
            return Ok(());
        }
        let record = AuditRecord {
            time: now(),
            outcome: Outcome::AuditGap,
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
        // A `dispatched` line is vouched for by the next checkpoint written for a line with an
        // outcome (normally its own, moments later), not by one of its own: it would double
        // the signing work per request. The first line of a trail always gets one, so that a
        // trail cut short right after it still verifies.
        let counts = record.outcome != Outcome::Dispatched || self.checkpoints_size == 0;
        self.write_sealed(&line, hash, counts)
    }

    fn write_sealed(&mut self, line: &str, hash: String, counts: bool) -> Result<u64, AuditError> {
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
        if counts && self.checkpoint_every > 0 && self.since_checkpoint >= self.checkpoint_every {
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

    pub(crate) fn checkpoint_failed(&mut self, why: &str) {
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
                outcome: Outcome::AuditReopened,
                trail: Some(TrailEvent::Reopened {
                    reason: format!("{} {why} while the edge had it open", self.file_name),
                    last_seq_before: self.next_seq.checked_sub(1),
                }),
                ..AuditRecord::default()
            };
            let (line, hash) = self.seal_next(&note)?;
            self.write_sealed(&line, hash, true)?;
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
            outcome: Outcome::AuditRetention,
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
        self.write_sealed(&line, hash, true)?;
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
