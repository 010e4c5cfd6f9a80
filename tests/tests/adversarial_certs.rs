//! Attacks with certificates, each with its documented answer (README, "Attacks and answers"):
//! client certificates of a foreign CA, of the wrong role, revoked, expired or not yet valid,
//! presented to the HTTPS client listener hundreds of times (`ATTEMPTS` handshakes each, with
//! the project's own TLS client, `underpass_tests::tls_client`, which sees the TLS alert); a
//! connector whose certificate expired; an edge whose certificate expired. After each: a
//! legitimate client (or connector) is served, and the edge's descriptors and memory are back
//! near their baseline (`underpass_tests::vitals`).
//!
//! Expired certificates come from `underpass_pki::issue::issue_with` (the command line has no
//! way to backdate one). The edges here log at the default level (`info`): what they say of a
//! refused certificate is what an operator sees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustls::AlertDescription;
use serde_json::{json, Value};
use time::OffsetDateTime;
use underpass_pki::issue::{issue_with, Validity};
use underpass_proto::identity::Role;
use underpass_tests::http;
use underpass_tests::recorder::Recorder;
use underpass_tests::tls_client::TlsClient;
use underpass_tests::vitals::{assert_survived, Vitals};
use underpass_tests::*;

/// Handshakes per attack.
const ATTEMPTS: usize = 200;

/// What the edge logs (at `info`) when it refuses a client certificate.
const CLIENT_REFUSED: &str = "client certificate refused";

const EDGE_EXTRA: &str = "revocation_list = \"pki/revoked.txt\"\n\
    [auth]\nclient_ca = \"pki/ca.crt\"\n[policy]\nallow_all = true\n";

/// Valid from two days ago until yesterday.
fn expired() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::days(2),
        not_after: now - time::Duration::days(1),
    }
}

/// Valid from tomorrow.
fn not_yet_valid() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now + time::Duration::days(1),
        not_after: now + time::Duration::days(2),
    }
}

/// Issues `name` for `role` in `pki` with this validity; returns its certificate and key.
fn issue_at(pki: &Pki, role: Role, name: &str, validity: Validity) -> (PathBuf, PathBuf) {
    let issued = issue_with(&pki.dir, role, name, &[], validity).unwrap();
    (issued.cert_path, issued.key_path)
}

/// The edge at the default log level.
fn start_edge(setup: &EdgeSetup, dir: &Path) -> Proc {
    let mut edge = Proc::spawn(
        "edge",
        dir,
        Command::new(bin("underpass-edge"))
            .arg("--config")
            .arg(&setup.config)
            .env("RUST_LOG", "info"),
    );
    edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
    edge
}

/// A connector `name` serving `rec` at the edge, with this certificate.
fn connector(
    dir: &Path,
    pki: &Pki,
    setup: &EdgeSetup,
    name: &str,
    cert: (&Path, &Path),
    backend: &str,
) -> Proc {
    let config = write_connector_config(
        dir,
        &format!("{name}.toml"),
        name,
        setup.tunnel_port,
        ConnectorPki {
            cert: cert.0,
            key: cert.1,
            ca: &pki.ca(),
        },
        &[("rec", backend)],
    );
    start_connector(dir, name, &config)
}

fn tool_call() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": {}}})
}

/// Lines of `log` containing every one of `needles` (colours taken out first); a needle
/// `a|b` is found if `a` or `b` is.
fn lines_with(log: &str, needles: &[&str]) -> usize {
    log.lines()
        .map(without_colours)
        .filter(|l| needles.iter().all(|n| n.split('|').any(|n| l.contains(n))))
        .count()
}

