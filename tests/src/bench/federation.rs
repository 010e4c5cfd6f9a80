//! The federation phase: `tools/list` on the federated endpoint `/mcp` over ten services
//! (`s0`…`s9`, all on one echo backend listing 22 tools each, 220 in all), with the backend's
//! list cache hint off (cold: every request fans out to the ten services) and on (warm: the
//! edge answers from its cache). Beside them, the same `tools/list` on the backend directly
//! and on one service through the tunnel (`/mcp/s0`): the "slowest live backend" the cold
//! target is measured against. Each stack is its own PKI, backend, edge and connector, so
//! that the cold edge never holds a cached list. c=1, the bench's closed loop, then `wrk`
//! (`tests/wrk/tools_list.lua`) on the two `/mcp` cells as a cross-check when it is installed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::{
    free_port, repo_root, write_connector_config, ConnectorPki, EdgeSetup, Pki, Proc,
};

use crate::client::Target;
use crate::latency::{measure, Cell, Row};
use crate::peers::wrk;
use crate::plan::{Era, Plan};
use crate::procfs::rss_kib;
use crate::report::fmt_duration;
use crate::stack::{sibling_bin, spawn_connector, spawn_edge, BENCH_CLIENTS, BENCH_EDGE};

/// Services federated, all served by the one echo backend.
pub(crate) const SERVICES: usize = 10;
/// Extra tools the backend lists beside `echo` and `blob` (`--tools`).
pub(crate) const EXTRA_TOOLS: usize = 20;
/// The warm stack's `ttlMs` (public): longer than any run.
pub(crate) const WARM_TTL_MS: u64 = 60_000;
/// The issue's targets: warm p50 at most 1 ms; cold p50 at most the slowest backend's + 2 ms.
const WARM_LIMIT_US: f64 = 1000.0;
const COLD_MARGIN_US: f64 = 2000.0;

fn tools_per_service() -> usize {
    EXTRA_TOOLS + 2
}

/// One stack of the phase: backend, edge (ten services) and connector.
struct FedStack {
    backend: Proc,
    backend_addr: std::net::SocketAddr,
    edge: Proc,
    connector: Proc,
    client_port: u16,
}

impl FedStack {
    /// A stack in `dir` whose backend hints `ttl_ms` (0: nothing is cached).
    fn start(dir: &Path, backend_threads: usize, ttl_ms: u64) -> FedStack {
        std::fs::create_dir_all(dir).expect("federation scratch folder");
        let pki = Pki::init(&dir.join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");
        let backend_addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut backend = Proc::spawn(
            "echo-backend",
            dir,
            Command::new(sibling_bin("underpass-echo-backend")).args([
                "--listen",
                &backend_addr.to_string(),
                "--threads",
                &backend_threads.to_string(),
                "--tools",
                &EXTRA_TOOLS.to_string(),
                "--list-ttl-ms",
                &ttl_ms.to_string(),
                "--list-scope",
                "public",
            ]),
        );
        backend.wait_for_log("listening on", Duration::from_secs(20));
        let names: Vec<String> = (0..SERVICES).map(|i| format!("s{i}")).collect();
        let dc1: &[&str] = &["dc1"];
        let services: Vec<(&str, &[&str])> = names.iter().map(|n| (n.as_str(), dc1)).collect();
        let setup = EdgeSetup::write(dir, false, &services, BENCH_EDGE);
        setup.add_clients_keys(BENCH_CLIENTS);
        let mut edge = spawn_edge(dir, &setup.config, "edge", &[]);
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        let url = format!("http://{backend_addr}/mcp");
        let backends: Vec<(&str, &str)> =
            names.iter().map(|n| (n.as_str(), url.as_str())).collect();
        let config = write_connector_config(
            dir,
            "dc1.toml",
            "dc1",
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &backends,
        );
        let connector = spawn_connector(dir, &config, "connector", &[]);
        for n in &names {
            setup.wait_ready(n, Duration::from_secs(30));
        }
        FedStack {
            backend,
            backend_addr,
            edge,
            connector,
            client_port: setup.client_port,
        }
    }

    fn edge_target(&self, path: &str) -> Target {
        Target::new(([127, 0, 0, 1], self.client_port).into(), path)
    }

    fn procs(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("backend", self.backend.pid()),
            ("edge", self.edge.pid()),
            ("connector", self.connector.pid()),
        ]
    }
}

