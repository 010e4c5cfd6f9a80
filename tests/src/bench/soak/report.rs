//! The soak's report: a row per interval, the drift per hour of every process figure, the
//! totals per kind of operation, as markdown and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::load::{Kind, Tally, KINDS, LARGE, SESSION, SMALL_LEGACY, SMALL_MODERN};
use super::probe::{Figures, Sample};
use crate::hist::Hist;
use crate::plan::SoakPlan;
use crate::report::fmt_us;

/// One interval of the soak: the figures at its end and what the load did during it.
pub(crate) struct Row {
    /// Seconds since the load started, at the start and end of the interval.
    pub(crate) from: f64,
    pub(crate) to: f64,
    pub(crate) sample: Sample,
    pub(crate) tally: Tally,
    pub(crate) reloads: u64,
    pub(crate) reloads_seen: u64,
    pub(crate) restarts: u64,
}

/// A connector restart: when, and how long until the new connector's tunnel was up.
pub(crate) struct Restart {
    pub(crate) at: f64,
    pub(crate) ready_ms: f64,
}

/// How long after the load each process took to return to its idle tasks and descriptors
/// (`None`: it did not, within its window).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Settled {
    pub(crate) edge_s: Option<f64>,
    pub(crate) connector_s: Option<f64>,
    /// How long the connector was given.
    pub(crate) connector_window_s: f64,
}

/// Everything a soak measured.
pub(crate) struct Soak {
    pub(crate) plan: SoakPlan,
    pub(crate) rows: Vec<Row>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) restarts: Vec<Restart>,
    /// Before the load started, and after it ended and the edge let go of its sessions.
    pub(crate) idle_before: Option<Sample>,
    pub(crate) idle_after: Option<Sample>,
    pub(crate) settled: Settled,
    /// What went wrong; empty for a clean soak.
    pub(crate) failures: Vec<String>,
}

/// The slope of a figure over time, fitted within each process lifetime (a pooled
/// least-squares fit: each lifetime has its own level, all share one slope), per hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Drift {
    pub(crate) per_hour: Option<f64>,
    /// Standard error of `per_hour`.
    pub(crate) stderr: Option<f64>,
    pub(crate) points: usize,
    pub(crate) first: Option<f64>,
    pub(crate) last: Option<f64>,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
}

/// `points` are (lifetime, seconds, value).
pub(crate) fn drift(points: &[(u32, f64, f64)]) -> Drift {
    let mut by_life: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for &(life, t, y) in points {
        by_life.entry(life).or_default().push((t, y));
    }
    let (mut sxx, mut sxy, mut n, mut groups) = (0.0, 0.0, 0usize, 0usize);
    let mut centred = Vec::new();
    for pts in by_life.values().filter(|p| p.len() >= 2) {
        let k = pts.len() as f64;
        let mt = pts.iter().map(|p| p.0).sum::<f64>() / k;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
        for &(t, y) in pts {
            sxx += (t - mt) * (t - mt);
            sxy += (t - mt) * (y - my);
            centred.push((t - mt, y - my));
        }
        n += pts.len();
        groups += 1;
    }
    let slope = (sxx > 0.0).then(|| sxy / sxx);
    let stderr = slope.and_then(|b| {
        let dof = n.checked_sub(groups + 1).filter(|d| *d > 0)?;
        let rss: f64 = centred.iter().map(|(t, y)| (y - b * t).powi(2)).sum();
        Some((rss / dof as f64 / sxx).sqrt() * 3600.0)
    });
    let ys = points.iter().map(|p| p.2);
    Drift {
        per_hour: slope.map(|b| b * 3600.0),
        stderr,
        points: points.len(),
        first: points.first().map(|p| p.2),
        last: points.last().map(|p| p.2),
        min: ys.clone().reduce(f64::min),
        max: ys.reduce(f64::max),
    }
}

/// The figures fitted for each process: (name, unit, value).
type Metric = (&'static str, &'static str, fn(&Figures) -> Option<f64>);
const METRICS: [Metric; 4] = [
    ("rss", "MiB", |f| Some(f.rss_kib as f64 / 1024.0)),
    ("fds", "", |f| Some(f.fds as f64)),
    ("threads", "", |f| Some(f.threads as f64)),
    ("tasks", "", |f| f.tasks.map(|t| t as f64)),
];

