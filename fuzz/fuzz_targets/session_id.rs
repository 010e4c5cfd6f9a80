//! Sealed legacy session ids (`underpass_edge::sessions::seal`), as the edge opens every
//! `Mcp-Session-Id` a client sends: opening any text never panics, and nothing opens that the
//! key did not seal.
//!
//! Input: a mode byte, then the rest. Mode bit 0 clear: the rest is an id, opened as is (the
//! key is `[7; 32]`, so a seed sealed with it reaches the AEAD and the payload parser). Bit 0
//! set: the rest is service, principal, connector and backend id separated by `\0`; they are
//! sealed (when sealable), the id must open to exactly that payload, and the id with the
//! byte at position (mode >> 1) changed to the last input byte must not open.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use underpass_edge::sessions::seal::{principal_hash, Payload, Sealer};
use underpass_fuzz::{mode, sections};

fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| Sealer::new(&[[7; 32], [8; 32]]).expect("two fixed keys"))
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let s = sealer();
    if m & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = s.open(&text, "everything", "client:alice");
        if let Ok((p, _)) = s.open_payload(&text) {
            assert_eq!(
                s.open(&text, &p.service, "x").is_ok(),
                p.principal_hash == principal_hash("x")
            );
        }
        return;
    }
    let parts = sections(rest, b"\0");
    let field = |i: usize| String::from_utf8_lossy(parts.get(i).copied().unwrap_or_default());
    let payload = Payload {
        service: field(0).into_owned(),
        principal_hash: principal_hash(&field(1)),
        connector: field(2).into_owned(),
        backend_id: field(3).into_owned(),
    };
    let Ok(id) = s.seal(&payload) else {
        return;
    };
    assert!(
        id.bytes().all(|b| b.is_ascii_graphic()),
        "visible ASCII: {id}"
    );
    let (back, index) = s.open_payload(&id).expect("a sealed id opens");
    assert_eq!((back, index), (payload.clone(), 0));
    let opened = s
        .open(&id, &payload.service, &field(1))
        .expect("opens for its service and principal");
    assert_eq!(opened.backend_id, payload.backend_id);
    let mut changed = id.into_bytes();
    let at = usize::from(m >> 1) % changed.len();
    let to = *rest.last().unwrap_or(&0);
    if changed[at] != to {
        changed[at] = to;
        let changed = String::from_utf8_lossy(&changed);
        assert!(
            s.open_payload(&changed).is_err(),
            "a changed id opened: {changed}"
        );
    }
});
