//! The fallback carrier: the tunnel over TLS 1.3 on TCP, for networks that drop UDP.
//!
//! Same identities and role checks as QUIC (the rustls configs of [`crate::tls`], with ALPN
//! [`ALPN`] instead of `underpass/1`), the same `underpass/1` exchanges, multiplexed as
//! HTTP/2 streams with HTTP/2's per-stream and per-connection flow control (the `h2` crate).
//!
//! # Who opens streams
//! The edge opens one stream per exchange, as over QUIC, so the **connector is the HTTP/2
//! server** on the TCP connection it dialed, and the edge the client: only a client opens
//! streams (push is disabled), so a connector cannot open a stream at all. The connector
//! answers each stream at once with status 200 and no end of stream, which gives the edge
//! its receive half; after that both halves are plain byte streams, as QUIC's.
//!
//! Over QUIC the connector opens the control stream; over HTTP/2 only the edge can, so the
//! edge opens it first (path [`CONTROL_PATH`]; exchanges use [`EXCHANGE_PATH`]). At the seam
//! nothing changes: the edge's first `accept_exchange` yields the control stream (it opens it),
//! and the connector's first `open_exchange` yields it (it was opened by the edge). Any later
//! `open_exchange` on the connector, or `accept_exchange` on the edge, fails: streams from the
//! connector do not exist over this carrier.
//!
//! # Liveness
//! Both ends send an HTTP/2 PING every [`crate::quic::KEEP_ALIVE`] and close the tunnel when
//! nothing at all arrived for [`crate::quic::IDLE_TIMEOUT`], as QUIC's idle timeout does.
//!
//! # Closing
//! The connector (server) closes with `GOAWAY` carrying the application code. The edge
//! (client; `h2` offers a client no `GOAWAY` of its own) lets go of its request handle and
//! resets every stream still open: with nothing left, `h2` sends `GOAWAY(NO_ERROR)` and shuts
//! the TLS connection down (`close_notify`, then FIN), so the connector reads an orderly end,
//! never a reset of a socket closed with bytes unread. The reason reaches the connector
//! through the control protocol when there is one (`Refused`). [`TcpTunnel::finished`]
//! resolves when the connection is over, so a process can wait for it before it exits.

mod closing;
mod stream;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use closing::{hold, linger, Opened};
use stream::lock;
pub use stream::{TcpRecv, TcpSend};

use crate::error::TransportError;
use crate::quic::{IDLE_TIMEOUT, KEEP_ALIVE};

/// ALPN of the TCP carrier.
pub const ALPN: &[u8] = b"underpass/1+tcp";
/// Path of the control stream.
pub const CONTROL_PATH: &str = "/underpass/control";
/// Path of an exchange stream.
pub const EXCHANGE_PATH: &str = "/underpass/exchange";

/// Per-stream receive window (as QUIC's `stream_receive_window`).
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Per-connection receive window (as QUIC's `receive_window`).
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// Exchanges in flight on one tunnel (as QUIC's `max_concurrent_bidi_streams`).
const MAX_STREAMS: u32 = 16_384;
/// HTTP/2 frame size: large frames keep the per-frame cost low on bulk transfers.
const MAX_FRAME: u32 = 256 * 1024;
/// Header block limit: our streams carry a pseudo-header or two, nothing else.
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// How long a closing end keeps writing what is queued (a `Refused`, a `GOAWAY`).
const CLOSE_FLUSH: Duration = Duration::from_millis(250);

/// Sets the TCP carrier's ALPN on a tunnel server config of [`crate::tls`].
pub fn server_crypto(mut crypto: rustls::ServerConfig) -> tokio_rustls::TlsAcceptor {
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(crypto))
}

/// Sets the TCP carrier's ALPN on a tunnel client config of [`crate::tls`].
pub fn client_crypto(mut crypto: rustls::ClientConfig) -> tokio_rustls::TlsConnector {
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(crypto))
}

