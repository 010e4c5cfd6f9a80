//! One hot-reload primitive for everything the daemons re-read without restarting: the edge's
//! policy, JWKS key set and revocation list, and certificates (moved here from the edge so the
//! connector can use it too).
//!
//! A [`Reloadable<T>`] holds the value in force behind an [`ArcSwap`]: readers take a cheap
//! snapshot ([`Reloadable::get`]) and keep it for as long as they need (a request keeps the
//! policy it started with), a reload swaps the whole value at once, and subscribers
//! ([`Reloadable::subscribe`]) are woken through a `tokio::sync::watch` channel (revocation
//! closes revoked tunnels that way). What to do with a broken source is the owner's call:
//! every owner here keeps the last good value.
//!
//! The source is [`watch_file`] (or [`watch_files`] for files read together): the file's
//! modification time polled every second (robust
//! across ConfigMap symlink swaps and network file systems), and SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// A value that is replaced whole on reload; see the module documentation.
pub struct Reloadable<T> {
    current: ArcSwap<T>,
    /// Bumped on every [`Reloadable::set`] and [`Reloadable::notify`].
    generation: watch::Sender<u64>,
}

impl<T> Reloadable<T> {
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    pub fn from_arc(value: Arc<T>) -> Self {
        Reloadable {
            current: ArcSwap::new(value),
            generation: watch::Sender::new(0),
        }
    }

    /// The value in force now: a snapshot that a later reload does not change.
    pub fn get(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Puts `value` in force and wakes the subscribers.
    pub fn set(&self, value: T) {
        self.current.store(Arc::new(value));
        self.notify();
    }

    /// Wakes the subscribers without a new value (e.g. SIGHUP: "check again").
    pub fn notify(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver that sees every later [`Reloadable::set`] and [`Reloadable::notify`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// How often a watched file's modification time is polled.
const POLL: Duration = Duration::from_secs(1);

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs forever, calling `reload(forced)` whenever `path`'s modification time changes
/// (`forced = false`) or the process receives SIGHUP (`forced = true`).
pub async fn watch_file(path: PathBuf, reload: impl FnMut(bool)) {
    watch_files(vec![path], reload).await
}

/// [`watch_file`] over several files read together (a certificate and its key, a CA bundle):
/// one call per poll in which any of them changed. A pair written one file at a time may be
/// seen half replaced (the reader refuses it and keeps the last good value); the second file's
/// change then calls again.
pub async fn watch_files(paths: Vec<PathBuf>, mut reload: impl FnMut(bool)) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen: Vec<Option<SystemTime>> = paths.iter().map(|p| mtime(p)).collect();
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
        let now: Vec<Option<SystemTime>> = paths.iter().map(|p| mtime(p)).collect();
        if forced || now != seen {
            seen = now;
            reload(forced);
        }
    }
}

/// Keeps `target` in step with the file at `path`: on every change (and SIGHUP) `load` reads
/// it; a good read is put in force, a bad one leaves the last good value in force. `report`
/// logs either (each owner words its own lines).
pub async fn follow_file<T, E>(
    target: Arc<Reloadable<T>>,
    path: PathBuf,
    load: impl Fn(&Path) -> Result<T, E>,
    report: impl Fn(&Path, Result<&T, &E>),
) {
    watch_file(path.clone(), |_| match load(&path) {
        Ok(value) => {
            report(&path, Ok(&value));
            target.set(value);
        }
        Err(e) => report(&path, Err(&e)),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_keep_their_snapshot_and_subscribers_wake() {
        let r = Reloadable::new(1);
        let mut changes = r.subscribe();
        let before = r.get();
        r.set(2);
        assert_eq!((*before, *r.get()), (1, 2));
        assert!(changes.has_changed().unwrap_or(false));
        changes.mark_unchanged();
        r.notify();
        assert!(changes.has_changed().unwrap_or(false));
        assert_eq!(*r.get(), 2, "notify keeps the value");
    }

    #[tokio::test]
    async fn a_change_to_any_watched_file_calls_once() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
        std::fs::write(&cert, "1").unwrap();
        std::fs::write(&key, "1").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_files(
            vec![cert.clone(), key.clone()],
            move |forced| {
                let _ = tx.send(forced);
            },
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&key)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(false));
        watcher.abort();
    }
}
