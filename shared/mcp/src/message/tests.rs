use serde_json::json;

use super::*;
use crate::jsonrpc::code::{INVALID_PARAMS, INVALID_REQUEST};
use crate::test_util::{one, p};

#[test]
fn request_notification_response() {
    let m = one(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#);
    assert_eq!(m.kind, Kind::Request);
    assert_eq!(m.id, Some(json!("a")));
    assert_eq!(m.method.as_deref(), Some("tools/list"));
    assert_eq!(m.target, None);

    let m = one(r#"{"jsonrpc":"2.0","id":-7,"method":"ping","params":{}}"#);
    assert_eq!(m.kind, Kind::Request);
    assert_eq!(m.id, Some(json!(-7)));

    let m = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(m.kind, Kind::Notification);
    assert_eq!(m.id, None);

    let m = one(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#);
    assert_eq!(m.kind, Kind::Response);
    assert_eq!(m.result(), Some(&json!({"tools":[]})));

    let m = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#);
    assert_eq!(m.kind, Kind::Response);
    assert_eq!(m.id, None);
    let m = one(r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"x","data":[1]}}"#);
    assert_eq!(m.kind, Kind::Response);
}

#[test]
fn invalid_shapes() {
    for body in [
        r#"1"#,
        r#""s""#,
        r#"null"#,
        r#"{"id":1,"method":"m"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
        r#"{"jsonrpc":2.0,"id":1,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#,
        r#"{"jsonrpc":"2.0","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
        r#"{"jsonrpc":"2.0","id":[1],"error":{"code":1,"message":"m"}}"#,
        r#"[1]"#,
        r#"[[{"jsonrpc":"2.0","method":"m"}]]"#,
    ] {
        let e = p(body).unwrap_err();
        assert_eq!(e.code(), INVALID_REQUEST, "{body}: {e:?}");
    }
    assert_eq!(p("[]").unwrap_err(), McpError::EmptyBatch);
    assert_eq!(p(" [ ] ").unwrap_err().code(), INVALID_REQUEST);
    // The id is recovered for the error answer when it is readable.
    let e = p(r#"{"jsonrpc":"2.0","id":9,"method":"m","params":1}"#).unwrap_err();
    assert_eq!(e.id(), Some(&json!(9)));
    assert_eq!(e.to_jsonrpc()["id"], json!(9));
}

#[test]
fn batch() {
    let i = p(
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}},
                 {"jsonrpc":"2.0","method":"notifications/x"},
                 {"jsonrpc":"2.0","id":2,"result":{}}]"#,
    )
    .unwrap();
    assert!(i.batch);
    assert!(i.single().is_none());
    let kinds: Vec<Kind> = i.messages.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [Kind::Request, Kind::Notification, Kind::Response]);
    assert_eq!(i.messages[0].target, Some(Target::Tool("t".into())));
    // One bad member fails the whole batch.
    assert!(p(r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0"}]"#).is_err());
}

#[test]
fn a_batch_holds_at_most_max_batch_messages() {
    let batch = |n: usize| {
        let msgs: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
            .collect();
        format!("[{}]", msgs.join(","))
    };
    assert_eq!(p(&batch(MAX_BATCH)).unwrap().messages.len(), MAX_BATCH);
    let e = p(&batch(MAX_BATCH + 1)).unwrap_err();
    assert_eq!(e, McpError::BatchTooLarge(MAX_BATCH + 1));
    assert_eq!(e.code(), INVALID_REQUEST);
    assert!(e.to_string().contains("at most 100"), "{e}");
}

#[test]
fn targets() {
    let t = |s: &str| one(s).target;
    assert_eq!(
        t(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}"#
        ),
        Some(Target::Tool("echo".into()))
    );
    assert_eq!(
        t(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#),
        Some(Target::Prompt("p".into()))
    );
    for m in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"uri":"file:///a"}}}}"#);
        assert_eq!(t(&body), Some(Target::Resource("file:///a".into())));
    }
    assert_eq!(
        t(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":""}}}"#
        ),
        Some(Target::Prompt("p".into()))
    );
    assert_eq!(
        t(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///{x}"},"argument":{"name":"x","value":""}}}"#
        ),
        Some(Target::Resource("file:///{x}".into()))
    );
    // A request-shaped notification names its target like the request would; unknown
    // methods name none.
    assert_eq!(
        t(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#),
        Some(Target::Tool("x".into()))
    );
    assert_eq!(
        t(r#"{"jsonrpc":"2.0","method":"resources/subscribe","params":{"uri":"u"}}"#),
        Some(Target::Resource("u".into()))
    );
    assert_eq!(
        t(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"name":"x"}}"#
        ),
        None
    );
    assert_eq!(
        t(r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"name":"x"}}"#),
        None
    );

    // Without its name, a request names no target: the backend answers it as it would
    // directly (the method may not exist there at all).
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"a"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}"#,
    ] {
        assert_eq!(t(body), None, "{body}");
    }
    // A name of the wrong type is refused: no backend may read it differently.
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":["a"]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","uri":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a",1]}}}"#,
    ] {
        let e = p(body).unwrap_err();
        assert_eq!(e.code(), INVALID_PARAMS, "{body}");
        assert_eq!(e.id(), Some(&json!(1)));
    }
}

#[test]
fn subscriptions_and_arguments() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///a","file:///b"]}}}"#,
    );
    assert_eq!(m.resource_subscriptions(), ["file:///a", "file:///b"]);
    assert_eq!(
        m.targets(),
        [
            Target::Resource("file:///a".into()),
            Target::Resource("file:///b".into())
        ]
    );
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"q":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    );
    assert_eq!(m.tool_arguments(), Some(&json!({"q":"x"})));
    assert_eq!(m.protocol_version_meta.as_deref(), Some("2026-07-28"));
    assert_eq!(m.targets(), [Target::Tool("t".into())]);
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{}}}"#,
    );
    assert_eq!(m.tool_arguments(), None);
    assert_eq!(m.protocol_version_meta, None);
}

#[test]
fn notifications_name_their_targets_like_requests() {
    let m = one(
        r#"{"jsonrpc":"2.0","method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["file:///a"]}}}"#,
    );
    assert_eq!(m.kind, Kind::Notification);
    assert_eq!(m.targets(), [Target::Resource("file:///a".into())]);
    let m = one(r#"{"jsonrpc":"2.0","method":"prompts/get","params":{"name":"p"}}"#);
    assert_eq!(m.targets(), [Target::Prompt("p".into())]);
    // A name of the wrong type is refused in a notification too.
    for body in [
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":7}}"#,
        r#"{"jsonrpc":"2.0","method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[1]}}}"#,
    ] {
        assert_eq!(p(body).unwrap_err().code(), INVALID_PARAMS, "{body}");
    }
}

#[test]
fn repeated_request_ids() {
    let ids = |s: &str| p(s).unwrap().repeated_request_id().cloned();
    assert_eq!(
        ids(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]"#),
        None
    );
    assert_eq!(
        ids(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":"1","method":"b"}]"#),
        None
    );
    assert_eq!(
        ids(
            r#"[{"jsonrpc":"2.0","id":"x","method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"x","method":"b"}]"#
        ),
        Some(json!("x"))
    );
    // Responses the client sends back do not count (their ids are the server's).
    assert_eq!(
        ids(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"result":{}}]"#),
        None
    );
}
