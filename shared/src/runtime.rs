//! The daemons' async runtime and how they learn to stop.

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
