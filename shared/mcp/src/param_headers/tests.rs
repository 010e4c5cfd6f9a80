use serde_json::{json, Value};

use super::*;
use crate::headers::validate_modern_headers;
use crate::test_util::{modern, V};

fn tool() -> Value {
    json!({
        "name": "test_custom_headers",
        "inputSchema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "priority": {"type": "integer", "x-mcp-header": "Priority"},
                "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
                "nested": {"type": "object", "properties": {
                    "zone": {"type": "string", "x-mcp-header": "Zone"}
                }},
                "query": {"type": "string"}
            },
            "required": ["region", "priority", "query"]
        }
    })
}

fn call(args: Value) -> Message {
    modern(
        "tools/call",
        json!({"name":"test_custom_headers","arguments":args}),
    )
}

#[test]
fn param_annotations() {
    let mut ph = tool_param_headers(&tool()).unwrap();
    ph.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = ph
        .iter()
        .map(|p| (p.name.as_str(), p.path.join("."), p.ty))
        .collect();
    assert_eq!(
        names,
        [
            ("Priority", "priority".to_owned(), ParamType::Integer),
            ("Region", "region".to_owned(), ParamType::String),
            ("Verbose", "verbose".to_owned(), ParamType::Boolean),
            ("Zone", "nested.zone".to_owned(), ParamType::String),
        ]
    );
    assert_eq!(ph[1].header_name(), "Mcp-Param-Region");

    let bad = |prop: Value| {
        tool_param_headers(&json!({"name":"t","inputSchema":{"type":"object","properties":prop}}))
    };
    assert!(bad(json!({"v":{"type":"string","x-mcp-header":""}})).is_err());
    assert!(bad(json!({"v":{"type":"object","x-mcp-header":"Data"}})).is_err());
    assert!(bad(json!({"v":{"type":"array","x-mcp-header":"Items"}})).is_err());
    assert!(bad(json!({"v":{"type":"null","x-mcp-header":"Nil"}})).is_err());
    assert!(bad(json!({"v":{"type":"number","x-mcp-header":"Score"}})).is_err());
    assert!(bad(json!({"a":{"type":"string","x-mcp-header":"Region"},"b":{"type":"string","x-mcp-header":"Region"}})).is_err());
    assert!(bad(json!({"a":{"type":"string","x-mcp-header":"MyField"},"b":{"type":"string","x-mcp-header":"myfield"}})).is_err());
    assert!(bad(json!({"v":{"type":"string","x-mcp-header":"My Region"}})).is_err());
    assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Region:Primary"}})).is_err());
    assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Région"}})).is_err());
    assert!(bad(json!({"v":{"type":"string","x-mcp-header":"Region\t1"}})).is_err());
    assert!(
        bad(json!({"v":{"type":"array","items":{"type":"string","x-mcp-header":"I"}}})).is_err()
    );
    assert!(bad(json!({"v":{"oneOf":[{"type":"string","x-mcp-header":"O"}]}})).is_err());
    assert_eq!(
        tool_param_headers(
            &json!({"name":"t","inputSchema":{"$defs":{"d":{"type":"string","x-mcp-header":"D"}}}})
        ),
        Err(ToolSchemaError::Unreachable)
    );
    // A parameter literally named "x-mcp-header" is not an annotation.
    assert_eq!(bad(json!({"x-mcp-header":{"type":"object"}})), Ok(vec![]));
    assert_eq!(
        tool_param_headers(&json!({"name":"t"})),
        Err(ToolSchemaError::NoInputSchema)
    );
}

