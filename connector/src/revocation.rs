//! The revocation list the connector enforces on edges (`revocation_list` in connector.toml):
//! the same `revoked.txt` as the edge's (serials and bulk rules, written by
//! `underpass-certs revoke`), re-read when the file changes and on SIGHUP.
//!
//! The tunnel verifier consults it through [`EdgeRevocations::check`] (the edge's end-entity
//! certificate and every intermediate it presents), and [`EdgeRevocations::guard`] closes a
//! live tunnel once its edge's certificate is revoked, so a stolen edge key stops getting
//! connectors' traffic without restarting them.
//!
//! It fails closed, like the edge: a configured list that cannot be read at start is a
//! start-up error; once read, a list that turns unreadable, malformed or missing is never taken
//! as "nothing is revoked". The last good list stays in force and every failed reload is
//! logged as an error until a good list is back.

use std::path::PathBuf;
use std::sync::Arc;

use underpass_pki::revocation::{ListSource, ListStats, Reloaded, RevocationError, RevocationList};
use underpass_proto::frame::codes;
use underpass_shared::reload::{watch_file, Reloadable};
use underpass_transport::tls::RevocationCheck;
use underpass_transport::TunnelConn;

/// Why the revocation list could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the revocation_list {}", .path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: RevocationError,
    },
}

/// The edges' revocation list in force; see the module documentation.
pub struct EdgeRevocations {
    /// The file and its fail-closed bookkeeping; `None` when no list is configured.
    source: Option<ListSource>,
    list: Reloadable<RevocationList>,
}

impl EdgeRevocations {
    /// Reads the list once (`None`: no list configured, nothing is revoked). A configured list
    /// that exists but cannot be read or parsed is an error; one that does not exist yet
    /// revokes nothing until it appears.
    pub fn load(path: Option<PathBuf>) -> Result<Arc<Self>, Error> {
        let (source, list) = match path {
            Some(path) => {
                let (source, list) = ListSource::load(path.clone())
                    .map_err(|source| Error::Load { path, source })?;
                (Some(source), list)
            }
            None => (None, RevocationList::default()),
        };
        Ok(Arc::new(EdgeRevocations {
            source,
            list: Reloadable::new(list),
        }))
    }

    /// Whether a list is configured at all.
    pub fn is_configured(&self) -> bool {
        self.source.is_some()
    }

    /// Whether the DER certificate is revoked (by serial or by a bulk rule).
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        self.list.get().is_revoked(der)
    }

    /// The hook for the tunnel's server verifier (`PeerPolicy::revoked`).
    pub fn check(self: &Arc<Self>) -> RevocationCheck {
        let me = self.clone();
        Arc::new(move |cert| me.is_revoked(cert.as_ref()))
    }

    /// Why the list in force is not the file's current content, if it is not.
    pub fn failure(&self) -> Option<String> {
        self.source.as_ref().and_then(ListSource::failure)
    }

    /// Failed reloads and staleness (for a future `/metrics`).
    pub fn stats(&self) -> ListStats {
        self.source.as_ref().map_or(
            ListStats {
                reload_failures: 0,
                stale_for: None,
            },
            ListSource::stats,
        )
    }

    /// Re-reads the file at once (same fail-closed rules as [`EdgeRevocations::watch`]).
    pub fn reload_now(&self) {
        self.reload();
    }

    /// Re-reads the file; on error keeps the list in force and logs why. Returns whether the
    /// list in force changed.
    fn reload(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let path = source.path().display();
        let current = self.list.get();
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

    /// Reloads on change and on SIGHUP, for as long as the connector runs (returns at once
    /// when no list is configured).
    pub async fn watch(self: Arc<Self>) {
        let Some(path) = self.source.as_ref().map(|s| s.path().to_path_buf()) else {
            return;
        };
        watch_file(path, |forced| {
            if !self.reload() && forced {
                // SIGHUP: have the guards look at their tunnels again.
                self.list.notify();
            }
        })
        .await
    }

    /// Watches one live tunnel: closes it as soon as the list in force revokes its edge's
    /// certificate; returns then, or when the tunnel closes for another reason. Spawn it
    /// next to the tunnel once the handshake is done.
    pub async fn guard(self: Arc<Self>, conn: TunnelConn) {
        if self.source.is_none() {
            return;
        }
        let Some(leaf) = conn.peer_leaf() else {
            return;
        };
        let mut changes = self.list.subscribe();
        loop {
            if self.is_revoked(leaf.as_ref()) {
                tracing::error!(
                    edge = %conn.remote_addr(),
                    "closing tunnel: the edge's certificate is revoked"
                );
                conn.close(codes::GOING_AWAY, b"edge certificate revoked");
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = conn.closed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "underpass-connector-revocation-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn fails_closed_and_applies_rules() {
        let dir = Scratch::new();
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
        let none = EdgeRevocations::load(None).unwrap();
        assert!(!none.is_configured());
        assert!(!none.check()(&cert));

        // Configured but absent: nothing revoked yet.
        let r = EdgeRevocations::load(Some(path.clone())).unwrap();
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
        let err = EdgeRevocations::load(Some(path)).err().unwrap();
        assert!(err.to_string().contains("revocation_list"), "{err}");
    }
}
