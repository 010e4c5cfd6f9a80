//! The connector side of tunnels: dial each edge (over the carrier `transport` says: see
//! [`crate::carrier`]), run the control protocol (a thin shell over
//! [`ConnectorControl`]: introduce ourselves, then take whatever the edge sends later), serve
//! the exchange streams the edge opens, and when a tunnel drops, dial again with backoff.
//! A [`Dialer`] keeps one tunnel to one address; [`crate::fanout`] runs several per edge.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use underpass_proto::control::{
    self, ConnectorControl, ConnectorOutput, Control, ControlError, Draining, Hello, Welcome,
};
use underpass_proto::frame::{self, codes, FrameError, PROTOCOL_VERSION};
use underpass_transport::tls::{
    self,
    reauth::{self, BINDING_LEN},
};
use underpass_transport::{ExchangeRecv, ExchangeSend, TransportError, TunnelConn};

use crate::backends::Backends;
use crate::carrier::{Carrier, Carriers, FALLBACK_AFTER};
use crate::config::TunnelTransport;
use crate::exchange;

/// Time allowed for QUIC + TLS (or TCP + TLS) and the Hello/Welcome exchange.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A tunnel that lived this long was healthy: start the backoff from scratch afterwards.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Wait this long before dialing an edge that refused us (a config change is needed there).
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);

/// Exponential backoff with full jitter, as in the AWS architecture blog's recommendation:
/// many connectors restarting at once do not reconnect in lockstep.
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }
    pub fn reset(&mut self) {
        self.next = self.min;
    }
    /// The delay to wait now; doubles the ceiling for next time.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random::<f64>();
        self.min.max(ceiling.mul_f64(jitter))
    }
}

pub struct Dialer {
    /// The edge as configured (`host:port`), for the log.
    pub edge: String,
    /// The address of it this dialer keeps a tunnel to.
    pub addr: SocketAddr,
    /// Which of the tunnels to this address it is (from 1), for the log.
    pub slot: usize,
    pub server_name: String,
    pub connector: String,
    pub services: Vec<String>,
    /// Both carriers' client configs and the configured `transport`.
    pub carriers: Carriers,
    pub backends: Arc<Backends>,
    /// Certificate renewals waiting for a tunnel to carry them (see [`crate::renew`]).
    pub renewals: Arc<crate::renew::Renewals>,
    /// The edges' certificates revoked: a tunnel to an edge revoked while it runs is closed.
    pub revocations: Arc<crate::revocation::EdgeRevocations>,
    /// Flips to `true` when the connector shuts down: it drains (see [`Dialer::drain_out`]).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How long exchanges in flight may take to finish once it does (`drain_grace`).
    pub drain_grace: Duration,
    /// `true` while the edge's name no longer resolves to `addr`: the dialer does not dial
    /// again (a tunnel that is up stays up until it ends).
    pub retired: tokio::sync::watch::Receiver<bool>,
    /// Poked whenever a tunnel ends or a dial fails: the edge's name is resolved again.
    pub resolve_again: Arc<tokio::sync::Notify>,
    /// Live tunnels per edge, for readiness.
    pub live: Arc<crate::live::LiveTunnels>,
}

#[derive(Debug, thiserror::Error)]
enum DialError {
    /// No tunnel, and no answer over this carrier (unreachable, timed out).
    #[error("{0}")]
    Connect(String),
    /// The edge answered over this carrier but took no tunnel (it is shutting down, or the
    /// handshake failed): the carrier works, so `auto` does not fall back.
    #[error("{0}")]
    Answered(String),
    #[error("edge refused this connector: {0}")]
    Refused(String),
}

