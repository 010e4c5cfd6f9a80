use proptest::prelude::*;

use super::*;

fn sealer(secrets: &[[u8; SECRET_LEN]]) -> Sealer {
    Sealer::new(secrets).unwrap()
}

fn payload(service: &str, principal: &str, connector: &str, backend_id: &str) -> Payload {
    Payload {
        service: service.to_owned(),
        principal_hash: principal_hash(principal),
        connector: connector.to_owned(),
        backend_id: backend_id.to_owned(),
    }
}

#[test]
fn seals_and_opens_for_its_service_and_principal_only() {
    let s = sealer(&[[1; 32]]);
    let id = s
        .seal(&payload(
            "everything",
            "client:alice",
            "connector-dc1",
            "backend-77",
        ))
        .unwrap();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url, visible ASCII: {id}"
    );
    assert!(!id.contains("backend-77") && !id.contains("connector-dc1"));
    let opened = s.open(&id, "everything", "client:alice").unwrap();
    assert_eq!(opened.connector, "connector-dc1");
    assert_eq!(opened.backend_id, "backend-77");
    assert_eq!(opened.key_index, 0);
    assert_eq!(
        s.open(&id, "files", "client:alice"),
        Err(Refused::OtherService)
    );
    assert_eq!(
        s.open(&id, "everything", "client:mallory"),
        Err(Refused::OtherPrincipal)
    );
}

#[test]
fn every_seal_is_fresh() {
    let s = sealer(&[[1; 32]]);
    let p = payload("svc", "alice", "dc1", "b");
    assert_ne!(s.seal(&p).unwrap(), s.seal(&p).unwrap(), "random nonce");
}

#[test]
fn rotation_the_first_key_seals_every_key_opens() {
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let before = sealer(&[old]);
    let during = sealer(&[new, old]);
    let after = sealer(&[new]);
    let p = payload("svc", "alice", "dc1", "s-1");
    let old_id = before.seal(&p).unwrap();
    let new_id = during.seal(&p).unwrap();
    assert_eq!(during.open(&old_id, "svc", "alice").unwrap().key_index, 1);
    assert_eq!(during.open(&new_id, "svc", "alice").unwrap().key_index, 0);
    assert_eq!(
        after.open(&new_id, "svc", "alice").unwrap().backend_id,
        "s-1"
    );
    assert_eq!(
        before.open(&new_id, "svc", "alice"),
        Err(Refused::UnknownKey),
        "the old key alone does not open ids sealed with the new one"
    );
    assert_eq!(
        after.open(&old_id, "svc", "alice"),
        Err(Refused::UnknownKey),
        "once the old key is gone, so are its sessions"
    );
    assert_eq!(during.key_ids().len(), 2);
    assert_eq!(during.key_ids()[0], after.key_ids()[0]);
}

#[test]
fn a_foreign_key_with_a_colliding_id_is_still_refused() {
    // Same key id bytes (forced), different secret: the tag does not verify.
    let s = sealer(&[[1; 32]]);
    let other = sealer(&[[3; 32]]);
    let id = other.seal(&payload("svc", "alice", "dc1", "b")).unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(&id).unwrap();
    raw[1..HEADER_LEN].copy_from_slice(&s.keys[0].id);
    let forged = URL_SAFE_NO_PAD.encode(raw);
    assert_eq!(s.open(&forged, "svc", "alice"), Err(Refused::Tampered));
}

#[test]
fn garbage_truncation_and_other_versions_are_refused() {
    let s = sealer(&[[1; 32]]);
    let id = s.seal(&payload("svc", "alice", "dc1", "b")).unwrap();
    for bad in [
        "",
        "not-a-session",
        "!!!!",
        "AAAA",
        &id[..id.len() - 1],
        &id[..id.len() / 2],
        &"A".repeat(MAX_SEALED_LEN + 4),
    ] {
        assert!(s.open(bad, "svc", "alice").is_err(), "{bad:?}");
    }
    let mut raw = URL_SAFE_NO_PAD.decode(&id).unwrap();
    raw[0] = 2;
    assert_eq!(
        s.open(&URL_SAFE_NO_PAD.encode(&raw), "svc", "alice"),
        Err(Refused::Malformed)
    );
    // Padding and standard-alphabet spellings of the same bytes are not the id.
    assert!(s.open(&format!("{id}="), "svc", "alice").is_err());
}

