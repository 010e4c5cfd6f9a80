//! A certificate pair as the doctor sees it: it parses, carries the expected identity, is
//! valid now and not near its end, chains to the CA bundle, and the key is the certificate's.
//! The cryptography is rustls' and webpki's (key match, chain, signatures); this module only
//! reads their verdicts and says what to do.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use underpass_pki::time::OffsetDateTime;
use underpass_proto::identity::{Role, SpiffeId};
use underpass_transport::tls::{self, PeerPolicy, ReloadingCert, ReloadingRoots};

use super::Check;

/// What a certificate must be.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The Underpass identity it must carry (`None`: any certificate, e.g. the client
    /// listener's HTTPS certificate).
    pub identity: Option<ExpectIdentity<'a>>,
    /// What to do when it is expired or near its end.
    pub renew: &'a str,
}

/// The identity a certificate must carry.
#[derive(Debug, Clone)]
pub struct ExpectIdentity<'a> {
    pub role: Role,
    pub trust_domain: &'a str,
    /// The name, when the config fixes it (a connector's `name`).
    pub name: Option<&'a str>,
}

/// Checks the pair in `cert`/`key` (and the chain to `ca` when given), named `label` in the
/// results: `{label}`, `{label} expiry`, `{label} key`, `{label} chain`.
pub fn check_pair(
    label: &str,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    expect: &Expect<'_>,
    now: OffsetDateTime,
) -> Vec<Check> {
    let chain = match tls::load_certs(cert) {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => {
            return vec![Check::fail(
                label,
                format!("{} holds no certificate", cert.display()),
                "point the config at the PEM certificate file",
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                label,
                format!("cannot read {}: {e}", cert.display()),
                "point the config at a readable PEM certificate file",
            )]
        }
    };
    let mut out = vec![identity_check(label, &chain[0], expect)];
    match underpass_pki::inspect::inspect_der(&chain[0]) {
        Ok(info) => out.push(expiry_check(
            label,
            info.not_before,
            info.not_after,
            now,
            expect.renew,
        )),
        Err(e) => out.push(Check::fail(
            format!("{label} expiry"),
            format!("cannot read the validity: {e}"),
            expect.renew,
        )),
    }
    out.push(match tls::load_key(key) {
        Ok(k) => key_check(label, chain.clone(), k),
        Err(e) => Check::fail(
            format!("{label} key"),
            format!("cannot read {}: {e}", key.display()),
            "point `key` at the private key that goes with the certificate",
        ),
    });
    if let Some(ca) = ca {
        out.push(match ReloadingRoots::load(ca) {
            Ok(roots) => chain_check(label, &chain, &roots, expect, ca),
            Err(e) => Check::fail(
                format!("{label} chain"),
                format!("cannot read the CA bundle {}: {e}", ca.display()),
                "point `ca` at the deployment CA (underpass-certs init writes ca.crt)",
            ),
        });
    }
    out
}

