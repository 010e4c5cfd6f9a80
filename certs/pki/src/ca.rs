//! The deployment CA: creation (`init`) and loading it to sign leaves.
//!
//! **Where the trust domain lives.** The CA certificate carries its trust domain as a single
//! URI SAN `spiffe://<trust-domain>` — the SPIFFE "trust domain ID", the same URI form as the
//! leaves' identities minus the path — and also, for humans, in its subject CN
//! `Underpass CA <trust-domain>`. [`ca_trust_domain`] reads the URI SAN and falls back to the
//! CN only when the SAN is absent. The SAN is the robust source: it is a typed, validated
//! field that nobody edits for cosmetic reasons, whereas a CN is free text. A SAN on a CA
//! certificate plays no part in path validation (rustls/webpki ignore it), so it is harmless.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use underpass_proto::identity::{validate_trust_domain, IdentityError};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::{files, inspect, revocation, Error, CA_CERT_FILE, CA_KEY_FILE};

/// CA certificate lifetime: long, because replacing a CA means re-issuing everything.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// Leaf certificate lifetime: short, so a leaked key stops working on its own.
pub const LEAF_VALIDITY: Duration = Duration::days(90);
/// Certificates start this long before "now", so a peer whose clock is a little behind does
/// not reject a certificate fresh off the press.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Prefix of the CA's subject CN; the trust domain follows it.
const CA_CN_PREFIX: &str = "Underpass CA ";

/// What `init` created.
#[derive(Debug, Clone)]
pub struct CaSummary {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub trust_domain: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// Creates `dir` if needed and a new CA in it: `ca.crt` (mode 0644) and `ca.key` (0600).
/// Refuses if either file exists.
///
/// The CA's path length is 1: it signs leaves and the connector issuer (`issuer` module), which
/// signs leaves. CAs made before the issuer existed have path length 0; rustls/webpki ignore
/// a trust anchor's path length, so they keep working with an issuer.
pub fn init(dir: &Path, trust_domain: &str) -> Result<CaSummary, Error> {
    init_with_path_len(dir, trust_domain, 1)
}

/// [`init`] with an explicit path length (tests pin that old, path-length-0 CAs still work).
pub(crate) fn init_with_path_len(
    dir: &Path,
    trust_domain: &str,
    path_len: u8,
) -> Result<CaSummary, Error> {
    validate_trust_domain(trust_domain)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    files::ensure_absent(&[&cert_path, &key_path])?;

    let key = KeyPair::generate()?;
    let now = now();
    let serial = random_serial()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{CA_CN_PREFIX}{trust_domain}"));

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(serial.clone());
    let cert = params.self_signed(&key)?;

    files::write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
    Ok(CaSummary {
        cert_path,
        key_path,
        trust_domain: trust_domain.to_owned(),
        serial: revocation::canonical_serial(&serial.to_bytes()),
        not_after: params.not_after,
    })
}

/// A CA loaded from disk, checked and ready to sign.
pub(crate) struct LoadedCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub trust_domain: String,
    pub not_after: OffsetDateTime,
}

/// Loads `dir/ca.crt` and `dir/ca.key`, checking that the certificate is a usable CA, still
/// valid, and that the key belongs to it (a mismatched key would produce leaves nobody can
/// verify, discovered only at connection time).
pub(crate) fn load(dir: &Path) -> Result<LoadedCa, Error> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let der = match inspect::read_certificate(&cert_path) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoCa {
                dir: dir.to_path_buf(),
            })
        }
        other => other?,
    };
    let key_pem = match std::fs::read_to_string(&key_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::CaKeyMissing { path: key_path })
        }
        Err(e) => return Err(Error::io(&key_path, e)),
    };

    let bad_cert = |reason: String| Error::BadCertificate {
        path: cert_path.clone(),
        reason,
    };
    let (_, x509) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad_cert(format!("not a certificate: {e}")))?;
    let trust_domain = trust_domain_of(&x509).map_err(|e| bad_cert(e.to_string()))?;
    let not_after = x509.validity().not_after.to_datetime();
    if not_after <= OffsetDateTime::now_utc() {
        return Err(Error::CaExpired {
            path: cert_path,
            at: crate::rfc3339(not_after),
        });
    }
    // rcgen rebuilds the issuer name from the subject and only supports one attribute per
    // RDN (it would panic on an empty one); check first so a foreign CA is an error instead.
    if x509.subject().iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(bad_cert(
            "subject name has multi-valued or empty components; not an Underpass CA".into(),
        ));
    }

    let key = KeyPair::from_pem(&key_pem).map_err(|e| Error::BadKey {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    if key.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
        return Err(Error::CaKeyMismatch {
            cert: cert_path,
            key: key_path,
        });
    }
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)?;
    Ok(LoadedCa {
        issuer,
        trust_domain,
        not_after,
    })
}

