//! The Underpass edge: accepts MCP clients over HTTPS, authenticates them, applies policy,
//! and relays each exchange down a tunnel to a connector that serves the service.
//!
//! Dependencies point one way (no module cycles). At the bottom, the state [`app::App`]
//! built here by [`run`] from `config`, `auth`, `policy`, `limiter`, `limits`, `registry`,
//! `revocation`, `assertion`, `bridges` and the audit trail (crate `underpass-audit`), and the
//! leaves of `http` (`body`, `respond`, `conn`, `headers`, `ids`, `host`, `media`, `router`).
//! Above them `mcp` (admission, the Streamable HTTP relay, the 2024-11-05 bridge, response
//! filters), and on top `http::dispatch` and `http::server`. `tunnel` accepts connectors;
//! `exchange` is the edge's side of one request down a tunnel; `reload` swaps what is re-read
//! at run time.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod assertion;
pub mod auth;
pub mod bridges;
pub mod certs;
pub mod config;
pub mod doctor;
pub mod drain;
pub mod enroll;
pub mod federation;
pub mod http;
pub mod limiter;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod revocation;
pub mod sessions;
pub mod tunnels;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use underpass_audit::Auditor;
use underpass_proto::frame::codes;
use underpass_proto::identity::Role;
use underpass_transport::tls::{self, PeerPolicy};

use crate::app::{App, Security};
use crate::assertion::AssertionSigner;
use crate::auth::Authenticator;
use crate::config::EdgeConfig;
use crate::drain::Drain;
use crate::limiter::RateLimiter;
use crate::revocation::Revocations;
use crate::tunnels::registry::Registry;

