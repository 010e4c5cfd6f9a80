//! The connector issuer: an intermediate CA, signed by the deployment root, that an edge keeps
//! online to issue connector certificates at enrollment and renewal (the root key can stay
//! offline).
//!
//! **What limits it.** Path length 0 (it signs leaves only); extended key usage `clientAuth`
//! only — webpki checks EKU on every certificate of a path, so nothing it signs can serve as an
//! edge; name constraints (permitted DNS `invalid`, excluded every IPv4/IPv6 address) as a
//! defence for other verifiers. There are **no URI name constraints**: webpki refuses every
//! leaf with a URI SAN under a URI constraint, and every Underpass leaf has one. That the
//! issuer mints connector identities only is therefore checked by [`issue_connector`] here and
//! by the verifiers (an identity not signed directly by a root must be a connector).
//!
//! Files: `DIR/issuer.crt` (0644) and `DIR/issuer.key` (PKCS#8 P-256, 0600). `--rotate`
//! archives the pair as `issuer-<serial>.crt/.key` first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use underpass_proto::identity::{validate_name, Role, SpiffeId};

use crate::ca::{self, CLOCK_SKEW};
use crate::csr::{self, CsrRefusal};
use crate::{files, inspect, revocation, Error};

/// File name of the issuer certificate inside a PKI directory.
pub const ISSUER_CERT_FILE: &str = "issuer.crt";
/// File name of the issuer key inside a PKI directory.
pub const ISSUER_KEY_FILE: &str = "issuer.key";
/// Default lifetime of an issuer (`--ttl`).
pub const ISSUER_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Prefix of the issuer's subject CN (it must differ from the root's).
const ISSUER_CN_PREFIX: &str = "Underpass connector issuer ";

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct IssuerSummary {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub trust_domain: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
    /// Where the previous pair went (`--rotate`), if there was one.
    pub archived: Option<(PathBuf, PathBuf)>,
}

/// Creates `dir/issuer.crt` and `dir/issuer.key`, signed by the CA in `dir`, valid for `ttl`
/// (at least a minute, no longer than the CA). If a pair exists, refuses unless `rotate`, which
/// archives it as `issuer-<serial>.crt/.key` and then moves the new pair in with renames (key
/// first), so the names never hold a half-written file.
pub fn create(dir: &Path, ttl: Duration, rotate: bool) -> Result<IssuerSummary, Error> {
    let ca = ca::load(dir)?;
    let now = ca::now();
    let not_after = crate::ttl::check_cert_ttl(ttl, now, ca.not_after)?;
    let cert_path = dir.join(ISSUER_CERT_FILE);
    let key_path = dir.join(ISSUER_KEY_FILE);
    let existing = [&cert_path, &key_path]
        .into_iter()
        .find(|p| p.symlink_metadata().is_ok());
    if let (Some(path), false) = (existing, rotate) {
        return Err(Error::IssuerExists { path: path.clone() });
    }

    let td = &ca.trust_domain;
    let serial = ca::random_serial()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{ISSUER_CN_PREFIX}{td}"));
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{td}").try_into()?)];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("invalid".into())],
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    });
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = not_after;
    params.serial_number = Some(serial.clone());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca.issuer)?;

    let archived = if existing.is_some() {
        let archived = archive(dir, &cert_path, &key_path)?;
        replace_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
        Some(archived)
    } else {
        files::write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
        None
    };
    Ok(IssuerSummary {
        cert_path,
        key_path,
        trust_domain: td.clone(),
        serial: revocation::canonical_serial(&serial.to_bytes()),
        not_after,
        archived,
    })
}

