//! Property tests: the SSE writer and parser agree in any chunking, and strict JSON reads
//! exactly what serde_json reads when no key repeats.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::json::parse_json_strict;
use crate::sse::{SseEvent, SseParser};
use crate::{McpError, MAX_DEPTH};

/// Text of an SSE field value: anything, CR, LF and NUL included (the writer drops or splits
/// what a field cannot hold).
fn field() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9 :{}\"/_-]{0,12}", "[\\PC\r\n\0]{0,16}"]
}

prop_compose! {
    fn event()(
        data in field(), event in prop::option::of(field()), id in prop::option::of(field()),
    ) -> SseEvent {
        let mut e = SseEvent::new(&data);
        e.set_event(event);
        e.set_id(id);
        e
    }
}

/// What a parser must report for a written event: the writer drops CR, LF and NUL from
/// `event` and `id` and turns every line ending of the data into `\n`.
fn expected(e: &SseEvent) -> (Option<String>, Option<String>, Option<String>) {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
            .collect()
    };
    let data = e
        .data()
        .map(|d| d.replace("\r\n", "\n").replace('\r', "\n"));
    (e.event().map(clean), data, e.id().map(clean))
}

fn parsed(e: &SseEvent) -> (Option<String>, Option<String>, Option<String>) {
    (
        e.event().map(str::to_owned),
        e.data().map(str::to_owned),
        e.id().map(str::to_owned),
    )
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        "[\\PC\"\\\\]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\\PC]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Cut points into a buffer of `len` bytes, from arbitrary numbers.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    c.push(len);
    c.sort_unstable();
    c.dedup();
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Writer → parser: the concatenation of written events, cut anywhere, parses back to the
    /// same events, and the units give back the stream byte for byte.
    #[test]
    fn sse_written_events_parse_back_in_any_chunking(
        events in prop::collection::vec(event(), 1..6),
        retries in prop::collection::vec(prop::option::of(any::<u32>()), 6),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream = Vec::new();
        for (e, retry) in events.iter().zip(&retries) {
            if let Some(r) = retry {
                stream.extend_from_slice(format!("retry: {r}\n").as_bytes());
            }
            stream.extend_from_slice(&e.to_bytes());
        }
        let mut parser = SseParser::default();
        let mut units = Vec::new();
        let mut from = 0;
        for to in cuts(stream.len(), &raw_cuts) {
            units.extend(parser.feed(&stream[from..to]).unwrap());
            from = to;
        }
        prop_assert!(parser.finish().is_empty());
        let joined: Vec<u8> = units.iter().flat_map(SseEvent::to_bytes).collect();
        prop_assert_eq!(&joined, &stream);
        let got: Vec<_> = units.iter().filter(|u| u.is_dispatched()).collect();
        prop_assert_eq!(got.len(), events.len());
        for ((g, e), retry) in got.iter().zip(&events).zip(&retries) {
            prop_assert_eq!(parsed(g), expected(e));
            prop_assert_eq!(g.retry(), retry.map(u64::from));
        }
    }

    /// A value serde_json writes (compact or pretty) is read back by the strict parser as that
    /// very value (floats included: the workspace reads them exactly, `float_roundtrip`), as
    /// serde_json reads it.
    #[test]
    fn strict_json_reads_what_serde_json_writes(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        let strict = parse_json_strict(text.as_bytes()).unwrap();
        prop_assert_eq!(&strict, &v);
        prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    /// On any text, the strict parser accepts exactly what serde_json accepts, except a
    /// repeated key or nesting past the limit, and then reads the same value.
    #[test]
    fn strict_json_accepts_what_serde_json_accepts(text in "[\\[\\]{}\":,0-9a-c \\\\u.e-]{0,40}") {
        match (parse_json_strict(text.as_bytes()), serde_json::from_str::<Value>(&text)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Ok(a), Err(e)) => prop_assert!(false, "strict read {a} where serde_json failed: {e}"),
            (Err(McpError::DuplicateKey(_)), Ok(_)) | (Err(McpError::TooDeep), Ok(_)) => {}
            (Err(e), Ok(b)) => prop_assert!(false, "strict refused {b}: {e}"),
            (Err(_), Err(_)) => {}
        }
    }

    /// A key repeated at any depth (also written with an escape) is refused.
    #[test]
    fn strict_json_refuses_a_repeated_key(v in json_value(), depth in 0usize..5, escaped in any::<bool>()) {
        let mut inner = format!(
            "{{\"a\":{v},\"{}\":1}}",
            if escaped { "\\u0061" } else { "a" }
        );
        for _ in 0..depth.min(MAX_DEPTH - 2) {
            inner = format!("[{inner}]");
        }
        prop_assert!(matches!(
            parse_json_strict(inner.as_bytes()),
            Err(McpError::DuplicateKey(_))
        ));
    }
}
