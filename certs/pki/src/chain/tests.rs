use super::*;
use crate::issuer::{self, ISSUER_VALIDITY};
use crate::{ca, csr, inspect};
use std::time::Duration;
use underpass_proto::identity::Role;

const TD: &str = "underpass.local";

struct Setup {
    _dir: tempfile::TempDir,
    ca_pem: String,
    pin: [u8; 32],
    key_pem: String,
    chain_pem: String,
    id: SpiffeId,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    ca::init(dir.path(), TD).expect("init");
    issuer::create(dir.path(), ISSUER_VALIDITY, false).expect("issuer");
    let iss = issuer::load_dir(dir.path()).expect("load");
    let (key_pem, csr_pem) = csr::new("dc1", TD).expect("csr");
    let leaf = issuer::issue_connector(
        &iss,
        "dc1",
        csr_pem.as_bytes(),
        Duration::from_secs(86_400),
        ca::now(),
    )
    .expect("issue");
    let ca_path = dir.path().join(crate::CA_CERT_FILE);
    Setup {
        ca_pem: std::fs::read_to_string(&ca_path).expect("ca"),
        pin: fingerprint(&inspect::read_certificate(&ca_path).expect("der")),
        key_pem,
        chain_pem: leaf.chain_pem,
        id: leaf.identity,
        _dir: dir,
    }
}

fn check(s: &Setup) -> Result<CheckedChain, ChainError> {
    check_issued_chain(
        &s.chain_pem,
        &s.ca_pem,
        &s.key_pem,
        &s.id,
        &s.pin,
        ca::now(),
    )
}

#[test]
fn accepts_the_real_answer_and_bundles_with_more_roots() {
    let s = setup();
    let checked = check(&s).expect("ok");
    assert_eq!(checked.identity, s.id);
    let other = setup();
    let bundle = format!("{}{}", other.ca_pem, s.ca_pem);
    check_issued_chain(&s.chain_pem, &bundle, &s.key_pem, &s.id, &s.pin, ca::now())
        .expect("overlap bundle");
}

#[test]
fn refusals() {
    let s = setup();
    let other = setup();
    let now = ca::now();
    let e = check_issued_chain(&s.chain_pem, &s.ca_pem, &other.key_pem, &s.id, &s.pin, now);
    assert!(matches!(e, Err(ChainError::OtherKey)), "{e:?}");
    let edge = SpiffeId::new(TD, Role::Connector, "dc2").expect("id");
    let e = check_issued_chain(&s.chain_pem, &s.ca_pem, &s.key_pem, &edge, &s.pin, now);
    assert!(matches!(e, Err(ChainError::OtherIdentity { .. })), "{e:?}");
    let e = check_issued_chain(&s.chain_pem, &other.ca_pem, &s.key_pem, &s.id, &s.pin, now);
    assert!(
        matches!(e, Err(ChainError::PinnedCaMissing { .. })),
        "{e:?}"
    );
    // The other PKI's root, pinned and present, did not sign this issuer.
    let bundle = format!("{}{}", s.ca_pem, other.ca_pem);
    let e = check_issued_chain(&s.chain_pem, &bundle, &s.key_pem, &s.id, &other.pin, now);
    assert!(
        matches!(e, Err(ChainError::NotUnderPinnedCa { .. })),
        "{e:?}"
    );
    // The leaf followed by another issuer.
    let leaf_only = s
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .expect("leaf");
    let other_issuer = other
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .nth(1)
        .expect("iss");
    let mixed = format!("{leaf_only}{other_issuer}");
    let e = check_issued_chain(&mixed, &s.ca_pem, &s.key_pem, &s.id, &s.pin, now);
    assert!(matches!(e, Err(ChainError::NotSignedByIssuer)), "{e:?}");
    let e = check_issued_chain(leaf_only, &s.ca_pem, &s.key_pem, &s.id, &s.pin, now);
    assert!(matches!(e, Err(ChainError::Malformed(_))), "{e:?}");
    let e = check_issued_chain("garbage", &s.ca_pem, &s.key_pem, &s.id, &s.pin, now);
    assert!(matches!(e, Err(ChainError::Malformed(_))), "{e:?}");
    let later = now + time::Duration::days(2);
    let e = check_issued_chain(&s.chain_pem, &s.ca_pem, &s.key_pem, &s.id, &s.pin, later);
    assert!(matches!(e, Err(ChainError::NotValidNow { .. })), "{e:?}");
}
