//! Common ground of the Underpass edge, connector and PKI: identities, the tunnel wire
//! protocol, TLS configuration and MCP message inspection.

pub mod frame;
pub mod identity;
pub mod jsonrpc;
pub mod mcp;
pub mod quic;
pub mod tls;

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

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): the daemons' one logging set-up.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
