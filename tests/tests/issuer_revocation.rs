//! Revoking the online issuer (`underpass-certs revoke --name issuer`) at a running edge:
//! the live tunnel of a connector it enrolled is closed, the connector's new handshakes are
//! refused, and the edge enrolls nobody until the issuer is replaced.

use std::process::{Command, Output};
use std::time::Duration;

use underpass_tests::faults::FaultBackend;
use underpass_tests::*;

const EDGE_EXTRA: &str = "revocation_list = \"pki/revoked.txt\"\n\
     [auth]\nanonymous = true\n[policy]\nallow_all = true\n\
     [enrollment]\nissuer_cert = \"pki/issuer.crt\"\nissuer_key = \"pki/issuer.key\"\n";

fn certs(args: &[&str]) -> Output {
    Command::new(bin("underpass-certs"))
        .args(args)
        .output()
        .expect("run underpass-certs")
}

fn enroll(pki: &Pki, name: &str, port: u16, home: &std::path::Path) -> Output {
    let dir = pki.dir.to_string_lossy();
    let edge = format!("127.0.0.1:{port}");
    let out = certs(&[
        "token",
        "create",
        "--dir",
        &dir,
        "--connector",
        name,
        "--edge",
        &edge,
        "--server-name",
        "localhost",
    ]);
    assert!(out.status.success(), "token create failed:\n{}", show(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    Command::new(bin("underpass-connector"))
        .args(["enroll", "--token", token.trim(), "--dir"])
        .arg(home)
        .output()
        .expect("run underpass-connector enroll")
}

#[test]
fn a_revoked_issuer_closes_the_tunnels_of_what_it_issued() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let out = certs(&["issuer", "--dir", &pki.dir.to_string_lossy()]);
    assert!(out.status.success(), "issuer failed:\n{}", show(&out));
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1", "dc2"])], EDGE_EXTRA);
    let mut edge = setup.start(dir.path());
    let home = dir.path().join("dc1-home");
    let out = enroll(&pki, "dc1", setup.tunnel_port, &home);
    assert!(out.status.success(), "enroll failed:\n{}", show(&out));

    let backend = FaultBackend::start(dir.path());
    let config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        setup.tunnel_port,
        ConnectorPki {
            cert: &home.join("dc1.crt"),
            key: &home.join("dc1.key"),
            ca: &home.join("ca.crt"),
        },
        &[("ok", &backend.url("ok"))],
    );
    let mut connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));

    let out = certs(&[
        "revoke",
        "--dir",
        &pki.dir.to_string_lossy(),
        "--name",
        "issuer",
    ]);
    assert!(out.status.success(), "revoke failed:\n{}", show(&out));
    edge.wait_for_log_count(
        "closing tunnel: certificate revoked",
        2,
        Duration::from_secs(20),
    );
    // The connector dials again; its certificate's issuer is revoked: refused.
    edge.wait_for_log("invalid peer certificate: Revoked", Duration::from_secs(30));
    let r = http::get(&setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(connector.alive());

    // Nothing is enrolled under the revoked issuer.
    let out = enroll(&pki, "dc2", setup.tunnel_port, &dir.path().join("dc2-home"));
    assert!(!out.status.success(), "enrolled under a revoked issuer");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("issuer is revoked"), "{said}");
    assert!(!dir.path().join("dc2-home").join("dc2.crt").exists());
}
