//! Summaries of repeated refusals: the first few per window are written in full, the rest
//! counted into one line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::config::AuditConfig;
use crate::outcome::Outcome;
use crate::record::{Aggregate, AuditRecord, Decision};
use crate::time::{format_time, now};

/// Distinct (source, principal, outcome) keys tracked at once; refusals beyond them share
/// one key with source `*`, so that many addresses cannot grow the table without bound.
pub(crate) const MAX_SAMPLED_KEYS: usize = 4096;

/// Per (source, principal, outcome): the first `per_window` refusals of a window pass in
/// full, the rest are counted into one summary line when the window ends.
#[derive(Debug)]
pub(crate) struct Sampler {
    per_window: u32,
    window: Duration,
    pub(crate) state: Mutex<SamplerState>,
}

#[derive(Debug, Default)]
pub(crate) struct SamplerState {
    pub(crate) windows: HashMap<SampleKey, Window>,
    /// Summaries of windows that ended, waiting for the writer.
    ended: Vec<AuditRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SampleKey {
    pub(crate) source: Option<String>,
    principal: Option<String>,
    outcome: Outcome,
}

#[derive(Debug)]
pub(crate) struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    http_status: Option<u16>,
}

impl Window {
    fn new(started: Instant) -> Self {
        Self {
            started,
            written: 0,
            suppressed: 0,
            from: None,
            to: None,
            http_status: None,
        }
    }

    fn summary(&self, key: &SampleKey) -> Option<AuditRecord> {
        if self.suppressed == 0 {
            return None;
        }
        let time = |t: Option<SystemTime>| format_time(t.unwrap_or_else(SystemTime::now));
        Some(AuditRecord {
            time: now(),
            source: key.source.clone(),
            principal: key.principal.clone(),
            outcome: key.outcome,
            http_status: self.http_status,
            aggregate: Some(Aggregate {
                count: self.suppressed,
                from: time(self.from),
                to: time(self.to),
            }),
            ..AuditRecord::default()
        })
    }
}

/// A refusal: a 4xx answer that no rule allowed (unauthenticated, not found, denied, rate
/// limited, bad request…), or a request abandoned by its client before any rule allowed it
/// (no answer, `client_gone`: otherwise hanging up early would be a way around the summary).
/// Allowed requests and the writer's own lines are never summarized.
pub(crate) fn is_refusal(record: &AuditRecord) -> bool {
    let refused = record.http_status.is_some_and(|s| (400..500).contains(&s));
    let abandoned = record.http_status.is_none() && record.outcome == Outcome::ClientGone;
    (refused || abandoned)
        && record.decision != Some(Decision::Allow)
        && record.trail.is_none()
        && record.aggregate.is_none()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sampler {
    pub(crate) fn new(config: &AuditConfig) -> Option<Self> {
        (config.refusals_per_source > 0).then(|| Self {
            per_window: config.refusals_per_source,
            window: Duration::from_secs(config.refusal_window_secs.max(1)),
            state: Mutex::default(),
        })
    }

    /// The record, or `None` when it is counted into its window's summary instead.
    pub(crate) fn admit(&self, record: AuditRecord) -> Option<AuditRecord> {
        if !is_refusal(&record) {
            return Some(record);
        }
        let now_instant = Instant::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut key = SampleKey {
            source: record.source.clone(),
            principal: record.principal.clone(),
            outcome: record.outcome,
        };
        if state.windows.len() >= MAX_SAMPLED_KEYS && !state.windows.contains_key(&key) {
            key.source = Some("*".into());
            key.principal = None;
        }
        let window = state
            .windows
            .entry(key.clone())
            .or_insert_with(|| Window::new(now_instant));
        if now_instant.duration_since(window.started) >= self.window {
            state.ended.extend(window.summary(&key));
            *window = Window::new(now_instant);
        }
        if window.written < self.per_window {
            window.written += 1;
            return Some(record);
        }
        let t = SystemTime::now();
        window.suppressed += 1;
        window.from.get_or_insert(t);
        window.to = Some(t);
        window.http_status = record.http_status;
        None
    }

    /// Summaries of the windows that have ended (of every window when `all`), which are
    /// forgotten.
    pub(crate) fn due(&self, all: bool) -> Vec<AuditRecord> {
        let now_instant = Instant::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut out = std::mem::take(&mut state.ended);
        let window = self.window;
        state.windows.retain(|key, w| {
            let ended = all || now_instant.duration_since(w.started) >= window;
            if ended {
                out.extend(w.summary(key));
            }
            !ended
        });
        out
    }
}