/// Hard-links the current pair to `issuer-<serial>.crt/.key` (never replacing a name).
fn archive(dir: &Path, cert: &Path, key: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let tag = inspect::inspect_file(cert)
        .map(|info| info.serial)
        .unwrap_or_else(|_| format!("unreadable-{}", ca::now().unix_timestamp()));
    let old_cert = dir.join(format!("issuer-{tag}.crt"));
    let old_key = dir.join(format!("issuer-{tag}.key"));
    files::ensure_absent(&[&old_cert, &old_key])?;
    for (from, to) in [(key, &old_key), (cert, &old_cert)] {
        match std::fs::hard_link(from, to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(to, e)),
        }
    }
    Ok((old_cert, old_key))
}

/// Writes the new pair under temporary names, then renames key and certificate over the old
/// names (each rename atomic; a reader that sees the new key with the old certificate finds
/// them mismatched and keeps what it had).
fn replace_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), Error> {
    let tmp = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.with_file_name(format!(".{name}.new"))
    };
    let (cert_tmp, key_tmp) = (tmp(cert), tmp(key));
    for stale in [&cert_tmp, &key_tmp] {
        let _ = std::fs::remove_file(stale);
    }
    files::write_new(&key_tmp, key_pem.as_bytes(), files::KEY_MODE)?;
    files::write_new(&cert_tmp, cert_pem.as_bytes(), files::PUBLIC_MODE)?;
    std::fs::rename(&key_tmp, key).map_err(|e| Error::io(key, e))?;
    std::fs::rename(&cert_tmp, cert).map_err(|e| Error::io(cert, e))?;
    Ok(())
}

/// An issuer loaded from disk, checked and ready to sign certificates and tokens.
pub struct LoadedIssuer {
    /// rcgen's view, for signing leaves.
    pub issuer: Issuer<'static, KeyPair>,
    /// The issuer certificate, DER.
    pub cert_der: Vec<u8>,
    /// The issuer certificate, PEM (what follows the leaf in an issued chain).
    pub cert_pem: String,
    pub trust_domain: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
    /// First 8 bytes of SHA-256 of the issuer's SubjectPublicKeyInfo (DER).
    pub kid: [u8; 8],
    /// The issuer's public key (uncompressed P-256 point), to verify tokens.
    pub public_key: Vec<u8>,
    signer: EcdsaKeyPair,
}

impl std::fmt::Debug for LoadedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIssuer")
            .field("trust_domain", &self.trust_domain)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl LoadedIssuer {
    /// ECDSA P-256 / SHA-256 signature (ASN.1 DER) of `msg` with the issuer key.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        self.signer
            .sign(&ring::rand::SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::Sign("ECDSA signing failed".into()))
    }
}

/// Loads `dir/issuer.crt` and `dir/issuer.key` ([`load`]).
pub fn load_dir(dir: &Path) -> Result<LoadedIssuer, Error> {
    load(&dir.join(ISSUER_CERT_FILE), &dir.join(ISSUER_KEY_FILE))
}

/// Loads an issuer: the certificate must be an unexpired CA naming a trust domain, the key a
/// P-256 key that belongs to it.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedIssuer, Error> {
    let der = inspect::read_certificate(cert_path)?;
    let key_pem = std::fs::read_to_string(key_path).map_err(|e| Error::io(key_path, e))?;
    let bad = |reason: String| Error::BadIssuer {
        path: cert_path.to_path_buf(),
        reason,
    };
    let (_, x509) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad(format!("not a certificate: {e}")))?;
    let trust_domain = ca::trust_domain_of(&x509).map_err(|e| bad(e.to_string()))?;
    let not_after = x509.validity().not_after.to_datetime();
    if not_after <= OffsetDateTime::now_utc() {
        return Err(Error::IssuerExpired {
            path: cert_path.to_path_buf(),
            at: crate::rfc3339(not_after),
        });
    }
    if x509.subject().iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(bad(
            "subject name has multi-valued or empty components".into()
        ));
    }
    let bad_key = |reason: String| Error::BadKey {
        path: key_path.to_path_buf(),
        reason,
    };
    let key = KeyPair::from_pem(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(bad_key("an issuer key must be ECDSA P-256".into()));
    }
    let public_key = x509.public_key().subject_public_key.data.to_vec();
    if key.public_key_raw() != public_key.as_slice() {
        return Err(Error::CaKeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| bad_key(e.to_string()))?;
    let kid = key_id(x509.public_key().raw);
    let serial = revocation::canonical_serial(x509.raw_serial());
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)?;
    let cert_pem = cert_pem(&der);
    Ok(LoadedIssuer {
        issuer,
        cert_der: der,
        cert_pem,
        trust_domain,
        serial,
        not_after,
        kid,
        public_key,
        signer,
    })
}

