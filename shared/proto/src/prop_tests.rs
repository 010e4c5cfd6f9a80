//! Property tests of the wire formats: every head and control message survives encode →
//! decode unchanged, and a stream of frames cut anywhere reassembles to the same frames.

use proptest::prelude::*;

use crate::control::{Control, Hello, Limits, Received, Refused, Welcome};
use crate::frame::{decode, encode, FrameBuffer, RequestHead, ResponseHead};

fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-zA-Z0-9:/._-]{0,24}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec((text(), prop::collection::vec(any::<u8>(), 0..40)), 0..6)
}

prop_compose! {
    fn request_head()(
        service in text(), method in "GET|POST|DELETE|[A-Z]{0,8}", query in text(),
        headers in headers(), principal in text(), trace_id in text(), request_id in text(),
        assertion in prop::option::of(text()),
    ) -> RequestHead {
        RequestHead { service, method, query, headers, principal, trace_id, request_id, assertion }
    }
}

prop_compose! {
    fn response_head()(status in any::<u16>(), headers in headers()) -> ResponseHead {
        ResponseHead { status, headers, backend_us: None }
    }
}

fn control() -> impl Strategy<Value = Control> {
    let names = prop::collection::vec(text(), 0..4);
    prop_oneof![
        (any::<u32>(), text(), names.clone(), text(), names.clone()).prop_map(
            |(protocol, connector, services, build, capabilities)| {
                Control::Hello(Hello {
                    protocol,
                    connector,
                    services,
                    build,
                    capabilities,
                })
            }
        ),
        (text(), any::<u64>(), any::<u64>(), any::<u64>(), names).prop_map(
            |(edge, body, exchanges, heartbeat_ms, capabilities)| {
                Control::Welcome(Welcome {
                    edge,
                    limits: Limits {
                        max_request_body: body,
                        max_concurrent_exchanges: exchanges,
                    },
                    heartbeat_ms,
                    capabilities,
                })
            }
        ),
        text().prop_map(|reason| Control::Refused(Refused { reason })),
    ]
}

/// Cut points into a buffer of `len` bytes, from arbitrary numbers.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    c.push(len);
    c.sort_unstable();
    c.dedup();
    c
}

/// Feeds `stream` to a [`FrameBuffer`] in the pieces `raw_cuts` make, taking every whole frame
/// as it completes; returns the frames and whether the buffer ended empty.
fn reassemble<T: serde::de::DeserializeOwned>(stream: &[u8], raw_cuts: &[usize]) -> (Vec<T>, bool) {
    let mut buf = FrameBuffer::default();
    let mut got = Vec::new();
    let mut from = 0;
    for to in cuts(stream.len(), raw_cuts) {
        buf.push(&stream[from..to]);
        from = to;
        while let Some(frame) = buf.next_frame::<T>().unwrap() {
            got.push(frame);
        }
    }
    (got, buf.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn request_heads_round_trip(head in request_head()) {
        let bytes = encode(&head).unwrap();
        let (back, used) = decode::<RequestHead>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, head);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn response_heads_round_trip(head in response_head()) {
        let bytes = encode(&head).unwrap();
        let (back, used) = decode::<ResponseHead>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, head);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn control_messages_round_trip(msg in control()) {
        let bytes = encode(&msg).unwrap();
        let (back, _) = decode::<Received>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, Received::Known(msg.clone()));
        let (back, _) = decode::<Control>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn frames_cut_anywhere_reassemble(
        heads in prop::collection::vec(request_head(), 1..5),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream: Vec<u8> = heads.iter().flat_map(|h| encode(h).unwrap()).collect();
        let (got, empty) = reassemble::<RequestHead>(&stream, &raw_cuts);
        prop_assert!(empty);
        prop_assert_eq!(got, heads);
    }

    #[test]
    fn control_frames_cut_anywhere_reassemble(
        msgs in prop::collection::vec(control(), 1..5),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode(m).unwrap()).collect();
        let (got, empty) = reassemble::<Received>(&stream, &raw_cuts);
        prop_assert!(empty);
        prop_assert_eq!(got, msgs.into_iter().map(Received::Known).collect::<Vec<_>>());
    }
}
