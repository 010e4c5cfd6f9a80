//! The tunnel transport seam: one mutually authenticated, multiplexed connection between a
//! connector and an edge ([`TunnelConn`]) and its bidirectional exchange streams
//! ([`ExchangeSend`], [`ExchangeRecv`]).
//!
//! Everything above this module (frames, the control protocol, the edge's exchange, the
//! connector's `serve_exchange`) is written against these types only. Two carriers: QUIC,
//! and the fallback over TLS on TCP ([`crate::tcp`], HTTP/2 streams); each is a variant of
//! each enum, and the code above does not tell them apart. Enum dispatch rather than a trait: the registry stores tunnels
//! of any transport side by side, and no generic parameter spreads through the relay code.
//!
//! The fast path stays zero-copy: bodies cross as [`Bytes`] chunks (`read_chunk`,
//! `write_chunks`), and [`ExchangeSend::note_write`] carries the bulk/interactive scheduling
//! hint of [`crate::quic`] (a transport without stream priorities ignores it).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::TransportError;
use crate::quic::Demotion;

/// One tunnel: a connection to the peer over which exchanges run.
#[derive(Debug, Clone)]
pub enum TunnelConn {
    /// QUIC (RFC 9000), the tunnel's native transport.
    Quic(quinn::Connection),
    /// TLS 1.3 over TCP, exchanges as HTTP/2 streams: the fallback for networks that drop UDP.
    Tcp(crate::tcp::TcpTunnel),
}

impl TunnelConn {
    /// Name of the transport, as shown in logs and readiness (`"quic"`, `"tcp"`).
    pub fn transport(&self) -> &'static str {
        match self {
            TunnelConn::Quic(_) => "quic",
            TunnelConn::Tcp(_) => "tcp",
        }
    }

    /// Opens a new exchange stream (the edge, per client exchange; the connector, for control).
    pub async fn open_exchange(&self) -> Result<(ExchangeSend, ExchangeRecv), TransportError> {
        match self {
            TunnelConn::Quic(c) => {
                let (send, recv) = c.open_bi().await?;
                Ok((ExchangeSend::Quic(send), ExchangeRecv::Quic(recv)))
            }
            TunnelConn::Tcp(c) => {
                let (send, recv) = c.open_exchange().await?;
                Ok((ExchangeSend::Tcp(send), ExchangeRecv::Tcp(recv)))
            }
        }
    }

    /// Waits for the peer to open the next exchange stream.
    pub async fn accept_exchange(&self) -> Result<(ExchangeSend, ExchangeRecv), TransportError> {
        match self {
            TunnelConn::Quic(c) => {
                let (send, recv) = c.accept_bi().await?;
                Ok((ExchangeSend::Quic(send), ExchangeRecv::Quic(recv)))
            }
            TunnelConn::Tcp(c) => {
                let (send, recv) = c.accept_exchange().await?;
                Ok((ExchangeSend::Tcp(send), ExchangeRecv::Tcp(recv)))
            }
        }
    }

    /// The end-entity certificate the peer authenticated with.
    pub fn peer_leaf(&self) -> Option<CertificateDer<'static>> {
        self.peer_chain().into_iter().next()
    }

    /// The certificates the peer presented in its handshake, leaf first (its intermediates
    /// follow: revoking one must close the tunnel too).
    pub fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        match self {
            TunnelConn::Quic(c) => crate::tls::peer_chain(c),
            TunnelConn::Tcp(c) => c.peer_chain(),
        }
    }

    /// A value both ends derive from this connection's TLS secrets (an RFC 8446 exporter),
    /// which a re-authentication signs to prove it was made for this tunnel (see
    /// [`crate::tls::reauth`]). `None` only if TLS could not export it.
    pub fn reauth_binding(&self) -> Option<[u8; crate::tls::reauth::BINDING_LEN]> {
        match self {
            TunnelConn::Quic(c) => {
                let mut out = [0u8; crate::tls::reauth::BINDING_LEN];
                c.export_keying_material(&mut out, crate::tls::reauth::EXPORTER_LABEL, b"")
                    .ok()
                    .map(|()| out)
            }
            TunnelConn::Tcp(c) => c.reauth_binding(),
        }
    }

    /// The connection's round-trip time: QUIC's estimate, or over TCP the last HTTP/2 PING's
    /// round trip (`None` until one was answered).
    pub fn rtt(&self) -> Option<std::time::Duration> {
        match self {
            TunnelConn::Quic(c) => Some(c.rtt()),
            TunnelConn::Tcp(c) => c.rtt(),
        }
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        match self {
            TunnelConn::Quic(c) => c.remote_address(),
            TunnelConn::Tcp(c) => c.remote_addr(),
        }
    }

    /// Closes the tunnel at once with an application `code` (see `frame::codes`) and reason.
    pub fn close(&self, code: u32, reason: &[u8]) {
        match self {
            TunnelConn::Quic(c) => c.close(code.into(), reason),
            TunnelConn::Tcp(c) => c.close(code, reason),
        }
    }

    /// Resolves when the tunnel is gone, with why.
    pub async fn closed(&self) -> TransportError {
        match self {
            TunnelConn::Quic(c) => TransportError::Connection(c.closed().await),
            TunnelConn::Tcp(c) => c.closed().await,
        }
    }

    /// Why the tunnel is gone, if it is.
    pub fn close_reason(&self) -> Option<TransportError> {
        match self {
            TunnelConn::Quic(c) => c.close_reason().map(TransportError::Connection),
            TunnelConn::Tcp(c) => c.close_reason(),
        }
    }

    /// Resolves once a closed tunnel has left the wire: over TCP, when its connection is over
    /// (`GOAWAY` and TLS close sent, the socket gone). A QUIC connection's closing is its
    /// endpoint's to finish (`quinn::Endpoint::wait_idle`), so this returns at once for QUIC.
    pub async fn finished(&self) {
        match self {
            TunnelConn::Quic(_) => {}
            TunnelConn::Tcp(c) => c.finished().await,
        }
    }
}

