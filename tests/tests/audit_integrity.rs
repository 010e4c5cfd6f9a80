//! The audit trail tells the whole truth: every answer of the client listener has a record whose
//! outcome matches the status the client got; records that could not be written leave a gap
//! record in the chain (and `on_failure = "refuse"` stops serving while the log is down); a log
//! removed under the running edge is reopened; floods of refusals are summarized; retention
//! keeps the surviving files verifiable; signed checkpoints are shipped elsewhere, so a log cut
//! short together with its local checkpoints is still caught.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post};
use underpass_tests::recorder::Recorder;
use underpass_tests::*;

const API_KEY: &str = "up_audit_key_0123456789abcdef";

const POLICY: &str = r#"
[[allow]]
name = "bots-echo"
principals = ["apikey:ci-bot"]
services = ["rec"]
tools = ["echo"]
"#;

struct Setup {
    d: Deployment,
    backend: Recorder,
}

/// An edge with an API key, a policy and an audit log (`audit_keys` go into `[audit]`);
/// `prepare` runs in the deployment folder before the edge starts.
fn setup_with(audit_keys: &str, prepare: impl FnOnce(&Path)) -> Setup {
    let backend = Recorder::start();
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"ci-bot\"\nsha256 = \"{}\"\n\
         [policy]\nfile = \"policy.toml\"\n[audit]\nfile = \"audit.jsonl\"\n{audit_keys}\n",
        sha256_hex(API_KEY)
    );
    let d = Deployment::start_prepared(false, "rec", &backend.url, &extra, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
        prepare(dir);
    });
    Setup { d, backend }
}

fn setup(audit_keys: &str) -> Setup {
    setup_with(audit_keys, |_| {})
}

const AUTH: (&str, &str) = ("Authorization", "Bearer up_audit_key_0123456789abcdef");

fn echo() -> Value {
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}})
}

fn call(s: &Setup) -> http::Reply {
    mcp_post(&s.d.edge_setup.url("rec"), &[AUTH], &echo()).unwrap()
}

fn base(s: &Setup) -> String {
    format!("http://127.0.0.1:{}", s.d.edge_setup.client_port)
}

