//! Revoking the online issuer (`underpass-certs revoke --name issuer`) at a running edge:
//! the live tunnel of a connector it enrolled is closed, the connector's new handshakes are
//! refused, and the edge enrolls nobody until the issuer is replaced.

use std::time::Duration;

use underpass_tests::faults::FaultBackend;
use underpass_tests::identity::{certs_ok, enroll, enrolled_config, token, ENROLLING_EDGE};
use underpass_tests::*;

#[test]
fn a_revoked_issuer_closes_the_tunnels_of_what_it_issued() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issuer(false);
    let extra = format!("revocation_list = \"pki/revoked.txt\"\n{ENROLLING_EDGE}");
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1", "dc2"])], &extra);
    let mut edge = setup.start(dir.path());
    let home = dir.path().join("dc1-home");
    let out = enroll(&token(&pki.dir, "dc1", setup.tunnel_port, "15m"), &home);
    assert!(out.status.success(), "enroll failed:\n{}", show(&out));

    let backend = FaultBackend::start(dir.path());
    let config = enrolled_config(
        dir.path(),
        "connector.toml",
        &home,
        "dc1",
        setup.tunnel_port,
        &[("ok", &backend.url("ok"))],
    );
    let mut connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));

    certs_ok(&["revoke"], &pki.dir, &["--name", "issuer"]);
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
    let t = token(&pki.dir, "dc2", setup.tunnel_port, "15m");
    let out = enroll(&t, &dir.path().join("dc2-home"));
    assert!(!out.status.success(), "enrolled under a revoked issuer");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("issuer is revoked"), "{said}");
    assert!(!dir.path().join("dc2-home").join("dc2.crt").exists());
}
