//! The daemons' async runtime, how they learn to stop, and what they hold.

/// The daemons' tokio runtime. One worker (the default) gets a current-thread runtime: every
/// task, the QUIC endpoint driver included, runs on one thread, so a request crosses no thread
/// hand-off, and tasks woken by one another queue behind the work already ready, which lets the
/// QUIC driver send many streams' frames per packet (see README, Performance).
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(worker_threads);
        multi
    };
    builder.enable_all().build()
}

/// Resolves on SIGINT or SIGTERM: how both daemons learn to shut down gracefully.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What a daemon holds now: tokio tasks alive and open file descriptors (`None` where
/// `/proc/self/fd` cannot be read). For the edge's `/readyz` and the SIGUSR1 log line, so that
/// a soak (or an operator) can tell a leak from a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeStats {
    pub tasks: usize,
    pub fds: Option<usize>,
}

/// The figures of [`RuntimeStats`] now; `tasks` is 0 outside a tokio runtime.
pub fn runtime_stats() -> RuntimeStats {
    let tasks = tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_alive_tasks())
        .unwrap_or(0);
    // Listing the folder opens one descriptor itself: not counted.
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1));
    RuntimeStats { tasks, fds }
}

/// From now on, each SIGUSR1 logs one line `runtime stats tasks=N fds=N` (info). Call it inside
/// the runtime, early: until it runs, SIGUSR1 ends the process (the default action).
pub fn log_stats_on_usr1() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    let s = runtime_stats();
                    tracing::info!(tasks = s.tasks, fds = s.fds, "runtime stats");
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGUSR1 (runtime stats): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{runtime, runtime_stats};

    #[test]
    fn runtime_stats_count_the_tasks_alive_and_the_open_descriptors() {
        let rt = runtime(1).unwrap();
        rt.block_on(async {
            let before = runtime_stats();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let waiting = tokio::spawn(async move {
                let _ = rx.await;
            });
            let files: Vec<std::fs::File> = (0..8)
                .map(|_| std::fs::File::open("/proc/self/status").unwrap())
                .collect();
            let during = runtime_stats();
            assert_eq!(during.tasks, before.tasks + 1, "{before:?} {during:?}");
            // Other tests of this binary open files too: only the lower bound is certain.
            assert!(during.fds.is_some_and(|n| n >= files.len()), "{during:?}");
            drop(files);
            let _ = tx.send(());
            waiting.await.unwrap();
            assert_eq!(runtime_stats().tasks, before.tasks);
        });
        assert_eq!(runtime_stats().tasks, 0, "outside a runtime");
    }
}
