//! The report: markdown tables on stdout, the targets, and every figure as JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::latency::{Row, MIXED_BULK_WORKERS};
use underpass_tests::bin;

use crate::plan::{Args, Era, Plan, LARGE, SMALL};
use crate::sessions::{SessionRow, SESSIONS_ENV};

/// Microseconds as the tables print them: bare µs, or "… ms" from 10 ms up.
pub(crate) fn fmt_us(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Microseconds with their unit, for the progress lines.
pub(crate) fn fmt_duration(x: f64) -> String {
    if x >= 10_000.0 {
        fmt_us(x)
    } else {
        format!("{x:.0} µs")
    }
}

pub(crate) fn payload_name(p: usize) -> String {
    if p >= 1024 * 1024 && p % (1024 * 1024) == 0 {
        format!("{} MiB", p / (1024 * 1024))
    } else if p >= 1024 && p % 1024 == 0 {
        format!("{} KiB", p / 1024)
    } else {
        format!("{p} B")
    }
}

pub(crate) fn cpu_of(r: &Row, name: &str) -> f64 {
    r.cpu
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(0.0, |c| c.1)
}

pub(crate) fn csw_of(r: &Row, name: &str) -> f64 {
    r.cpu
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(0.0, |c| c.2)
}

/// The two processes between load generator and backend: edge and connector for the tunnel,
/// relay 1 and relay 2 for the reference relay (shown in the e and k columns).
pub(crate) fn hops_of(r: &Row) -> (&'static str, &'static str) {
    if r.path == "relay" {
        ("relay1", "relay2")
    } else {
        ("edge", "connector")
    }
}

pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

/// Every figure of a run, phase by phase.
pub(crate) struct Results {
    pub(crate) rows: Vec<Row>,
    pub(crate) mixed: Vec<Row>,
    pub(crate) restarts: Vec<Value>,
    pub(crate) restart_error: Option<String>,
    pub(crate) sessions: Vec<SessionRow>,
    pub(crate) session_error: Option<String>,
    pub(crate) failover: Vec<Value>,
    pub(crate) failover_error: Option<String>,
    pub(crate) recovery: Vec<Value>,
    pub(crate) recovery_error: Option<String>,
    /// `--reprobe-secs` as the recovery phase used it.
    pub(crate) reprobe_secs: Option<u64>,
}

impl Results {
    /// The latency cell of `path`, `era`, concurrency `c` and payload `p`.
    fn find(&self, path: &str, era: Era, c: usize, p: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.path == path && r.era == era && r.concurrency == c && r.payload == p)
    }

    /// Growth of edge + connector RSS per session (bytes) over the row without sessions.
    fn per_session(&self, s: &SessionRow) -> f64 {
        let base = self
            .sessions
            .iter()
            .find(|b| b.count == 0 && b.streams == s.streams);
        let Some(b) = base else { return 0.0 };
        let grow = (s.edge_kib + s.connector_kib) as f64 - (b.edge_kib + b.connector_kib) as f64;
        grow * 1024.0 / s.count.max(1) as f64
    }

    /// Median restart-to-ready time of the restarts by `signal` (`SIGTERM`, `SIGKILL`).
    fn restart_median(&self, signal: &str) -> Option<f64> {
        let ms: Vec<f64> = self
            .restarts
            .iter()
            .filter(|v| v["signal"] == signal)
            .filter_map(|v| v["restart_to_ready_ms"].as_f64())
            .collect();
        median(&ms)
    }

    /// Median of `key` over `runs`.
    fn median_of(runs: &[Value], key: &str) -> Option<f64> {
        median(
            &runs
                .iter()
                .filter_map(|v| v[key].as_f64())
                .collect::<Vec<_>>(),
        )
    }

    /// Whether a measurement the plan asked for failed.
    pub(crate) fn failed(&self, plan: &Plan) -> bool {
        self.rows.iter().chain(&self.mixed).any(|r| r.hist.n == 0)
            || (plan.runs("restart") && self.restart_error.is_some())
            || (plan.runs("sessions") && self.session_error.is_some())
            || (plan.runs("failover") && self.failover_error.is_some())
            || (plan.runs("recovery") && self.recovery_error.is_some())
    }
}

