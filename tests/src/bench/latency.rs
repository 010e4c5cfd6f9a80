//! Latency and throughput cells: closed-loop workers, one HTTP/1.1 connection each, on
//! current-thread load runtimes; CPU and context switches of every process per request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{connect_to, Caller, Target};
use crate::hist::Hist;
use crate::plan::{Era, Plan, LARGE, SMALL};
use crate::procfs::{machine_busy_ns, proc_stat, ProcStat};
use crate::report::{fmt_duration, payload_name};
use crate::stack::Stack;

/// Workers fetching 1 MiB results in the background of the mixed phase.
pub(crate) const MIXED_BULK_WORKERS: usize = 16;

#[derive(Default)]
pub(crate) struct WorkerOut {
    pub(crate) hist: Option<Hist>,
    pub(crate) count: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) last: Option<Instant>,
}

pub(crate) async fn worker(
    t: Arc<Target>,
    era: Era,
    payload: usize,
    measure_from: Instant,
    end: Instant,
    budget: Option<Arc<AtomicI64>>,
) -> WorkerOut {
    let mut out = WorkerOut {
        hist: Some(Hist::new()),
        ..Default::default()
    };
    let hist = out.hist.as_mut().expect("hist");
    let mut verified = false;
    // Reconnect after errors (bounded by the deadline).
    while Instant::now() < end {
        let setup = async {
            let mut s = connect_to(&t).await?;
            let c = Caller::new(&mut s, &t, era, payload).await?;
            Ok::<_, String>((s, c))
        };
        let (mut sender, mut caller) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break;
            }
            if let Some(b) = &budget {
                if t0 >= measure_from && b.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    return out;
                }
            }
            match caller.call(&mut sender, &t, !verified).await {
                Ok(n) => {
                    verified = true;
                    let t1 = Instant::now();
                    if t1 >= measure_from && t1 <= end {
                        hist.record((t1 - t0).as_nanos() as u64);
                        out.count += 1;
                        out.bytes += n as u64;
                        out.last = Some(t1);
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(e);
                    break;
                }
            }
        }
        caller.close(&mut sender, &t).await;
        if Instant::now() >= end {
            break;
        }
    }
    out
}

