//! Enrollment input an edge reads from an unauthenticated peer: the token string
//! (`underpass_proto::enroll::decode_token`), the `EnrollRequest` / `EnrollAnswer` frames, and
//! the certificate request (`underpass_pki::csr::check_request`, PEM or DER). Nothing panics;
//! whatever decodes re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_fuzz::mode;
use underpass_pki::csr::check_request;
use underpass_proto::enroll::{decode_token, encode_token, EnrollAnswer, EnrollRequest};
use underpass_proto::frame;
use underpass_proto::identity::{Role, SpiffeId};

fuzz_target!(|data: &[u8]| {
    let Some((m, body)) = mode(data) else {
        return;
    };
    match m % 3 {
        0 => {
            let text = String::from_utf8_lossy(body);
            if let Ok(token) = decode_token(&text) {
                let payload = token.claims.to_payload().expect("decoded claims encode");
                let again = decode_token(&encode_token(&payload, &token.sig))
                    .expect("a re-encoded token decodes");
                assert_eq!(again.claims, token.claims);
            }
        }
        1 => {
            if let Ok(Some((req, _))) = frame::decode::<EnrollRequest>(body) {
                let bytes = frame::encode(&req).expect("re-encode");
                let (again, _) = frame::decode::<EnrollRequest>(&bytes)
                    .expect("decodes")
                    .expect("whole");
                assert_eq!(again, req);
                let _ = decode_token(&req.token);
            }
            let _ = frame::decode::<EnrollAnswer>(body);
        }
        _ => {
            let id = SpiffeId::new("underpass.local", Role::Connector, "dc1").expect("id");
            let _ = check_request(body, &id);
        }
    }
});
