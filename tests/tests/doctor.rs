//! `underpass-edge doctor` and `underpass-connector doctor` with the real binaries: a good
//! setup passes (exit 0, PASS for QUIC, TCP, the certificate, the backend and the clock); each
//! broken piece is one FAIL row with what to do (exit 1): a dead edge port, an unresolvable
//! name, an unreachable backend, an expired or wrong-role certificate; the edge's ports are
//! "in use" while it runs. And the connector's `/readyz` follows its checks: 503 with the
//! backend problem listed while the backend is down, 200 once it is up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use underpass_pki::issue::{issue_with, Validity};
use underpass_pki::time::{Duration as Span, OffsetDateTime};
use underpass_proto::identity::Role;
use underpass_tests::*;

const EDGE_EXTRA: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n";

/// Runs a doctor; its exit code and stdout (the table).
fn doctor(binary: &str, config: &Path) -> (i32, String) {
    let out = Command::new(bin(binary))
        .args(["doctor", "--config"])
        .arg(config)
        .output()
        .expect("run doctor");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), table)
}

/// The row of `check` in a table: (result, detail).
fn row<'t>(table: &'t str, check: &str) -> (&'t str, &'t str) {
    table
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(check)?;
            // The name column is padded: the row's name is exactly `check`.
            if !rest.starts_with("  ") {
                return None;
            }
            let rest = rest.trim_start();
            let (result, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((result, detail.trim_start()))
        })
        .unwrap_or_else(|| panic!("no row {check:?} in:\n{table}"))
}

fn connector_config(
    dir: &Path,
    file: &str,
    pki: &Pki,
    edges: &[String],
    services: &[(&str, &str)],
) -> PathBuf {
    connector_config_with(
        dir,
        file,
        (&pki.cert("dc1"), &pki.dir.join("dc1.key")),
        &pki.ca(),
        edges,
        services,
    )
}

fn connector_config_with(
    dir: &Path,
    file: &str,
    (cert, key): (&Path, &Path),
    ca: &Path,
    edges: &[String],
    services: &[(&str, &str)],
) -> PathBuf {
    let path = write_connector_config(
        dir,
        file,
        "dc1",
        1,
        ConnectorPki { cert, key, ca },
        services,
    );
    set_connector_edges(&path, edges);
    path
}

