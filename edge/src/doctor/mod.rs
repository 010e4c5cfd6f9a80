//! `underpass-edge doctor`: pre-flight checks of an edge's configuration, before starting it
//! (or while it runs: then its ports are "in use").
//!
//! What is checked: the policy compiles; authentication builds (API keys, the JWKS file); the
//! tunnel certificate (edge identity, expiry, key, chain to `[tunnel] ca`); the client-listener
//! certificate (expiry, key) when clients use TLS; the client CA when clients may present
//! certificates; every listen address can be bound (UDP and TCP tunnel port, client port,
//! admin port; bound and released at once); the audit log's folder is writable and its signing
//! key readable; the revocation list reads; the enrollment issuer is valid; session keys are
//! 32-byte files. The verdicts are plain functions ([`bind_check`], [`audit_dir_check`]);
//! the model and table are `underpass_shared::doctor`.

use std::net::SocketAddr;
use std::path::Path;

use underpass_pki::time::OffsetDateTime;
use underpass_proto::identity::Role;
use underpass_shared::doctor::cert::{self, Expect, ExpectIdentity};
use underpass_shared::doctor::Check;

use crate::config::EdgeConfig;

/// What to do about an edge certificate near or past its end.
const RENEW: &str = "issue a new one (`underpass-certs issue edge`) and replace the files; the \
    running edge picks them up without restart";

/// The `config` row of a configuration that loaded.
pub fn config_check(path: &Path, config: &EdgeConfig) -> Check {
    Check::pass(
        "config",
        format!(
            "{} loaded: {} service(s), tunnel {}, clients {}",
            path.display(),
            config.services.len(),
            config.tunnel.listen,
            config.clients.listen
        ),
    )
}

/// Every check of a loaded configuration (the `config` row is the caller's). Quick local
/// I/O only (files, binds), so it runs in order.
pub fn run_checks(config: &EdgeConfig) -> Vec<Check> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    let policy_file = config.policy.as_ref().and_then(|p| p.file.clone());
    out.push(
        match crate::policy::store::load_store(policy_file.as_ref()) {
            Ok(_) => Check::pass(
                "policy",
                match &policy_file {
                    Some(f) => format!("{} compiles", f.display()),
                    None => "allow_all (development only)".to_owned(),
                },
            ),
            Err(e) => Check::fail(
                "policy",
                e.to_string(),
                "fix the policy file (`underpass-edge policy check` tries a call against it)",
            ),
        },
    );
    if let Some(auth) = &config.auth {
        out.push(match crate::auth::Authenticator::new(auth) {
            Ok(_) => Check::pass("authentication", "API keys and JWKS file load"),
            Err(e) => Check::fail(
                "authentication",
                e.to_string(),
                "fix [auth] (the error says which key)",
            ),
        });
        if let Some(ca) = &auth.client_ca {
            out.push(match underpass_transport::tls::load_roots(ca) {
                Ok(roots) => Check::pass(
                    "client CA",
                    format!("{}: {} root(s)", ca.display(), roots.len()),
                ),
                Err(e) => Check::fail(
                    "client CA",
                    e.to_string(),
                    "point [auth] client_ca at the PEM bundle of the CA that issues client certificates",
                ),
            });
        }
    }
    let tunnel = Expect {
        identity: Some(ExpectIdentity {
            role: Role::Edge,
            trust_domain: &config.trust_domain,
            name: None,
        }),
        renew: RENEW,
    };
    out.extend(cert::check_pair(
        "tunnel certificate",
        &config.tunnel.cert,
        &config.tunnel.key,
        Some(&config.tunnel.ca),
        &tunnel,
        now,
    ));
    if let (Some(c), Some(k)) = (&config.clients.cert, &config.clients.key) {
        let https = Expect {
            identity: None,
            renew: "replace the client listener's certificate ([clients] cert and key)",
        };
        out.extend(cert::check_pair(
            "client certificate",
            c,
            k,
            None,
            &https,
            now,
        ));
    }
    out.extend(bind_checks(config));
    if let Some(audit) = &config.audit {
        out.push(audit_dir_check(&audit.file));
        if let Some(key) = &audit.signing_key {
            out.push(signing_key_check(key));
        }
    }
    if let Some(path) = &config.revocation_list {
        out.push(match underpass_pki::revocation::read_revocation_file(path) {
            Ok(list) => Check::pass("revocation list", format!("{}: {}", path.display(), list.summary())),
            Err(e) => Check::fail(
                "revocation list",
                format!("{}: {e}", path.display()),
                "fix or replace the file (`underpass-certs revoke` writes it); the edge does not start without it",
            ),
        });
    }
    if let Some(e) = &config.enrollment {
        out.push(
            match crate::enroll::authority::Authorities::load(
                e,
                &config.tunnel.ca,
                &config.trust_domain,
            ) {
                Ok(_) => Check::pass(
                    "enrollment issuer",
                    format!(
                        "{} is a valid issuer under [tunnel] ca",
                        e.issuer_cert.display()
                    ),
                ),
                Err(err) => Check::fail(
                    "enrollment issuer",
                    format!("{err:#}"),
                    "make one with `underpass-certs issuer --dir DIR` under the CA of [tunnel] ca",
                ),
            },
        );
    }
    for key in config.sessions.iter().flat_map(|s| s.keys.iter()) {
        out.push(match crate::sessions::read_key(key) {
            Ok(_) => Check::pass("session key", format!("{}: 32 bytes", key.display())),
            Err(e) => Check::fail("session key", format!("{e:#}"), "make one with `underpass-certs session-key --out FILE`; every edge needs the same files"),
        });
    }
    out
}

