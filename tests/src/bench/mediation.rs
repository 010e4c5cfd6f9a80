//! The mediation phase: what a rule's `redact = ["secrets"]` costs the response path. One
//! stack whose edge reads a policy file: first a rule without obligations, then (the file
//! rewritten, SIGHUP) the same rule with `redact = ["secrets"]`. Each is measured with a
//! 100-byte and a 1 MiB `tools/call` result (2026-07-28, the echo backend's JSON answers, c=1,
//! nothing in them to find: the common case), by the bench's closed loop and by wrk
//! (`tests/wrk/blob.lua`, `tests/wrk/tools_call.lua`). The target: the 1 MiB throughput with
//! `redact` at most 30 % below the throughput without.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::repo_root;

use crate::latency::{measure, Cell};
use crate::peers::wrk;
use crate::plan::{Era, Plan};
use crate::report::fmt_duration;
use crate::stack::{Stack, BENCH_CLIENTS};

/// The limit on the throughput `redact = ["secrets"]` may cost a 1 MiB result.
const MAX_LOSS_PCT: f64 = 30.0;
const MIB: usize = 1 << 20;

fn policy(obligations: &str) -> String {
    format!(
        "[[allow]]\nname = \"bench\"\nprincipals = [\"anonymous\"]\ntools = [\"*\"]\n{obligations}\n"
    )
}

/// One measured cell.
pub(crate) struct MedCell {
    rule: &'static str,
    payload: usize,
    /// The result ends with a key.
    secret: bool,
    generator: &'static str,
    p50_us: f64,
    p99_us: f64,
    rps: f64,
    errors: u64,
    error: Option<String>,
    edge_cpu_us: Option<f64>,
    command: Option<String>,
}

impl MedCell {
    fn mib_per_s(&self) -> f64 {
        self.rps * self.payload as f64 / MIB as f64
    }

    fn json(&self) -> Value {
        json!({
            "rule": self.rule,
            "payload": self.payload,
            "secret": self.secret,
            "generator": self.generator,
            "p50_us": self.p50_us.round(),
            "p99_us": self.p99_us.round(),
            "rps": (self.rps * 10.0).round() / 10.0,
            "mib_per_s": (self.mib_per_s() * 10.0).round() / 10.0,
            "errors": self.errors,
            "error": self.error,
            "edge_cpu_us_per_req": self.edge_cpu_us.map(|c| c.round()),
            "command": self.command,
        })
    }
}

/// What the phase found.
pub(crate) struct Outcome {
    cells: Vec<MedCell>,
    wrk_note: Option<String>,
}

impl Outcome {
    pub(crate) fn failed(&self) -> bool {
        self.cells
            .iter()
            .any(|c| c.rps == 0.0 || c.errors > 0 || c.error.is_some())
    }

    /// The 1 MiB throughput lost to `redact`, per generator and result (with a key or not),
    /// in percent.
    fn losses(&self) -> Vec<(&'static str, bool, f64)> {
        let mut out = Vec::new();
        for secret in [false, true] {
            for g in ["bench", "wrk"] {
                let find = |rule: &str| {
                    self.cells
                        .iter()
                        .find(|c| {
                            c.rule == rule
                                && c.payload == MIB
                                && c.secret == secret
                                && c.generator == g
                        })
                        .map(MedCell::mib_per_s)
                };
                if let (Some(plain), Some(redact)) = (find("none"), find("redact")) {
                    if plain > 0.0 {
                        out.push((g, secret, (1.0 - redact / plain) * 100.0));
                    }
                }
            }
        }
        out
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "cells": self.cells.iter().map(MedCell::json).collect::<Vec<_>>(),
            "loss_pct_1mib": self.losses().iter().map(|(g, secret, l)| json!({"generator": g, "secret": secret, "loss_pct": (l * 10.0).round() / 10.0, "limit_pct": MAX_LOSS_PCT, "met": *l <= MAX_LOSS_PCT})).collect::<Vec<_>>(),
            "wrk_note": self.wrk_note,
        })
    }

    pub(crate) fn table(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## Mediation (`tools/call` through the tunnel, rule without obligations vs `redact = [\"secrets\"]`, clean results, c=1, {} s per cell)\n",
            plan.duration.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| rule | result | generator | p50 | p99 | rps | MiB/s | edge CPU µs/req | errors |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
        for c in &self.cells {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0} | {:.1} | {} | {}{} |",
                c.rule,
                match (c.payload == MIB, c.secret) {
                    (true, true) => "1 MiB + key",
                    (true, false) => "1 MiB",
                    _ => "100 B",
                },
                c.generator,
                fmt_duration(c.p50_us),
                fmt_duration(c.p99_us),
                c.rps,
                c.mib_per_s(),
                c.edge_cpu_us.map_or("—".into(), |v| format!("{v:.0}")),
                c.errors,
                c.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
        for (generator, secret, loss) in self.losses() {
            let _ = writeln!(
                out,
                "- 1 MiB{} throughput lost to `redact = [\"secrets\"]` ({generator}): {loss:.1} % against at most {MAX_LOSS_PCT} % — {}",
                if secret { " + key" } else { "" },
                if loss <= MAX_LOSS_PCT { "met" } else { "NOT met" }
            );
        }
        if let Some(note) = &self.wrk_note {
            let _ = writeln!(out, "- wrk: {note}");
        }
        for c in &self.cells {
            if let Some(cmd) = &c.command {
                let _ = writeln!(out, "- `{cmd}` ({} rule)", c.rule);
            }
        }
        out
    }
}

