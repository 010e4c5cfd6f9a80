use super::*;
use crate::issuer::{create as create_issuer, ISSUER_VALIDITY};

const TD: &str = "underpass.local";

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new(td: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        ca::init(dir.path(), td).expect("init");
        create_issuer(dir.path(), ISSUER_VALIDITY, false).expect("issuer");
        Pki { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn issuer(&self) -> LoadedIssuer {
        issuer::load_dir(self.path()).expect("issuer")
    }
    fn ca_sha256(&self) -> [u8; 32] {
        fingerprint(&inspect::read_certificate(&self.path().join(CA_CERT_FILE)).expect("ca"))
    }
}

fn edges() -> Vec<String> {
    vec!["127.0.0.1:7443".into()]
}

fn req(edges: &[String]) -> NewToken<'_> {
    NewToken {
        connector: "dc1",
        edges,
        server_name: Some("localhost"),
        ttl: DEFAULT_TOKEN_TTL,
        services: &[],
    }
}

#[test]
fn create_then_verify() {
    let pki = Pki::new(TD);
    let e = edges();
    let services = vec!["billing".to_owned(), "crm".to_owned()];
    let created = create(
        pki.path(),
        &NewToken {
            services: &services,
            ..req(&e)
        },
    )
    .expect("create");
    assert!(created.token.starts_with("upt1."));
    assert!(created.token.len() < 600, "{}", created.token.len());
    let now = ca::now();
    let claims = verify(&created.token, &pki.issuer(), &pki.ca_sha256(), now).expect("verify");
    assert_eq!(claims, created.claims);
    assert_eq!(claims.connector, "dc1");
    assert_eq!(claims.trust_domain, TD);
    assert_eq!(claims.edges, e);
    assert_eq!(claims.server_name.as_deref(), Some("localhost"));
    assert_eq!(claims.services, services);
    assert_eq!(claims.ca_sha256, pki.ca_sha256());
    assert_eq!(claims.issuer_kid, pki.issuer().kid);
    let ttl = claims.not_after - now.unix_timestamp();
    assert!((899..=900).contains(&ttl), "{ttl}");
    // Ids are random.
    let again = create(pki.path(), &req(&e)).expect("again");
    assert_ne!(again.claims.id, created.claims.id);
}

#[test]
fn create_without_root_key() {
    let pki = Pki::new(TD);
    std::fs::remove_file(pki.path().join(crate::CA_KEY_FILE)).expect("rm ca.key");
    create(pki.path(), &req(&edges())).expect("the root key may stay offline");
}

#[test]
fn expired() {
    let pki = Pki::new(TD);
    let e = edges();
    let t = create(
        pki.path(),
        &NewToken {
            ttl: Duration::from_secs(1),
            ..req(&e)
        },
    )
    .expect("t");
    let later = ca::now() + time::Duration::seconds(2);
    let err = verify(&t.token, &pki.issuer(), &pki.ca_sha256(), later).expect_err("expired");
    assert!(matches!(err, TokenRefusal::Expired { .. }), "{err}");
    assert_eq!(err.code(), EnrollCode::TokenExpired);
    // At exactly not_after: expired.
    let at = OffsetDateTime::from_unix_timestamp(t.claims.not_after).expect("t");
    assert!(verify(&t.token, &pki.issuer(), &pki.ca_sha256(), at).is_err());
}

#[test]
fn other_issuer_and_other_ca() {
    let a = Pki::new(TD);
    let b = Pki::new(TD);
    let e = edges();
    let t = create(a.path(), &req(&e)).expect("token");
    let err = verify(&t.token, &b.issuer(), &a.ca_sha256(), ca::now()).expect_err("issuer");
    assert_eq!(err, TokenRefusal::OtherIssuer);
    assert_eq!(err.code(), EnrollCode::TokenInvalid);
    let err = verify(&t.token, &a.issuer(), &b.ca_sha256(), ca::now()).expect_err("ca");
    assert_eq!(err, TokenRefusal::OtherCa);

    // A rotated issuer invalidates outstanding tokens.
    create_issuer(a.path(), ISSUER_VALIDITY, true).expect("rotate");
    let err = verify(&t.token, &a.issuer(), &a.ca_sha256(), ca::now()).expect_err("rotated");
    assert_eq!(err, TokenRefusal::OtherIssuer);
}