/// Checks that `iss` is signed by the CA certificate `ca_der` (read from `ca_path`, named in
/// errors) and shares its trust domain: `token create` runs it, and an edge can at start-up.
pub fn check_issued_by(iss: &LoadedIssuer, ca_der: &[u8], ca_path: &Path) -> Result<(), Error> {
    let bad = |reason: String| Error::BadIssuer {
        path: ca_path.to_path_buf(),
        reason,
    };
    let (_, ca_x509) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| bad(format!("not a certificate: {e}")))?;
    let (_, iss_x509) = x509_parser::parse_x509_certificate(&iss.cert_der)
        .map_err(|e| bad(format!("issuer is not a certificate: {e}")))?;
    if iss_x509
        .verify_signature(Some(ca_x509.public_key()))
        .is_err()
    {
        return Err(bad(
            "the issuer was not signed by this CA (create one with `underpass-certs issuer`)"
                .into(),
        ));
    }
    let td = ca::trust_domain_of(&ca_x509).map_err(|e| bad(e.to_string()))?;
    if td != iss.trust_domain {
        return Err(bad(format!(
            "the issuer is for trust domain {}, the CA for {td}",
            iss.trust_domain
        )));
    }
    Ok(())
}

/// First 8 bytes of SHA-256 of a SubjectPublicKeyInfo (DER).
pub fn key_id(spki_der: &[u8]) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest.as_ref()[..8]);
    kid
}

fn cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A connector certificate issued from a request.
#[derive(Debug, Clone)]
pub struct IssuedLeaf {
    pub identity: SpiffeId,
    /// The leaf, DER.
    pub der: Vec<u8>,
    /// The leaf then the issuer, PEM: the connector's certificate file.
    pub chain_pem: String,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Issues the certificate of connector `name` for the key in `csr` (PEM or DER; see
/// [`csr::check_request`] for what is refused). Our parameters only: the connector's SPIFFE
/// ID as the one SAN, CN `name`, not a CA, key usage digitalSignature, EKU clientAuth, valid
/// from `now` less [`CLOCK_SKEW`] to `now + ttl`, cut to the issuer's own end.
pub fn issue_connector(
    iss: &LoadedIssuer,
    name: &str,
    csr: &[u8],
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<IssuedLeaf, CsrRefusal> {
    validate_name(name)?;
    let identity = SpiffeId::new(&iss.trust_domain, Role::Connector, name)?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    if now >= iss.not_after {
        return Err(CsrRefusal::IssuerExpired(crate::rfc3339(iss.not_after)));
    }
    let public_key = csr::check_request(csr, &identity)?;

    let not_before = now - CLOCK_SKEW;
    let not_after = time::Duration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d))
        .map_or(iss.not_after, |end| end.min(iss.not_after));
    let serial = ca::random_serial().map_err(|_| CsrRefusal::Random)?;
    let sign_err = |e: rcgen::Error| CsrRefusal::Sign(e.to_string());
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(
        identity.to_string().try_into().map_err(sign_err)?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial.clone());
    let cert = params
        .signed_by(&public_key, &iss.issuer)
        .map_err(sign_err)?;
    Ok(IssuedLeaf {
        identity,
        der: cert.der().to_vec(),
        chain_pem: format!("{}{}", cert.pem(), iss.cert_pem),
        serial: revocation::canonical_serial(&serial.to_bytes()),
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests;
