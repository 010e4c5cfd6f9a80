//! `--soak DURATION`: a mixed load held for a long time against a real edge, connector and
//! echo backend, watching for anything that grows.
//!
//! The load ([`load`]), paced so that it is the same from the first minute to the last: small
//! `tools/call`s in both eras, 1 MiB results, legacy GET event streams opened, held and closed,
//! sessions opened and deleted on new connections (each with a call the policy denies), while
//! the controller (this module, on the main thread) rewrites the policy file and SIGHUPs the
//! edge, restarts the connector (SIGTERM, start again), samples the processes ([`probe`]) and
//! closes a row per interval. [`report`] prints the rows, the drift per hour of every figure
//! and the totals, and writes them as JSON.
//!
//! The edge runs as shipped for production, except for anonymous clients and plaintext on
//! loopback: a policy file, an audit log (rotated, two files kept), the default caps.

mod load;
mod probe;
mod report;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::load::{Shared, DENIED, LARGE, SMALL_LEGACY, SMALL_MODERN, STREAM};
use self::probe::{sample, LogTail, Sample};
use self::report::{Restart, Row, Settled, Soak};
use crate::plan::{Era, SoakPlan, LARGE as LARGE_BYTES, SMALL};
use crate::stack::{spawn_connector, Stack};

/// The soak's edge: anonymous clients (one principal), a policy file reloaded during the run,
/// an audit log that rotates (8 MiB, two rotated files kept), every cap at its default.
const SOAK_EDGE: &str = "[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n\
     [audit]\nfile = \"audit.jsonl\"\nmax_bytes = 8388608\nmax_files = 2\n";

/// After a connector's tunnel is up again, failures still count as the restart's this long.
const RESTART_GRACE: Duration = Duration::from_secs(2);

/// The load runs this much longer than the schedule (at most), so that the last row's figures
/// are taken under load, not while the workers let go.
const LOAD_OVERRUN: Duration = Duration::from_secs(1);

/// After the load, how long the processes get to return to their idle figures: the edge must
/// within 10 s; the connector keeps idle backend connections pooled for 60 s
/// (`connector/src/http_client.rs`; hyper-util's pool reaps them once per 60 s, so up to 120 s),
/// so a long soak waits up to 130 s for it.
const EDGE_SETTLE: Duration = Duration::from_secs(10);
const CONNECTOR_SETTLE: Duration = Duration::from_secs(130);

/// Policy generation `generation`: the same grants each time under new rule names (so the
/// limiter meets new buckets), with a generous rate, and a deny rule that every generation
/// keeps (the churn workers' denied call).
fn policy(generation: u64) -> String {
    format!(
        "[[allow]]\nname = \"soak-base-{generation}\"\nprincipals = [\"anonymous\"]\n\
         services = [\"echo\"]\nrate = \"100000/s\"\n\n\
         [[allow]]\nname = \"soak-tools-{generation}\"\nprincipals = [\"anonymous\"]\n\
         services = [\"echo\"]\ntools = [\"echo\", \"blob\"]\nrate = \"{}/min\"\n\n\
         [[deny]]\nname = \"soak-deny-{generation}\"\nprincipals = [\"*\"]\ntools = [\"*delete*\"]\n",
        1_000_000 + generation
    )
}

/// Writes policy `generation` in place of `dir/policy.toml` at once (rename), so the edge
/// never reads half a file.
fn write_policy(dir: &Path, generation: u64) -> std::io::Result<()> {
    let tmp = dir.join("policy.toml.new");
    std::fs::write(&tmp, policy(generation))?;
    std::fs::rename(&tmp, dir.join("policy.toml"))
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Ends the load early when dropped (the controller returned or panicked).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// SIGTERM to the connector, a new one started; waits (up to 30 s) until its tunnel is up.
fn restart_connector(stack: &mut Stack) -> Result<Duration, String> {
    let t0 = Instant::now();
    stack.connector.stop();
    stack.restarts += 1;
    stack.connector = spawn_connector(
        &stack.dir,
        &stack.connector_config,
        &format!("connector-{}", stack.restarts),
        &[],
    );
    let deadline = t0 + Duration::from_secs(30);
    while Instant::now() < deadline {
        if stack.connector.log_text().contains("tunnel up") {
            return Ok(t0.elapsed());
        }
        if !stack.connector.alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "the restarted connector did not bring its tunnel up within 30 s; its log:\n{}",
        stack.connector.log_text()
    ))
}