impl Dialer {
    /// Keeps a tunnel to one address of an edge up until shutdown, or until the address is
    /// retired.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !*self.shutdown.borrow() && !*self.retired.borrow() {
            let started = Instant::now();
            let result = self.connect_and_serve().await;
            if *self.shutdown.borrow() {
                return; // drained and closed (logged by `drain_out`): no reconnecting
            }
            self.resolve_again.notify_one();
            let (edge, addr, slot) = (&self.edge, self.addr, self.slot);
            let delay = match result {
                Ok(reason) => {
                    tracing::warn!(%edge, %addr, slot, "tunnel closed: {reason}; reconnecting");
                    if started.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                    backoff.next_delay()
                }
                Err(DialError::Refused(reason)) => {
                    tracing::error!(%edge, %addr, "edge refused this connector: {reason}");
                    REFUSED_BACKOFF
                }
                Err(e) => {
                    tracing::warn!(%edge, %addr, slot, "cannot reach edge: {e}");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => {}
                changed = self.retired.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Dials the edge, serves the tunnel until it closes; in `auto` mode, while on TCP,
    /// re-probes QUIC and moves the tunnel back to it (the TCP tunnel drains in the
    /// background).
    async fn connect_and_serve(&mut self) -> Result<TransportError, DialError> {
        let addr = self.addr;
        let shutdown = self.shutdown.clone();
        let mut current = self.establish_any(addr).await?;
        let _up = self.live.up(&self.edge);
        loop {
            let mut stop = shutdown.clone();
            let inflight = Arc::new(AtomicUsize::new(0));
            let probing =
                self.carriers.mode == TunnelTransport::Auto && current.conn.transport() == "tcp";
            let reprobe = async {
                if !probing {
                    return std::future::pending().await;
                }
                let mut delay = self.carriers.first_reprobe_delay();
                loop {
                    tokio::time::sleep(delay).await;
                    delay = self.carriers.reprobe_delay();
                    match self.establish(addr, Carrier::Quic).await {
                        Ok(quic) => return quic,
                        Err(e) => {
                            tracing::debug!(edge = %self.edge, "QUIC still unreachable: {e}")
                        }
                    }
                }
            };
            tokio::select! {
                reason = serve_exchanges(&current.conn, &self.backends, &inflight) => {
                    if let Some(endpoint) = &current.endpoint {
                        endpoint.close(0u32.into(), b"");
                    }
                    return Ok(reason);
                }
                () = stopping(&mut stop) => {
                    self.drain_out(&current, &inflight).await;
                    return Ok(quinn::ConnectionError::LocallyClosed.into());
                }
                quic = reprobe => {
                    tracing::info!(
                        edge = %self.edge,
                        transport = "quic",
                        "QUIC reachable again: new exchanges go to the QUIC tunnel, the TCP tunnel drains"
                    );
                    let old = std::mem::replace(&mut current, quic);
                    tokio::spawn(drain(
                        old,
                        self.backends.clone(),
                        inflight,
                        self.edge.clone(),
                        shutdown.clone(),
                    ));
                }
            }
        }
    }

    /// The connector is shutting down: its control task has told the edge (`Draining`), which
    /// sends no new exchanges here while another tunnel can take them. Serves what is in
    /// flight (and any exchange the edge had already sent off) until nothing was in flight for
    /// [`DRAIN_QUIET`] or `drain_grace` is over, then closes the tunnel.
    async fn drain_out(&self, current: &Established, inflight: &Arc<AtomicUsize>) {
        let started = Instant::now();
        let why = tokio::select! {
            why = until_quiet(inflight, self.drain_grace) => why,
            reason = serve_exchanges(&current.conn, &self.backends, inflight) => {
                tracing::info!(edge = %self.edge, addr = %self.addr, "tunnel closed while draining: {reason}");
                return;
            }
        };
        tracing::info!(
            edge = %self.edge,
            addr = %self.addr,
            slot = self.slot,
            after = ?started.elapsed(),
            "drained ({why}): closing the tunnel"
        );
        current
            .conn
            .close(codes::GOING_AWAY, b"connector shutting down");
        if let Some(endpoint) = &current.endpoint {
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        }
    }

    /// A tunnel over the configured transport: `auto` tries QUIC for [`FALLBACK_AFTER`],
    /// then TCP. An edge's refusal is final either way, and so is any other answer over QUIC
    /// (UDP works; an edge that is exiting refuses QUIC connections, and its TCP listener
    /// would be no better).
    async fn establish_any(&self, addr: SocketAddr) -> Result<Established, DialError> {
        let first = self.carriers.first();
        if self.carriers.mode != TunnelTransport::Auto {
            return self.establish(addr, first).await;
        }
        let why = match tokio::time::timeout(FALLBACK_AFTER, self.establish(addr, first)).await {
            Ok(Ok(tunnel)) => return Ok(tunnel),
            Ok(Err(e @ (DialError::Refused(_) | DialError::Answered(_)))) => return Err(e),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no QUIC tunnel within {FALLBACK_AFTER:?} (UDP blocked?)"),
        };
        tracing::warn!(edge = %self.edge, "{why}; falling back to TLS over TCP");
        self.establish(addr, Carrier::Tcp).await
    }

    /// Dials `addr` over `carrier` and introduces this connector (Hello, Welcome); the control
    /// stream is then served in the background.
    async fn establish(
        &self,
        addr: SocketAddr,
        carrier: Carrier,
    ) -> Result<Established, DialError> {
        let (dialed, welcome, ctl) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            // The certificate the handshake presents (a renewal landing meanwhile is presented
            // again by `Reauth`, which costs nothing).
            let presented = self.renewals.cert().leaf();
            let dialed = self
                .carriers
                .dial(carrier, addr, &self.server_name)
                .await
                .map_err(|f| match f.answered {
                    true => DialError::Answered(f.reason),
                    false => DialError::Connect(f.reason),
                })?;
            // From here on the tunnel is used through the transport seam only.
            let conn = &dialed.conn;
            let binding = conn.reauth_binding();
            let (send, recv) = conn
                .open_exchange()
                .await
                .map_err(|e| DialError::Answered(e.to_string()))?;
            let mut ctl = ControlStream {
                machine: ConnectorControl::new(Hello {
                    protocol: PROTOCOL_VERSION,
                    connector: self.connector.clone(),
                    services: self.services.clone(),
                    build: concat!("underpass-connector ", env!("CARGO_PKG_VERSION")).to_owned(),
                    capabilities: control::capabilities(),
                }),
                send,
                recv,
                open: true,
                edge: self.edge.clone(),
                backends: self.backends.clone(),
                renewals: self.renewals.clone(),
                pending: None,
                next_id: 0,
                reauth: ReauthState {
                    binding,
                    proven: presented,
                    attempted: None,
                    pending: None,
                },
            };
            let hello = ctl
                .machine
                .start()
                .map_err(|e| DialError::Answered(e.to_string()))?;
            ctl.perform(hello)
                .await
                .map_err(|e| DialError::Answered(format!("cannot send Hello: {e}")))?;
            loop {
                let outputs = ctl.receive().await.map_err(|e| {
                    DialError::Answered(match e {
                        ControlFailure::Protocol(ControlError::Ended(_)) => {
                            match conn.close_reason() {
                                Some(r) => format!("edge closed the tunnel: {r}"),
                                None => "edge closed the control stream".into(),
                            }
                        }
                        ControlFailure::Read(e) => match conn.close_reason() {
                            Some(r) => format!("edge closed the tunnel: {r}"),
                            None => format!("control stream failed: {e}"),
                        },
                        ControlFailure::Protocol(e) => e.to_string(),
                    })
                })?;
                match ctl.perform(outputs).await {
                    Ok(Verdict::Continue) => {}
                    Ok(Verdict::Welcomed(welcome)) => return Ok((dialed, welcome, ctl)),
                    Ok(Verdict::Refused(reason)) => return Err(DialError::Refused(reason)),
                    Err(e) => return Err(DialError::Answered(format!("control stream: {e}"))),
                }
            }
        })
        .await
        .map_err(|_| {
            DialError::Connect(format!(
                "no answer from {addr} within {HANDSHAKE_TIMEOUT:?}"
            ))
        })??;

        self.backends.stats.connected(&self.edge);
        // The control stream stays open for later messages, fed to the machine.
        let control_conn = dialed.conn.clone();
        let (shutdown, grace) = (self.shutdown.clone(), self.drain_grace);
        tokio::spawn(async move { ctl.serve(&control_conn, shutdown, grace).await });
        tokio::spawn(self.revocations.clone().guard(dialed.conn.clone()));

        tracing::info!(
            edge = %self.edge,
            addr = %self.addr,
            slot = self.slot,
            edge_name = %welcome.edge,
            transport = dialed.conn.transport(),
            services = ?self.services,
            "tunnel up"
        );
        Ok(Established {
            conn: dialed.conn,
            endpoint: dialed.endpoint,
        })
    }
}

