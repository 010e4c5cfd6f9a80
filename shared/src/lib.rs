//! Common ground of the Underpass edge, connector and PKI: identities, the tunnel wire
//! protocol, TLS configuration and MCP message inspection.

pub mod incident;

// The modules that moved to their own crates, under their old paths while the edge, the
// connector and the tests still import them from here.
pub use underpass_mcp as mcp;
pub use underpass_mcp::jsonrpc;
pub use underpass_proto::{frame, headers, identity};
pub use underpass_transport as transport;
pub use underpass_transport::{quic, tls};

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

/// The soft and hard `RLIMIT_NOFILE` after [`raise_fd_limit`] (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before the call.
    pub before: Option<u64>,
    /// The soft limit now in force.
    pub soft: Option<u64>,
    /// The hard limit (the ceiling the soft limit was raised to).
    pub hard: Option<u64>,
}

/// Raises this process's soft limit of open file descriptors (`RLIMIT_NOFILE`) to its hard
/// limit. Each client connection, tunnel stream bridged to a backend connection, and stdio
/// pipe costs a descriptor; the usual soft default of 1,024 is reached long before memory or
/// CPU run out. Call it once at start, before serving.
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let before = current.current;
    if before != current.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            },
        )?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok(FdLimit {
        before,
        soft: now.current,
        hard: now.maximum,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        // (Lowering the limit first would starve tests running in parallel; the end-to-end
        // test starts the connector under a low soft limit instead.)
        let limit = super::raise_fd_limit().expect("raise_fd_limit");
        assert_eq!(limit.soft, limit.hard, "{limit:?}");
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
    }
}