#[test]
fn what_cannot_be_sealed_is_refused() {
    let s = sealer(&[[1; 32]]);
    let long = "x".repeat(MAX_BACKEND_ID + 1);
    assert_eq!(
        s.seal(&payload("svc", "alice", "dc1", &long)),
        Err(SealError::BackendId)
    );
    assert_eq!(
        s.seal(&payload("svc", "alice", "dc1", "has space")),
        Err(SealError::BackendId)
    );
    assert_eq!(
        s.seal(&payload(&"s".repeat(256), "alice", "dc1", "b")),
        Err(SealError::Name)
    );
    let longest = "y".repeat(MAX_BACKEND_ID);
    let id = s
        .seal(&payload(
            &"s".repeat(255),
            "alice",
            &"c".repeat(255),
            &longest,
        ))
        .unwrap();
    assert!(
        id.len() <= MAX_SEALED_LEN,
        "{} > {MAX_SEALED_LEN}",
        id.len()
    );
    assert_eq!(
        s.open(&id, &"s".repeat(255), "alice").unwrap().backend_id,
        longest
    );
    assert!(Sealer::new(&[]).is_err());
}

#[test]
fn ephemeral_keys_are_not_shared_and_differ_per_process_start() {
    let a = Sealer::ephemeral().unwrap();
    let b = Sealer::ephemeral().unwrap();
    assert!(!a.is_shared() && sealer(&[[1; 32]]).is_shared());
    let id = a.seal(&payload("svc", "alice", "dc1", "b")).unwrap();
    assert!(b.open(&id, "svc", "alice").is_err());
}

fn visible_ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x21u8..=0x7e, 0..=max)
        .prop_map(|v| String::from_utf8(v).unwrap_or_default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn seal_then_open_gives_the_payload_back(
        service in "[a-z0-9-]{1,63}",
        principal in ".{0,80}",
        connector in "[a-z0-9-]{1,63}",
        backend_id in visible_ascii(MAX_BACKEND_ID),
        rotate in any::<bool>(),
    ) {
        let keys: Vec<[u8; 32]> = if rotate { vec![[9; 32], [8; 32]] } else { vec![[9; 32]] };
        let s = sealer(&keys);
        let p = payload(&service, &principal, &connector, &backend_id);
        let id = s.seal(&p).unwrap();
        let (back, index) = s.open_payload(&id).unwrap();
        prop_assert_eq!(back, p);
        prop_assert_eq!(index, 0);
        let opened = s.open(&id, &service, &principal).unwrap();
        prop_assert_eq!(opened.backend_id, backend_id);
        prop_assert_eq!(opened.connector, connector);
    }

    #[test]
    fn any_single_byte_change_is_refused(
        backend_id in visible_ascii(64),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let s = sealer(&[[5; 32]]);
        let id = s.seal(&payload("svc", "alice", "dc1", &backend_id)).unwrap();
        let mut bytes = id.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(s.open_payload(&changed).is_err(), "{} opened", changed);
    }

    #[test]
    fn opening_arbitrary_text_never_panics(text in ".{0,300}") {
        let s = sealer(&[[5; 32]]);
        let _ = s.open(&text, "svc", "alice");
    }
}

#[test]
fn the_wire_format_is_the_documented_one() {
    // Written by fuzz/seeds/make_seeds.py from the format in this module's documentation
    // (HKDF-SHA256 and ChaCha20-Poly1305 of Python's `cryptography`), a second implementation.
    const PYTHON: &str = "Ae_xfRQAAQIDBAUGBwgJCgtXctM3w-D4ojhC4pSmX3M_kg34e_Ot_6HCK0kGZgKbWA82882TkPDMMkiJ3nCsEklLP6lDKZOex9L4ku_sZBRe-2w";
    let s = sealer(&[[7; 32]]);
    let p = payload("everything", "client:alice", "dc1", "backend-session-1");
    let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| i as u8);
    assert_eq!(s.seal_with_nonce(&p, nonce).unwrap(), PYTHON);
    assert_eq!(
        s.open(PYTHON, "everything", "client:alice")
            .unwrap()
            .backend_id,
        "backend-session-1"
    );
}
