use serde_json::json;

use super::*;

#[test]
fn a_sessions_capabilities_keep_only_what_a_backend_may_ask_for() {
    let declared = json!({
        "sampling": {"context": {}, "tools": {}, "huge": "x".repeat(10_000)},
        "elicitation": {"form": {"applyDefaults": true, "other": 1}, "url": {}},
        "roots": {"listChanged": true, "extra": [1, 2, 3]},
        "experimental": {"anything": {}},
    });
    assert_eq!(
        asking_capabilities(&declared),
        json!({
            "sampling": {"context": {}, "tools": {}},
            "elicitation": {"form": {"applyDefaults": true}, "url": {}},
            "roots": {"listChanged": true},
        })
    );
    assert_eq!(
        asking_capabilities(&json!({"sampling": {}})),
        json!({"sampling": {}})
    );
    assert_eq!(
        asking_capabilities(&json!({"sampling": true, "roots": "yes"})),
        json!({})
    );
    assert_eq!(asking_capabilities(&json!(null)), json!({}));
}

fn elicit(message: &str) -> Value {
    json!({"method": "elicitation/create", "params": {"message": message, "requestedSchema": {}}})
}

#[test]
fn an_input_required_result_names_its_requests_in_key_order() {
    let caps = json!({"elicitation": {}, "sampling": {}});
    let result = json!({
        "resultType": "input_required",
        "inputRequests": {
            "b": elicit("second"),
            "a": {"method": "sampling/createMessage", "params": {"maxTokens": 5}},
        },
        "requestState": "round-1",
    });
    let asked = input_required(&result, &caps).unwrap().unwrap();
    assert_eq!(asked.state.as_deref(), Some("round-1"));
    let keys: Vec<&str> = asked.requests.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(asked.requests[0].method, "sampling/createMessage");
    assert_eq!(asked.requests[0].params, json!({"maxTokens": 5}));
    assert_eq!(
        ask_message("underpass-ask-1", &asked.requests[1]),
        json!({"jsonrpc": "2.0", "id": "underpass-ask-1", "method": "elicitation/create",
               "params": {"message": "second", "requestedSchema": {}}})
    );
}

#[test]
fn other_results_are_not_input_required() {
    let caps = json!({"elicitation": {}});
    assert!(input_required(&json!({"content": []}), &caps).is_none());
    assert!(input_required(&json!({"resultType": "complete"}), &caps).is_none());
    assert!(input_required(&json!({"resultType": "task", "taskId": "t"}), &caps).is_none());
}

#[test]
fn a_state_alone_is_a_round_with_nothing_to_ask() {
    let result = json!({"resultType": "input_required", "requestState": "s"});
    let asked = input_required(&result, &json!({})).unwrap().unwrap();
    assert!(asked.requests.is_empty());
}

#[test]
fn what_cannot_be_relayed_is_refused_with_the_reason() {
    let ir = |requests: Value| json!({"resultType": "input_required", "inputRequests": requests});
    let caps = json!({"elicitation": {}});
    let refused = |result: Value| input_required(&result, &caps).unwrap().unwrap_err();
    assert_eq!(
        refused(json!({"resultType": "input_required"})),
        AskError::Empty
    );
    assert_eq!(
        refused(ir(json!([1]))),
        AskError::Malformed("inputRequests".into())
    );
    assert_eq!(
        refused(ir(json!({"k": {"params": {}}}))),
        AskError::Malformed("k".into())
    );
    assert_eq!(
        refused(ir(json!({"k".repeat(300): elicit("m")}))),
        AskError::Malformed("k".repeat(64))
    );
    assert_eq!(
        refused(ir(json!({"k": {"method": "tools/call"}}))),
        AskError::UnknownMethod {
            key: "k".into(),
            method: "tools/call".into()
        }
    );
    assert_eq!(
        refused(ir(json!({"k": {"method": "sampling/createMessage"}}))),
        AskError::Undeclared {
            key: "k".into(),
            capability: "sampling"
        }
    );
    let many: Map<String, Value> = (0..=MAX_REQUESTS)
        .map(|i| (format!("k{i}"), elicit("m")))
        .collect();
    assert_eq!(refused(ir(Value::Object(many))), AskError::TooMany);
}

#[test]
fn the_next_round_carries_the_answers_and_state_instead_of_the_last_ones() {
    let params = json!({"name": "t", "arguments": {"x": 1},
                        "inputResponses": {"old": {}}, "requestState": "old"});
    let mut answers = Map::new();
    answers.insert(
        "a".into(),
        json!({"action": "accept", "content": {"ok": true}}),
    );
    assert_eq!(
        next_params(&params, answers, Some("round-2")),
        json!({"name": "t", "arguments": {"x": 1},
               "inputResponses": {"a": {"action": "accept", "content": {"ok": true}}},
               "requestState": "round-2"})
    );
    assert_eq!(
        next_params(&params, Map::new(), None),
        json!({"name": "t", "arguments": {"x": 1}})
    );
}

#[test]
fn a_clients_answer_goes_back_under_the_backends_id_and_nothing_more() {
    let answer = json!({"jsonrpc": "2.0", "id": "underpass-ask-1", "result": {"model": "m"},
                        "extra": "dropped"});
    assert_eq!(
        response_to(&json!(7), &answer),
        Some(json!({"jsonrpc": "2.0", "id": 7, "result": {"model": "m"}}))
    );
    let refusal = json!({"id": "underpass-ask-2", "error": {"code": -1, "message": "no"}});
    assert_eq!(
        response_to(&json!("b"), &refusal),
        Some(json!({"jsonrpc": "2.0", "id": "b", "error": {"code": -1, "message": "no"}}))
    );
    assert_eq!(
        response_to(&json!(7), &json!({"id": "underpass-ask-3"})),
        None
    );
}