impl Soak {
    /// The drift of every figure of `process` ("edge" or "connector"), warm-up excluded: the
    /// first interval of the run and of each process lifetime.
    pub(crate) fn drifts(&self, process: &str) -> Vec<(&'static str, &'static str, Drift)> {
        let warm = self.plan.interval.as_secs_f64();
        METRICS
            .iter()
            .map(|(name, unit, get)| {
                let points: Vec<(u32, f64, f64)> = self
                    .samples
                    .iter()
                    .filter_map(|s| {
                        let (f, born) = if process == "edge" {
                            (&s.edge, 0.0)
                        } else {
                            (&s.connector, s.connector_since)
                        };
                        let warmed = s.t >= warm - 1e-6 && s.t - born >= warm - 1e-6;
                        warmed.then(|| get(f).map(|v| (f.pid, s.t, v))).flatten()
                    })
                    .collect();
                (*name, *unit, drift(&points))
            })
            .collect()
    }

    pub(crate) fn totals(&self) -> Tally {
        let mut all = Tally::new();
        for r in &self.rows {
            all.merge(&r.tally);
        }
        all
    }
}

fn ms(h: &Hist, q: f64) -> String {
    if h.n == 0 {
        "—".into()
    } else {
        fmt_us(h.quantile(q) as f64 / 1000.0)
    }
}

