//! One-time enrollment with the real binaries: `underpass-certs issuer` and `token create`,
//! `underpass-connector enroll` against an edge with `[enrollment]`, then the connector running
//! on the files it wrote and carrying calls. Refused: the token used again, an expired token, a
//! token of another deployment (the connector refuses the edge: it does not present the pinned
//! CA). Every attempt the edge saw is on its audit log, which verifies.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use underpass_tests::faults::{audit_verify, read_jsonl, FaultBackend, Rng};
use underpass_tests::load::{summarize, Load, Outcome, Plan};
use underpass_tests::*;

const EDGE_EXTRA: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
     [audit]\nfile = \"audit.jsonl\"\n\
     [enrollment]\nissuer_cert = \"pki/issuer.crt\"\nissuer_key = \"pki/issuer.key\"\ncert_ttl = \"1h\"\n";

fn certs(args: &[&str]) -> Output {
    Command::new(bin("underpass-certs"))
        .args(args)
        .output()
        .expect("run underpass-certs")
}

fn token(pki: &std::path::Path, connector: &str, port: u16, ttl: &str) -> String {
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

fn enroll(token: &str, dir: &std::path::Path) -> Output {
    Command::new(bin("underpass-connector"))
        .args(["enroll", "--token", token, "--dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run underpass-connector enroll")
}

#[test]
fn token_enroll_tunnel_traffic_and_every_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let out = certs(&["issuer", "--dir", &pki.dir.to_string_lossy()]);
    assert!(out.status.success(), "issuer failed:\n{}", show(&out));
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], EDGE_EXTRA);
    let mut edge = setup.start(dir.path());
    edge.wait_for_log("enrollment served", Duration::from_secs(10));

    // Enroll: the key is made on this side, the files written, a config suggested.
    let t = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let home = dir.path().join("dc1-home");
    let out = enroll(&t, &home);
    assert!(out.status.success(), "enroll failed:\n{}", show(&out));
    let suggested = String::from_utf8_lossy(&out.stdout);
    assert!(
        suggested.contains("name = \"dc1\"") && suggested.contains("[[services]]"),
        "{suggested}"
    );
    let key = home.join("dc1.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key must be private");
    let chain = std::fs::read_to_string(home.join("dc1.crt")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    let inspected = certs(&["inspect", &home.join("dc1.crt").to_string_lossy()]);
    let inspected = String::from_utf8_lossy(&inspected.stdout).into_owned();
    assert!(
        inspected.contains("spiffe://underpass.local/connector/dc1"),
        "{inspected}"
    );

    // The connector runs on what enroll wrote, and carries calls.
    let backend = FaultBackend::start(dir.path());
    let config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        setup.tunnel_port,
        ConnectorPki {
            cert: &home.join("dc1.crt"),
            key: &key,
            ca: &home.join("ca.crt"),
        },
        &[("ok", &backend.url("ok"))],
    );
    let _connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"echo","arguments":{"message":"enrolled"}}});
    let r = http::mcp_post(
        &setup.url("ok"),
        &[("MCP-Protocol-Version", "2025-11-25")],
        &call,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("echo: enrolled"), "{}", r.text());

    // The same token again (a fresh folder, a fresh key): refused by the edge.
    let out = enroll(&t, &dir.path().join("again"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token already used"), "{err}");
    assert!(!dir.path().join("again").join("dc1.key").exists());

    // The token survives no restart of the edge either.
    edge.stop();
    let mut edge = setup.start(dir.path());
    let out = enroll(&t, &dir.path().join("after-restart"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token already used"),
        "{}",
        show(&out)
    );

    // Expired: refused before anything is sent.
    let short = token(&pki.dir, "dc2", setup.tunnel_port, "1s");
    std::thread::sleep(Duration::from_millis(2100));
    let out = enroll(&short, &dir.path().join("late"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "{}",
        show(&out)
    );

    // A token of another deployment naming this edge: the connector refuses the edge, which
    // does not present the CA the token pins.
    let other = Pki::init(&dir.path().join("other-pki"));
    let out = certs(&["issuer", "--dir", &other.dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", show(&out));
    let foreign = token(&other.dir, "dc1", setup.tunnel_port, "15m");
    let out = enroll(&foreign, &dir.path().join("foreign"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not present the CA the token pins"),
        "{}",
        show(&out)
    );

    // Garbage for a token.
    let out = enroll("upt1.garbage.garbage", &dir.path().join("garbage"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an enrollment token"),
        "{}",
        show(&out)
    );

    // The audit log: the issue (with its serial) and both refusals the edge saw; it verifies.
    edge.stop();
    let audit = dir.path().join("audit.jsonl");
    let lines: Vec<_> = read_jsonl(&audit)
        .into_iter()
        .filter(|l| l["mcp_method"] == "underpass/enroll")
        .collect();
    let issued: Vec<_> = lines.iter().filter(|l| l["outcome"] == "ok").collect();
    assert_eq!(issued.len(), 1, "{lines:#?}");
    assert_eq!(issued[0]["principal"], "connector:dc1");
    assert!(issued[0]["issued"].is_string(), "{:?}", issued[0]);
    let used: Vec<_> = lines.iter().filter(|l| l["rule"] == "TokenUsed").collect();
    assert_eq!(used.len(), 2, "{lines:#?}");
    assert!(
        used.iter().all(|l| l["principal"] == "connector:dc1"
            && l["target"] == issued[0]["target"]
            && l["outcome"] == "unauthenticated"),
        "{used:#?}"
    );
    let (code, text) = audit_verify(&audit);
    assert_eq!(code, 0, "{text}");
}

/// A TLS client of the enrollment port offering `alpn`, with no client certificate, trusting
/// the edge under the CA of `pki` (pinned, as a token does).
fn raw_enroll_client(pki: &Pki, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let ca = underpass_pki::inspect::read_certificate(&pki.ca()).unwrap();
    let pin = underpass_pki::token::fingerprint(&ca);
    let mut config =
        underpass_transport::tls::enroll_client_crypto(pin, "underpass.local").unwrap();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    config
}

/// Opens a TLS session to the tunnel port, writes `first`, and returns the session.
fn tls_session(
    port: u16,
    config: rustls::ClientConfig,
    first: &[u8],
) -> (
    rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    std::io::Result<()>,
) {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let wrote = tls.write_all(first).and_then(|()| tls.flush());
    (tls, wrote)
}

#[test]
fn hostile_peers_on_the_enrollment_port() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    assert!(certs(&["issuer", "--dir", &pki.dir.to_string_lossy()])
        .status
        .success());
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], EDGE_EXTRA);
    let mut edge = setup.start(dir.path());
    edge.wait_for_log("enrollment served", Duration::from_secs(10));
    let enroll_alpn = underpass_proto::enroll::ALPN;
    let tunnel_alpn = underpass_transport::tcp::ALPN;

    // Offering the tunnel's ALPN too gets the tunnel's config (its certificate alone, no CA
    // after it, so this client cannot find its pin; with one, the edge would demand a client
    // certificate): no enrollment there.
    let (mut both, _) = tls_session(
        setup.tunnel_port,
        raw_enroll_client(&pki, &[enroll_alpn, tunnel_alpn]),
        b"x",
    );
    let mut buf = [0u8; 64];
    assert!(
        both.read(&mut buf).is_err(),
        "a tunnel without a certificate"
    );
    edge.wait_for_log(
        "tunnel refused: TLS handshake failed",
        Duration::from_secs(10),
    );
    assert!(!edge.log_text().contains("enrollment refused"));

    // A slow client (two bytes of a length prefix, then silence) holds no one up: an
    // enrollment meanwhile succeeds, and the slow one is answered and cut at the deadline.
    let started = Instant::now();
    let (mut slow, wrote) = tls_session(
        setup.tunnel_port,
        raw_enroll_client(&pki, &[enroll_alpn]),
        &[0, 0],
    );
    wrote.unwrap();
    let t = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let out = enroll(&t, &dir.path().join("dc1-home"));
    assert!(out.status.success(), "{}", show(&out));
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    println!("the slow client was answered after {:?}", started.elapsed());
    let (refused, _) =
        underpass_proto::frame::decode::<underpass_proto::enroll::EnrollAnswer>(&answer)
            .unwrap()
            .expect("an answer frame");
    match refused {
        underpass_proto::enroll::EnrollAnswer::Refused { reason, .. } => {
            assert!(reason.contains("did not arrive"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A length prefix far past the cap: refused without the body being read.
    let (mut huge, _) = tls_session(
        setup.tunnel_port,
        raw_enroll_client(&pki, &[enroll_alpn]),
        &u32::MAX.to_be_bytes(),
    );
    let mut answer = Vec::new();
    let _ = huge.read_to_end(&mut answer);
    match underpass_proto::frame::decode::<underpass_proto::enroll::EnrollAnswer>(&answer)
        .unwrap()
        .expect("an answer frame")
        .0
    {
        underpass_proto::enroll::EnrollAnswer::Refused { code, .. } => {
            assert_eq!(code, underpass_proto::enroll::EnrollCode::TooLarge)
        }
        other => panic!("{other:?}"),
    }
    // And the port still serves tunnels.
    let backend = FaultBackend::start(dir.path());
    let home = dir.path().join("dc1-home");
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
    let _connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));
}

/// A connector enrolled with 60-second certificates renews them over its tunnel (at two thirds
/// of their life) again and again under steady calls: no call fails, no tunnel closes, the
/// files hold a new key and certificate each time, and each renewal is on the audit log.
#[test]
fn a_short_lived_certificate_renews_under_traffic() {
    let mut rng = Rng::from_env("a_short_lived_certificate_renews");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    assert!(certs(&["issuer", "--dir", &pki.dir.to_string_lossy()])
        .status
        .success());
    let extra = EDGE_EXTRA.replace("cert_ttl = \"1h\"", "cert_ttl = \"60s\"");
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], &extra);
    let mut edge = setup.start(dir.path());
    let t = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let home = dir.path().join("dc1-home");
    let out = enroll(&t, &home);
    assert!(out.status.success(), "{}", show(&out));
    let serial = |path: &std::path::Path| {
        underpass_pki::revocation::certificate_serial(
            &underpass_pki::inspect::read_certificate(path).unwrap(),
        )
        .unwrap()
    };
    let first = serial(&home.join("dc1.crt"));
    let first_key = std::fs::read(home.join("dc1.key")).unwrap();

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
    let mut plan = Plan::new(&setup.url("ok"));
    plan.workers = 2;
    let load = Load::start(&plan, &mut rng);
    // Renewals at about 40 s and 80 s after issuance; the first certificate ends at 60 s.
    connector.wait_for_log_count("certificate renewed", 2, Duration::from_secs(150));
    std::thread::sleep(Duration::from_secs(3));
    let calls = load.finish();
    println!("calls across two renewals: {}", summarize(&calls));
    let failed: Vec<_> = calls.iter().filter(|c| c.outcome != Outcome::Ok).collect();
    assert!(failed.is_empty(), "calls failed: {failed:#?}");
    let log = connector.log_text();
    assert!(!log.contains("tunnel closed"), "a tunnel closed:\n{log}");
    assert!(
        !edge.log_text().contains("certificate expired"),
        "{}",
        edge.log_text()
    );
    assert_ne!(
        serial(&home.join("dc1.crt")),
        first,
        "the certificate file was not replaced"
    );
    assert_ne!(
        std::fs::read(home.join("dc1.key")).unwrap(),
        first_key,
        "no new key"
    );
    let mode = std::fs::metadata(home.join("dc1.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    edge.stop();
    let renewals: Vec<_> = read_jsonl(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|l| l["mcp_method"] == "underpass/renew" && l["issued"].is_string())
        .collect();
    assert!(renewals.len() >= 2, "{renewals:#?}");
    assert!(renewals.iter().all(|l| l["principal"] == "connector:dc1"));
}
