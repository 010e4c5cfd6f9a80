//! A steady trickle of small stateless `tools/call`s, every outcome recorded with its start
//! and end: the load the failover and recovery phases time their events against.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{connect, Caller, Sender, Target};
use crate::plan::{Era, SMALL};

/// How many callers, and their pause between calls: about 4 × 250 calls/s, light enough that
/// the machine's load does not blur the timings.
const WORKERS: usize = 4;
const PAUSE: Duration = Duration::from_millis(4);

/// One call: when it started and ended (since the load began), and how it ended.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    pub(crate) error: Option<String>,
}

pub(crate) struct Steady {
    pub(crate) t0: Instant,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Call>>>,
}

impl Steady {
    pub(crate) fn start(rt: &tokio::runtime::Runtime, t: &Target) -> Steady {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| rt.spawn(worker(t.clone(), t0, stop.clone())))
            .collect();
        Steady { t0, stop, workers }
    }

    /// Stops the callers and returns every call, in order of start.
    pub(crate) fn finish(self, rt: &tokio::runtime::Runtime) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls: Vec<Call> = rt.block_on(async {
            let mut all = Vec::new();
            for w in self.workers {
                all.extend(w.await.unwrap_or_default());
            }
            all
        });
        calls.sort_by_key(|c| c.start);
        calls
    }
}

async fn worker(t: Target, t0: Instant, stop: Arc<AtomicBool>) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut conn: Option<(Sender, Caller)> = None;
    while !stop.load(Ordering::Relaxed) {
        let start = t0.elapsed();
        let result = match conn.take() {
            Some(c) => Ok(c),
            None => open(&t).await,
        };
        let error = match result {
            Ok((mut s, mut c)) => match c.call(&mut s, &t, false).await {
                Ok(_) => {
                    conn = Some((s, c));
                    None
                }
                Err(e) => Some(e),
            },
            Err(e) => Some(e),
        };
        calls.push(Call {
            start,
            end: t0.elapsed(),
            error,
        });
        tokio::time::sleep(PAUSE).await;
    }
    calls
}

async fn open(t: &Target) -> Result<(Sender, Caller), String> {
    let mut s = connect(t.addr).await?;
    let c = Caller::new(&mut s, t, Era::Modern, SMALL).await?;
    Ok((s, c))
}

/// Milliseconds, to a tenth.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds from `from` to `to`, negative when `to` is earlier.
pub(crate) fn ms_between(from: Duration, to: Duration) -> f64 {
    if to >= from {
        ms(to - from)
    } else {
        -ms(from - to)
    }
}

/// What the calls around an event at `event` (since the load began) saw: how many failed,
/// when the failed ones started and ended relative to the event, the slowest call that
/// started in `[event, until]`, and the failures among calls started after `settled` (the
/// moment the event was handled: detected, or a carrier up again).
pub(crate) fn around(calls: &[Call], event: Duration, until: Duration, settled: Duration) -> Value {
    let failed: Vec<&Call> = calls.iter().filter(|c| c.error.is_some()).collect();
    let slowest = calls
        .iter()
        .filter(|c| c.start >= event && c.start <= until && c.error.is_none())
        .map(|c| c.end - c.start)
        .max()
        .unwrap_or_default();
    let mut errors: Vec<String> = failed.iter().filter_map(|c| c.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(4);
    json!({
        "calls": calls.len(),
        "failed": failed.len(),
        "failed_started_after_settled": failed.iter().filter(|c| c.start > settled).count(),
        "first_failed_start_ms": failed.first().map(|c| ms_between(event, c.start)),
        "last_failed_end_ms": failed.iter().map(|c| c.end).max().map(|e| ms_between(event, e)),
        "slowest_ok_ms": ms(slowest),
        "errors": errors,
    })
}