/// One measured cell: what was asked, by which generator, and its figures.
pub(crate) struct FedCell {
    pub(crate) name: &'static str,
    pub(crate) generator: &'static str,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) rps: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) error: Option<String>,
    /// CPU µs per request of backend, edge, connector.
    pub(crate) cpu_us: Vec<(&'static str, f64)>,
    pub(crate) edge_rss_kib: Option<u64>,
    /// CPU of everything else on the machine during the cell, in % of one core (noise).
    pub(crate) foreign_cpu_pct: f64,
    pub(crate) command: Option<String>,
}

impl FedCell {
    fn from_row(name: &'static str, row: &Row, edge_rss_kib: Option<u64>) -> FedCell {
        FedCell {
            name,
            generator: "bench",
            p50_us: row.us(0.5),
            p90_us: row.us(0.9),
            p99_us: row.us(0.99),
            rps: row.rps,
            requests: row.hist.n,
            errors: row.errors,
            error: row.first_error.clone(),
            cpu_us: row
                .cpu
                .iter()
                .filter(|(n, _, _)| *n != "bench")
                .map(|(n, c, _)| (*n, *c))
                .collect(),
            edge_rss_kib,
            foreign_cpu_pct: row.foreign_cpu_pct,
            command: None,
        }
    }

    fn failed(&self) -> bool {
        self.requests == 0 || self.errors > 0 || self.error.is_some()
    }

    fn cpu(&self, proc_name: &str) -> Option<f64> {
        self.cpu_us
            .iter()
            .find(|(n, _)| *n == proc_name)
            .map(|(_, c)| *c)
    }

    fn json(&self) -> Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let cpu: serde_json::Map<String, Value> = self
            .cpu_us
            .iter()
            .map(|(n, c)| ((*n).to_owned(), json!(r1(*c))))
            .collect();
        json!({
            "cell": self.name,
            "generator": self.generator,
            "concurrency": 1,
            "p50_us": r1(self.p50_us),
            "p90_us": r1(self.p90_us),
            "p99_us": r1(self.p99_us),
            "rps": r1(self.rps),
            "requests": self.requests,
            "errors": self.errors,
            "error": self.error,
            "cpu_us_per_req": cpu,
            "edge_rss_kib": self.edge_rss_kib,
            "foreign_cpu_pct": r1(self.foreign_cpu_pct),
            "command": self.command,
        })
    }
}

/// What the phase found: its cells, the targets, and whether anything failed.
pub(crate) struct Outcome {
    pub(crate) cells: Vec<FedCell>,
    pub(crate) wrk_note: Option<String>,
}

impl Outcome {
    fn find(&self, name: &str, generator: &str) -> Option<&FedCell> {
        self.cells
            .iter()
            .find(|c| c.name == name && c.generator == generator)
    }

    pub(crate) fn failed(&self) -> bool {
        self.cells.iter().any(FedCell::failed)
    }

    /// The issue's two targets, from the bench's own cells.
    pub(crate) fn targets(&self) -> Vec<Value> {
        let p50 = |n: &str| self.find(n, "bench").map(|c| c.p50_us);
        let mut out = Vec::new();
        if let Some(warm) = p50("mcp-warm") {
            out.push(json!({
                "what": "federated tools/list, warm cache, p50 (µs)",
                "value": warm.round(),
                "limit": WARM_LIMIT_US,
                "met": warm <= WARM_LIMIT_US,
            }));
        }
        // One backend serves every service: the slowest live backend is it, direct.
        if let (Some(cold), Some(direct)) = (p50("mcp-cold"), p50("direct")) {
            let limit = direct + COLD_MARGIN_US;
            out.push(json!({
                "what": "federated tools/list, cold (ttl 0), p50 (µs), against the backend's direct p50 + 2 ms",
                "value": cold.round(),
                "limit": limit.round(),
                "met": cold <= limit,
            }));
        }
        out
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "services": SERVICES,
            "tools_per_service": tools_per_service(),
            "cells": self.cells.iter().map(FedCell::json).collect::<Vec<_>>(),
            "targets": self.targets(),
            "wrk_note": self.wrk_note,
        })
    }

    /// The markdown table, the targets, and the wrk commands.
    pub(crate) fn table(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## Federation (`tools/list`, {SERVICES} services × {} tools on one echo backend, c=1, {} s per cell)\n",
            tools_per_service(),
            plan.duration.as_secs_f64()
        );
        let _ = writeln!(out, "| cell | generator | p50 | p90 | p99 | rps | edge CPU µs/req | connector CPU µs/req | backend CPU µs/req | edge RSS MiB | other CPU % | errors |");
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let f = |x: Option<f64>| x.map_or("—".to_owned(), |v| format!("{v:.0}"));
        for c in &self.cells {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {}{} |",
                describe(c.name),
                c.generator,
                fmt_duration(c.p50_us),
                fmt_duration(c.p90_us),
                fmt_duration(c.p99_us),
                c.rps,
                f(c.cpu("edge")),
                f(c.cpu("connector")),
                f(c.cpu("backend")),
                c.edge_rss_kib
                    .map_or("—".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
                c.foreign_cpu_pct,
                c.errors,
                c.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            );
        }
        out.push('\n');
        for t in self.targets() {
            let _ = writeln!(
                out,
                "- {}: {} against {} — {}",
                t["what"].as_str().unwrap_or(""),
                t["value"],
                t["limit"],
                if t["met"] == true { "met" } else { "NOT met" }
            );
        }
        if let Some(note) = &self.wrk_note {
            let _ = writeln!(out, "- wrk: {note}");
        }
        for c in &self.cells {
            if let Some(cmd) = &c.command {
                let _ = writeln!(out, "- `{cmd}` ({})", describe(c.name));
            }
        }
        out
    }
}

