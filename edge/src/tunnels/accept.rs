//! The edge side of tunnels: accept connector connections, run the control protocol (a thin
//! shell over [`EdgeControl`]: the handshake, then whatever the connector sends later), and
//! keep the registry in step with which tunnels are alive.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use underpass_pki::revocation::certificate_serial;
use underpass_proto::control::{
    self, Control, ControlError, Draining, EdgeControl, EdgeOutput, Hello, Limits,
};
use underpass_proto::frame::{self, codes, FrameError};
use underpass_proto::identity::SpiffeId;
use underpass_transport::tls::{
    self,
    reauth::{Proof, Reauthenticator, BINDING_LEN},
};
use underpass_transport::{ExchangeRecv, ExchangeSend, TransportError, TunnelConn};

use crate::config::EdgeConfig;
use crate::drain::Drain;
use crate::enroll::Enrollment;
use crate::tunnels::budget::{ControlBudget, CONTROL_BURST, CONTROL_MESSAGES_PER_SEC};
use crate::tunnels::registry::{Registry, Tunnel};

/// How long a connector has to complete QUIC + TLS (or TCP + TLS) and send its Hello.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval announced to connectors (the one both ends' transport uses).
const HEARTBEAT: Duration = underpass_transport::quic::KEEP_ALIVE;
/// Certificates a `Reauth` chain may carry (a leaf and its issuer, with room to spare).
const MAX_REAUTH_CHAIN: usize = 4;

/// The decision on a connector's Hello (its protocol version already checked by
/// [`EdgeControl`]): a plain function of the Hello, the cert identity and the config, so it can
/// be tested without a socket.
pub fn judge_hello(
    config: &EdgeConfig,
    cert_name: &str,
    hello: &Hello,
) -> Result<Vec<String>, String> {
    let Hello {
        connector,
        services,
        ..
    } = hello;
    if connector != cert_name {
        return Err(format!(
            "connector calls itself {connector:?} but its certificate says {cert_name:?}; set `name = \"{cert_name}\"` in connector.toml"
        ));
    }
    if services.is_empty() {
        // A probe (`underpass-connector doctor`): welcomed, never given exchanges.
        if is_probe(hello) {
            return Ok(Vec::new());
        }
        return Err("connector offers no service".into());
    }
    let refused: Vec<&str> = services
        .iter()
        .filter(|s| !config.grants(cert_name, s))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "connector {cert_name:?} is not granted service(s) {refused:?} in this edge's [[services]] table"
        ));
    }
    Ok(services.clone())
}

/// A Hello that offers no service and announces `Time` is `underpass-connector doctor`
/// checking that this edge accepts it and how far the clocks are apart: it is welcomed (the
/// handshake is what it checks), never registered, and closed after [`PROBE_LIFETIME`].
fn is_probe(hello: &Hello) -> bool {
    hello.services.is_empty() && hello.capabilities.iter().any(|c| c == "Time")
}

/// How long a probe tunnel may stay open (a doctor needs one round trip).
const PROBE_LIFETIME: Duration = Duration::from_secs(5);

/// What serving a tunnel takes, shared by the QUIC and TCP accept loops.
pub struct TunnelService {
    pub config: Arc<EdgeConfig>,
    pub registry: Arc<Registry>,
    /// This edge's name (its certificate's), sent in `Welcome`.
    pub edge_name: String,
    pub drain: Drain,
    /// The issuer that renews connector certificates (`[enrollment]`), if this edge has one.
    pub issuer: Option<Arc<Enrollment>>,
    /// Checks a renewed certificate a connector presents on a live tunnel (`Reauth`).
    pub reauth: Reauthenticator,
}

pub async fn accept_loop(endpoint: quinn::Endpoint, service: Arc<TunnelService>) {
    while let Some(incoming) = endpoint.accept().await {
        let service = service.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await;
            let conn = match handshake {
                Ok(Ok(conn)) => TunnelConn::Quic(conn),
                Ok(Err(e)) => {
                    return tracing::warn!(%remote, "tunnel refused: handshake failed: {e}")
                }
                Err(_) => return tracing::warn!(%remote, "tunnel refused: handshake timed out"),
            };
            if let Err(e) = serve_tunnel(conn, &service).await {
                tracing::warn!(%remote, "tunnel refused: {e}");
            }
        });
    }
}