/// Why the edge refused a TCP connection before there was a tunnel (for the log).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not TLS: the peer sent a plain HTTP request (the tunnel port speaks TLS only)")]
    PlainHttp,
    #[error("not TLS: the first bytes are no TLS handshake")]
    NotTls,
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("wrong ALPN {0:?}: the TCP tunnel speaks {ALPN:?}", ALPN = String::from_utf8_lossy(ALPN))]
    Alpn(String),
    #[error("no client certificate")]
    NoCertificate,
    #[error("HTTP/2 set-up failed: {0}")]
    Http2(String),
    #[error("connection failed: {0}")]
    Io(String),
}

/// What a TLS connection on the TCP tunnel port is for.
pub enum Accepted {
    /// A connector's tunnel, TLS and HTTP/2 up.
    Tunnel(TcpTunnel),
    /// A connector enrolling (ALPN `underpass-enroll/1`, no client certificate): the TLS
    /// stream, for the enrollment service.
    Enroll(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The TLS configs of the TCP tunnel port: the tunnel's (client certificate required, ALPN
/// [`ALPN`]; see [`server_crypto`]) and, when the edge enrolls connectors, the enrollment
/// endpoint's (`crate::tls::enroll_server_crypto`).
#[derive(Clone)]
pub struct PortConfigs {
    pub tunnel: Arc<rustls::ServerConfig>,
    pub enroll: Option<Arc<rustls::ServerConfig>>,
}

/// The edge's side: completes TLS on an accepted TCP connection (the verifier checks the
/// connector's certificate, role and revocation), checks the ALPN, and starts HTTP/2 as the
/// client. Anything else on the port is refused with the reason; a plain HTTP request gets a
/// 400 saying the port speaks TLS.
pub async fn accept(
    tcp: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
) -> Result<TcpTunnel, Refusal> {
    let configs = PortConfigs {
        tunnel: acceptor.config().clone(),
        enroll: None,
    };
    match accept_port(tcp, &configs).await? {
        Accepted::Tunnel(t) => Ok(t),
        Accepted::Enroll(_) => Err(Refusal::Alpn(
            String::from_utf8_lossy(underpass_proto::enroll::ALPN).into_owned(),
        )),
    }
}

/// [`accept`] on a port that may also serve enrollment: the config is chosen from the
/// ClientHello, before the handshake. A hello offering the enrollment ALPN and not the
/// tunnel's gets the enrollment config (no client certificate asked); any other the tunnel's.
pub async fn accept_port(mut tcp: TcpStream, configs: &PortConfigs) -> Result<Accepted, Refusal> {
    let remote = tcp.peer_addr().map_err(|e| Refusal::Io(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    screen(&mut tcp).await?;
    let (tcp, held) = hold(tcp).map_err(|e| Refusal::Io(e.to_string()))?;
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
        .await
        .map_err(|e| Refusal::Handshake(e.to_string()))?;
    let enroll = configs.enroll.as_ref().filter(|_| {
        let offered: Vec<&[u8]> = start
            .client_hello()
            .alpn()
            .map(Iterator::collect)
            .unwrap_or_default();
        offered.contains(&underpass_proto::enroll::ALPN) && !offered.contains(&ALPN)
    });
    if let Some(config) = enroll {
        let tls = start
            .into_stream(config.clone())
            .await
            .map_err(|e| Refusal::Handshake(e.to_string()))?;
        return match tls.get_ref().1.alpn_protocol() {
            Some(underpass_proto::enroll::ALPN) => Ok(Accepted::Enroll(Box::new(tls))),
            other => Err(Refusal::Alpn(
                String::from_utf8_lossy(other.unwrap_or_default()).into_owned(),
            )),
        };
    }
    let tls = start
        .into_stream(configs.tunnel.clone())
        .await
        .map_err(|e| Refusal::Handshake(e.to_string()))?;
    start_edge_side(tls, remote, held)
        .await
        .map(Accepted::Tunnel)
}

/// Refuses what is not TLS before any handshake: a plain HTTP request gets a 400 saying the
/// port speaks TLS only; other bytes are dropped.
async fn screen(tcp: &mut TcpStream) -> Result<(), Refusal> {
    let mut first = [0u8; 1];
    let n = tcp
        .peek(&mut first)
        .await
        .map_err(|e| Refusal::Io(e.to_string()))?;
    if n == 0 {
        return Err(Refusal::Io("closed before the handshake".into()));
    }
    // A TLS record of type handshake (22) starts every ClientHello.
    if first[0] == 22 {
        return Ok(());
    }
    if !first[0].is_ascii_uppercase() {
        return Err(Refusal::NotTls);
    }
    const BODY: &str = "This is an Underpass tunnel port: TLS only\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
    let _ = tcp.shutdown().await;
    // Read what the peer sent (closing with unread bytes would reset the connection, and the
    // peer might not see the answer), for a moment at most.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    Err(Refusal::PlainHttp)
}

/// The tunnel over a completed TLS connection: ALPN checked, HTTP/2 started as the client.
async fn start_edge_side(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    remote: SocketAddr,
    held: std::net::TcpStream,
) -> Result<TcpTunnel, Refusal> {
    let (_, session) = tls.get_ref();
    match session.alpn_protocol() {
        Some(ALPN) => {}
        Some(other) => return Err(Refusal::Alpn(String::from_utf8_lossy(other).into_owned())),
        None => return Err(Refusal::Alpn(String::new())),
    }
    let peer = PeerAuth::of(&**session);
    if peer.chain.is_empty() {
        return Err(Refusal::NoCertificate);
    }
    let (io, activity) = Watched::new(tls);
    let (send_request, mut connection) = h2::client::Builder::new()
        .enable_push(false)
        .max_concurrent_streams(0)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| Refusal::Http2(e.to_string()))?;
    let ping = connection.ping_pong();
    let tunnel = TcpTunnel::new(
        remote,
        peer,
        Side::Edge {
            send_request: Mutex::new(Some(send_request)),
            opened: Mutex::default(),
            control_taken: AtomicBool::new(false),
        },
    );
    let shared = tunnel.0.clone();
    tokio::spawn(async move {
        let mut closed = shared.closed.subscribe();
        let mut connection = Box::pin(connection);
        let ended = tokio::select! {
            r = &mut connection => Some(r),
            _ = until_closed(&mut closed) => None,
        };
        match ended {
            Some(Ok(())) => shared.set_closed("closed by the connector".into()),
            Some(Err(e)) => shared.set_closed(describe(&e)),
            // Closed here: with the handle and the streams gone, h2 sends what is queued (a
            // `Refused`), then `GOAWAY`, and shuts the connection down; it reads meanwhile,
            // so nothing is left unread when the socket closes.
            None => {
                shared.let_go();
                let _ = tokio::time::timeout(CLOSE_FLUSH, &mut connection).await;
            }
        }
        drop(connection);
        linger(held).await;
        shared.finished.send_replace(true);
    });
    tokio::spawn(keep_alive(tunnel.0.clone(), ping, activity));
    Ok(tunnel)
}

/// The connector's side: dials `addr` over TCP, completes TLS (checking the edge's
/// certificate and role), and serves HTTP/2 as the server. Fails with a readable reason.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    connector: &tokio_rustls::TlsConnector,
) -> Result<TcpTunnel, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to tcp/{addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (tcp, held) = hold(tcp).map_err(|e| format!("tcp/{addr}: {e}"))?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| format!("bad edge server name {server_name:?}: {e}"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with tcp/{addr} failed: {e}"))?;
    let (_, session) = tls.get_ref();
    if session.alpn_protocol() != Some(ALPN) {
        return Err(format!(
            "tcp/{addr} does not speak the Underpass TCP tunnel (ALPN {:?})",
            session.alpn_protocol().map(String::from_utf8_lossy)
        ));
    }
    let peer = PeerAuth::of(&**session);
    let (io, activity) = Watched::new(tls);
    let mut connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| format!("HTTP/2 set-up with tcp/{addr} failed: {e}"))?;
    let ping = connection.ping_pong();
    let (control_tx, control_rx) = oneshot::channel();
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let tunnel = TcpTunnel::new(
        addr,
        peer,
        Side::Connector {
            control: tokio::sync::Mutex::new(Some(control_rx)),
            accepted: tokio::sync::Mutex::new(accepted_rx),
        },
    );
    let shared = tunnel.0.clone();
    tokio::spawn(async move {
        let mut control_tx = Some(control_tx);
        let mut closed = shared.closed.subscribe();
        loop {
            let next = tokio::select! {
                next = connection.accept() => next,
                _ = until_closed(&mut closed) => {
                    let code = shared.local_code.load(Ordering::Relaxed);
                    connection.abrupt_shutdown(stream::reason_of(code));
                    let _ = tokio::time::timeout(
                        CLOSE_FLUSH,
                        std::future::poll_fn(|cx| connection.poll_closed(cx)),
                    )
                    .await;
                    break;
                }
            };
            let (request, mut respond) = match next {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    shared.set_closed(describe(&e));
                    break;
                }
                // An orderly end (GOAWAY, then the stream closed): the edge closed the tunnel,
                // whether or not its GOAWAY's code was read before the end.
                None => {
                    shared.set_closed("closed by peer: the edge ended the connection".into());
                    break;
                }
            };
            let send = match respond.send_response(http::Response::new(()), false) {
                Ok(send) => Arc::new(Mutex::new(send)),
                Err(_) => continue,
            };
            let path = request.uri().path().to_owned();
            let pair = (
                TcpSend::new(send.clone()),
                TcpRecv::body(request.into_body(), send),
            );
            match path.as_str() {
                CONTROL_PATH => match control_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(pair);
                    }
                    None => {
                        let (mut send, _) = pair;
                        send.reset(underpass_proto::frame::codes::PROTOCOL);
                    }
                },
                EXCHANGE_PATH => {
                    let _ = accepted_tx.send(pair);
                }
                _ => {
                    let (mut send, _) = pair;
                    send.reset(underpass_proto::frame::codes::PROTOCOL);
                }
            }
        }
        drop(connection);
        linger(held).await;
        shared.finished.send_replace(true);
    });
    tokio::spawn(keep_alive(tunnel.0.clone(), ping, activity));
    Ok(tunnel)
}