/// A tunnel past its handshake.
struct Established {
    conn: TunnelConn,
    /// The QUIC endpoint of a QUIC tunnel.
    endpoint: Option<quinn::Endpoint>,
}

/// Serves every exchange stream the edge opens on `conn`, counting those in flight, until the
/// tunnel closes; returns why.
async fn serve_exchanges(
    conn: &TunnelConn,
    backends: &Arc<Backends>,
    inflight: &Arc<AtomicUsize>,
) -> TransportError {
    loop {
        match conn.accept_exchange().await {
            Ok((send, recv)) => {
                let backends = backends.clone();
                let inflight = InFlight::enter(inflight);
                tokio::spawn(async move {
                    exchange::serve_exchange(&backends, send, recv).await;
                    drop(inflight);
                });
            }
            Err(reason) => return reason,
        }
    }
}

/// One exchange in flight on a tunnel (for draining).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A tunnel that has had no exchange in flight for this long is drained: the edge, which
/// passes over a connector's TCP tunnel once its QUIC one is up, sends nothing more.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// A draining tunnel is closed after this even with exchanges in flight (a long-lived event
/// stream; its client reconnects, over QUIC).
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Returns once the connector is shutting down (at once if it is).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone: the connector is exiting anyway.
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Returns once nothing was in flight for [`DRAIN_QUIET`] (`"drained"`), or after `grace`.
async fn until_quiet(inflight: &AtomicUsize, grace: Duration) -> &'static str {
    let started = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if inflight.load(Ordering::SeqCst) == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= DRAIN_QUIET {
                return "drained";
            }
        } else {
            quiet_since = None;
        }
        if started.elapsed() >= grace {
            return "drain grace over, exchanges still in flight were cut";
        }
    }
}

