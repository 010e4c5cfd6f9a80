//! Tunnel frames (`underpass_proto::frame`): the heads of both directions decoded from any
//! bytes, re-encoded to the same value, and reassembled from any split by `FrameBuffer` exactly
//! as decoded whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use underpass_fuzz::{chunks, mode};
use underpass_proto::control::Received;
use underpass_proto::frame::{self, FrameBuffer, FrameError, RequestHead, ResponseHead};

/// decode(encode(x)) == x for whatever decoded.
fn round_trip<T>(data: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(Some((msg, used))) = frame::decode::<T>(data) {
        assert!(used <= data.len());
        match frame::encode(&msg) {
            Ok(bytes) => {
                let (again, n) = frame::decode::<T>(&bytes)
                    .expect("an encoded frame decodes")
                    .expect("an encoded frame is whole");
                assert_eq!(n, bytes.len());
                assert_eq!(again, msg);
            }
            // Named fields may make a compact (array-form) frame larger than the cap.
            Err(FrameError::TooLarge { .. }) => {}
            Err(e) => panic!("cannot re-encode a decoded frame: {e}"),
        }
    }
}

/// Frames decoded one after the other from the whole input, and how that ended.
fn whole<T: DeserializeOwned>(data: &[u8]) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        match frame::decode::<T>(rest) {
            Ok(Some((msg, used))) => {
                out.push(msg);
                rest = &rest[used..];
            }
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

/// The same input through a `FrameBuffer`, in pieces.
fn pieces<T: DeserializeOwned>(data: &[u8], sizes: &[u8]) -> (Vec<T>, bool) {
    let mut buf = FrameBuffer::default();
    let mut out = Vec::new();
    for piece in chunks(data, sizes) {
        buf.push(piece);
        loop {
            match buf.next_frame::<T>() {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn same_in_pieces<T>(data: &[u8], sizes: &[u8])
where
    T: DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (a, a_failed) = whole::<T>(data);
    let (b, b_failed) = pieces::<T>(data, sizes);
    assert_eq!(a, b, "frames differ when the bytes arrive in pieces");
    assert_eq!(
        a_failed, b_failed,
        "an error depends on how the bytes arrived"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    // The first byte's low bits give the piece sizes' share of the input.
    let split = usize::from(m & 0x0f).min(rest.len());
    let (sizes, body) = rest.split_at(split);
    round_trip::<RequestHead>(body);
    round_trip::<ResponseHead>(body);
    let _ = frame::decode::<Received>(body);
    match m >> 6 {
        0 => same_in_pieces::<RequestHead>(body, sizes),
        1 => same_in_pieces::<ResponseHead>(body, sizes),
        _ => same_in_pieces::<Received>(body, sizes),
    }
});
