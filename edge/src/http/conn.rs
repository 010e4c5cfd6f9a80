//! What the edge knows of a client connection before it reads a request.

/// What the edge knows of the client connection before reading a request.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// `client:<name>` when the client presented a valid client certificate.
    pub cert_principal: Option<String>,
    /// Serial of that certificate: re-checked per request, so a revocation bites at once.
    pub cert_serial: Option<String>,
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
            peer: None,
        }
    }
}
