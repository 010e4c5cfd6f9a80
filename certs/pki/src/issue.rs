//! Issuing leaf certificates for edges, connectors and clients.
//!
//! Every leaf carries exactly one URI SAN, its SPIFFE identity, which is what peers
//! authorize on. The extended key usage pins each role to its side of a TLS handshake: an
//! edge only ever serves (serverAuth), connectors and clients only ever dial (clientAuth), so
//! a stolen connector certificate cannot impersonate an edge.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use underpass_proto::identity::{validate_name, Role, SpiffeId};

use crate::ca::{self, CLOCK_SKEW, LEAF_VALIDITY};
use crate::{files, revocation, Error};

/// Hosts an edge certificate is valid for when no `--san` is given.
pub const DEFAULT_EDGE_SANS: [&str; 2] = ["localhost", "127.0.0.1"];

/// A host name or address an edge certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSan {
    Dns(String),
    Ip(IpAddr),
}

/// What `issue` created.
#[derive(Debug, Clone)]
pub struct Issued {
    pub identity: SpiffeId,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub serial: String,
    pub not_after: OffsetDateTime,
    pub hosts: Vec<HostSan>,
}

/// When a certificate is valid: from `not_before` to `not_after` (whole seconds; a
/// certificate cannot hold more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// A new leaf's window: from [`CLOCK_SKEW`] before `now` to [`LEAF_VALIDITY`] after it.
    pub fn leaf_from(now: OffsetDateTime) -> Validity {
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after: now + LEAF_VALIDITY,
        }
    }
}

/// Issues `dir/<name>.crt` and `dir/<name>.key` for `role`, signed by the CA in `dir`, valid
/// from now (less [`CLOCK_SKEW`]) for [`LEAF_VALIDITY`].
///
/// `sans` (edges only) are host names or IP addresses; empty means
/// [`DEFAULT_EDGE_SANS`]. Refuses to overwrite either file.
pub fn issue(dir: &Path, role: Role, name: &str, sans: &[String]) -> Result<Issued, Error> {
    issue_with(dir, role, name, sans, Validity::leaf_from(ca::now()))
}

/// Like [`issue`], valid for `ttl` from now (`--ttl`): from [`CLOCK_SKEW`] before now to
/// `now + ttl`. Refuses a `ttl` under [`crate::ttl::MIN_CERT_TTL`] or one that would outlive
/// the CA, with an error saying so (rather than silently cutting it).
pub fn issue_for(
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
    ttl: std::time::Duration,
) -> Result<Issued, Error> {
    let ca = ca::load(dir)?;
    let now = ca::now();
    let not_after = crate::ttl::check_cert_ttl(ttl, now, ca.not_after)?;
    issue_with(
        dir,
        role,
        name,
        sans,
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after,
        },
    )
}

