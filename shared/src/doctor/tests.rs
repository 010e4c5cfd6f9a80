use std::path::Path;

use underpass_pki::issue::{issue, issue_with, Validity};
use underpass_pki::time::{Duration, OffsetDateTime};
use underpass_proto::identity::Role;

use super::cert::{check_pair, expiry_check, Expect, ExpectIdentity};
use super::*;

fn connector(name: &str) -> Expect<'_> {
    Expect {
        identity: Some(ExpectIdentity {
            role: Role::Connector,
            trust_domain: "underpass.local",
            name: Some(name),
        }),
        renew: "renew it",
    }
}

fn status_of(checks: &[Check], name: &str) -> Status {
    checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
}

#[test]
fn exit_code_fails_only_on_a_failure() {
    let pass = Check::pass("a", "ok");
    let warn = Check::warn("b", "soon", "renew");
    let fail = Check::fail("c", "broken", "fix it");
    assert_eq!(exit_code(&[pass.clone(), warn.clone()]), 0);
    assert_eq!(exit_code(&[pass, warn, fail.clone()]), 1);
    assert_eq!(failures(std::slice::from_ref(&fail)), vec![&fail]);
    assert_eq!(exit_code(&[]), 0);
}

#[test]
fn the_table_has_a_row_per_check_with_what_to_do_on_one_line() {
    let table = render_table(&[
        Check::pass("config", "loaded"),
        Check::fail("edge x quic", "no answer\nwithin 3s", "open UDP"),
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CHECK"), "{table}");
    assert!(lines[0].contains("RESULT") && lines[0].contains("DETAIL / WHAT TO DO"));
    assert!(lines[1].starts_with("config") && lines[1].contains("PASS"));
    assert_eq!(
        lines[2], "edge x quic  FAIL    no answer within 3s; open UDP",
        "{table}"
    );
    assert!(table.contains("1 passed, 0 warnings, 1 failed, 0 skipped"));
}

#[test]
fn expiry_warns_in_the_last_third_and_fails_outside_the_window() {
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let end = start + Duration::days(30);
    let at = |days: i64| start + Duration::days(days);
    assert_eq!(
        expiry_check("c", start, end, at(1), "r").status,
        Status::Pass
    );
    assert_eq!(
        expiry_check("c", start, end, at(19), "r").status,
        Status::Pass
    );
    let warn = expiry_check("c", start, end, at(21), "r");
    assert_eq!(warn.status, Status::Warn);
    assert!(warn.detail.contains("9d"), "{warn:?}");
    let expired = expiry_check("c", start, end, at(31), "renew it");
    assert_eq!(expired.status, Status::Fail);
    assert!(expired.detail.contains("expired"));
    assert_eq!(expired.todo, "renew it");
    let early = expiry_check("c", start, end, at(-1), "r");
    assert_eq!(early.status, Status::Fail);
    assert!(early.detail.contains("clock"), "{early:?}");
}

fn pki(dir: &Path) {
    underpass_pki::ca::init(dir, "underpass.local").unwrap();
}

#[test]
fn a_good_connector_pair_passes_every_row() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let c = issue(dir.path(), Role::Connector, "dc1", &[]).unwrap();
    let checks = check_pair(
        "certificate",
        &c.cert_path,
        &c.key_path,
        Some(&dir.path().join("ca.crt")),
        &connector("dc1"),
        OffsetDateTime::now_utc(),
    );
    assert_eq!(checks.len(), 4, "{checks:?}");
    assert!(
        checks.iter().all(|c| c.status == Status::Pass),
        "{checks:?}"
    );
    assert!(checks[0].detail.contains("connector/dc1"), "{checks:?}");
}

#[test]
fn wrong_role_wrong_name_wrong_key_and_wrong_ca_each_fail_their_row() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    pki(other.path());
    let ca = dir.path().join("ca.crt");
    let now = OffsetDateTime::now_utc();

    let edge = issue(dir.path(), Role::Edge, "edge1", &[]).unwrap();
    let checks = check_pair(
        "certificate",
        &edge.cert_path,
        &edge.key_path,
        Some(&ca),
        &connector("dc1"),
        now,
    );
    assert_eq!(status_of(&checks, "certificate"), Status::Fail);
    assert!(checks[0].todo.contains("connector"), "{checks:?}");

    let c = issue(dir.path(), Role::Connector, "dc2", &[]).unwrap();
    let checks = check_pair(
        "certificate",
        &c.cert_path,
        &c.key_path,
        Some(&ca),
        &connector("dc1"),
        now,
    );
    assert_eq!(status_of(&checks, "certificate"), Status::Fail);
    assert!(checks[0].todo.contains("name = \"dc2\""), "{checks:?}");

    let d = issue(dir.path(), Role::Connector, "dc3", &[]).unwrap();
    let checks = check_pair(
        "certificate",
        &c.cert_path,
        &d.key_path,
        Some(&ca),
        &connector("dc2"),
        now,
    );
    assert_eq!(status_of(&checks, "certificate key"), Status::Fail);

    let foreign = issue(other.path(), Role::Connector, "dc1", &[]).unwrap();
    let checks = check_pair(
        "certificate",
        &foreign.cert_path,
        &foreign.key_path,
        Some(&ca),
        &connector("dc1"),
        now,
    );
    assert_eq!(status_of(&checks, "certificate chain"), Status::Fail);
    assert_eq!(status_of(&checks, "certificate"), Status::Pass);
}

#[test]
fn an_expired_pair_fails_expiry_only() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let now = OffsetDateTime::now_utc();
    let c = issue_with(
        dir.path(),
        Role::Connector,
        "dc1",
        &[],
        Validity {
            not_before: now - Duration::days(2),
            not_after: now - Duration::days(1),
        },
    )
    .unwrap();
    let checks = check_pair(
        "certificate",
        &c.cert_path,
        &c.key_path,
        Some(&dir.path().join("ca.crt")),
        &connector("dc1"),
        now,
    );
    assert_eq!(status_of(&checks, "certificate expiry"), Status::Fail);
    assert_eq!(status_of(&checks, "certificate chain"), Status::Pass);
    assert_eq!(status_of(&checks, "certificate key"), Status::Pass);
}

#[test]
fn an_edge_certificate_chains_as_a_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let e = issue(dir.path(), Role::Edge, "edge1", &[]).unwrap();
    let expect = Expect {
        identity: Some(ExpectIdentity {
            role: Role::Edge,
            trust_domain: "underpass.local",
            name: None,
        }),
        renew: "r",
    };
    let checks = check_pair(
        "tunnel certificate",
        &e.cert_path,
        &e.key_path,
        Some(&dir.path().join("ca.crt")),
        &expect,
        OffsetDateTime::now_utc(),
    );
    assert!(
        checks.iter().all(|c| c.status == Status::Pass),
        "{checks:?}"
    );
}

#[test]
fn a_missing_file_is_one_failed_row_naming_it() {
    let checks = check_pair(
        "certificate",
        Path::new("/nonexistent/c.crt"),
        Path::new("/nonexistent/c.key"),
        None,
        &connector("dc1"),
        OffsetDateTime::now_utc(),
    );
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].detail.contains("/nonexistent/c.crt"));
}
