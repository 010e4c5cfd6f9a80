//! The Underpass edge: accepts MCP clients over HTTPS, authenticates them, applies policy,
//! and relays each exchange down a QUIC tunnel to a connector that serves the service.

pub use underpass_audit as audit;

pub mod admin;
pub mod assertion;
#[path = "http/audited.rs"]
pub mod audited;
#[path = "auth/mod.rs"]
pub mod auth;
pub mod config;
pub mod exchange;
#[path = "mcp/list_filter.rs"]
pub mod filter;
#[path = "mcp/admission.rs"]
pub mod gate;
#[path = "policy/glob.rs"]
pub mod glob;
#[path = "mcp/judge.rs"]
pub mod judge;
#[path = "mcp/legacy_sse.rs"]
pub mod legacy_sse;
#[path = "limits/mod.rs"]
pub mod limits;
#[path = "policy/mod.rs"]
pub mod policy;
#[path = "mcp/precheck.rs"]
pub mod precheck;
pub mod registry;
#[path = "mcp/streamable.rs"]
pub mod relay;
pub mod revocation;
#[path = "mcp/sessions.rs"]
pub mod session_caps;
pub mod tunnel;
pub mod watch;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use underpass_shared::frame::codes;
use underpass_shared::identity::Role;
use underpass_shared::tls::{self, Credentials, PeerPolicy};

use crate::assertion::AssertionSigner;
use crate::audit::Auditor;
use crate::auth::Authenticator;
use crate::config::EdgeConfig;
use crate::policy::{PolicyStore, RateLimiter};
use crate::registry::Registry;
use crate::relay::{ConnInfo, State};
use crate::revocation::Revocations;

