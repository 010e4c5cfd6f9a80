use serde_json::json;

use super::super::client_msg::inbound;
use super::*;

#[test]
fn routing_prefers_progress_token_then_oldest_sse_request() {
    let mut router = Router::default();
    let (tx_a, _rx_a) = mpsc::channel(4);
    let (tx_b, _rx_b) = mpsc::channel(4);
    let req = |id: u64, token: Option<&str>| {
        let mut v = json!({"jsonrpc":"2.0","id":id,"method":"tools/call"});
        if let Some(t) = token {
            v["params"] = json!({"_meta": {"progressToken": t}});
        }
        inbound(v.clone(), v.to_string().into_bytes()).unwrap()
    };
    router.register(1, &[req(1, None)], true, &tx_a).unwrap();
    router
        .register(2, &[req(2, Some("p"))], true, &tx_b)
        .unwrap();
    assert!(matches!(
        router.register(3, &[req(2, None)], true, &tx_b),
        Err(BridgeError::DuplicateId(_))
    ));
    let route = |r: &mut Router, v: Value| r.route(&v, Bytes::new(), "s", "x");
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}});
    let d = route(&mut router, progress).unwrap();
    assert!(d.tx.same_channel(&tx_b));
    let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{}});
    let d = route(&mut router, log).unwrap();
    assert!(d.tx.same_channel(&tx_a));
    let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
    assert!(route(&mut router, changed).is_none());
    assert_eq!(router.backlog.len(), 1);
    let resp = json!({"jsonrpc":"2.0","id":1,"result":{}});
    assert!(matches!(
        route(&mut router, resp.clone()).unwrap().item,
        Outgoing::Response { .. }
    ));
    assert!(route(&mut router, resp).is_none());
    router.unregister(2, "2");
    assert!(router.pending.is_empty() && router.progress.is_empty());
}