/// The markdown tables: direct vs tunnel, every row, mixed, sessions, restarts.
pub(crate) fn tables(plan: &Plan, res: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Direct vs tunnel (`tools/call`, closed loop, one HTTP/1.1 connection per worker; {} s per cell after {} s warm-up)\n",
        plan.duration.as_secs_f64(), plan.warmup.as_secs_f64());
    let _ = writeln!(out, "| era | result | c | direct p50 µs | tunnel p50 µs | added p50 µs | direct p99 µs | tunnel p99 µs | direct rps | tunnel rps | tunnel/direct | relay/direct | tunnel/relay |");
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    for &era in &plan.eras {
        for &p in &plan.payloads {
            for &c in &plan.concurrency {
                let (Some(d), Some(t)) =
                    (res.find("direct", era, c, p), res.find("tunnel", era, c, p))
                else {
                    continue;
                };
                let (relay_direct, tunnel_relay) = match res.find("relay", era, c, p) {
                    Some(r) => (
                        format!("{:.2}", ratio(r.rps, d.rps)),
                        format!("{:.2}", ratio(t.rps, r.rps)),
                    ),
                    None => ("—".to_string(), "—".to_string()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {c} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {relay_direct} | {tunnel_relay} |",
                    era.name(),
                    payload_name(p),
                    fmt_us(d.us(0.5)),
                    fmt_us(t.us(0.5)),
                    fmt_us(t.us(0.5) - d.us(0.5)),
                    fmt_us(d.us(0.99)),
                    fmt_us(t.us(0.99)),
                    d.rps,
                    t.rps,
                    ratio(t.rps, d.rps),
                );
            }
        }
    }
    if res.rows.iter().any(|r| r.path == "relay") {
        let _ = writeln!(out, "\nrelay = the reference path, two chained do-nothing byte-copying TCP relays (`underpass-tcp-relay`, 100 B only): the floor of any two-process tunnel on this machine. relay/direct and tunnel/relay are throughput ratios; — where the relay was not measured.");
    }
    if !res.rows.is_empty() {
        let _ = writeln!(out, "\n### All rows (CPU µs per request of each process: b = backend, e = edge, k = connector, g = load generator; for relay rows e = relay 1 and k = relay 2; cs = context switches per request of edge + connector, or relay 1 + relay 2; other CPU = CPU used by processes that are not part of the benchmark, % of one core: high values mean a noisy cell)\n");
        let _ = writeln!(out, "| path | era | result | c | p50 µs | p90 µs | p99 µs | max µs | rps | Gbit/s | CPU b/e/k/g µs | cs e+k | other CPU % | errors |");
        let _ = writeln!(
            out,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
        );
        for r in &res.rows {
            let (e, k) = hops_of(r);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.0}/{:.0}/{:.0}/{:.0} | {:.1} | {:.0} | {} |",
                r.path,
                r.era.name(),
                payload_name(r.payload),
                r.concurrency,
                fmt_us(r.us(0.5)),
                fmt_us(r.us(0.9)),
                fmt_us(r.us(0.99)),
                fmt_us(r.hist.max as f64 / 1000.0),
                r.rps,
                r.gbit(),
                cpu_of(r, "backend"),
                cpu_of(r, e),
                cpu_of(r, k),
                cpu_of(r, "bench"),
                csw_of(r, e) + csw_of(r, k),
                r.foreign_cpu_pct,
                r.errors
            );
        }
    }
    if !res.mixed.is_empty() {
        let _ = writeln!(out, "\n## Small calls beside large ones (100 B `tools/call`, c=1, measured while {MIXED_BULK_WORKERS} other workers fetch 1 MiB results over the same path)\n");
        let _ = writeln!(
            out,
            "| path | era | p50 µs alone | p50 µs beside bulk | p99 µs alone | p99 µs beside bulk | max µs beside bulk | bulk Gbit/s |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for m in &res.mixed {
            let alone = res.find(m.path, m.era, 1, SMALL);
            let alone_us = |q: f64| alone.map_or("—".into(), |a| fmt_us(a.us(q)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                m.path,
                m.era.name(),
                alone_us(0.5),
                fmt_us(m.us(0.5)),
                alone_us(0.99),
                fmt_us(m.us(0.99)),
                fmt_us(m.hist.max as f64 / 1000.0),
                m.bulk
                    .as_ref()
                    .map_or(0.0, |b| b.rps * LARGE as f64 * 8.0 / 1e9),
            );
        }
    }
    if !res.sessions.is_empty() {
        let _ = writeln!(out, "\n## Idle legacy sessions (RSS after initialize + notifications/initialized; fresh edge and connector, allocator without transparent huge pages: {})\n", SESSIONS_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        let _ = writeln!(out, "| sessions | event streams | edge RSS KiB | connector RSS KiB | growth per session (edge + connector) | backend RSS KiB |");
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
        for s in &res.sessions {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                s.count,
                if s.streams { "yes" } else { "no" },
                s.edge_kib,
                s.connector_kib,
                if s.count == 0 {
                    "—".to_string()
                } else {
                    format!("{:.0} B", res.per_session(s))
                },
                s.backend_kib
            );
        }
    }
    if !res.restarts.is_empty() {
        let _ = writeln!(
            out,
            "\n## Edge restart (signal → first successful tools/call through the new edge)\n"
        );
        let _ = writeln!(
            out,
            "SIGTERM: the edge closes its tunnels before it exits. SIGKILL: a crash; the \
             connector learns of it from the restarted edge's stateless reset.\n"
        );
        let _ = writeln!(
            out,
            "| run | signal | restart to ready ms | edge exit ms | spawn to ready ms |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|");
        for (i, v) in res.restarts.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                v["signal"].as_str().unwrap_or(""),
                v["restart_to_ready_ms"],
                v["edge_exit_ms"],
                v["spawn_to_ready_ms"]
            );
        }
    }
    if !res.failover.is_empty() {
        out.push_str(&crate::failover::table(&res.failover));
    }
    if !res.recovery.is_empty() {
        out.push_str(&crate::recovery::table(&res.recovery, res.reprobe_secs));
    }
    out
}

