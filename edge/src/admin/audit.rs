//! `GET /api/audit`: whether the audit trail is configured, its file, the last record and
//! checkpoint, and the offline verifier's verdict on the whole trail. Verifying reads every
//! file, so it runs on the blocking pool, one at a time, and its result is kept for
//! [`FRESH`]: a dashboard polling every two seconds cannot make the edge re-verify in a loop.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_audit::{AuditConfig, VerifyOptions};

use super::feed::Feed;

/// How long a verification result is shown before the next request verifies again.
const FRESH: Duration = Duration::from_secs(10);
/// The end of a file read to find its last line.
const TAIL: u64 = 64 * 1024;

#[derive(Default)]
pub struct AuditStatus {
    /// The last verification: when, and what it found.
    last: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

impl AuditStatus {
    pub async fn status(&self, config: Option<&AuditConfig>, feed: &Feed) -> Value {
        let Some(config) = config else {
            return json!({"configured": false});
        };
        // Held across the verification: concurrent requests wait for it, none starts another.
        let mut last = self.last.lock().await;
        let verified = match last.as_ref() {
            Some((at, value)) if at.elapsed() < FRESH => value.clone(),
            _ => {
                let file = config.file.clone();
                let value = tokio::task::spawn_blocking(move || verify(&file))
                    .await
                    .unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}));
                *last = Some((Instant::now(), value.clone()));
                value
            }
        };
        let file = config.file.clone();
        let (record, checkpoint) = tokio::task::spawn_blocking(move || {
            (last_line(&file), last_line(&sidecar(&file, ".checkpoints")))
        })
        .await
        .unwrap_or((None, None));
        json!({
            "configured": true,
            "file": config.file.display().to_string(),
            "last_record": record.map(|r| json!({"seq": r["seq"], "time": r["time"], "outcome": r["outcome"]})),
            "last_checkpoint": checkpoint.map(|c| json!({"seq": c["seq"], "time": c["time"]})),
            "last_request_done": feed.last_done().map(underpass_audit::format_time),
            "verify": verified,
        })
    }
}

fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The verifier's verdict, as `underpass-edge audit verify` would give it.
fn verify(file: &Path) -> Value {
    let at = underpass_audit::now();
    match underpass_audit::verify_with(file, &VerifyOptions::default()) {
        Ok(r) => json!({
            "ok": true,
            "at": at,
            "records": r.records,
            "files": r.files,
            "last_seq": r.last_seq,
            "checkpoints": r.checkpoints,
            "unsigned_tail": r.unsigned_tail,
            "gaps": r.gaps.len(),
            "lost": r.lost(),
        }),
        // A line being written as the verifier reads it can fail here; the next
        // verification (after FRESH) reads it whole.
        Err(e) => json!({"ok": false, "at": at, "error": e.to_string()}),
    }
}

/// The last complete JSON line of `path`, if any.
fn last_line(path: &Path) -> Option<Value> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    f.take(TAIL).read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .rev()
        .filter(|l| !l.is_empty())
        .find_map(|l| serde_json::from_slice(l).ok())
}