#[test]
fn other_trust_domain() {
    // A token whose signed claims name another trust domain than the issuer's.
    let pki = Pki::new(TD);
    let iss = pki.issuer();
    let e = edges();
    let t = sign(&iss, b"ca", &req(&e), ca::now()).expect("sign");
    let mut claims = t.claims;
    claims.trust_domain = "other.test".into();
    claims.ca_sha256 = pki.ca_sha256();
    let payload = claims.to_payload().expect("payload");
    let token = encode_token(&payload, &iss.sign(&payload).expect("sig"));
    let err = verify(&token, &iss, &pki.ca_sha256(), ca::now()).expect_err("td");
    assert!(
        matches!(err, TokenRefusal::OtherTrustDomain { .. }),
        "{err}"
    );
}

#[test]
fn every_character_changed_is_refused() {
    let pki = Pki::new(TD);
    let iss = pki.issuer();
    let ca = pki.ca_sha256();
    let t = create(pki.path(), &req(&edges())).expect("token").token;
    let chars: Vec<char> = t.chars().collect();
    for i in 0..chars.len() {
        for replacement in ['A', 'z', '-', '.'] {
            if chars[i] == replacement {
                continue;
            }
            let mut changed = chars.clone();
            changed[i] = replacement;
            let changed: String = changed.into_iter().collect();
            let err =
                verify(&changed, &iss, &ca, ca::now()).expect_err("an altered token is refused");
            assert!(
                matches!(
                    err,
                    TokenRefusal::Malformed(_)
                        | TokenRefusal::BadSignature
                        | TokenRefusal::OtherIssuer
                ),
                "position {i} -> {replacement:?}: {err:?}"
            );
        }
    }
    // Truncated and extended.
    for s in [&t[..t.len() - 1], &format!("{t}A"), &t[..t.len() / 2]] {
        assert!(verify(s, &iss, &ca, ca::now()).is_err(), "{s}");
    }
}

#[test]
fn signature_flip_is_bad_signature() {
    let pki = Pki::new(TD);
    let iss = pki.issuer();
    let t = create(pki.path(), &req(&edges())).expect("token");
    let decoded = decode_token(&t.token).expect("decode");
    for i in 0..decoded.sig.len() {
        let mut sig = decoded.sig.clone();
        sig[i] ^= 0x01;
        let token = encode_token(&decoded.signed, &sig);
        let err = verify(&token, &iss, &pki.ca_sha256(), ca::now()).expect_err("flipped");
        assert_eq!(err, TokenRefusal::BadSignature, "byte {i}");
    }
}

#[test]
fn create_refusals() {
    let pki = Pki::new(TD);
    let e = edges();
    let err = create(
        pki.path(),
        &NewToken {
            ttl: Duration::from_secs(8 * 86_400),
            ..req(&e)
        },
    )
    .expect_err("ttl");
    assert!(matches!(err, Error::BadTtl { .. }), "{err}");
    let err = create(
        pki.path(),
        &NewToken {
            ttl: Duration::ZERO,
            ..req(&e)
        },
    )
    .expect_err("0");
    assert!(matches!(err, Error::BadTtl { .. }), "{err}");
    let err = create(
        pki.path(),
        &NewToken {
            connector: "Bad/Name",
            ..req(&e)
        },
    )
    .expect_err("name");
    assert!(matches!(err, Error::Identity(_)), "{err}");
    let err = create(pki.path(), &req(&[])).expect_err("no edges");
    assert!(matches!(err, Error::Token(_)), "{err}");
    let bad = vec!["no-port".to_owned()];
    let err = create(pki.path(), &req(&bad)).expect_err("bad edge");
    assert!(err.to_string().contains("HOST:PORT"), "{err}");

    // No issuer yet.
    let bare = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        create(bare.path(), &req(&e)),
        Err(Error::NoCa { .. })
    ));
    ca::init(bare.path(), TD).expect("init");
    let err = create(bare.path(), &req(&e)).expect_err("no issuer");
    assert!(err.to_string().contains("issuer.crt"), "{err}");

    // An issuer from another CA.
    let other = Pki::new(TD);
    for f in [issuer::ISSUER_CERT_FILE, issuer::ISSUER_KEY_FILE] {
        std::fs::copy(other.path().join(f), bare.path().join(f)).expect("cp");
    }
    let err = create(bare.path(), &req(&e)).expect_err("foreign issuer");
    assert!(err.to_string().contains("not signed by this CA"), "{err}");

    // An issuer that ends before the token would.
    let short = tempfile::tempdir().expect("tempdir");
    ca::init(short.path(), TD).expect("init");
    create_issuer(short.path(), Duration::from_secs(120), false).expect("short issuer");
    let err = create(short.path(), &req(&e)).expect_err("issuer ends first");
    assert!(matches!(err, Error::IssuerEndsFirst { .. }), "{err}");
}