/// The load's workers, spread over the load threads: each a future to run there.
type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn jobs(plan: &SoakPlan, shared: &Arc<Shared>, stack: &Stack) -> Vec<Job> {
    let t = Arc::new(stack.tunnel());
    let mut jobs: Vec<Job> = Vec::new();
    // Two workers per era for small calls, one per era for large ones.
    const SMALL_WORKERS: usize = 2;
    for (era, kind) in [(Era::Legacy, SMALL_LEGACY), (Era::Modern, SMALL_MODERN)] {
        for i in 0..SMALL_WORKERS {
            jobs.push(Box::pin(load::caller(
                shared.clone(),
                t.clone(),
                era,
                SMALL,
                kind,
                plan.small_rate / (2 * SMALL_WORKERS) as f64,
                i as f64 / SMALL_WORKERS as f64,
            )));
        }
        jobs.push(Box::pin(load::caller(
            shared.clone(),
            t.clone(),
            era,
            LARGE_BYTES,
            LARGE,
            plan.large_rate / 2.0,
            if era == Era::Legacy { 0.0 } else { 0.5 },
        )));
    }
    for i in 0..plan.streams {
        jobs.push(Box::pin(load::stream_holder(
            shared.clone(),
            t.clone(),
            plan.stream_hold,
            0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
        )));
    }
    // A churn cycle takes a few milliseconds: one worker per 50 sessions a second.
    let churners = (plan.churn_rate / 50.0).ceil().max(1.0) as usize;
    for i in 0..churners {
        jobs.push(Box::pin(load::churner(
            shared.clone(),
            t.clone(),
            plan.churn_rate / churners as f64,
            i as f64 / churners as f64,
        )));
    }
    jobs
}

/// The controller's state between events.
struct Controller<'a> {
    plan: &'a SoakPlan,
    stack: &'a mut Stack,
    shared: Arc<Shared>,
    start: Instant,
    /// The end of the schedule (the load runs up to [`LOAD_OVERRUN`] longer).
    end: Instant,
    connector_log: LogTail,
    connector_since: f64,
    edge_log: LogTail,
    samples: Vec<Sample>,
    rows: Vec<Row>,
    restarts: Vec<Restart>,
    failures: Vec<String>,
    generation: u64,
    /// Since the last row.
    reloads: u64,
    restarts_in_row: u64,
}

