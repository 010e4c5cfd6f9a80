use serde_json::Value;

use crate::error::{McpError, MAX_DEPTH};
use crate::json::parse_json_strict;
use crate::jsonrpc::code::PARSE_ERROR;
use crate::message::parse;
use crate::test_util::p;

#[test]
fn duplicate_keys_rejected_everywhere() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1,"x":2}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"l":[{"k":1,"k":1}]}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1,"\u0061":2}}"#,
        r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","method":"n","method":"m"}]"#,
    ] {
        let e = p(body).unwrap_err();
        assert!(matches!(e, McpError::DuplicateKey(_)), "{body}: {e:?}");
        assert_eq!(e.code(), PARSE_ERROR);
    }
    // Same key in sibling objects is fine.
    p(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":{"k":1},"b":{"k":1}}}"#).unwrap();
}

#[test]
fn strict_parse_builds_what_serde_json_builds() {
    for doc in [
        r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":null}"#,
        r#"{"s":"\u00e9\n\"q\"","t":true,"f":false,"o":{},"l":[],"u":"\ud83d\ude00"}"#,
        r#" [ {"k" : {"deep": [[[{"x": "y"}]]]}} , 0.0 , "" ] "#,
        r#""just a string""#,
    ] {
        let expected: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(
            parse_json_strict(doc.as_bytes()).unwrap(),
            expected,
            "{doc}"
        );
    }
    for bad in ["", "{", r#"{"a":1}x"#, "[1,]", "\u{feff}{}"] {
        assert!(
            matches!(parse_json_strict(bad.as_bytes()), Err(McpError::Json(_))),
            "{bad}"
        );
    }
}

#[test]
fn nesting_is_capped() {
    let nest = |n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    // Top-level object and params make two levels.
    p(&nest(MAX_DEPTH - 2)).unwrap();
    assert_eq!(p(&nest(MAX_DEPTH - 1)).unwrap_err(), McpError::TooDeep);
    assert_eq!(p(&nest(100_000)).unwrap_err(), McpError::TooDeep);
    let objs = format!("{}1{}", r#"{"a":"#.repeat(5000), "}".repeat(5000));
    assert_eq!(p(&objs).unwrap_err(), McpError::TooDeep);
}

#[test]
fn bad_json_rejected() {
    for body in [
        &b""[..],
        b"   ",
        b"{",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"} x",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"m\xff\"}",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"\\ud800\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1e400,\"method\":\"m\"}",
        b"\x00",
    ] {
        let e = parse(body).unwrap_err();
        assert_eq!(e.code(), PARSE_ERROR, "{body:?}");
    }
}
