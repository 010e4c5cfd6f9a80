//! The client listener: TLS set-up, the accept loop under the connection caps, and hyper's
//! HTTP/1.1 and HTTP/2 serving of each connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use underpass_proto::identity::Role;
use underpass_transport::tls::{self, PeerPolicy};

use crate::app::App;
use crate::config::EdgeConfig;
use crate::http::conn::ConnInfo;
use crate::http::dispatch;
use crate::limits;
use crate::revocation::Revocations;

/// The TLS acceptor of the client listener (`None` with `insecure_plaintext`).
pub fn client_tls(
    config: &EdgeConfig,
    certs: &crate::certs::Certs,
    revocations: &Arc<Revocations>,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    if config.clients.insecure_plaintext {
        tracing::warn!(
            "[clients] insecure_plaintext = true: MCP clients connect without TLS (loopback only)"
        );
        return Ok(None);
    }
    let Some(cert) = &certs.client_cert else {
        anyhow::bail!("[clients] needs cert and key");
    };
    let client_ca = certs.client_roots.as_ref().map(|roots| {
        (
            roots.clone(),
            PeerPolicy {
                role: Role::Client,
                trust_domain: config.trust_domain.clone(),
                revoked: Some(revocations.check()),
            },
        )
    });
    let crypto = tls::https_server_crypto_reloading(cert.clone(), client_ca)
        .context("bad [clients] TLS setup")?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(crypto))))
}

/// Once the edge drains, the listener stays open until no connection came for this long…
const DRAIN_LISTEN_QUIET: Duration = Duration::from_millis(250);
/// …or for this long at most.
const DRAIN_LISTEN_MAX: Duration = Duration::from_secs(2);

/// Accepts client connections until the edge drains. Draining, it goes on accepting what a
/// load balancer sent before it saw `/readyz` say 503 (those are answered with
/// `Connection: close` or GOAWAY) until the listener has been quiet for
/// [`DRAIN_LISTEN_QUIET`], then closes it: new connections are refused from then on, so an L4
/// balancer tries another edge at once. Closing at the first moment instead would reset the
/// connections the kernel had already completed and queued, and their requests would fail.
pub async fn serve_clients(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
) {
    let mut draining_since: Option<tokio::time::Instant> = None;
    loop {
        let linger = draining_since.map_or(DRAIN_LISTEN_QUIET, |since| {
            DRAIN_LISTEN_QUIET.min(DRAIN_LISTEN_MAX.saturating_sub(since.elapsed()))
        });
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = app.drain.started(), if draining_since.is_none() => {
                draining_since = Some(tokio::time::Instant::now());
                continue;
            }
            () = tokio::time::sleep(linger), if draining_since.is_some() => return,
        };
        let (stream, remote) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a cap: closed at once, so the listener never wedges.
        let slot = match app.limits.conns.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                drop(stream);
                app.limits.log_refused(why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let info = ConnInfo {
                        peer: Some(remote),
                        ..ConnInfo::default()
                    };
                    serve_connection(stream, Arc::new(info), app, slot).await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        app.config.clients.handshake_timeout,
                        acceptor.accept(stream),
                    );
                    let stream = match tokio::select! {
                        r = handshake => r,
                        () = slot.evicted() => return,
                    } {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) if refused_certificate(&e) => {
                            // An authentication failure: the operator of a client whose
                            // certificate expired or was revoked needs to see why.
                            tracing::info!(%remote, "client certificate refused: {e}");
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, "client TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "client TLS handshake timed out");
                            return;
                        }
                    };
                    let mut info = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(ConnInfo::from_client_chain)
                        .unwrap_or_default();
                    info.peer = Some(remote);
                    serve_connection(stream, Arc::new(info), app, slot).await
                }
            }
        });
    }
}

/// Whether a failed handshake is the edge refusing the certificate the client presented (a
/// foreign CA, the wrong role, revoked, expired), rather than noise (scanners, timeouts,
/// clients that give up).
fn refused_certificate(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

async fn serve_connection<S>(stream: S, conn: Arc<ConnInfo>, app: Arc<App>, slot: limits::ConnSlot)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let clients = &app.config.clients;
    let idle = clients.idle_timeout;
    let drain = app.drain.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(clients.header_timeout)
        // The request head (line and headers) within the same bound as an HTTP/2 header
        // list (431 beyond): hyper's default (~400 KB) let heads through that the tunnel's
        // 256 KiB head frame cannot carry.
        .max_buf_size(clients.http2_max_header_list_size as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(clients.http2_keepalive_interval).filter(|d| !d.is_zero()))
        .keep_alive_timeout(clients.http2_keepalive_timeout)
        .max_concurrent_streams(clients.http2_max_concurrent_streams)
        .max_header_list_size(clients.http2_max_header_list_size);
    // Every request counts as in flight until its response body is done (idle timeout).
    let activity = slot.activity().clone();
    let service = service_fn(move |req| {
        let busy = activity.begin();
        // Boxed: hyper keeps the space of one service future for the connection's whole life
        // (`in_flight`), so an inline ≈ 3.8 KB `handle` would stay allocated per idle
        // keep-alive connection and per event stream; boxed, it is freed with the answer's head.
        let handled = Box::pin(dispatch::handle(app.clone(), conn.clone(), req));
        async move { Ok::<_, Infallible>(limits::attach(handled.await?, busy)) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let shutdown = |c: std::pin::Pin<&mut _>| auto::Connection::graceful_shutdown(c);
    if let Some(e) = limits::drive(conn, shutdown, &slot, idle, &drain).await {
        tracing::debug!("client connection ended: {e}");
    }
}
