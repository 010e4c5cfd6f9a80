//! The edge's TCP tunnel listener: the fallback carrier (`underpass_transport::tcp`, TLS 1.3
//! and HTTP/2 on TCP) on the `[tunnel] listen` address, the same port number as QUIC over UDP.
//!
//! TLS runs with the QUIC listener's verifier (connector role, trust domain, revocation), so a
//! client or edge certificate presented as a connector, or none, fails the handshake. Then the
//! tunnel goes through [`accept::serve_tunnel`], the one path every transport takes (Hello,
//! `judge_hello`, registry). Whatever a peer sends, the outcome is one refused connection and a
//! log line with the reason; the listener goes on.
//!
//! With `[enrollment]`, a connection whose ClientHello offers only the enrollment ALPN is
//! handed to the enrollment service instead (no client certificate; see [`crate::enroll`]).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use underpass_transport::tcp::{self, Accepted, PortConfigs, Refusal};
use underpass_transport::TunnelConn;

use crate::limits::LogThrottle;
use crate::tunnels::accept::{self, TunnelService, HANDSHAKE_TIMEOUT};

/// TCP connections in their TLS handshake at once: beyond it new ones are dropped, so a flood
/// of unauthenticated connections cannot hold every descriptor.
const MAX_HANDSHAKES: usize = 256;

pub async fn accept_loop(listener: TcpListener, configs: PortConfigs, service: Arc<TunnelService>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let over_cap = Arc::new(LogThrottle::default());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: back off instead of spinning.
                tracing::warn!("tcp tunnel listener: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            if let Some(n) = over_cap.hit() {
                tracing::warn!(
                    "tunnel refused (tcp): {n} connection(s) over {MAX_HANDSHAKES} handshakes at once"
                );
            }
            continue;
        };
        let (configs, service) = (configs.clone(), service.clone());
        tokio::spawn(async move {
            let accepted =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp::accept_port(stream, &configs))
                    .await
                    .unwrap_or_else(|_| Err(Refusal::Handshake("timed out".into())));
            drop(permit);
            let conn = match accepted {
                Ok(Accepted::Tunnel(tunnel)) => TunnelConn::Tcp(tunnel),
                Ok(Accepted::Enroll(tls)) => {
                    if let Some(enrollment) = &service.issuer {
                        enrollment.serve(tls, remote).await;
                    }
                    return;
                }
                Err(refusal) => {
                    return tracing::warn!(%remote, transport = "tcp", "tunnel refused: {refusal}")
                }
            };
            if let Err(e) = accept::serve_tunnel(conn, &service).await {
                tracing::warn!(%remote, transport = "tcp", "tunnel refused: {e}");
            }
        });
    }
}