#[test]
fn doctor_passes_a_good_setup_and_names_each_broken_piece() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (_backend, backend_url) = start_demo_server(dir);
    let pki = Pki::init(&dir.join("pki"));
    pki.issue("edge", "edge");
    pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(dir, false, &[("demo", &["dc1"])], EDGE_EXTRA);

    // The edge's config, before it runs: everything binds.
    let (code, table) = doctor("underpass-edge", &setup.config);
    assert_eq!(code, 0, "{table}");
    assert_eq!(row(&table, "tunnel certificate").0, "PASS", "{table}");
    assert_eq!(row(&table, "tunnel certificate chain").0, "PASS", "{table}");
    assert_eq!(row(&table, "tunnel listen udp").0, "PASS", "{table}");
    assert_eq!(row(&table, "policy").0, "PASS", "{table}");

    let _edge = setup.start(dir);
    // While it runs: its ports are taken.
    let (code, table) = doctor("underpass-edge", &setup.config);
    assert_eq!(code, 1, "{table}");
    let (result, detail) = row(&table, "tunnel listen udp");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains("in use (is an edge already running?)"),
        "{table}"
    );
    assert_eq!(row(&table, "clients listen").0, "FAIL", "{table}");

    // A good connector config: every row passes.
    let edge = format!("127.0.0.1:{}", setup.tunnel_port);
    let good = connector_config(
        dir,
        "good.toml",
        &pki,
        std::slice::from_ref(&edge),
        &[("demo", &backend_url)],
    );
    let (code, table) = doctor("underpass-connector", &good);
    assert_eq!(code, 0, "{table}");
    for check in [
        "config".to_owned(),
        "certificate".to_owned(),
        "certificate expiry".to_owned(),
        "certificate key".to_owned(),
        "certificate chain".to_owned(),
        format!("edge {edge} dns"),
        format!("edge {edge} quic"),
        format!("edge {edge} tcp"),
        format!("edge {edge} clock"),
        "service demo backend".to_owned(),
    ] {
        assert_eq!(row(&table, &check).0, "PASS", "{check}:\n{table}");
    }
    assert!(
        row(&table, &format!("edge {edge} quic"))
            .1
            .contains("accepted"),
        "{table}"
    );
    // The probe is never a tunnel that serves: the edge still has no connector.
    assert!(setup.tunnels().is_empty(), "{:?}", setup.tunnels());

    // A dead edge port, an unresolvable name, an unreachable backend: one FAIL row each.
    let dead = format!("127.0.0.1:{}", free_port());
    let nowhere = "no-such-edge.invalid:7844".to_owned();
    let down = format!("http://127.0.0.1:{}/mcp", free_port());
    let broken = connector_config(
        dir,
        "broken.toml",
        &pki,
        &[edge.clone(), dead.clone(), nowhere.clone()],
        &[("demo", &backend_url), ("gone", &down)],
    );
    let (code, table) = doctor("underpass-connector", &broken);
    assert_eq!(code, 1, "{table}");
    assert_eq!(
        row(&table, &format!("edge {edge} quic")).0,
        "PASS",
        "{table}"
    );
    let (result, detail) = row(&table, &format!("edge {dead} tcp"));
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("nothing listens on tcp port"), "{table}");
    let (result, detail) = row(&table, &format!("edge {dead} quic"));
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("udp port"), "{table}");
    let (result, detail) = row(&table, &format!("edge {nowhere} dns"));
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains("cannot resolve") && detail.contains("`edges`"),
        "{table}"
    );
    let (result, detail) = row(&table, "service gone backend");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("start the backend"), "{table}");
    assert_eq!(row(&table, "service demo backend").0, "PASS", "{table}");

    // An expired certificate of the right CA and name: expiry fails, the edge refuses it.
    let expired_dir = dir.join("expired");
    std::fs::create_dir(&expired_dir).unwrap();
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(pki.dir.join(f), expired_dir.join(f)).unwrap();
    }
    let now = OffsetDateTime::now_utc();
    let old = issue_with(
        &expired_dir,
        Role::Connector,
        "dc1",
        &[],
        Validity {
            not_before: now - Span::days(2),
            not_after: now - Span::days(1),
        },
    )
    .unwrap();
    let expired = connector_config_with(
        dir,
        "expired.toml",
        (&old.cert_path, &old.key_path),
        &pki.ca(),
        std::slice::from_ref(&edge),
        &[("demo", &backend_url)],
    );
    let (code, table) = doctor("underpass-connector", &expired);
    assert_eq!(code, 1, "{table}");
    let (result, detail) = row(&table, "certificate expiry");
    assert_eq!(result, "FAIL", "{table}");
    assert!(
        detail.contains("expired at") && detail.contains("enroll again"),
        "{table}"
    );
    assert_eq!(row(&table, "certificate chain").0, "PASS", "{table}");

    // The edge's certificate configured as the connector's: the wrong role.
    let wrong = connector_config_with(
        dir,
        "wrong-role.toml",
        (&pki.cert("edge"), &pki.dir.join("edge.key")),
        &pki.ca(),
        std::slice::from_ref(&edge),
        &[("demo", &backend_url)],
    );
    let (code, table) = doctor("underpass-connector", &wrong);
    assert_eq!(code, 1, "{table}");
    let (result, detail) = row(&table, "certificate");
    assert_eq!(result, "FAIL", "{table}");
    assert!(detail.contains("connector certificate"), "{table}");

    // A config that does not load: exit 2, one row.
    let garbage = dir.join("garbage.toml");
    std::fs::write(&garbage, "name = [").unwrap();
    let (code, table) = doctor("underpass-connector", &garbage);
    assert_eq!(code, 2, "{table}");
    assert_eq!(row(&table, "config").0, "FAIL", "{table}");
}