/// `line` without ANSI colour sequences (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits (at most 20 s) until `proc`'s log has `count` lines containing all of `needles`.
fn wait_for_lines(proc: &mut Proc, needles: &[&str], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines_with(&proc.log_text(), needles) < count {
        assert!(
            Instant::now() < deadline,
            "{} never logged {count} lines with {needles:?}; its log:\n{}",
            proc.name,
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An edge whose client listener takes client certificates of its CA (`client:<name>`, every
/// call allowed), a connector `dc1` serving `rec` from a recorder, and alice's valid
/// certificate. `dc2` is granted `rec` too, for a second connector.
struct Site {
    dir: tempfile::TempDir,
    pki: Pki,
    setup: EdgeSetup,
    edge: Proc,
    _dc1: Proc,
    rec: Recorder,
    alice: TlsClient,
}

fn site() -> Site {
    let rec = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(dir.path(), true, &[("rec", &["dc1", "dc2"])], EDGE_EXTRA);
    let edge = start_edge(&setup, dir.path());
    let dc1 = connector(dir.path(), &pki, &setup, "dc1", (&cert, &key), &rec.url);
    setup.wait_ready("rec", Duration::from_secs(30));
    let (cert, key) = pki.issue("client", "alice");
    let alice = TlsClient::new(&pki.ca(), Some((&cert, &key)));
    let s = Site {
        dir,
        pki,
        setup,
        edge,
        _dc1: dc1,
        rec,
        alice,
    };
    s.serves().unwrap();
    s
}

impl Site {
    fn vitals(&self) -> Vitals {
        Vitals::of(self.edge.pid())
    }

    /// Alice (a valid certificate) calls a tool: 200, and the backend saw the call.
    fn serves(&self) -> Result<(), String> {
        let before = self.rec.tool_calls("echo");
        let r = self
            .alice
            .mcp_post(self.setup.client_port, "/mcp/rec", &tool_call())
            .map_err(|r| format!("alice was refused: {r:?}"))?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        if self.rec.tool_calls("echo") != before + 1 {
            return Err("the call did not reach the backend".into());
        }
        Ok(())
    }

    fn survived(&self, before: &Vitals, attack: &str) {
        assert_survived(before, attack, || self.serves(), || self.edge.log_text());
    }

    /// `attempts` connections presenting `client`'s certificate, each sending a tool call:
    /// every one is refused with the TLS alert `alert` (never an HTTP answer), and nothing
    /// reaches the backend.
    fn refused(&self, what: &str, client: &TlsClient, attempts: usize, alert: AlertDescription) {
        let seen = self.rec.seen().len();
        for i in 0..attempts {
            match client.mcp_post(self.setup.client_port, "/mcp/rec", &tool_call()) {
                Ok(r) => panic!(
                    "{what}, attempt {i}: answered {} {}\nedge log:\n{}",
                    r.status,
                    r.text(),
                    self.edge.log_text()
                ),
                Err(refusal) => assert_eq!(
                    refusal.alert,
                    Some(alert),
                    "{what}, attempt {i}: {}",
                    refusal.error
                ),
            }
        }
        assert_eq!(self.rec.seen().len(), seen, "{what} reached the backend");
    }
}

#[test]
fn foreign_ca_and_wrong_role_client_certificates_are_refused_at_the_handshake() {
    let mut s = site();
    let before = s.vitals();
    // Another CA's "alice", same trust domain and name, even the same CA name: only the
    // signature tells them apart.
    let rogue = Pki::init(&s.dir.path().join("rogue"));
    let (cert, key) = rogue.issue("client", "alice");
    let mallory = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "a foreign CA's client certificate",
        &mallory,
        ATTEMPTS,
        AlertDescription::DecryptError,
    );
    wait_for_lines(
        &mut s.edge,
        &[CLIENT_REFUSED, "BadSignature|signature"],
        ATTEMPTS,
    );
    // A CA of another trust domain: an issuer the edge does not know.
    let other = s.dir.path().join("other");
    run_ok(
        Command::new(bin("underpass-certs"))
            .args(["init", "--trust-domain", "evil.example", "--dir"])
            .arg(&other),
    );
    let (cert, key) = Pki { dir: other }.issue("client", "alice");
    let mallory = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "a client certificate of another trust domain's CA",
        &mallory,
        20,
        AlertDescription::UnknownCA,
    );
    wait_for_lines(&mut s.edge, &[CLIENT_REFUSED, "UnknownIssuer"], 20);

    // The deployment's own CA, but not a client certificate: a connector's (clientAuth, but
    // the identity's role is wrong) and an edge's (serverAuth only).
    let (cert, key) = s.pki.issue("connector", "dc9");
    let connector = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "a connector certificate as a client certificate",
        &connector,
        20,
        AlertDescription::CertificateUnknown,
    );
    wait_for_lines(
        &mut s.edge,
        &[CLIENT_REFUSED, "WrongRole|is a connector"],
        20,
    );
    // An operator's certificate (clientAuth too) is for the admin API, never for clients.
    let (cert, key) = s.pki.issue("operator", "ops9");
    let operator = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "an operator certificate as a client certificate",
        &operator,
        20,
        AlertDescription::CertificateUnknown,
    );
    wait_for_lines(&mut s.edge, &[CLIENT_REFUSED, "found_role: Operator"], 20);
    let (cert, key) = s.pki.issue("edge", "edge9");
    let edge = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "an edge certificate as a client certificate",
        &edge,
        20,
        AlertDescription::UnsupportedCertificate,
    );
    wait_for_lines(
        &mut s.edge,
        &[CLIENT_REFUSED, "Purpose|extended key usage"],
        20,
    );
    s.survived(&before, "foreign-CA and wrong-role client certificates");
}

