use super::*;
use underpass_pki::token::{NewToken, DEFAULT_TOKEN_TTL};

const TD: &str = "underpass.local";

/// A CA and an issuer in a temporary folder, and the edge's enrollment over them.
struct Fixture {
    dir: tempfile::TempDir,
    enrollment: Enrollment,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    underpass_pki::ca::init(dir.path(), TD).unwrap();
    issuer::create(dir.path(), Duration::from_secs(86_400 * 30), false).unwrap();
    let config = EnrollmentConfig {
        issuer_cert: dir.path().join("issuer.crt"),
        issuer_key: dir.path().join("issuer.key"),
        cert_ttl: Duration::from_secs(3600),
        used_tokens: None,
    };
    let revocations = Revocations::load(Some(dir.path().join("revoked.txt"))).unwrap();
    let enrollment =
        Enrollment::open(&config, &dir.path().join("ca.crt"), TD, None, revocations).unwrap();
    Fixture { dir, enrollment }
}

impl Fixture {
    fn token(&self, connector: &str, ttl: Duration) -> String {
        let edges = vec!["127.0.0.1:7443".to_owned()];
        token::create(
            self.dir.path(),
            &NewToken {
                connector,
                edges: &edges,
                server_name: None,
                ttl,
                services: &[],
            },
        )
        .unwrap()
        .token
    }
}

