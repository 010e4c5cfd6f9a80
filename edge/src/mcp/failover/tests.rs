use super::*;

fn call(method: &str, tool: Option<&str>, is_request: bool) -> Call {
    let targets: Vec<McpTarget> = tool
        .map(|t| McpTarget::Tool(t.to_owned()))
        .into_iter()
        .collect();
    Call {
        id: is_request.then(|| serde_json::json!(1)),
        method: method.to_owned(),
        target: targets.first().cloned(),
        targets,
        arguments: None,
        is_request,
        obligations: Default::default(),
    }
}

fn tools(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reads_are_retried_without_being_listed() {
    for method in [
        "server/discover",
        "initialize",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
        "resources/read",
        "prompts/get",
    ] {
        assert!(
            may_retry(&Method::POST, false, &[call(method, None, true)], &[]),
            "{method}"
        );
    }
}

#[test]
fn tool_calls_only_when_the_operator_lists_the_tool() {
    let listed = tools(&["search", "echo"]);
    let search = call("tools/call", Some("search"), true);
    let delete = call("tools/call", Some("delete_everything"), true);
    assert!(may_retry(
        &Method::POST,
        false,
        std::slice::from_ref(&search),
        &listed
    ));
    assert!(!may_retry(
        &Method::POST,
        false,
        std::slice::from_ref(&delete),
        &listed
    ));
    assert!(!may_retry(
        &Method::POST,
        false,
        std::slice::from_ref(&search),
        &[]
    ));
    // A name that merely looks alike is not listed.
    let searcher = call("tools/call", Some("search2"), true);
    assert!(!may_retry(&Method::POST, false, &[searcher], &listed));
    // A batch is retried only if every message in it may be.
    assert!(may_retry(
        &Method::POST,
        false,
        &[search.clone(), call("tools/list", None, true)],
        &listed
    ));
    assert!(!may_retry(
        &Method::POST,
        false,
        &[search.clone(), delete],
        &listed
    ));
    // A tools/call naming no tool, or several, is not retried.
    let mut two = search.clone();
    two.targets.push(McpTarget::Tool("echo".into()));
    assert!(!may_retry(&Method::POST, false, &[two], &listed));
    assert!(!may_retry(
        &Method::POST,
        false,
        &[call("tools/call", None, true)],
        &listed
    ));
}

#[test]
fn nothing_else_is_ever_retried() {
    let listed = tools(&["search"]);
    for method in [
        "ping",
        "completion/complete",
        "resources/subscribe",
        "logging/setLevel",
        "tasks/cancel",
        "sampling/createMessage",
    ] {
        assert!(
            !may_retry(&Method::POST, false, &[call(method, None, true)], &listed),
            "{method}"
        );
    }
    // Notifications and responses are never sent twice, whatever their method.
    for method in [
        "notifications/initialized",
        "tools/list",
        "notifications/cancelled",
    ] {
        assert!(
            !may_retry(&Method::POST, false, &[call(method, None, false)], &listed),
            "{method}"
        );
    }
    // A notification riding along with a safe request makes the whole body unsafe.
    assert!(!may_retry(
        &Method::POST,
        false,
        &[
            call("tools/list", None, true),
            call("notifications/cancelled", None, false)
        ],
        &listed
    ));
    // Not a POST, inside a legacy session, or no message at all.
    let list = [call("tools/list", None, true)];
    assert!(!may_retry(&Method::GET, false, &list, &listed));
    assert!(!may_retry(&Method::DELETE, false, &list, &listed));
    assert!(!may_retry(&Method::POST, true, &list, &listed));
    assert!(!may_retry(&Method::POST, false, &[], &listed));
}

#[test]
fn only_a_lost_tunnel_is_a_reason_to_retry() {
    assert!(tunnel_lost(&ExchangeError::NoAnswer, true));
    assert!(tunnel_lost(
        &ExchangeError::Frame(underpass_proto::frame::FrameError::Io(
            std::io::Error::from(std::io::ErrorKind::NotConnected)
        )),
        true
    ));
    // The tunnel is up: the connector refused or reset this one exchange.
    assert!(!tunnel_lost(&ExchangeError::NoAnswer, false));
    // An answer came back (with a status that is no final one): never.
    assert!(!tunnel_lost(&ExchangeError::BadStatus(101), true));
}