/// Starts every listener and runs until SIGINT or SIGTERM.
pub async fn run(config: EdgeConfig) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let registry = Arc::new(Registry::default());

    let tunnel_creds =
        Credentials::load(&config.tunnel.cert, &config.tunnel.key, &config.tunnel.ca)
            .context("cannot load the [tunnel] certificate, key or CA")?;
    let edge_id = tunnel_creds
        .identity()
        .context("the [tunnel] certificate has no Underpass identity")?;
    edge_id
        .expect(Role::Edge, &config.trust_domain)
        .context("the [tunnel] certificate must be an edge certificate of this trust domain")?;

    let revocations = Revocations::load(config.revocation_list.clone())
        .context("cannot read the revocation_list")?;
    let connector_policy = PeerPolicy {
        role: Role::Connector,
        trust_domain: config.trust_domain.clone(),
        revoked: Some(revocations.check()),
    };
    let quic_config =
        tls::tunnel_server_config(tls::tunnel_server_crypto(&tunnel_creds, connector_policy)?)?;
    // Stateless reset tokens derive from the tunnel key: after a crash and restart, connectors
    // learn at their next packet that their tunnel is gone (see underpass_shared::quic).
    let endpoint = underpass_shared::quic::server_endpoint(
        quic_config,
        config.tunnel.listen,
        tunnel_creds.key.secret_der(),
    )
    .with_context(|| format!("cannot listen for tunnels on udp/{}", config.tunnel.listen))?;
    tracing::info!(addr = %config.tunnel.listen, identity = %edge_id, "tunnel listener up (QUIC)");

    let nofile = limits::raise_nofile_limit();
    let max_connections = limits::connection_cap(config.clients.max_connections, nofile);
    if max_connections < config.clients.max_connections {
        tracing::warn!(
            "[clients] max_connections lowered from {} to {max_connections} to fit the open-file limit of {} (raise LimitNOFILE / ulimit -n)",
            config.clients.max_connections,
            nofile.unwrap_or_default()
        );
    }
    tracing::info!(
        "client connections: at most {max_connections}, {} per source address; open-file limit {}",
        config.clients.max_connections_per_ip,
        nofile.map_or("unlimited".to_owned(), |n| n.to_string())
    );
    let client_tls = client_tls(&config, &revocations)?;
    let listener = TcpListener::bind(config.clients.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for MCP clients on tcp/{}",
                config.clients.listen
            )
        })?;
    let scheme = if client_tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        "MCP clients: {scheme}://{}/mcp/{{service}}",
        config.clients.listen
    );

    if let Some(auth) = &config.auth {
        if auth.anonymous {
            tracing::warn!("[auth] anonymous = true: ANY client is accepted as principal \"anonymous\" (development only)");
        }
    }
    if config.policy.as_ref().is_some_and(|p| p.allow_all) {
        tracing::warn!("[policy] allow_all = true: every authenticated client may do anything (development only)");
    }

    tokio::spawn(revocations.clone().watch(registry.clone()));
    tokio::spawn(tunnel::accept_loop(
        endpoint.clone(),
        config.clone(),
        registry.clone(),
        edge_id.name.clone(),
    ));
    let auth = Arc::new(
        Authenticator::new(config.auth.as_ref().context("[auth] is required")?)
            .context("cannot set up [auth]")?,
    );
    tokio::spawn(auth.clone().watch());
    let policy_file = config.policy.as_ref().and_then(|p| p.file.clone());
    let policy = Arc::new(PolicyStore::load(policy_file).context("cannot load the policy")?);
    tokio::spawn(policy.clone().watch());
    let auditor = match &config.audit {
        Some(a) => Some(Auditor::start(a).context("cannot open the audit log")?),
        None => None,
    };
    let signer = AssertionSigner::new(
        &config.trust_domain,
        &edge_id.name,
        config.assertion.key.as_deref(),
    )
    .context("cannot set up the identity assertion key")?;
    let jwks = signer.jwks();
    let state = Arc::new(State {
        config: config.clone(),
        registry: registry.clone(),
        revocations,
        auth,
        policy,
        limiter: RateLimiter::new(),
        auditor: auditor.clone(),
        signer,
        bridges: Default::default(),
        limits: limits::Limits::new(&config.clients, max_connections),
    });
    tokio::spawn(session_caps::expire_idle_sessions(state.clone()));
    if let Some(admin) = &config.admin {
        let listener = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("cannot listen for admin on tcp/{}", admin.listen))?;
        tracing::info!("admin: http://{}/healthz", admin.listen);
        tokio::spawn(admin::serve(
            listener,
            registry.clone(),
            state.revocations.clone(),
            jwks.clone(),
        ));
    }

    let clients = tokio::spawn(serve_clients(listener, client_tls, state));

    underpass_shared::shutdown_signal().await;
    tracing::info!("shutting down");
    clients.abort();
    endpoint.close(codes::GOING_AWAY.into(), b"edge shutting down");
    if let Some(auditor) = auditor {
        if let Err(e) = auditor.shutdown().await {
            tracing::error!("audit log not closed cleanly: {e}");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(())
}

fn client_tls(
    config: &EdgeConfig,
    revocations: &Arc<Revocations>,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    if config.clients.insecure_plaintext {
        tracing::warn!(
            "[clients] insecure_plaintext = true: MCP clients connect without TLS (loopback only)"
        );
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&config.clients.cert, &config.clients.key) else {
        anyhow::bail!("[clients] needs cert and key");
    };
    let chain = tls::load_certs(cert)?;
    let key = tls::load_key(key)?;
    let client_ca = match config.auth.as_ref().and_then(|a| a.client_ca.as_ref()) {
        Some(path) => Some((
            tls::load_roots(path).context("cannot load [auth] client_ca")?,
            PeerPolicy {
                role: Role::Client,
                trust_domain: config.trust_domain.clone(),
                revoked: Some(revocations.check()),
            },
        )),
        None => None,
    };
    let crypto =
        tls::https_server_crypto(chain, key, client_ca).context("bad [clients] TLS setup")?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(crypto))))
}

async fn serve_clients(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a cap: closed at once, so the listener never wedges.
        let slot = match state.limits.conns.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                drop(stream);
                state.limits.log_refused(why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let state = state.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let info = ConnInfo {
                        peer: Some(remote),
                        ..ConnInfo::default()
                    };
                    serve_connection(stream, Arc::new(info), state, slot).await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        state.config.clients.handshake_timeout,
                        acceptor.accept(stream),
                    );
                    let stream = match tokio::select! {
                        r = handshake => r,
                        () = slot.evicted() => return,
                    } {
                        Ok(Ok(s)) => s,
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
                        .and_then(|c| c.first())
                        .map(|leaf| ConnInfo::from_client_cert(leaf))
                        .unwrap_or_default();
                    info.peer = Some(remote);
                    serve_connection(stream, Arc::new(info), state, slot).await
                }
            }
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    conn: Arc<ConnInfo>,
    state: Arc<State>,
    slot: limits::ConnSlot,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let clients = &state.config.clients;
    let idle = clients.idle_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(clients.header_timeout);
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
        let handled = relay::handle(state.clone(), conn.clone(), req);
        async move { Ok::<_, Infallible>(limits::attach(handled.await?, busy)) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let shutdown = |c: std::pin::Pin<&mut _>| auto::Connection::graceful_shutdown(c);
    if let Some(e) = limits::drive(conn, shutdown, &slot, idle).await {
        tracing::debug!("client connection ended: {e}");
    }
}