/// `/readyz` of `[health]`, polled until `want` or `timeout`; the last answer.
fn readyz_until(
    port: u16,
    want: impl Fn(u16, &serde_json::Value) -> bool,
    timeout: Duration,
) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + timeout;
    let mut last = (0, serde_json::Value::Null);
    while Instant::now() < deadline {
        if let Ok(r) = http::get(&format!("http://127.0.0.1:{port}/readyz")) {
            last = (r.status, r.json());
            if want(last.0, &last.1) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("/readyz never matched within {timeout:?}; last: {last:?}");
}

#[test]
fn connector_readiness_fails_while_its_backend_is_down_and_recovers() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let pki = Pki::init(&dir.join("pki"));
    pki.issue("edge", "edge");
    pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(dir, false, &[("demo", &["dc1"])], EDGE_EXTRA);
    let _edge = setup.start(dir);
    let backend_port = free_port();
    let backend_url = format!("http://127.0.0.1:{backend_port}/mcp");
    let health_port = free_port();
    let config = connector_config(
        dir,
        "connector.toml",
        &pki,
        &[format!("127.0.0.1:{}", setup.tunnel_port)],
        &[("demo", &backend_url)],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[health]\nlisten = \"127.0.0.1:{health_port}\"\n"),
    )
    .unwrap();
    let mut connector = Proc::spawn(
        "connector",
        dir,
        Command::new(bin("underpass-connector"))
            .arg("--config")
            .arg(&config)
            .env("UNDERPASS_DOCTOR_RECHECK_SECS", "1")
            .env("RUST_LOG", "info"),
    );

    // The tunnel comes up (the checks do not hold it back), but the backend is down.
    setup.wait_ready("demo", Duration::from_secs(30));
    let (status, body) = readyz_until(
        health_port,
        |_, b| b["checked"] == true,
        Duration::from_secs(30),
    );
    assert_eq!(status, 503, "{body}");
    let problems = body["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems.iter().any(|p| p["check"] == "service demo backend"
            && p["todo"]
                .as_str()
                .is_some_and(|t| t.contains("start the backend"))),
        "{body}"
    );
    let live = body["tunnels"][format!("127.0.0.1:{}", setup.tunnel_port)].as_u64();
    assert!(
        live.is_some_and(|n| n >= 1),
        "the tunnel is up, readiness still fails: {body}"
    );
    connector.wait_for_log("pre-flight check", Duration::from_secs(10));
    assert!(
        connector.log_text().contains("service demo backend"),
        "the problem is logged"
    );
    let healthz = http::get(&format!("http://127.0.0.1:{health_port}/healthz")).unwrap();
    assert_eq!(healthz.status, 200);
    // What an exec probe runs (the listener is loopback-only): not ready, but live.
    let probe = |live: bool| {
        let mut command = Command::new(bin("underpass-connector"));
        command.arg("health").arg("--config").arg(&config);
        if live {
            command.arg("--live");
        }
        command.output().unwrap()
    };
    let not_ready = probe(false);
    assert_eq!(not_ready.status.code(), Some(1), "{not_ready:?}");
    assert!(
        String::from_utf8_lossy(&not_ready.stdout).contains("service demo backend"),
        "{not_ready:?}"
    );
    assert_eq!(probe(true).status.code(), Some(0));

    // The backend comes up: readiness follows within a re-check.
    let mut backend = Proc::spawn(
        "demo-server",
        dir,
        Command::new(bin("underpass-demo-server"))
            .args(["--listen", &format!("127.0.0.1:{backend_port}")]),
    );
    backend.wait_for_log("listening on", Duration::from_secs(20));
    let (status, body) = readyz_until(health_port, |s, _| s == 200, Duration::from_secs(30));
    assert_eq!(body["status"], "ready", "{status} {body}");
    assert_eq!(body["problems"], serde_json::json!([]), "{body}");
    connector.wait_for_log("pre-flight check passes again", Duration::from_secs(10));
    let ready = probe(false);
    assert_eq!(ready.status.code(), Some(0), "{ready:?}");

    // Gone: the probe fails instead of hanging; without [health] it says what to add.
    drop(connector);
    assert_eq!(probe(true).status.code(), Some(1));
    let bare = connector_config(
        dir,
        "bare.toml",
        &pki,
        &[format!("127.0.0.1:{}", setup.tunnel_port)],
        &[("demo", &backend_url)],
    );
    let out = Command::new(bin("underpass-connector"))
        .args(["health", "--config"])
        .arg(&bare)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[health]"),
        "{out:?}"
    );
}
