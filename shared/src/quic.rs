//! The tunnel's QUIC transport: its settings, its UDP sockets, and which stream sends first.
//!
//! # Stream scheduling
//!
//! The tunnel runs with quinn's send fairness off: a stream that has started sending keeps
//! the packets until its buffered data is out, so a large body crosses in long runs instead
//! of being cut into one packet per stream per turn. Interleaving 64 large bodies packet by
//! packet made every one of them finish late and made the edge write each to its client in
//! ~2 KB pieces (≈ 430 socket writes per MiB).
//!
//! Without more, a small answer would then wait behind every large body already queued. So a
//! stream starts at [`INTERACTIVE`] priority and drops to [`BULK`] once it has sent
//! [`BULK_AFTER`] bytes: small exchanges always go ahead of large transfers, and large
//! transfers go one after another, which finishes them sooner on average than sharing the
//! link evenly. Long-lived event streams stay interactive (their events are small and
//! someone is waiting for each). quinn queues a stream at the priority it has when its data
//! is first queued, so a writer decides before its first write (see [`record_write`]).

use std::net::SocketAddr;
use std::sync::Arc;

/// Kernel buffer asked for the tunnel's UDP socket, each way. The OS default (~208 KiB on
/// Linux) overflows when a connector sends a burst of large bodies, and every dropped
/// datagram costs a retransmission and a congestion-window cut.
pub const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

/// QUIC transport settings shared by both ends of a tunnel.
pub fn tunnel_transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // Every client exchange and every event stream is a stream: quinn's default of 100
    // concurrent streams would queue the 101st client.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(16_384));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.stream_receive_window(quinn::VarInt::from_u32(4 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(64 * 1024 * 1024));
    t.send_window(64 * 1024 * 1024);
    // Large bodies cross in long runs, small ones ahead of them: see "Stream scheduling".
    t.send_fairness(false);
    // Well below common NAT binding lifetimes (~30 s), so the connector's outbound mapping
    // survives; and a vanished peer is noticed within the idle timeout.
    t.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(15_000).into()));
    t
}

/// A tunnel endpoint on `addr`: a server when `server` is given, else a client. Its socket
/// gets [`SOCKET_BUFFER`] bytes of kernel buffer where the OS allows (a warning says how to
/// allow it where it does not).
pub fn tunnel_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    enlarge_buffers(&socket);
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

fn enlarge_buffers(socket: &std::net::UdpSocket) {
    let state = match quinn::udp::UdpSocketState::new(socket.into()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot inspect the tunnel's UDP socket: {e}");
            return;
        }
    };
    // Best effort: Linux caps the request at net.core.{r,w}mem_max (and reports double).
    let _ = state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER);
    let _ = state.set_send_buffer_size(socket.into(), SOCKET_BUFFER);
    let recv = state.recv_buffer_size(socket.into()).unwrap_or(0);
    let send = state.send_buffer_size(socket.into()).unwrap_or(0);
    // Once per process: a connector opens a socket per dial.
    static WARNED: std::sync::Once = std::sync::Once::new();
    if recv < SOCKET_BUFFER || send < SOCKET_BUFFER {
        WARNED.call_once(|| tracing::warn!(
            recv_kib = recv / 1024,
            send_kib = send / 1024,
            wanted_kib = SOCKET_BUFFER / 1024,
            "the tunnel's UDP buffers are small: bursts of large bodies will drop packets and slow down; \
             raise net.core.rmem_max and net.core.wmem_max (sysctl) to at least {} bytes",
            SOCKET_BUFFER / 2
        ));
    }
}

/// Priority of every stream until it has sent [`BULK_AFTER`] bytes.
pub const INTERACTIVE: i32 = 0;
/// Priority of a stream past [`BULK_AFTER`] bytes: sent when no interactive data waits.
pub const BULK: i32 = -1;
/// Bytes after which a stream counts as a bulk transfer.
pub const BULK_AFTER: u64 = 64 * 1024;

/// Counts the bytes one stream sends and says when it becomes a bulk transfer.
#[derive(Debug, Default)]
pub struct Demotion {
    sent: u64,
    bulk: bool,
}

impl Demotion {
    /// Records `n` more bytes about to be sent; true exactly once, on the write that makes
    /// the stream bulk (the caller then lowers the stream's priority to [`BULK`]).
    pub fn record(&mut self, n: usize) -> bool {
        self.sent = self.sent.saturating_add(n as u64);
        if self.bulk || self.sent <= BULK_AFTER {
            return false;
        }
        self.bulk = true;
        true
    }
}

/// Lowers `send` to [`BULK`] priority when `demotion` says so.
pub fn record_write(send: &quinn::SendStream, demotion: &mut Demotion, n: usize) {
    if demotion.record(n) {
        // Fails only if the stream is already closed; the write that follows reports that.
        let _ = send.set_priority(BULK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demotes_once_past_the_threshold() {
        let mut d = Demotion::default();
        assert!(!d.record(1000));
        assert!(
            !d.record((BULK_AFTER - 1000) as usize),
            "exactly at the threshold"
        );
        assert!(d.record(1), "the write that crosses it");
        assert!(!d.record(1 << 20), "only once");
    }

    #[test]
    fn one_large_write_demotes() {
        let mut d = Demotion::default();
        assert!(d.record(1 << 20));
    }

    #[test]
    fn no_overflow() {
        let mut d = Demotion::default();
        assert!(d.record(usize::MAX));
        assert!(!d.record(usize::MAX));
    }
}
