//! Both protocol eras through the tunnel: the official conformance suite against a fixture
//! backend written with the official Python SDK, directly and through edge + connector.

use underpass_tests::*;

/// Every scenario that passes against the backend directly passes through Underpass, and the
/// scenarios the edge owns pass through Underpass in any case.
fn parity(spec: &str, edge_owned: &[&str]) {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_fixture(scratch.path(), &peers);
    let d = Deployment::start(false, "fixture", &backend_url);

    let (direct, _) = conformance(&peers, &backend_url, spec, &scratch.path().join("direct"));
    let (tunnel, failed) = conformance(
        &peers,
        &d.edge_setup.url("fixture"),
        spec,
        &scratch.path().join("tunnel"),
    );
    let lost: Vec<&String> = direct.difference(&tunnel).collect();
    assert!(
        lost.is_empty(),
        "{spec}: pass directly but fail through Underpass: {lost:?}\n(all failing through the tunnel: {failed:?})\nedge log:\n{}",
        d.edge.log_text()
    );
    for s in edge_owned {
        assert!(
            tunnel.contains(*s),
            "{spec}: edge-owned scenario {s} fails through Underpass: {failed:?}"
        );
    }
    assert!(
        direct.len() >= 30,
        "{spec}: the fixture passed only {} scenarios directly",
        direct.len()
    );
}

#[test]
fn conformance_2025_11_25_through_the_tunnel() {
    parity(
        "2025-11-25",
        &["dns-rebinding-protection", "server-session-lifecycle"],
    );
}

#[test]
fn conformance_2026_07_28_through_the_tunnel() {
    parity(
        "2026-07-28",
        &["dns-rebinding-protection", "http-header-validation"],
    );
}

/// A dual-era backend keeps serving legacy clients after a modern client discovered it: the
/// versions learned from `server/discover` only rule the stateless era, and a 2025-11-25 session
/// negotiated by `initialize` is never refused by the edge.
#[test]
fn legacy_clients_keep_working_after_a_modern_client_discovered_the_backend() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, url) = start_py_server(scratch.path(), &peers);
    let d = Deployment::start(true, "dual", &url);
    let url = d.edge_setup.url("dual");
    let modern = run_client(&d, &mut py_client(&peers, &url, &["smoke", "--mode=auto"]));
    assert_eq!(modern["protocolVersion"], "2026-07-28", "{modern}");
    for round in 0..2 {
        let legacy = run_client(
            &d,
            &mut py_client(
                &peers,
                &url,
                &["smoke", "--mode=legacy", "--message=old era"],
            ),
        );
        assert_eq!(
            legacy["protocolVersion"], "2025-11-25",
            "round {round}: {legacy}"
        );
        assert_eq!(legacy["echo"], "Echo: old era", "round {round}: {legacy}");
    }
}

/// The official Python SDK client in its auto mode finds the modern era through the tunnel
/// when the backend speaks it (and falls back to the legacy era for `server-everything`: see
/// `walking_skeleton::python_sdk_client_through_the_tunnel`).
#[test]
fn python_sdk_auto_mode_reaches_a_2026_07_28_backend() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, url) = start_py_server(scratch.path(), &peers);
    let d = Deployment::start(true, "modern", &url);
    let url = d.edge_setup.url("modern");
    let v = run_client(
        &d,
        &mut py_client(
            &peers,
            &url,
            &["smoke", "--mode=auto", "--message=modern era"],
        ),
    );
    assert_eq!(v["protocolVersion"], "2026-07-28", "{v}");
    assert_eq!(v["sessionId"], serde_json::Value::Null, "{v}");
    assert_eq!(v["echo"], "Echo: modern era", "{v}");
    assert_live_progress(&v);
}
