//! The revocation list the edge enforces: certificate serials from `revocation_list`
//! (written by `underpass-certs revoke`), re-read when the file changes and on SIGHUP.
//!
//! Handshakes consult it through [`Revocations::check`]; on every reload, live tunnels of
//! newly revoked connectors are closed, and client-certificate requests are re-checked per
//! request, so a revocation takes effect without restarting anything.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use underpass_certs::revocation::{certificate_serial, read_revocation_file};
use underpass_shared::frame::codes;
use underpass_shared::tls::RevocationCheck;

use crate::registry::Registry;

pub struct Revocations {
    path: Option<PathBuf>,
    serials: RwLock<Arc<HashSet<String>>>,
}

impl Revocations {
    /// Reads the list once; a configured but unreadable or malformed list is a start-up error
    /// (running without the revocations someone asked for would be worse than not running).
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let serials = match &path {
            Some(p) if p.exists() => read_revocation_file(p)?,
            // A list that does not exist yet simply revokes nothing; `revoke` creates it.
            _ => HashSet::new(),
        };
        Ok(Arc::new(Revocations {
            path,
            serials: RwLock::new(Arc::new(serials)),
        }))
    }

    fn current(&self) -> Arc<HashSet<String>> {
        self.serials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// Re-reads the file; on error keeps the previous list and says why.
    fn reload(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let fresh = if path.exists() {
            match read_revocation_file(path) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(
                        "revocation list {} not reloaded, keeping the previous one: {e:#}",
                        path.display()
                    );
                    return false;
                }
            }
        } else {
            HashSet::new()
        };
        let changed = *self.current() != fresh;
        if changed {
            tracing::info!(path = %path.display(), revoked = fresh.len(), "revocation list reloaded");
            *self.serials.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        }
        changed
    }

    /// Reloads on change and on SIGHUP; closes tunnels of revoked connectors.
    pub async fn watch(self: Arc<Self>, registry: Arc<Registry>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        crate::watch::file(path, |forced| {
            if self.reload() || forced {
                for tunnel in registry.tunnels() {
                    if self.is_revoked_serial(&tunnel.cert_serial) {
                        tracing::warn!(connector = %tunnel.connector, serial = %tunnel.cert_serial, "closing tunnel: certificate revoked");
                        tunnel
                            .conn
                            .close(codes::GOING_AWAY.into(), b"certificate revoked");
                    }
                }
            }
        })
        .await
    }
}
