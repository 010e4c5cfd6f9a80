//! TLS of the enrollment endpoint (ALPN `underpass-enroll/1`, on the edge's TCP tunnel port).
//!
//! The connector enrolling has no certificate and no CA file yet; its token pins the CA by
//! the SHA-256 of its certificate. So the edge presents its certificate followed by the CA
//! bundle, and the connector trusts the chain only if one of the presented certificates is
//! the pinned CA and the edge's certificate verifies under it (webpki, with the name), as an
//! edge identity of the token's trust domain ([`PeerPolicy::check`]). No client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use underpass_proto::enroll::ALPN;
use underpass_proto::identity::Role;

use super::{no_resumption, provider, PeerPolicy, ReloadingCert, ReloadingRoots, TlsError};

/// The edge's enrollment config from files read once: its tunnel certificate (`cert`, `key`)
/// presented with the CA bundle `ca` after it (see [`enroll_server_crypto_reloading`]).
pub fn enroll_server_crypto(
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    enroll_server_crypto_reloading(
        Arc::new(ReloadingCert::load(cert, key)?),
        Arc::new(ReloadingRoots::load(ca)?),
    )
}

/// The edge's enrollment config over the tunnel certificate and CA bundle in force: every
/// handshake presents the pair `cert` holds then, followed by the certificates of the bundle
/// `roots` holds then (so a renewed edge certificate or a rotated CA is what the next
/// connector enrolling sees, without a restart). TLS 1.3, no client certificate, ALPN
/// [`ALPN`] only.
pub fn enroll_server_crypto_reloading(
    cert: Arc<ReloadingCert>,
    roots: Arc<ReloadingRoots>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertWithCa { cert, roots }));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    no_resumption(&mut config);
    Ok(config)
}

/// The certificate in force with the CA bundle in force appended. Built per handshake: the
/// endpoint is rate-limited and a chain is a few kilobytes, so no cache to keep in step.
#[derive(Debug)]
struct CertWithCa {
    cert: Arc<ReloadingCert>,
    roots: Arc<ReloadingRoots>,
}

impl ResolvesServerCert for CertWithCa {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pair = self.cert.current();
        let snapshot = self.roots.snapshot();
        let mut chain = pair.cert.clone();
        for root in &snapshot.certs {
            if !chain.contains(root) {
                chain.push(root.clone());
            }
        }
        Some(Arc::new(CertifiedKey::new(chain, pair.key.clone())))
    }
}

/// The connector's enrollment config: trusts an edge only under the CA whose certificate
/// hashes (SHA-256) to `ca_sha256`, with an edge identity of `trust_domain`.
pub fn enroll_client_crypto(
    ca_sha256: [u8; 32],
    trust_domain: &str,
) -> Result<rustls::ClientConfig, TlsError> {
    let verifier = Arc::new(PinnedEdgeVerifier {
        ca_sha256,
        policy: PeerPolicy {
            role: Role::Edge,
            trust_domain: trust_domain.to_owned(),
            revoked: None,
        },
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Why the edge's chain does not contain the pinned CA.
#[derive(Debug, thiserror::Error)]
#[error(
    "the edge does not present the CA the token pins (SHA-256 {0}): a token of another \
     deployment, or not an Underpass edge"
)]
pub struct PinMismatch(String);

#[derive(Debug)]
struct PinnedEdgeVerifier {
    ca_sha256: [u8; 32],
    policy: PeerPolicy,
}

impl ServerCertVerifier for PinnedEdgeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = |c: &&CertificateDer<'_>| {
            ring::digest::digest(&ring::digest::SHA256, c.as_ref()).as_ref() == self.ca_sha256
        };
        let Some(root) = intermediates.iter().find(pinned) else {
            let hex: String = self.ca_sha256.iter().map(|b| format!("{b:02x}")).collect();
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(hex)))),
            ));
        };
        let mut store = RootCertStore::empty();
        store.add(root.clone().into_owned())?;
        let roots = ReloadingRoots::new(Arc::new(store));
        let snapshot = roots.snapshot();
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| !pinned(c))
            .cloned()
            .collect();
        WebPkiServerVerifier::builder_with_provider(snapshot.store.clone(), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &others, server_name, ocsp_response, now)?;
        self.policy.check(end_entity, &others, &snapshot.subjects)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
