//! The revocation list a daemon enforces, live: the one implementation behind the edge's
//! `Revocations` (connector certificates) and the connector's `EdgeRevocations` (edge
//! certificates), which add only what is their own (which tunnels to close, and when).
//!
//! The list is `revoked.txt` as `underpass-certs revoke` writes it (serials and bulk rules),
//! read through [`ListSource`] and re-read when the file changes and on SIGHUP
//! ([`LiveRevocations::watch`]). Handshakes consult it through [`LiveRevocations::check`], the
//! hook the TLS verifiers take; subscribers ([`LiveRevocations::subscribe`]) are woken on every
//! change, so a revocation takes effect on live tunnels without restarting anything.
//!
//! It fails closed: a configured list that cannot be read at start is a start-up error; once
//! read, a list that turns unreadable, malformed or missing is never taken as "nothing is
//! revoked". The last good list stays in force, the failure is logged as an error on every
//! attempt and reported ([`LiveRevocations::failure`], [`LiveRevocations::stats`]) until a
//! good list is back.
//!
//! Both daemons used to carry their own copy of this; one copy keeps their fail-closed rules
//! and log lines from drifting apart (operators and tests grep the same words from either).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use underpass_pki::revocation::{ListSource, ListStats, Reloaded, RevocationError, RevocationList};
use underpass_transport::tls::RevocationCheck;

use crate::reload::{watch_file, Reloadable};

/// The revocation list in force and where it comes from; see the module documentation.
///
/// Cheap to clone (every clone is the same list): the TLS hook from [`LiveRevocations::check`]
/// and the watcher keep their own handle, so the owner needs no `Arc` around it.
#[derive(Clone)]
pub struct LiveRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file and its fail-closed bookkeeping; `None` when no list is configured.
    source: Option<ListSource>,
    list: Reloadable<RevocationList>,
}

impl LiveRevocations {
    /// Reads the list once (`None`: no list configured, nothing is revoked). A configured list
    /// that exists but cannot be read or parsed is an error (running without the revocations
    /// someone asked for would be worse than not running); one that does not exist yet revokes
    /// nothing until it appears.
    pub fn load(path: Option<PathBuf>) -> Result<Self, RevocationError> {
        let (source, list) = match path {
            Some(path) => {
                let (source, list) = ListSource::load(path)?;
                (Some(source), list)
            }
            None => (None, RevocationList::default()),
        };
        Ok(LiveRevocations {
            inner: Arc::new(Inner {
                source,
                list: Reloadable::new(list),
            }),
        })
    }

    /// Whether a list is configured at all (without one there is nothing to watch or guard).
    pub fn is_configured(&self) -> bool {
        self.inner.source.is_some()
    }

    /// The list in force now: a snapshot, for looking at many certificates against one list.
    pub fn current(&self) -> Arc<RevocationList> {
        self.inner.list.get()
    }

    /// Whether the serial (canonical form) is listed (bulk rules need the certificate).
    #[cfg(test)]
    fn is_revoked_serial(&self, serial: &str) -> bool {
        self.current().is_revoked_serial(serial)
    }