fn mins(t: f64) -> String {
    let s = t.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("—".into(), |v| v.to_string())
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

/// Small calls of both eras in one histogram.
fn small(t: &Tally) -> Hist {
    let mut h = t.kind(SMALL_LEGACY).hist.clone();
    h.merge(&t.kind(SMALL_MODERN).hist);
    h
}

/// The soak as markdown: intervals, drift, totals, and what failed.
pub(crate) fn tables(s: &Soak) -> String {
    let mut out = String::new();
    let p = &s.plan;
    let _ = writeln!(
        out,
        "\n## Soak ({} of mixed load; a row per {} s; latency µs unless marked)\n",
        mins(p.duration.as_secs_f64()),
        p.interval.as_secs_f64()
    );
    let _ = writeln!(out, "| t | edge RSS MiB | edge fds | edge threads | edge tasks | edge sessions | conn RSS MiB | conn fds | conn threads | conn tasks | small p50 | small p99 | 1 MiB p50 | 1 MiB p99 | session p50 | ops/s | errors (restart) | errors (other) | reloads | restarts |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &s.rows {
        let (e, c) = (&r.sample.edge, &r.sample.connector);
        let sm = small(&r.tally);
        let large = &r.tally.kind(LARGE).hist;
        let ok: u64 = r.tally.0.values().map(|k| k.ok).sum();
        let restart_err: u64 = r.tally.0.values().map(|k| k.restart_errors).sum();
        let err: u64 = r.tally.0.values().map(|k| k.errors).sum();
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {restart_err} | {err} | {} | {} |",
            mins(r.to),
            e.rss_kib as f64 / 1024.0,
            e.fds,
            e.threads,
            opt(e.tasks),
            opt(r.sample.sessions),
            c.rss_kib as f64 / 1024.0,
            c.fds,
            c.threads,
            opt(c.tasks),
            ms(&sm, 0.5),
            ms(&sm, 0.99),
            ms(large, 0.5),
            ms(large, 0.99),
            ms(&r.tally.kind(SESSION).hist, 0.5),
            ok as f64 / (r.to - r.from).max(1e-9),
            r.reloads,
            r.restarts,
        );
    }
    let _ = writeln!(
        out,
        "\nDrift: least-squares slope over the samples (every {:.1} s), the first interval of the run and of each process lifetime excluded as warm-up; the connector's slope is fitted within each of its lifetimes (it is restarted).\n",
        p.sample.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| process | figure | first | last | min | max | drift per hour | ± |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for process in ["edge", "connector"] {
        for (name, unit, d) in s.drifts(process) {
            let digits = if unit == "MiB" { 1 } else { 0 };
            let _ = writeln!(
                out,
                "| {process} | {name}{} | {} | {} | {} | {} | {} | {} |",
                if unit.is_empty() {
                    String::new()
                } else {
                    format!(" {unit}")
                },
                num(d.first, digits),
                num(d.last, digits),
                num(d.min, digits),
                num(d.max, digits),
                num(d.per_hour, 1),
                num(d.stderr, 1),
            );
        }
    }
    if let (Some(b), Some(a)) = (&s.idle_before, &s.idle_after) {
        let _ = writeln!(
            out,
            "\nIdle before the load → after it: edge tasks {} → {}, fds {} → {}, sessions {} → {}, RSS {:.1} → {:.1} MiB; connector tasks {} → {}, fds {} → {}.",
            opt(b.edge.tasks), opt(a.edge.tasks), b.edge.fds, a.edge.fds,
            opt(b.sessions), opt(a.sessions),
            b.edge.rss_kib as f64 / 1024.0, a.edge.rss_kib as f64 / 1024.0,
            opt(b.connector.tasks), opt(a.connector.tasks), b.connector.fds, a.connector.fds,
        );
        let st = &s.settled;
        let _ = writeln!(
            out,
            "Back to the idle tasks and fds: edge {}, connector {} (given {:.0} s; it pools idle backend connections for 60–120 s).",
            st.edge_s.map_or("not within 10 s".into(), |t| format!("after {t:.1} s")),
            st.connector_s.map_or("not".into(), |t| format!("after {t:.1} s")),
            st.connector_window_s,
        );
    }
    let total = s.totals();
    let secs = p.duration.as_secs_f64().max(1e-9);
    let _ = writeln!(out, "\n| operation | ok | per s | p50 | p90 | p99 | max | errors (restart) | errors (other) | first other error |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for name in KINDS {
        let k: &Kind = total.kind(name);
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            k.ok,
            k.ok as f64 / secs,
            ms(&k.hist, 0.5),
            ms(&k.hist, 0.9),
            ms(&k.hist, 0.99),
            if k.hist.n == 0 {
                "—".into()
            } else {
                fmt_us(k.hist.max as f64 / 1000.0)
            },
            k.restart_errors,
            k.errors,
            k.first_error.as_deref().unwrap_or("")
        );
    }
    let ready: Vec<String> = s
        .restarts
        .iter()
        .map(|r| format!("{:.0}", r.ready_ms))
        .collect();
    let _ = writeln!(
        out,
        "\nConnector restarts: {} (SIGTERM until the new tunnel was up, ms: {}). Policy reloads: {} written, {} logged by the edge.",
        s.restarts.len(),
        if ready.is_empty() { "—".into() } else { ready.join(", ") },
        s.rows.iter().map(|r| r.reloads).sum::<u64>(),
        s.rows.iter().map(|r| r.reloads_seen).sum::<u64>(),
    );
    if s.failures.is_empty() {
        let _ = writeln!(out, "\nNo failure outside connector restarts.");
    } else {
        let _ = writeln!(out, "\n**Failures:**");
        for f in &s.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

fn hist_json(h: &Hist) -> Value {
    let us = |q: f64| (h.quantile(q) as f64 / 100.0).round() / 10.0;
    if h.n == 0 {
        return json!(null);
    }
    json!({
        "p50_us": us(0.5),
        "p90_us": us(0.9),
        "p99_us": us(0.99),
        "max_us": (h.max as f64 / 100.0).round() / 10.0,
    })
}

fn tally_json(t: &Tally, seconds: f64) -> Value {
    let mut m = serde_json::Map::new();
    for (name, k) in &t.0 {
        m.insert(
            (*name).into(),
            json!({
                "ok": k.ok,
                "per_s": (k.ok as f64 / seconds.max(1e-9) * 10.0).round() / 10.0,
                "latency": hist_json(&k.hist),
                "restart_errors": k.restart_errors,
                "errors": k.errors,
                "first_error": k.first_error,
            }),
        );
    }
    Value::Object(m)
}

fn drift_json(d: &Drift) -> Value {
    let r = |v: Option<f64>| v.map(|v| (v * 1000.0).round() / 1000.0);
    json!({
        "per_hour": r(d.per_hour),
        "stderr_per_hour": r(d.stderr),
        "points": d.points,
        "first": r(d.first),
        "last": r(d.last),
        "min": r(d.min),
        "max": r(d.max),
    })
}

/// The soak as JSON (the `soak` member of the bench's document).
pub(crate) fn json(s: &Soak) -> Value {
    let p = &s.plan;
    let mut drift = serde_json::Map::new();
    for process in ["edge", "connector"] {
        let mut m = serde_json::Map::new();
        for (name, unit, d) in s.drifts(process) {
            let key = if unit.is_empty() {
                name.to_string()
            } else {
                format!("{name}_{}", unit.to_lowercase())
            };
            m.insert(key, drift_json(&d));
        }
        drift.insert(process.into(), Value::Object(m));
    }
    json!({
        "config": {
            "duration_s": p.duration.as_secs_f64(),
            "interval_s": p.interval.as_secs_f64(),
            "sample_s": p.sample.as_secs_f64(),
            "reload_every_s": p.reload_every.as_secs_f64(),
            "restart_every_s": p.restart_every.as_secs_f64(),
            "small_calls_per_s": p.small_rate,
            "large_calls_per_s": p.large_rate,
            "event_streams": p.streams,
            "stream_hold_max_s": p.stream_hold.as_secs_f64(),
            "sessions_churned_per_s": p.churn_rate,
        },
        "intervals": s.rows.iter().map(|r| json!({
            "from_s": (r.from * 10.0).round() / 10.0,
            "to_s": (r.to * 10.0).round() / 10.0,
            "sample": r.sample.json(),
            "operations": tally_json(&r.tally, r.to - r.from),
            "small_latency": hist_json(&small(&r.tally)),
            "reloads": r.reloads,
            "reloads_seen": r.reloads_seen,
            "restarts": r.restarts,
        })).collect::<Vec<_>>(),
        "samples": s.samples.iter().map(Sample::json).collect::<Vec<_>>(),
        "drift": drift,
        "totals": tally_json(&s.totals(), p.duration.as_secs_f64()),
        "restarts": s.restarts.iter().map(|r| json!({
            "at_s": (r.at * 10.0).round() / 10.0,
            "ready_ms": r.ready_ms.round(),
        })).collect::<Vec<_>>(),
        "reloads": s.rows.iter().map(|r| r.reloads).sum::<u64>(),
        "reloads_seen": s.rows.iter().map(|r| r.reloads_seen).sum::<u64>(),
        "idle_before": s.idle_before.as_ref().map(Sample::json),
        "idle_after": s.idle_after.as_ref().map(Sample::json),
        "settled": {
            "edge_s": s.settled.edge_s,
            "connector_s": s.settled.connector_s,
            "connector_window_s": s.settled.connector_window_s,
        },
        "failures": s.failures,
    })
}

#[cfg(test)]
mod tests {
    use super::drift;

    #[test]
    fn drift_is_the_slope_within_each_lifetime() {
        // 2 per second for an hour-long line: 7200 per hour, no noise.
        let line: Vec<(u32, f64, f64)> = (0..10)
            .map(|i| (1, i as f64, 5.0 + 2.0 * i as f64))
            .collect();
        let d = drift(&line);
        assert!((d.per_hour.unwrap() - 7200.0).abs() < 1e-6, "{d:?}");
        assert!(d.stderr.unwrap() < 1e-6, "{d:?}");
        assert_eq!((d.first, d.last), (Some(5.0), Some(23.0)));

        // A sawtooth of restarted processes that each stay flat: no drift, although the
        // levels differ and a fit across lifetimes would see one.
        let saw: Vec<(u32, f64, f64)> = (0..30)
            .map(|i| (i / 10, i as f64, 100.0 * f64::from(i / 10)))
            .collect();
        assert_eq!(drift(&saw).per_hour, Some(0.0));

        // Each lifetime grows 1 per second from its own level: that slope, per hour.
        let grow: Vec<(u32, f64, f64)> = (0..30)
            .map(|i| {
                (
                    i / 10,
                    i as f64,
                    f64::from(i % 10) + 50.0 * f64::from(i / 10),
                )
            })
            .collect();
        assert!((drift(&grow).per_hour.unwrap() - 3600.0).abs() < 1e-6);

        // Too few points to fit: no slope, but the figures are still reported.
        let one = drift(&[(1, 0.0, 3.0)]);
        assert_eq!((one.per_hour, one.max), (None, Some(3.0)));
    }
}