/// Sends a PING every [`KEEP_ALIVE`] (its PONG is traffic like any other) and closes the
/// tunnel when nothing arrived for [`IDLE_TIMEOUT`].
async fn keep_alive(shared: Arc<Shared>, ping: Option<h2::PingPong>, activity: Arc<Activity>) {
    let Some(mut ping) = ping else { return };
    let mut closed = shared.closed.subscribe();
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping_sent: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = until_closed(&mut closed) => return,
        }
        let idle = activity.idle();
        if idle >= IDLE_TIMEOUT {
            shared.local_code.store(0, Ordering::Relaxed);
            return shared.set_closed(format!("timed out: nothing received for {idle:?}"));
        }
        // Collect an answered PING (its round trip is the tunnel's RTT), then send the next
        // one (while one is unanswered, h2 refuses another: the idle check above is what
        // counts).
        if let Poll::Ready(Ok(_)) = std::future::poll_fn(|cx| Poll::Ready(ping.poll_pong(cx))).await
        {
            if let Some(sent) = ping_sent.take() {
                shared.note_rtt(sent.elapsed());
            }
        }
        if ping_sent.is_none() && ping.send_ping(h2::Ping::opaque()).is_ok() {
            ping_sent = Some(Instant::now());
            // Wait for this PONG (bounded by the next tick) so the RTT is measured, not the
            // tick's period.
            tokio::select! {
                r = std::future::poll_fn(|cx| ping.poll_pong(cx)) => {
                    if r.is_ok() {
                        if let Some(sent) = ping_sent.take() {
                            shared.note_rtt(sent.elapsed());
                        }
                    }
                }
                _ = tokio::time::sleep(KEEP_ALIVE) => {}
                _ = until_closed(&mut closed) => return,
            }
        }
    }
}