/// Lets the TCP tunnel `old` finish its exchanges in flight (serving any that still arrive),
/// then closes it.
async fn drain(
    old: Established,
    backends: Arc<Backends>,
    inflight: Arc<AtomicUsize>,
    edge: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let conn = old.conn.clone();
    let quiet = until_quiet(&inflight, DRAIN_GRACE);
    tokio::select! {
        reason = serve_exchanges(&conn, &backends, &inflight) => {
            tracing::info!(%edge, transport = conn.transport(), "draining tunnel closed: {reason}");
        }
        why = quiet => {
            tracing::info!(%edge, transport = conn.transport(), "old tunnel closed: {why}");
            conn.close(codes::NORMAL, b"moved to QUIC");
        }
        _ = shutdown.changed() => conn.close(codes::GOING_AWAY, b"connector shutting down"),
    }
    if let Some(endpoint) = old.endpoint {
        endpoint.close(0u32.into(), b"");
    }
}

/// The connector's end of one tunnel's control stream: the protocol machine and the stream
/// that feeds it.
struct ControlStream {
    machine: ConnectorControl,
    send: ExchangeSend,
    recv: ExchangeRecv,
    /// Whether the edge's side of the stream may still deliver bytes.
    open: bool,
    /// The edge's address as configured, for the log.
    edge: String,
    /// Whose figures `Stats` reports.
    backends: Arc<Backends>,
    /// Renewal requests to carry (taken only if the edge announced `Renew`).
    renewals: Arc<crate::renew::Renewals>,
    /// The renewal sent and waiting for its answer: (id, who waits).
    pending: Option<(u64, tokio::sync::oneshot::Sender<crate::renew::Answer>)>,
    next_id: u64,
    reauth: ReauthState,
}

/// Which certificate this tunnel's edge holds us to, and the `Reauth` moving it to the one in
/// force.
struct ReauthState {
    /// This tunnel's binding (see `underpass_transport::tls::reauth`).
    binding: Option<[u8; BINDING_LEN]>,
    /// The leaf the edge took for this tunnel: the handshake's, a renewal's, a `Reauth`'s.
    proven: Option<CertificateDer<'static>>,
    /// The leaf of the last `Reauth` sent (not sent again if refused).
    attempted: Option<CertificateDer<'static>>,
    /// The `Reauth` awaiting its answer.
    pending: Option<u64>,
}

/// Why reading the control stream stopped.
enum ControlFailure {
    /// The stream broke (reset, or the tunnel is gone).
    Read(TransportError),
    /// The edge broke the protocol, or ended the stream too early.
    Protocol(ControlError),
}

/// What a batch of the machine's outputs came to.
enum Verdict {
    /// Nothing to decide.
    Continue,
    /// The edge welcomed us.
    Welcomed(Welcome),
    /// The edge refused us.
    Refused(String),
}