/// Like [`issue`], valid for the window `validity` instead: already expired, or not yet valid,
/// if that is what is asked (tests of how peers refuse such certificates use it; the command
/// line offers no such option). The end is cut to the CA's own `not_after`, as for [`issue`];
/// a window that ends before it starts is refused.
pub fn issue_with(
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
    validity: Validity,
) -> Result<Issued, Error> {
    validate_name(name)?;
    if name == "ca" {
        return Err(Error::ReservedName);
    }
    let hosts = match role {
        Role::Edge if sans.is_empty() => DEFAULT_EDGE_SANS
            .iter()
            .map(|s| parse_host_san(s))
            .collect::<Result<Vec<_>, _>>()?,
        Role::Edge => {
            let mut hosts = Vec::with_capacity(sans.len());
            for san in sans {
                let host = parse_host_san(san)?;
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
            hosts
        }
        Role::Connector | Role::Client | Role::Operator if sans.is_empty() => Vec::new(),
        Role::Connector | Role::Client | Role::Operator => {
            return Err(Error::SanNotAllowed {
                role: role.as_str(),
            })
        }
    };

    let ca = ca::load(dir)?;
    let identity = SpiffeId::new(&ca.trust_domain, role, name)?;
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    files::ensure_absent(&[&cert_path, &key_path])?;

    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    let mut subject_alt_names = vec![SanType::URI(identity.to_string().try_into()?)];
    for host in &hosts {
        subject_alt_names.push(match host {
            HostSan::Dns(dns) => SanType::DnsName(dns.clone().try_into()?),
            HostSan::Ip(ip) => SanType::IpAddress(*ip),
        });
    }
    let not_before = validity
        .not_before
        .replace_nanosecond(0)
        .unwrap_or(validity.not_before);
    // A leaf outliving its CA would only fail later, and more confusingly.
    let not_after = validity
        .not_after
        .replace_nanosecond(0)
        .unwrap_or(validity.not_after)
        .min(ca.not_after);
    if not_after <= not_before {
        return Err(Error::EmptyValidity {
            not_before: crate::rfc3339(not_before),
            not_after: crate::rfc3339(not_after),
        });
    }
    let serial = ca::random_serial()?;

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.subject_alt_names = subject_alt_names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match role {
        Role::Edge => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Connector | Role::Client | Role::Operator => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial.clone());

    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    files::write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
    Ok(Issued {
        identity,
        cert_path,
        key_path,
        serial: revocation::canonical_serial(&serial.to_bytes()),
        not_after: params.not_after,
        hosts,
    })
}

/// Parses one `--san` value: an IP address (`[v6]` brackets allowed) becomes an IP SAN,
/// anything else must be a DNS host name (a leading `*.` wildcard label is allowed) and is
/// lowercased.
pub fn parse_host_san(value: &str) -> Result<HostSan, Error> {
    let invalid = |reason| Error::InvalidSan {
        value: value.to_owned(),
        reason,
    };
    let unbracketed = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(HostSan::Ip(ip));
    }
    let host = value.to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return Err(invalid("a host name has 1 to 253 characters"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" {
            if labels.len() < 3 {
                return Err(invalid("a wildcard needs at least two labels after \"*.\""));
            }
            continue;
        }
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid(
                "not an IP address or a host name (labels of a-z, 0-9 and '-', separated by dots)",
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(
            "looks like an IP address but is not one (a host name cannot end in a number)",
        ));
    }
    Ok(HostSan::Dns(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        ca::init(dir.path(), "underpass.local").expect("init");
        dir
    }

    #[test]
    fn san_parsing() {
        assert_eq!(
            parse_host_san("127.0.0.1").expect("ip"),
            HostSan::Ip([127, 0, 0, 1].into())
        );
        assert_eq!(
            parse_host_san("[::1]").expect("ip6"),
            HostSan::Ip("::1".parse().expect("ip"))
        );
        assert_eq!(
            parse_host_san("Edge.Example.COM").expect("dns"),
            HostSan::Dns("edge.example.com".into())
        );
        assert_eq!(
            parse_host_san("*.example.com").expect("wildcard"),
            HostSan::Dns("*.example.com".into())
        );
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a b",
            "*.com",
            "foo.*.com",
            "1.2.3.999",
            "http://x",
            "x.",
        ] {
            assert!(parse_host_san(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn issues_each_role() {
        let dir = pki();
        for (role, name) in [
            (Role::Edge, "edge1"),
            (Role::Connector, "dc1"),
            (Role::Client, "alice"),
        ] {
            let issued = issue(dir.path(), role, name, &[]).expect("issue");
            assert_eq!(
                issued.identity.to_string(),
                format!("spiffe://underpass.local/{role}/{name}")
            );
            let mode = std::fs::metadata(&issued.key_path)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let info = crate::inspect::inspect_file(&issued.cert_path).expect("inspect");
            assert_eq!(info.identity.as_ref(), Some(&issued.identity));
            assert_eq!(info.serial, issued.serial);
            assert_eq!(info.not_after, issued.not_after);
            assert_eq!(info.subject, format!("CN={name}"));
            let lifetime = info.not_after - info.not_before;
            assert_eq!(lifetime, LEAF_VALIDITY + CLOCK_SKEW);
        }
    }

    #[test]
    fn refusals() {
        let dir = pki();
        let err = issue(dir.path(), Role::Client, "ca", &[]).expect_err("reserved");
        assert!(matches!(err, Error::ReservedName));
        let err = issue(dir.path(), Role::Client, "Bad/Name", &[]).expect_err("invalid");
        assert!(err.to_string().starts_with("invalid name"), "{err}");
        let err = issue(dir.path(), Role::Connector, "dc1", &["x.test".into()])
            .expect_err("san on connector");
        assert!(matches!(err, Error::SanNotAllowed { .. }));
        issue(dir.path(), Role::Connector, "dc1", &[]).expect("first");
        let err = issue(dir.path(), Role::Client, "dc1", &[]).expect_err("exists");
        assert!(err.to_string().contains("dc1.crt already exists"), "{err}");

        let empty = tempfile::tempdir().expect("tempdir");
        let err = issue(empty.path(), Role::Edge, "e", &[]).expect_err("no ca");
        assert!(err.to_string().starts_with("no CA in "), "{err}");
    }

    #[test]
    fn explicit_sans_replace_defaults() {
        let dir = pki();
        let issued = issue(
            dir.path(),
            Role::Edge,
            "edge",
            &[
                "edge.example.com".into(),
                "10.0.0.1".into(),
                "edge.example.com".into(),
            ],
        )
        .expect("issue");
        assert_eq!(
            issued.hosts,
            vec![
                HostSan::Dns("edge.example.com".into()),
                HostSan::Ip([10, 0, 0, 1].into())
            ]
        );
    }

    #[test]
    fn explicit_validity_windows() {
        let dir = pki();
        let now = ca::now();
        // Expired yesterday: issued as asked, and inspect reads the same window back.
        let expired = Validity {
            not_before: now - time::Duration::days(2),
            not_after: now - time::Duration::days(1),
        };
        let issued =
            issue_with(dir.path(), Role::Client, "old", &[], expired).expect("expired leaf");
        let info = crate::inspect::inspect_file(&issued.cert_path).expect("inspect");
        assert_eq!(
            (info.not_before, info.not_after),
            (expired.not_before, expired.not_after)
        );
        assert_eq!(issued.not_after, expired.not_after);

        // Not valid before tomorrow.
        let future = Validity {
            not_before: now + time::Duration::days(1),
            not_after: now + time::Duration::days(2),
        };
        let issued = issue_with(dir.path(), Role::Edge, "later", &[], future).expect("future");
        let info = crate::inspect::inspect_file(&issued.cert_path).expect("inspect");
        assert_eq!(info.not_before, future.not_before);

        // Never past the CA's own end.
        let long = Validity {
            not_before: now,
            not_after: now + ca::CA_VALIDITY + time::Duration::days(365),
        };
        let issued = issue_with(dir.path(), Role::Connector, "long", &[], long).expect("long");
        assert!(issued.not_after < long.not_after);
        assert!(issued.not_after <= now + ca::CA_VALIDITY);

        // A window that ends before (or when) it starts: refused, nothing written.
        for (name, window) in [
            (
                "backwards",
                Validity {
                    not_before: now,
                    not_after: now - time::Duration::days(1),
                },
            ),
            (
                "empty",
                Validity {
                    not_before: now,
                    not_after: now,
                },
            ),
        ] {
            let err = issue_with(dir.path(), Role::Client, name, &[], window).expect_err(name);
            assert!(matches!(err, Error::EmptyValidity { .. }), "{name}: {err}");
            assert!(!dir.path().join(format!("{name}.crt")).exists(), "{name}");
            assert!(!dir.path().join(format!("{name}.key")).exists(), "{name}");
        }

        // `issue` is `issue_with` and the default window.
        let issued = issue(dir.path(), Role::Client, "now", &[]).expect("default");
        let info = crate::inspect::inspect_file(&issued.cert_path).expect("inspect");
        assert_eq!(info.not_after - info.not_before, LEAF_VALIDITY + CLOCK_SKEW);
    }

    #[test]
    fn ttl_windows_and_bounds() {
        let dir = pki();
        let issued = issue_for(
            dir.path(),
            Role::Client,
            "short",
            &[],
            std::time::Duration::from_secs(120),
        )
        .expect("2m");
        let info = crate::inspect::inspect_file(&issued.cert_path).expect("inspect");
        assert_eq!(
            info.not_after - info.not_before,
            time::Duration::minutes(2) + CLOCK_SKEW
        );
        let err = issue_for(
            dir.path(),
            Role::Client,
            "tiny",
            &[],
            std::time::Duration::from_secs(30),
        )
        .expect_err("too short");
        assert!(matches!(err, Error::TtlTooShort { .. }), "{err}");
        let err = issue_for(
            dir.path(),
            Role::Edge,
            "forever",
            &[],
            std::time::Duration::from_secs(3651 * 86_400),
        )
        .expect_err("beyond CA");
        assert!(matches!(err, Error::TtlBeyondCa { .. }), "{err}");
        assert!(!dir.path().join("tiny.crt").exists());
        assert!(!dir.path().join("forever.key").exists());
    }
}
