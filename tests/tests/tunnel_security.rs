//! The tunnel trusts nothing it cannot verify: the wrong CA, the wrong role, or a service the
//! edge did not grant are all refused, with a reason somebody can act on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use underpass_proto::identity::Role;
use underpass_tests::http;
use underpass_tests::*;
use underpass_transport::tls::{self, Credentials, PeerPolicy};

const DEV: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n";

struct Site {
    dir: tempfile::TempDir,
    pki: Pki,
    edge_setup: EdgeSetup,
    edge: Proc,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let edge_setup = EdgeSetup::write(dir.path(), false, &[("demo", &["dc1"])], DEV);
    let edge = edge_setup.start(dir.path());
    Site {
        dir,
        pki,
        edge_setup,
        edge,
    }
}

fn not_ready(site: &Site) {
    let r = http::get(&site.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "a tunnel came up: {}", r.text());
}

fn connector(site: &Site, cert: &Path, key: &Path, ca: &Path, services: &[(&str, &str)]) -> Proc {
    let cfg = write_connector_config(
        site.dir.path(),
        "connector.toml",
        "dc1",
        site.edge_setup.tunnel_port,
        ConnectorPki { cert, key, ca },
        services,
    );
    start_connector(site.dir.path(), "connector", &cfg)
}

#[test]
fn connector_certificate_from_another_ca_is_refused_at_handshake() {
    let mut site = site();
    let rogue = Pki::init(&site.dir.path().join("rogue"));
    let (cert, key) = rogue.issue("connector", "dc1");
    // The rogue connector trusts the real CA, so only the edge's check can stop it.
    let mut c = connector(
        &site,
        &cert,
        &key,
        &site.pki.ca(),
        &[("demo", "http://127.0.0.1:9/mcp")],
    );
    site.edge
        .wait_for_log("tunnel refused", Duration::from_secs(20));
    c.wait_for_log("cannot reach edge", Duration::from_secs(20));
    // Same CA name, other key: webpki reports BadSignature (UnknownIssuer for another name).
    let log = site.edge.log_text();
    assert!(
        log.contains("BadSignature") || log.contains("UnknownIssuer"),
        "{log}"
    );
    not_ready(&site);
}

#[test]
fn edge_certificate_from_another_ca_is_refused_by_the_connector() {
    let dir = tempfile::tempdir().unwrap();
    let real = Pki::init(&dir.path().join("real"));
    let (cert, key) = real.issue("connector", "dc1");
    // The edge runs with a rogue CA's certificate in its `pki` folder.
    let rogue = Pki::init(&dir.path().join("pki"));
    rogue.issue("edge", "edge");
    let edge_setup = EdgeSetup::write(dir.path(), false, &[("demo", &["dc1"])], DEV);
    let _edge = edge_setup.start(dir.path());
    let cfg = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &real.ca(),
        },
        &[("demo", "http://127.0.0.1:9/mcp")],
    );
    let mut c = start_connector(dir.path(), "connector", &cfg);
    c.wait_for_log("invalid peer certificate", Duration::from_secs(20));
    assert!(!c.log_text().contains("tunnel up"));
}

#[test]
fn connector_refuses_to_run_with_a_client_or_edge_certificate() {
    let site = site();
    for (role, name) in [("client", "dc1c"), ("edge", "dc1e")] {
        let (cert, key) = site.pki.issue(role, name);
        let mut c = connector(
            &site,
            &cert,
            &key,
            &site.pki.ca(),
            &[("demo", "http://127.0.0.1:9/mcp")],
        );
        let status = c.wait_exit(Duration::from_secs(20));
        assert!(!status.success());
        let log = c.log_text();
        assert!(
            log.contains("must be a connector certificate"),
            "{role}: {log}"
        );
    }
    not_ready(&site);
}

/// Dials the edge's tunnel listener directly, presenting `cert` as a connector would.
fn raw_dial(site: &Site, cert: &Path, key: &Path) -> Result<(), String> {
    let creds = Credentials::load(cert, key, &site.pki.ca()).map_err(|e| e.to_string())?;
    let policy = PeerPolicy {
        role: Role::Edge,
        trust_domain: "underpass.local".into(),
        revoked: None,
    };
    let config =
        tls::tunnel_client_config(tls::tunnel_client_crypto(&creds, policy).unwrap()).unwrap();
    let addr = format!("127.0.0.1:{}", site.edge_setup.tunnel_port)
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(config);
        let conn = endpoint
            .connect(addr, "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        // With TLS 1.3 the server judges the client certificate after the client's handshake
        // completes: a refusal shows up as the connection closing.
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"x").await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        match tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1024)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    })
}

#[test]
fn edge_refuses_client_and_edge_certificates_on_the_tunnel() {
    let mut site = site();
    for (role, name) in [("client", "alice"), ("edge", "edge2")] {
        let (cert, key) = site.pki.issue(role, name);
        let err =
            raw_dial(&site, &cert, &key).expect_err("edge accepted a non-connector certificate");
        assert!(!err.is_empty());
    }
    // The client certificate fails the role check (or EKU), the edge one its EKU (serverAuth only).
    site.edge
        .wait_for_log_count("tunnel refused", 2, Duration::from_secs(10));
    not_ready(&site);
}

#[test]
fn connector_offering_an_ungranted_service_is_refused_with_a_reason() {
    let mut site = site();
    let (cert, key) = site.pki.issue("connector", "dc1");
    let mut c = connector(
        &site,
        &cert,
        &key,
        &site.pki.ca(),
        &[
            ("demo", "http://127.0.0.1:9/mcp"),
            ("secret", "http://127.0.0.1:9/mcp"),
        ],
    );
    c.wait_for_log("edge refused this connector", Duration::from_secs(20));
    let log = c.log_text();
    assert!(
        log.contains(r#"not granted service(s) [\"secret\"]"#)
            || log.contains(r#"not granted service(s) ["secret"]"#),
        "{log}"
    );
    site.edge
        .wait_for_log("tunnel refused", Duration::from_secs(5));
    not_ready(&site);
}

#[test]
fn edge_refuses_to_start_without_auth_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let setup = EdgeSetup::write(dir.path(), false, &[("demo", &["dc1"])], "");
    let out = Command::new(bin("underpass-edge"))
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither [auth] nor [policy]"), "{err}");

    // Plaintext for clients is refused off loopback.
    let text = std::fs::read_to_string(&setup.config).unwrap().replacen(
        &format!("127.0.0.1:{}", setup.client_port),
        "0.0.0.0:0",
        1,
    );
    std::fs::write(&setup.config, format!("{text}\n{DEV}")).unwrap();
    let out = Command::new(bin("underpass-edge"))
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        show(&out)
    );
}
