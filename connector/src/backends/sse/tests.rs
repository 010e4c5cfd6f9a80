use super::*;
#[test]
fn endpoints_resolve_on_the_same_origin_only() {
    let base: Uri = "http://127.0.0.1:9/sse".parse().unwrap();
    let r = |d: &str| resolve_endpoint(&base, d).map(|u| u.to_string());
    assert_eq!(
        r("/message?sessionId=a").unwrap(),
        "http://127.0.0.1:9/message?sessionId=a"
    );
    assert_eq!(r("messages/x").unwrap(), "http://127.0.0.1:9/messages/x");
    assert_eq!(
        r("http://127.0.0.1:9/m?x=1").unwrap(),
        "http://127.0.0.1:9/m?x=1"
    );
    assert!(r("http://evil:9/m").is_err());
    assert!(r("//evil/m").is_err());
    assert!(r("").is_err());
    let nested: Uri = "http://h/a/b/sse".parse().unwrap();
    assert_eq!(
        resolve_endpoint(&nested, "msg").unwrap().to_string(),
        "http://h/a/b/msg"
    );
}

#[test]
fn failed_requests_get_an_error_response() {
    let e = error_for_request(br#"{"jsonrpc":"2.0","id":3,"method":"x"}"#, "boom").unwrap();
    let v: Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(v["id"], 3);
    assert!(error_for_request(br#"{"jsonrpc":"2.0","method":"n"}"#, "boom").is_none());
}
