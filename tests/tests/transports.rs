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