    /// Whether the DER certificate is revoked, by serial or by a bulk rule.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        self.current().is_revoked(der)
    }

    /// The hook for the TLS verifiers (`PeerPolicy::revoked`): always the list in force.
    pub fn check(&self) -> RevocationCheck {
        let me = self.clone();
        Arc::new(move |cert| me.is_revoked(cert.as_ref()))
    }

    /// Why the list in force is not the file's current content, if it is not (for `/readyz`):
    /// names the file and how long it has been stale.
    pub fn failure(&self) -> Option<String> {
        self.inner.source.as_ref().and_then(ListSource::failure)
    }

    /// Failed reloads and staleness, for `/metrics` (`underpass_revocation_list_stale_seconds`,
    /// `underpass_revocation_list_reload_failures_total`).
    pub fn stats(&self) -> ListStats {
        self.inner.source.as_ref().map_or(
            ListStats {
                reload_failures: 0,
                stale_for: None,
            },
            ListSource::stats,
        )
    }

    /// Re-reads the file at once (e.g. before issuing a certificate, so a `revoke` that the
    /// one-second poll has not seen yet still counts). Same fail-closed rules as the watcher;
    /// a change wakes the subscribers as usual.
    pub fn reload_now(&self) {
        self.reload();
    }

    /// A receiver woken whenever the list in force changes, and on SIGHUP even when it does
    /// not (an operator's "look at every tunnel again").
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.list.subscribe()
    }

    /// Re-reads the file; on error keeps the previous list and says why (see the module
    /// documentation). Returns whether the list in force changed.
    fn reload(&self) -> bool {
        let Some(source) = &self.inner.source else {
            return false;
        };
        let path = source.path().display();
        let current = self.current();
        match source.reload(&current) {
            Reloaded::Failed { why } => {
                let kept = current.summary();
                tracing::error!(
                    path = %path,
                    "revocation list not reloaded ({why}); the last good list ({kept}) stays in force until the file is readable again"
                );
                false
            }
            Reloaded::Read { changed, recovered } => {
                if recovered {
                    tracing::info!(path = %path, "revocation list readable again");
                }
                let Some(fresh) = changed else {
                    return false;
                };
                tracing::info!(path = %path, revoked = %fresh.summary(), "revocation list reloaded");
                self.inner.list.set(fresh);
                true
            }
        }
    }

    /// Reloads on change and on SIGHUP, for as long as the daemon runs (returns at once when
    /// no list is configured).
    pub async fn watch(self) {
        let Some(path) = self.inner.source.as_ref().map(|s| s.path().to_path_buf()) else {
            return;
        };
        watch_file(path, |forced| {
            if self.reload() {
                // `set` woke the subscribers.
            } else if forced {
                // SIGHUP: have the subscribers look at every tunnel again even though the list
                // did not change.
                self.inner.list.notify();
            }
        })
        .await
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
        let r = LiveRevocations::load(Some(path.clone())).unwrap();
        assert!(r.is_configured());
        assert!(!r.reload());
        assert_eq!(r.failure(), None);

        std::fs::write(&path, "0a1b spiffe://underpass.local/connector/dc1 -\n").unwrap();
        assert!(r.reload());
        assert!(r.is_revoked_serial("a1b"));
        assert_eq!(r.stats().reload_failures, 0);

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

        assert_eq!(r.stats().reload_failures, 3);
        assert!(r.stats().stale_for.is_some());
        assert!(r.failure().is_some_and(|f| f.contains("revoked.txt")));

        // An empty file is a deliberate "nothing is revoked".
        std::fs::write(&path, "").unwrap();
        assert!(r.reload());
        assert!(!r.is_revoked_serial("a1b"));
        assert_eq!(r.failure(), None);
        assert_eq!(r.stats().stale_for, None);
    }

    #[test]
    fn rules_apply_and_reload_now_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        underpass_pki::ca::init(dir.path(), "underpass.local").unwrap();
        let issued = underpass_pki::issue::issue(
            dir.path(),
            underpass_proto::identity::Role::Connector,
            "dc1",
            &[],
        )
        .unwrap();
        let der = underpass_pki::inspect::read_certificate(&issued.cert_path).unwrap();
        let path = dir.path().join("revoked.txt");
        let r = LiveRevocations::load(Some(path.clone())).unwrap();
        let check = r.check();
        let cert = rustls_pki_types::CertificateDer::from(der.clone());
        assert!(!check(&cert));
        underpass_pki::revoke::revoke_before(
            dir.path(),
            &underpass_pki::revoke::RuleTarget::Connector("dc1".into()),
            underpass_pki::revocation::parse_time("now").unwrap(),
        )
        .unwrap();
        r.reload_now();
        assert!(check(&cert), "the rule revokes dc1");
        assert!(!r.is_revoked_serial(&issued.serial), "by rule, not serial");
    }

    /// The connector's case: an edge certificate revoked by serial, kept through a broken or
    /// deleted file, then by a rule for the edge identity; unreadable at start is an error.
    #[test]
    fn fails_closed_and_applies_rules() {
        let dir = tempfile::tempdir().unwrap();
        underpass_pki::ca::init(dir.path(), "underpass.local").unwrap();
        let edge = underpass_pki::issue::issue(
            dir.path(),
            underpass_proto::identity::Role::Edge,
            "edge",
            &[],
        )
        .unwrap();
        let der = underpass_pki::inspect::read_certificate(&edge.cert_path).unwrap();
        let cert = rustls_pki_types::CertificateDer::from(der);
        let path = dir.path().join("revoked.txt");

        // Not configured: nothing revoked, nothing watched.
        let none = LiveRevocations::load(None).unwrap();
        assert!(!none.is_configured());
        assert!(!none.check()(&cert));
        assert_eq!(none.failure(), None);
        assert_eq!(none.stats().reload_failures, 0);

        // Configured but absent: nothing revoked yet.
        let r = LiveRevocations::load(Some(path.clone())).unwrap();
        let check = r.check();
        assert!(!check(&cert));

        let line = format!("{} - -\n", edge.serial);
        std::fs::write(&path, &line).unwrap();
        r.reload_now();
        assert!(check(&cert), "revoked by serial");

        // Broken or gone: the last good list stays in force, and says so.
        std::fs::write(&path, "garbage\n").unwrap();
        r.reload_now();
        assert!(check(&cert));
        assert!(r.failure().is_some());
        std::fs::remove_file(&path).unwrap();
        r.reload_now();
        assert!(check(&cert));
        assert_eq!(r.stats().reload_failures, 2);

        // A rule (for the edge identity) works too; an empty file un-revokes.
        std::fs::write(
            &path,
            "before 2999-01-01T00:00:00Z spiffe://underpass.local/edge/edge\n",
        )
        .unwrap();
        r.reload_now();
        assert!(check(&cert), "revoked by rule");
        assert_eq!(r.failure(), None);
        std::fs::write(&path, "").unwrap();
        r.reload_now();
        assert!(!check(&cert));

        // Unreadable at start: an error.
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(LiveRevocations::load(Some(path)).is_err());
    }

    #[tokio::test]
    async fn subscribers_wake_on_a_change_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        let r = LiveRevocations::load(Some(path.clone())).unwrap();
        let mut changes = r.subscribe();
        r.reload_now();
        assert!(!changes.has_changed().unwrap(), "nothing changed");
        std::fs::write(&path, "0a1b - -\n").unwrap();
        r.reload_now();
        assert!(changes.has_changed().unwrap(), "the list changed");
        changes.mark_unchanged();
        r.reload_now();
        assert!(!changes.has_changed().unwrap(), "the same list again");
    }
}
