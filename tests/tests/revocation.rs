//! `underpass-certs revoke` takes effect at a running edge: the revoked connector's live
//! tunnel is closed and its reconnections are refused at the handshake, also after the list
//! file is deleted (the last good list stays in force); the same for a bulk rule
//! (`revoke --connector N --before now`).

use std::time::Duration;

use underpass_tests::http;
use underpass_tests::identity::{certs_ok, REVOKING_EDGE};
use underpass_tests::*;

#[test]
fn revoking_a_connector_closes_its_tunnel_and_refuses_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let mut d = Deployment::start_with(false, "demo", &backend_url, REVOKING_EDGE);
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 200);

    certs_ok(&["revoke"], &d.pki.dir, &["--name", "dc1"]);
    d.edge.wait_for_log(
        "closing tunnel: certificate revoked",
        Duration::from_secs(20),
    );
    // The connector keeps trying; every attempt now fails at the handshake.
    d.edge
        .wait_for_log("invalid peer certificate: Revoked", Duration::from_secs(30));
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(d.connector.alive());

    // The list deleted while the edge runs: the last good list stays in force (fail closed),
    // loudly, and the revoked connector keeps being refused.
    std::fs::remove_file(d.pki.dir.join("revoked.txt")).unwrap();
    d.edge
        .wait_for_log("the file is gone", Duration::from_secs(20));
    let refused = d
        .edge
        .log_text()
        .matches("invalid peer certificate: Revoked")
        .count();
    d.edge.wait_for_log_count(
        "invalid peer certificate: Revoked",
        refused + 2,
        Duration::from_secs(30),
    );
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let problems = r.json()["problems"].clone();
    assert_eq!(problems[0]["component"], "revocation_list", "{problems}");
    assert!(
        problems[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("last good list (1 serials)")),
        "{problems}"
    );
    // And on /metrics, for alerting.
    let metrics = http::get(&d.edge_setup.admin("/metrics")).unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let failures = text
        .lines()
        .find_map(|l| l.strip_prefix("underpass_revocation_list_reload_failures_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(failures.is_some_and(|n| n >= 1), "{text}");
    let stale = text
        .lines()
        .find_map(|l| l.strip_prefix("underpass_revocation_list_stale_seconds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(stale.is_some_and(|s| s > 0.0), "{text}");

    // A fresh certificate for the same connector name is accepted again.
    d.pki.reissue("connector", "dc1");
    d.connector.stop();
    d.connector = start_connector(d.path(), "connector2", &d.connector_config);
    d.edge_setup.wait_ready("demo", Duration::from_secs(30));
}

/// Incident response: `revoke --connector dc1 --before now` (a bulk rule, no serial) closes
/// the connector's tunnel and refuses every certificate of dc1 issued so far, also after the
/// list is deleted; a certificate issued afterwards is accepted.
#[test]
fn a_bulk_rule_revokes_everything_issued_before_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let mut d = Deployment::start_with(false, "demo", &backend_url, REVOKING_EDGE);
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 200);

    let out = certs_ok(
        &["revoke"],
        &d.pki.dir,
        &["--connector", "dc1", "--before", "now"],
    );
    assert!(out.contains("revoked every certificate of"), "{out}");
    let list = std::fs::read_to_string(d.pki.dir.join("revoked.txt")).unwrap();
    assert!(
        list.starts_with("before ") && list.trim_end().ends_with("/connector/dc1"),
        "{list}"
    );
    d.edge.wait_for_log(
        "closing tunnel: certificate revoked",
        Duration::from_secs(20),
    );
    d.edge
        .wait_for_log("invalid peer certificate: Revoked", Duration::from_secs(30));
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(d.connector.alive());

    // The list deleted: the rule stays in force (fail closed) and says so.
    std::fs::remove_file(d.pki.dir.join("revoked.txt")).unwrap();
    d.edge
        .wait_for_log("the file is gone", Duration::from_secs(20));
    let refused = d
        .edge
        .log_text()
        .matches("invalid peer certificate: Revoked")
        .count();
    d.edge.wait_for_log_count(
        "invalid peer certificate: Revoked",
        refused + 2,
        Duration::from_secs(30),
    );
    let r = http::get(&d.edge_setup.admin("/readyz")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let problems = r.json()["problems"].clone();
    assert_eq!(problems[0]["component"], "revocation_list", "{problems}");
    assert!(
        problems[0]["detail"].as_str().is_some_and(|d| d
            .contains("last good list (0 serials, 1 rules)")
            && d.contains("revoked.txt")),
        "{problems}"
    );

    // Re-issued after the rule's time: accepted.
    std::thread::sleep(Duration::from_millis(1100));
    d.pki.reissue("connector", "dc1");
    d.connector.stop();
    d.connector = start_connector(d.path(), "connector2", &d.connector_config);
    d.edge_setup.wait_ready("demo", Duration::from_secs(30));
}