/// The targets (issue 5) as JSON objects; `limit: null` marks a reference row.
pub(crate) fn targets(plan: &Plan, res: &Results) -> Vec<Value> {
    let mut targets: Vec<Value> = Vec::new();
    // `limit: None` makes an informational row (a reference, not a target): printed in the
    // table, left out of the JSON `targets`.
    let mut target = |name: &str,
                      measured: Option<f64>,
                      unit: &str,
                      limit: Option<f64>,
                      le: bool| {
        let met =
            limit.and_then(|limit| measured.map(|m| if le { m <= limit } else { m >= limit }));
        targets.push(json!({
            "target": name, "measured": measured.map(|m| (m * 100.0).round() / 100.0),
            "unit": unit, "limit": limit, "kind": limit.map(|_| if le { "<=" } else { ">=" }), "met": met,
        }));
    };
    for &era in &plan.eras {
        let added = match (
            res.find("direct", era, 1, SMALL),
            res.find("tunnel", era, 1, SMALL),
        ) {
            (Some(d), Some(t)) => Some(t.us(0.5) - d.us(0.5)),
            _ => None,
        };
        target(
            &format!("added p50, 100 B, c=1, {}", era.name()),
            added,
            "µs",
            Some(150.0),
            true,
        );
        let ratio = match (
            res.find("direct", era, 64, SMALL),
            res.find("tunnel", era, 64, SMALL),
        ) {
            (Some(d), Some(t)) if d.rps > 0.0 => Some(t.rps / d.rps),
            _ => None,
        };
        target(
            &format!("throughput tunnel/direct, 100 B, c=64, {}", era.name()),
            ratio,
            "ratio",
            Some(0.5),
            false,
        );
        if plan.paths.contains(&"relay") {
            // A reference beside the target, not a target: what two do-nothing hops allow.
            let floor = match (
                res.find("direct", era, 64, SMALL),
                res.find("relay", era, 64, SMALL),
            ) {
                (Some(d), Some(r)) if d.rps > 0.0 => Some(r.rps / d.rps),
                _ => None,
            };
            target(
                &format!(
                    "two-hop TCP relay (floor) throughput/direct, 100 B, c=64, {}",
                    era.name()
                ),
                floor,
                "ratio",
                None,
                false,
            );
        }
        let g1 = res.find("tunnel", era, 1, LARGE).map(Row::gbit);
        target(
            &format!("1 MiB through the tunnel, c=1, {}", era.name()),
            g1,
            "Gbit/s",
            Some(1.0),
            false,
        );
        let best = res
            .rows
            .iter()
            .filter(|r| r.path == "tunnel" && r.era == era && r.payload == LARGE)
            .map(Row::gbit)
            .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
        target(
            &format!("1 MiB through the tunnel, best concurrency, {}", era.name()),
            best,
            "Gbit/s",
            Some(1.0),
            false,
        );
    }
    let s10k = res
        .sessions
        .iter()
        .filter(|s| !s.streams && s.count > 0)
        .max_by_key(|s| s.count);
    target(
        &format!(
            "idle legacy sessions ({}), growth per session edge + connector",
            s10k.map_or(0, |s| s.count)
        ),
        s10k.map(|s| res.per_session(s) / 1024.0),
        "KiB",
        Some(32.0),
        true,
    );
    target(
        "restart to ready (median)",
        res.restart_median("SIGTERM"),
        "ms",
        Some(1000.0),
        true,
    );
    target(
        "restart to ready after SIGKILL (median)",
        res.restart_median("SIGKILL"),
        "ms",
        None,
        true,
    );
    if plan.runs("failover") {
        target(
            "connector SIGKILL detected by the edge (median, issue 13)",
            Results::median_of(&res.failover, "detect_ms"),
            "ms",
            Some(2000.0),
            true,
        );
    }
    if plan.runs("recovery") {
        target(
            "first call with UDP dropped, from connector start (issue 13)",
            res.recovery
                .first()
                .and_then(|v| v["first_call_ms"].as_f64()),
            "ms",
            Some(5000.0),
            true,
        );
    }
    targets
}