/// Every listen address bound and released at once.
fn bind_checks(config: &EdgeConfig) -> Vec<Check> {
    let tcp = |addr: SocketAddr| std::net::TcpListener::bind(addr).map(drop);
    let udp = |addr: SocketAddr| std::net::UdpSocket::bind(addr).map(drop);
    let mut out = vec![
        bind_check(
            "tunnel listen udp",
            config.tunnel.listen,
            udp(config.tunnel.listen),
        ),
        bind_check(
            "tunnel listen tcp",
            config.tunnel.listen,
            tcp(config.tunnel.listen),
        ),
        bind_check(
            "clients listen",
            config.clients.listen,
            tcp(config.clients.listen),
        ),
    ];
    if let Some(admin) = &config.admin {
        out.push(bind_check("admin listen", admin.listen, tcp(admin.listen)));
    }
    out
}

/// A bind's result as a row.
pub fn bind_check(name: &str, addr: SocketAddr, bound: std::io::Result<()>) -> Check {
    use std::io::ErrorKind;
    match bound {
        Ok(()) => Check::pass(name, format!("{addr} can be bound")),
        Err(e) if e.kind() == ErrorKind::AddrInUse => Check::fail(
            name,
            format!("{addr} in use (is an edge already running?)"),
            "stop the other process on that port (`ss -lntup`), or pick another address",
        ),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Check::fail(
            name,
            format!("{addr}: {e}"),
            "ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it), or pick a port above 1023",
        ),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => Check::fail(
            name,
            format!("{addr}: {e}"),
            "the address is not one of this host's: use 0.0.0.0, or an address of an interface here",
        ),
        Err(e) => Check::fail(name, format!("{addr}: {e}"), "pick another address"),
    }
}

/// The audit log's folder exists and this user can create files in it (the log, its
/// rotations, checkpoints and key sidecars).
pub fn audit_dir_check(file: &Path) -> Check {
    let name = "audit log";
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".underpass-doctor-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Check::pass(name, format!("{} is writable", dir.display()))
        }
        Err(e) => Check::fail(
            name,
            format!("cannot create files in {}: {e}", dir.display()),
            "create the folder and give the edge's user write access to it",
        ),
    }
}

/// A configured signing key is readable, or absent (then made at first start).
fn signing_key_check(key: &Path) -> Check {
    if !key.exists() {
        return Check::pass(
            "audit signing key",
            format!("{} does not exist yet: made at first start", key.display()),
        );
    }
    cert::readable(
        "audit signing key",
        key,
        "give the edge's user read access (mode 600, owned by it)",
    )
}

#[cfg(test)]
mod tests;