/// The leaf carries the expected identity (role, trust domain, name).
pub fn identity_check(label: &str, leaf: &CertificateDer<'_>, expect: &Expect<'_>) -> Check {
    let Some(want) = &expect.identity else {
        return Check::pass(label, "parses");
    };
    let id = match SpiffeId::from_certificate_der(leaf) {
        Ok(id) => id,
        Err(e) => {
            return Check::fail(
                label,
                format!("no Underpass identity: {e}"),
                format!(
                    "issue a {} certificate with `underpass-certs issue`",
                    role_name(want.role)
                ),
            )
        }
    };
    if let Err(e) = id.expect(want.role, want.trust_domain) {
        return Check::fail(
            label,
            e.to_string(),
            format!(
                "use a {} certificate of trust domain {:?} (`underpass-certs issue {}`)",
                role_name(want.role),
                want.trust_domain,
                role_name(want.role)
            ),
        );
    }
    match want.name {
        Some(name) if id.name != name => Check::fail(
            label,
            format!("the certificate is {id}, the config says name = {name:?}"),
            format!(
                "set name = {:?} or use this connector's certificate",
                id.name
            ),
        ),
        _ => Check::pass(label, id.to_string()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Edge => "edge",
        Role::Connector => "connector",
        Role::Client => "client",
        Role::Operator => "operator",
    }
}

/// Valid now, and more than a third of its life left (a connector renews at two thirds: less
/// left means renewal is failing; any other certificate is due for replacement).
pub fn expiry_check(
    label: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    renew: &str,
) -> Check {
    let name = format!("{label} expiry");
    let end = underpass_pki::rfc3339(not_after);
    if now < not_before {
        return Check::fail(
            name,
            format!(
                "not valid before {} (this host's clock is behind?)",
                underpass_pki::rfc3339(not_before)
            ),
            "check the clock (NTP) or wait until then",
        );
    }
    if now >= not_after {
        return Check::fail(name, format!("expired at {end}"), renew);
    }
    let life = not_after - not_before;
    let left = not_after - now;
    let left_text = humanize(Duration::try_from(left).unwrap_or_default());
    if left * 3 < life {
        return Check::warn(
            name,
            format!("ends at {end}, in {left_text} (less than a third of its life left)"),
            renew,
        );
    }
    Check::pass(name, format!("valid until {end} ({left_text} left)"))
}

/// A duration as an operator reads it: the largest unit or two.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The private key is the certificate's (rustls compares the public keys).
pub fn key_check(
    label: &str,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Check {
    let name = format!("{label} key");
    match ReloadingCert::from_der(chain, key) {
        Ok(_) => Check::pass(name, "the private key matches the certificate"),
        Err(e) => Check::fail(
            name,
            e.to_string(),
            "`key` must be the private key the certificate was issued for",
        ),
    }
}

/// The chain verifies to the bundle (webpki), with the issuer rule of the tunnel verifiers
/// (an intermediate issues connectors only). Checked at a moment inside the leaf's validity,
/// so an expired leaf shows as expired once (the expiry row), not as a broken chain too.
pub fn chain_check(
    label: &str,
    chain: &[CertificateDer<'static>],
    roots: &ReloadingRoots,
    expect: &Expect<'_>,
    ca: &Path,
) -> Check {
    let name = format!("{label} chain");
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Check::fail(name, "no certificate", "");
    };
    let at = match underpass_pki::inspect::inspect_der(leaf) {
        Ok(info) => {
            let last =
                (info.not_after - underpass_pki::time::Duration::SECOND).max(info.not_before);
            OffsetDateTime::now_utc().max(info.not_before).min(last)
        }
        Err(e) => return Check::fail(name, e.to_string(), ""),
    };
    let at = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    let snapshot = roots.snapshot();
    match verify(leaf, intermediates, &snapshot.store, at) {
        Ok(()) => {}
        Err(e) => {
            return Check::fail(
                name,
                format!("does not chain to {}: {e}", ca.display()),
                "use a certificate issued by this deployment's CA, or the CA bundle that \
                 issued it",
            )
        }
    }
    if let Some(want) = &expect.identity {
        let policy = PeerPolicy {
            role: want.role,
            trust_domain: want.trust_domain.to_owned(),
            revoked: None,
        };
        if let Err(e) = policy.check(leaf, intermediates, &snapshot.subjects) {
            return Check::fail(
                name,
                e.to_string(),
                "an intermediate may issue connector certificates only",
            );
        }
    }
    Check::pass(name, format!("chains to {}", ca.display()))
}

/// webpki's verdict on `leaf` under `roots` at `at`: as a server certificate for the name it
/// carries when it is one (serverAuth), as a client certificate otherwise.
fn verify(
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    roots: &Arc<rustls::RootCertStore>,
    at: UnixTime,
) -> Result<(), String> {
    let info = underpass_pki::inspect::inspect_der(leaf).map_err(|e| e.to_string())?;
    let server = info.extended_key_usages.iter().any(|u| u == "serverAuth");
    if server {
        let name = match (info.dns_names.first(), info.ip_addresses.first()) {
            (Some(dns), _) => ServerName::try_from(dns.clone()).map_err(|e| e.to_string())?,
            (None, Some(ip)) => ServerName::IpAddress((*ip).into()),
            (None, None) => return Err("the certificate names no host".into()),
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), tls::provider())
            .build()
            .map_err(|e| e.to_string())?;
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            leaf,
            intermediates,
            &name,
            &[],
            at,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    } else {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), tls::provider())
            .build()
            .map_err(|e| e.to_string())?;
        verifier
            .verify_client_cert(leaf, intermediates, at)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A check on one file that must be readable (a revocation list, a key), as one row.
pub fn readable(name: &str, path: &Path, todo: &str) -> Check {
    match std::fs::metadata(path).and_then(|m| {
        if m.is_file() {
            std::fs::File::open(path).map(|_| m.len())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    }) {
        Ok(len) => Check::pass(name, format!("{} readable ({len} bytes)", path.display())),
        Err(e) => Check::fail(name, format!("cannot read {}: {e}", path.display()), todo),
    }
}
