use super::*;

#[test]
fn kinds() {
    let k = |s: &str| kind_of(&serde_json::from_str(s).unwrap());
    assert_eq!(
        k(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
        Kind::Request
    );
    assert_eq!(k(r#"{"jsonrpc":"2.0","method":"n"}"#), Kind::Notification);
    assert_eq!(
        k(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
        Kind::Response
    );
    assert_eq!(
        k(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
        Kind::Invalid
    );
    assert_eq!(k(r#"{"jsonrpc":"2.0","id":1}"#), Kind::Invalid);
    assert_eq!(k("3"), Kind::Invalid);
}

#[test]
fn pretty_bodies_become_one_line() {
    let body = b"{\n  \"jsonrpc\": \"2.0\",\r\n  \"method\": \"a\\nb\"\n}\n";
    let parsed = parse_client_body(body).unwrap();
    let line = &parsed.messages[0].line;
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(line.ends_with(b"\n"));
    let back: Value = serde_json::from_slice(line).unwrap();
    assert_eq!(back["method"], "a\nb");
}

#[test]
fn client_body_fields() {
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}}"#;
    let m = parse_client_body(body).unwrap().messages.remove(0);
    assert_eq!((m.kind, m.key.as_str()), (Kind::Request, "7"));
    assert_eq!(m.progress_token.as_deref(), Some("\"t\""));
    let body =
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x"}}"#;
    let m = parse_client_body(body).unwrap().messages.remove(0);
    assert_eq!(m.cancels.as_deref(), Some("\"x\""));
    assert!(matches!(
        parse_client_body(b"[]"),
        Err(BridgeError::Invalid(_))
    ));
    assert!(matches!(
        parse_client_body(b"{"),
        Err(BridgeError::Parse(_))
    ));
    let init = br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#;
    assert!(matches!(
        parse_client_body(init),
        Err(BridgeError::Invalid(_))
    ));
}
