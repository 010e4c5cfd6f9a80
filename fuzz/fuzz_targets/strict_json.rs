//! Strict JSON (`underpass_mcp::parse_json_strict`) against serde_json: what the strict
//! parser accepts, serde_json accepts with the same value; what serde_json accepts without a
//! repeated key and within the depth limit, the strict parser accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use underpass_mcp::{parse_json_strict, McpError, MAX_DEPTH};

/// Nesting depth of a value (a scalar is 0, `[]` is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = parse_json_strict(data);
    let loose = serde_json::from_slice::<Value>(data);
    match (strict, loose) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "strict and serde_json read different values");
            assert!(depth(&a) <= MAX_DEPTH);
        }
        (Ok(a), Err(e)) => panic!("strict accepted what serde_json refuses ({e}): {a}"),
        (Err(McpError::Json(e)), Ok(b)) => {
            panic!("strict refused ({e}) what serde_json reads: {b}")
        }
        (Err(McpError::TooDeep), Ok(b)) => assert!(depth(&b) > MAX_DEPTH),
        (Err(McpError::DuplicateKey(_)), _) | (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => panic!("unexpected refusal: {e}"),
    }
});
