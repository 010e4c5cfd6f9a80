//! The real `underpass-certs` binary: `issue --ttl`, `issuer` and `token create`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests stop at the first failure

mod common;
use common::{fails, ok, run_ok, s};

#[test]
fn issue_with_ttl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = s(tmp.path());
    ok(&["init", "--dir", d]);
    ok(&[
        "issue", "client", "--dir", d, "--name", "alice", "--ttl", "2m",
    ]);
    let info =
        underpass_pki::inspect::inspect_file(&tmp.path().join("alice.crt")).expect("inspect");
    assert_eq!(
        info.not_after - info.not_before,
        underpass_pki::time::Duration::minutes(7),
        "2m plus the 5m clock skew allowance"
    );
    let err = fails(&[
        "issue", "client", "--dir", d, "--name", "bob", "--ttl", "10s",
    ]);
    assert!(err.contains("at least 1m"), "{err}");
    let err = fails(&[
        "issue", "edge", "--dir", d, "--name", "e", "--ttl", "20years",
    ]);
    assert!(err.contains("after the signing CA's own end"), "{err}");
    let err = fails(&[
        "issue",
        "connector",
        "--dir",
        d,
        "--name",
        "c",
        "--ttl",
        "soon",
    ]);
    assert!(err.contains("invalid --ttl"), "{err}");
}

#[test]
fn issuer_then_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = s(tmp.path());
    ok(&["init", "--dir", d]);
    let err = fails(&[
        "token",
        "create",
        "--dir",
        d,
        "--connector",
        "dc1",
        "--edge",
        "h:1",
    ]);
    assert!(err.contains("issuer.crt"), "{err}");

    let out = ok(&["issuer", "--dir", d, "--ttl", "30d"]);
    assert!(out.contains("created the connector issuer"), "{out}");
    let err = fails(&["issuer", "--dir", d]);
    assert!(err.contains("--rotate"), "{err}");

    let out = run_ok(&[
        "token",
        "create",
        "--dir",
        d,
        "--connector",
        "dc1",
        "--edge",
        "127.0.0.1:7443",
        "--edge",
        "edge2.example.com:7443",
        "--services",
        "billing,crm",
        "--ttl",
        "10m",
    ]);
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout}"
    );
    let token = stdout.trim();
    assert!(token.starts_with("upt1."), "{token}");
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains("connector dc1"), "{stderr}");

    let iss = underpass_pki::issuer::load_dir(tmp.path()).expect("issuer");
    let ca = underpass_pki::inspect::read_certificate(&tmp.path().join("ca.crt")).expect("ca");
    let now = underpass_pki::time::OffsetDateTime::now_utc();
    let claims =
        underpass_pki::token::verify(token, &iss, &underpass_pki::token::fingerprint(&ca), now)
            .expect("verifies");
    assert_eq!(claims.connector, "dc1");
    assert_eq!(claims.edges, ["127.0.0.1:7443", "edge2.example.com:7443"]);
    assert_eq!(claims.services, ["billing", "crm"]);

    // Rotation archives the old issuer and invalidates the token.
    let out = ok(&["issuer", "--dir", d, "--rotate", "--ttl", "30d"]);
    assert!(out.contains("archived the previous issuer"), "{out}");
    let iss = underpass_pki::issuer::load_dir(tmp.path()).expect("issuer");
    let err =
        underpass_pki::token::verify(token, &iss, &underpass_pki::token::fingerprint(&ca), now)
            .expect_err("rotated");
    assert_eq!(err, underpass_pki::token::TokenRefusal::OtherIssuer);

    for (args, shows) in [
        (vec!["--connector", "dc1", "--edge", "nope"], "HOST:PORT"),
        (
            vec!["--connector", "dc1", "--edge", "h:1", "--ttl", "30d"],
            "1s to 7days",
        ),
        (
            vec!["--connector", "Bad/Name", "--edge", "h:1"],
            "invalid name",
        ),
    ] {
        let mut all = vec!["token", "create", "--dir", d];
        all.extend(args);
        let err = fails(&all);
        assert!(err.contains(shows), "{err}");
    }
}
