use super::*;

fn feed_all(parser: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(parser.feed(c).unwrap());
    }
    out
}

fn dispatched(events: &[SseEvent]) -> Vec<(Option<String>, String, Option<String>)> {
    events
        .iter()
        .filter(|e| e.is_dispatched())
        .map(|e| {
            (
                e.event().map(str::to_owned),
                e.data().unwrap().to_owned(),
                e.id().map(str::to_owned),
            )
        })
        .collect()
}

pub(crate) const STREAM: &[u8] =
    b"\xEF\xBB\xBF: hello\r\n\r\nevent: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n\
data: line1\ndata:line2\ndata:  spaced\n: inner comment\nretry: 3000\n\n\
id\rdata\r\r:keepalive\r\n\r\ndata: {\"jsonrpc\":\"2.0\"}\n\nunknown: x\nid: a\0b\ndata: z\n\n";

#[test]
fn sse_whole_stream() {
    let mut p = SseParser::default();
    let events = p.feed(STREAM).unwrap();
    assert!(p.finish().is_empty());
    let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
    assert_eq!(joined, STREAM);
    assert_eq!(
        dispatched(&events),
        [
            (Some("message".into()), "{\"a\":1}".into(), Some("1".into())),
            (None, "line1\nline2\n spaced".into(), None),
            (None, "".into(), Some("".into())),
            (None, "{\"jsonrpc\":\"2.0\"}".into(), None),
            (None, "z".into(), None),
        ]
    );
    let retry: Vec<_> = events.iter().filter_map(SseEvent::retry).collect();
    assert_eq!(retry, [3000]);
    let comments: Vec<_> = events.iter().filter_map(SseEvent::comment).collect();
    assert_eq!(comments, [" hello", "keepalive"]);
}

#[test]
fn sse_every_split_point() {
    let mut whole = SseParser::default();
    let expected = dispatched(&whole.feed(STREAM).unwrap());
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let mut p = SseParser::default();
            let events = feed_all(&mut p, &[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]);
            assert_eq!(dispatched(&events), expected, "split at {i},{j}");
            let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
            assert_eq!(joined, STREAM, "split at {i},{j}");
        }
    }
    // Byte by byte.
    let mut p = SseParser::default();
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    let events = feed_all(&mut p, &chunks);
    assert_eq!(dispatched(&events), expected);
    let joined: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
    assert_eq!(joined, STREAM);
}

#[test]
fn sse_keepalive_is_immediate() {
    let mut p = SseParser::default();
    let e = p.feed(b":\r\n").unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].comment(), Some(""));
    assert_eq!(e[0].to_bytes(), b":\r\n");
    assert!(!e[0].is_dispatched());
    // An event is held until its blank line.
    assert!(p.feed(b"data: x\n").unwrap().is_empty());
    let e = p.feed(b"\n").unwrap();
    assert_eq!(e[0].data(), Some("x"));
}

#[test]
fn sse_rewrite() {
    let mut p = SseParser::default();
    let mut events = p
        .feed(b"event: message\r\nid: 7\r\ndata: {\"old\":1}\r\n\r\n")
        .unwrap();
    assert_eq!(events.len(), 1);
    events[0].set_data("{\"new\":2}\nsecond");
    assert_eq!(
        events[0].to_bytes(),
        b"event: message\nid: 7\ndata: {\"new\":2}\ndata: second\n\n"
    );
    // The rewrite parses back to the same event.
    let mut q = SseParser::default();
    let back = q.feed(&events[0].to_bytes()).unwrap();
    assert_eq!(back[0].data(), Some("{\"new\":2}\nsecond"));
    assert_eq!(back[0].id(), Some("7"));
    assert_eq!(back[0].event(), Some("message"));
    // Fresh events; field values cannot inject lines.
    assert_eq!(SseEvent::new("x").to_bytes(), b"data: x\n\n");
    let mut e = SseEvent::new(" lead");
    e.set_event(Some("a\r\nevil: 1".into()));
    e.set_id(Some("i\n".into()));
    assert_eq!(e.to_bytes(), b"event: aevil: 1\nid: i\ndata:  lead\n\n");
    let mut q = SseParser::default();
    assert_eq!(q.feed(&e.to_bytes()).unwrap()[0].data(), Some(" lead"));
}

#[test]
fn sse_oversize() {
    let mut p = SseParser::new(32);
    assert!(p.feed(b"data: 0123456789\n").unwrap().is_empty());
    let err = p.feed(b"data: 0123456789abcdef\n").unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { max: 32 });
    assert!(p.feed(b"\n").is_err());
    // A single endless line hits the limit too, whatever the chunking.
    let mut p = SseParser::new(1024);
    let mut failed = false;
    for _ in 0..100 {
        if p.feed(&[b'a'; 100]).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    // Exactly at the limit is fine.
    let mut p = SseParser::new(11);
    assert_eq!(p.feed(b"data: abc\n\n").unwrap().len(), 1);
    let mut p = SseParser::new(10);
    assert!(p.feed(b"data: abc\n\n").is_err());
}

#[test]
fn sse_unfinished_tail() {
    let mut p = SseParser::default();
    assert!(p.feed(b"data: a\ndata: b").unwrap().is_empty());
    assert_eq!(p.finish(), b"data: a\ndata: b");
    assert!(p.finish().is_empty());
}

#[test]
fn keepalive_is_a_standalone_comment() {
    let mut p = SseParser::default();
    let units = p.feed(KEEPALIVE_COMMENT).unwrap();
    assert!(units.iter().all(|u| !u.is_dispatched()), "{units:?}");
    let bytes: Vec<u8> = units.iter().flat_map(SseEvent::to_bytes).collect();
    assert_eq!(bytes, KEEPALIVE_COMMENT);
}

/// Found by the `sse` fuzz target: a `\r\n` cut between its two bytes let an event one byte
/// over the limit through, while the same stream in one piece was refused.
#[test]
fn sse_limit_does_not_depend_on_a_cut_crlf() {
    for stream in [
        &b"data: 12\r\n\r\n"[..],
        b"data: 1234\r\n",
        b":12345678\r\n",
    ] {
        let max = stream.len() - 1;
        let mut whole = SseParser::new(max);
        let whole_failed = whole.feed(stream).is_err();
        for cut in 1..stream.len() {
            let mut p = SseParser::new(max);
            let failed = p.feed(&stream[..cut]).is_err() || p.feed(&stream[cut..]).is_err();
            assert_eq!(failed, whole_failed, "{stream:?} cut at {cut}");
        }
        assert!(whole_failed, "{stream:?} is over {max} bytes");
        // One byte more is allowed, in any cut.
        let mut p = SseParser::new(max + 1);
        assert!(p.feed(stream).is_ok());
    }
}
