//! The peers table: path × backend × generator, with the latency at the lowest concurrency,
//! the throughput at the highest and the CPU the path's own processes spend per request.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::wrk::WrkRun;
use crate::latency::Row;
use crate::report::{fmt_duration, fmt_us};

/// One measured cell: a path to a backend, one generator, one concurrency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerCell {
    pub(crate) path: &'static str,
    pub(crate) backend: &'static str,
    /// `bench` (this program's closed loop) or `wrk`.
    pub(crate) generator: &'static str,
    pub(crate) concurrency: usize,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) rps: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) error: Option<String>,
    /// CPU µs per request of each process measured (backend and the path's processes).
    pub(crate) cpu: Vec<(String, f64)>,
    /// CPU µs per request of the path's own processes together (0 for direct).
    pub(crate) path_cpu_us: f64,
    /// CPU of everything else on the machine during the cell, % of one core.
    pub(crate) other_cpu_pct: f64,
    /// The wrk command, for wrk cells.
    pub(crate) command: Option<String>,
}

fn path_cpu(cpu: &[(String, f64)], hops: &[&str]) -> f64 {
    cpu.iter()
        .filter(|(n, _)| hops.contains(&n.as_str()))
        .map(|(_, c)| c)
        .sum()
}

/// The path CPU column: none for the direct path (no process between generator and backend).
fn path_cpu_fig(cell: Option<&PeerCell>) -> String {
    match cell {
        Some(c) if c.path == "direct" => "—".to_owned(),
        _ => fig(cell, |c| format!("{:.1}", c.path_cpu_us)),
    }
}

impl PeerCell {
    /// A cell of the bench's own generator.
    pub(crate) fn from_row(row: &Row, backend: &'static str, hops: &[&str]) -> PeerCell {
        let cpu: Vec<(String, f64)> = row
            .cpu
            .iter()
            .filter(|(n, _, _)| *n != "bench")
            .map(|(n, c, _)| ((*n).to_owned(), *c))
            .collect();
        PeerCell {
            path: row.path,
            backend,
            generator: "bench",
            concurrency: row.concurrency,
            p50_us: row.us(0.5),
            p90_us: row.us(0.9),
            p99_us: row.us(0.99),
            rps: row.rps,
            requests: row.hist.n,
            errors: row.errors,
            error: row.first_error.clone(),
            path_cpu_us: path_cpu(&cpu, hops),
            cpu,
            other_cpu_pct: row.foreign_cpu_pct,
            command: None,
        }
    }

