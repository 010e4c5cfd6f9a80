//! TLS configuration: rustls with the ring provider, TLS 1.3 only, everywhere.
//!
//! Certificates are verified with webpki against the deployment CA, and then the peer's
//! SPIFFE identity must carry the expected role in the expected trust domain: the handshake
//! itself fails for an edge certificate presented as a connector, or a client certificate
//! presented as either. A certificate that an intermediate (the online connector issuer) signed
//! must be a connector identity, and revocation covers the presented intermediates too.
//!
//! Certificates and roots can be replaced while running ([`ReloadingCert`],
//! [`ReloadingRoots`]): a config is built once, every new handshake reads the values in force,
//! and live connections keep what they negotiated.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use underpass_proto::frame::ALPN;
use underpass_proto::identity::{IdentityError, Role, SpiffeId};

mod enroll;
pub mod reauth;
mod reloading;
#[cfg(test)]
mod tests;
mod verify;

pub use enroll::{
    enroll_client_crypto, enroll_server_crypto, enroll_server_crypto_reloading, PinMismatch,
};
pub use reloading::{ReloadingCert, ReloadingRoots, RootsSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read private key from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("invalid CA certificate in {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate verifier: {0}")]
    Verifier(String),
    #[error("QUIC does not accept this TLS configuration: {0}")]
    Quic(String),
    /// The certificate and the private key do not belong together.
    #[error("certificate {cert} does not match private key {key}: {reason}")]
    KeyMismatch {
        cert: String,
        key: String,
        reason: String,
    },
    /// A replacement certificate carries another identity than the one required.
    #[error("certificate {path} has the wrong identity: {reason}")]
    Identity { path: String, reason: String },
}

/// Decides whether a certificate has been revoked. Called for the end entity and for every
/// intermediate the peer presents.
pub type RevocationCheck = Arc<dyn Fn(&CertificateDer<'_>) -> bool + Send + Sync>;

/// The one crypto provider of Underpass.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain, private key and the CA they chain to, as loaded from PEM files.
pub struct Credentials {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Arc<RootCertStore>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
        }
    }
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificates {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// PEM certificates from memory (`what` names them in errors), at least one.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificates {
        path: what.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Ca {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

impl Credentials {
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        Ok(Credentials {
            chain: load_certs(cert)?,
            key: load_key(key)?,
            roots: load_roots(ca)?,
        })
    }

    /// The SPIFFE identity of our own leaf certificate.
    pub fn identity(&self) -> Result<SpiffeId, IdentityError> {
        let leaf = self.chain.first().ok_or(IdentityError::Missing)?;
        SpiffeId::from_certificate_der(leaf)
    }
}

/// What a verifier demands of the peer beyond a valid chain.
#[derive(Clone)]
pub struct PeerPolicy {
    pub role: Role,
    pub trust_domain: String,
    pub revoked: Option<RevocationCheck>,
}

impl std::fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPolicy")
            .field("role", &self.role)
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

/// Why [`PeerPolicy::check`] refused a chain that webpki accepted.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The online issuer (an intermediate) can only mint connector identities: a leaf of any
    /// other role under it means a misused or stolen issuer key.
    #[error("an intermediate may issue connector identities only; refused {0}")]
    IntermediateIssued(SpiffeId),
    #[error("cannot read the certificate's issuer: {0}")]
    Issuer(String),
}

impl PeerPolicy {
    /// The checks after webpki's chain validation: the issuer rule (a leaf not signed directly
    /// by a root, i.e. whose issuer DN is none of `root_subjects`, must be a connector), role
    /// and trust domain, then revocation of the end entity and of every presented
    /// intermediate (so revoking an issuer refuses all its leaves).
    ///
    /// `root_subjects` are the roots' subject names as DER contents (without the SEQUENCE
    /// header), as in [`rustls_pki_types::TrustAnchor::subject`]. Sound because webpki only
    /// tries an issuer whose subject equals the leaf's issuer DN: a leaf signed by an
    /// intermediate key cannot pass as signed by a root.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        root_subjects: &[Vec<u8>],
    ) -> Result<SpiffeId, rustls::Error> {
        let id = SpiffeId::from_certificate_der(end_entity).map_err(invalid)?;
        if id.role != Role::Connector && !issued_by_root(end_entity, root_subjects)? {
            return Err(invalid(PolicyError::IntermediateIssued(id)));
        }
        id.expect(self.role, &self.trust_domain).map_err(invalid)?;
        if let Some(revoked) = &self.revoked {
            if std::iter::once(end_entity)
                .chain(intermediates)
                .any(|cert| revoked(cert))
            {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                ));
            }
        }
        Ok(id)
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// Whether the leaf's issuer DN is one of the roots' subjects.
fn issued_by_root(
    leaf: &CertificateDer<'_>,
    root_subjects: &[Vec<u8>],
) -> Result<bool, rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| invalid(PolicyError::Issuer(e.to_string())))?;
    let issuer = der_contents(cert.issuer().as_raw());
    Ok(root_subjects.iter().any(|s| s.as_slice() == issuer))
}

/// The contents of a DER SEQUENCE (what webpki keeps as a trust anchor's subject); anything
/// else is returned unchanged (and then matches no root).
fn der_contents(tlv: &[u8]) -> &[u8] {
    let (Some(&0x30), Some(&first)) = (tlv.first(), tlv.get(1)) else {
        return tlv;
    };
    let header = if first < 0x80 {
        2
    } else {
        2 + usize::from(first & 0x7f)
    };
    tlv.get(header..).unwrap_or(tlv)
}