/// The targets as a markdown table.
pub(crate) fn targets_table(targets: &[Value]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Targets (issues 5 and 13)\n");
    let _ = writeln!(out, "| target | measured | limit | met |");
    let _ = writeln!(out, "|---|---:|---:|---|");
    for t in targets {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} | {} |",
            t["target"].as_str().unwrap_or(""),
            t["measured"]
                .as_f64()
                .map_or("—".into(), |m| format!("{m}")),
            t["unit"].as_str().unwrap_or(""),
            match t["limit"].as_f64() {
                Some(l) => format!(
                    "{} {l} {}",
                    t["kind"].as_str().unwrap_or(""),
                    t["unit"].as_str().unwrap_or("")
                ),
                None => "—".into(),
            },
            match t["met"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }
    out
}

/// The machine the figures were measured on.
pub(crate) fn machine() -> Value {
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}

/// Every figure as one JSON document.
pub(crate) fn json(args: &Args, plan: &Plan, res: &Results, targets: &[Value]) -> Value {
    let binaries: Vec<Value> = ["underpass-edge", "underpass-connector"]
        .iter()
        .map(|b| {
            let modified = std::fs::metadata(bin(b))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            json!({"name": b, "modified_unix": modified})
        })
        .collect();
    json!({
        "machine": machine(),
        "config": {
            "mode": if args.smoke { "smoke" } else if args.quick { "quick" } else { "full" },
            "duration_s": plan.duration.as_secs_f64(),
            "warmup_s": plan.warmup.as_secs_f64(),
            "client_threads": args.client_threads,
            "backend_threads": args.backend_threads,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "tunnel_env": args.tunnel_env,
            "transport": args.transport,
            "binaries": binaries,
        },
        "latency": res.rows.iter().filter(|r| r.path != "relay").map(Row::json).collect::<Vec<_>>(),
        // The reference path (two do-nothing TCP relays, 100 B only), kept apart so that
        // `latency` stays direct and tunnel rows; the e/k CPU of these rows is under
        // `relay1` and `relay2`.
        "reference_relay": res.rows.iter().filter(|r| r.path == "relay").map(Row::json).collect::<Vec<_>>(),
        // 100 B calls at c=1 measured beside `bulk_workers` workers fetching 1 MiB results.
        "mixed": res.mixed.iter().map(Row::json).collect::<Vec<_>>(),
        // The sessions phase's edge and connector ran with this extra environment.
        "sessions_env": SESSIONS_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "sessions": res.sessions.iter().map(|s| json!({
            "count": s.count,
            "event_streams": s.streams,
            "edge_rss_kib": s.edge_kib,
            "connector_rss_kib": s.connector_kib,
            "backend_rss_kib": s.backend_kib,
            "per_session_bytes": if s.count == 0 { Value::Null } else { json!(res.per_session(s).round()) },
            "open_seconds": (s.seconds * 100.0).round() / 100.0,
        })).collect::<Vec<_>>(),
        "sessions_error": res.session_error,
        "restart_to_ready_ms": res.restart_median("SIGTERM"),
        "kill_restart_to_ready_ms": res.restart_median("SIGKILL"),
        "restarts": res.restarts,
        "restart_error": res.restart_error,
        "failover": res.failover,
        "failover_error": res.failover_error,
        "recovery": res.recovery,
        "recovery_error": res.recovery_error,
        "reprobe_secs": res.reprobe_secs,
        "targets": targets.iter().filter(|t| !t["limit"].is_null()).collect::<Vec<_>>(),
    })
}