/// Resolves once the tunnel is closed (holding no borrow of the reason across awaits).
async fn until_closed(rx: &mut watch::Receiver<Option<String>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

/// A readable account of an h2 connection error.
pub(crate) fn describe(e: &h2::Error) -> String {
    if let Some(io) = e.get_io() {
        return format!("connection lost: {io}");
    }
    if e.is_go_away() && e.is_remote() {
        if let Some(code) = e.reason().and_then(stream::code_of) {
            return format!("closed by peer: code {code}");
        }
    }
    e.to_string()
}

/// One tunnel over TCP (either end). Cheap to clone.
#[derive(Clone)]
pub struct TcpTunnel(Arc<Shared>);

impl std::fmt::Debug for TcpTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTunnel")
            .field("remote", &self.0.remote)
            .finish_non_exhaustive()
    }
}

struct Shared {
    remote: SocketAddr,
    peer: PeerAuth,
    side: Side,
    /// Why the tunnel is gone, once it is.
    closed: watch::Sender<Option<String>>,
    /// `true` once the connection is over (its socket closed).
    finished: watch::Sender<bool>,
    /// The application code of a local close (sent in the connector's `GOAWAY`).
    local_code: AtomicU32,
    /// The last PING's round trip, in microseconds (0: none answered yet).
    rtt_us: AtomicU64,
}