impl Controller<'_> {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn sample(&mut self) -> Sample {
        let s = sample(
            self.now(),
            &self.stack.edge_setup,
            self.stack.edge.pid(),
            (self.stack.connector.pid(), self.connector_since),
            &mut self.connector_log,
        );
        if s.edge.tasks.is_none() {
            self.failures
                .push(format!("t={:.1} s: the edge did not report its tasks", s.t));
        }
        if s.connector.tasks.is_none() {
            self.failures.push(format!(
                "t={:.1} s: the connector did not answer SIGUSR1 with its runtime stats",
                s.t
            ));
        }
        self.samples.push(s);
        s
    }

    fn reload(&mut self) {
        self.generation += 1;
        match write_policy(&self.stack.dir, self.generation) {
            Ok(()) if signal(self.stack.edge.pid(), "HUP") => self.reloads += 1,
            Ok(()) => self.failures.push("cannot SIGHUP the edge".into()),
            Err(e) => self.failures.push(format!("cannot write the policy: {e}")),
        }
    }

    /// Restarts the connector; false when it did not come back (the soak ends).
    fn restart(&mut self) -> bool {
        self.shared.restarting.store(true, Ordering::Relaxed);
        let at = self.now();
        match restart_connector(self.stack) {
            Ok(took) => {
                self.connector_log = LogTail::new(&self.stack.connector.log);
                self.connector_since = self.now();
                self.restarts.push(Restart {
                    at,
                    ready_ms: took.as_secs_f64() * 1000.0,
                });
                self.restarts_in_row += 1;
                true
            }
            Err(e) => {
                self.failures.push(e);
                false
            }
        }
    }

    fn row(&mut self, from: f64) {
        let sample = self.sample();
        let mut seen = 0;
        for line in self.edge_log.lines() {
            if line.contains("policy reloaded") {
                seen += 1;
            }
            if line.contains("policy not reloaded") {
                self.failures.push(format!("edge: {line}"));
            }
        }
        self.rows.push(Row {
            from,
            to: sample.t,
            sample,
            tally: self.shared.take(),
            reloads: std::mem::take(&mut self.reloads),
            reloads_seen: seen,
            restarts: std::mem::take(&mut self.restarts_in_row),
        });
    }

    /// Gives the edge a moment (at most 5 s) to log the reloads written last: a reload
    /// written just before a row ends (a connector restart can delay a row past its reload)
    /// is logged after that row was counted. Late lines count in the last row.
    fn await_reload_lines(&mut self) {
        let written: u64 = self.rows.iter().map(|r| r.reloads).sum();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen: u64 = self.rows.iter().map(|r| r.reloads_seen).sum();
        while seen < written && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let late = self
                .edge_log
                .lines()
                .iter()
                .filter(|l| l.contains("policy reloaded"))
                .count() as u64;
            seen += late;
            if let Some(last) = self.rows.last_mut() {
                last.reloads_seen += late;
            }
        }
    }

    /// Runs the schedule until the load's end (or a connector that does not come back).
    fn run(&mut self) {
        let plan = self.plan;
        let end = self.end;
        let never = end + Duration::from_secs(3600);
        // Reloads and restarts fall between row ends, and restarts between samples, so that
        // no figure is taken at a moment of upheaval.
        let first = |every: Duration, offset: Duration| {
            if every.is_zero() {
                never
            } else {
                self.start + every + offset
            }
        };
        let mut next_sample = self.start + plan.sample;
        let mut next_row = self.start + plan.interval;
        let mut next_reload = first(plan.reload_every, plan.interval / 4);
        let mut next_restart = first(plan.restart_every, (plan.interval + plan.sample) / 2);
        let mut grace_until: Option<Instant> = None;
        let mut row_from = 0.0;
        loop {
            let now = Instant::now();
            if grace_until.is_some_and(|g| now >= g) {
                self.shared.restarting.store(false, Ordering::Relaxed);
                grace_until = None;
            }
            if now >= next_restart && now < end {
                if !self.restart() {
                    return;
                }
                grace_until = Some(Instant::now() + RESTART_GRACE);
                next_restart = (next_restart + plan.restart_every).max(Instant::now());
            }
            if now >= next_reload && now < end {
                self.reload();
                next_reload += plan.reload_every;
            }
            let row_end = next_row.min(end);
            if now >= row_end {
                self.row(row_from);
                row_from = self.rows.last().map_or(0.0, |r| r.to);
                next_sample = Instant::now() + plan.sample;
                next_row += plan.interval;
                if row_end >= end {
                    return;
                }
            } else if now >= next_sample {
                self.sample();
                next_sample += plan.sample;
            }
            let wake = [next_sample, row_end, next_reload, next_restart]
                .into_iter()
                .chain(grace_until)
                .min()
                .unwrap_or(end);
            let nap = wake
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            std::thread::sleep(nap);
        }
    }
}

