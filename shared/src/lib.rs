//! Common ground of the Underpass edge, connector and PKI: identities, the tunnel wire
//! protocol, TLS configuration and MCP message inspection.

pub mod frame;
pub mod identity;
pub mod mcp;
pub mod tls;

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
