//! Runs the real `underpass-certs` binary in a temporary directory, the way operators and the
//! outside tests do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests stop at the first failure

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

mod common;
use common::{certs, fails, ok, s};

fn field(output: &str, key: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{output}"))
        .trim()
        .to_owned()
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("PEM certificate")
        .to_vec()
}

struct Pki {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        ok(&["init", "--dir", s(&dir)]);
        Pki { _tmp: tmp, dir }
    }
    fn d(&self) -> &str {
        s(&self.dir)
    }
    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.join(file)
    }
}

#[test]
fn init_issue_inspect() {
    let pki = Pki::new();
    for (role, name) in [
        ("edge", "edge1"),
        ("connector", "dc1"),
        ("client", "alice"),
        ("operator", "ops1"),
    ] {
        ok(&["issue", role, "--dir", pki.d(), "--name", name]);
        let out = ok(&["inspect", s(&pki.path(&format!("{name}.crt")))]);
        assert_eq!(
            field(&out, "identity:"),
            format!("spiffe://underpass.local/{role}/{name}")
        );
        assert_eq!(field(&out, "role:"), role);
        let serial = field(&out, "serial:");
        assert!(!serial.is_empty() && serial.len() <= 32, "{serial}");
        assert!(serial
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert!(field(&out, "not-after:").ends_with('Z'));
        assert!(field(&out, "not-before:").ends_with('Z'));
        assert_eq!(field(&out, "issuer:"), "CN=Underpass CA underpass.local");

        let key = pki.path(&format!("{name}.key"));
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}.key mode");
        let pem = std::fs::read_to_string(&key).expect("key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    }
    let ca_mode = std::fs::metadata(pki.path("ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(ca_mode & 0o777, 0o600);

    let out = ok(&["inspect", s(&pki.path("ca.crt"))]);
    assert_eq!(
        field(&out, "identity:"),
        "(CA) trust domain underpass.local"
    );
    field(&out, "serial:");
    field(&out, "not-after:");
}

#[test]
fn custom_trust_domain_reaches_leaves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = s(tmp.path());
    ok(&["init", "--dir", d, "--trust-domain", "corp.example"]);
    ok(&["issue", "connector", "--dir", d, "--name", "dc1"]);
    let out = ok(&["inspect", s(&tmp.path().join("dc1.crt"))]);
    assert_eq!(
        field(&out, "identity:"),
        "spiffe://corp.example/connector/dc1"
    );
}

#[test]
fn refusals() {
    let pki = Pki::new();
    // Never overwrite the CA.
    let ca_before = std::fs::read(pki.path("ca.key")).expect("ca.key");
    let err = fails(&["init", "--dir", pki.d()]);
    assert!(err.contains("ca.crt already exists"), "{err}");
    assert!(err.contains("remove it or pick another name"), "{err}");
    assert_eq!(
        std::fs::read(pki.path("ca.key")).expect("ca.key"),
        ca_before
    );

    // Never overwrite a leaf.
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);
    let key_before = std::fs::read(pki.path("dc1.key")).expect("dc1.key");
    let err = fails(&["issue", "client", "--dir", pki.d(), "--name", "dc1"]);
    assert!(err.contains("dc1.crt already exists"), "{err}");
    assert_eq!(
        std::fs::read(pki.path("dc1.key")).expect("dc1.key"),
        key_before
    );

    // An orphan key blocks the name too, and no certificate is written beside it.
    std::fs::write(pki.path("lone.key"), "x").expect("write");
    let err = fails(&["issue", "client", "--dir", pki.d(), "--name", "lone"]);
    assert!(err.contains("lone.key already exists"), "{err}");
    assert!(!pki.path("lone.crt").exists());

    // Missing CA.
    let empty = tempfile::tempdir().expect("tempdir");
    let err = fails(&["issue", "edge", "--dir", s(empty.path()), "--name", "e"]);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: no CA in {0}: run `underpass-certs init --dir {0}` first",
            empty.path().display()
        )
    );

    // Invalid names, the reserved name, invalid trust domain, bad --san.
    for bad in ["Dc1", "../x", "-x", ""] {
        let err = fails(&["issue", "connector", "--dir", pki.d(), "--name", bad]);
        assert!(err.contains("invalid name"), "{bad:?}: {err}");
    }
    let err = fails(&["issue", "client", "--dir", pki.d(), "--name", "ca"]);
    assert!(err.contains("reserved"), "{err}");
    let err = fails(&[
        "init",
        "--dir",
        s(&empty.path().join("x")),
        "--trust-domain",
        "Bad_TD",
    ]);
    assert!(err.contains("invalid trust domain"), "{err}");
    let err = fails(&[
        "issue",
        "edge",
        "--dir",
        pki.d(),
        "--name",
        "e",
        "--san",
        "a b",
    ]);
    assert!(err.contains("invalid --san"), "{err}");

    // Unreadable or garbage input to inspect.
    std::fs::write(pki.path("junk.crt"), "not a certificate").expect("write");
    let err = fails(&["inspect", s(&pki.path("junk.crt"))]);
    assert!(err.contains("junk.crt"), "{err}");
    let err = fails(&["inspect", s(&pki.path("absent.crt"))]);
    assert!(err.contains("absent.crt"), "{err}");
    let err = fails(&["inspect", s(&pki.path("dc1.key"))]);
    assert!(err.contains("dc1.key"), "{err}");
}

