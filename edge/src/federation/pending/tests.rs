use serde_json::json;

use super::*;

#[test]
fn an_answer_reaches_the_call_waiting_for_its_id_in_its_session_only() {
    let pending = PendingAsks::default();
    let mut rx = pending.expect("s1", "ask-1").unwrap();
    let answer = json!({"jsonrpc": "2.0", "id": "ask-1", "result": {"action": "accept"}});
    // Another session cannot answer it, nor can an id the edge never sent.
    assert!(!pending.answer("s2", answer.clone()));
    assert!(!pending.answer("s1", json!({"id": "ask-2", "result": {}})));
    assert!(!pending.answer("s1", json!({"id": 1, "result": {}})));
    assert!(rx.try_recv().is_err());
    assert!(pending.answer("s1", answer.clone()));
    assert_eq!(rx.try_recv().unwrap(), answer);
    // Answered once: a second answer finds nobody waiting.
    assert!(!pending.answer("s1", answer));
    assert_eq!(pending.waiting(), 0);
}

#[test]
fn a_session_waits_for_a_bounded_number_of_answers() {
    let pending = PendingAsks::default();
    let held: Vec<_> = (0..PER_SESSION)
        .map(|i| pending.expect("s1", &format!("ask-{i}")).unwrap())
        .collect();
    assert_eq!(
        pending.expect("s1", "one-more").unwrap_err(),
        PendingError::Session
    );
    // Another session is not affected.
    let _other = pending.expect("s2", "ask-0").unwrap();
    pending.forget("s1", "ask-0");
    let _again = pending.expect("s1", "one-more").unwrap();
    drop(held);
    assert_eq!(pending.waiting(), PER_SESSION + 1);
}

#[test]
fn an_answer_after_the_call_ended_is_dropped() {
    let pending = PendingAsks::default();
    let rx = pending.expect("s1", "ask-1").unwrap();
    drop(rx);
    assert!(!pending.answer("s1", json!({"id": "ask-1", "result": {}})));
    assert_eq!(pending.waiting(), 0);
}