/// Runs one authenticated tunnel (any transport): the Hello/Welcome handshake on the control
/// stream, then keeps the tunnel in the registry until it closes.
pub(crate) async fn serve_tunnel(
    conn: TunnelConn,
    service: &Arc<TunnelService>,
) -> Result<(), String> {
    let TunnelService {
        config,
        registry,
        edge_name,
        drain,
        ..
    } = service.as_ref();
    let (mut ctl, hello, cert_serial) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_hello(&conn, service.clone()))
            .await
            .map_err(|_| "connector did not complete its handshake in time".to_string())?
            .map_err(|e| match e {
                HandshakeError::Failed(reason) => {
                    conn.close(codes::PROTOCOL, b"bad handshake");
                    reason
                }
                HandshakeError::Refused(reason) => {
                    conn.close(codes::REFUSED, reason.as_bytes());
                    reason
                }
            })?;
    let cert_name = ctl.connector.clone();

    let services = match judge_hello(config, &cert_name, &hello) {
        Ok(services) => services,
        Err(reason) => {
            let outputs = ctl
                .machine
                .refuse(reason.clone())
                .map_err(|e| e.to_string())?;
            let _ = ctl.perform(outputs).await;
            conn.close(codes::REFUSED, reason.as_bytes());
            return Err(reason);
        }
    };

    let limits = Limits {
        max_request_body: config.clients.max_request_body as u64,
        max_concurrent_exchanges: config.tunnel.max_exchanges_per_tunnel as u64,
    };
    let outputs = ctl
        .machine
        .accept(edge_name.to_owned(), limits, HEARTBEAT.as_millis() as u64)
        .map_err(|e| e.to_string())?;
    ctl.perform(outputs)
        .await
        .map_err(|e| format!("cannot send Welcome to {cert_name}: {e}"))?;
    if services.is_empty() {
        tracing::info!(connector = %cert_name, remote = %conn.remote_addr(), "doctor probe");
        let _ = tokio::time::timeout(PROBE_LIFETIME, ctl.serve(&conn, drain)).await;
        conn.close(codes::GOING_AWAY, b"probe done");
        return Ok(());
    }

    let tunnel = registry.add(
        cert_name.clone(),
        services.clone(),
        &hello.build,
        conn.clone(),
        cert_serial,
    );
    tracing::info!(
        connector = %cert_name,
        remote = %conn.remote_addr(),
        transport = conn.transport(),
        ?services,
        "tunnel up"
    );
    // The handshake checked the certificate once; the tunnel must not outlive it (nor a
    // renewed one, see `Tunnel::renewed`).
    let not_after = conn
        .peer_leaf()
        .and_then(|leaf| underpass_pki::inspect::inspect_der(&leaf).ok())
        .map(|info| info.not_after.unix_timestamp());
    let expires = tunnel.expires(not_after);
    ctl.tunnel = Some(tunnel.clone());
    let serve = ctl.serve(&conn, drain);
    tokio::pin!(serve);
    let reason = tokio::select! {
        reason = &mut serve => reason,
        () = until_expired(expires) => {
            tracing::warn!(connector = %cert_name, "closing tunnel: certificate expired");
            conn.close(codes::GOING_AWAY, b"certificate expired");
            serve.await
        }
    };
    registry.remove(tunnel.id);
    tracing::info!(connector = %cert_name, "tunnel down: {reason}");
    Ok(())
}

/// Returns once the wall clock is past the end `expires` says (Unix seconds; never without
/// one), following it when a renewal moves it. Checks the clock again at least daily, so a
/// clock that jumps is followed.
async fn until_expired(mut expires: tokio::sync::watch::Receiver<Option<i64>>) {
    loop {
        let Some(end) = *expires.borrow_and_update() else {
            if expires.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // Expired means past `not_after`, as webpki has it.
        let left = end.saturating_add(1).saturating_sub(now);
        if left <= 0 {
            return;
        }
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(u64::MAX));
        tokio::select! {
            () = tokio::time::sleep(left.min(Duration::from_secs(24 * 3600))) => {}
            changed = expires.changed() => if changed.is_err() {
                // No renewal can come any more: the end stands.
                tokio::time::sleep(left).await;
                return;
            },
        }
    }
}