fn request(token: &str, name: &str) -> EnrollRequest {
    let (_key, csr_pem) = underpass_pki::csr::new(name, TD).unwrap();
    EnrollRequest {
        token: token.to_owned(),
        csr_pem,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn a_token_enrolls_its_connector_once() {
    let f = fixture();
    let t = f.token("dc1", DEFAULT_TOKEN_TTL);
    let enrolled = f.enrollment.decide(&request(&t, "dc1"), now()).unwrap();
    assert_eq!(enrolled.claims.connector, "dc1");
    assert_eq!(
        enrolled.leaf.identity.to_string(),
        "spiffe://underpass.local/connector/dc1"
    );
    assert!(enrolled.leaf.not_after <= now() + Duration::from_secs(3601));
    // The same token again: refused, also with a fresh key.
    let again = f.enrollment.decide(&request(&t, "dc1"), now()).unwrap_err();
    assert_eq!(again.code, EnrollCode::TokenUsed, "{again:?}");
}

#[test]
fn refusals_name_what_is_wrong() {
    let f = fixture();
    // Expired.
    let t = f.token("dc1", Duration::from_secs(1));
    let r = f
        .enrollment
        .decide(&request(&t, "dc1"), now() + Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(r.code, EnrollCode::TokenExpired, "{r:?}");
    // A request for another name than the token's: refused, and the token is not burnt.
    let t = f.token("dc1", DEFAULT_TOKEN_TTL);
    let r = f.enrollment.decide(&request(&t, "dc2"), now()).unwrap_err();
    assert_eq!(r.code, EnrollCode::OtherIdentity, "{r:?}");
    assert!(
        r.reason.contains("dc2") && r.reason.contains("dc1"),
        "{r:?}"
    );
    f.enrollment.decide(&request(&t, "dc1"), now()).unwrap();
    // Garbage for a request, and a token altered by one character.
    let t = f.token("dc3", DEFAULT_TOKEN_TTL);
    let r = f
        .enrollment
        .decide(
            &EnrollRequest {
                token: t.clone(),
                csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n".into(),
            },
            now(),
        )
        .unwrap_err();
    assert_eq!(r.code, EnrollCode::BadCsr, "{r:?}");
    let mut forged = t.into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let r = f
        .enrollment
        .decide(&request(&forged, "dc3"), now())
        .unwrap_err();
    assert!(
        matches!(r.code, EnrollCode::TokenInvalid | EnrollCode::Malformed),
        "{r:?}"
    );
}

#[test]
fn a_token_of_another_pki_is_refused() {
    let ours = fixture();
    let theirs = fixture();
    let t = theirs.token("dc1", DEFAULT_TOKEN_TTL);
    let r = ours
        .enrollment
        .decide(&request(&t, "dc1"), now())
        .unwrap_err();
    assert_eq!(r.code, EnrollCode::TokenInvalid, "{r:?}");
}

/// Runs `serve` against `client_bytes` and returns what the edge answered.
async fn exchange(f: &Fixture, client_bytes: Vec<u8>, remote: SocketAddr) -> EnrollAnswer {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let serve = f.enrollment.serve(server, remote);
    let talk = async {
        client.write_all(&client_bytes).await.unwrap();
        frame::read_frame::<EnrollAnswer, _>(&mut client)
            .await
            .unwrap()
            .unwrap()
    };
    let ((), answer) = tokio::join!(serve, talk);
    answer
}

fn remote(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 40000))
}

#[tokio::test]
async fn the_wire_protocol_issues_and_refuses() {
    let f = fixture();
    let t = f.token("dc1", DEFAULT_TOKEN_TTL);
    let bytes = frame::encode(&request(&t, "dc1")).unwrap();
    match exchange(&f, bytes, remote(1)).await {
        EnrollAnswer::Issued {
            chain_pem,
            ca_pem,
            connector,
            ..
        } => {
            assert_eq!(connector, "dc1");
            assert_eq!(chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
            assert!(ca_pem.contains("BEGIN CERTIFICATE"));
        }
        other => panic!("{other:?}"),
    }
    // A length prefix past the cap is refused without reading (or waiting for) the body.
    let huge = (16 * 1024 * 1024u32).to_be_bytes().to_vec();
    match exchange(&f, huge, remote(2)).await {
        EnrollAnswer::Refused { code, .. } => assert_eq!(code, EnrollCode::TooLarge),
        other => panic!("{other:?}"),
    }
    // Bytes that are no request.
    let mut junk = 12u32.to_be_bytes().to_vec();
    junk.extend_from_slice(b"hello world!");
    match exchange(&f, junk, remote(3)).await {
        EnrollAnswer::Refused { code, .. } => assert_eq!(code, EnrollCode::Malformed),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_is_cut_at_the_deadline() {
    let f = fixture();
    let (mut client, server) = tokio::io::duplex(1024);
    // Two bytes of the length prefix, then nothing.
    client.write_all(&[0, 0]).await.unwrap();
    let serve = f.enrollment.serve(server, remote(4));
    let answer = async {
        frame::read_frame::<EnrollAnswer, _>(&mut client)
            .await
            .unwrap()
            .unwrap()
    };
    let ((), answer) = tokio::join!(serve, answer);
    match answer {
        EnrollAnswer::Refused { code, reason } => {
            assert_eq!(code, EnrollCode::Malformed);
            assert!(reason.contains("did not arrive"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn attempts_per_address_are_capped() {
    let f = fixture();
    let t0 = Instant::now();
    let ip = remote(9).ip();
    for _ in 0..PER_IP_PER_MINUTE {
        assert!(!f.enrollment.over_rate(ip, t0));
    }
    assert!(f.enrollment.over_rate(ip, t0));
    // Another address is not affected; the window passes.
    assert!(!f.enrollment.over_rate(remote(10).ip(), t0));
    assert!(!f.enrollment.over_rate(ip, t0 + Duration::from_secs(61)));
}

#[test]
fn a_rotated_issuer_is_picked_up_and_a_bad_one_keeps_the_last_good() {
    let f = fixture();
    let before = f.token("dc1", DEFAULT_TOKEN_TTL);
    let old_serial = f.enrollment.authority.current().issuer.serial.clone();

    let rotated = issuer::create(f.dir.path(), Duration::from_secs(86_400 * 30), true).unwrap();
    f.enrollment.reload_authority().unwrap();
    let new_issuer = f.enrollment.authority.current();
    assert_eq!(new_issuer.issuer.serial, rotated.serial);
    assert_ne!(new_issuer.issuer.serial, old_serial);
    // A token of the new issuer enrolls, and the chain names the new issuer.
    let after = f.token("dc2", DEFAULT_TOKEN_TTL);
    let enrolled = f.enrollment.decide(&request(&after, "dc2"), now()).unwrap();
    assert!(
        enrolled
            .leaf
            .chain_pem
            .ends_with(&new_issuer.issuer.cert_pem),
        "the chain carries the new issuer"
    );
    // A token of the rotated-out issuer no longer verifies.
    let r = f
        .enrollment
        .decide(&request(&before, "dc1"), now())
        .unwrap_err();
    assert_eq!(r.code, EnrollCode::TokenInvalid, "{r:?}");

    // Garbage for the issuer: refused, the last good issuer stays in force.
    let pending = f.token("dc3", DEFAULT_TOKEN_TTL);
    std::fs::write(f.dir.path().join("issuer.crt"), "not a certificate").unwrap();
    assert!(f.enrollment.reload_authority().is_err());
    // A CA bundle that does not hold the issuer's root: refused, naming why.
    std::fs::write(f.dir.path().join("issuer.crt"), &new_issuer.issuer.cert_pem).unwrap();
    let other = tempfile::tempdir().unwrap();
    underpass_pki::ca::init(other.path(), TD).unwrap();
    std::fs::copy(other.path().join("ca.crt"), f.dir.path().join("ca.crt")).unwrap();
    let e = f.enrollment.reload_authority().unwrap_err();
    assert!(format!("{e:#}").contains("not signed by a CA"), "{e:#}");
    assert_eq!(
        f.enrollment.authority.current().issuer.serial,
        rotated.serial
    );
    f.enrollment
        .decide(&request(&pending, "dc3"), now())
        .unwrap();
}
