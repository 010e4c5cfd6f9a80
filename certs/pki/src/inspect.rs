//! Reading certificates back: what `underpass-certs inspect` prints.
//!
//! Output is one `key: value` per line. The keys `identity:`, `serial:` and `not-after:` start
//! their lines and are a contract (scripts and outside tests grep them); the serial is in the
//! canonical form of [`crate::revocation`], so it can be pasted into `revoke --serial` and
//! compared with `revoked.txt` verbatim.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use underpass_proto::identity::{IdentityError, SpiffeId};
use x509_parser::extensions::GeneralName;

use crate::{files, revocation, Error, REVOCATION_FILE};

/// What a certificate says about itself, in Underpass terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The leaf's SPIFFE identity; `None` for a CA or a certificate without one.
    pub identity: Option<SpiffeId>,
    /// For a CA certificate: its trust domain.
    pub ca_trust_domain: Option<String>,
    pub subject: String,
    pub issuer: String,
    /// Canonical serial (see [`crate::revocation`]).
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usages by their usual names (`serverAuth`, `clientAuth`, ...).
    pub extended_key_usages: Vec<String>,
    /// Set by [`inspect_file`] when a `revoked.txt` next to the file lists this serial.
    pub revoked: bool,
}

impl CertInfo {
    fn status(&self) -> &'static str {
        let now = OffsetDateTime::now_utc();
        if self.revoked {
            "revoked"
        } else if now < self.not_before {
            "not yet valid"
        } else if now > self.not_after {
            "expired"
        } else {
            "valid"
        }
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, key: &str, value: &dyn fmt::Display| {
            writeln!(f, "{key:<10} {value}")
        };
        match (&self.identity, &self.ca_trust_domain) {
            (Some(id), _) => {
                line(f, "identity:", id)?;
                line(f, "role:", &id.role)?;
            }
            (None, Some(td)) => {
                line(f, "identity:", &format_args!("(CA) trust domain {td}"))?;
                line(f, "role:", &"ca")?;
            }
            (None, None) => line(f, "identity:", &"(none: no SPIFFE URI SAN)")?,
        }
        line(f, "subject:", &self.subject)?;
        line(f, "serial:", &self.serial)?;
        line(f, "not-before:", &crate::rfc3339(self.not_before))?;
        line(f, "not-after:", &crate::rfc3339(self.not_after))?;
        line(f, "issuer:", &self.issuer)?;
        if !self.dns_names.is_empty() {
            line(f, "dns:", &self.dns_names.join(", "))?;
        }
        if !self.ip_addresses.is_empty() {
            let ips: Vec<String> = self.ip_addresses.iter().map(IpAddr::to_string).collect();
            line(f, "ip:", &ips.join(", "))?;
        }
        if !self.extended_key_usages.is_empty() {
            line(f, "usage:", &self.extended_key_usages.join(", "))?;
        }
        line(f, "status:", &self.status())
    }
}

/// Reads a certificate file, PEM (first `CERTIFICATE` block) or raw DER, returning DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = files::read(path)?;
    let bad = |reason: String| Error::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        CertificateDer::from_pem_slice(&bytes)
            .map(|der| der.to_vec())
            .map_err(|e| bad(format!("no PEM certificate found ({e})")))
    } else if x509_parser::parse_x509_certificate(&bytes).is_ok() {
        Ok(bytes)
    } else {
        Err(bad("not a PEM or DER certificate".into()))
    }
}

/// Inspects a certificate file; also marks it revoked if a `revoked.txt` in the same folder
/// revokes it (by serial or by a rule; an unreadable list is ignored here: inspect is a diagnostic).
pub fn inspect_file(path: &Path) -> Result<CertInfo, Error> {
    let der = read_certificate(path)?;
    let mut info = inspect_der(&der).map_err(|e| Error::BadCertificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let list = path
        .parent()
        .map(|p| p.join(REVOCATION_FILE))
        .unwrap_or_else(|| REVOCATION_FILE.into());
    if let Ok(revoked) = revocation::read_revocation_file(&list) {
        info.revoked = revoked.is_revoked(&der);
    }
    Ok(info)
}

/// Inspects a DER certificate.
pub fn inspect_der(der: &[u8]) -> Result<CertInfo, IdentityError> {
    let bad = |e: &dyn fmt::Display| IdentityError::BadCertificate(e.to_string());
    let (_, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::BadCertificate(format!("not a certificate: {e}")))?;
    let is_ca = x509
        .basic_constraints()
        .map_err(|e| bad(&e))?
        .is_some_and(|bc| bc.value.ca);
    let (identity, ca_trust_domain) = if is_ca {
        (None, Some(crate::ca::trust_domain_of(&x509)?))
    } else {
        match SpiffeId::from_certificate_der(der) {
            Ok(id) => (Some(id), None),
            Err(IdentityError::Missing) => (None, None),
            Err(e) => return Err(e),
        }
    };

    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let san = x509.subject_alternative_name().map_err(|e| bad(&e))?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
            GeneralName::IPAddress(raw) => {
                if let Some(ip) = ip_from_bytes(raw) {
                    ip_addresses.push(ip);
                }
            }
            _ => {}
        }
    }

    let mut extended_key_usages = Vec::new();
    if let Some(eku) = x509.extended_key_usage().map_err(|e| bad(&e))? {
        let eku = eku.value;
        for (set, label) in [
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.any, "any"),
            (eku.code_signing, "codeSigning"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "ocspSigning"),
        ] {
            if set {
                extended_key_usages.push(label.to_owned());
            }
        }
        extended_key_usages.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    }

    Ok(CertInfo {
        identity,
        ca_trust_domain,
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        serial: revocation::canonical_serial(x509.raw_serial()),
        not_before: x509.validity().not_before.to_datetime(),
        not_after: x509.validity().not_after.to_datetime(),
        dns_names,
        ip_addresses,
        extended_key_usages,
        revoked: false,
    })
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(raw) {
        Some(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(raw) {
        Some(IpAddr::from(v6))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.crt");
        std::fs::write(&path, "hello").expect("write");
        let err = inspect_file(&path).expect_err("garbage");
        assert!(
            err.to_string().contains("not a PEM or DER certificate"),
            "{err}"
        );

        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let err = inspect_file(&path).expect_err("key, not cert");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");

        let err = inspect_file(&dir.path().join("absent.crt")).expect_err("missing");
        assert!(matches!(err, Error::Io { .. }));
    }

    #[test]
    fn ca_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = crate::ca::init(dir.path(), "underpass.local").expect("init");
        let info = inspect_file(&summary.cert_path).expect("inspect");
        assert_eq!(info.serial, summary.serial);
        let text = info.to_string();
        assert!(
            text.starts_with("identity:  (CA) trust domain underpass.local\n"),
            "{text}"
        );
        assert!(
            text.contains("\nissuer:    CN=Underpass CA underpass.local\n"),
            "{text}"
        );
        assert!(text.contains("\nnot-after: "), "{text}");
        assert!(text.contains("\nnot-before: "), "{text}");
        assert!(
            text.contains(&format!("\nserial:    {}\n", summary.serial)),
            "{text}"
        );
    }
}
