//! Regression for D1: a request whose client hung up before the backend answered (here a
//! backend that never does) had no audit line at all, although it reached the backend. Its
//! handler was dropped with the record still in it; the record is now written on drop.

use std::time::Duration;

use underpass_tests::faults::{audit_by_request, FaultBackend};
use underpass_tests::load::{call_tool, Outcome, Plan};
use underpass_tests::*;

/// Polls (bounded) until `f` gives something.
fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_call_abandoned_before_the_backend_answered_is_audited() {
    let port = free_port();
    let url = FaultBackend::url_at(port, "stall");
    let d = Deployment::start_services(
        false,
        &[("stall", url.as_str(), "")],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n[audit]\nfile = \"audit.jsonl\"\n",
        |_| {},
    );
    let backend = FaultBackend::start_at(d.path(), port, &[]);
    let audit = d.path().join("audit.jsonl");
    let mut plan = Plan::new(&d.edge_setup.url("stall"));
    plan.deadline = Duration::from_secs(1);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(
        call_tool(&plan, trace, None),
        Outcome::Deadline,
        "the backend never answers"
    );
    let wait = Duration::from_secs(25);
    let id = poll("the request reached the backend", wait, || {
        backend.request_ids(Some("stall")).into_iter().next()
    });
    poll("the edge cancelled the backend request", wait, || {
        (backend.peer_closed("stall") == 1).then_some(())
    });
    let lines = poll("an audit line for the abandoned call", wait, || {
        audit_by_request(&audit)
            .remove(&id)
            .filter(|lines| lines.len() == 2)
    });
    assert_eq!(lines[0]["outcome"], "dispatched", "{lines:#?}");
    let last = &lines[1];
    assert_eq!(last["outcome"], "client_gone", "{lines:#?}");
    assert_eq!(last["decision"], "allow", "{lines:#?}");
    assert_eq!(last["mcp_method"], "tools/call", "{lines:#?}");
    assert!(
        last.get("http_status").is_none(),
        "the client got no status: {lines:#?}"
    );
    assert_eq!(last["trace_id"], trace);
}
