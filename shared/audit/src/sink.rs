//! The asynchronous handle, [`Auditor`]: a bounded queue to a writer thread that owns the
//! [`AuditLog`], so recording never blocks a request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::{AuditConfig, OnFailure};
use crate::error::{io_err, AuditError};
use crate::record::AuditRecord;
use crate::redact::redact_arguments;
use crate::sampler::{lock, Sampler};
use crate::writer::{records_in, AuditLog, GapTally};

/// Records the [`Auditor`] queues before it starts dropping (and counting) them.
pub(crate) const QUEUE_CAPACITY: usize = 16 * 1024;

/// How often the writer wakes when idle (and at least how often under load) to retry a
/// failed log, check its files and write the summaries of ended refusal windows.
pub(crate) const TICK: Duration = Duration::from_secs(1);

pub(crate) enum Msg {
    Record(Box<AuditRecord>),
    /// Write-ahead lines; the reply says whether every one of them was written.
    Ahead(Vec<AuditRecord>, oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<Result<(), AuditError>>),
}

/// What the handles and the writer thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    on_failure: OnFailure,
    /// The writer's word: nothing lost since the last gap record.
    healthy: AtomicBool,
    dropped: AtomicU64,
    /// Records dropped because the queue was full, not yet handed to the writer.
    queue_lost: Mutex<GapTally>,
    sampler: Option<Sampler>,
}

/// Cloneable handle to a background writer thread. [`Auditor::record`] never blocks: records
/// go through a bounded queue (16384 entries). A record that cannot be written (queue full,
/// write failed) is counted in [`Auditor::dropped`], logged (at the 1st, 2nd, 4th, 8th…
/// loss), and counted into a gap record the writer puts in the chain once writing works
/// again; with `on_failure = "refuse"`, [`Auditor::accepting`] says no meanwhile.
#[derive(Debug, Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    log_arguments: bool,
    write_ahead: bool,
}

pub(crate) fn count_drop(dropped: &AtomicU64, why: &str) {
    let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(dropped = n, "audit record dropped ({why})");
    }
}

impl Auditor {
    /// Opens the log (errors surface here) and starts the writer thread.
    pub fn start(config: &AuditConfig) -> Result<Self, AuditError> {
        let log = AuditLog::open(config)?;
        Self::spawn(log, config, QUEUE_CAPACITY)
    }

    pub(crate) fn spawn(
        log: AuditLog,
        config: &AuditConfig,
        capacity: usize,
    ) -> Result<Self, AuditError> {
        let (auditor, writer) = Self::unstarted(log, config, capacity);
        writer.start(&config.file)?;
        Ok(auditor)
    }

    /// A handle and its writer, not yet running.
    pub(crate) fn unstarted(
        log: AuditLog,
        config: &AuditConfig,
        capacity: usize,
    ) -> (Self, PendingWriter) {
        let (tx, rx) = mpsc::channel::<Msg>(capacity);
        let shared = Arc::new(Shared {
            on_failure: config.on_failure,
            healthy: AtomicBool::new(log.is_healthy()),
            dropped: AtomicU64::new(0),
            queue_lost: Mutex::default(),
            sampler: Sampler::new(config),
        });
        let writer = Writer {
            log,
            shared: shared.clone(),
        };
        let auditor = Self {
            tx,
            shared,
            log_arguments: config.log_arguments,
            write_ahead: config.write_ahead,
        };
        (auditor, PendingWriter { writer, rx })
    }

    /// Queues a record without blocking (or counts it into its refusal summary).
    pub fn record(&self, record: AuditRecord) {
        let record = match &self.shared.sampler {
            Some(sampler) => match sampler.admit(record) {
                Some(r) => r,
                None => return,
            },
            None => record,
        };
        let lost = records_in(&record);
        match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                count_drop(&self.shared.dropped, "queue full");
                lock(&self.shared.queue_lost).add(lost, "queue full", SystemTime::now());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                count_drop(&self.shared.dropped, "writer stopped")
            }
        }
    }

    /// With `write_ahead` on, puts the `dispatched` lines of `record` (a request about to go
    /// down a tunnel) on the log and waits until the writer has written them. True to go on:
    /// written, write-ahead off, or not written with `on_failure = "continue"` (the loss is
    /// counted into a gap record like any other). False when they could not be written and
    /// the request must be refused (`"refuse"`).
    pub async fn write_ahead(&self, record: &AuditRecord) -> bool {
        if !self.write_ahead {
            return true;
        }
        let lines = record.dispatched_lines();
        let count = lines.len() as u64;
        let (reply, written) = oneshot::channel();
        let written = match self.tx.try_send(Msg::Ahead(lines, reply)) {
            Ok(()) => written.await.unwrap_or(false),
            Err(mpsc::error::TrySendError::Full(_)) => {
                count_drop(&self.shared.dropped, "queue full");
                lock(&self.shared.queue_lost).add(count, "queue full", SystemTime::now());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                count_drop(&self.shared.dropped, "writer stopped");
                false
            }
        };
        written || self.shared.on_failure == OnFailure::Continue
    }

    /// Whether records are being written: nothing lost since the last gap record, and room
    /// in the queue. Two atomic loads: cheap enough for every request.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
            && self.tx.capacity() > 0
            && !self.tx.is_closed()
    }

    /// Whether the edge may serve a request now: always with `on_failure = "continue"`, only
    /// while [`Auditor::healthy`] with `"refuse"`.
    pub fn accepting(&self) -> bool {
        self.shared.on_failure == OnFailure::Continue || self.healthy()
    }

    /// Messages waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Records not written in full: queue full, writer stopped, or write failed.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// What goes into [`AuditRecord::arguments`]: the redacted arguments when
    /// `log_arguments` is on, else `None`.
    pub fn arguments(&self, args: Option<&Value>) -> Option<Value> {
        if self.log_arguments {
            args.and_then(redact_arguments)
        } else {
            None
        }
    }

    /// Writes everything queued before this call (and the summaries of open refusal
    /// windows), syncs, writes a final checkpoint and stops the writer. Records sent by other
    /// clones afterwards are counted as dropped.
    pub async fn shutdown(self) -> Result<(), AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Shutdown(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    log: AuditLog,
    shared: Arc<Shared>,
}