/// The sending half of one exchange.
#[derive(Debug)]
pub enum ExchangeSend {
    /// A QUIC bidirectional stream's send side.
    Quic(quinn::SendStream),
    /// An HTTP/2 stream's send side (TCP carrier).
    Tcp(crate::tcp::TcpSend),
}

impl ExchangeSend {
    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        match self {
            ExchangeSend::Quic(s) => Ok(s.write_all(buf).await?),
            ExchangeSend::Tcp(s) => s.write_chunks(&mut [Bytes::copy_from_slice(buf)]).await,
        }
    }

    /// Writes every chunk, without copying them (they are consumed as they are sent).
    pub async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), TransportError> {
        match self {
            ExchangeSend::Quic(s) => Ok(s.write_all_chunks(chunks).await?),
            ExchangeSend::Tcp(s) => s.write_chunks(chunks).await,
        }
    }

    /// Ends the stream cleanly: the peer reads to its end.
    pub fn finish(&mut self) -> Result<(), TransportError> {
        match self {
            ExchangeSend::Quic(s) => Ok(s.finish()?),
            ExchangeSend::Tcp(s) => s.finish(),
        }
    }

    /// Abandons the stream with an application `code` (the peer sees a reset).
    pub fn reset(&mut self, code: u32) {
        match self {
            // Fails only if the stream is already closed, which is what we want anyway.
            ExchangeSend::Quic(s) => {
                let _ = s.reset(code.into());
            }
            ExchangeSend::Tcp(s) => s.reset(code),
        }
    }

    /// Resolves when the peer stops reading (it cancelled the exchange) or has read it all.
    /// Independent of `self`: await it while writing.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let stopped: Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>> = match self {
            ExchangeSend::Quic(s) => {
                let stopped = s.stopped();
                Box::pin(async move {
                    let _ = stopped.await;
                })
            }
            ExchangeSend::Tcp(s) => Box::pin(s.stopped()),
        };
        stopped
    }

    /// Call before writing `n` bytes: lets the transport schedule a stream that has become a
    /// bulk transfer behind interactive ones (see [`crate::quic`]).
    pub fn note_write(&self, demotion: &mut Demotion, n: usize) {
        match self {
            ExchangeSend::Quic(s) => crate::quic::record_write(s, demotion, n),
            // HTTP/2 streams share the connection as h2 schedules them.
            ExchangeSend::Tcp(_) => {
                let _ = demotion.record(n);
            }
        }
    }
}

impl AsyncWrite for ExchangeSend {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ExchangeSend::Quic(s) => AsyncWrite::poll_write(Pin::new(s), cx, buf),
            ExchangeSend::Tcp(s) => s.poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ExchangeSend::Quic(s) => AsyncWrite::poll_flush(Pin::new(s), cx),
            ExchangeSend::Tcp(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ExchangeSend::Quic(s) => AsyncWrite::poll_shutdown(Pin::new(s), cx),
            ExchangeSend::Tcp(s) => s.poll_shutdown(),
        }
    }
}

/// The receiving half of one exchange.
#[derive(Debug)]
pub enum ExchangeRecv {
    /// A QUIC bidirectional stream's receive side.
    Quic(quinn::RecvStream),
    /// An HTTP/2 stream's receive side (TCP carrier).
    Tcp(crate::tcp::TcpRecv),
}

impl ExchangeRecv {
    /// The next chunk as it arrived (no copy); `None` at the end of the stream.
    pub async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            ExchangeRecv::Quic(r) => Ok(r.read_chunk(usize::MAX, true).await?.map(|c| c.bytes)),
            ExchangeRecv::Tcp(r) => r.read_chunk().await,
        }
    }

    /// Reads the rest of the stream, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, TransportError> {
        match self {
            ExchangeRecv::Quic(r) => r.read_to_end(limit).await.map_err(|e| match e {
                quinn::ReadToEndError::Read(e) => TransportError::Read(e),
                quinn::ReadToEndError::TooLong => TransportError::TooLong(limit),
            }),
            ExchangeRecv::Tcp(r) => r.read_to_end(limit).await,
        }
    }

    /// Tells the peer to stop sending, with an application `code`.
    pub fn stop(&mut self, code: u32) {
        match self {
            // Fails only if the stream is already stopped or finished.
            ExchangeRecv::Quic(r) => {
                let _ = r.stop(code.into());
            }
            ExchangeRecv::Tcp(r) => r.stop(code),
        }
    }
}

impl AsyncRead for ExchangeRecv {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ExchangeRecv::Quic(r) => AsyncRead::poll_read(Pin::new(r), cx, buf),
            ExchangeRecv::Tcp(r) => r.poll_read(cx, buf),
        }
    }
}