/// Starts every listener and runs until SIGINT or SIGTERM.
pub async fn run(config: EdgeConfig) -> anyhow::Result<()> {
    underpass_shared::log_stats_on_usr1();
    let config = Arc::new(config);
    let registry = Arc::new(Registry::with_exchange_cap(
        config.tunnel.max_exchanges_per_tunnel,
    ));
    let drain = Drain::new(config.drain_grace);
    let sealer = sessions::load(config.sessions.as_ref().map(|s| s.keys.as_slice()))?;
    if sealer.is_shared() {
        tracing::info!(
            key_ids = ?sealer.key_ids(),
            "legacy session ids sealed with [sessions] keys (the first seals, all open): any edge with these keys continues a session"
        );
    } else {
        tracing::warn!(
            "no [sessions] keys: legacy session ids are sealed with a random key of this process; \
             sessions do not survive this edge and no other edge can continue them"
        );
    }

    let certs = Arc::new(certs::Certs::load(&config)?);
    let edge_id = certs
        .tunnel_cert
        .identity()
        .context("the [tunnel] certificate has no Underpass identity")?;

    let revocations = Revocations::load(config.revocation_list.clone())
        .context("cannot read the revocation_list")?;
    let connector_policy = PeerPolicy {
        role: Role::Connector,
        trust_domain: config.trust_domain.clone(),
        revoked: Some(revocations.check()),
    };
    let reauth =
        tls::reauth::Reauthenticator::new(certs.tunnel_roots.clone(), connector_policy.clone())?;
    let tunnel_crypto = tls::tunnel_server_crypto_reloading(
        certs.tunnel_cert.clone(),
        certs.tunnel_roots.clone(),
        connector_policy,
    )?;
    let tcp_acceptor = underpass_transport::tcp::server_crypto(tunnel_crypto.clone());
    let quic_config = tls::tunnel_server_config(tunnel_crypto)?;
    // Stateless reset tokens derive from the tunnel key: after a crash and restart, connectors
    // learn at their next packet that their tunnel is gone (see underpass_transport::quic).
    let reset_key = tls::load_key(&config.tunnel.key)?;
    let endpoint = underpass_transport::quic::server_endpoint(
        quic_config,
        config.tunnel.listen,
        reset_key.secret_der(),
    )
    .with_context(|| format!("cannot listen for tunnels on udp/{}", config.tunnel.listen))?;
    // The fallback carrier on the same port number over TCP, for connectors whose UDP is
    // blocked (underpass_transport::tcp).
    let tcp_tunnels = TcpListener::bind(config.tunnel.listen)
        .await
        .with_context(|| format!("cannot listen for tunnels on tcp/{}", config.tunnel.listen))?;
    tracing::info!(addr = %config.tunnel.listen, identity = %edge_id, "tunnel listener up (QUIC over UDP, TLS over TCP)");

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
    let client_tls = http::server::client_tls(&config, &certs, &revocations)?;
    certs.watch(&config);
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
    let auth = Arc::new(
        Authenticator::new(config.auth.as_ref().context("[auth] is required")?)
            .context("cannot set up [auth]")?,
    );
    tokio::spawn(auth.clone().watch());
    let policy_file = config.policy.as_ref().and_then(|p| p.file.clone());
    let policy = Arc::new(
        policy::store::load_store(policy_file.as_ref()).context("cannot load the policy")?,
    );
    if let Some(path) = policy_file {
        tokio::spawn(policy::store::watch_store(policy.clone(), path));
    }
    let auditor = match &config.audit {
        Some(a) => Some(Auditor::start(a).context("cannot open the audit log")?),
        None => None,
    };
    let enrollment = match &config.enrollment {
        Some(e) => {
            let service = enroll::Enrollment::open(
                e,
                &config.tunnel.ca,
                &config.trust_domain,
                auditor.clone(),
                revocations.clone(),
            )
            .context("cannot set up [enrollment]")?;
            service.watch(certs.problems.clone());
            // The tunnel certificate and CA bundle in force (watched by `certs`): a renewed
            // edge certificate or a rotated CA reaches the next enrollment handshake.
            let crypto = tls::enroll_server_crypto_reloading(
                certs.tunnel_cert.clone(),
                certs.tunnel_roots.clone(),
            )?;
            tracing::info!(
                addr = %config.tunnel.listen,
                cert_ttl = ?e.cert_ttl,
                "enrollment served (tcp, ALPN underpass-enroll/1)"
            );
            Some((Arc::new(service), Arc::new(crypto)))
        }
        None => None,
    };
    let tcp_port = underpass_transport::tcp::PortConfigs {
        tunnel: tcp_acceptor.config().clone(),
        enroll: enrollment.as_ref().map(|(_, crypto)| crypto.clone()),
    };
    let tunnel_service = Arc::new(tunnels::accept::TunnelService {
        config: config.clone(),
        registry: registry.clone(),
        edge_name: edge_id.name.clone(),
        drain: drain.clone(),
        issuer: enrollment.as_ref().map(|(service, _)| service.clone()),
        reauth,
    });
    tokio::spawn(tunnels::accept::accept_loop(
        endpoint.clone(),
        tunnel_service.clone(),
    ));
    let tcp_accepting = tokio::spawn(tunnels::tcp::accept_loop(
        tcp_tunnels,
        tcp_port,
        tunnel_service,
    ));
    let signer = AssertionSigner::new(
        &config.trust_domain,
        &edge_id.name,
        config.assertion.key.as_deref(),
    )
    .context("cannot set up the identity assertion key")?;
    let jwks = signer.jwks();
    let tracer = underpass_shared::telemetry::Tracer::start(&config.telemetry, "underpass-edge")
        .map_err(anyhow::Error::msg)?;
    let federation = Arc::new(federation::state::Federation::new(&config.federation));
    let metrics = Arc::new(metrics::Metrics::new(
        config.services.iter().map(|s| s.name.as_str()),
        registry.clone(),
        revocations.clone(),
        auditor.clone(),
        &tracer,
        federation.clone(),
    ));
    let app = Arc::new(App {
        config: config.clone(),
        security: Security {
            auth,
            policy,
            limiter: RateLimiter::new(),
            revocations: revocations.clone(),
        },
        tunnels: registry.clone(),
        signer,
        sealer,
        auditor: auditor.clone(),
        bridges: Default::default(),
        limits: limits::Limits::new(
            max_connections,
            config.clients.max_connections_per_ip,
            config.clients.max_buffered_body_bytes,
        ),
        drain: drain.clone(),
        requests: metrics.requests.clone(),
        tracer,
        feed: Arc::new(admin::feed::Feed::new(
            config.services.iter().map(|s| s.name.as_str()),
        )),
        federation: federation.clone(),
    });
    tokio::spawn(federation::upstream::end_idle_sessions(app.clone()));
    if config.federation.list_at_start {
        tokio::spawn(federation::shortened::report_at_start(app.clone()));
    }
    tokio::spawn(mcp::sessions::expire_idle_sessions(app.clone()));
    if let Some(admin) = &config.admin {
        start_admin(admin, &app, &certs, jwks, metrics).await?;
    }

    let listening = tokio::spawn(http::server::serve_clients(
        listener,
        client_tls,
        app.clone(),
    ));

    underpass_shared::shutdown_signal().await;
    tracing::info!(
        grace = ?config.drain_grace,
        "draining: /readyz is 503, no new client connections, connectors told; waiting for \
         the requests and streams in flight (a second signal exits at once)"
    );
    drain.start();
    let started = tokio::time::Instant::now();
    let why = tokio::select! {
        why = clients_gone(&app, listening, drain.grace()) => why,
        () = underpass_shared::shutdown_signal() => "a second signal",
    };
    tracing::info!(
        after = ?started.elapsed(),
        "drain over ({why}): closing the tunnels"
    );
    // No tunnel is taken from here on: the TCP listener closes, the QUIC endpoint refuses,
    // and one whose handshake was under way is closed as it is added.
    tcp_accepting.abort();
    let closing = registry.close_all();
    endpoint.close(codes::GOING_AWAY.into(), b"edge shutting down");
    if let Some(auditor) = auditor {
        if let Err(e) = auditor.shutdown().await {
            tracing::error!("audit log not closed cleanly: {e}");
        }
    }
    // Exiting before the closes are on the wire would leave connectors to find their tunnels
    // reset (TCP) or timed out (QUIC) instead of closed.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        endpoint.wait_idle().await;
        for tunnel in &closing {
            tunnel.finished().await;
        }
    })
    .await;
    Ok(())
}