/// How a handshake ended without a Hello to judge.
enum HandshakeError {
    /// The connector broke off or sent garbage: there is no one to answer.
    Failed(String),
    /// The edge refused the connector (the `Refused` has been sent): close with
    /// [`codes::REFUSED`].
    Refused(String),
}

/// Accepts the control stream and reads the connector's Hello (the certificate's identity and
/// serial come along).
async fn read_hello(
    conn: &TunnelConn,
    service: Arc<TunnelService>,
) -> Result<(ControlStream, Hello, String), HandshakeError> {
    let failed = HandshakeError::Failed;
    let leaf = conn
        .peer_leaf()
        .ok_or_else(|| failed("connector presented no certificate".into()))?;
    let id = SpiffeId::from_certificate_der(&leaf).map_err(|e| failed(e.to_string()))?;
    let serial = certificate_serial(&leaf).map_err(|e| failed(e.to_string()))?;
    let (send, recv) = conn
        .accept_exchange()
        .await
        .map_err(|e| failed(format!("no control stream from {id}: {e}")))?;
    let mut ctl = ControlStream {
        // `Renew` is announced only by an edge that can issue.
        machine: EdgeControl::new(
            control::capabilities()
                .into_iter()
                .filter(|c| c != "Renew" || service.issuer.is_some())
                .collect(),
        ),
        send,
        recv,
        open: true,
        connector: id.name.clone(),
        budget: ControlBudget::new(Instant::now()),
        ignored: BTreeSet::new(),
        tunnel: None,
        service,
        binding: conn.reauth_binding(),
    };
    loop {
        let outputs = ctl.receive().await.map_err(|e| {
            failed(match e {
                ControlFailure::Read(e) => format!("bad Hello from {id}: {e}"),
                ControlFailure::Protocol(ControlError::Frame(e)) => {
                    format!("bad Hello from {id}: {e}")
                }
                ControlFailure::Protocol(ControlError::Ended(_)) => {
                    format!("{id} closed the control stream before Hello")
                }
                ControlFailure::Protocol(e) => format!("bad Hello from {id}: {e}"),
                ControlFailure::Flood => format!("{id} {FLOOD}"),
            })
        })?;
        match ctl.perform(outputs).await {
            Ok(Verdict::Continue) => {}
            Ok(Verdict::Hello(hello)) => return Ok((ctl, hello, serial)),
            Ok(Verdict::Refused(reason)) => return Err(HandshakeError::Refused(reason)),
            Err(e) => return Err(failed(format!("cannot answer {id}: {e}"))),
        }
    }
}

/// The edge's end of one tunnel's control stream: the protocol machine and the stream that
/// feeds it.
struct ControlStream {
    machine: EdgeControl,
    send: ExchangeSend,
    recv: ExchangeRecv,
    /// Whether the connector's side of the stream may still deliver bytes.
    open: bool,
    /// The connector's name (from its certificate), for the log.
    connector: String,
    /// The control messages it may still send.
    budget: ControlBudget,
    /// Unknown message types already logged at info (the rest go to debug).
    ignored: BTreeSet<String>,
    /// The tunnel in the registry, once the connector is welcomed.
    tunnel: Option<Arc<Tunnel>>,
    /// The issuer and the re-authentication check.
    service: Arc<TunnelService>,
    /// This tunnel's re-authentication binding (see `underpass_transport::tls::reauth`).
    binding: Option<[u8; BINDING_LEN]>,
}

/// What a connector over its [`ControlBudget`] did, for the log.
const FLOOD: &str = "sent control messages faster than the edge takes them";

/// Unknown control message types logged at info per tunnel (the first few; then debug).
const IGNORED_KINDS_LOGGED: usize = 8;