#[test]
fn revoke_by_name_and_serial() {
    let pki = Pki::new();
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);
    ok(&["issue", "client", "--dir", pki.d(), "--name", "alice"]);
    let list = pki.path("revoked.txt");

    ok(&["revoke", "--dir", pki.d(), "--name", "dc1"]);
    let dc1_serial = field(&ok(&["inspect", s(&pki.path("dc1.crt"))]), "serial:");
    let text = std::fs::read_to_string(&list).expect("revoked.txt");
    let fields: Vec<&str> = text.lines().next().expect("a line").split(' ').collect();
    assert_eq!(fields.len(), 3, "{text}");
    assert_eq!(fields[0], dc1_serial);
    assert_eq!(fields[1], "spiffe://underpass.local/connector/dc1");
    assert!(fields[2].ends_with('Z'));
    let mode = std::fs::metadata(&list).expect("list").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    // By serial, in an uppercase, colon-separated spelling.
    let alice_serial = field(&ok(&["inspect", s(&pki.path("alice.crt"))]), "serial:");
    let spelled: Vec<String> = alice_serial
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    ok(&["revoke", "--dir", pki.d(), "--serial", &spelled.join(":")]);
    let text = std::fs::read_to_string(&list).expect("revoked.txt");
    assert_eq!(text.lines().count(), 2, "{text}");
    let second = text.lines().nth(1).expect("second line");
    assert!(
        second.starts_with(&format!(
            "{alice_serial} spiffe://underpass.local/client/alice "
        )),
        "{second}"
    );

    // Revoking again is a no-op with a message.
    let out = ok(&["revoke", "--dir", pki.d(), "--serial", &dc1_serial]);
    assert!(out.contains("already revoked"), "{out}");
    assert_eq!(std::fs::read_to_string(&list).expect("list"), text);

    // The library reads back exactly what inspect printed.
    let set = underpass_pki::revocation::read_revocation_list(&text).expect("list");
    assert!(set.is_revoked_serial(&dc1_serial) && set.is_revoked_serial(&alice_serial));

    // Inspect notices the revocation.
    let out = ok(&["inspect", s(&pki.path("dc1.crt"))]);
    assert_eq!(field(&out, "status:"), "revoked");

    // Unknown name / serial are errors; nothing appended.
    let err = fails(&["revoke", "--dir", pki.d(), "--name", "nobody"]);
    assert!(err.contains("nobody.crt"), "{err}");
    let err = fails(&["revoke", "--dir", pki.d(), "--serial", "deadbeef"]);
    assert!(err.contains("deadbeef"), "{err}");
    let err = fails(&["revoke", "--dir", pki.d(), "--serial", "xyz"]);
    assert!(err.contains("invalid serial"), "{err}");
    assert_eq!(std::fs::read_to_string(&list).expect("list"), text);
    // ... unless forced.
    ok(&[
        "revoke",
        "--dir",
        pki.d(),
        "--serial",
        "DEADBEEF",
        "--force",
    ]);
    let text = std::fs::read_to_string(&list).expect("list");
    assert!(text
        .lines()
        .nth(2)
        .expect("third")
        .starts_with("deadbeef - "));

    // Exactly one of --name / --serial (a usage error from clap, exit 2).
    let out = certs(&["revoke", "--dir", pki.d()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn revoke_rules_and_the_issuer() {
    let pki = Pki::new();
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);
    let list = pki.path("revoked.txt");
    let t = "2026-11-23T19:00:00Z";

    let out = ok(&[
        "revoke",
        "--dir",
        pki.d(),
        "--connector",
        "dc1",
        "--before",
        t,
    ]);
    assert!(out.contains("revoked every certificate of spiffe://underpass.local/connector/dc1 issued before 2026-11-23T19:00:00Z"), "{out}");
    let out = ok(&[
        "revoke",
        "--dir",
        pki.d(),
        "--connector",
        "dc1",
        "--before",
        t,
    ]);
    assert!(out.contains("nothing to do"), "{out}");
    ok(&[
        "revoke",
        "--dir",
        pki.d(),
        "--all-connectors",
        "--before",
        t,
    ]);
    assert_eq!(
        std::fs::read_to_string(&list).expect("list"),
        format!(
            "before {t} spiffe://underpass.local/connector/dc1\n\
             before {t} spiffe://underpass.local/connector/*\n"
        )
    );
    // dc1 was issued after T: still good.
    let out = ok(&["inspect", s(&pki.path("dc1.crt"))]);
    assert_eq!(field(&out, "status:"), "valid");

    // `--before now` (also the default) catches it.
    ok(&["revoke", "--dir", pki.d(), "--connector", "dc1"]);
    let out = ok(&["inspect", s(&pki.path("dc1.crt"))]);
    assert_eq!(field(&out, "status:"), "revoked");
    // A re-issued certificate is not caught (issued after T, with T = now a second ago at
    // most: wait out the one-second precision first).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::remove_file(pki.path("dc1.crt")).expect("rm");
    std::fs::remove_file(pki.path("dc1.key")).expect("rm");
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);
    let out = ok(&["inspect", s(&pki.path("dc1.crt"))]);
    assert_eq!(field(&out, "status:"), "valid");

    let err = fails(&[
        "revoke",
        "--dir",
        pki.d(),
        "--connector",
        "dc1",
        "--before",
        "yesterday",
    ]);
    assert!(err.contains("invalid time"), "{err}");
    let err = fails(&["revoke", "--dir", pki.d(), "--connector", "Bad Name"]);
    assert!(err.contains("Bad Name"), "{err}");
    let err = fails(&[
        "revoke",
        "--dir",
        pki.d(),
        "--name",
        "dc1",
        "--before",
        "now",
    ]);
    assert!(err.contains("--before goes with"), "{err}");
    // Two targets at once: a usage error.
    let out = certs(&[
        "revoke",
        "--dir",
        pki.d(),
        "--connector",
        "dc1",
        "--all-connectors",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // The issuer may be revoked; the root may not.
    ok(&["issuer", "--dir", pki.d(), "--ttl", "30d"]);
    let out = ok(&["revoke", "--dir", pki.d(), "--name", "issuer"]);
    assert!(out.contains("revoked "), "{out}");
    let out = ok(&["inspect", s(&pki.path("issuer.crt"))]);
    assert_eq!(field(&out, "status:"), "revoked");
    let err = fails(&["revoke", "--dir", pki.d(), "--name", "ca"]);
    assert!(err.contains("refusing to revoke the CA"), "{err}");
    let ca_serial = field(&ok(&["inspect", s(&pki.path("ca.crt"))]), "serial:");
    let err = fails(&["revoke", "--dir", pki.d(), "--serial", &ca_serial]);
    assert!(err.contains("refusing to revoke the CA"), "{err}");

    let help = ok(&["revoke", "--help"]);
    assert!(
        help.contains("--all-connectors") && help.contains("before T"),
        "{help}"
    );
}

fn sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("present");
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
            other => format!("other:{other:?}"),
        })
        .collect()
}