/// The trust domain of a DER-encoded Underpass CA certificate (see the module docs for where
/// it is stored). Fails if the certificate is not a CA or names no valid trust domain.
pub fn ca_trust_domain(der: &[u8]) -> Result<String, IdentityError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    trust_domain_of(&x509)
}

pub(crate) fn trust_domain_of(x509: &X509Certificate<'_>) -> Result<String, IdentityError> {
    let bad = |reason: &str| IdentityError::BadCertificate(reason.to_owned());
    let is_ca = x509
        .basic_constraints()
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(bad(
            "not a CA certificate (basicConstraints CA is not true)",
        ));
    }
    let san = x509
        .subject_alternative_name()
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    let mut found: Option<&str> = None;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let GeneralName::URI(uri) = name {
            if let Some(td) = uri.strip_prefix("spiffe://") {
                if found.is_some() {
                    return Err(bad("CA certificate names more than one trust domain"));
                }
                found = Some(td);
            }
        }
    }
    let td = match found {
        Some(td) => td.to_owned(),
        None => x509
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .find_map(|cn| cn.strip_prefix(CA_CN_PREFIX))
            .map(str::to_owned)
            .ok_or_else(|| {
                bad("CA certificate names no trust domain (no spiffe:// URI SAN, no CN \"Underpass CA <trust-domain>\")")
            })?,
    };
    validate_trust_domain(&td)?;
    Ok(td)
}

/// Now, in UTC, truncated to whole seconds (what a certificate can hold).
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// A random positive 16-byte serial. The first byte is kept in 0x01..=0x7f: positive (no sign
/// byte needed) and non-zero, so the encoding is always exactly 16 bytes.
pub(crate) fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = init(dir.path(), "example.test").expect("init");
        assert_eq!(summary.trust_domain, "example.test");
        let der = inspect::read_certificate(&summary.cert_path).expect("read");
        assert_eq!(ca_trust_domain(&der).expect("td"), "example.test");

        let (_, x509) = x509_parser::parse_x509_certificate(&der).expect("parse");
        let bc = x509.basic_constraints().expect("bc").expect("present");
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(1));
        let ku = x509.key_usage().expect("ku").expect("present").value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert_eq!(x509.subject().to_string(), "CN=Underpass CA example.test");
        assert_eq!(x509.raw_serial().len(), 16);

        let loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.trust_domain, "example.test");
        assert_eq!(loaded.not_after, summary.not_after);
    }

    #[test]
    fn init_rejects_bad_trust_domain_and_existing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = init(dir.path(), "Bad_Domain").expect_err("invalid");
        assert!(err.to_string().contains("invalid trust domain"), "{err}");
        init(dir.path(), "underpass.local").expect("init");
        let err = init(dir.path(), "underpass.local").expect_err("exists");
        assert!(err.to_string().contains("ca.crt already exists"), "{err}");
    }

    #[test]
    fn load_reports_missing_ca_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(load(dir.path()), Err(Error::NoCa { .. })));
        init(dir.path(), "underpass.local").expect("init");
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).expect("rm");
        assert!(matches!(load(dir.path()), Err(Error::CaKeyMissing { .. })));
    }

    #[test]
    fn load_rejects_mismatched_key() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        init(a.path(), "underpass.local").expect("init a");
        init(b.path(), "underpass.local").expect("init b");
        std::fs::remove_file(a.path().join(CA_KEY_FILE)).expect("rm");
        std::fs::copy(b.path().join(CA_KEY_FILE), a.path().join(CA_KEY_FILE)).expect("cp");
        assert!(matches!(load(a.path()), Err(Error::CaKeyMismatch { .. })));
    }

    #[test]
    fn serials_are_positive_16_bytes() {
        for _ in 0..64 {
            let s = random_serial().expect("rng").to_bytes();
            assert_eq!(s.len(), 16);
            assert!((1..=0x7f).contains(&s[0]));
        }
    }
}
