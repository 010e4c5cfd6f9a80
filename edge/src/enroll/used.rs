//! The record of redeemed enrollment tokens: a token id is appended (and synced) before its
//! certificate is issued, so a crash can waste a token but never let it be used twice. The
//! file is locked while it is read and appended to, and read again before every redemption, so
//! edges that share it (a shared volume) refuse a token any of them redeemed.
//!
//! Line format: `<token id, hex> <not_after, unix seconds> <connector>`. Lines of expired
//! tokens are dropped when the edge starts (their tokens are refused as expired anyway).
//! A line this build cannot read makes the file unusable (enrollment is then refused, loudly):
//! reading it as "no token used" would fail open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{flock, FlockOperation};

/// Why a token cannot be redeemed, or the record not used.
#[derive(Debug, thiserror::Error)]
pub enum UsedError {
    #[error("this token was already used (at most once, on any edge sharing {0})")]
    AlreadyUsed(PathBuf),
    #[error("the record of used tokens {path} cannot be used: {why}")]
    Unusable { path: PathBuf, why: String },
}

/// Redeemed token ids, backed by a file.
pub struct UsedTokens {
    path: PathBuf,
    /// Token id → not_after, as read from the file so far.
    seen: Mutex<HashMap<String, i64>>,
}

impl UsedTokens {
    /// Opens (creating it, mode 0600) the record at `path`, dropping the lines of tokens that
    /// expired before `now` (unix seconds).
    pub fn open(path: &Path, now: i64) -> Result<UsedTokens, UsedError> {
        let unusable = |why: String| UsedError::Unusable {
            path: path.to_path_buf(),
            why,
        };
        let mut file = open_file(path).map_err(|e| unusable(e.to_string()))?;
        lock(&file).map_err(|e| unusable(e.to_string()))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| unusable(e.to_string()))?;
        let seen = parse(&text).map_err(unusable)?;
        let live: HashMap<String, i64> = seen.into_iter().filter(|(_, t)| *t > now).collect();
        // Rewritten in place under the lock (a rename would slip past another edge's lock).
        let mut kept = String::new();
        for line in text.lines() {
            if line
                .split_whitespace()
                .next()
                .is_some_and(|id| live.contains_key(id))
            {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept.len() != text.len() {
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
                .and_then(|()| file.write_all(kept.as_bytes()))
                .and_then(|()| file.sync_data())
                .map_err(|e| unusable(e.to_string()))?;
        }
        Ok(UsedTokens {
            path: path.to_path_buf(),
            seen: Mutex::new(live),
        })
    }

    /// Records token `id` (valid until `not_after`) for `connector` as used, unless it already
    /// is (here or by another edge sharing the file).
    pub fn consume(&self, id: &str, not_after: i64, connector: &str) -> Result<(), UsedError> {
        let unusable = |why: String| UsedError::Unusable {
            path: self.path.clone(),
            why,
        };
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| unusable("poisoned lock".into()))?;
        let mut file = open_file(&self.path).map_err(|e| unusable(e.to_string()))?;
        lock(&file).map_err(|e| unusable(e.to_string()))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| unusable(e.to_string()))?;
        seen.extend(parse(&text).map_err(unusable)?);
        if seen.contains_key(id) {
            return Err(UsedError::AlreadyUsed(self.path.clone()));
        }
        file.write_all(format!("{id} {not_after} {connector}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| unusable(e.to_string()))?;
        seen.insert(id.to_owned(), not_after);
        Ok(())
        // The lock goes with `file`.
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn lock(file: &File) -> std::io::Result<()> {
    flock(file, FlockOperation::LockExclusive).map_err(std::io::Error::from)
}

/// Token id → not_after of every line; an error names the first line that is not one.
fn parse(text: &str) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let id = fields
            .next()
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        let not_after = fields.next().and_then(|t| t.parse::<i64>().ok());
        match (id, not_after) {
            (Some(id), Some(t)) => {
                out.insert(id.to_owned(), t);
            }
            _ => {
                return Err(format!(
                    "line {} is not `<token id> <not_after> <connector>`",
                    n + 1
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_token_is_used_once_also_across_restarts_and_sharing_edges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used.txt");
        let edge1 = UsedTokens::open(&path, 100).unwrap();
        let edge2 = UsedTokens::open(&path, 100).unwrap();
        edge1.consume(A, 200, "dc1").unwrap();
        assert!(matches!(
            edge1.consume(A, 200, "dc1"),
            Err(UsedError::AlreadyUsed(_))
        ));
        // Another edge sharing the file sees it at once.
        assert!(matches!(
            edge2.consume(A, 200, "dc1"),
            Err(UsedError::AlreadyUsed(_))
        ));
        edge2.consume(B, 200, "dc2").unwrap();
        // A restart reads the record back.
        let again = UsedTokens::open(&path, 150).unwrap();
        assert!(again.consume(A, 200, "dc1").is_err());
        assert!(again.consume(B, 200, "dc2").is_err());
    }

    #[test]
    fn expired_lines_are_dropped_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used.txt");
        let t = UsedTokens::open(&path, 100).unwrap();
        t.consume(A, 150, "dc1").unwrap();
        t.consume(B, 500, "dc2").unwrap();
        drop(t);
        UsedTokens::open(&path, 200).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{B} 500 dc2\n"));
    }

    #[test]
    fn an_unreadable_record_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used.txt");
        std::fs::write(&path, "not a line of this file\n").unwrap();
        assert!(matches!(
            UsedTokens::open(&path, 0),
            Err(UsedError::Unusable { .. })
        ));
        // A record that became unreadable while running refuses every redemption.
        let ok = dir.path().join("ok.txt");
        let t = UsedTokens::open(&ok, 0).unwrap();
        std::fs::write(&ok, "garbage\n").unwrap();
        assert!(matches!(
            t.consume(A, 10, "dc1"),
            Err(UsedError::Unusable { .. })
        ));
    }
}