#[test]
fn edge_and_connector_extensions() {
    let pki = Pki::new();
    ok(&["issue", "edge", "--dir", pki.d(), "--name", "edge"]);
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);

    let edge = der(&pki.path("edge.crt"));
    assert_eq!(
        sans(&edge),
        [
            "URI:spiffe://underpass.local/edge/edge",
            "DNS:localhost",
            "IP:[127, 0, 0, 1]"
        ]
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&edge).expect("parse");
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.server_auth && !eku.client_auth && !eku.any && eku.other.is_empty());
    let bc = cert
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert!(!bc.ca);
    let ku = cert.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert_eq!(cert.subject().to_string(), "CN=edge");
    assert_eq!(cert.raw_serial().len(), 16);

    let connector = der(&pki.path("dc1.crt"));
    assert_eq!(
        sans(&connector),
        ["URI:spiffe://underpass.local/connector/dc1"]
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&connector).expect("parse");
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());

    // Explicit --san values replace the defaults.
    ok(&[
        "issue",
        "edge",
        "--dir",
        pki.d(),
        "--name",
        "edge2",
        "--san",
        "edge.example.com",
        "--san",
        "10.1.2.3",
        "--san",
        "::1",
    ]);
    assert_eq!(
        sans(&der(&pki.path("edge2.crt"))),
        [
            "URI:spiffe://underpass.local/edge/edge2",
            "DNS:edge.example.com",
            "IP:[10, 1, 2, 3]",
            "IP:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"
        ]
    );
}

