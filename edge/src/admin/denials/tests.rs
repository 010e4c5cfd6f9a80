use super::*;
use underpass_audit::CallAudit;

fn record(outcome: Outcome) -> AuditRecord {
    AuditRecord {
        principal: Some("apikey:ci".into()),
        service: Some("everything".into()),
        mcp_method: Some("tools/call".into()),
        target: Some("delete_everything".into()),
        rule: Some("default".into()),
        decision: Some(Decision::Deny),
        outcome,
        http_status: Some(403),
        ..AuditRecord::default()
    }
}

#[test]
fn only_refusals_of_the_caller_are_denials() {
    for outcome in [
        Outcome::Denied,
        Outcome::RateLimited,
        Outcome::Unauthenticated,
        Outcome::Forbidden,
    ] {
        assert!(
            Denial::of(&record(outcome), "t".into()).is_some(),
            "{outcome:?}"
        );
    }
    for outcome in [
        Outcome::Ok,
        Outcome::Error,
        Outcome::BackendError,
        Outcome::NotFound,
        Outcome::Unavailable,
        Outcome::ClientGone,
    ] {
        assert!(
            Denial::of(&record(outcome), "t".into()).is_none(),
            "{outcome:?}"
        );
    }
    let d = Denial::of(&record(Outcome::Denied), "2026-01-01T00:00:00Z".into()).unwrap();
    assert_eq!(
        d,
        Denial {
            time: "2026-01-01T00:00:00Z".into(),
            principal: Some("apikey:ci".into()),
            service: Some("everything".into()),
            method: Some("tools/call".into()),
            target: Some("delete_everything".into()),
            rule: Some("default".into()),
            reason: "denied",
            status: Some(403),
        }
    );
}

#[test]
fn in_a_batch_the_denied_call_is_named() {
    let mut r = record(Outcome::Denied);
    r.calls = vec![
        CallAudit {
            method: "tools/call".into(),
            target: Some("echo".into()),
            decision: Some(Decision::Allow),
            rule: Some("allow[0]".into()),
            ..CallAudit::default()
        },
        CallAudit {
            method: "tools/call".into(),
            target: Some("rm".into()),
            decision: Some(Decision::Deny),
            rule: Some("deny[1]".into()),
            ..CallAudit::default()
        },
    ];
    let d = Denial::of(&r, "t".into()).unwrap();
    assert_eq!(d.target.as_deref(), Some("rm"));
    assert_eq!(d.rule.as_deref(), Some("deny[1]"));
}

#[test]
fn the_ring_keeps_the_newest_hundred_and_counts_all() {
    let mut ring = Ring::default();
    for i in 0..CAPACITY + 25 {
        let mut d = Denial::of(&record(Outcome::Denied), format!("{i}")).unwrap();
        d.time = i.to_string();
        ring.push(d);
    }
    let list = ring.list();
    assert_eq!(list.len(), CAPACITY);
    assert_eq!(list[0].time, "25", "the oldest went first");
    assert_eq!(list[CAPACITY - 1].time, (CAPACITY + 24).to_string());
    assert_eq!(ring.total(), (CAPACITY + 25) as u64);
}

#[test]
fn long_client_chosen_text_is_cut() {
    let mut r = record(Outcome::Denied);
    r.target = Some("é".repeat(1000));
    r.principal = Some("x".repeat(10_000));
    let d = Denial::of(&r, "t".into()).unwrap();
    let target = d.target.unwrap();
    assert!(
        target.len() <= MAX_FIELD + '…'.len_utf8(),
        "{}",
        target.len()
    );
    assert!(target.ends_with('…'));
    assert!(d.principal.unwrap().len() <= MAX_FIELD + 3);
}