pub(crate) struct Row {
    pub(crate) path: &'static str,
    pub(crate) era: Era,
    pub(crate) concurrency: usize,
    pub(crate) payload: usize,
    pub(crate) hist: Hist,
    pub(crate) rps: f64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// CPU µs per request and context switches per request, per process.
    pub(crate) cpu: Vec<(&'static str, f64, f64)>,
    /// CPU used by processes other than ours during the cell, in % of one core (noise).
    pub(crate) foreign_cpu_pct: f64,
    /// The background bulk load this row was measured under (mixed phase).
    pub(crate) bulk: Option<Bulk>,
}

/// A background load of 1 MiB calls running while small calls are measured.
pub(crate) struct Bulk {
    pub(crate) workers: usize,
    pub(crate) rps: f64,
    pub(crate) errors: u64,
}

impl Row {
    pub(crate) fn us(&self, q: f64) -> f64 {
        self.hist.quantile(q) as f64 / 1000.0
    }
    pub(crate) fn gbit(&self) -> f64 {
        self.rps * self.payload as f64 * 8.0 / 1e9
    }
    pub(crate) fn json(&self) -> Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let mut cpu = serde_json::Map::new();
        let mut csw = serde_json::Map::new();
        for (name, c, s) in &self.cpu {
            cpu.insert((*name).into(), json!(r1(*c)));
            csw.insert((*name).into(), json!((s * 100.0).round() / 100.0));
        }
        json!({
            "path": self.path,
            "era": self.era.name(),
            "concurrency": self.concurrency,
            "payload_bytes": self.payload,
            "p50_us": r1(self.us(0.5)),
            "p90_us": r1(self.us(0.9)),
            "p99_us": r1(self.us(0.99)),
            "max_us": r1(self.hist.max as f64 / 1000.0),
            "mean_us": r1(self.hist.mean() as f64 / 1000.0),
            "rps": r1(self.rps),
            "gbit_s": (self.gbit() * 1000.0).round() / 1000.0,
            "requests": self.hist.n,
            "errors": self.errors,
            "first_error": self.first_error,
            "cpu_us_per_req": cpu,
            "ctx_switches_per_req": csw,
            "foreign_cpu_pct": r1(self.foreign_cpu_pct),
            "bulk_workers": self.bulk.as_ref().map(|b| b.workers),
            "bulk_rps": self.bulk.as_ref().map(|b| r1(b.rps)),
            "bulk_errors": self.bulk.as_ref().map(|b| b.errors),
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_cell(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    stack: &Stack,
    path: &'static str,
    era: Era,
    concurrency: usize,
    payload: usize,
    bulk_workers: usize,
) -> Row {
    let t = match path {
        "direct" => stack.direct(),
        "relay" => stack
            .relay()
            .expect("relay processes started for the relay path"),
        _ => stack.tunnel(),
    };
    let mut procs: Vec<(&'static str, u32)> = vec![("backend", stack.backend.pid())];
    match (path, &stack.relay) {
        ("tunnel", _) => {
            procs.push(("edge", stack.edge.pid()));
            procs.push(("connector", stack.connector.pid()));
        }
        ("relay", Some(r)) => {
            procs.push(("relay1", r.relay1.pid()));
            procs.push(("relay2", r.relay2.pid()));
        }
        _ => {}
    }
    let cell = Cell {
        path,
        era,
        concurrency,
        payload,
        bulk_workers,
    };
    measure(clients, plan, t, &procs, cell)
}

/// What one cell measures, wherever its target is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub(crate) path: &'static str,
    pub(crate) era: Era,
    pub(crate) concurrency: usize,
    pub(crate) payload: usize,
    /// Background 1 MiB workers (0: none).
    pub(crate) bulk_workers: usize,
}

/// Runs one cell against `t`, with the CPU of `procs` (and of this process) per request.
pub(crate) fn measure(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    t: Target,
    procs: &[(&'static str, u32)],
    cell: Cell,
) -> Row {
    let Cell {
        path,
        era,
        concurrency,
        payload,
        bulk_workers,
    } = cell;
    let t = Arc::new(t);
    let mut procs = procs.to_vec();
    procs.push(("bench", std::process::id()));
    let start = Instant::now();
    // Connection (and session) setup happens inside the warm-up.
    let measure_from = start + plan.warmup;
    // A fixed request count applies to the latency phase: under a background load the cell
    // runs for the duration, so the load stops when the measurement does.
    let budget = plan
        .requests
        .filter(|_| bulk_workers == 0)
        .map(|n| Arc::new(AtomicI64::new(n as i64)));
    let end = measure_from
        + if budget.is_some() {
            Duration::from_secs(600)
        } else {
            plan.duration
        };
    // wrk-style: each load thread runs its own current-thread runtime and its share of the
    // workers, so a response never wakes a task on another thread of the load generator.
    // A background bulk load (1 MiB calls, not measured) runs on the last load thread, so the
    // measured workers keep threads of their own.
    let measuring = if bulk_workers > 0 {
        clients.len() - 1
    } else {
        clients.len()
    };
    let threads = measuring.min(concurrency).max(1);
    let (outs, bulk_outs, (before, after), (m0, m1)) = std::thread::scope(|scope| {
        let bulk = (bulk_workers > 0).then(|| {
            let (rt, t) = (&clients[clients.len() - 1], t.clone());
            scope.spawn(move || {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..bulk_workers {
                        set.spawn(worker(t.clone(), era, LARGE, measure_from, end, None));
                    }
                    let mut outs = Vec::new();
                    while let Some(r) = set.join_next().await {
                        outs.push(r.unwrap_or_default());
                    }
                    outs
                })
            })
        });
        let handles: Vec<_> = clients[..threads]
            .iter()
            .enumerate()
            .map(|(k, rt)| {
                let n = concurrency / threads + usize::from(k < concurrency % threads);
                let t = t.clone();
                let budget = budget.clone();
                scope.spawn(move || {
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for _ in 0..n {
                            set.spawn(worker(
                                t.clone(),
                                era,
                                payload,
                                measure_from,
                                end,
                                budget.clone(),
                            ));
                        }
                        let mut outs = Vec::new();
                        while let Some(r) = set.join_next().await {
                            outs.push(r.unwrap_or_default());
                        }
                        outs
                    })
                })
            })
            .collect();
        let sleep_until =
            |at: Instant| std::thread::sleep(at.saturating_duration_since(Instant::now()));
        sleep_until(measure_from);
        let before: Vec<ProcStat> = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
        let machine_before = (Instant::now(), machine_busy_ns());
        if budget.is_none() {
            sleep_until(end);
        }
        let after: Vec<ProcStat>;
        let machine_after;
        let outs: Vec<WorkerOut> = if budget.is_none() {
            after = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
            machine_after = (Instant::now(), machine_busy_ns());
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        } else {
            let outs = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            after = procs.iter().map(|(_, p)| proc_stat(*p)).collect();
            machine_after = (Instant::now(), machine_busy_ns());
            outs
        };
        let bulk_outs = bulk.map(|h| h.join().unwrap_or_default());
        (
            outs,
            bulk_outs,
            (before, after),
            (machine_before, machine_after),
        )
    });
    let mut hist = Hist::new();
    let mut errors = 0;
    let mut first_error = None;
    let last = outs.iter().filter_map(|o| o.last).max();
    for o in outs {
        if let Some(h) = &o.hist {
            hist.merge(h);
        }
        errors += o.errors;
        if first_error.is_none() {
            first_error = o.first_error;
        }
    }
    let seconds = match (budget.is_some(), last) {
        (true, Some(l)) => (l - measure_from).as_secs_f64(),
        _ => plan.duration.as_secs_f64(),
    };
    let rps = hist.n as f64 / seconds;
    let bulk = bulk_outs.map(|outs| Bulk {
        workers: bulk_workers,
        rps: outs.iter().map(|o| o.count).sum::<u64>() as f64 / plan.duration.as_secs_f64(),
        errors: outs.iter().map(|o| o.errors).sum(),
    });
    let n = hist.n.max(1) as f64;
    let ours: u64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.cpu_ns.saturating_sub(b.cpu_ns))
        .sum();
    let foreign_cpu_pct = m1.1.saturating_sub(m0.1).saturating_sub(ours) as f64
        / (m1.0 - m0.0).as_nanos().max(1) as f64
        * 100.0;
    // Under a background load the CPU is mostly the load's: per measured request it says nothing.
    let cpu = procs
        .iter()
        .filter(|_| bulk_workers == 0)
        .zip(before.iter().zip(&after))
        .map(|((name, _), (b, a))| {
            (
                *name,
                a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1000.0 / n,
                a.csw.saturating_sub(b.csw) as f64 / n,
            )
        })
        .collect();
    Row {
        path,
        era,
        concurrency,
        payload,
        hist,
        rps,
        errors,
        first_error,
        cpu,
        foreign_cpu_pct,
        bulk,
    }
}

/// The latency phase: every cell of era × payload × concurrency × path, one after the other.
pub(crate) fn latency_phase(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    stack: &Stack,
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for &era in &plan.eras {
        for &payload in &plan.payloads {
            for &c in &plan.concurrency {
                for &path in &plan.paths {
                    if !plan.measures(path, payload) {
                        continue;
                    }
                    let row = run_cell(clients, plan, stack, path, era, c, payload, 0);
                    eprintln!(
                        "  {path:6} {:6} {:>7} c={c:<3}: p50 {:>8}  p99 {:>8}  {:>9.0} rps  errors {}{}",
                        era.name(),
                        payload_name(payload),
                        fmt_duration(row.us(0.5)),
                        fmt_duration(row.us(0.99)),
                        row.rps,
                        row.errors,
                        row.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                    );
                    rows.push(row);
                }
            }
        }
    }
    rows
}

/// The mixed phase: small calls at c=1 while [`MIXED_BULK_WORKERS`] workers fetch 1 MiB
/// results over the same path.
pub(crate) fn mixed_phase(
    clients: &[tokio::runtime::Runtime],
    plan: &Plan,
    stack: &Stack,
) -> Vec<Row> {
    let mut mixed: Vec<Row> = Vec::new();
    if clients.len() < 2 {
        eprintln!("  mixed phase skipped: it needs --client-threads 2 or more");
        return mixed;
    }
    for &era in &plan.eras {
        for path in ["direct", "tunnel"] {
            if !plan.paths.contains(&path) {
                continue;
            }
            let row = run_cell(
                clients,
                plan,
                stack,
                path,
                era,
                1,
                SMALL,
                MIXED_BULK_WORKERS,
            );
            eprintln!(
                "  {path:6} {:6} 100 B c=1 beside {MIXED_BULK_WORKERS} × 1 MiB: p50 {:>8}  p99 {:>8}  bulk {:.0} rps  errors {}{}",
                era.name(),
                fmt_duration(row.us(0.5)),
                fmt_duration(row.us(0.99)),
                row.bulk.as_ref().map_or(0.0, |b| b.rps),
                row.errors + row.bulk.as_ref().map_or(0, |b| b.errors),
                row.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
            );
            mixed.push(row);
        }
    }
    mixed
}