impl Shared {
    fn note_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.rtt_us.store(us, Ordering::Relaxed);
    }

    fn set_closed(&self, reason: String) {
        self.closed.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason);
            true
        });
    }

    /// The edge's half of closing: drops the request handle and resets every stream still
    /// open, so that h2 ends the connection with `GOAWAY` at once.
    fn let_go(&self) {
        if let Side::Edge {
            send_request,
            opened,
            ..
        } = &self.side
        {
            lock(send_request).take();
            let streams = std::mem::take(&mut lock(opened).streams);
            for stream in streams.iter().filter_map(Weak::upgrade) {
                lock(&stream).send_reset(h2::Reason::CANCEL);
            }
        }
    }
}

/// What the TLS handshake established about the peer: its certificate chain (leaf first)
/// and this session's re-authentication binding (see [`crate::tls::reauth`]).
struct PeerAuth {
    chain: Vec<CertificateDer<'static>>,
    binding: Option<[u8; crate::tls::reauth::BINDING_LEN]>,
}

impl PeerAuth {
    fn of<D>(session: &rustls::ConnectionCommon<D>) -> Self {
        let chain = session
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let binding = session
            .export_keying_material(
                [0u8; crate::tls::reauth::BINDING_LEN],
                crate::tls::reauth::EXPORTER_LABEL,
                Some(b""),
            )
            .ok();
        PeerAuth { chain, binding }
    }
}

type Pair = (TcpSend, TcpRecv);

enum Side {
    /// The edge: the HTTP/2 client, opening streams.
    Edge {
        /// Taken when the tunnel closes (see [`Shared::let_go`]).
        send_request: Mutex<Option<h2::client::SendRequest<Bytes>>>,
        opened: Mutex<Opened>,
        control_taken: AtomicBool,
    },
    /// The connector: the HTTP/2 server, answering them.
    Connector {
        control: tokio::sync::Mutex<Option<oneshot::Receiver<Pair>>>,
        accepted: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pair>>,
    },
}

impl TcpTunnel {
    fn new(remote: SocketAddr, peer: PeerAuth, side: Side) -> Self {
        TcpTunnel(Arc::new(Shared {
            remote,
            peer,
            side,
            closed: watch::channel(None).0,
            finished: watch::channel(false).0,
            local_code: AtomicU32::new(0),
            rtt_us: AtomicU64::new(0),
        }))
    }