#[test]
fn revoked_client_certificates_are_refused_at_the_handshake() {
    let mut s = site();
    let (cert, key) = s.pki.issue("client", "bob");
    let bob = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    let before_revocation = s.rec.tool_calls("echo");
    let r = bob
        .mcp_post(s.setup.client_port, "/mcp/rec", &tool_call())
        .unwrap();
    assert_eq!(r.status, 200, "bob before revocation: {}", r.text());
    assert_eq!(s.rec.tool_calls("echo"), before_revocation + 1);
    run_ok(
        Command::new(bin("underpass-certs"))
            .args(["revoke", "--dir"])
            .arg(&s.pki.dir)
            .args(["--name", "bob"]),
    );
    s.edge
        .wait_for_log("revocation list reloaded", Duration::from_secs(10));
    let before = s.vitals();
    s.refused(
        "a revoked client certificate",
        &bob,
        ATTEMPTS,
        AlertDescription::CertificateRevoked,
    );
    wait_for_lines(&mut s.edge, &[CLIENT_REFUSED, "Revoked"], ATTEMPTS);
    s.survived(&before, "revoked client certificates");
}

/// Incident response on a connection already open: a bulk rule ("everything of dora issued
/// before now", written by hand: the CLI writes connector rules) refuses the next request of
/// a kept-alive connection whose handshake passed before it, not only new handshakes.
#[test]
fn a_bulk_rule_bites_on_a_connection_already_open() {
    let mut s = site();
    let (cert, key) = s.pki.issue("client", "dora");
    let dora = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    let mut open = dora.connect(s.setup.client_port).unwrap();
    let r = open.mcp_post("/mcp/rec", &tool_call()).unwrap();
    assert_eq!(r.status, 200, "dora before the rule: {}", r.text());
    let calls = s.rec.tool_calls("echo");

    // One second ahead: "before now" must also catch a certificate issued this second.
    let when = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let rule = format!(
        "before {} spiffe://underpass.local/client/dora\n",
        underpass_pki::rfc3339(when)
    );
    std::fs::write(s.pki.dir.join("revoked.txt"), rule).unwrap();
    s.edge
        .wait_for_log("revocation list reloaded", Duration::from_secs(10));
    let r = open.mcp_post("/mcp/rec", &tool_call()).unwrap();
    assert_eq!(r.status, 401, "the open connection: {}", r.text());
    assert!(
        r.text().contains("client certificate revoked"),
        "{}",
        r.text()
    );
    assert_eq!(
        s.rec.tool_calls("echo"),
        calls,
        "the call reached the backend"
    );
    s.refused(
        "a client certificate revoked by a rule",
        &dora,
        1,
        AlertDescription::CertificateRevoked,
    );
}

