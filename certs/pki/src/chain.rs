//! Checking a certificate chain handed back by an edge (enrollment's `EnrollAnswer::Issued`,
//! renewal's `Renewed`) before a connector writes it: the leaf is the identity asked for, for
//! the key the connector holds, signed by the issuer that follows it, which is signed by the
//! pinned root in the returned bundle. A check of what the edge answered, not a replacement for
//! the TLS verifier that later uses the files.

use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use underpass_proto::identity::SpiffeId;
use x509_parser::certificate::X509Certificate;

use crate::token::fingerprint;

/// Why an issued chain is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the answer holds no usable certificate chain: {0}")]
    Malformed(String),
    #[error("the certificate is for {got}, not {expected}")]
    OtherIdentity { got: String, expected: String },
    #[error("the certificate is not for this connector's key")]
    OtherKey,
    #[error("the certificate is not signed by the issuer that follows it")]
    NotSignedByIssuer,
    #[error(
        "the issuer is not signed by the pinned CA (fingerprint {pin}): wrong edge or wrong PKI"
    )]
    NotUnderPinnedCa { pin: String },
    #[error("the CA bundle does not contain the pinned CA (fingerprint {pin})")]
    PinnedCaMissing { pin: String },
    #[error("the certificate is not valid now (valid {not_before} to {not_after})")]
    NotValidNow {
        not_before: String,
        not_after: String,
    },
}

/// What a checked chain says.
#[derive(Debug, Clone)]
pub struct CheckedChain {
    pub identity: SpiffeId,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Checks `chain_pem` (leaf then issuer) against `key_pem` (the key the caller generated),
/// `expected` (the identity it asked for), and the root pinned by `ca_sha256`, which must be
/// in `ca_pem` (the bundle the edge returned) and must have signed the issuer. The leaf must
/// be valid at `now`.
pub fn check_issued_chain(
    chain_pem: &str,
    ca_pem: &str,
    key_pem: &str,
    expected: &SpiffeId,
    ca_sha256: &[u8; 32],
    now: OffsetDateTime,
) -> Result<CheckedChain, ChainError> {
    let malformed = |what: &str| ChainError::Malformed(what.to_owned());
    let pin = crate::hex(ca_sha256);
    let chain = certs(chain_pem)?;
    let bundle = certs(ca_pem)?;
    let (Some(leaf_der), Some(issuer_der)) = (chain.first(), chain.get(1)) else {
        return Err(malformed("expected the certificate followed by its issuer"));
    };
    let root_der = bundle
        .iter()
        .find(|c| &fingerprint(c.as_ref()) == ca_sha256)
        .ok_or_else(|| ChainError::PinnedCaMissing { pin: pin.clone() })?;
    let leaf = parse(leaf_der)?;
    let issuer = parse(issuer_der)?;
    let root = parse(root_der)?;

    let identity = SpiffeId::from_certificate_der(leaf_der.as_ref())
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    if &identity != expected {
        return Err(ChainError::OtherIdentity {
            got: identity.to_string(),
            expected: expected.to_string(),
        });
    }
    let key = KeyPair::from_pem(key_pem).map_err(|e| ChainError::Malformed(e.to_string()))?;
    if leaf.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(ChainError::OtherKey);
    }
    if leaf.verify_signature(Some(issuer.public_key())).is_err() {
        return Err(ChainError::NotSignedByIssuer);
    }
    if issuer.verify_signature(Some(root.public_key())).is_err() {
        return Err(ChainError::NotUnderPinnedCa { pin });
    }
    let not_before = leaf.validity().not_before.to_datetime();
    let not_after = leaf.validity().not_after.to_datetime();
    if now < not_before || now >= not_after {
        return Err(ChainError::NotValidNow {
            not_before: crate::rfc3339(not_before),
            not_after: crate::rfc3339(not_after),
        });
    }
    Ok(CheckedChain {
        identity,
        serial: crate::revocation::canonical_serial(leaf.raw_serial()),
        not_before,
        not_after,
    })
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ChainError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ChainError::Malformed(format!("bad PEM: {e}")))
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, ChainError> {
    x509_parser::parse_x509_certificate(der.as_ref())
        .map(|(_, c)| c)
        .map_err(|e| ChainError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests;
