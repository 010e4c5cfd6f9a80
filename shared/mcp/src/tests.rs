//! Properties of the whole crate: no input bytes make any of its functions panic.

use serde_json::Value;

use crate::headers::{decode_header_value, validate_modern_headers};
use crate::list_filter::filter_list_result;
use crate::message::parse;
use crate::param_headers::tool_param_headers;
use crate::sse::tests::STREAM;
use crate::sse::SseParser;
use crate::test_util::V;

#[test]
fn never_panics_on_garbage() {
    // A small deterministic fuzz pass over mutated inputs.
    let seeds: [&[u8]; 4] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,2,{"y":null}]}}}"#,
        br#"[{"jsonrpc":"2.0","id":"q","result":{"tools":[]}}]"#,
        STREAM,
        b"=?base64?SGVsbG8=?=",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        for _ in 0..2000 {
            let mut b = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            if let Ok(ins) = parse(&b) {
                for m in &ins.messages {
                    let s = String::from_utf8_lossy(&b).into_owned();
                    let _ = validate_modern_headers(&[("Mcp-Name", &s), V], m);
                    let _ = m.targets();
                }
            }
            let mut v = serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null);
            let _ = filter_list_result("tools/list", &mut v, |_| false);
            let _ = tool_param_headers(&v);
            let mut sse = SseParser::new(64);
            let _ = sse.feed(&b);
            let text = String::from_utf8_lossy(&b);
            let _ = decode_header_value("Mcp-Name", &text);
            let _ = decode_header_value("Mcp-Name", &format!("=?base64?{text}?="));
        }
    }
}
