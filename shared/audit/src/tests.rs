//! The trail end to end: writer, handle and verifier against real files.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::chain::seal;
use crate::files::{rotated_files, rotated_name, sidecar};
use crate::keys::{checkpoint_message, Checkpoint};
use crate::redact::REDACTED;
use crate::sampler::{lock, Sampler, MAX_SAMPLED_KEYS};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "underpass-audit-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
    fn log(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        principal: Some("client:alice".into()),
        auth_method: Some(AuthMethod::Cert),
        service: Some("everything".into()),
        mcp_method: Some("tools/call".into()),
        target: Some(format!("tool-{i}")),
        decision: Some(Decision::Allow),
        rule: Some("allow[0]".into()),
        outcome: Outcome::Ok,
        http_status: Some(200),
        latency_us: Some(1234),
        bytes_in: Some(100),
        bytes_out: Some(200),
        ..Default::default()
    }
}

fn write_log(config: &AuditConfig, n: u64) {
    let mut log = AuditLog::open(config).expect("open");
    for i in 0..n {
        log.append(&record(i)).expect("append");
    }
    log.flush().expect("flush");
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    fs::write(path, text).expect("write");
}

fn setup(name: &str, n: u64) -> (TempDir, AuditConfig) {
    let dir = TempDir::new(name);
    let config = AuditConfig::new(dir.log());
    write_log(&config, n);
    (dir, config)
}

