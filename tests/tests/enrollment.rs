//! One-time enrollment with the real binaries: `underpass-certs issuer` and `token create`,
//! `underpass-connector enroll` against an edge with `[enrollment]`, then the connector running
//! on the files it wrote and carrying calls. Refused: the token used again, an expired token, a
//! token of another deployment (the connector refuses the edge: it does not present the pinned
//! CA). Every attempt the edge saw is on its audit log, which verifies. Also: renewal under
//! traffic, a connector offline past its certificate's end enrolling again, and the issuer
//! rotated under a running edge.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use underpass_pki::time::OffsetDateTime;
use underpass_tests::faults::{audit_verify, read_jsonl, FaultBackend, Rng};
use underpass_tests::identity::*;
use underpass_tests::load::{summarize, Load, Outcome, Plan};
use underpass_tests::*;

const EDGE_EXTRA: &str = ENROLLING_EDGE;

#[test]
fn token_enroll_tunnel_traffic_and_every_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issuer(false);
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
    let config = enrolled_config(
        dir.path(),
        "connector.toml",
        &home,
        "dc1",
        setup.tunnel_port,
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
    other.issuer(false);
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
    pki.issuer(false);
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
    let config = enrolled_config(
        dir.path(),
        "connector.toml",
        &home,
        "dc1",
        setup.tunnel_port,
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
    pki.issuer(false);
    let extra = EDGE_EXTRA.replace("cert_ttl = \"1h\"", "cert_ttl = \"60s\"");
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], &extra);
    let mut edge = setup.start(dir.path());
    let t = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let home = dir.path().join("dc1-home");
    let out = enroll(&t, &home);
    assert!(out.status.success(), "{}", show(&out));
    let first = serial(&home.join("dc1.crt"));
    let first_key = std::fs::read(home.join("dc1.key")).unwrap();

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

/// One `tools/call` of the fault backend's echo through `service`; the answer's text.
fn echo(setup: &EdgeSetup, service: &str, message: &str) -> String {
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"echo","arguments":{"message":message}}});
    let r = http::mcp_post(
        &setup.url(service),
        &[("MCP-Protocol-Version", "2025-11-25")],
        &call,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// Tunnels `/readyz` counts for `service` now.
fn served(setup: &EdgeSetup, service: &str) -> u64 {
    let r = http::get(&setup.admin("/readyz")).unwrap();
    r.json()["services"][service].as_u64().unwrap_or(0)
}

/// A connector that stays offline past its certificate's end (60-second certificates) gets no
/// tunnel when it comes back: the edge refuses the handshake as expired, the service stays not
/// ready, and the connector says to enroll again. A new token enrolls it again into the same
/// folder (the ended files set aside), and it carries calls; the first token stays spent.
#[test]
fn a_connector_offline_past_its_end_must_enroll_again() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issuer(false);
    let extra = EDGE_EXTRA.replace("cert_ttl = \"1h\"", "cert_ttl = \"60s\"");
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], &extra);
    let mut edge = setup.start(dir.path());
    edge.wait_for_log("enrollment served", Duration::from_secs(10));
    let first = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let home = dir.path().join("dc1-home");
    let out = enroll(&first, &home);
    assert!(out.status.success(), "{}", show(&out));
    // Enrolling again over a valid certificate is refused before the token is sent (so it
    // is not spent: it serves below).
    let second = token(&pki.dir, "dc1", setup.tunnel_port, "15m");
    let out = enroll(&second, &home);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already enrolled here") && err.contains("is valid until"),
        "{err}"
    );

    let backend = FaultBackend::start(dir.path());
    let services = [("ok", backend.url("ok"))];
    let services: Vec<(&str, &str)> = services.iter().map(|(s, u)| (*s, u.as_str())).collect();
    let config = enrolled_config(
        dir.path(),
        "connector.toml",
        &home,
        "dc1",
        setup.tunnel_port,
        &services,
    );
    let mut connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));
    assert!(echo(&setup, "ok", "before").contains("echo: before"));
    connector.stop();

    // Offline until the certificate in force (the enrolled one, or a renewal of it) has ended.
    let cert = home.join("dc1.crt");
    let end = not_after(&cert);
    let left = end - OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let left = Duration::try_from(left).unwrap_or_default();
    assert!(
        left <= Duration::from_secs(65),
        "a 60 s certificate ends at {end}"
    );
    std::thread::sleep(left);
    assert!(OffsetDateTime::now_utc() > end);

    // Back online with the ended certificate: refused at every handshake, as expired.
    let mut late = start_connector(dir.path(), "connector-late", &config);
    late.wait_for_log("enroll again with a new token", Duration::from_secs(10));
    edge.wait_for_log_count("certificate expired", 2, Duration::from_secs(30));
    assert_eq!(
        served(&setup, "ok"),
        0,
        "no tunnel for an ended certificate"
    );
    let r = http::get(&setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let said = late.log_text();
    assert!(
        said.contains(&format!(
            "the certificate ended at {}",
            underpass_pki::rfc3339(end)
        )),
        "{said}"
    );
    late.stop();

    // The spent token stays spent; the unspent one enrolls into the same folder.
    let out = enroll(&first, &home);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token already used"),
        "{}",
        show(&out)
    );
    let out = enroll(&second, &home);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replaced the certificate that ended"),
        "{}",
        show(&out)
    );
    assert!(home.join("dc1.crt.ended").exists() && home.join("dc1.key.ended").exists());
    assert!(not_after(&cert) > OffsetDateTime::now_utc());
    let _again = start_connector(dir.path(), "connector-again", &config);
    setup.wait_ready("ok", Duration::from_secs(30));
    assert!(echo(&setup, "ok", "after").contains("echo: after"));
}

