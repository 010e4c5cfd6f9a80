//! The Underpass connector: runs inside the private network, dials out to edges over QUIC (or
//! TLS over TCP where UDP is blocked) with mutual TLS, and serves only the services its own config names. It listens on no port (but the opt-in loopback `[health]` listener).
//!
//! Modules, from the tunnel down: [`fanout`] (every address of every edge,
//! `tunnels_per_edge` tunnels to each), [`tunnel`] (dial one address, Hello/Welcome, accept
//! exchange streams), [`carrier`] (QUIC or TCP, the `auto` fallback and re-probe),
//! [`exchange`] (serve one exchange stream), [`backends`] (one backend per service:
//! Streamable HTTP, legacy SSE, stdio), [`bridge`] (the session bridge the SSE and stdio
//! backends share), [`concurrency`] (caps on exchanges in flight), and the leaves
//! [`config`], [`answer`] and [`http_client`].
#![forbid(unsafe_code)]

pub mod answer;
pub mod backends;
pub mod bridge;
pub mod carrier;
pub mod concurrency;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod enroll;
pub mod exchange;
pub mod fanout;
pub mod health;
pub mod http_client;
pub mod live;
pub mod renew;
pub mod revocation;
pub mod stats;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use underpass_proto::identity::Role;
use underpass_transport::tls::{self, PeerPolicy};

use crate::backends::Backends;
use crate::carrier::Carriers;
use crate::config::ConnectorConfig;
use crate::fanout::EdgeDialers;

/// Dials every configured edge and serves until SIGINT or SIGTERM.
pub async fn run(config: ConnectorConfig) -> anyhow::Result<()> {
    underpass_shared::log_stats_on_usr1();
    let creds = Arc::new(credentials::Credentials::load(&config)?);
    let shared_config = Arc::new(config.clone());
    creds.watch(&shared_config);
    // The error names the file; its source, printed with it, says why.
    let revocations = revocation::EdgeRevocations::load(config.revocation_list.clone())?;
    tokio::spawn(revocations.clone().watch());
    let carriers = carriers_for(&config, &creds, &revocations)?;
    let live = Arc::new(live::LiveTunnels::default());
    health::start(&shared_config, live.clone()).await?;

    check_fd_limit(&config);
    let tracer =
        underpass_shared::telemetry::Tracer::start(&config.telemetry, "underpass-connector")
            .map_err(anyhow::Error::msg)?;
    let backends = Arc::new(Backends::new(&config, &tracer));
    let services: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let renewals = Arc::new(renew::Renewals::new(creds.cert.clone()));
    tokio::spawn(renew::run(
        creds.clone(),
        shared_config.clone(),
        renewals.clone(),
        shutdown_rx.clone(),
    ));
    let mut dialers = tokio::task::JoinSet::new();
    for edge in &config.edges {
        let server_name = config
            .edge_server_name
            .clone()
            .unwrap_or_else(|| tunnel::host_of(edge).to_owned());
        tracing::info!(
            %edge,
            %server_name,
            identity = %creds.identity,
            ?services,
            transport = ?config.transport,
            tunnels_per_address = config.tunnels_per_edge,
            "serving through edge"
        );
        dialers.spawn(
            EdgeDialers {
                edge: edge.clone(),
                server_name,
                per_address: config.tunnels_per_edge,
                connector: config.name.clone(),
                services: services.clone(),
                carriers: carriers.clone(),
                backends: backends.clone(),
                renewals: renewals.clone(),
                revocations: revocations.clone(),
                shutdown: shutdown_rx.clone(),
                drain_grace: config.drain_grace,
                live: live.clone(),
            }
            .run(),
        );
    }
    underpass_shared::shutdown_signal().await;
    tracing::info!(
        grace = ?config.drain_grace,
        "draining: edges told to send nothing new; the exchanges in flight finish, then the \
         tunnels close (a second signal exits at once)"
    );
    let _ = shutdown_tx.send(true);
    // Each tunnel closes itself once drained; the margin covers closing and a last dial.
    let drained = tokio::time::timeout(config.drain_grace + Duration::from_secs(4), async {
        while dialers.join_next().await.is_some() {}
    });
    tokio::select! {
        _ = drained => {}
        () = underpass_shared::shutdown_signal() => tracing::info!("second signal: exiting now"),
    }
    backends.shutdown().await;
    Ok(())
}

/// Both carriers' client configurations for this connector's identity in force, checking the
/// edges' certificates against `ca` and the revocation list (shared by `run` and the doctor).
pub fn carriers_for(
    config: &ConnectorConfig,
    creds: &credentials::Credentials,
    revocations: &revocation::EdgeRevocations,
) -> anyhow::Result<Carriers> {
    let edge_policy = PeerPolicy {
        role: Role::Edge,
        trust_domain: config.trust_domain.clone(),
        revoked: Some(revocations.check()),
    };
    let tunnel_crypto =
        tls::tunnel_client_crypto_reloading(creds.cert.clone(), creds.roots.clone(), edge_policy)?;
    let tcp_connector = underpass_transport::tcp::client_crypto(tunnel_crypto.clone());
    let mut client_config = tls::tunnel_client_config(tunnel_crypto)?;
    let mut transport = underpass_transport::quic::tunnel_transport();
    // A short initial RTT guess makes lost handshake packets retransmit sooner, so a restarted
    // edge is reached within about a second instead of several.
    transport.initial_rtt(Duration::from_millis(100));
    client_config.transport_config(Arc::new(transport));
    Ok(Carriers::new(
        config.transport,
        client_config,
        tcp_connector,
    ))
}

/// [`carriers_for`] with the credentials and revocation list read from the files (the
/// doctor; a revocation list that cannot be read is left out, its own check fails).
pub fn tunnel_carriers(config: &ConnectorConfig) -> anyhow::Result<Carriers> {
    let creds = credentials::Credentials::load(config)?;
    let revocations = revocation::EdgeRevocations::load(config.revocation_list.clone())
        .or_else(|_| revocation::EdgeRevocations::load(None))?;
    carriers_for(config, &creds, &revocations)
}

/// Raises the soft limit of open files to the hard limit, and says so loudly when even that is
/// below what the configured caps may use (then a burst ends in "Too many open files").
fn check_fd_limit(config: &ConnectorConfig) {
    // Headroom for the tunnels, the log, the resolver and the like.
    const RESERVE: u64 = 64;
    let need = config.descriptor_budget() + RESERVE;
    match underpass_shared::raise_fd_limit() {
        Ok(limit) => {
            tracing::info!(
                before = ?limit.before,
                soft = ?limit.soft,
                hard = ?limit.hard,
                "open file limit raised to the hard limit"
            );
            if limit.soft.is_some_and(|soft| soft < need) {
                tracing::warn!(
                    soft = ?limit.soft,
                    need,
                    "the open file limit is below what max_concurrent and max_processes of all \
                     services may use at once: raise LimitNOFILE (ulimit -n) or lower those caps"
                );
            }
        }
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}
