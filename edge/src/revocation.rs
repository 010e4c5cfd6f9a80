//! The revocation list the edge enforces: certificate serials from `revocation_list`
//! (written by `underpass-certs revoke`), re-read when the file changes and on SIGHUP.
//!
//! Handshakes consult it through [`Revocations::check`]; on every reload, live tunnels of
//! newly revoked connectors (or of a revoked issuer) are closed, and client certificates
//! are re-checked per request, so a revocation takes effect without restarting anything.
//!
//! It fails closed: once the list has been read, a list that turns unreadable, malformed or
//! missing is never taken as "nothing is revoked". The last good list stays in force, the
//! failure is logged as an error on every attempt and shown in `/readyz` until a good list is
//! back.

use std::path::PathBuf;
use std::sync::Arc;

use underpass_pki::revocation::{ListSource, ListStats, Reloaded, RevocationList};
use underpass_proto::frame::codes;
use underpass_transport::tls::RevocationCheck;

use crate::reload::{watch_file, Reloadable};
use crate::tunnels::registry::{Registry, Tunnel};

pub struct Revocations {
    /// The file and its fail-closed bookkeeping; `None` when no list is configured.
    source: Option<ListSource>,
    list: Reloadable<RevocationList>,
}

impl Revocations {
    /// Reads the list once; a configured but unreadable or malformed list is a start-up error
    /// (running without the revocations someone asked for would be worse than not running).
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let (source, list) = match path {
            Some(p) => {
                let (source, list) = ListSource::load(p)?;
                (Some(source), list)
            }
            None => (None, RevocationList::default()),
        };
        Ok(Arc::new(Revocations {
            source,
            list: Reloadable::new(list),
        }))
    }

    fn current(&self) -> Arc<RevocationList> {
        self.list.get()
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

    /// The hook for the TLS verifiers.
    pub fn check(self: &Arc<Self>) -> RevocationCheck {
        let me = self.clone();
        Arc::new(move |cert| me.is_revoked(cert.as_ref()))
    }

    /// Why the list in force is not the file's current content, if it is not (for `/readyz`):
    /// names the file and how long it has been stale.
    pub fn failure(&self) -> Option<String> {
        self.source.as_ref().and_then(ListSource::failure)
    }

    /// Failed reloads and staleness, for `/metrics` (`underpass_revocation_list_stale_seconds`,
    /// `underpass_revocation_list_reload_failures_total`).
    pub fn stats(&self) -> ListStats {
        self.source.as_ref().map_or(
            ListStats {
                reload_failures: 0,
                stale_for: None,
            },
            ListSource::stats,
        )
    }

    /// Re-reads the file at once (e.g. before issuing a certificate, so a `revoke` that the
    /// one-second poll has not seen yet still counts). Same fail-closed rules as the watcher;
    /// a change wakes the tunnel closer as usual.
    pub fn reload_now(&self) {
        self.reload();
    }

    /// Before issuing a certificate by renewal over `tunnel`: re-reads the list at once (a
    /// `revoke` the one-second poll has not seen yet counts) and says whether every
    /// certificate the tunnel holds is still good. Without it, a connector revoked by
    /// `before now` could renew within that second and get a certificate the rule misses.
    pub fn may_renew(&self, tunnel: &Tunnel) -> bool {
        self.reload_now();
        !self.tunnel_revoked(&self.current(), tunnel)
    }

    /// Re-reads the file; on error keeps the previous list and says why (see the module
    /// documentation). Returns whether the list in force changed.
    fn reload(&self) -> bool {
        let Some(source) = &self.source else {
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
                self.list.set(fresh);
                true
            }
        }
    }

    /// Reloads on change and on SIGHUP; closes tunnels of revoked connectors.
    pub async fn watch(self: Arc<Self>, registry: Arc<Registry>) {
        let Some(path) = self.source.as_ref().map(|s| s.path().to_path_buf()) else {
            return;
        };
        tokio::spawn(self.clone().close_revoked(registry));
        watch_file(path, |forced| {
            if self.reload() {
                // `set` woke the closer.
            } else if forced {
                // SIGHUP: look at every tunnel again even though the list did not change.
                self.list.notify();
            }
        })
        .await
    }

    /// Whether a certificate a live tunnel's connector holds or held is revoked, by serial
    /// or rule: the handshake's leaf and issuer, and those of renewals and re-authentications.
    fn tunnel_revoked(&self, list: &RevocationList, tunnel: &Tunnel) -> bool {
        tunnel.held().iter().any(|cert| list.is_revoked(cert))
    }

    /// Subscriber of the list: whenever it changes (or SIGHUP asks), closes the live tunnels
    /// of connectors whose certificates it revokes (by serial or by a bulk rule).
    async fn close_revoked(self: Arc<Self>, registry: Arc<Registry>) {
        let mut changes = self.list.subscribe();
        while changes.changed().await.is_ok() {
            let list = self.current();
            for tunnel in registry.tunnels() {
                if self.tunnel_revoked(&list, &tunnel) {
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
        let r = Revocations::load(Some(path.clone())).unwrap();
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
}