/// `underpass-certs issuer --rotate` while the edge runs: the edge picks up the new issuer
/// without a restart; the next enrollment's chain carries it, a token of the old issuer is
/// refused, and a connector enrolled under the old issuer keeps working, also through a new
/// handshake. An issuer file that does not load leaves the last good one in force and shows in
/// `/readyz` `problems` until it is good again.
#[test]
fn a_rotated_issuer_enrolls_the_next_connector_and_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issuer(false);
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"]), ("two", &["dc2"])],
        EDGE_EXTRA,
    );
    let mut edge = setup.start(dir.path());
    edge.wait_for_log("enrollment served", Duration::from_secs(10));
    let backend = FaultBackend::start(dir.path());
    let (ok_url, two_url) = (backend.url("ok"), backend.url("ok"));

    let home1 = dir.path().join("dc1-home");
    let out = enroll(&token(&pki.dir, "dc1", setup.tunnel_port, "15m"), &home1);
    assert!(out.status.success(), "{}", show(&out));
    let old_issuer = serial(&pki.dir.join("issuer.crt"));
    assert_eq!(chain_serials(&home1.join("dc1.crt"))[1], old_issuer);
    let config1 = enrolled_config(
        dir.path(),
        "dc1.toml",
        &home1,
        "dc1",
        setup.tunnel_port,
        &[("ok", &ok_url)],
    );
    let mut dc1 = start_connector(dir.path(), "dc1", &config1);
    setup.wait_ready("ok", Duration::from_secs(30));
    let outstanding = token(&pki.dir, "dc3", setup.tunnel_port, "15m");

    pki.issuer(true);
    let new_issuer = serial(&pki.dir.join("issuer.crt"));
    assert_ne!(new_issuer, old_issuer);
    edge.wait_for_log(&format!("serial={new_issuer}"), Duration::from_secs(10));

    let home2 = dir.path().join("dc2-home");
    let out = enroll(&token(&pki.dir, "dc2", setup.tunnel_port, "15m"), &home2);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        chain_serials(&home2.join("dc2.crt"))[1],
        new_issuer,
        "issued by the new issuer"
    );
    let config2 = enrolled_config(
        dir.path(),
        "dc2.toml",
        &home2,
        "dc2",
        setup.tunnel_port,
        &[("two", &two_url)],
    );
    let _dc2 = start_connector(dir.path(), "dc2", &config2);
    setup.wait_ready("two", Duration::from_secs(30));
    assert!(echo(&setup, "two", "new").contains("echo: new"));

    // A token signed by the rotated-out issuer no longer enrolls.
    let out = enroll(&outstanding, &dir.path().join("dc3-home"));
    assert!(!out.status.success(), "{}", show(&out));

    // The connector of the old issuer: its live tunnel, then a new handshake.
    assert!(echo(&setup, "ok", "live").contains("echo: live"));
    dc1.stop();
    let _dc1 = start_connector(dir.path(), "dc1-again", &config1);
    setup.wait_ready("ok", Duration::from_secs(30));
    assert!(echo(&setup, "ok", "again").contains("echo: again"));
    let r = http::get(&setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["problems"], json!([]), "{}", r.text());

    // An issuer file that does not load: the last good issuer stays in force, loudly, until
    // the file is good again.
    let pending = token(&pki.dir, "dc4", setup.tunnel_port, "15m");
    let issuer_crt = pki.dir.join("issuer.crt");
    let good = std::fs::read(&issuer_crt).unwrap();
    let reloads = edge
        .log_text()
        .matches("enrollment issuer and CA bundle reloaded")
        .count();
    std::fs::write(&issuer_crt, "not a certificate").unwrap();
    edge.wait_for_log("enrollment issuer not reloaded", Duration::from_secs(10));
    let problems = http::get(&setup.admin("/readyz")).unwrap().json()["problems"].clone();
    assert_eq!(problems[0]["component"], "enrollment_issuer", "{problems}");
    assert!(
        problems[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("issuer.crt") && d.contains("last good issuer")),
        "{problems}"
    );
    let home4 = dir.path().join("dc4-home");
    let out = enroll(&pending, &home4);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(chain_serials(&home4.join("dc4.crt"))[1], new_issuer);
    std::fs::write(&issuer_crt, good).unwrap();
    edge.wait_for_log_count(
        "enrollment issuer and CA bundle reloaded",
        reloads + 1,
        Duration::from_secs(10),
    );
    let r = http::get(&setup.admin("/readyz")).unwrap();
    assert_eq!(r.json()["problems"], json!([]), "{}", r.text());

    // The audit log: every enrollment, each with its serial.
    edge.stop();
    let issued: Vec<_> = read_jsonl(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|l| l["mcp_method"] == "underpass/enroll" && l["outcome"] == "ok")
        .collect();
    assert_eq!(issued.len(), 3, "{issued:#?}");
    assert_eq!(issued[1]["principal"], "connector:dc2");
    assert_eq!(
        issued[1]["issued"],
        chain_serials(&home2.join("dc2.crt"))[0].as_str()
    );
}