/// Binds the admin listener (TLS with `[admin] cert`: operator certificates of `[tunnel] ca`)
/// and serves it.
async fn start_admin(
    admin: &config::AdminConfig,
    app: &Arc<App>,
    certs: &Arc<certs::Certs>,
    jwks: serde_json::Value,
    metrics: Arc<metrics::Metrics>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(admin.listen)
        .await
        .with_context(|| format!("cannot listen for admin on tcp/{}", admin.listen))?;
    let tls = match &certs.admin_cert {
        Some(cert) => {
            let operators = PeerPolicy {
                role: Role::Operator,
                trust_domain: app.config.trust_domain.clone(),
                revoked: Some(app.security.revocations.check()),
            };
            let crypto = tls::admin_server_crypto_reloading(
                cert.clone(),
                certs.tunnel_roots.clone(),
                operators,
            )?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(crypto)))
        }
        None => None,
    };
    let bound = admin::access::Listener::of(admin.listen, tls.is_some());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("admin: {scheme}://{}/healthz, dashboard at /", admin.listen);
    if bound == (admin::access::Listener::Network { tls: false }) {
        tracing::warn!(
            "[admin] listen {} is not a loopback address and has no TLS: /metrics, the dashboard \
             and /api/... answer 403; set [admin] cert and key (operators then present \
             certificates from `underpass-certs issue operator`), or bind it to 127.0.0.1",
            admin.listen
        );
    }
    tokio::spawn(admin::serve(
        listener,
        admin::Admin::new(app.clone(), certs.clone(), jwks, metrics, bound),
        tls,
    ));
    Ok(())
}

/// Returns once no client connection is left open (each closes as soon as it is between
/// requests), or `grace` is over; says which.
async fn clients_gone(
    app: &App,
    listening: tokio::task::JoinHandle<()>,
    grace: Duration,
) -> &'static str {
    let deadline = tokio::time::Instant::now() + grace;
    // The listener first: it takes the connections sent before `/readyz` said 503.
    if tokio::time::timeout_at(deadline, listening).await.is_err() {
        return "drain_grace over; the connections left are cut";
    }
    while app.limits.conns.open() > 0 {
        if tokio::time::Instant::now() >= deadline {
            return "drain_grace over; the connections left are cut";
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    "every client connection closed"
}