#[test]
fn expired_and_not_yet_valid_client_certificates_are_refused_at_the_handshake() {
    let mut s = site();
    let before = s.vitals();
    let (cert, key) = issue_at(&s.pki, Role::Client, "carol", expired());
    let carol = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "an expired client certificate",
        &carol,
        ATTEMPTS,
        AlertDescription::CertificateExpired,
    );
    wait_for_lines(
        &mut s.edge,
        &[CLIENT_REFUSED, "certificate expired"],
        ATTEMPTS,
    );

    let (cert, key) = issue_at(&s.pki, Role::Client, "dave", not_yet_valid());
    let dave = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    s.refused(
        "a client certificate not yet valid",
        &dave,
        20,
        AlertDescription::CertificateExpired,
    );
    wait_for_lines(&mut s.edge, &[CLIENT_REFUSED, "not valid"], 20);
    s.survived(&before, "expired and not-yet-valid client certificates");
}

/// The handshake checks a certificate once; a connection can outlive it. The edge checks the
/// client certificate's end on every request, as it checks revocation.
#[test]
fn a_client_certificate_expiring_on_an_open_connection_stops_working() {
    let s = site();
    let before = s.vitals();
    let now = OffsetDateTime::now_utc();
    let window = Validity {
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::seconds(5),
    };
    let (cert, key) = issue_at(&s.pki, Role::Client, "erin", window);
    let erin = TlsClient::new(&s.pki.ca(), Some((&cert, &key)));
    let mut conn = erin.connect(s.setup.client_port).unwrap();
    let calls = s.rec.tool_calls("echo");
    let r = conn.mcp_post("/mcp/rec", &tool_call()).unwrap();
    assert_eq!(r.status, 200, "erin while valid: {}", r.text());
    assert!(
        OffsetDateTime::now_utc() < window.not_after,
        "too slow: the first call ended after the certificate expired"
    );
    // Certificates hold whole seconds, and expired means past `not_after`.
    let wait = window.not_after + time::Duration::seconds(1) - OffsetDateTime::now_utc();
    std::thread::sleep(Duration::try_from(wait).unwrap_or_default());

    let r = conn.mcp_post("/mcp/rec", &tool_call()).unwrap();
    assert_eq!(r.status, 401, "erin's expired certificate: {}", r.text());
    assert_eq!(r.json()["error"]["code"], -31401, "{}", r.text());
    assert!(r.text().contains("expired"), "{}", r.text());
    assert_eq!(
        s.rec.tool_calls("echo"),
        calls + 1,
        "the late call was forwarded"
    );
    s.refused(
        "the expired certificate on a new connection",
        &erin,
        5,
        AlertDescription::CertificateExpired,
    );
    s.survived(
        &before,
        "a client certificate expiring on an open connection",
    );
}

