//! Keeps the benchmark instrument from rotting: runs `underpass-bench --smoke` (a second or
//! two of tiny cells against the real edge, connector and echo backend) and checks the shape
//! of its JSON. No wall-clock or performance threshold: benchmarks are not tests.

use std::process::Command;

use serde_json::Value;
use underpass_tests::show;

/// Runs `underpass-bench ARGS --json FILE`, which must succeed (a failed measurement exits
/// non-zero); returns its stdout and the JSON it wrote.
fn run_bench(args: &[&str]) -> (String, Value) {
    let scratch = tempfile::tempdir().unwrap();
    let json_path = scratch.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_underpass-bench"))
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("run underpass-bench");
    assert!(
        out.status.success(),
        "underpass-bench {args:?} failed:\n{}",
        show(&out)
    );
    let text = std::fs::read_to_string(&json_path).expect("JSON written");
    let json = serde_json::from_str(&text).expect("valid JSON");
    (String::from_utf8_lossy(&out.stdout).into_owned(), json)
}

#[test]
fn bench_smoke_run_writes_every_figure() {
    let (stdout, v) = run_bench(&["--smoke"]);
    assert!(stdout.contains("| era |"), "no table printed:\n{stdout}");

    let rows = v["latency"].as_array().expect("latency rows");
    assert!(!rows.is_empty(), "{v}");
    for path in ["direct", "tunnel"] {
        for era in ["legacy", "modern"] {
            let cells: Vec<&Value> = rows
                .iter()
                .filter(|r| r["path"] == path && r["era"] == era)
                .collect();
            assert!(!cells.is_empty(), "no {path} {era} rows: {v}");
            for r in cells {
                for key in [
                    "concurrency",
                    "payload_bytes",
                    "p50_us",
                    "p90_us",
                    "p99_us",
                    "max_us",
                    "rps",
                ] {
                    assert!(r[key].is_number(), "{key} missing in {r}");
                }
                assert!(r["rps"].as_f64().unwrap() > 0.0, "no requests served: {r}");
                assert!(r["p50_us"].as_f64().unwrap() > 0.0, "{r}");
                assert!(
                    r["p50_us"].as_f64().unwrap() <= r["max_us"].as_f64().unwrap(),
                    "{r}"
                );
            }
        }
    }
    let payloads: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["payload_bytes"].as_u64())
        .collect();
    assert!(
        payloads.contains(&100) && payloads.contains(&(1024 * 1024)),
        "{v}"
    );

    assert!(
        rows.iter()
            .all(|r| r["path"] == "direct" || r["path"] == "tunnel"),
        "latency holds direct and tunnel rows only: {v}"
    );

    // The reference path (two chained byte-copying TCP relays), 100 B only, kept apart.
    let relay = v["reference_relay"]
        .as_array()
        .expect("reference_relay rows");
    for era in ["legacy", "modern"] {
        assert!(
            relay.iter().any(|r| r["era"] == era),
            "no relay {era} rows: {v}"
        );
    }
    for r in relay {
        assert_eq!(r["path"], "relay", "{r}");
        assert_eq!(r["payload_bytes"].as_u64(), Some(100), "{r}");
        for key in ["concurrency", "p50_us", "p99_us", "max_us", "rps"] {
            assert!(r[key].is_number(), "{key} missing in {r}");
        }
        assert!(r["rps"].as_f64().unwrap() > 0.0, "no requests relayed: {r}");
        assert_eq!(r["errors"].as_u64(), Some(0), "relay errors: {r}");
        for hop in ["relay1", "relay2"] {
            assert!(
                r["cpu_us_per_req"][hop].is_number(),
                "{hop} CPU missing in {r}"
            );
        }
    }

    // What `redact = ["secrets"]` costs: both rules, both sizes, each with a loss figure.
    let cells = v["mediation"]["cells"].as_array().expect("mediation cells");
    for rule in ["none", "redact"] {
        for payload in [100, 1024 * 1024] {
            let cell = cells.iter().find(|c| {
                c["rule"] == rule && c["payload"] == payload && c["generator"] == "bench"
            });
            let cell = cell.unwrap_or_else(|| panic!("no mediation {rule} {payload} cell: {v}"));
            assert!(cell["rps"].as_f64().unwrap() > 0.0, "{cell}");
            assert_eq!(cell["errors"].as_u64(), Some(0), "{cell}");
        }
    }
    let loss = &v["mediation"]["loss_pct_1mib"][0];
    assert_eq!(loss["generator"], "bench", "{v}");
    assert!(
        loss["loss_pct"].is_number() && loss["limit_pct"] == 30.0,
        "{loss}"
    );

    // Small calls measured beside a background load of 1 MiB calls, both paths, both eras.
    let mixed = v["mixed"].as_array().expect("mixed rows");
    for era in ["legacy", "modern"] {
        for path in ["direct", "tunnel"] {
            assert!(
                mixed.iter().any(|r| r["era"] == era && r["path"] == path),
                "no mixed {path} {era} row: {v}"
            );
        }
    }
    for r in mixed {
        assert_eq!(r["payload_bytes"].as_u64(), Some(100), "{r}");
        assert_eq!(r["concurrency"].as_u64(), Some(1), "{r}");
        assert_eq!(r["bulk_workers"].as_u64(), Some(16), "{r}");
        assert!(r["bulk_rps"].is_number(), "bulk_rps missing in {r}");
        assert!(
            r["rps"].as_f64().unwrap() > 0.0,
            "no small calls served: {r}"
        );
        assert_eq!(r["errors"].as_u64(), Some(0), "small-call errors: {r}");
        assert_eq!(r["bulk_errors"].as_u64(), Some(0), "bulk errors: {r}");
    }

    let sessions = v["sessions"].as_array().expect("sessions rows");
    assert!(sessions.len() >= 2, "{v}");
    for s in sessions {
        for key in ["count", "edge_rss_kib", "connector_rss_kib"] {
            assert!(s[key].is_u64(), "{key} missing in {s}");
        }
        assert!(s["edge_rss_kib"].as_u64().unwrap() > 0, "{s}");
    }
    assert!(
        sessions.iter().any(|s| s["count"].as_u64() > Some(0)),
        "{v}"
    );

    assert!(
        v["restart_to_ready_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{v}"
    );
    assert!(
        v["kill_restart_to_ready_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "a restart after SIGKILL is timed too: {v}"
    );

    // Failover: a connector SIGKILLed beside another; its loss detected, nothing failing after.
    let failover = v["failover"].as_array().expect("failover runs");
    assert!(!failover.is_empty(), "{v}");
    for r in failover {
        assert!(r["detect_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{r}");
        assert!(r["calls"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert_eq!(r["failed_started_after_settled"], 0, "{r}");
    }
    // Recovery (root: the suite runs as root): cold start on a UDP-blocked network, then
    // drops and lifts under load; no call fails across a return to QUIC.
    assert!(v["recovery_error"].is_null(), "{v}");
    let recovery = v["recovery"].as_array().expect("recovery runs");
    assert!(recovery.len() >= 3, "{v}");
    assert!(
        recovery[0]["first_call_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{v}"
    );
    for r in &recovery[1..] {
        for key in ["drop_to_tcp_ms", "lift_to_quic_ms"] {
            assert!(r[key].as_f64().is_some_and(|ms| ms > 0.0), "{key}: {r}");
        }
        assert_eq!(r["after_lift"]["failed"], 0, "{r}");
        assert!(r["while_dropped"]["calls"].as_u64() > Some(0), "{r}");
    }

    assert_federation(&stdout, &v);
}

/// The federation phase: `tools/list` over ten services, cold and warm, beside the backend
/// direct and one service through the tunnel, each answer checked (220 tools, 22 direct); the
/// wrk cross-check when wrk is installed; the issue's two targets evaluated.
fn assert_federation(stdout: &str, v: &Value) {
    assert!(
        stdout.contains("## Federation"),
        "no federation table:\n{stdout}"
    );
    let f = &v["federation"];
    assert_eq!(f["services"], 10, "{f}");
    assert_eq!(f["tools_per_service"], 22, "{f}");
    let cells = f["cells"].as_array().expect("federation cells");
    for name in ["direct", "one-service", "mcp-cold", "mcp-warm"] {
        let c = cells
            .iter()
            .find(|c| c["cell"] == name && c["generator"] == "bench")
            .unwrap_or_else(|| panic!("no {name} cell: {f}"));
        assert!(c["requests"].as_u64() > Some(0), "{c}");
        assert_eq!(c["errors"], 0, "{c}");
        assert!(c["error"].is_null(), "{c}");
        for key in ["p50_us", "p90_us", "p99_us", "rps"] {
            assert!(c[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {c}");
        }
        if name != "direct" {
            assert!(c["cpu_us_per_req"]["edge"].is_number(), "{c}");
            assert!(c["edge_rss_kib"].as_u64() > Some(0), "{c}");
        }
    }
    let wrk_found = Command::new("wrk").arg("--version").output().is_ok();
    if wrk_found {
        for name in ["mcp-cold", "mcp-warm"] {
            let c = cells
                .iter()
                .find(|c| c["cell"] == name && c["generator"] == "wrk")
                .unwrap_or_else(|| panic!("no wrk {name} cell: {f}"));
            assert!(c["requests"].as_u64() > Some(0), "{c}");
            assert_eq!(c["errors"], 0, "{c}");
            assert!(
                c["command"]
                    .as_str()
                    .is_some_and(|s| s.contains("tools_list.lua")),
                "{c}"
            );
        }
    }
    let targets = f["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2, "{f}");
    for t in targets {
        assert!(t["met"].is_boolean() && t["limit"].is_number(), "{t}");
    }
}

/// The sessions phase as README runs it: 10,000 idle legacy sessions, then 10,000 that each
/// hold a GET event stream. One principal holding that many streams meets every per-caller
/// and per-tunnel cap of the edge and the connector; the bench's stack must lift them all, or
/// the figure README publishes cannot be measured (it once stopped at the connector's 256 per
/// principal, then at the edge's 4096 exchanges per tunnel).
#[test]
fn bench_sessions_phase_holds_ten_thousand_event_streams() {
    let (_, v) = run_bench(&[
        "--phases",
        "sessions",
        "--sessions",
        "10000",
        "--session-streams",
    ]);
    assert!(v["sessions_error"].is_null(), "{v}");
    let sessions = v["sessions"].as_array().expect("sessions rows");
    for streams in [false, true] {
        let row = sessions
            .iter()
            .find(|s| s["count"] == 10000 && s["event_streams"] == streams)
            .unwrap_or_else(|| panic!("no row of 10,000 sessions, event streams {streams}: {v}"));
        for key in ["edge_rss_kib", "connector_rss_kib"] {
            assert!(row[key].as_u64().is_some_and(|k| k > 0), "{key}: {row}");
        }
        assert!(row["per_session_bytes"].is_number(), "{row}");
    }
}

/// A few seconds of the soak (`--soak`): every kind of load runs, the connector is restarted
/// and the policy reloaded, and every figure over time is reported. No threshold on the
/// figures: the instrument must work; whether something grows is read from a long run.
#[test]
fn bench_soak_smoke_reports_every_figure_over_time() {
    // A failed soak (an operation failing outside a connector restart, a reload the edge did
    // not log, a figure a process did not report, a session left behind) exits non-zero.
    let (stdout, v) = run_bench(&["--soak", "6s"]);
    assert!(stdout.contains("## Soak"), "no soak table:\n{stdout}");
    assert!(
        stdout.contains("drift per hour"),
        "no drift table:\n{stdout}"
    );

    let soak = &v["soak"];
    assert_eq!(soak["failures"].as_array().map(Vec::len), Some(0), "{soak}");

    // A row per interval (6 s in rows of 1.2 s), each with both processes' figures.
    let rows = soak["intervals"].as_array().expect("interval rows");
    assert!(rows.len() >= 4, "{soak}");
    for r in rows {
        for process in ["edge", "connector"] {
            let f = &r["sample"][process];
            for key in ["rss_kib", "fds", "threads", "tasks"] {
                assert!(
                    f[key].as_u64().is_some_and(|n| n > 0),
                    "{process} {key} missing in {r}"
                );
            }
        }
        assert!(r["sample"]["edge_sessions"].is_u64(), "{r}");
        assert!(r["operations"]["small_modern"]["ok"].is_u64(), "{r}");
    }
    let samples = soak["samples"].as_array().expect("samples");
    assert!(samples.len() > rows.len(), "samples between rows: {soak}");

    // Every kind of load ran, and none failed outside a connector restart.
    for kind in [
        "small_legacy",
        "small_modern",
        "large",
        "session",
        "stream",
        "denied",
        "delete",
    ] {
        let k = &soak["totals"][kind];
        assert!(k["ok"].as_u64().is_some_and(|n| n > 0), "no {kind}: {soak}");
        assert_eq!(k["errors"].as_u64(), Some(0), "{kind} failed: {k}");
        assert!(k["latency"]["p99_us"].is_number(), "{kind}: {k}");
    }

    // The connector was restarted (a new process, sampled too) and the policy reloaded.
    let restarts = soak["restarts"].as_array().expect("restarts");
    assert!(!restarts.is_empty(), "{soak}");
    let pids: std::collections::BTreeSet<u64> = samples
        .iter()
        .filter_map(|s| s["connector"]["pid"].as_u64())
        .collect();
    assert!(pids.len() >= 2, "one connector sampled throughout: {soak}");
    let reloads = soak["reloads"].as_u64().unwrap_or(0);
    assert!(reloads > 0, "{soak}");
    assert!(soak["reloads_seen"].as_u64() >= Some(reloads), "{soak}");

    // The drift of each figure of both processes, per hour.
    for process in ["edge", "connector"] {
        for figure in ["rss_mib", "fds", "threads", "tasks"] {
            assert!(
                soak["drift"][process][figure]["per_hour"].is_number(),
                "no {process} {figure} drift: {soak}"
            );
        }
    }
    // Every client deleted its sessions: the edge holds none afterwards.
    assert_eq!(
        soak["idle_after"]["edge_sessions"].as_u64(),
        Some(0),
        "{soak}"
    );
}

/// The QUIC reference paths of `--peers` (`underpass-quic-relay`, a stream per connection and
/// an exchange per request) carry HTTP to the echo backend and back, and, as the tunnel does,
/// refuse an exit whose certificate is not a connector's.
#[test]
fn quic_relay_carries_requests_and_refuses_a_wrong_role() {
    relay_round_trip(&[]);
}

#[test]
fn quic_exchange_carries_requests_and_refuses_a_wrong_role() {
    relay_round_trip(&["--per-request"]);
}

/// The experiment's variant: the exit drives its backend connections itself.
#[test]
fn quic_exchange_with_a_direct_client_carries_requests() {
    relay_round_trip(&["--per-request", "--direct-client"]);
}

/// The lab's design: HTTP parsed at the entry only, spliced at the exit.
#[test]
fn quic_splice_carries_requests_and_refuses_a_wrong_role() {
    relay_round_trip(&["--splice"]);
}

fn relay_round_trip(mode: &[&str]) {
    use std::io::{Read, Write};
    use std::time::Duration;
    use underpass_tests::{bin, free_port, Pki, Proc};

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    pki.issue("connector", "pc");
    pki.issue("client", "someone");
    let backend = format!("127.0.0.1:{}", free_port());
    let mut echo = Proc::spawn(
        "echo",
        dir.path(),
        Command::new(bin("underpass-echo-backend")).args(["--listen", &backend]),
    );
    echo.wait_for_log("listening on", Duration::from_secs(20));
    let creds = |name: &str| {
        mode.iter()
            .map(|m| (*m).to_owned())
            .chain(pki.credential_args(name))
    };
    let tunnel = format!("127.0.0.1:{}", free_port());
    let public = format!("127.0.0.1:{}", free_port());
    let mut entry = Proc::spawn(
        "entry",
        dir.path(),
        Command::new(bin("underpass-quic-relay"))
            .args(["entry", "--tunnel", &tunnel, "--listen", &public])
            .args(creds("edge")),
    );

    // A client certificate is no connector's: the handshake fails and the exit says so.
    let wrong = Command::new(bin("underpass-quic-relay"))
        .args(["exit", "--tunnel", &tunnel, "--to", &backend])
        .args(creds("someone"))
        .output()
        .unwrap();
    assert!(
        !wrong.status.success() && show(&wrong).contains("invalid peer certificate"),
        "{}",
        show(&wrong)
    );

    let mut exit = Proc::spawn(
        "exit",
        dir.path(),
        Command::new(bin("underpass-quic-relay"))
            .args(["exit", "--tunnel", &tunnel, "--to", &backend])
            .args(creds("pc")),
    );
    exit.wait_for_log("connected to", Duration::from_secs(20));
    entry.wait_for_log("listening on", Duration::from_secs(20));

    // The request of `tests/wrk/tools_call.lua` (2026-07-28, stateless).
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"through quic"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"test","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    // Two requests on one connection (the second closes it): the exit's backend connection
    // is used again for the second.
    let request = |close: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n\
             mcp-method: tools/call\r\nmcp-name: echo\r\n{close}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut s = std::net::TcpStream::connect(&public).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request("").as_bytes()).unwrap();
    s.write_all(request("connection: close\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert_eq!(answer.matches("through quic").count(), 2, "{answer}");
    assert_eq!(answer.matches(r#""id":7"#).count(), 2, "{answer}");
}
