//! The audit trail's line parser and offline verifier (`underpass_audit`): any line, and any
//! contents of a trail's files (log, checkpoints, rotated files) in a temporary directory.
//! With the first byte's low bit set, the log's lines are sealed into a valid chain first (and
//! a signed checkpoint is added; `PREV` in a line stands for the previous line's hash), so the
//! checks after the hashes are reached too.
//!
//! Input: mode byte, then files separated by `\n--8<--\n`: the log, its checkpoints, then
//! rotated files numbered from the mode byte's high bits.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use underpass_audit::fuzzing::{check_line, checkpoint_text, seal_line};
use underpass_audit::{verify, VerifyError, GENESIS};
use underpass_fuzz::{mode, sections};

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a fixed seed"))
}

/// The file's lines sealed into a chain starting at `prev`; returns the text, the last seq and
/// hash.
fn seal_all(text: &[u8], mut prev: String) -> (Vec<u8>, Option<(u64, String)>) {
    let mut out = Vec::new();
    let mut last = None;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // `PREV` stands for the previous line's hash, which no fuzzer guesses.
        let body = String::from_utf8_lossy(line).replace("PREV", &prev);
        if !body.starts_with('{') {
            out.extend_from_slice(line);
            out.push(b'\n');
            continue;
        }
        let (sealed, hash) = seal_line(&prev, &body);
        if let Ok((seq, _, _)) = check_line(sealed.trim_end_matches('\n').as_bytes()) {
            last = Some((seq, hash.clone()));
        }
        out.extend_from_slice(sealed.as_bytes());
        prev = hash;
    }
    (out, last)
}

fn checkpoint(seq: u64, hash: &str, file: &str) -> String {
    let time = "2026-01-01T00:00:00.000Z";
    let sig = key().sign(checkpoint_text(seq, hash, file, time).as_bytes());
    serde_json::json!({
        "seq": seq,
        "hash": hash,
        "file": file,
        "time": time,
        "key": B64.encode(key().public_key().as_ref()),
        "sig": B64.encode(sig.as_ref()),
    })
    .to_string()
        + "\n"
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write a trail file");
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let parts = sections(rest, b"\n--8<--\n");
    for line in parts[0].split(|&b| b == b'\n') {
        let _ = check_line(line);
    }

    let dir = tempfile_dir();
    let log = dir.join("audit.jsonl");
    let seal = m & 1 != 0;
    let first_rotated = u64::from(m >> 1);
    let mut prev = GENESIS.to_owned();
    let mut last = None;
    // Rotated files (oldest first), then the current file.
    let mut files: Vec<(std::path::PathBuf, &[u8])> = parts
        .iter()
        .skip(2)
        .enumerate()
        .map(|(i, p)| {
            let n = first_rotated.wrapping_add(i as u64).max(1);
            (dir.join(format!("audit.jsonl.{n:06}")), *p)
        })
        .collect();
    files.push((log.clone(), parts[0]));
    for (path, text) in &files {
        if seal {
            let (sealed, end) = seal_all(text, prev.clone());
            if let Some((seq, hash)) = end {
                prev = hash.clone();
                last = Some((seq, hash));
            }
            write(path, &sealed);
        } else {
            write(path, text);
        }
    }
    let mut checkpoints = parts.get(1).map(|c| c.to_vec()).unwrap_or_default();
    if let (true, Some((seq, hash))) = (seal, &last) {
        checkpoints.extend_from_slice(checkpoint(*seq, hash, "audit.jsonl").as_bytes());
    }
    write(&dir.join("audit.jsonl.checkpoints"), &checkpoints);
    write(
        &dir.join("audit.jsonl.pub"),
        B64.encode(key().public_key().as_ref()).as_bytes(),
    );
    match verify(&log, None) {
        Ok(report) => {
            assert!(report.records > 0 || report.last_seq.is_none());
            assert!(report.unsigned_tail <= report.records);
            let _ = report.lost();
        }
        Err(e) => {
            let _ = e.to_string();
            if let VerifyError::Io { .. } = e {
                panic!("the trail's files were written: {e}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).expect("clean the trail directory");
});

/// A fresh directory for one input's trail.
fn tempfile_dir() -> std::path::PathBuf {
    static BASE: OnceLock<std::path::PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("underpass-fuzz-audit-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("create the fuzz directory");
        base
    });
    let dir = base.join("trail");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the trail directory");
    dir
}