/// Runs the phase on a stack of its own in `dir`.
pub(crate) fn run(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    dir: &Path,
    backend_threads: usize,
) -> Outcome {
    let dir = dir.join("mediation");
    std::fs::create_dir_all(&dir).expect("mediation scratch folder");
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy("")).expect("write policy");
    let edge = "[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n";
    let mut stack = Stack::start_with(&dir, backend_threads, false, edge, BENCH_CLIENTS);
    let wrk_found = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|_| true)
        .unwrap_or(false);
    let mut out = Outcome {
        cells: Vec::new(),
        wrk_note: (!wrk_found).then(|| wrk::INSTALL_HINT.to_owned()),
    };
    let procs = [
        ("edge", stack.edge.pid()),
        ("connector", stack.connector.pid()),
    ];
    for (rule, obligations) in [("none", ""), ("redact", "redact = [\"secrets\"]")] {
        if !obligations.is_empty() {
            std::fs::write(&policy_file, policy(obligations)).expect("write policy");
            let _ = Command::new("kill")
                .args(["-HUP", &stack.edge.pid().to_string()])
                .status();
            stack
                .edge
                .wait_for_log_count("policy reloaded", 1, Duration::from_secs(10));
        }
        for (payload, secret) in [(100, false), (MIB, false), (MIB, true)] {
            let cell = Cell {
                path: "tunnel",
                era: Era::Modern,
                concurrency: 1,
                payload,
                bulk_workers: 0,
            };
            let target = match secret {
                true => stack.tunnel().carrying_secret(),
                false => stack.tunnel(),
            };
            let row = measure(clients, plan, target.clone(), &procs, cell);
            let c = MedCell {
                rule,
                payload,
                secret,
                generator: "bench",
                p50_us: row.us(0.5),
                p99_us: row.us(0.99),
                rps: row.rps,
                errors: row.errors,
                error: row.first_error.clone(),
                edge_cpu_us: row
                    .cpu
                    .iter()
                    .find(|(n, _, _)| *n == "edge")
                    .map(|(_, c, _)| *c),
                command: None,
            };
            report(&c);
            out.cells.push(c);
            if wrk_found {
                let c = wrk_cell(rule, payload, secret, &target.url(), plan, &procs);
                report(&c);
                out.cells.push(c);
            }
        }
    }
    out
}

fn report(c: &MedCell) {
    eprintln!(
        "  mediation {:6} {:>7}{} {:5}: p50 {:>8}  p99 {:>8}  {:>7.0} rps  {:>7.1} MiB/s  errors {}{}",
        c.rule,
        c.payload,
        if c.secret { "+key" } else { "    " },
        c.generator,
        fmt_duration(c.p50_us),
        fmt_duration(c.p99_us),
        c.rps,
        c.mib_per_s(),
        c.errors,
        c.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
}

fn wrk_cell(
    rule: &'static str,
    payload: usize,
    secret: bool,
    url: &str,
    plan: &Plan,
    procs: &[(&'static str, u32)],
) -> MedCell {
    let seconds = plan.duration.as_secs_f64().round().max(1.0) as u64;
    let script = repo_root().join(match (payload == MIB, secret) {
        (true, true) => "tests/wrk/blob_secret.lua",
        (true, false) => "tests/wrk/blob.lua",
        _ => "tests/wrk/tools_call.lua",
    });
    let args = wrk::args(url, 1, 1, seconds, &script);
    let command = wrk::command_line(&args);
    let pids: Vec<u32> = procs.iter().map(|(_, p)| *p).collect();
    match wrk::run(&args, seconds, &pids) {
        Ok(run) => MedCell {
            rule,
            payload,
            secret,
            generator: "wrk",
            p50_us: run.report.p50_us,
            p99_us: run.report.p99_us,
            rps: run.report.rps,
            errors: run.report.errors,
            error: None,
            edge_cpu_us: run
                .cpu_ns
                .first()
                .map(|ns| *ns as f64 / 1000.0 / run.report.requests.max(1) as f64),
            command: Some(command),
        },
        Err(e) => MedCell {
            rule,
            payload,
            secret,
            generator: "wrk",
            p50_us: 0.0,
            p99_us: 0.0,
            rps: 0.0,
            errors: 0,
            error: Some(e),
            edge_cpu_us: None,
            command: Some(command),
        },
    }
}