/// At most `max` characters of a name a peer chose, printable ones only (for the log).
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect()
}

/// Why reading the control stream stopped.
enum ControlFailure {
    /// The stream broke (reset, or the tunnel is gone).
    Read(TransportError),
    /// The connector broke the protocol.
    Protocol(ControlError),
    /// The connector sent more control messages than its [`ControlBudget`] allows.
    Flood,
}

/// What a batch of the machine's outputs came to.
enum Verdict {
    /// Nothing to decide.
    Continue,
    /// The connector's Hello, to judge.
    Hello(Hello),
    /// The connector is refused (the `Refused` has been sent): close the tunnel.
    Refused(String),
}

impl ControlStream {
    /// Waits for the next bytes of the control stream, or its end, and feeds the machine.
    async fn receive(&mut self) -> Result<Vec<EdgeOutput>, ControlFailure> {
        match self.recv.read_chunk().await {
            Ok(Some(chunk)) => {
                let outputs = self
                    .machine
                    .handle_bytes(&chunk)
                    .map_err(ControlFailure::Protocol)?;
                let messages = outputs
                    .iter()
                    .filter(|o| matches!(o, EdgeOutput::Ignored(_) | EdgeOutput::Message(_)))
                    .count();
                if !self.budget.take(messages, Instant::now()) {
                    self.open = false;
                    return Err(ControlFailure::Flood);
                }
                Ok(outputs)
            }
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
    async fn perform(&mut self, outputs: Vec<EdgeOutput>) -> Result<Verdict, FrameError> {
        let mut verdict = Verdict::Continue;
        for output in outputs {
            match output {
                EdgeOutput::Send(msg) => match frame::write_frame(&mut self.send, &msg).await {
                    Ok(()) => {}
                    // A refused connector is refused whether or not the message gets through.
                    Err(_) if matches!(msg, Control::Refused(_)) => {}
                    Err(e) => return Err(e),
                },
                EdgeOutput::Hello(hello) => verdict = Verdict::Hello(hello),
                EdgeOutput::Refused(reason) => {
                    let _ = self.send.finish();
                    // Give the Refused frame a moment to leave before closing.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.send.stopped()).await;
                    return Ok(Verdict::Refused(reason));
                }
                EdgeOutput::Ignored(kind) => {
                    let kind = printable(&kind, 64);
                    if self.ignored.len() < IGNORED_KINDS_LOGGED
                        && self.ignored.insert(kind.clone())
                    {
                        tracing::info!(
                            connector = %self.connector,
                            kind,
                            "ignoring control messages of a type this edge does not know"
                        )
                    } else {
                        tracing::debug!(connector = %self.connector, kind, "ignored control message")
                    }
                }
                EdgeOutput::Message(Control::Draining(drain)) => {
                    if let Some(tunnel) = &self.tunnel {
                        tunnel.start_draining();
                    }
                    tracing::info!(
                        connector = %self.connector,
                        grace_ms = drain.grace_ms,
                        "connector draining: no new exchanges go to this tunnel while another \
                         can take them; those in flight finish"
                    );
                }
                EdgeOutput::Message(Control::Renew(renew)) => self.renew(renew).await?,
                EdgeOutput::Message(Control::Reauth(reauth)) => self.reauth(reauth).await?,
                EdgeOutput::Message(Control::Time(time)) => {
                    let now = underpass_pki::time::OffsetDateTime::now_utc();
                    let unix_ms =
                        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                    let id = time.id;
                    self.answer(Control::TimeIs(control::TimeIs { id, unix_ms }))
                        .await?
                }
                EdgeOutput::Message(Control::Stats(stats)) => super::stats::received(
                    &self.service.registry.connector_stats,
                    &self.service.config,
                    &self.connector,
                    stats,
                ),
                EdgeOutput::Message(msg) => tracing::debug!(
                    connector = %self.connector,
                    kind = msg.kind(),
                    "control message"
                ),
            }
        }
        Ok(verdict)
    }

    /// After Welcome: feeds the machine whatever the connector sends, until the tunnel closes
    /// (at once, with [`codes::PROTOCOL`], if the connector breaks the protocol, floods the
    /// control stream, or opens a stream of its own: only the edge opens exchange streams).
    /// Returns why the tunnel closed.
    async fn serve(&mut self, conn: &TunnelConn, drain: &Drain) -> TransportError {
        let mut told = false;
        loop {
            let received = tokio::select! {
                reason = conn.closed() => return reason,
                () = drain.started(), if !told => {
                    told = true;
                    self.announce_drain(drain).await;
                    continue;
                }
                opened = conn.accept_exchange() => {
                    if opened.is_ok() {
                        tracing::warn!(
                            connector = %self.connector,
                            "closing tunnel: the connector opened a stream; only the edge opens exchange streams"
                        );
                        conn.close(codes::PROTOCOL, b"unexpected stream from the connector");
                    }
                    return conn.closed().await;
                }
                received = self.receive(), if self.open => received,
            };
            match received {
                Ok(outputs) => {
                    if let Err(e) = self.perform(outputs).await {
                        // The stream is broken; the tunnel's own fate follows from the
                        // connection.
                        tracing::debug!(connector = %self.connector, "control stream failed: {e}");
                        self.open = false;
                    }
                }
                Err(ControlFailure::Read(e)) => {
                    tracing::debug!(connector = %self.connector, "control stream ended: {e}")
                }
                Err(ControlFailure::Protocol(e)) => {
                    tracing::warn!(connector = %self.connector, "closing tunnel: control protocol: {e}");
                    self.open = false;
                    conn.close(codes::PROTOCOL, b"control protocol violation");
                }
                Err(ControlFailure::Flood) => {
                    tracing::warn!(
                        connector = %self.connector,
                        "closing tunnel: the connector {FLOOD} (more than {CONTROL_BURST} at once \
                         or {CONTROL_MESSAGES_PER_SEC} per second)"
                    );
                    conn.close(codes::PROTOCOL, b"control message flood");
                }
            }
        }
    }
}

impl ControlStream {
    /// Answers a renewal: a certificate for this tunnel's connector (the name its handshake
    /// certificate proved), until whose end this tunnel now lives. The connector's other
    /// tunnels move to it when it presents it on them (`Reauth`).
    async fn renew(&mut self, renew: control::Renew) -> Result<(), FrameError> {
        let (Some(issuer), Some(tunnel)) = (&self.service.issuer, &self.tunnel) else {
            return Ok(()); // `Renew` was not announced: nothing to answer
        };
        let answer = match issuer.renew(tunnel, &renew.csr_pem) {
            Ok(leaf) => {
                let chain = tls::parse_certs(leaf.chain_pem.as_bytes(), "the issued chain")
                    .unwrap_or_default();
                tunnel.extend(chain, leaf.not_after.unix_timestamp());
                Control::Renewed(control::Renewed {
                    id: renew.id,
                    chain_pem: leaf.chain_pem,
                    ca_pem: issuer.ca_pem().to_owned(),
                })
            }
            Err(refused) => Control::RenewRefused(control::RenewRefused {
                id: renew.id,
                reason: refused.reason,
            }),
        };
        self.answer(answer).await
    }

    /// Answers a re-authentication: a renewed chain of this tunnel's connector, proven for
    /// this tunnel, checked as a handshake would check it; the tunnel then lives until its
    /// end. Refused, the tunnel keeps the end it had.
    async fn reauth(&mut self, reauth: control::Reauth) -> Result<(), FrameError> {
        let Some(tunnel) = self.tunnel.clone() else {
            return Ok(());
        };
        let checked = check_reauth(
            &self.service.reauth,
            self.binding,
            &tunnel.connector,
            &reauth,
        );
        let answer = match checked {
            Ok((chain, not_after)) => {
                tracing::info!(
                    connector = %self.connector,
                    until = not_after,
                    "tunnel re-authenticated with a renewed certificate"
                );
                tunnel.extend(chain, not_after);
                Control::Reauthed(control::Reauthed {
                    id: reauth.id,
                    not_after,
                })
            }
            Err(reason) => {
                tracing::warn!(connector = %self.connector, "re-authentication refused: {reason}");
                Control::ReauthRefused(control::ReauthRefused {
                    id: reauth.id,
                    reason,
                })
            }
        };
        self.answer(answer).await
    }

    /// Sends an answer to an optional request (the machine checks the connector announced it).
    async fn answer(&mut self, answer: Control) -> Result<(), FrameError> {
        let kind = answer.kind();
        match self.machine.send(answer) {
            Ok(outputs) => {
                for output in outputs {
                    if let EdgeOutput::Send(msg) = output {
                        frame::write_frame(&mut self.send, &msg).await?;
                    }
                }
            }
            Err(e) => tracing::warn!(connector = %self.connector, "{kind} not sent: {e}"),
        }
        Ok(())
    }

    /// Tells the connector this edge is draining (if it understands `Draining`; an older one
    /// learns when the tunnel closes).
    async fn announce_drain(&mut self, drain: &Drain) {
        let message = Control::Draining(Draining {
            grace_ms: u64::try_from(drain.grace().as_millis()).unwrap_or(u64::MAX),
        });
        match self.machine.send(message) {
            Ok(outputs) => {
                if let Err(e) = self.perform(outputs).await {
                    tracing::debug!(connector = %self.connector, "cannot announce the drain: {e}");
                }
            }
            Err(e) => tracing::debug!(connector = %self.connector, "drain not announced: {e}"),
        }
    }
}

/// Checks a `Reauth` on a tunnel of `connector` whose binding is `binding`: the chain as a
/// handshake would check it, the proof, and that it names the same connector. Returns the
/// chain and its leaf's end (Unix seconds), or why not.
fn check_reauth(
    checker: &Reauthenticator,
    binding: Option<[u8; BINDING_LEN]>,
    connector: &str,
    reauth: &control::Reauth,
) -> Result<(Vec<CertificateDer<'static>>, i64), String> {
    let binding = binding.ok_or("this tunnel cannot export its binding")?;
    if reauth.chain.len() > MAX_REAUTH_CHAIN {
        return Err(format!(
            "a chain of {} certificates; at most {MAX_REAUTH_CHAIN}",
            reauth.chain.len()
        ));
    }
    let chain: Vec<CertificateDer<'static>> = reauth
        .chain
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let proof = Proof {
        scheme: reauth.scheme,
        signature: reauth.signature.clone(),
    };
    let id = checker
        .check(&chain, &binding, &proof)
        .map_err(|e| e.to_string())?;
    if id.name != connector {
        return Err(format!(
            "the certificate is {id}'s, this tunnel is connector {connector:?}'s"
        ));
    }
    let not_after = chain
        .first()
        .and_then(|leaf| underpass_pki::inspect::inspect_der(leaf).ok())
        .map(|info| info.not_after.unix_timestamp())
        .ok_or("the certificate has no readable validity")?;
    Ok((chain, not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EdgeConfig {
        toml::from_str(
            r#"
            [clients]
            listen = "127.0.0.1:8443"
            insecure_plaintext = true
            [tunnel]
            listen = "127.0.0.1:7844"
            cert = "e.crt"
            key = "e.key"
            ca = "ca.crt"
            [[services]]
            name = "everything"
            connectors = ["dc1"]
            [[services]]
            name = "files"
            connectors = ["dc2"]
            "#,
        )
        .unwrap()
    }

    fn hello(name: &str, services: &[&str]) -> Hello {
        Hello {
            protocol: frame::PROTOCOL_VERSION,
            connector: name.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            build: "t".into(),
            capabilities: vec![],
        }
    }

    #[test]
    fn grants_only_configured_services() {
        let c = config();
        assert_eq!(
            judge_hello(&c, "dc1", &hello("dc1", &["everything"])).unwrap(),
            vec!["everything"]
        );
        let err = judge_hello(&c, "dc1", &hello("dc1", &["everything", "files"])).unwrap_err();
        assert!(err.contains("\"files\""), "{err}");
        assert!(judge_hello(&c, "dc1", &hello("dc2", &["files"])).is_err());
        assert!(judge_hello(&c, "dc1", &hello("dc1", &[])).is_err());
        let mut probe = hello("dc1", &[]);
        probe.capabilities = vec!["Time".into()];
        assert_eq!(
            judge_hello(&c, "dc1", &probe).unwrap(),
            Vec::<String>::new()
        );
        // A probe still has to be who its certificate says.
        assert!(judge_hello(
            &c,
            "dc1",
            &Hello {
                connector: "dc2".into(),
                ..probe
            }
        )
        .is_err());
    }

    /// A `Reauth` as a connector holding `name`'s key would send it on a tunnel of `binding`.
    fn reauth_of(
        pki: &std::path::Path,
        name: &str,
        binding: &[u8; BINDING_LEN],
    ) -> control::Reauth {
        use underpass_proto::identity::Role;
        let issued = underpass_pki::issue::issue(pki, Role::Connector, name, &[]).unwrap();
        let pair = tls::ReloadingCert::load(&issued.cert_path, &issued.key_path).unwrap();
        let current = pair.current();
        let proof = tls::reauth::prove(&current, binding).unwrap();
        control::Reauth {
            id: 1,
            chain: current.cert.iter().map(|c| c.to_vec()).collect(),
            scheme: proof.scheme,
            signature: proof.signature,
        }
    }

    #[test]
    fn a_reauthentication_must_be_the_tunnels_connector_proven_for_this_tunnel() {
        use underpass_proto::identity::Role;
        let dir = tempfile::tempdir().unwrap();
        underpass_pki::ca::init(dir.path(), "underpass.local").unwrap();
        let roots = Arc::new(tls::ReloadingRoots::load(&dir.path().join("ca.crt")).unwrap());
        let checker = Reauthenticator::new(
            roots,
            tls::PeerPolicy {
                role: Role::Connector,
                trust_domain: "underpass.local".into(),
                revoked: None,
            },
        )
        .unwrap();
        let binding = [3u8; BINDING_LEN];
        let own = reauth_of(dir.path(), "dc1", &binding);
        let (chain, end) = check_reauth(&checker, Some(binding), "dc1", &own).unwrap();
        assert_eq!(chain.len(), own.chain.len());
        assert!(end > underpass_pki::time::OffsetDateTime::now_utc().unix_timestamp());

        // Another connector's certificate, proven with its own key, on dc1's tunnel.
        let other = reauth_of(dir.path(), "dc2", &binding);
        let said = check_reauth(&checker, Some(binding), "dc1", &other).unwrap_err();
        assert!(
            said.contains("connector/dc2") && said.contains("\"dc1\""),
            "{said}"
        );
        // Proven for another tunnel.
        let said = check_reauth(&checker, Some([4u8; BINDING_LEN]), "dc1", &own).unwrap_err();
        assert!(said.contains("proof"), "{said}");
        // A tunnel without a binding, an oversized chain, garbage for a certificate.
        assert!(check_reauth(&checker, None, "dc1", &own).is_err());
        let mut long = own.clone();
        long.chain = vec![own.chain[0].clone(); MAX_REAUTH_CHAIN + 1];
        let said = check_reauth(&checker, Some(binding), "dc1", &long).unwrap_err();
        assert!(said.contains("at most"), "{said}");
        let mut garbage = own.clone();
        garbage.chain = vec![vec![0x30, 0x03, 1, 2, 3]];
        assert!(check_reauth(&checker, Some(binding), "dc1", &garbage).is_err());
    }

    #[test]
    fn another_protocol_version_is_refused_before_judging() {
        let mut old = hello("dc1", &["everything"]);
        old.protocol = 99;
        let mut machine = EdgeControl::new(control::capabilities());
        let outputs = machine
            .handle_bytes(&frame::encode(&Control::Hello(old)).unwrap())
            .unwrap();
        assert!(
            matches!(outputs.last(), Some(EdgeOutput::Refused(r)) if r.contains("protocol 99")),
            "{outputs:?}"
        );
    }
}