impl ControlStream {
    /// Waits for the next bytes of the control stream, or its end, and feeds the machine.
    async fn receive(&mut self) -> Result<Vec<ConnectorOutput>, ControlFailure> {
        match self.recv.read_chunk().await {
            Ok(Some(chunk)) => self
                .machine
                .handle_bytes(&chunk)
                .map_err(ControlFailure::Protocol),
            Ok(None) => {
                self.open = false;
                self.machine.handle_end().map_err(ControlFailure::Protocol)
            }
            Err(e) => {
                self.open = false;
                Err(ControlFailure::Read(e))
            }
        }
    }

    /// Does what the machine's outputs say.
    async fn perform(&mut self, outputs: Vec<ConnectorOutput>) -> Result<Verdict, FrameError> {
        let mut verdict = Verdict::Continue;
        for output in outputs {
            match output {
                ConnectorOutput::Send(msg) => frame::write_frame(&mut self.send, &msg).await?,
                ConnectorOutput::Welcomed(welcome) => verdict = Verdict::Welcomed(welcome),
                ConnectorOutput::Refused(reason) => return Ok(Verdict::Refused(reason)),
                ConnectorOutput::Ignored(kind) => tracing::info!(
                    edge = %self.edge,
                    kind,
                    "ignoring a control message of a type this connector does not know"
                ),
                ConnectorOutput::Message(Control::Draining(drain)) => tracing::info!(
                    edge = %self.edge,
                    grace_ms = drain.grace_ms,
                    "edge draining: it closes this tunnel once its clients are served; the \
                     other tunnels carry on"
                ),
                ConnectorOutput::Message(Control::Renewed(r)) => {
                    // The edge moved this tunnel to the certificate it issued.
                    if self.pending.as_ref().is_some_and(|(id, _)| *id == r.id) {
                        self.reauth.proven = tls::parse_certs(r.chain_pem.as_bytes(), "Renewed")
                            .ok()
                            .and_then(|chain| chain.into_iter().next());
                    }
                    self.answer(r.id, Ok((r.chain_pem, r.ca_pem)))
                }
                ConnectorOutput::Message(Control::Reauthed(r))
                    if self.reauth.pending == Some(r.id) =>
                {
                    self.reauth.pending = None;
                    self.reauth.proven = self.reauth.attempted.clone();
                    tracing::info!(
                        edge = %self.edge,
                        "tunnel re-authenticated with the renewed certificate: it runs on"
                    );
                }
                ConnectorOutput::Message(Control::ReauthRefused(r))
                    if self.reauth.pending == Some(r.id) =>
                {
                    self.reauth.pending = None;
                    tracing::warn!(
                        edge = %self.edge,
                        "the edge refused the renewed certificate on this tunnel ({}); the \
                         tunnel ends with the old one, then the connector dials again",
                        r.reason
                    );
                }
                ConnectorOutput::Message(Control::RenewRefused(r)) => {
                    self.answer(r.id, Err(r.reason))
                }
                ConnectorOutput::Message(msg) => {
                    tracing::debug!(edge = %self.edge, kind = msg.kind(), "control message")
                }
            }
        }
        Ok(verdict)
    }

    /// After Welcome: feeds the machine whatever the edge sends, until the stream ends (the
    /// tunnel going away ends it too). An edge breaking the protocol gets the tunnel closed
    /// with [`codes::PROTOCOL`], and the connector dials again.
    async fn serve(
        mut self,
        conn: &TunnelConn,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) {
        let mut told = false;
        let renews = self
            .machine
            .peer_capabilities()
            .iter()
            .any(|c| c == "Renew");
        let renewals = self.renewals.clone();
        let reauths = self
            .machine
            .peer_capabilities()
            .iter()
            .any(|c| c == "Reauth");
        let mut cert_changes = renewals.cert().changes();
        let reports = self
            .machine
            .peer_capabilities()
            .iter()
            .any(|c| c == "Stats");
        let first = tokio::time::Instant::now() + crate::stats::FIRST_STATS_AFTER;
        let mut report = tokio::time::interval_at(first, crate::stats::STATS_EVERY);
        while self.open {
            if reauths {
                self.reauth_if_needed().await;
            }
            let received = tokio::select! {
                received = self.receive() => received,
                Ok(()) = cert_changes.changed(), if reauths => continue,
                _ = report.tick(), if reports => {
                    let stats = Control::Stats(self.backends.stats_snapshot());
                    if let Ok(outputs) = self.machine.send(stats) {
                        let _ = self.perform(outputs).await;
                    }
                    continue;
                }
                Some(job) = renewals.next(), if renews && self.pending.is_none() && !told => {
                    self.send_renewal(job).await;
                    continue;
                }
                () = stopping(&mut shutdown), if !told => {
                    told = true;
                    self.announce_drain(grace).await;
                    continue;
                }
            };
            let outputs = match received {
                Ok(outputs) => outputs,
                Err(ControlFailure::Read(_)) => return,
                Err(ControlFailure::Protocol(e)) => return self.protocol_failure(conn, e),
            };
            if let Err(e) = self.perform(outputs).await {
                // The stream is broken; the tunnel's own fate follows from the connection.
                return tracing::debug!(edge = %self.edge, "control stream failed: {e}");
            }
        }
    }