    /// The round trip of the last answered HTTP/2 PING; `None` before the first.
    pub fn rtt(&self) -> Option<Duration> {
        match self.0.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn lost(&self) -> TransportError {
        TransportError::Tunnel(
            self.0
                .closed
                .borrow()
                .clone()
                .unwrap_or_else(|| "closed".into()),
        )
    }

    /// The edge opens a stream on `path`.
    async fn open(
        &self,
        send_request: &Mutex<Option<h2::client::SendRequest<Bytes>>>,
        opened: &Mutex<Opened>,
        path: &str,
    ) -> Result<Pair, TransportError> {
        let sender = lock(send_request).clone();
        let Some(sender) = sender.filter(|_| self.0.closed.borrow().is_none()) else {
            return Err(self.lost());
        };
        let ready = sender.ready();
        let mut send_request = tokio::select! {
            r = ready => r.map_err(|e| stream::stream_error(&e, false))?,
            _ = self.closed() => return Err(self.lost()),
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("https://underpass{path}"))
            .body(())
            .map_err(|e| TransportError::Stream(e.to_string()))?;
        let (response, send) = send_request
            .send_request(request, false)
            .map_err(|e| stream::stream_error(&e, false))?;
        let send = Arc::new(Mutex::new(send));
        lock(opened).push(&send);
        Ok((TcpSend::new(send.clone()), TcpRecv::waiting(response, send)))
    }

    pub(crate) async fn open_exchange(&self) -> Result<Pair, TransportError> {
        match &self.0.side {
            Side::Edge {
                send_request,
                opened,
                ..
            } => self.open(send_request, opened, EXCHANGE_PATH).await,
            Side::Connector { control, .. } => {
                // The control stream, which the edge opened.
                let rx = control.lock().await.take().ok_or_else(|| {
                    TransportError::Stream(
                        "over TCP the connector opens no stream but the control stream".into(),
                    )
                })?;
                tokio::select! {
                    pair = rx => pair.map_err(|_| self.lost()),
                    _ = self.closed() => Err(self.lost()),
                }
            }
        }
    }

    pub(crate) async fn accept_exchange(&self) -> Result<Pair, TransportError> {
        match &self.0.side {
            Side::Edge {
                send_request,
                opened,
                control_taken,
            } => {
                if !control_taken.swap(true, Ordering::SeqCst) {
                    return self.open(send_request, opened, CONTROL_PATH).await;
                }
                // A connector cannot open streams over HTTP/2: wait for the end.
                Err(self.closed().await)
            }
            Side::Connector { accepted, .. } => {
                let mut accepted = accepted.lock().await;
                tokio::select! {
                    pair = accepted.recv() => pair.ok_or_else(|| self.lost()),
                    _ = self.closed() => Err(self.lost()),
                }
            }
        }
    }

    pub(crate) fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        self.0.peer.chain.clone()
    }

    pub(crate) fn reauth_binding(&self) -> Option<[u8; crate::tls::reauth::BINDING_LEN]> {
        self.0.peer.binding
    }

    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.0.remote
    }

    pub(crate) fn close(&self, code: u32, reason: &[u8]) {
        if self.0.closed.borrow().is_none() {
            self.0.local_code.store(code, Ordering::Relaxed);
        }
        self.0.set_closed(format!(
            "closed locally: code {code} ({})",
            String::from_utf8_lossy(reason)
        ));
    }

    pub(crate) async fn closed(&self) -> TransportError {
        until_closed(&mut self.0.closed.subscribe()).await;
        self.lost()
    }

    pub(crate) fn close_reason(&self) -> Option<TransportError> {
        self.0.closed.borrow().is_some().then(|| self.lost())
    }

    /// Resolves once the connection is over: closed, what was queued sent, the socket gone.
    pub(crate) async fn finished(&self) {
        let _ = self.0.finished.subscribe().wait_for(|done| *done).await;
    }
}

/// When bytes last arrived on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn idle(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The TLS stream, noting every successful read in its [`Activity`].
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    fn new(inner: T) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        (
            Watched {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = this.activity.start.elapsed().as_millis() as u64;
            this.activity.last_ms.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
