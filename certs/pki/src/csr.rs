//! Certificate requests (PKCS#10): making one on the connector ([`new`]), and checking one on
//! the issuing side ([`check_request`], used by [`crate::issuer::issue_connector`]).
//!
//! The issuing side takes **only the public key** from a request. Everything a request may ask
//! for is either refused (another identity, a CA certificate, an extension we do not know) or
//! ignored (subject, key usages): the certificate is made from our own parameters.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, IsCa, KeyPair,
    SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use underpass_proto::identity::{IdentityError, Role, SpiffeId};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::FromDer;

use crate::Error;

/// Largest request accepted, PEM or DER (a real one is well under 1 KiB).
pub const MAX_CSR_LEN: usize = 8 * 1024;

/// Why a certificate request was refused (or could not be honoured).
#[derive(Debug, thiserror::Error)]
pub enum CsrRefusal {
    #[error("the certificate request is {0} bytes long (at most {MAX_CSR_LEN})")]
    TooLarge(usize),
    #[error("not a certificate request (PKCS#10, PEM or DER): {0}")]
    Malformed(String),
    #[error("the certificate request's signature does not verify")]
    BadSignature,
    #[error(
        "the certificate request's key is {0}: only ECDSA P-256 (signed with SHA-256) and \
         Ed25519 keys are accepted"
    )]
    KeyAlgorithm(String),
    #[error("the certificate request asks for {requested}, but this enrollment is for {expected}")]
    OtherIdentity { requested: String, expected: String },
    #[error("the certificate request asks for a CA certificate")]
    RequestsCa,
    #[error("the certificate request carries an extension this issuer does not accept")]
    UnsupportedExtension,
    #[error(transparent)]
    Name(#[from] IdentityError),
    #[error("the issuer expired at {0}: rotate it (`underpass-certs issuer --rotate`)")]
    IssuerExpired(String),
    #[error("could not sign the certificate: {0}")]
    Sign(String),
    #[error("the system random number generator failed")]
    Random,
}

/// A new P-256 key and a request for `spiffe://<trust_domain>/connector/<name>` signed with it:
/// `(key PEM (PKCS#8), request PEM)`. The key never leaves the caller.
pub fn new(name: &str, trust_domain: &str) -> Result<(String, String), Error> {
    let id = SpiffeId::new(trust_domain, Role::Connector, name)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Checks a request (PEM or DER) for the connector identity `expected` and returns its public
/// key. Refuses: anything that does not parse, a bad signature, a key other than P-256 or
/// Ed25519, any SAN other than exactly `expected` (none at all is fine), a CA request, and any
/// extension beyond SAN, key usage, extended key usage and basic constraints.
pub fn check_request(csr: &[u8], expected: &SpiffeId) -> Result<rcgen::PublicKey, CsrRefusal> {
    if csr.len() > MAX_CSR_LEN {
        return Err(CsrRefusal::TooLarge(csr.len()));
    }
    let der: CertificateSigningRequestDer<'static> = if csr.trim_ascii_start().starts_with(b"-----")
    {
        CertificateSigningRequestDer::from_pem_slice(csr)
            .map_err(|e| CsrRefusal::Malformed(format!("no PEM CERTIFICATE REQUEST: {e}")))?
    } else {
        CertificateSigningRequestDer::from(csr.to_vec())
    };

    // The key type first, from the raw request, so an RSA or P-384 request gets that answer.
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| CsrRefusal::Malformed(e.to_string()))?;
    let spki = &parsed.certification_request_info.subject_pki;
    let key_oid = &spki.algorithm.algorithm;
    let want = if *key_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if curve.as_ref() != Some(&OID_EC_P256) {
            let name =
                curve.map_or_else(|| "EC without a named curve".into(), |c| format!("EC {c}"));
            return Err(CsrRefusal::KeyAlgorithm(name));
        }
        &rcgen::PKCS_ECDSA_P256_SHA256
    } else if *key_oid == OID_SIG_ED25519 {
        &rcgen::PKCS_ED25519
    } else {
        return Err(CsrRefusal::KeyAlgorithm(format!("of type {key_oid}")));
    };

    let request = CertificateSigningRequestParams::from_der(&der).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CsrRefusal::BadSignature,
        rcgen::Error::UnsupportedExtension => CsrRefusal::UnsupportedExtension,
        rcgen::Error::UnsupportedSignatureAlgorithm => {
            CsrRefusal::KeyAlgorithm("signed with an unsupported algorithm".into())
        }
        other => CsrRefusal::Malformed(other.to_string()),
    })?;
    if request.public_key.algorithm() != want {
        return Err(CsrRefusal::KeyAlgorithm(
            "signed with an algorithm that does not match it".into(),
        ));
    }

    let expected_uri = expected.to_string();
    for san in &request.params.subject_alt_names {
        let requested = match san {
            SanType::URI(uri) if uri.as_str() == expected_uri => continue,
            SanType::URI(uri) => uri.as_str().to_owned(),
            SanType::DnsName(dns) => format!("DNS name {}", dns.as_str()),
            SanType::Rfc822Name(mail) => format!("email address {}", mail.as_str()),
            SanType::IpAddress(ip) => format!("IP address {ip}"),
            other => format!("{other:?}"),
        };
        return Err(CsrRefusal::OtherIdentity {
            requested,
            expected: expected_uri,
        });
    }
    if matches!(request.params.is_ca, IsCa::Ca(_)) {
        return Err(CsrRefusal::RequestsCa);
    }
    Ok(request.public_key)
}

#[cfg(test)]
mod tests;
