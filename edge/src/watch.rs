//! Reloading a file the edge depends on (policy, JWKS, revocation list) when it changes, and on
//! SIGHUP, without restarting anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often a watched file's modification time is polled.
const POLL: Duration = Duration::from_secs(1);

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs forever, calling `reload(forced)` whenever `path`'s modification time changes
/// (`forced = false`) or the process receives SIGHUP (`forced = true`).
pub async fn file(path: PathBuf, mut reload: impl FnMut(bool)) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = mtime(&path);
    loop {
        let hup_fired = async {
            match hup.as_mut() {
                Some(s) => s.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let forced = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            fired = hup_fired => fired,
        };
        let now = mtime(&path);
        if forced || now != seen {
            seen = now;
            reload(forced);
        }
    }
}