#[test]
fn a_connector_with_an_expired_certificate_gets_no_tunnel() {
    let mut s = site();
    let before = s.vitals();
    let (cert, key) = issue_at(&s.pki, Role::Connector, "dc2", expired());
    let mut dc2 = connector(
        s.dir.path(),
        &s.pki,
        &s.setup,
        "dc2",
        (&cert, &key),
        &s.rec.url,
    );
    // It dials again and again (backoff); each time the edge refuses the handshake and says
    // why, and so does the connector.
    wait_for_lines(&mut s.edge, &["tunnel refused", "certificate expired"], 3);
    wait_for_lines(&mut dc2, &["certificate expired"], 3);
    assert_eq!(
        lines_with(&s.edge.log_text(), &["connector=dc2"]),
        0,
        "an expired connector got as far as the control protocol:\n{}",
        s.edge.log_text()
    );
    dc2.kill();
    let ready = http::get(&s.setup.admin("/readyz")).unwrap().json();
    assert_eq!(tunnel_owners(&ready), ["dc1"], "{ready}");

    // The same connector with a renewed certificate is served.
    std::fs::remove_file(&cert).unwrap();
    std::fs::remove_file(&key).unwrap();
    let (cert, key) = s.pki.issue("connector", "dc2");
    let _dc2 = connector(
        s.dir.path(),
        &s.pki,
        &s.setup,
        "dc2",
        (&cert, &key),
        &s.rec.url,
    );
    wait_for_lines(&mut s.edge, &["tunnel up", "connector=dc2"], 1);
    s.survived(&before, "a connector with an expired certificate");
}

/// The connectors that have a live tunnel, as `/readyz` lists them (each once).
fn tunnel_owners(ready: &Value) -> Vec<String> {
    let mut names: Vec<String> = ready["connectors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

/// A tunnel is authenticated once, at its handshake; it can outlive the certificate. The
/// edge closes it when the certificate expires, as it does when one is revoked.
#[test]
fn a_tunnel_is_closed_when_its_connector_certificate_expires() {
    let mut s = site();
    let before = s.vitals();
    let now = OffsetDateTime::now_utc();
    let window = Validity {
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::seconds(6),
    };
    let (cert, key) = issue_at(&s.pki, Role::Connector, "dc2", window);
    let mut dc2 = connector(
        s.dir.path(),
        &s.pki,
        &s.setup,
        "dc2",
        (&cert, &key),
        &s.rec.url,
    );
    wait_for_lines(&mut s.edge, &["tunnel up", "connector=dc2"], 1);
    assert!(
        OffsetDateTime::now_utc() < window.not_after,
        "too slow: the tunnel came up after the certificate expired"
    );
    wait_for_lines(
        &mut s.edge,
        &["closing tunnel: certificate expired", "connector=dc2"],
        1,
    );
    // Both of its tunnels (`tunnels_per_edge` = 2 by default).
    wait_for_lines(&mut s.edge, &["tunnel down", "connector=dc2"], 2);
    // It dials again, and is refused: its certificate expired.
    wait_for_lines(&mut dc2, &["certificate expired"], 1);
    let ready = http::get(&s.setup.admin("/readyz")).unwrap().json();
    assert_eq!(tunnel_owners(&ready), ["dc1"], "{ready}");
    dc2.kill();
    s.survived(&before, "a connector certificate expiring on a live tunnel");
}

#[test]
fn a_connector_refuses_an_edge_whose_certificate_expired() {
    let rec = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    issue_at(&pki, Role::Edge, "edge", expired());
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(dir.path(), true, &[("rec", &["dc1"])], EDGE_EXTRA);
    let mut edge = start_edge(&setup, dir.path());
    let mut dc1 = connector(dir.path(), &pki, &setup, "dc1", (&cert, &key), &rec.url);
    // The connector refuses the edge, says why, and keeps trying.
    wait_for_lines(&mut dc1, &["cannot reach edge", "certificate expired"], 3);
    // The edge hears of it too.
    wait_for_lines(&mut edge, &["tunnel refused", "certificate expired"], 1);
    assert!(!dc1.log_text().contains("tunnel up"), "{}", dc1.log_text());
    assert_eq!(rec.seen().len(), 0);

    // A renewed edge certificate (and an edge restart): the same connector, still running,
    // gets its tunnel.
    edge.stop();
    for file in ["edge.crt", "edge.key"] {
        std::fs::remove_file(pki.dir.join(file)).unwrap();
    }
    pki.issue("edge", "edge");
    let _edge = start_edge(&setup, dir.path());
    setup.wait_ready("rec", Duration::from_secs(30));
    assert!(dc1.alive(), "{}", dc1.log_text());
}
