//! What the edge knows of a client connection before it reads a request.

/// What the edge knows of the client connection before reading a request.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// `client:<name>` when the client presented a valid client certificate.
    pub cert_principal: Option<String>,
    /// That certificate and the intermediates presented with it, leaf first: re-checked
    /// against the revocation list per request (serials and bulk rules, the issuer too), so
    /// a revocation bites at once.
    pub cert_chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// End of that certificate's validity (Unix seconds): re-checked per request, so a
    /// connection opened just before it expired does not keep its identity afterwards.
    pub cert_not_after: Option<i64>,
    /// The client's address as the edge's socket saw it: recorded in the audit log, and the
    /// source of `X-Forwarded-For`.
    pub peer: Option<std::net::SocketAddr>,
}

impl ConnInfo {
    /// What a verified client certificate chain says (it and its role passed the TLS
    /// verifier); `None` for an empty chain.
    pub fn from_client_chain(chain: &[rustls_pki_types::CertificateDer<'_>]) -> Option<ConnInfo> {
        let leaf = chain.first()?;
        Some(ConnInfo {
            cert_principal: underpass_proto::identity::SpiffeId::from_certificate_der(leaf)
                .ok()
                .map(|id| format!("client:{}", id.name)),
            cert_chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            cert_not_after: underpass_pki::inspect::inspect_der(leaf)
                .ok()
                .map(|info| info.not_after.unix_timestamp()),
            peer: None,
        })
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
        let conn = ConnInfo::from_client_chain(&[der.into()]).expect("a chain");
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
