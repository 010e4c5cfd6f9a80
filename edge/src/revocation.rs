//! The revocation list the edge enforces on connectors and clients: `revocation_list`
//! (written by `underpass-certs revoke`), loaded, watched and failing closed as the one
//! [`LiveRevocations`] both daemons share (see `underpass_shared::revocation`: the fail-closed
//! rules and the reload log lines live there).
//!
//! What is the edge's own is what a revocation does to live tunnels: on every reload (and
//! SIGHUP), tunnels whose connector holds a revoked certificate (leaf or issuer, from the
//! handshake or a later renewal) are closed, and a renewal is refused to such a tunnel.
//! Handshakes consult the list through `check`, and client certificates are re-checked per
//! request (`is_revoked`), so a revocation takes effect without restarting anything.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use underpass_pki::revocation::RevocationList;
use underpass_proto::frame::codes;
use underpass_shared::revocation::LiveRevocations;

use crate::tunnels::registry::{Registry, Tunnel};

/// The edge's revocation list: the shared live list plus the closing of revoked tunnels.
pub struct Revocations {
    list: LiveRevocations,
}

/// The list's own operations (`check`, `is_revoked`, `failure`, `stats`, `reload_now`) are
/// used as they are: the edge adds to the list, it changes none of them.
impl Deref for Revocations {
    type Target = LiveRevocations;

    fn deref(&self) -> &LiveRevocations {
        &self.list
    }
}

impl Revocations {
    /// Reads the list once; a configured but unreadable or malformed list is a start-up error
    /// (running without the revocations someone asked for would be worse than not running).
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Revocations {
            list: LiveRevocations::load(path)?,
        }))
    }

    /// Before issuing a certificate by renewal over `tunnel`: re-reads the list at once (a
    /// `revoke` the one-second poll has not seen yet counts) and says whether every
    /// certificate the tunnel holds is still good. Without it, a connector revoked by
    /// `before now` could renew within that second and get a certificate the rule misses.
    pub fn may_renew(&self, tunnel: &Tunnel) -> bool {
        self.reload_now();
        !self.tunnel_revoked(&self.current(), tunnel)
    }

    /// Reloads on change and on SIGHUP; closes tunnels of revoked connectors.
    pub async fn watch(self: Arc<Self>, registry: Arc<Registry>) {
        if !self.is_configured() {
            return;
        }
        tokio::spawn(self.clone().close_revoked(registry));
        self.list.clone().watch().await
    }

    /// Whether a certificate a live tunnel's connector holds or held is revoked, by serial
    /// or rule: the handshake's leaf and issuer, and those of renewals and re-authentications.
    fn tunnel_revoked(&self, list: &RevocationList, tunnel: &Tunnel) -> bool {
        tunnel.held().iter().any(|cert| list.is_revoked(cert))
    }

    /// Subscriber of the list: whenever it changes (or SIGHUP asks), closes the live tunnels
    /// of connectors whose certificates it revokes (by serial or by a bulk rule).
    async fn close_revoked(self: Arc<Self>, registry: Arc<Registry>) {
        let mut changes = self.subscribe();
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
