//! Re-authentication of a live tunnel with a renewed certificate.
//!
//! A connector renews its certificate through one edge; its tunnels to every other edge were
//! authenticated with the old certificate and would close when it ends. Instead of dialling
//! again, the connector presents the new chain on each tunnel's control stream with a proof
//! that it holds the new key: a signature, by that key, over a value both ends export from
//! *this* connection's TLS secrets (RFC 8446 §7.5, label [`EXPORTER_LABEL`]). A proof cannot
//! be replayed on another tunnel, and a stolen certificate without its key proves nothing.
//!
//! The edge checks the chain as its handshake would (webpki, role, trust domain, issuer rule,
//! revocation: the same verifier and policy) and the signature; the caller then checks that
//! the identity is the tunnel's own. Plain functions of their input, no I/O.

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::{CertificateDer, UnixTime};
use underpass_proto::identity::{IdentityError, SpiffeId};

use super::{provider, verify, PeerPolicy, ReloadingRoots, TlsError};

/// The exporter label both ends derive the binding with.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-underpass-tunnel-reauth";
/// Length of the binding, in bytes.
pub const BINDING_LEN: usize = 32;
/// Prefix of the signed message: names the purpose, so the signature cannot stand for
/// anything else the key signs (TLS handshakes sign other prefixes).
const CONTEXT: &[u8] = b"underpass tunnel re-authentication, version 1\0";

/// Schemes a connector may sign with, in order of preference (TLS 1.3 schemes only).
const SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
];

/// Why a re-authentication is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReauthError {
    #[error("no certificate was presented")]
    NoCertificate,
    #[error("the certificate is refused: {0}")]
    Certificate(rustls::Error),
    #[error("the certificate has no Underpass identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("signature scheme {0:#06x} is not accepted")]
    Scheme(u16),
    #[error("the proof of key possession does not verify")]
    Signature,
    #[error("this tunnel cannot export its binding")]
    Binding,
    #[error("the key cannot sign with any accepted scheme")]
    Key,
}

/// A proof that the holder of a certificate's key made it for one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// TLS `SignatureScheme` code.
    pub scheme: u16,
    pub signature: Vec<u8>,
}

fn message(binding: &[u8; BINDING_LEN]) -> Vec<u8> {
    [CONTEXT, binding.as_slice()].concat()
}

/// The connector's side: signs the tunnel's `binding` with the key of `key`.
pub fn prove(key: &CertifiedKey, binding: &[u8; BINDING_LEN]) -> Result<Proof, ReauthError> {
    let signer = key.key.choose_scheme(SCHEMES).ok_or(ReauthError::Key)?;
    let signature = signer
        .sign(&message(binding))
        .map_err(|_| ReauthError::Key)?;
    Ok(Proof {
        scheme: u16::from(signer.scheme()),
        signature,
    })
}

/// The edge's side: checks a chain presented on a live tunnel as the tunnel handshake would,
/// and its proof.
pub struct Reauthenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for Reauthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reauthenticator").finish_non_exhaustive()
    }
}

impl Reauthenticator {
    /// Checks chains against `roots` (read at each check) and `policy`: pass what the tunnel
    /// listener's verifier was built with.
    pub fn new(roots: Arc<ReloadingRoots>, policy: PeerPolicy) -> Result<Self, TlsError> {
        Ok(Reauthenticator {
            verifier: verify::client_verifier(roots, policy, false, false)?,
        })
    }

    /// The identity `chain` (leaf first) proves, if it verifies now and `proof` is its key's
    /// signature over `binding`.
    pub fn check(
        &self,
        chain: &[CertificateDer<'static>],
        binding: &[u8; BINDING_LEN],
        proof: &Proof,
    ) -> Result<SpiffeId, ReauthError> {
        let (leaf, intermediates) = chain.split_first().ok_or(ReauthError::NoCertificate)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(ReauthError::Certificate)?;
        let scheme = SignatureScheme::from(proof.scheme);
        if !SCHEMES.contains(&scheme) {
            return Err(ReauthError::Scheme(proof.scheme));
        }
        let algorithm = provider()
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == scheme)
            .and_then(|(_, algs)| algs.first().copied())
            .ok_or(ReauthError::Scheme(proof.scheme))?;
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| ReauthError::Certificate(rustls::Error::General(e.to_string())))?;
        cert.verify_signature(algorithm, &message(binding), &proof.signature)
            .map_err(|_| ReauthError::Signature)?;
        Ok(SpiffeId::from_certificate_der(leaf)?)
    }
}
