use serde_json::json;

use super::*;
use crate::policy::{Policy, Target};

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";

fn obligations(redact: &str, block: &str) -> Obligations {
    let text = format!(
        r#"
        [[allow]]
        name = "r"
        principals = ["*"]
        tools = ["*"]
        {redact}
        {block}
        [detectors]
        ticket = "TICKET-[0-9]{{4}}"
        "#
    );
    let policy = Policy::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    policy
        .decide(&["p".into()], "s", &Target::Tool("t"), None)
        .obligations
}

fn call(id: u64, method: &str, obligations: &Obligations) -> Call {
    Call {
        id: Some(json!(id)),
        method: method.into(),
        target: None,
        targets: Vec::new(),
        arguments: None,
        is_request: true,
        obligations: obligations.clone(),
    }
}

fn mediator(calls: &[Call]) -> (Mediator, MediationLog) {
    let log = MediationLog::default();
    let m = Mediator::for_calls(calls, &log).unwrap_or_else(|| panic!("a mediator"));
    (m, log)
}

fn logged(log: &MediationLog) -> Vec<(MediationAction, String, String, u64)> {
    log.lock()
        .map(|l| {
            l.iter()
                .map(|m| (m.action, m.detector.clone(), m.location.clone(), m.count))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_tool_result_is_redacted_where_people_read_it_and_ids_and_bytes_are_not() {
    let o = obligations(r#"redact = ["secrets", "email", "ticket"]"#, "");
    let (m, log) = mediator(&[call(7, "tools/call", &o)]);
    let mut msg = json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [
            {"type": "text", "text": format!("key {KEY} for ana@example.com, TICKET-1234")},
            {"type": "image", "data": "QUtJQUlPU0ZPRE5ON0VYQU1QTEU=", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "mailto:ana@example.com", "text": "ana@example.com"}}
        ],
        "structuredContent": {"owner": {"mail": "bob@example.org"}}
    }});
    assert!(m.may_change(&msg.to_string()));
    assert!(m.apply(&mut msg));
    assert_eq!(
        msg["result"]["content"][0]["text"],
        "key [REDACTED:secrets] for [REDACTED:email], [REDACTED:ticket]"
    );
    assert_eq!(
        msg["result"]["content"][2]["resource"]["uri"],
        "mailto:ana@example.com"
    );
    assert_eq!(
        msg["result"]["content"][2]["resource"]["text"],
        "[REDACTED:email]"
    );
    assert_eq!(
        msg["result"]["structuredContent"]["owner"]["mail"],
        "[REDACTED:email]"
    );
    assert_eq!(msg["id"], 7);
    assert_eq!(
        logged(&log),
        vec![
            (
                MediationAction::Redact,
                "secrets".into(),
                "tools/call result".into(),
                1
            ),
            (
                MediationAction::Redact,
                "email".into(),
                "tools/call result".into(),
                3
            ),
            (
                MediationAction::Redact,
                "ticket".into(),
                "tools/call result".into(),
                1
            ),
        ]
    );
}

#[test]
fn clean_answers_other_ids_and_errors_are_left_alone() {
    let o = obligations(r#"redact = ["secrets"]"#, r#"block = ["secrets"]"#);
    let (m, log) = mediator(&[call(1, "tools/call", &o)]);
    let clean = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "fine"}]}});
    assert!(!m.may_change(&clean.to_string()));
    let mut same = clean.clone();
    assert!(!m.apply(&mut same));
    assert_eq!(same, clean);
    let mut other = json!({"jsonrpc": "2.0", "id": 2, "result": {"text": KEY}});
    assert!(!m.apply(&mut other));
    let mut error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": KEY}});
    assert!(!m.apply(&mut error));
    assert!(logged(&log).is_empty());
}

#[test]
fn a_blocked_answer_becomes_an_error_naming_the_detector_never_the_value() {
    let o = obligations("", r#"block = ["secrets"]"#);
    let (m, log) = mediator(&[call(3, "resources/read", &o)]);
    let pem =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let mut msg = json!({"jsonrpc": "2.0", "id": 3, "result": {"contents": [{"uri": "file:///k", "text": pem}]}});
    assert!(m.apply(&mut msg));
    assert_eq!(msg["id"], 3);
    assert!(msg.get("result").is_none());
    assert_eq!(msg["error"]["code"], POLICY_DENIED);
    assert_eq!(msg["error"]["data"]["detector"], "secrets");
    assert!(!msg.to_string().contains("MIIE"));
    assert_eq!(
        logged(&log),
        vec![(
            MediationAction::Block,
            "secrets".into(),
            "resources/read contents".into(),
            1
        )]
    );
}

#[test]
fn only_mediated_methods_of_rules_with_obligations_get_a_mediator() {
    let none = Obligations::default();
    let o = obligations(r#"redact = ["email"]"#, "");
    let log = MediationLog::default();
    assert!(Mediator::for_calls(&[call(1, "tools/call", &none)], &log).is_none());
    assert!(Mediator::for_calls(&[call(1, "tools/list", &o)], &log).is_none());
    let m = Mediator::for_calls(
        &[call(1, "tools/list", &o), call(2, "prompts/get", &o)],
        &log,
    );
    assert!(m.is_some_and(|m| m.covers(&json!(2)) && !m.covers(&json!(1))));
}

#[test]
fn block_looks_at_every_string_of_the_arguments_keys_included() {
    let o = obligations("", r#"block = ["secrets", "email"]"#);
    assert_eq!(o.blocked_by(&json!({"a": [1, {"b": "ok"}]})), None);
    assert_eq!(
        o.blocked_by(&json!({"a": [1, {"b": format!("x {KEY}")}]})),
        Some("secrets")
    );
    assert_eq!(o.blocked_by(&json!({"ana@example.com": 1})), Some("email"));
    assert_eq!(Obligations::default().blocked_by(&json!({"k": KEY})), None);
}