    /// A cell of wrk; `procs` are the processes whose CPU `run` measured, in its order.
    pub(crate) fn from_wrk(
        path: &'static str,
        backend: &'static str,
        concurrency: usize,
        procs: &[(&'static str, u32)],
        hops: &[&str],
        run: &WrkRun,
        command: &str,
    ) -> PeerCell {
        let r = &run.report;
        let n = r.requests.max(1) as f64;
        let cpu: Vec<(String, f64)> = procs
            .iter()
            .zip(&run.cpu_ns)
            .map(|((name, _), ns)| ((*name).to_owned(), *ns as f64 / 1000.0 / n))
            .collect();
        PeerCell {
            path,
            backend,
            generator: "wrk",
            concurrency,
            p50_us: r.p50_us,
            p90_us: r.p90_us,
            p99_us: r.p99_us,
            rps: r.rps,
            requests: r.requests,
            errors: r.errors,
            error: (r.errors > 0).then(|| format!("{} socket errors or non-2xx answers", r.errors)),
            path_cpu_us: path_cpu(&cpu, hops),
            cpu,
            other_cpu_pct: run.foreign_cpu_pct,
            command: Some(command.to_owned()),
        }
    }

    /// A cell that could not be measured.
    pub(crate) fn error(
        path: &'static str,
        backend: &'static str,
        generator: &'static str,
        concurrency: usize,
        error: String,
    ) -> PeerCell {
        PeerCell {
            path,
            backend,
            generator,
            concurrency,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            rps: 0.0,
            requests: 0,
            errors: 1,
            error: Some(error),
            cpu: Vec::new(),
            path_cpu_us: 0.0,
            other_cpu_pct: 0.0,
            command: None,
        }
    }

    /// No request answered, or some failed.
    pub(crate) fn failed(&self) -> bool {
        self.requests == 0 || self.errors > 0
    }

    /// The progress line printed as the cell ends.
    pub(crate) fn progress(&self) -> String {
        format!(
            "  {:13} {:4} {:5} c={:<3}: p50 {:>8}  p99 {:>8}  {:>8.0} rps  path CPU {:5.1} µs/req  errors {}{}",
            self.path,
            self.backend,
            self.generator,
            self.concurrency,
            fmt_duration(self.p50_us),
            fmt_duration(self.p99_us),
            self.rps,
            self.path_cpu_us,
            self.errors,
            self.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
        )
    }

    pub(crate) fn json(&self) -> Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let cpu: serde_json::Map<String, Value> = self
            .cpu
            .iter()
            .map(|(n, c)| (n.clone(), json!(r1(*c))))
            .collect();
        json!({
            "path": self.path,
            "backend": self.backend,
            "generator": self.generator,
            "concurrency": self.concurrency,
            "payload_bytes": crate::plan::SMALL,
            "p50_us": r1(self.p50_us),
            "p90_us": r1(self.p90_us),
            "p99_us": r1(self.p99_us),
            "rps": r1(self.rps),
            "requests": self.requests,
            "errors": self.errors,
            "error": self.error,
            "cpu_us_per_req": cpu,
            "path_cpu_us_per_req": r1(self.path_cpu_us),
            "other_cpu_pct": r1(self.other_cpu_pct),
            "command": self.command,
        })
    }
}

/// A figure of a cell, "failed" when it failed, "—" when not measured.
fn fig(c: Option<&PeerCell>, f: impl Fn(&PeerCell) -> String) -> String {
    match c {
        Some(c) if !c.failed() => f(c),
        Some(_) => "failed".to_owned(),
        None => "—".to_owned(),
    }
}

/// The markdown table (one row per path × backend × generator) and the wrk commands.
pub(crate) fn markdown(
    cells: &[PeerCell],
    concurrency: &[usize],
    commands: &[String],
    versions: &Value,
) -> String {
    let low = concurrency.iter().copied().min().unwrap_or(1);
    let high = concurrency.iter().copied().max().unwrap_or(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Against plain tunnels: stateless 2026-07-28 `tools/call`, 100 B\n\n\
         path CPU: µs of CPU per request of the path's own processes together (rathole server + \
         client, bore server + local, quic-relay and quic-exchange entry + exit, edge + connector), from /proc; other CPU: everything else \
         on the machine during the cell, % of one core (noise when high).\n"
    );
    let _ = writeln!(
        out,
        "| path | backend | generator | c={low} p50 µs | added p50 µs | c={low} p99 µs | c={high} rps | c={high} p99 µs | path CPU µs/req c={low} | path CPU µs/req c={high} | other CPU % |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let find = |path: &str, backend: &str, generator: &str, c: usize| {
        cells.iter().find(|x| {
            x.path == path && x.backend == backend && x.generator == generator && x.concurrency == c
        })
    };
    let mut rows: Vec<(&'static str, &'static str, &'static str)> = Vec::new();
    for c in cells {
        let key = (c.path, c.backend, c.generator);
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    rows.sort_by_key(|(p, b, g)| {
        (
            super::BACKENDS.iter().position(|x| x == b),
            super::PATHS.iter().position(|x| x == p),
            *g != "bench",
        )
    });
    for (path, backend, generator) in rows {
        let lo = find(path, backend, generator, low);
        let hi = find(path, backend, generator, high);
        let direct = find("direct", backend, generator, low).filter(|d| !d.failed());
        let added = match (lo, direct) {
            (Some(l), Some(d)) if path != "direct" && !l.failed() => {
                format!("{:.0}", l.p50_us - d.p50_us)
            }
            _ => "—".to_owned(),
        };
        let other = [lo, hi]
            .iter()
            .flatten()
            .map(|c| c.other_cpu_pct)
            .fold(0.0_f64, f64::max);
        let _ = writeln!(
            out,
            "| {path} | {backend} | {generator} | {} | {added} | {} | {} | {} | {} | {} | {other:.0} |",
            fig(lo, |c| fmt_us(c.p50_us)),
            fig(lo, |c| fmt_us(c.p99_us)),
            fig(hi, |c| format!("{:.0}", c.rps)),
            fig(hi, |c| fmt_us(c.p99_us)),
            path_cpu_fig(lo),
            path_cpu_fig(hi),
        );
    }
    let failures: Vec<&PeerCell> = cells.iter().filter(|c| c.failed()).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailed cells:");
        for c in failures {
            let _ = writeln!(
                out,
                "- {} {} {} c={}: {}",
                c.path,
                c.backend,
                c.generator,
                c.concurrency,
                c.error.as_deref().unwrap_or("no request answered")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nVersions: {versions}\n\nwrk commands, in order:\n```"
    );
    for c in commands {
        let _ = writeln!(out, "{c}");
    }
    let _ = writeln!(out, "```");
    out
}
