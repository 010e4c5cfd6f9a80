//! SPIFFE-style identities: `spiffe://<trust-domain>/<role>/<name>`.
//!
//! Every certificate the Underpass PKI issues carries exactly one such URI SAN. The role
//! segment is what stops an edge certificate from acting as a connector, or a client
//! certificate from acting as either.

use std::fmt;
use std::str::FromStr;

/// The trust domain used when a config names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "underpass.local";

/// Longest name or trust domain accepted (keeps identities readable in logs and SANs).
const MAX_SEGMENT_LEN: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Edge,
    Connector,
    Client,
    /// A person or tool operating edges (the admin API); never accepted as a client or a
    /// connector.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Connector => "connector",
            Role::Client => "client",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "edge" => Ok(Role::Edge),
            "connector" => Ok(Role::Connector),
            "client" => Ok(Role::Client),
            "operator" => Ok(Role::Operator),
            other => Err(IdentityError::UnknownRole(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("not a SPIFFE ID (expected spiffe://<trust-domain>/<role>/<name>): {0:?}")]
    Malformed(String),
    #[error("unknown role {0:?} (expected edge, connector, client or operator)")]
    UnknownRole(String),
    #[error("invalid name {0:?}: use 1-63 characters from a-z, 0-9, '-', '_' and '.', starting with a letter or digit")]
    InvalidName(String),
    #[error("invalid trust domain {0:?}: use 1-63 characters from a-z, 0-9, '-' and '.'")]
    InvalidTrustDomain(String),
    #[error("certificate carries no SPIFFE URI SAN")]
    Missing,
    #[error("certificate carries more than one SPIFFE URI SAN")]
    Ambiguous,
    #[error("identity {found} is a {found_role}, expected a {expected}")]
    WrongRole {
        found: Box<SpiffeId>,
        found_role: Role,
        expected: Role,
    },
    #[error("identity {0} belongs to another trust domain (expected {1})")]
    WrongTrustDomain(Box<SpiffeId>, String),
    #[error("certificate could not be parsed: {0}")]
    BadCertificate(String),
}

/// Checks a name (of an edge, connector, client or service).
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SEGMENT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidName(name.to_owned()))
    }
}

pub fn validate_trust_domain(td: &str) -> Result<(), IdentityError> {
    let ok = !td.is_empty()
        && td.len() <= MAX_SEGMENT_LEN
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        && td.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidTrustDomain(td.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub role: Role,
    pub name: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, role: Role, name: &str) -> Result<Self, IdentityError> {
        validate_trust_domain(trust_domain)?;
        validate_name(name)?;
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            role,
            name: name.to_owned(),
        })
    }

    /// Fails unless this identity has `role` in `trust_domain`.
    pub fn expect(&self, role: Role, trust_domain: &str) -> Result<(), IdentityError> {
        if self.role != role {
            return Err(IdentityError::WrongRole {
                found: Box::new(self.clone()),
                found_role: self.role,
                expected: role,
            });
        }
        if self.trust_domain != trust_domain {
            return Err(IdentityError::WrongTrustDomain(
                Box::new(self.clone()),
                trust_domain.to_owned(),
            ));
        }
        Ok(())
    }

    /// Reads the single SPIFFE URI SAN of a DER certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let mut found = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if uri.starts_with("spiffe://") {
                    if found.is_some() {
                        return Err(IdentityError::Ambiguous);
                    }
                    found = Some(uri.parse::<SpiffeId>()?);
                }
            }
        }
        found.ok_or(IdentityError::Missing)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/{}/{}",
            self.trust_domain, self.role, self.name
        )
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || IdentityError::Malformed(s.to_owned());
        let rest = s.strip_prefix("spiffe://").ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let (Some(td), Some(role), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        SpiffeId::new(td, role.parse()?, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id: SpiffeId = "spiffe://underpass.local/connector/dc1".parse().unwrap();
        assert_eq!(id.role, Role::Connector);
        assert_eq!(id.name, "dc1");
        assert_eq!(id.to_string(), "spiffe://underpass.local/connector/dc1");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "spiffe://",
            "https://underpass.local/edge/x",
            "spiffe://underpass.local/edge",
            "spiffe://underpass.local/edge/x/y",
            "spiffe://underpass.local/admin/x",
            "spiffe://underpass.local/edge/X",
            "spiffe://underpass.local/edge/-x",
            "spiffe:///edge/x",
            "spiffe://UP/edge/x",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn role_and_domain_checked() {
        let id = SpiffeId::new("a.test", Role::Client, "alice").unwrap();
        assert!(id.expect(Role::Client, "a.test").is_ok());
        assert!(matches!(
            id.expect(Role::Connector, "a.test"),
            Err(IdentityError::WrongRole { .. })
        ));
        assert!(matches!(
            id.expect(Role::Client, "b.test"),
            Err(IdentityError::WrongTrustDomain(..))
        ));
    }
}
