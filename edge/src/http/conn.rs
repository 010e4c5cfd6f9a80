//! What the edge knows of a client connection before it reads a request.

/// What the edge knows of the client connection before reading a request.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// `client:<name>` when the client presented a valid client certificate.
    pub cert_principal: Option<String>,
    /// Serial of that certificate: re-checked per request, so a revocation bites at once.
    pub cert_serial: Option<String>,
    /// End of that certificate's validity (Unix seconds): re-checked per request, so a
    /// connection opened just before it expired does not keep its identity afterwards.
    pub cert_not_after: Option<i64>,
    /// The client's address as the edge's socket saw it: recorded in the audit log, and the
    /// source of `X-Forwarded-For`.
    pub peer: Option<std::net::SocketAddr>,
}

impl ConnInfo {
    /// What a verified client certificate says (its chain and role passed the TLS verifier).
    pub fn from_client_cert(leaf: &[u8]) -> ConnInfo {
        ConnInfo {
            cert_principal: underpass_proto::identity::SpiffeId::from_certificate_der(leaf)
                .ok()
                .map(|id| format!("client:{}", id.name)),
            cert_serial: underpass_pki::revocation::certificate_serial(leaf).ok(),
            cert_not_after: underpass_pki::inspect::inspect_der(leaf)
                .ok()
                .map(|info| info.not_after.unix_timestamp()),
            peer: None,
        }
    }

    /// Whether the client certificate of this connection has expired by `now`.
    pub fn cert_expired_at(&self, now: std::time::SystemTime) -> bool {
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.cert_not_after.is_some_and(|end| now > end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    use underpass_proto::identity::Role;

    #[test]
    fn a_client_certificate_expires_on_an_open_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        underpass_pki::ca::init(dir.path(), "underpass.local").expect("init");
        let issued =
            underpass_pki::issue::issue(dir.path(), Role::Client, "alice", &[]).expect("issue");
        let der = underpass_pki::inspect::read_certificate(&issued.cert_path).expect("read");
        let conn = ConnInfo::from_client_cert(&der);
        assert_eq!(conn.cert_principal.as_deref(), Some("client:alice"));
        let end = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(issued.not_after.unix_timestamp()).expect("end"));
        assert!(!conn.cert_expired_at(SystemTime::now()));
        assert!(!conn.cert_expired_at(end));
        assert!(conn.cert_expired_at(end + Duration::from_secs(1)));
        // No client certificate: nothing to expire.
        assert!(!ConnInfo::default().cert_expired_at(end + Duration::from_secs(1)));
    }
}
