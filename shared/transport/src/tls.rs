//! TLS configuration: rustls with the ring provider, TLS 1.3 only, everywhere.
//!
//! Certificates are verified with webpki against the deployment CA, and then the peer's
//! SPIFFE identity must carry the expected role in the expected trust domain: the handshake
//! itself fails for an edge certificate presented as a connector, or a client certificate
//! presented as either.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use underpass_proto::frame::ALPN;
use underpass_proto::identity::{IdentityError, Role, SpiffeId};

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
}

/// Decides whether an end-entity certificate has been revoked.
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

impl PeerPolicy {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<SpiffeId, rustls::Error> {
        let other = |e: IdentityError| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        };
        let id = SpiffeId::from_certificate_der(end_entity).map_err(other)?;
        id.expect(self.role, &self.trust_domain).map_err(other)?;
        if self.revoked.as_ref().is_some_and(|f| f(end_entity)) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(id)
    }
}

/// Client-certificate verifier: webpki chain check, then role, trust domain and revocation.
#[derive(Debug)]
struct RoleClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    policy: PeerPolicy,
}

impl ClientCertVerifier for RoleClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.policy.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Server-certificate verifier: webpki chain and name check, then role and trust domain.
#[derive(Debug)]
struct RoleServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    policy: PeerPolicy,
}

impl ServerCertVerifier for RoleServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.policy.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn client_verifier(
    roots: Arc<RootCertStore>,
    policy: PeerPolicy,
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    if optional {
        builder = builder.allow_unauthenticated();
    }
    let inner = builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    Ok(Arc::new(RoleClientVerifier { inner, policy }))
}

/// rustls server config for the edge's tunnel listener: connectors must authenticate.
pub fn tunnel_server_crypto(
    creds: &Credentials,
    connector_policy: PeerPolicy,
) -> Result<rustls::ServerConfig, TlsError> {
    let verifier = client_verifier(creds.roots.clone(), connector_policy, false)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())?;
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
    let inner = WebPkiServerVerifier::builder_with_provider(creds.roots.clone(), provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(RoleServerVerifier {
        inner,
        policy: edge_policy,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // only to install our verifier, which wraps webpki's own
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(creds.chain.clone(), creds.key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// rustls server config for the edge's HTTPS client listener. With `client_ca`, clients may
/// present a client certificate of that CA (optional: other credentials remain possible).
pub fn https_server_crypto(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<(Arc<RootCertStore>, PeerPolicy)>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let verifies_clients = client_ca.is_some();
    let builder = match client_ca {
        Some((roots, policy)) => {
            builder.with_client_cert_verifier(client_verifier(roots, policy, true)?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if verifies_clients {
        no_resumption(&mut config);
    }
    Ok(config)
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

/// The leaf certificate of a QUIC peer (it passed our verifier already).
pub fn peer_leaf(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.into_iter().next())
}
