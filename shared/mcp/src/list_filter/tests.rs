use serde_json::json;

use super::*;

#[test]
fn notifications_about_hidden_resources() {
    let keep = |t: &Target| matches!(t, Target::Resource(u) if u.starts_with("public:"));
    let mut m = json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"secret:x"}});
    assert_eq!(filter_notification(&mut m, keep), NotificationVerdict::Drop);
    let mut m = json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"public:a"}});
    assert_eq!(
        filter_notification(&mut m, keep),
        NotificationVerdict::Unchanged
    );
    let mut m =
        json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":7}});
    assert_eq!(filter_notification(&mut m, keep), NotificationVerdict::Drop);
    let mut m = json!({"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",
        "params":{"_meta":{"io.modelcontextprotocol/subscriptionId":1},
                  "notifications":{"toolsListChanged":true,"resourceSubscriptions":["public:a","secret:x",3]}}});
    assert_eq!(
        filter_notification(&mut m, keep),
        NotificationVerdict::Rewritten
    );
    assert_eq!(
        m["params"]["notifications"],
        json!({"toolsListChanged":true,"resourceSubscriptions":["public:a"]})
    );
    assert_eq!(
        filter_notification(&mut m, keep),
        NotificationVerdict::Unchanged
    );
    for mut other in [
        json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}),
        json!({"jsonrpc":"2.0","method":"notifications/resources/list_changed"}),
        json!({"jsonrpc":"2.0","id":1,"result":{"uri":"secret:x"}}),
        json!({"jsonrpc":"2.0","id":1,"method":"notifications/resources/updated","params":{"uri":"secret:x"}}),
    ] {
        assert_eq!(
            filter_notification(&mut other, keep),
            NotificationVerdict::Unchanged,
            "{other}"
        );
    }
    assert!(names_primitives("notifications/resources/updated"));
    assert!(!names_primitives("notifications/progress"));
}

#[test]
fn list_filtering() {
    let mut tools = json!({"jsonrpc":"2.0","id":1,"result":{
        "tools":[{"name":"a","x":1},{"name":"b"},{"name":7},{"title":"no name"},{"name":"c","inputSchema":{}}],
        "nextCursor":"cur","resultType":"complete","ttlMs":0,"_meta":{"k":"v"}}});
    let n = filter_list_result("tools/list", &mut tools, |t| *t != Target::Tool("b".into()));
    assert_eq!(n, 3);
    assert_eq!(
        tools,
        json!({"jsonrpc":"2.0","id":1,"result":{
            "tools":[{"name":"a","x":1},{"name":"c","inputSchema":{}}],
            "nextCursor":"cur","resultType":"complete","ttlMs":0,"_meta":{"k":"v"}}})
    );

    let mut res = json!({"jsonrpc":"2.0","id":2,"result":{"resources":[
        {"uri":"file:///a","name":"a"},{"uri":"file:///secret","name":"s"}],"extra":true}});
    let n = filter_list_result("resources/list", &mut res, |t| match t {
        Target::Resource(u) => !u.contains("secret"),
        _ => false,
    });
    assert_eq!(n, 1);
    assert_eq!(
        res["result"]["resources"],
        json!([{"uri":"file:///a","name":"a"}])
    );
    assert_eq!(res["result"]["extra"], json!(true));

    let mut tpl = json!({"jsonrpc":"2.0","id":3,"result":{"resourceTemplates":[
        {"uriTemplate":"file:///{path}","name":"f"},{"uriTemplate":"db://{t}","name":"d"}],"nextCursor":"n"}});
    let n = filter_list_result("resources/templates/list", &mut tpl, |t| {
        *t == Target::Resource("db://{t}".into())
    });
    assert_eq!(n, 1);
    assert_eq!(
        tpl["result"]["resourceTemplates"],
        json!([{"uriTemplate":"db://{t}","name":"d"}])
    );
    assert_eq!(tpl["result"]["nextCursor"], json!("n"));

    let mut prompts =
        json!({"jsonrpc":"2.0","id":4,"result":{"prompts":[{"name":"p1"},{"name":"p2"}]}});
    assert_eq!(
        filter_list_result("prompts/list", &mut prompts, |_| true),
        0
    );
    assert_eq!(
        filter_list_result(
            "prompts/list",
            &mut prompts,
            |t| matches!(t, Target::Prompt(p) if p == "p2")
        ),
        1
    );
    assert_eq!(prompts["result"]["prompts"], json!([{"name":"p2"}]));

    // Other methods, errors and odd shapes are untouched.
    let mut err = json!({"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"m"}});
    let before = err.clone();
    assert_eq!(filter_list_result("tools/list", &mut err, |_| false), 0);
    assert_eq!(err, before);
    let mut other = json!({"jsonrpc":"2.0","id":6,"result":{"tools":[{"name":"a"}]}});
    assert_eq!(filter_list_result("tools/call", &mut other, |_| false), 0);
    let mut odd = json!({"result":{"tools":{"name":"a"}}});
    assert_eq!(filter_list_result("tools/list", &mut odd, |_| false), 0);
    let mut odd = json!([1]);
    assert_eq!(filter_list_result("tools/list", &mut odd, |_| false), 0);
}