/// After the load: waits until the edge holds no legacy session and no more tasks or
/// descriptors than before the load (up to [`EDGE_SETTLE`]), then until the connector holds no
/// more tasks or descriptors than before (up to [`CONNECTOR_SETTLE`], or a quarter of the run
/// if shorter), and samples both once more. Returns the sample and whether each settled.
fn idle_after(c: &mut Controller<'_>, before: &Sample) -> (Sample, Settled) {
    let t0 = Instant::now();
    let not_above = |a: Option<u64>, b: Option<u64>| a.zip(b).is_some_and(|(a, b)| a <= b);
    let mut settled = Settled::default();
    while t0.elapsed() < EDGE_SETTLE {
        let (tasks, sessions) = probe::edge_readyz(&c.stack.edge_setup);
        if sessions == Some(0)
            && not_above(tasks, before.edge.tasks)
            && crate::procfs::fds(c.stack.edge.pid()) <= before.edge.fds
        {
            settled.edge_s = Some(t0.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t1 = Instant::now();
    let window = CONNECTOR_SETTLE.min(c.plan.duration / 4);
    loop {
        let pid = c.stack.connector.pid();
        let tasks = probe::connector_tasks(pid, &mut c.connector_log);
        if not_above(tasks, before.connector.tasks)
            && crate::procfs::fds(pid) <= before.connector.fds
        {
            settled.connector_s = Some(t1.elapsed().as_secs_f64());
            break;
        }
        if t1.elapsed() >= window {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    settled.connector_window_s = window.as_secs_f64();
    let s = sample(
        c.now(),
        &c.stack.edge_setup,
        c.stack.edge.pid(),
        (c.stack.connector.pid(), c.connector_since),
        &mut c.connector_log,
    );
    (s, settled)
}

/// Runs the soak in `dir`: its own stack, the load on `clients`, the controller here.
/// Returns the report as markdown, the JSON, and whether it failed.
pub(crate) fn run(
    plan: &SoakPlan,
    clients: &[tokio::runtime::Runtime],
    dir: &Path,
    backend_threads: usize,
) -> (String, Value, bool) {
    write_policy(dir, 0).expect("write policy.toml");
    let mut stack = Stack::start_with(dir, backend_threads, false, SOAK_EDGE, "");
    eprintln!(
        "soak: {:.0} s of mixed load, a row every {:.1} s (edge pid {}, connector pid {})",
        plan.duration.as_secs_f64(),
        plan.interval.as_secs_f64(),
        stack.edge.pid(),
        stack.connector.pid()
    );
    let start = Instant::now();
    let end = start + plan.duration;
    let shared = Arc::new(Shared::new(end + LOAD_OVERRUN.min(plan.sample / 2)));
    let mut c = Controller {
        plan,
        end,
        connector_log: LogTail::new(&stack.connector.log),
        edge_log: LogTail::new(&stack.edge.log),
        stack: &mut stack,
        shared: shared.clone(),
        start,
        connector_since: 0.0,
        samples: Vec::new(),
        rows: Vec::new(),
        restarts: Vec::new(),
        failures: Vec::new(),
        generation: 0,
        reloads: 0,
        restarts_in_row: 0,
    };
    let before = c.sample();
    c.samples.clear();
    let mut per_thread: Vec<Vec<Job>> = (0..clients.len().max(1)).map(|_| Vec::new()).collect();
    for (i, job) in jobs(plan, &shared, c.stack).into_iter().enumerate() {
        let n = per_thread.len();
        per_thread[i % n].push(job);
    }
    let after = std::thread::scope(|scope| {
        let stop = StopOnDrop(shared.clone());
        let threads: Vec<_> = clients
            .iter()
            .zip(per_thread)
            .map(|(rt, jobs)| {
                scope.spawn(move || {
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for j in jobs {
                            set.spawn(j);
                        }
                        while set.join_next().await.is_some() {}
                    })
                })
            })
            .collect();
        c.run();
        c.await_reload_lines();
        drop(stop);
        for t in threads {
            let _ = t.join();
        }
        idle_after(&mut c, &before)
    });
    let (after, settled) = after;
    let mut soak = Soak {
        plan: plan.clone(),
        rows: std::mem::take(&mut c.rows),
        samples: std::mem::take(&mut c.samples),
        restarts: std::mem::take(&mut c.restarts),
        idle_before: Some(before),
        idle_after: Some(after),
        settled,
        failures: std::mem::take(&mut c.failures),
    };
    soak.failures.extend(judge(plan, &soak));
    (
        report::tables(&soak),
        report::json(&soak),
        !soak.failures.is_empty(),
    )
}

/// Failures besides the controller's own: operations that failed outside connector restarts,
/// kinds of the load that never succeeded, policy reloads the edge did not log, sessions the
/// edge still holds after every client deleted its own.
fn judge(plan: &SoakPlan, s: &Soak) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = s.idle_after.and_then(|a| a.sessions).filter(|n| *n > 0) {
        out.push(format!(
            "the edge still holds {n} legacy session(s) after every client deleted its own"
        ));
    }
    if s.settled.edge_s.is_none() {
        out.push(format!(
            "the edge did not return to its idle tasks and descriptors within {} s of the load's end",
            EDGE_SETTLE.as_secs()
        ));
    }
    // Only a window longer than the connector's pool reaping (up to 120 s) can tell.
    if s.settled.connector_s.is_none() && s.settled.connector_window_s >= 125.0 {
        out.push(format!(
            "the connector did not return to its idle tasks and descriptors within {:.0} s of the load's end",
            s.settled.connector_window_s
        ));
    }
    let totals = s.totals();
    for (name, k) in &totals.0 {
        if k.errors > 0 {
            out.push(format!(
                "{} {name} operation(s) failed outside connector restarts; the first: {}",
                k.errors,
                k.first_error.as_deref().unwrap_or("?")
            ));
        }
        let churn = plan.churn_rate > 0.0;
        let driven = match *name {
            STREAM => plan.streams > 0,
            LARGE => plan.large_rate > 0.0,
            SMALL_MODERN => plan.small_rate > 0.0,
            SMALL_LEGACY => plan.small_rate > 0.0 || churn,
            DENIED => churn,
            _ => plan.streams > 0 || churn,
        };
        if driven && k.ok == 0 {
            out.push(format!("no {name} operation succeeded"));
        }
    }
    let written: u64 = s.rows.iter().map(|r| r.reloads).sum();
    let seen: u64 = s.rows.iter().map(|r| r.reloads_seen).sum();
    if seen < written {
        out.push(format!(
            "{written} policy reloads were written, the edge logged {seen}"
        ));
    }
    out
}
