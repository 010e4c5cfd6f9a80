//! The revocation list the connector enforces on edges (`revocation_list` in connector.toml):
//! the same `revoked.txt` as the edge's (serials and bulk rules, written by
//! `underpass-certs revoke`), loaded, watched and failing closed as the one
//! [`LiveRevocations`] both daemons share (see `underpass_shared::revocation`: the fail-closed
//! rules and the reload log lines live there).
//!
//! The tunnel verifier consults it through `check` (the edge's end-entity certificate and
//! every intermediate it presents). What is the connector's own is
//! [`EdgeRevocations::guard`]: it closes a live tunnel once its edge's certificate is revoked,
//! so a stolen edge key stops getting connectors' traffic without restarting them.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use underpass_pki::revocation::RevocationError;
use underpass_proto::frame::codes;
use underpass_shared::revocation::LiveRevocations;
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

/// The edges' revocation list in force: the shared live list plus the guard of live tunnels.
pub struct EdgeRevocations {
    list: LiveRevocations,
}

/// The list's own operations (`check`, `is_revoked`, `is_configured`, `failure`, `stats`,
/// `reload_now`) are used as they are: the connector adds to the list, it changes none of them.
impl Deref for EdgeRevocations {
    type Target = LiveRevocations;

    fn deref(&self) -> &LiveRevocations {
        &self.list
    }
}

impl EdgeRevocations {
    /// Reads the list once (`None`: no list configured, nothing is revoked). A configured list
    /// that exists but cannot be read or parsed is an error; one that does not exist yet
    /// revokes nothing until it appears.
    pub fn load(path: Option<PathBuf>) -> Result<Arc<Self>, Error> {
        // Only a configured list can fail to load, so the path in the error is always its own.
        let list = LiveRevocations::load(path.clone()).map_err(|source| Error::Load {
            path: path.unwrap_or_default(),
            source,
        })?;
        Ok(Arc::new(EdgeRevocations { list }))
    }

    /// Reloads on change and on SIGHUP (waking the guards), for as long as the connector runs
    /// (returns at once when no list is configured).
    pub async fn watch(self: Arc<Self>) {
        self.list.clone().watch().await
    }

    /// Watches one live tunnel: closes it as soon as the list in force revokes its edge's
    /// certificate; returns then, or when the tunnel closes for another reason. Spawn it
    /// next to the tunnel once the handshake is done.
    pub async fn guard(self: Arc<Self>, conn: TunnelConn) {
        if !self.is_configured() {
            return;
        }
        let Some(leaf) = conn.peer_leaf() else {
            return;
        };
        let mut changes = self.subscribe();
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

    /// The fail-closed rules are tested with the shared list; here, what the connector adds.
    #[test]
    fn an_unreadable_list_is_a_start_up_error_that_names_it() {
        let none = EdgeRevocations::load(None).unwrap();
        assert!(!none.is_configured());

        let path = std::env::temp_dir().join(format!(
            "underpass-connector-revocation-{}.txt",
            std::process::id()
        ));
        std::fs::write(&path, "garbage\n").unwrap();
        let err = EdgeRevocations::load(Some(path.clone())).err().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(err.to_string().contains("revocation_list"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
