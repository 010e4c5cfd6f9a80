//! Identity operations with the real binaries, as an operator runs them: `underpass-certs`
//! (the connector issuer, tokens, revocation), `underpass-connector enroll`, and what the
//! resulting certificate files say. Shared by the enrollment, revocation and reload tests.

use std::path::Path;
use std::process::{Command, Output};

use underpass_pki::time::OffsetDateTime;

use crate::{bin, run_ok, show, Pki};

/// `[enrollment]` (and what an enrollment test needs around it) for [`crate::EdgeSetup::write`]:
/// anonymous clients, allow-all policy, an audit log, the issuer at `pki/issuer.*`, connector
/// certificates of one hour (replace `cert_ttl = "1h"` for another lifetime).
pub const ENROLLING_EDGE: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
     [audit]\nfile = \"audit.jsonl\"\n\
     [enrollment]\nissuer_cert = \"pki/issuer.crt\"\nissuer_key = \"pki/issuer.key\"\ncert_ttl = \"1h\"\n";

/// Runs `underpass-certs` with `args`; the caller judges the outcome.
pub fn certs(args: &[&str]) -> Output {
    Command::new(bin("underpass-certs"))
        .args(args)
        .output()
        .expect("run underpass-certs")
}

/// Runs `underpass-certs --dir <pki> <args…>` (the subcommand first) and requires success;
/// returns its standard output.
pub fn certs_ok(subcommand: &[&str], pki: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(bin("underpass-certs"))
            .args(subcommand)
            .arg("--dir")
            .arg(pki)
            .args(args),
    )
}

impl Pki {
    /// `underpass-certs issuer` (`--rotate` when `rotate`): the connector issuer of this PKI.
    pub fn issuer(&self, rotate: bool) -> String {
        let rotate: &[&str] = if rotate { &["--rotate"] } else { &[] };
        certs_ok(&["issuer"], &self.dir, rotate)
    }
}

/// A one-time token for `connector` naming the edge at `127.0.0.1:<port>` (server name
/// `localhost`), valid for `ttl`, suggesting service `ok`.
pub fn token(pki: &Path, connector: &str, port: u16, ttl: &str) -> String {
    let out = certs(&[
        "token",
        "create",
        "--dir",
        &pki.to_string_lossy(),
        "--connector",
        connector,
        "--edge",
        &format!("127.0.0.1:{port}"),
        "--server-name",
        "localhost",
        "--ttl",
        ttl,
        "--services",
        "ok",
    ]);
    assert!(out.status.success(), "token create failed:\n{}", show(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// `underpass-connector enroll --token <token> --dir <dir>`; the caller judges the outcome.
pub fn enroll(token: &str, dir: &Path) -> Output {
    Command::new(bin("underpass-connector"))
        .args(["enroll", "--token", token, "--dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run underpass-connector enroll")
}

/// The serial of the (first) certificate in the PEM file at `path`, as the audit log and
/// `underpass-certs inspect` write it.
pub fn serial(path: &Path) -> String {
    underpass_pki::revocation::certificate_serial(
        &underpass_pki::inspect::read_certificate(path).expect("a certificate"),
    )
    .expect("a serial")
}

/// When the (first) certificate in the PEM file at `path` ends.
pub fn not_after(path: &Path) -> OffsetDateTime {
    underpass_pki::inspect::inspect_file(path)
        .expect("a certificate")
        .not_after
}

/// A connector config named `file` in `dir` running on the files `enroll` wrote into `home`
/// for `name` (`home/<name>.crt`, `.key`, `home/ca.crt`).
pub fn enrolled_config(
    dir: &Path,
    file: &str,
    home: &Path,
    name: &str,
    tunnel_port: u16,
    services: &[(&str, &str)],
) -> std::path::PathBuf {
    crate::write_connector_config(
        dir,
        file,
        name,
        tunnel_port,
        crate::ConnectorPki {
            cert: &home.join(format!("{name}.crt")),
            key: &home.join(format!("{name}.key")),
            ca: &home.join("ca.crt"),
        },
        services,
    )
}

/// The serials of the certificates in the PEM file at `path`, in order (a connector's `cert`:
/// its own, then its issuer's).
pub fn chain_serials(path: &Path) -> Vec<String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .expect("a PEM file")
        .map(|der| {
            underpass_pki::revocation::certificate_serial(&der.expect("a certificate"))
                .expect("a serial")
        })
        .collect()
}

impl Pki {
    /// Removes `name`'s certificate and key and issues new ones (`role`: edge, connector or
    /// client): a fresh certificate for the same identity.
    pub fn reissue(&self, role: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        std::fs::remove_file(self.cert(name)).expect("remove the certificate");
        std::fs::remove_file(self.dir.join(format!("{name}.key"))).expect("remove the key");
        self.issue(role, name)
    }
}

/// An edge that reads `pki/revoked.txt` (anonymous clients, allow-all policy), for
/// [`crate::Deployment::start_with`].
pub const REVOKING_EDGE: &str =
    "revocation_list = \"pki/revoked.txt\"\n[auth]\nanonymous = true\n[policy]\nallow_all = true\n";
