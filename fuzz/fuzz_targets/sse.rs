//! The SSE parser (`underpass_mcp::SseParser`) over any bytes in any pieces: the units'
//! bytes plus what `finish` returns give back the input exactly; the events (and whether the
//! size limit trips) do not depend on how the stream was cut; a unit rewritten by the writer
//! parses back to the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_fuzz::{chunks, mode};
use underpass_mcp::{SseEvent, SseParser};

/// What a unit says, leaving out its raw bytes (which depend on the cut at a `\r\n`).
#[derive(Debug, PartialEq)]
struct Fields {
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
}

fn fields(e: &SseEvent) -> Option<Fields> {
    let f = Fields {
        event: e.event().map(str::to_owned),
        data: e.data().map(str::to_owned),
        id: e.id().map(str::to_owned),
        retry: e.retry(),
        comment: e.comment().map(str::to_owned),
    };
    let empty = f.event.is_none()
        && f.data.is_none()
        && f.id.is_none()
        && f.retry.is_none()
        && f.comment.is_none();
    (!empty).then_some(f)
}

/// Feeds the pieces; returns the units, the bytes `finish` gave back, and whether it failed.
fn run(max: usize, pieces: &[&[u8]]) -> (Vec<SseEvent>, Vec<u8>, bool) {
    let mut parser = SseParser::new(max);
    let mut units = Vec::new();
    for piece in pieces {
        match parser.feed(piece) {
            Ok(mut u) => units.append(&mut u),
            Err(_) => {
                assert!(
                    parser.feed(b"\n").is_err(),
                    "a failed parser must stay failed"
                );
                return (units, Vec::new(), true);
            }
        }
    }
    let rest = parser.finish();
    (units, rest, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let split = usize::from(m & 0x0f).min(rest.len());
    let (sizes, stream) = rest.split_at(split);
    // A small limit now and then, so the limit itself is exercised.
    let max = if m & 0x30 == 0 {
        usize::from(sizes.first().copied().unwrap_or(16)).max(1)
    } else {
        1 << 20
    };
    let (whole, whole_rest, whole_failed) = run(max, &[stream]);
    let (cut, cut_rest, cut_failed) = run(max, &chunks(stream, sizes));
    assert_eq!(
        whole_failed, cut_failed,
        "the size limit depends on how the stream was cut"
    );
    if whole_failed {
        return;
    }
    for (units, rest) in [(&whole, &whole_rest), (&cut, &cut_rest)] {
        let mut bytes: Vec<u8> = units.iter().flat_map(SseEvent::to_bytes).collect();
        bytes.extend_from_slice(rest);
        assert_eq!(bytes, stream, "the units do not add up to the stream");
    }
    let a: Vec<Fields> = whole.iter().filter_map(fields).collect();
    let b: Vec<Fields> = cut.iter().filter_map(fields).collect();
    assert_eq!(a, b, "the events depend on how the stream was cut");

    // The writer: a dispatched event with new data parses back to that data.
    for unit in whole.iter().filter(|u| u.is_dispatched()) {
        let mut copy = unit.clone();
        let data = format!("{}!", unit.data().unwrap_or_default());
        copy.set_data(data.clone());
        let mut parser = SseParser::new(1 << 22);
        let back = parser
            .feed(&copy.to_bytes())
            .expect("a written event parses");
        let dispatched: Vec<_> = back.iter().filter(|u| u.is_dispatched()).collect();
        assert_eq!(dispatched.len(), 1, "one written event parses as one event");
        assert_eq!(dispatched[0].data(), Some(data.as_str()));
        assert_eq!(dispatched[0].retry(), unit.retry());
    }
});