/// A writer and its queue, before its thread runs.
pub(crate) struct PendingWriter {
    writer: Writer,
    rx: mpsc::Receiver<Msg>,
}

impl PendingWriter {
    /// Starts the writer thread (with its own small runtime for the idle timer).
    pub(crate) fn start(self, file: &Path) -> Result<(), AuditError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(io_err("start the writer thread for", file))?;
        let Self { writer, rx } = self;
        std::thread::Builder::new()
            .name("underpass-audit".into())
            .spawn(move || writer.run(rx, &runtime))
            .map_err(io_err("start the writer thread for", file))?;
        Ok(())
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>, runtime: &tokio::runtime::Runtime) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Idle: make the checkpoint current before waiting.
                    if self.log.is_healthy() {
                        if let Err(e) = self.log.checkpoint() {
                            self.log.checkpoint_failed(&e.to_string());
                        }
                    }
                    let wait = next_tick.saturating_duration_since(Instant::now());
                    // (The timer must be made inside the runtime.)
                    let next =
                        runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
                    match next {
                        Ok(Some(m)) => Some(m),
                        Ok(None) => break,
                        Err(_) => None,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            if Instant::now() >= next_tick {
                self.tick(false);
                next_tick = Instant::now() + TICK;
            }
            match msg {
                None => {}
                Some(Msg::Record(rec)) => {
                    self.write(&rec);
                }
                Some(Msg::Ahead(lines, reply)) => self.write_ahead(&lines, reply),
                Some(Msg::Shutdown(reply)) => {
                    // Refuse further records (senders see them as dropped), write what is
                    // already queued, then seal.
                    rx.close();
                    while let Ok(msg) = rx.try_recv() {
                        match msg {
                            Msg::Record(rec) => {
                                self.write(&rec);
                            }
                            Msg::Ahead(lines, reply) => self.write_ahead(&lines, reply),
                            Msg::Shutdown(other) => {
                                let _ = other.send(Ok(()));
                            }
                        }
                    }
                    let _ = reply.send(self.finish());
                    return;
                }
            }
        }
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }

    fn take_queue_losses(&mut self) {
        let tally = std::mem::take(&mut *lock(&self.shared.queue_lost));
        self.log.note_lost(tally);
    }

    fn write_ahead(&mut self, lines: &[AuditRecord], reply: oneshot::Sender<bool>) {
        let mut all = true;
        for line in lines {
            all &= self.write(line);
        }
        let _ = reply.send(all);
    }

    /// Appends one record; false when it could not be written (it is counted as lost).
    fn write(&mut self, rec: &AuditRecord) -> bool {
        let was_healthy = self.log.is_healthy();
        self.take_queue_losses();
        let result = self.log.append(rec);
        if let Err(e) = &result {
            count_drop(&self.shared.dropped, "write failed");
            if was_healthy {
                let refusing = if self.shared.on_failure == OnFailure::Refuse {
                    "; MCP requests are refused (503) until it works again (on_failure = \"refuse\")"
                } else {
                    "; requests are still served (on_failure = \"continue\")"
                };
                tracing::error!(
                    "{e}: records are counted into a gap record until writing works again{refusing}"
                );
            }
        }
        self.shared
            .healthy
            .store(self.log.is_healthy(), Ordering::Relaxed);
        result.is_ok()
    }

    fn tick(&mut self, all: bool) {
        if let Some(sampler) = &self.shared.sampler {
            for summary in sampler.due(all) {
                self.write(&summary);
            }
        }
        self.take_queue_losses();
        if let Err(e) = self.log.recover() {
            tracing::debug!("audit log still not writable: {e}");
        }
        self.shared
            .healthy
            .store(self.log.is_healthy(), Ordering::Relaxed);
    }

    fn finish(&mut self) -> Result<(), AuditError> {
        self.tick(true);
        if !self.log.is_healthy() {
            tracing::error!(
                lost = self.log.lost(),
                "audit: {} record(s) were lost and the gap could not be recorded before shutdown",
                self.log.lost()
            );
        }
        self.log.flush()
    }
}
