//! The revocation list the edge enforces: certificate serials from `revocation_list`
//! (written by `underpass-certs revoke`), re-read when the file changes and on SIGHUP.
//!
//! Handshakes consult it through [`Revocations::check`]; on every reload, live tunnels of
//! newly revoked connectors are closed, and client-certificate requests are re-checked per
//! request, so a revocation takes effect without restarting anything.
//!
//! It fails closed: once the list has been read, a list that turns unreadable, malformed or
//! missing is never taken as "nothing is revoked". The last good list stays in force, the
//! failure is logged as an error on every attempt and shown in `/readyz` until a good list is
//! back.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use underpass_pki::revocation::{certificate_serial, read_revocation_file};
use underpass_proto::frame::codes;
use underpass_transport::tls::RevocationCheck;

use crate::reload::{watch_file, Reloadable};
use crate::tunnels::registry::Registry;

pub struct Revocations {
    path: Option<PathBuf>,
    serials: Reloadable<HashSet<String>>,
    /// Whether the file has been read at least once: from then on its absence is a failure.
    seen_file: AtomicBool,
    /// Why the last reload failed (the last good list is in force meanwhile).
    failure: RwLock<Option<String>>,
}

impl Revocations {
    /// Reads the list once; a configured but unreadable or malformed list is a start-up error
    /// (running without the revocations someone asked for would be worse than not running).
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let existing = path.as_ref().filter(|p| p.exists());
        let serials = match existing {
            Some(p) => read_revocation_file(p)?,
            // A list that does not exist yet simply revokes nothing; `revoke` creates it.
            None => HashSet::new(),
        };
        Ok(Arc::new(Revocations {
            seen_file: AtomicBool::new(existing.is_some()),
            path,
            serials: Reloadable::new(serials),
            failure: RwLock::new(None),
        }))
    }

    fn current(&self) -> Arc<HashSet<String>> {
        self.serials.get()
    }

    pub fn is_revoked_serial(&self, serial: &str) -> bool {
        self.current().contains(serial)
    }

    pub fn is_revoked(&self, der: &[u8]) -> bool {
        match certificate_serial(der) {
            Ok(serial) => self.is_revoked_serial(&serial),
            // A certificate whose serial cannot be read has already failed webpki.
            Err(_) => true,
        }
    }

    /// The hook for the TLS verifiers.
    pub fn check(self: &Arc<Self>) -> RevocationCheck {
        let me = self.clone();
        Arc::new(move |cert| me.is_revoked(cert.as_ref()))
    }

    /// Why the list in force is not the file's current content, if it is not (for `/readyz`).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the file; on error keeps the previous list and says why (see the module
    /// documentation). Returns whether the list in force changed.
    fn reload(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let read = if path.exists() {
            read_revocation_file(path).map_err(|e| format!("{e:#}"))
        } else if self.seen_file.load(Ordering::Relaxed) {
            Err("the file is gone".to_owned())
        } else {
            Ok(HashSet::new())
        };
        let fresh = match read {
            Ok(s) => s,
            Err(why) => {
                let kept = self.current().len();
                tracing::error!(
                    path = %path.display(),
                    kept,
                    "revocation list not reloaded ({why}); the last good list ({kept} serials) stays in force until the file is readable again"
                );
                *self.failure.write().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "{} not reloaded ({why}); the last good list ({kept} serials) is in force",
                    path.display()
                ));
                return false;
            }
        };
        if path.exists() {
            self.seen_file.store(true, Ordering::Relaxed);
        }
        if self
            .failure
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
        {
            tracing::info!(path = %path.display(), "revocation list readable again");
        }
        let changed = *self.current() != fresh;
        if changed {
            tracing::info!(path = %path.display(), revoked = fresh.len(), "revocation list reloaded");
            self.serials.set(fresh);
        }
        changed
    }

    /// Reloads on change and on SIGHUP; closes tunnels of revoked connectors.
    pub async fn watch(self: Arc<Self>, registry: Arc<Registry>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        tokio::spawn(self.clone().close_revoked(registry));
        watch_file(path, |forced| {
            if self.reload() {
                // `set` woke the closer.
            } else if forced {
                // SIGHUP: look at every tunnel again even though the list did not change.
                self.serials.notify();
            }
        })
        .await
    }

    /// Subscriber of the list: whenever it changes (or SIGHUP asks), closes the live tunnels
    /// of connectors whose certificates it revokes.
    async fn close_revoked(self: Arc<Self>, registry: Arc<Registry>) {
        let mut changes = self.serials.subscribe();
        while changes.changed().await.is_ok() {
            for tunnel in registry.tunnels() {
                if tunnel.serials().iter().any(|s| self.is_revoked_serial(s)) {
                    tracing::warn!(connector = %tunnel.connector, serial = %tunnel.cert_serial, "closing tunnel: certificate revoked");
                    tunnel.conn.close(codes::GOING_AWAY, b"certificate revoked");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_that_goes_away_or_breaks_stays_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        // Absent at start: nothing is revoked yet, and that is no failure.
        let r = Revocations::load(Some(path.clone())).unwrap();
        assert!(!r.reload());
        assert_eq!(r.failure(), None);

        std::fs::write(&path, "0a1b spiffe://underpass.local/connector/dc1 -\n").unwrap();
        assert!(r.reload());
        assert!(r.is_revoked_serial("a1b"));

        for broken in ["gone", "garbage", "directory"] {
            let _ = std::fs::remove_file(&path);
            match broken {
                "garbage" => std::fs::write(&path, "not-a-serial\n").unwrap(),
                "directory" => std::fs::create_dir(&path).unwrap(),
                _ => {}
            }
            assert!(!r.reload(), "{broken}");
            assert!(r.is_revoked_serial("a1b"), "{broken}: revocation lost");
            assert!(r.failure().is_some(), "{broken}: failure not reported");
            let _ = std::fs::remove_dir(&path);
        }

        // An empty file is a deliberate "nothing is revoked".
        std::fs::write(&path, "").unwrap();
        assert!(r.reload());
        assert!(!r.is_revoked_serial("a1b"));
        assert_eq!(r.failure(), None);
    }
}