fn describe(name: &str) -> &'static str {
    match name {
        "direct" => "backend direct (one service's list)",
        "one-service" => "`/mcp/s0` through the tunnel",
        "mcp-cold" => "`/mcp`, cold (ttl 0: 10 backend lists per request)",
        "mcp-warm" => "`/mcp`, warm (cached)",
        _ => "?",
    }
}

/// Runs the phase: the cold stack (direct, one service, `/mcp` cold), then the warm stack.
pub(crate) fn run(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    dir: &Path,
    backend_threads: usize,
) -> Outcome {
    let script = repo_root().join("tests/wrk/tools_list.lua");
    let wrk_seconds = plan.duration.as_secs_f64().round().max(1.0) as u64;
    let wrk_found = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|_| true)
        .unwrap_or(false);
    let mut out = Outcome {
        cells: Vec::new(),
        wrk_note: (!wrk_found).then(|| wrk::INSTALL_HINT.to_owned()),
    };
    let one = tools_per_service();
    let all = one * SERVICES;
    for (stack_name, ttl) in [("cold", 0), ("warm", WARM_TTL_MS)] {
        let stack = FedStack::start(
            &dir.join(format!("federation-{stack_name}")),
            backend_threads,
            ttl,
        );
        let mut targets: Vec<(&'static str, Target)> = Vec::new();
        if stack_name == "cold" {
            targets.push((
                "direct",
                Target::new(stack.backend_addr, "/mcp").listing(one),
            ));
            targets.push(("one-service", stack.edge_target("/mcp/s0").listing(one)));
            targets.push(("mcp-cold", stack.edge_target("/mcp").listing(all)));
        } else {
            targets.push(("mcp-warm", stack.edge_target("/mcp").listing(all)));
        }
        for (name, t) in targets {
            let procs = stack.procs();
            let procs: Vec<(&'static str, u32)> = if name == "direct" {
                procs[..1].to_vec()
            } else {
                procs
            };
            let cell = Cell {
                path: name,
                era: Era::Modern,
                concurrency: 1,
                payload: 0,
                bulk_workers: 0,
            };
            let row = measure(clients, plan, t.clone(), &procs, cell);
            let rss = (name != "direct").then(|| rss_kib(stack.edge.pid()));
            let c = FedCell::from_row(name, &row, rss);
            eprintln!(
                "  federation {name:11} bench: p50 {:>8}  p99 {:>8}  {:>7.0} rps  errors {}{}",
                fmt_duration(c.p50_us),
                fmt_duration(c.p99_us),
                c.rps,
                c.errors,
                c.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
            out.cells.push(c);
            if wrk_found && name.starts_with("mcp-") {
                let c = wrk_cell(name, &t, &script, wrk_seconds, &procs, &stack);
                eprintln!(
                    "  federation {name:11} wrk:   p50 {:>8}  p99 {:>8}  {:>7.0} rps  errors {}{}",
                    fmt_duration(c.p50_us),
                    fmt_duration(c.p99_us),
                    c.rps,
                    c.errors,
                    c.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
                out.cells.push(c);
            }
        }
    }
    out
}

/// The same cell measured by wrk (c=1, one thread), with the CPU of `procs` per request.
fn wrk_cell(
    name: &'static str,
    t: &Target,
    script: &Path,
    seconds: u64,
    procs: &[(&'static str, u32)],
    stack: &FedStack,
) -> FedCell {
    let args = wrk::args(&t.url(), 1, 1, seconds, script);
    let command = wrk::command_line(&args);
    let pids: Vec<u32> = procs.iter().map(|(_, p)| *p).collect();
    match wrk::run(&args, seconds, &pids) {
        Ok(run) => {
            let n = run.report.requests.max(1) as f64;
            FedCell {
                name,
                generator: "wrk",
                p50_us: run.report.p50_us,
                p90_us: run.report.p90_us,
                p99_us: run.report.p99_us,
                rps: run.report.rps,
                requests: run.report.requests,
                errors: run.report.errors,
                error: None,
                cpu_us: procs
                    .iter()
                    .zip(&run.cpu_ns)
                    .map(|((n2, _), ns)| (*n2, *ns as f64 / 1000.0 / n))
                    .collect(),
                edge_rss_kib: Some(rss_kib(stack.edge.pid())),
                foreign_cpu_pct: run.foreign_cpu_pct,
                command: Some(command),
            }
        }
        Err(e) => FedCell {
            name,
            generator: "wrk",
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            rps: 0.0,
            requests: 0,
            errors: 0,
            error: Some(e),
            cpu_us: Vec::new(),
            edge_rss_kib: None,
            foreign_cpu_pct: 0.0,
            command: Some(command),
        },
    }
}
