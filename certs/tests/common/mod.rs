//! Running the real `underpass-certs` binary, shared by the CLI tests (each test binary uses
//! part of it).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `underpass-certs` with `args`; the caller judges the outcome.
pub fn certs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_underpass-certs"))
        .args(args)
        .output()
        .expect("run underpass-certs")
}

/// Runs a command expected to succeed; returns its whole output.
pub fn run_ok(args: &[&str]) -> Output {
    let out = certs(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command expected to succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    String::from_utf8(run_ok(args).stdout).expect("utf-8 stdout")
}

/// Runs a command expected to fail; returns its stderr, checked to be one `error:` line.
pub fn fails(args: &[&str]) -> String {
    let out = certs(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with 1");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