#[test]
fn param_headers() {
    let ph = tool_param_headers(&tool()).unwrap();
    let base = [
        V,
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "test_custom_headers"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        base.iter().chain(extra).copied().collect()
    };
    let ok = |args: Value, extra: &[(&'static str, &'static str)]| {
        let m = call(args);
        validate_modern_headers(&with(extra), &m).unwrap();
        validate_param_headers(&with(extra), &m, &ph)
    };
    let args = |region: &str| json!({"region": region, "priority": 0, "query": "q"});
    let prio = ("Mcp-Param-Priority", "0");

    // ServerAcceptsValidBase64
    ok(
        args("Hello"),
        &[("Mcp-Param-Region", "=?base64?SGVsbG8=?="), prio],
    )
    .unwrap();
    // ServerRejectsInvalidBase64Padding / ServerRejectsInvalidBase64Chars
    for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?="] {
        let v: &'static str = Box::leak(bad.to_owned().into_boxed_str());
        let e = ok(args("Hello"), &[("Mcp-Param-Region", v), prio]).unwrap_err();
        assert_eq!(e.code(), -32020);
    }
    // ServerLiteralMissingBase64Prefix / Suffix
    ok(args("SGVsbG8="), &[("Mcp-Param-Region", "SGVsbG8="), prio]).unwrap();
    ok(
        args("=?base64?SGVsbG8="),
        &[("Mcp-Param-Region", "=?base64?SGVsbG8="), prio],
    )
    .unwrap();
    // ServerRejectsMissingCustomHeader
    assert!(matches!(
        ok(args("test-value"), &[prio]),
        Err(HeaderError::Missing { .. })
    ));
    // Mismatch, case-insensitive names, whitespace.
    assert!(ok(args("us-west1"), &[("Mcp-Param-Region", "us-east1"), prio]).is_err());
    ok(
        args("us-west1"),
        &[
            ("mcp-param-region", " us-west1 "),
            ("MCP-PARAM-PRIORITY", "0"),
        ],
    )
    .unwrap();
    // Integers compare numerically; booleans as true/false.
    let m = json!({"region":"r","priority":42,"verbose":true,"query":"q"});
    ok(
        m.clone(),
        &[
            ("Mcp-Param-Region", "r"),
            ("Mcp-Param-Priority", "42.0"),
            ("Mcp-Param-Verbose", "true"),
        ],
    )
    .unwrap();
    assert!(ok(
        m.clone(),
        &[
            ("Mcp-Param-Region", "r"),
            ("Mcp-Param-Priority", "43"),
            ("Mcp-Param-Verbose", "true")
        ]
    )
    .is_err());
    assert!(ok(
        m.clone(),
        &[
            ("Mcp-Param-Region", "r"),
            ("Mcp-Param-Priority", "42"),
            ("Mcp-Param-Verbose", "True")
        ]
    )
    .is_err());
    assert!(ok(
        m,
        &[("Mcp-Param-Region", "r"), ("Mcp-Param-Priority", "42")]
    )
    .is_err());
    // Null or absent: no header expected; one sent anyway is a mismatch.
    let m = json!({"region":"r","priority":1,"verbose":null,"query":"q"});
    ok(
        m.clone(),
        &[("Mcp-Param-Region", "r"), ("Mcp-Param-Priority", "1")],
    )
    .unwrap();
    assert!(ok(
        m,
        &[
            ("Mcp-Param-Region", "r"),
            ("Mcp-Param-Priority", "1"),
            ("Mcp-Param-Verbose", "false")
        ]
    )
    .is_err());
    // Nested path.
    let m = json!({"region":"r","priority":1,"nested":{"zone":"z 1"},"query":"q"});
    ok(
        m,
        &[
            ("Mcp-Param-Region", "r"),
            ("Mcp-Param-Priority", "1"),
            ("Mcp-Param-Zone", "z 1"),
        ],
    )
    .unwrap();
    // Unknown Mcp-Param-* headers are ignored; unannotated parameters are not checked.
    ok(
        args("r"),
        &[("Mcp-Param-Region", "r"), prio, ("Mcp-Param-Query", "zzz")],
    )
    .unwrap();
    // Non-ASCII body values must be Base64 in the header.
    ok(
        args("Hello, 世界"),
        &[
            ("Mcp-Param-Region", "=?base64?SGVsbG8sIOS4lueVjA==?="),
            prio,
        ],
    )
    .unwrap();
    assert!(ok(
        args("Hello, 世界"),
        &[("Mcp-Param-Region", "Hello, 世界"), prio]
    )
    .is_err());
    ok(
        args(" padded "),
        &[("Mcp-Param-Region", "=?base64?IHBhZGRlZCA=?="), prio],
    )
    .unwrap();
}