/// rustls server config for the edge's tunnel listener: connectors must authenticate.
pub fn tunnel_server_crypto(
    creds: &Credentials,
    connector_policy: PeerPolicy,
) -> Result<rustls::ServerConfig, TlsError> {
    let (cert, roots) = fixed(creds)?;
    let verifier = verify::client_verifier(roots, connector_policy, false, true)?;
    tunnel_server(cert, verifier)
}

/// [`tunnel_server_crypto`] whose certificate and CA bundle can be replaced while running:
/// each new handshake uses the values in force, live tunnels are untouched.
pub fn tunnel_server_crypto_reloading(
    cert: Arc<ReloadingCert>,
    roots: Arc<ReloadingRoots>,
    connector_policy: PeerPolicy,
) -> Result<rustls::ServerConfig, TlsError> {
    let verifier = verify::client_verifier(roots, connector_policy, false, false)?;
    tunnel_server(cert, verifier)
}

fn tunnel_server(
    cert: Arc<ReloadingCert>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT stays off: tool calls are not idempotent and must not be replayable.
    config.max_early_data_size = 0;
    no_resumption(&mut config);
    Ok(config)
}

/// rustls client config for the connector: it must see an edge certificate and show its own.
pub fn tunnel_client_crypto(
    creds: &Credentials,
    edge_policy: PeerPolicy,
) -> Result<rustls::ClientConfig, TlsError> {
    let (cert, roots) = fixed(creds)?;
    tunnel_client_crypto_reloading(cert, roots, edge_policy)
}

/// [`tunnel_client_crypto`] whose certificate and CA bundle can be replaced while running
/// (renewal, CA rotation): each new handshake uses the values in force.
pub fn tunnel_client_crypto_reloading(
    cert: Arc<ReloadingCert>,
    roots: Arc<ReloadingRoots>,
    edge_policy: PeerPolicy,
) -> Result<rustls::ClientConfig, TlsError> {
    let verifier = verify::server_verifier(roots, edge_policy)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // only to install our verifier, which wraps webpki's own
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(cert);
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// rustls client config for a plain HTTPS server outside the product (an OTLP collector):
/// TLS 1.3, the server's certificate checked by webpki against the CA bundle at `ca` (PEM;
/// certificates of it that webpki cannot use, as a system bundle may hold, are skipped), no
/// client certificate, HTTP/1.1.
pub fn https_client_crypto(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _skipped) = roots.add_parsable_certificates(load_certs(ca)?);
    if added == 0 {
        return Err(TlsError::Ca {
            path: ca.display().to_string(),
            reason: "no usable CA certificate in the file".into(),
        });
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// rustls server config for the edge's HTTPS client listener. With `client_ca`, clients may
/// present a client certificate of that CA (optional: other credentials remain possible).
pub fn https_server_crypto(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<(Arc<RootCertStore>, PeerPolicy)>,
) -> Result<rustls::ServerConfig, TlsError> {
    let cert = Arc::new(ReloadingCert::from_der(chain, key)?);
    let client_ca = client_ca.map(|(roots, policy)| (Arc::new(ReloadingRoots::new(roots)), policy));
    https_server(cert, client_ca, true)
}

/// [`https_server_crypto`] whose certificate and client CA bundle can be replaced while
/// running. The client CA names are not sent as hints (they may change; TLS 1.3 needs none).
pub fn https_server_crypto_reloading(
    cert: Arc<ReloadingCert>,
    client_ca: Option<(Arc<ReloadingRoots>, PeerPolicy)>,
) -> Result<rustls::ServerConfig, TlsError> {
    https_server(cert, client_ca, false)
}

/// rustls server config for the edge's admin listener (HTTP/1.1): a client certificate is
/// optional at the handshake; one that is presented must chain to `roots` (read at every
/// handshake), pass the issuer rule, be of `policy`'s trust domain and not be revoked, in any
/// role: the admin listener reads the role per request and answers a non-operator 403 with
/// the reason, which a handshake failure could not say.
pub fn admin_server_crypto_reloading(
    cert: Arc<ReloadingCert>,
    roots: Arc<ReloadingRoots>,
    policy: PeerPolicy,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verify::any_role_client_verifier(roots, policy)?)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    no_resumption(&mut config);
    Ok(config)
}

fn https_server(
    cert: Arc<ReloadingCert>,
    client_ca: Option<(Arc<ReloadingRoots>, PeerPolicy)>,
    hints: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let verifies_clients = client_ca.is_some();
    let builder = match client_ca {
        Some((roots, policy)) => {
            builder.with_client_cert_verifier(verify::client_verifier(roots, policy, true, hints)?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if verifies_clients {
        no_resumption(&mut config);
    }
    Ok(config)
}

/// Fixed credentials in the reloading types (never reloaded): one code path for both.
fn fixed(creds: &Credentials) -> Result<(Arc<ReloadingCert>, Arc<ReloadingRoots>), TlsError> {
    let cert = ReloadingCert::from_der(creds.chain.clone(), creds.key.clone_key())?;
    Ok((
        Arc::new(cert),
        Arc::new(ReloadingRoots::new(creds.roots.clone())),
    ))
}

/// A resumed TLS 1.3 session skips certificate verification, and with it the role and
/// revocation checks: every handshake that authenticates a peer certificate must be a full one.
fn no_resumption(config: &mut rustls::ServerConfig) {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}

pub fn tunnel_server_config(crypto: rustls::ServerConfig) -> Result<quinn::ServerConfig, TlsError> {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(crate::quic::edge_transport()));
    Ok(config)
}

pub fn tunnel_client_config(crypto: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(crate::quic::tunnel_transport()));
    Ok(config)
}

/// The certificate chain of a QUIC peer, leaf first (it passed our verifier already).
pub fn peer_chain(conn: &quinn::Connection) -> Vec<CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|certs| *certs)
        .unwrap_or_default()
}