    /// Sends a renewal request on this control stream; its answer goes to the job's waiter.
    async fn send_renewal(&mut self, job: crate::renew::Job) {
        self.next_id += 1;
        let id = self.next_id;
        let message = Control::Renew(control::Renew {
            id,
            csr_pem: job.csr_pem,
        });
        let sent = match self.machine.send(message) {
            Ok(outputs) => self.perform(outputs).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(_) => self.pending = Some((id, job.reply)),
            Err(e) => {
                let _ = job.reply.send(Err(format!("cannot send the request: {e}")));
            }
        }
    }

    /// Presents the certificate in force on this tunnel if the edge holds us to another one
    /// (renewed through another tunnel, or files replaced), once per certificate.
    async fn reauth_if_needed(&mut self) {
        let state = &self.reauth;
        let current = self.renewals.cert().current();
        let leaf = current.cert.first();
        if state.pending.is_some()
            || leaf == state.proven.as_ref()
            || leaf == state.attempted.as_ref()
        {
            return;
        }
        let Some(binding) = state.binding else {
            return tracing::warn!(edge = %self.edge, "cannot re-authenticate this tunnel: no TLS binding");
        };
        let proof = match reauth::prove(&current, &binding) {
            Ok(proof) => proof,
            Err(e) => {
                return tracing::warn!(edge = %self.edge, "cannot re-authenticate this tunnel: {e}")
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        self.reauth.attempted = leaf.cloned();
        let message = Control::Reauth(control::Reauth {
            id,
            chain: current.cert.iter().map(|c| c.to_vec()).collect(),
            scheme: proof.scheme,
            signature: proof.signature,
        });
        let sent = match self.machine.send(message) {
            Ok(outputs) => self.perform(outputs).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(_) => self.reauth.pending = Some(id),
            Err(e) => tracing::warn!(edge = %self.edge, "cannot re-authenticate this tunnel: {e}"),
        }
    }

    /// Hands a renewal answer to its waiter (an answer to no request is ignored).
    fn answer(&mut self, id: u64, answer: crate::renew::Answer) {
        match self.pending.take() {
            Some((pending, reply)) if pending == id => {
                let _ = reply.send(answer);
            }
            other => {
                self.pending = other;
                tracing::debug!(edge = %self.edge, id, "renewal answer to no request: ignored");
            }
        }
    }

    /// Tells the edge this connector is draining, so it sends no new exchanges here (an
    /// older edge that does not understand `Draining` learns when the tunnel closes).
    async fn announce_drain(&mut self, grace: Duration) {
        let message = Control::Draining(Draining {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        });
        match self.machine.send(message) {
            Ok(outputs) => {
                if let Err(e) = self.perform(outputs).await {
                    tracing::debug!(edge = %self.edge, "cannot announce the drain: {e}");
                }
            }
            Err(e) => tracing::info!(edge = %self.edge, "drain not announced: {e}"),
        }
    }

    fn protocol_failure(&self, conn: &TunnelConn, e: ControlError) {
        tracing::warn!(edge = %self.edge, "closing tunnel: control protocol: {e}");
        conn.close(codes::PROTOCOL, b"control protocol violation");
    }
}

/// The host part of `host:port`, for checking the edge certificate when no name is configured.
pub fn host_of(edge: &str) -> &str {
    let host = edge.rsplit_once(':').map_or(edge, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(2));
        }
        assert_eq!(b.next, Duration::from_secs(2));
        b.reset();
        assert_eq!(b.next, Duration::from_millis(100));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:7844"), "127.0.0.1");
        assert_eq!(host_of("edge.example.com:7844"), "edge.example.com");
        assert_eq!(host_of("[::1]:7844"), "::1");
    }
}