#[test]
fn leaves_chain_to_the_ca() {
    let pki = Pki::new();
    ok(&["issue", "edge", "--dir", pki.d(), "--name", "edge"]);
    ok(&["issue", "connector", "--dir", pki.d(), "--name", "dc1"]);
    ok(&["issue", "client", "--dir", pki.d(), "--name", "alice"]);
    let ca_der = der(&pki.path("ca.crt"));
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("ca");

    // Signature and names, with x509-parser.
    for name in ["edge", "dc1", "alice"] {
        let leaf_der = der(&pki.path(&format!("{name}.crt")));
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).expect("leaf");
        leaf.verify_signature(Some(ca.public_key()))
            .unwrap_or_else(|e| panic!("{name}: signature does not verify: {e}"));
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    }
    // A certificate from another CA does not verify against this one.
    let other = Pki::new();
    ok(&["issue", "connector", "--dir", other.d(), "--name", "dc1"]);
    let foreign_der = der(&other.path("dc1.crt"));
    let (_, foreign) = x509_parser::parse_x509_certificate(&foreign_der).expect("foreign");
    assert!(foreign.verify_signature(Some(ca.public_key())).is_err());

    // Full path validation with webpki, as rustls does it at the edge and the connector.
    let ca_cert = CertificateDer::from(ca_der.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&ca_cert).expect("anchor")];
    let algs = [webpki::ring::ECDSA_P256_SHA256];
    let now = UnixTime::now();
    let verify = |name: &str, usage: webpki::KeyUsage| {
        let leaf_der = CertificateDer::from(der(&pki.path(&format!("{name}.crt"))));
        let leaf = webpki::EndEntityCert::try_from(&leaf_der).expect("end entity");
        leaf.verify_for_usage(&algs, &anchors, &[], now, usage, None, None)
            .map(|_| ())
    };
    verify("edge", webpki::KeyUsage::server_auth()).expect("edge as server");
    verify("dc1", webpki::KeyUsage::client_auth()).expect("connector as client");
    verify("alice", webpki::KeyUsage::client_auth()).expect("client as client");
    // Roles stay on their side of the handshake.
    assert!(verify("dc1", webpki::KeyUsage::server_auth()).is_err());
    assert!(verify("edge", webpki::KeyUsage::client_auth()).is_err());

    let edge_der = CertificateDer::from(der(&pki.path("edge.crt")));
    let edge = webpki::EndEntityCert::try_from(&edge_der).expect("edge");
    for host in ["localhost", "127.0.0.1"] {
        let name = ServerName::try_from(host).expect("server name");
        edge.verify_is_valid_for_subject_name(&name)
            .unwrap_or_else(|e| panic!("edge not valid for {host}: {e}"));
    }
    let name = ServerName::try_from("example.com").expect("server name");
    assert!(edge.verify_is_valid_for_subject_name(&name).is_err());
}

#[test]
fn session_key_is_32_random_bytes_owner_only_never_overwritten() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = t.path().join("sessions.key");
    let b = t.path().join("old.key");
    let out = ok(&["session-key", "--out", s(&a)]);
    assert!(out.contains("[sessions] keys"), "{out}");
    ok(&["session-key", "--out", s(&b)]);
    let ka = std::fs::read(&a).unwrap();
    assert_eq!(ka.len(), 32);
    assert_ne!(ka, std::fs::read(&b).unwrap(), "random, not fixed");
    let mode = std::fs::metadata(&a).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = fails(&["session-key", "--out", s(&a)]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), ka, "the existing key is kept");
}