fn log_path(s: &Setup) -> PathBuf {
    s.d.path().join("audit.jsonl")
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn verify(file: &Path, args: &[&str]) -> Output {
    Command::new(bin("underpass-edge"))
        .args(["audit", "verify"])
        .arg(file)
        .args(args)
        .output()
        .unwrap()
}

/// Repeats `attempt` (at most every 100 ms) until it returns `Some`, for at most `within`.
fn poll<T>(what: &str, within: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_answer_has_a_record_whose_outcome_matches_its_status() {
    let mut s = setup("");
    let url = s.d.edge_setup.url("rec");
    let base = base(&s);
    let json_ct = ("Content-Type", "application/json");

    assert_eq!(call(&s).status, 200);
    let r = http::request("PUT", &url, &[AUTH, json_ct], echo().to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 405, "{}", r.text());
    let r = mcp_post(&format!("{base}/mcp/nope"), &[AUTH], &echo()).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    // The federated endpoint names tools `{service}__{name}`: a bare `echo` is unknown there.
    let r = mcp_post(&format!("{base}/mcp"), &[AUTH], &echo()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text());
    let r = http::get(&format!("{base}/nowhere")).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let r = http::get(&format!(
        "{base}/.well-known/oauth-protected-resource/mcp/rec"
    ))
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let big = vec![b' '; 5 * 1024 * 1024];
    let r = http::request("POST", &url, &[AUTH, json_ct], &big).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    let r = mcp_post(&url, &[], &echo()).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());

    s.d.edge.stop();
    let all = records(&log_path(&s));
    let text: Vec<String> = all.iter().map(Value::to_string).collect();
    let text = text.join("\n");
    // The one call that went down the tunnel also has its `dispatched` line, written before.
    let (dispatched, recs): (Vec<Value>, Vec<Value>) = all
        .iter()
        .cloned()
        .partition(|r| r["outcome"] == "dispatched");
    assert_eq!(recs.len(), 8, "one record per answer:\n{text}");
    assert_eq!(dispatched.len(), 1, "{text}");
    let find = |status: u16, key: &str, value: &str| -> &Value {
        recs.iter()
            .find(|r| r["http_status"] == status && r[key] == value)
            .unwrap_or_else(|| panic!("no record with status {status} and {key} {value}:\n{text}"))
    };

    let ok = find(200, "service", "rec");
    assert_eq!(
        (&ok["outcome"], &ok["decision"], &ok["principal"]),
        (&json!("ok"), &json!("allow"), &json!("apikey:ci-bot")),
        "{ok}"
    );
    assert_eq!(dispatched[0]["request_id"], ok["request_id"], "{text}");
    assert!(dispatched[0]["seq"].as_u64() < ok["seq"].as_u64(), "{text}");
    let put = find(405, "service", "rec");
    assert_eq!(put["outcome"], "method_not_allowed", "{put}");
    assert_eq!(put["http_method"], "PUT", "{put}");
    let unknown = find(404, "service", "nope");
    assert_eq!(unknown["outcome"], "not_found", "{unknown}");
    let federated = find(200, "path", "/mcp");
    assert_eq!(federated["outcome"], "error", "{federated}");
    assert_eq!(federated["mcp_method"], "tools/call", "{federated}");
    let nowhere = find(404, "path", "/nowhere");
    assert_eq!(nowhere["outcome"], "not_found", "{nowhere}");
    let meta = find(200, "path", "/.well-known/oauth-protected-resource/mcp/rec");
    assert_eq!(meta["outcome"], "ok", "{meta}");
    let big = find(413, "service", "rec");
    assert_eq!(big["outcome"], "too_large", "{big}");
    assert_eq!(find(401, "service", "rec")["outcome"], "unauthenticated");

    for r in &recs {
        assert_eq!(r["source"], "127.0.0.1", "the client's address: {r}");
        let status = r["http_status"].as_u64().unwrap_or(0);
        if status >= 400 {
            assert_ne!(r["outcome"], "ok", "a refusal recorded as ok: {r}");
            assert_ne!(r["decision"], "allow", "a refusal recorded as allowed: {r}");
        }
    }
    let out = verify(&log_path(&s), &[]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn refusals_from_one_source_are_summarized() {
    let mut s = setup("refusals_per_source = 3");
    let url = s.d.edge_setup.url("rec");
    for _ in 0..10 {
        let r = mcp_post(&url, &[("Authorization", "Bearer wrong")], &echo()).unwrap();
        assert_eq!(r.status, 401, "{}", r.text());
    }
    assert_eq!(call(&s).status, 200);
    s.d.edge.stop(); // writes the summary of the open window

    let recs = records(&log_path(&s));
    let text: Vec<String> = recs.iter().map(Value::to_string).collect();
    let in_full = recs
        .iter()
        .filter(|r| r["outcome"] == "unauthenticated" && r.get("aggregate").is_none())
        .count();
    assert_eq!(in_full, 3, "{}", text.join("\n"));
    let summary = recs
        .iter()
        .find(|r| r.get("aggregate").is_some())
        .unwrap_or_else(|| panic!("no summary line:\n{}", text.join("\n")));
    assert_eq!(summary["aggregate"]["count"], 7, "{summary}");
    assert_eq!(summary["outcome"], "unauthenticated", "{summary}");
    assert_eq!(summary["source"], "127.0.0.1", "{summary}");
    assert_eq!(summary["http_status"], 401, "{summary}");
    assert!(
        recs.iter().any(|r| r["outcome"] == "ok"),
        "allowed calls are never summarized"
    );
    let out = verify(&log_path(&s), &[]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn retention_deletes_the_oldest_files_and_the_rest_still_verifies() {
    let mut s = setup("max_bytes = 2000\nmax_files = 2");
    for _ in 0..30 {
        assert_eq!(call(&s).status, 200);
    }
    s.d.edge.stop();
    let log = log_path(&s);
    let mut rotated: Vec<String> = std::fs::read_dir(s.d.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("audit.jsonl.")
                .is_some_and(|x| x.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    rotated.sort();
    assert_eq!(rotated.len(), 2, "max_files = 2 keeps two: {rotated:?}");
    assert_ne!(rotated[0], "audit.jsonl.000001", "the oldest were deleted");
    let kept = records(&s.d.path().join(&rotated[0]));
    let first_kept = kept[0]["seq"].as_u64().unwrap();
    assert!(first_kept > 0);

    let out = verify(&log, &[]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("deleted by retention"),
        "verify says records were deleted by retention: {stdout}"
    );
    // Deleting one more file than retention did is caught.
    std::fs::remove_file(s.d.path().join(&rotated[0])).unwrap();
    let out = verify(&log, &[]);
    assert!(!out.status.success(), "{}", show(&out));
}

#[test]
fn a_log_removed_under_the_running_edge_is_reopened_and_the_chain_goes_on() {
    let mut s = setup("");
    assert_eq!(call(&s).status, 200);
    let log = log_path(&s);
    poll("the first record", Duration::from_secs(10), || {
        (!records(&log).is_empty()).then_some(())
    });
    std::fs::remove_file(&log).unwrap();
    poll(
        "a record in a new file at the log's path",
        Duration::from_secs(15),
        || {
            assert_eq!(call(&s).status, 200);
            records(&log)
                .iter()
                .any(|r| r["mcp_method"] == "tools/call")
                .then_some(())
        },
    );
    s.d.edge.stop();
    let recs = records(&log);
    assert_eq!(recs[0]["outcome"], "audit_reopened", "{}", recs[0]);
    assert!(
        recs[0]["seq"].as_u64().unwrap() >= 1,
        "the chain goes on: {}",
        recs[0]
    );
    // The records of the removed file are gone, and verify says so.
    let out = verify(&log, &[]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("removed"),
        "{}",
        show(&out)
    );
}

#[test]
fn refuse_mode_answers_503_while_the_log_cannot_be_written_and_verify_reports_the_gap() {
    // The log is a link to /dev/full: every write fails with "no space left on device".
    // `on_failure = "refuse"` is the default.
    let mut s = setup_with("", |dir| {
        std::os::unix::fs::symlink("/dev/full", dir.join("audit.jsonl")).unwrap();
    });
    // The call's `dispatched` line cannot be written, so the call is refused at once and
    // never sent (with `write_ahead = false` it would be served, and its record lost).
    let refused = call(&s);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        s.backend.seen().is_empty(),
        "a call the log could not record was sent"
    );
    let v = refused.json();
    assert_eq!(v["error"]["code"], -31503, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("audit"),
        "{v}"
    );

    // Space returns (the link gives way to a real file): requests are served again.
    std::fs::remove_file(log_path(&s)).unwrap();
    poll("served again", Duration::from_secs(15), || {
        (call(&s).status == 200).then_some(())
    });
    s.d.edge.stop();

    let recs = records(&log_path(&s));
    let gap = recs
        .iter()
        .find(|r| r["outcome"] == "audit_gap")
        .unwrap_or_else(|| panic!("no gap record: {recs:?}"));
    // At least the first call's `dispatched` line and its 503's record.
    assert!(gap["trail"]["lost"].as_u64().unwrap() >= 2, "{gap}");
    let out = verify(&log_path(&s), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("lost"),
        "{}",
        show(&out)
    );
}

#[test]
fn checkpoints_shipped_elsewhere_catch_a_log_cut_short_with_its_checkpoints() {
    let syslog_dir = tempfile::tempdir().unwrap();
    let socket_path = syslog_dir.path().join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let keys = format!(
        "checkpoint_copy = \"elsewhere/checkpoints.jsonl\"\ncheckpoint_syslog = \"{}\"",
        socket_path.display()
    );
    let mut s = setup_with(&keys, |dir| {
        std::fs::create_dir(dir.join("elsewhere")).unwrap();
    });
    for _ in 0..5 {
        assert_eq!(call(&s).status, 200);
    }
    s.d.edge.stop();
    let log = log_path(&s);
    let copy = s.d.path().join("elsewhere/checkpoints.jsonl");
    let local = s.d.path().join("audit.jsonl.checkpoints");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        std::fs::read_to_string(&local).unwrap(),
        "the copy holds every checkpoint"
    );
    let mut buf = vec![0u8; 4096];
    let n = syslog.recv(&mut buf).expect("a checkpoint over syslog");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(
        msg.starts_with('<') && msg.contains("audit-checkpoint {\"seq\":"),
        "{msg}"
    );

    // Cut the last two records off the log and the last checkpoints off its local file.
    let last_seq = records(&log).last().unwrap()["seq"].as_u64().unwrap();
    let cut = |path: &Path, keep: &dyn Fn(&Value) -> bool| {
        let text = std::fs::read_to_string(path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| keep(&serde_json::from_str(l).unwrap()))
            .collect();
        std::fs::write(path, kept.join("\n") + "\n").unwrap();
    };
    cut(&log, &|r| r["seq"].as_u64().unwrap() + 2 <= last_seq);
    cut(&local, &|c| c["seq"].as_u64().unwrap() + 2 <= last_seq);
    let out = verify(&log, &[]);
    assert!(
        out.status.success(),
        "local checkpoints alone cannot tell: {}",
        show(&out)
    );
    let copy_arg = copy.to_str().unwrap();
    let out = verify(&log, &["--checkpoints", copy_arg]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{}",
        show(&out)
    );
    let min = last_seq.to_string();
    let out = verify(&log, &["--expect-min-seq", &min]);
    assert!(!out.status.success(), "{}", show(&out));
    let out = verify(&log, &["--expect-min-seq", &(last_seq - 2).to_string()]);
    assert!(out.status.success(), "{}", show(&out));
}