#[test]
fn formats_rfc3339() {
    let at = |s: u64, ms: u64| format_time(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(at(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
    assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
}

#[test]
fn config_defaults_and_unknown_fields() {
    let c: AuditConfig = toml::from_str("file = \"a.jsonl\"").expect("parse");
    assert_eq!(c, AuditConfig::new("a.jsonl"));
    assert!(toml::from_str::<AuditConfig>("file = \"a\"\nbogus = 1").is_err());
    assert!(toml::from_str::<AuditConfig>("max_bytes = 1").is_err());
}

#[test]
fn line_format() {
    let (dir, _) = setup("format", 2);
    let l = lines(&dir.log());
    assert_eq!(l.len(), 2);
    assert!(l[0].starts_with("{\"hash\":\""));
    let v: Value = serde_json::from_str(&l[0]).expect("json");
    assert_eq!(v["seq"], 0);
    assert_eq!(v["prev"], GENESIS);
    assert_eq!(v["auth_method"], "cert");
    assert_eq!(v["decision"], "allow");
    assert!(v.get("arguments").is_none());
    assert!(v.get("jsonrpc_error").is_none());
    assert_eq!(v["time"].as_str().map(str::len), Some(24));
    let v1: Value = serde_json::from_str(&l[1]).expect("json");
    assert_eq!(v1["prev"], v["hash"]);
    assert!(dir.log().with_extension("jsonl.pub").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(sidecar(&dir.log(), ".key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn clean_log_verifies() {
    let (dir, _) = setup("clean", 10);
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!(r.records, 10);
    assert_eq!(r.files, 1);
    assert_eq!(r.last_seq, Some(9));
    assert_eq!(r.checkpoints, 10);
    assert_eq!(r.unsigned_tail, 0);
    let pinned = dir.0.join("pinned.pub");
    fs::copy(sidecar(&dir.log(), ".pub"), &pinned).expect("copy");
    verify(&dir.log(), Some(&pinned)).expect("verify pinned");
}

#[test]
fn empty_log_verifies() {
    let (dir, _) = setup("empty", 0);
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!(r.records, 0);
    assert_eq!(r.last_hash, GENESIS);
}

fn rotated_setup(name: &str) -> (TempDir, AuditConfig) {
    let dir = TempDir::new(name);
    let mut config = AuditConfig::new(dir.log());
    let line_len = {
        let (d, c) = setup("probe", 1);
        let _ = c;
        fs::metadata(d.log()).expect("probe").len()
    };
    config.max_bytes = line_len * 5 + 10; // 5 lines per file
    write_log(&config, 18); // 5 + 5 + 5 + 3: three rotations
    (dir, config)
}

#[test]
fn rotation_keeps_the_chain() {
    let (dir, config) = rotated_setup("rotate");
    for n in 1..=3 {
        assert_eq!(lines(&rotated_name(&dir.log(), n)).len(), 5);
    }
    assert!(!rotated_name(&dir.log(), 4).exists());
    assert_eq!(lines(&dir.log()).len(), 3);
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.files, r.last_seq), (18, 4, Some(17)));
    // Reopen continues the rotation numbering and the chain.
    write_log(&config, 5);
    assert!(rotated_name(&dir.log(), 4).exists());
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.files), (23, 5));
}

#[test]
fn edited_field_is_detected() {
    let (dir, _) = setup("edit", 5);
    let mut l = lines(&dir.log());
    l[2] = l[2].replace("client:alice", "client:mallory");
    write_lines(&dir.log(), &l);
    match verify(&dir.log(), None) {
        Err(VerifyError::BadHash { line: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleted_line_is_detected() {
    let (dir, _) = setup("delete", 5);
    let mut l = lines(&dir.log());
    l.remove(2);
    write_lines(&dir.log(), &l);
    match verify(&dir.log(), None) {
        Err(VerifyError::SeqMismatch {
            line: 3,
            expected: 2,
            found: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// A correctly sealed line with the given seq and prev.
fn forge(seq: u64, prev: &str) -> String {
    #[derive(Serialize)]
    struct Chained<'a> {
        seq: u64,
        prev: &'a str,
        #[serde(flatten)]
        record: &'a AuditRecord,
    }
    let mut rec = record(99);
    rec.time = now();
    rec.principal = Some("client:mallory".into());
    let body = serde_json::to_string(&Chained {
        seq,
        prev,
        record: &rec,
    })
    .expect("json");
    let (line, _) = seal(prev, &body);
    line.trim_end().to_owned()
}

fn hash_of(line: &str) -> String {
    let v: Value = serde_json::from_str(line).expect("json");
    v["hash"].as_str().expect("hash").to_owned()
}

#[test]
fn inserted_line_is_detected() {
    // A correctly sealed forged line: the checkpoint for its seq catches it at once…
    let (dir, _) = setup("insert", 5);
    let mut l = lines(&dir.log());
    let forged = forge(2, &hash_of(&l[1]));
    l.insert(2, forged);
    write_lines(&dir.log(), &l);
    match verify(&dir.log(), None) {
        Err(VerifyError::CheckpointMismatch {
            seq: 2, line: 3, ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // …and without a checkpoint there, the original record after it does not chain.
    let dir = TempDir::new("insert-nocp");
    let mut config = AuditConfig::new(dir.log());
    config.checkpoint_every = 0;
    write_log(&config, 5);
    let mut l = lines(&dir.log());
    let forged = forge(2, &hash_of(&l[1]));
    l.insert(2, forged);
    write_lines(&dir.log(), &l);
    match verify(&dir.log(), None) {
        Err(VerifyError::SeqMismatch {
            line: 4,
            expected: 3,
            found: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn rewritten_chain_is_caught_by_checkpoints() {
    // Delete line 3 and re-seal everything after it: internally consistent, but the
    // signed checkpoints remember the original hashes.
    let (dir, _) = setup("rewrite", 5);
    let l = lines(&dir.log());
    let mut out = vec![l[0].clone(), l[1].clone()];
    let mut prev = hash_of(&l[1]);
    for seq in 2..4 {
        let f = forge(seq, &prev);
        prev = hash_of(&f);
        out.push(f);
    }
    write_lines(&dir.log(), &out);
    match verify(&dir.log(), None) {
        Err(VerifyError::CheckpointMismatch {
            seq: 2, line: 3, ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn swapped_lines_are_detected() {
    let (dir, _) = setup("swap", 5);
    let mut l = lines(&dir.log());
    l.swap(1, 2);
    write_lines(&dir.log(), &l);
    match verify(&dir.log(), None) {
        Err(VerifyError::SeqMismatch {
            line: 2,
            expected: 1,
            found: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncation_is_detected() {
    let (dir, config) = setup("truncate", 5);
    let l = lines(&dir.log());
    write_lines(&dir.log(), &l[..3]);
    match verify(&dir.log(), None) {
        Err(VerifyError::Truncated {
            last_seq: Some(2),
            checkpoint_seq: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // And the writer refuses to fork the chain from there.
    match AuditLog::open(&config) {
        Err(AuditError::BehindCheckpoint {
            log_seq: Some(2),
            checkpoint_seq: 4,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Emptying the log entirely is truncation too.
    write_lines(&dir.log(), &[]);
    match verify(&dir.log(), None) {
        Err(VerifyError::Truncated { last_seq: None, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleted_rotated_file_is_detected() {
    let (dir, _) = rotated_setup("rotdel-mid");
    fs::remove_file(rotated_name(&dir.log(), 2)).expect("rm");
    match verify(&dir.log(), None) {
        Err(VerifyError::MissingFile { file }) => {
            assert_eq!(file, rotated_name(&dir.log(), 2))
        }
        other => panic!("{other:?}"),
    }

    let (dir, _) = rotated_setup("rotdel-last");
    fs::remove_file(rotated_name(&dir.log(), 3)).expect("rm");
    match verify(&dir.log(), None) {
        Err(VerifyError::SeqMismatch {
            line: 1,
            expected: 10,
            found: 15,
            file,
        }) => assert_eq!(file, dir.log()),
        other => panic!("{other:?}"),
    }

    let (dir, _) = rotated_setup("rotdel-cur");
    fs::remove_file(dir.log()).expect("rm");
    assert!(matches!(
        verify(&dir.log(), None),
        Err(VerifyError::MissingFile { .. })
    ));

    // The oldest file: no retention line vouches for the new start.
    let (dir, _) = rotated_setup("rotdel-first");
    fs::remove_file(rotated_name(&dir.log(), 1)).expect("rm");
    match verify(&dir.log(), None) {
        Err(VerifyError::MissingFile { file }) => {
            assert_eq!(file, rotated_name(&dir.log(), 1))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forged_checkpoint_is_detected() {
    let (dir, _) = setup("cpforge", 5);
    let cp_path = sidecar(&dir.log(), ".checkpoints");
    let mut cps = lines(&cp_path);
    let mut cp: Checkpoint = serde_json::from_str(&cps[4]).expect("cp");
    cp.seq = 9; // claim more records than were written
    cps[4] = serde_json::to_string(&cp).expect("json");
    write_lines(&cp_path, &cps);
    match verify(&dir.log(), None) {
        Err(VerifyError::BadSignature { line: 5, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn replaced_key_is_caught_only_when_pinned() {
    let (dir, _) = setup("cpkey", 3);
    let pinned = dir.0.join("pinned.pub");
    fs::copy(sidecar(&dir.log(), ".pub"), &pinned).expect("copy");
    // The attacker re-signs the checkpoints (say, after truncating) with their own key.
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("gen");
    let evil = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key");
    let evil_pub = B64.encode(evil.public_key().as_ref());
    let cp_path = sidecar(&dir.log(), ".checkpoints");
    let cps: Vec<String> = lines(&cp_path)
        .iter()
        .map(|l| {
            let mut cp: Checkpoint = serde_json::from_str(l).expect("cp");
            let msg = checkpoint_message(cp.seq, &cp.hash, &cp.file, &cp.time);
            cp.sig = B64.encode(evil.sign(msg.as_bytes()).as_ref());
            cp.key = evil_pub.clone();
            serde_json::to_string(&cp).expect("json")
        })
        .collect();
    write_lines(&cp_path, &cps);
    // Checkpoints no longer match .pub…
    assert!(matches!(
        verify(&dir.log(), None),
        Err(VerifyError::WrongKey { line: 1, .. })
    ));
    // …unless .pub is replaced too: then only a pinned key catches it.
    fs::write(sidecar(&dir.log(), ".pub"), &evil_pub).expect("write");
    verify(&dir.log(), None).expect("unpinned trusts .pub");
    assert!(matches!(
        verify(&dir.log(), Some(&pinned)),
        Err(VerifyError::WrongKey { line: 1, .. })
    ));
}

#[test]
fn missing_checkpoints_are_detected() {
    let (dir, _) = setup("nocp", 3);
    fs::remove_file(sidecar(&dir.log(), ".checkpoints")).expect("rm");
    assert!(matches!(
        verify(&dir.log(), None),
        Err(VerifyError::NoCheckpoint { records: 3, .. })
    ));
}

#[test]
fn reopen_resumes_the_chain() {
    let (dir, config) = setup("resume", 3);
    let before = lines(&dir.log());
    write_log(&config, 2);
    let after = lines(&dir.log());
    assert_eq!(after.len(), 5);
    assert_eq!(after[..3], before[..]);
    let v: Value = serde_json::from_str(&after[3]).expect("json");
    assert_eq!(v["seq"], 3);
    assert_eq!(v["prev"].as_str(), Some(hash_of(&after[2]).as_str()));
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!(r.records, 5);
}

#[test]
fn damaged_tail_refuses_to_start() {
    let (dir, config) = setup("tail", 3);
    let mut l = lines(&dir.log());
    l[2] = l[2].replace("tool-2", "tool-X");
    write_lines(&dir.log(), &l);
    assert!(matches!(
        AuditLog::open(&config),
        Err(AuditError::CorruptTail { .. })
    ));

    let (dir, config) = setup("partial", 3);
    let text = fs::read_to_string(dir.log()).expect("read");
    fs::write(dir.log(), &text[..text.len() - 10]).expect("write");
    let err = AuditLog::open(&config).expect_err("must refuse");
    assert!(err.to_string().contains("no final newline"), "{err}");
}

#[test]
fn other_key_refuses_to_start() {
    let (dir, mut config) = setup("otherkey", 1);
    config.signing_key = Some(dir.0.join("other.key"));
    assert!(matches!(
        AuditLog::open(&config),
        Err(AuditError::KeyMismatch { .. })
    ));
}

#[test]
fn checkpoint_every_n() {
    let dir = TempDir::new("every");
    let mut config = AuditConfig::new(dir.log());
    config.checkpoint_every = 4;
    let mut log = AuditLog::open(&config).expect("open");
    for i in 0..10 {
        log.append(&record(i)).expect("append");
    }
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.checkpoints, r.unsigned_tail), (2, 2));
    log.flush().expect("flush");
    log.flush().expect("flush twice");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.checkpoints, r.unsigned_tail), (3, 0));
}

#[tokio::test]
async fn auditor_writes_everything_by_shutdown() {
    let dir = TempDir::new("auditor");
    let mut config = AuditConfig::new(dir.log());
    config.checkpoint_every = 0;
    let auditor = Auditor::start(&config).expect("start");
    let other = auditor.clone();
    for i in 0..200 {
        other.record(record(i));
    }
    assert_eq!(auditor.dropped(), 0);
    auditor.shutdown().await.expect("shutdown");
    other.record(record(1000));
    assert_eq!(other.dropped(), 1);
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.unsigned_tail), (200, 0));
}

/// Polls `cond` every 10 ms, for at most 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within 10 s");
}

#[test]
fn failed_writes_leave_a_gap_record_that_verify_reports() {
    let dir = TempDir::new("gap");
    let config = AuditConfig::new(dir.log());
    let mut log = AuditLog::open(&config).expect("open");
    let fail = log.fail_writes.clone();
    for i in 0..2 {
        log.append(&record(i)).expect("append");
    }
    fail.store(true, Ordering::Relaxed);
    for i in 2..5 {
        assert!(log.append(&record(i)).is_err());
    }
    assert!(!log.is_healthy());
    assert_eq!(log.lost(), 3);
    assert_eq!(lines(&dir.log()).len(), 2, "no partial line is left");
    // Still failing: the gap record cannot be written either.
    assert!(log.recover().is_err());
    assert_eq!(log.lost(), 3);

    fail.store(false, Ordering::Relaxed);
    log.append(&record(5)).expect("append");
    assert!(log.is_healthy());
    log.flush().expect("flush");
    let l = lines(&dir.log());
    assert_eq!(l.len(), 4);
    let gap: Value = serde_json::from_str(&l[2]).expect("json");
    assert_eq!(gap["outcome"], "audit_gap");
    assert_eq!(gap["trail"]["event"], "gap");
    assert_eq!(gap["trail"]["lost"], 3);
    assert!(gap["trail"]["reasons"][0]
        .as_str()
        .is_some_and(|r| r.contains("no space left")));

    let r = verify(&dir.log(), None).expect("the chain itself is intact");
    assert_eq!(r.records, 4);
    assert_eq!(r.lost(), 3);
    assert_eq!(r.gaps.len(), 1);
    assert_eq!(r.gaps[0].seq, 2);
}

#[test]
fn recover_writes_the_gap_without_waiting_for_a_request() {
    let dir = TempDir::new("recover");
    let mut log = AuditLog::open(&AuditConfig::new(dir.log())).expect("open");
    log.fail_writes.store(true, Ordering::Relaxed);
    assert!(log.append(&record(0)).is_err());
    log.fail_writes.store(false, Ordering::Relaxed);
    log.recover().expect("recover");
    assert!(log.is_healthy());
    log.flush().expect("flush");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.lost()), (1, 1));
}

#[tokio::test]
async fn refuse_mode_stops_accepting_while_writes_fail_and_recovers_by_itself() {
    let dir = TempDir::new("refuse");
    let config = AuditConfig::new(dir.log());
    assert_eq!(config.on_failure, OnFailure::Refuse, "the default");
    let log = AuditLog::open(&config).expect("open");
    let fail = log.fail_writes.clone();
    let auditor = Auditor::spawn(log, &config, 64).expect("start");
    assert!(auditor.accepting());
    auditor.record(record(0));
    wait_until("record 0 written", || lines(&dir.log()).len() == 1);
    fail.store(true, Ordering::Relaxed);
    auditor.record(record(1));
    wait_until("refusing", || !auditor.accepting());
    assert!(!auditor.healthy());
    fail.store(false, Ordering::Relaxed);
    // No request needed: the writer retries on its own.
    wait_until("accepting again", || auditor.accepting());
    auditor.record(record(2));
    auditor.shutdown().await.expect("shutdown");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.lost()), (3, 1), "record 0, the gap, record 2");
}

#[tokio::test]
async fn continue_mode_keeps_accepting_and_still_records_the_gap() {
    let dir = TempDir::new("continue");
    let mut config = AuditConfig::new(dir.log());
    config.on_failure = OnFailure::Continue;
    let log = AuditLog::open(&config).expect("open");
    let fail = log.fail_writes.clone();
    let auditor = Auditor::spawn(log, &config, 64).expect("start");
    fail.store(true, Ordering::Relaxed);
    auditor.record(record(0));
    auditor.record(record(1));
    wait_until("both lost", || auditor.dropped() == 2);
    assert!(!auditor.healthy());
    assert!(auditor.accepting(), "continue keeps serving");
    fail.store(false, Ordering::Relaxed);
    auditor.record(record(2));
    auditor.shutdown().await.expect("shutdown");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.lost()), (2, 2));
}

#[tokio::test]
async fn records_dropped_from_a_full_queue_count_into_the_gap() {
    let dir = TempDir::new("queue");
    let config = AuditConfig::new(dir.log());
    let log = AuditLog::open(&config).expect("open");
    let (auditor, writer) = Auditor::unstarted(log, &config, 2);
    for i in 0..5 {
        auditor.record(record(i));
    }
    assert_eq!(auditor.dropped(), 3);
    assert!(!auditor.accepting(), "refuse: the queue is full");
    writer.start(&config.file).expect("start");
    wait_until("queue drained", || auditor.accepting());
    auditor.shutdown().await.expect("shutdown");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!(
        (r.records, r.lost()),
        (3, 3),
        "the gap, then the two queued"
    );
    assert!(r.gaps[0].reasons.iter().any(|x| x == "queue full"));
}

#[tokio::test]
async fn write_ahead_lines_are_in_the_file_when_it_returns() {
    let dir = TempDir::new("ahead");
    let config = AuditConfig::new(dir.log());
    assert!(config.write_ahead, "the default");
    let auditor = Auditor::start(&config).expect("start");
    let mut request = record(7);
    request.request_id = Some("r-7".into());
    request.http_status = Some(200);
    request.batch_size = Some(2);
    request.calls = vec![
        CallAudit {
            method: "tools/call".into(),
            target: Some("echo".into()),
            rpc_id: Some(serde_json::json!(1)),
            ..CallAudit::default()
        },
        CallAudit {
            method: "ping".into(),
            rpc_id: Some(serde_json::json!(2)),
            ..CallAudit::default()
        },
    ];
    assert!(auditor.write_ahead(&request).await);
    // No waiting: the lines are in the file (as after a SIGKILL of the edge right now).
    let l: Vec<Value> = lines(&dir.log())
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(l.len(), 2, "one line per message of the batch");
    for (i, line) in l.iter().enumerate() {
        assert_eq!(line["outcome"], "dispatched");
        assert_eq!(line["request_id"], "r-7");
        assert_eq!(line["batch_index"], i);
        assert!(line.get("http_status").is_none(), "no answer yet: {line}");
    }
    assert_eq!(l[0]["target"], "echo");
    auditor.shutdown().await.expect("shutdown");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.unsigned_tail), (2, 0));
}

#[test]
fn a_dispatched_line_is_vouched_for_by_the_next_checkpoint_not_its_own() {
    let dir = TempDir::new("ahead-checkpoint");
    let config = AuditConfig::new(dir.log());
    assert_eq!(config.checkpoint_every, 1);
    let mut log = AuditLog::open(&config).expect("open");
    let mut dispatched = record(0);
    dispatched.outcome = Outcome::Dispatched;
    // The trail's first line is checkpointed whatever it is.
    log.append(&dispatched).expect("append");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.checkpoints, r.unsigned_tail), (1, 1, 0));
    log.append(&dispatched).expect("append");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.checkpoints, r.unsigned_tail), (2, 1, 1));
    log.append(&record(0)).expect("append");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.checkpoints, r.unsigned_tail), (3, 2, 0));
}

#[tokio::test]
async fn write_ahead_that_fails_refuses_or_goes_on_as_on_failure_says() {
    for on_failure in [OnFailure::Refuse, OnFailure::Continue] {
        let dir = TempDir::new("ahead-fail");
        let mut config = AuditConfig::new(dir.log());
        config.on_failure = on_failure;
        let log = AuditLog::open(&config).expect("open");
        let fail = log.fail_writes.clone();
        let auditor = Auditor::spawn(log, &config, 64).expect("start");
        fail.store(true, Ordering::Relaxed);
        assert_eq!(
            auditor.write_ahead(&record(0)).await,
            on_failure == OnFailure::Continue,
            "{on_failure:?}"
        );
        assert_eq!(auditor.dropped(), 1);
        fail.store(false, Ordering::Relaxed);
        assert!(auditor.write_ahead(&record(1)).await, "{on_failure:?}");
        auditor.shutdown().await.expect("shutdown");
        let r = verify(&dir.log(), None).expect("verify");
        assert_eq!((r.records, r.lost()), (2, 1), "the gap, then record 1");
    }
    // Off: nothing is written ahead.
    let dir = TempDir::new("ahead-off");
    let mut config = AuditConfig::new(dir.log());
    config.write_ahead = false;
    let auditor = Auditor::start(&config).expect("start");
    assert!(auditor.write_ahead(&record(0)).await);
    auditor.shutdown().await.expect("shutdown");
    assert!(lines(&dir.log()).is_empty());
}

#[tokio::test]
async fn write_ahead_with_a_full_queue_is_counted_into_the_gap() {
    let dir = TempDir::new("ahead-queue");
    let config = AuditConfig::new(dir.log());
    let log = AuditLog::open(&config).expect("open");
    let (auditor, writer) = Auditor::unstarted(log, &config, 1);
    auditor.record(record(0));
    assert!(
        !auditor.write_ahead(&record(1)).await,
        "refuse: the queue is full"
    );
    writer.start(&config.file).expect("start");
    auditor.shutdown().await.expect("shutdown");
    let r = verify(&dir.log(), None).expect("verify");
    assert_eq!((r.records, r.lost()), (2, 1), "the gap, then record 0");
}

#[test]
fn a_removed_or_renamed_log_is_reopened_and_the_chain_goes_on() {
    let dir = TempDir::new("reopen");
    let mut log = AuditLog::open(&AuditConfig::new(dir.log())).expect("open");
    log.append(&record(0)).expect("append");
    log.append(&record(1)).expect("append");
    fs::remove_file(dir.log()).expect("rm");
    log.next_identity_check = Instant::now();
    log.append(&record(2)).expect("append");
    let l = lines(&dir.log());
    assert_eq!(l.len(), 2, "the note, then the record");
    let note: Value = serde_json::from_str(&l[0]).expect("json");
    assert_eq!(note["outcome"], "audit_reopened");
    assert_eq!(note["seq"], 2);
    assert_eq!(note["trail"]["last_seq_before"], 1);
    assert!(note["trail"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("removed")));
    // The deleted records are missing, and verify says so.
    log.flush().expect("flush");
    match verify(&dir.log(), None) {
        Err(VerifyError::SeqMismatch {
            line: 1,
            expected: 0,
            found: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // Renamed away: a new file, the chain goes on.
    fs::rename(dir.log(), dir.0.join("audit.jsonl-old")).expect("mv");
    log.next_identity_check = Instant::now();
    log.append(&record(3)).expect("append");
    let l = lines(&dir.log());
    let note: Value = serde_json::from_str(&l[0]).expect("json");
    assert_eq!(note["seq"], 4);
    assert!(note["trail"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("no longer at its path")));

    // Replaced by another file (logrotate's `create`): the edge writes to the new one.
    fs::rename(dir.log(), dir.0.join("audit.jsonl-older")).expect("mv");
    fs::write(dir.log(), "").expect("create");
    log.next_identity_check = Instant::now();
    log.append(&record(5)).expect("append");
    let l = lines(&dir.log());
    assert_eq!(l.len(), 2);
    let note: Value = serde_json::from_str(&l[0]).expect("json");
    assert!(note["trail"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("replaced by another file")));
    // Within the second, nothing is checked.
    fs::remove_file(dir.log()).expect("rm");
    log.next_identity_check = Instant::now() + Duration::from_secs(60);
    log.append(&record(4)).expect("append");
    assert!(!dir.log().exists());
}

#[test]
fn retention_deletes_the_oldest_files_and_the_rest_still_verify() {
    let dir = TempDir::new("retention");
    let mut config = AuditConfig::new(dir.log());
    let line_len = {
        let (d, _) = setup("probe-ret", 1);
        fs::metadata(d.log()).expect("probe").len()
    };
    config.max_bytes = line_len * 3 + 10;
    config.max_files = 2;
    write_log(&config, 30);
    let rotated = rotated_files(&dir.log()).expect("list");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert!(rotated[0].0 > 1);
    let r = verify(&dir.log(), None).expect("the kept files verify");
    assert!(r.first_seq > 0);
    assert_eq!(r.last_seq, Some(r.first_seq + r.records - 1));
    // Checkpoints of deleted records were dropped.
    let cps = lines(&sidecar(&dir.log(), ".checkpoints"));
    let first_cp: Checkpoint = serde_json::from_str(&cps[0]).expect("cp");
    assert!(first_cp.seq >= r.first_seq);
    // The retention line names exactly where the kept trail starts.
    let all: Vec<Value> = rotated
        .iter()
        .map(|(_, p)| p.clone())
        .chain([dir.log()])
        .flat_map(|p| lines(&p))
        .map(|l| serde_json::from_str(&l).expect("json"))
        .collect();
    let kept_name = rotated[0]
        .1
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(all.iter().any(|v| v["trail"]["event"] == "retention"
        && v["trail"]["first_kept"]["seq"] == r.first_seq
        && v["trail"]["first_kept"]["file"] == kept_name.as_str()));

    // Deleting one more than retention did is caught.
    fs::remove_file(&rotated[0].1).expect("rm");
    match verify(&dir.log(), None) {
        Err(VerifyError::MissingFile { file }) => assert_eq!(file, rotated[0].1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_are_summarized_per_source_and_outcome() {
    let mut config = AuditConfig::new("unused");
    config.refusals_per_source = 2;
    let sampler = Sampler::new(&config).expect("on");
    let refusal = |source: &str| AuditRecord {
        source: Some(source.into()),
        outcome: Outcome::Unauthenticated,
        http_status: Some(401),
        ..AuditRecord::default()
    };
    let passed = (0..5)
        .filter(|_| sampler.admit(refusal("10.0.0.1")).is_some())
        .count();
    assert_eq!(passed, 2);
    assert!(
        sampler.admit(refusal("10.0.0.2")).is_some(),
        "another source"
    );
    // Allowed calls, and errors after policy allowed, are never summarized.
    for _ in 0..5 {
        assert!(sampler.admit(record(0)).is_some());
        let mut late = record(0);
        late.http_status = Some(404);
        late.outcome = Outcome::NotFound;
        assert!(sampler.admit(late).is_some());
    }
    assert!(sampler.due(false).is_empty(), "the window is still open");
    let due = sampler.due(true);
    assert_eq!(due.len(), 1);
    let s = &due[0];
    assert_eq!(s.source.as_deref(), Some("10.0.0.1"));
    assert_eq!(s.outcome, Outcome::Unauthenticated);
    assert_eq!(s.http_status, Some(401));
    assert_eq!(s.aggregate.as_ref().map(|a| a.count), Some(3));
    assert!(sampler.due(true).is_empty(), "summaries are written once");

    // Many sources share one key once the table is full.
    for i in 0..MAX_SAMPLED_KEYS + 10 {
        sampler.admit(refusal(&format!("src-{i}")));
    }
    assert!(lock(&sampler.state).windows.len() <= MAX_SAMPLED_KEYS + 1);
    assert!(lock(&sampler.state)
        .windows
        .keys()
        .any(|k| k.source.as_deref() == Some("*")));

    // A request abandoned before any rule allowed it counts like a refusal; one abandoned
    // after an allow (a backend still working) is always written.
    let abandoned = |decision: Option<Decision>| AuditRecord {
        source: Some("10.0.0.9".into()),
        outcome: Outcome::ClientGone,
        decision,
        ..AuditRecord::default()
    };
    let passed = (0..5)
        .filter(|_| sampler.admit(abandoned(None)).is_some())
        .count();
    assert_eq!(passed, 2);
    for _ in 0..5 {
        assert!(sampler.admit(abandoned(Some(Decision::Allow))).is_some());
    }

    config.refusals_per_source = 0;
    assert!(Sampler::new(&config).is_none(), "0 = every refusal in full");
}

#[test]
fn checkpoints_are_shipped_and_a_copy_catches_truncation() {
    let dir = TempDir::new("ship");
    let socket_path = dir.0.join("syslog.sock");
    let syslog = UnixDatagram::bind(&socket_path).expect("bind");
    syslog.set_nonblocking(true).expect("nonblocking");
    let mut config = AuditConfig::new(dir.log());
    config.checkpoint_copy = Some(dir.0.join("copy.jsonl"));
    config.checkpoint_syslog = Some(socket_path.clone());
    write_log(&config, 4);
    let local = sidecar(&dir.log(), ".checkpoints");
    let copy = dir.0.join("copy.jsonl");
    assert_eq!(lines(&copy), lines(&local));
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = syslog.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got.len(), 4);
    let last = lines(&local).pop().expect("a checkpoint");
    assert!(got[3].starts_with("<38>underpass-edge["), "{}", got[3]);
    assert!(
        got[3].ends_with(&format!(": audit-checkpoint {last}")),
        "{}",
        got[3]
    );

    // Cut the log and its checkpoints back together: only the copy can tell.
    let l = lines(&dir.log());
    write_lines(&dir.log(), &l[..2]);
    write_lines(&local, &lines(&local)[..2]);
    verify(&dir.log(), None).expect("undetectable from the local files alone");
    let with_copy = VerifyOptions {
        checkpoints: Some(copy),
        ..VerifyOptions::default()
    };
    match verify_with(&dir.log(), &with_copy) {
        Err(VerifyError::Truncated {
            last_seq: Some(1),
            checkpoint_seq: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let min = VerifyOptions {
        expect_min_seq: Some(3),
        ..VerifyOptions::default()
    };
    match verify_with(&dir.log(), &min) {
        Err(VerifyError::EndsTooEarly {
            last_seq: Some(1),
            expected: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    let ok = VerifyOptions {
        expect_min_seq: Some(1),
        ..VerifyOptions::default()
    };
    verify_with(&dir.log(), &ok).expect("reaches seq 1");

    // The writer refuses to continue a chain the copy vouches beyond.
    match AuditLog::open(&config) {
        Err(AuditError::BehindCheckpoint {
            log_seq: Some(1),
            checkpoint_seq: 3,
            checkpoints,
            ..
        }) => assert_eq!(checkpoints, dir.0.join("copy.jsonl")),
        other => panic!("{other:?}"),
    }

    // A syslog path that is not a socket is refused at start.
    let mut bad = AuditConfig::new(dir.0.join("other.jsonl"));
    bad.checkpoint_syslog = Some(copy_path_that_is_a_file(&dir));
    assert!(matches!(
        AuditLog::open(&bad),
        Err(AuditError::NotASocket(_))
    ));
}

fn copy_path_that_is_a_file(dir: &TempDir) -> PathBuf {
    let p = dir.0.join("not-a-socket");
    fs::write(&p, "").expect("write");
    p
}

#[test]
fn arguments_are_redacted() {
    let args = serde_json::json!({
        "path": "/srv/docs",
        "api_key": "sk-123",
        "nested": {"Authorization": "Bearer x", "items": [1, 2]},
        "long": "x".repeat(2000),
        "note": "deploy with AKIAIOSFODNN7EXAMPLE please",
        "pem": format!("{}-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "y".repeat(1020)),
    });
    let out = redact_arguments(&args).expect("some");
    // What the `secrets` detector finds is gone from any value, whatever its key, even where
    // the value is cut.
    assert_eq!(out["note"], "deploy with [REDACTED:secrets] please");
    let pem = out["pem"].as_str().unwrap_or_default();
    assert!(!pem.contains("BEGIN") && !pem.contains("MIIE"), "{pem}");
    assert_eq!(out["path"], "/srv/docs");
    assert_eq!(out["api_key"], REDACTED);
    assert_eq!(out["nested"]["Authorization"], REDACTED);
    assert_eq!(out["nested"]["items"], serde_json::json!([1, 2]));
    assert!(out["long"].as_str().is_some_and(|s| s.len() < 1100));
    assert_eq!(redact_arguments(&Value::Null), None);

    let dir = TempDir::new("args");
    let off = Auditor::start(&AuditConfig::new(dir.log())).expect("start");
    assert_eq!(off.arguments(Some(&args)), None);
    let mut config = AuditConfig::new(dir.0.join("b.jsonl"));
    config.log_arguments = true;
    let on = Auditor::start(&config).expect("start");
    assert_eq!(on.arguments(Some(&args)), Some(out));
}
