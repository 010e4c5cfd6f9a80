//! The tunnel's QUIC transport: its settings, and which stream sends first.
//!
//! # Stream scheduling
//!
//! quinn sends streams of equal priority round-robin, one packet's worth per turn. With many
//! large bodies in flight that cuts each into ~1.2 KB pieces: every one finishes late, and the
//! edge receives each body a packet at a time and writes it to its client in ~2 KB pieces
//! (≈ 430 socket writes per MiB at 64 concurrent 1 MiB results).
//!
//! So a stream starts at [`INTERACTIVE`] priority and, once it has sent [`BULK_AFTER`] bytes,
//! becomes a bulk transfer, with a priority at or below [`BULK`] and below every bulk transfer
//! before it. Small exchanges (and long-lived event streams, which stay interactive) still
//! share the link round-robin, ahead of any bulk data: a packet at most after they are
//! written. Bulk transfers go out one at a time, oldest first, in long runs, and finish
//! sooner on average than when sharing the link evenly.
//!
//! The UDP sockets keep the OS's default buffer size on purpose: an 8 MiB receive buffer
//! raised bulk throughput on loopback by another ~30 % but let megabytes queue in front of
//! every small answer (a small call beside 16 downloads: p50 ≈ 1 ms → 5–11 ms).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Interval of QUIC keep-alives on a tunnel: the longest either end goes without sending the
/// other a packet. Four fit in [`IDLE_TIMEOUT`], so a healthy idle tunnel never reaches it,
/// even with a few packets lost. It also keeps NAT bindings (~30 s) alive, and after an edge
/// crash and restart the connector's next packet draws a stateless reset (see
/// [`server_endpoint`]), so it bounds how long a connector keeps a dead tunnel then.
///
/// Cost of an idle tunnel: each end sends a PING every 450 ms and acknowledges the other's,
/// about 9 packets a second in all (see README, "Failure behaviour").
pub const KEEP_ALIVE: Duration = Duration::from_millis(450);

/// A tunnel that received nothing for this long is closed: how long a peer that vanished
/// without a trace (process SIGKILLed, host gone, network cut) keeps its tunnel, and so how
/// long the edge may route new exchanges to a dead connector. 1.8 s: a connector killed is
/// noticed within 2 s (issue 13's bar, with room for a busy host), and its exchanges in
/// flight end with a 502 then, never hanging. A partition longer than it closes the tunnel
/// (the connector redials when it lifts); one up to about 0.9 s survives: QUIC's probes back
/// off exponentially (on a LAN the probe after ~0.93 s of silence comes ~1.9 s in).
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(1800);

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
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(
        quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32).into(),
    ));
    t
}

/// Streams a connector may have open toward the edge at once: its control stream, and one
/// more, so that a stream it has no business opening reaches the edge (which closes the
/// tunnel for it) instead of queueing unseen with its data in the edge's buffers.
pub const CONNECTOR_OPENED_STREAMS: u32 = 2;

/// The edge's transport settings: [`tunnel_transport`], except that the connector, which
/// opens only the control stream, may open at most [`CONNECTOR_OPENED_STREAMS`] streams (the
/// edge's own exchange streams are bounded by the connector's settings).
pub fn edge_transport() -> quinn::TransportConfig {
    let mut t = tunnel_transport();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(CONNECTOR_OPENED_STREAMS));
    t
}

/// A value derived from `secret` for one `purpose`: HMAC-SHA256 of the purpose under the
/// secret, so it reveals nothing about the secret and differs from any other use of it.
fn derive(secret: &[u8], purpose: &str) -> ring::hmac::Tag {
    use ring::hmac;
    hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        format!("underpass/1 QUIC {purpose}").as_bytes(),
    )
}

/// The key an edge derives its QUIC stateless reset tokens from, computed from a secret it
/// keeps across restarts (its tunnel private key).
///
/// With a random key per start (quinn's default), an edge restarted after a crash cannot
/// prove it is the same endpoint: it silently drops the packets of the tunnels its previous
/// run served, and each connector waits for its idle timeout. With the same key, the new run
/// answers the first such packet with a stateless reset (RFC 9000, section 10.3) that the
/// connector accepts, so it learns at once that the tunnel is gone and dials again.
pub fn stateless_reset_key(secret: &[u8]) -> Arc<dyn quinn::crypto::HmacKey> {
    use ring::hmac;
    let derived = derive(secret, "stateless reset key");
    Arc::new(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
}

/// The key of the edge's connection IDs, from the same secret: quinn's connection IDs carry a
/// keyed check, and a packet whose ID fails it is dropped without a reset. The restarted edge
/// must recognize the IDs its previous run issued to answer them with a stateless reset.
fn connection_id_key(secret: &[u8]) -> u64 {
    let derived = derive(secret, "connection id key");
    let mut key = [0u8; 8];
    key.copy_from_slice(&derived.as_ref()[..8]);
    u64::from_le_bytes(key)
}

/// The endpoint settings of an edge's tunnel listener: stateless reset tokens and connection
/// IDs keyed from `secret` (see [`stateless_reset_key`]), so they stay valid across restarts.
pub fn server_endpoint_config(secret: &[u8]) -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::new(stateless_reset_key(secret));
    let cid_key = connection_id_key(secret);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            as Box<dyn quinn::ConnectionIdGenerator>
    });
    config
}

/// A QUIC server endpoint on `addr` (as [`quinn::Endpoint::server`]) with
/// [`server_endpoint_config`]: a restarted edge resets the tunnels of its previous run.
pub fn server_endpoint(
    config: quinn::ServerConfig,
    addr: SocketAddr,
    reset_secret: &[u8],
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    quinn::Endpoint::new(
        server_endpoint_config(reset_secret),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Priority of every stream until it has sent [`BULK_AFTER`] bytes.
pub const INTERACTIVE: i32 = 0;
/// Highest priority of a bulk transfer: bulk data is sent when no interactive data waits.
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
    /// the stream bulk.
    pub fn record(&mut self, n: usize) -> bool {
        self.sent = self.sent.saturating_add(n as u64);
        if self.bulk || self.sent <= BULK_AFTER {
            return false;
        }
        self.bulk = true;
        true
    }
}

static BULK_TURNS: AtomicU32 = AtomicU32::new(0);

/// Each stream turning bulk gets a priority one below the one before: bulk transfers go out
/// oldest first, one at a time. (Wraps after 2^30 of them: then a few go out of turn.)
fn next_bulk_priority() -> i32 {
    let turn = BULK_TURNS.fetch_add(1, Ordering::Relaxed) % (1 << 30);
    BULK - turn as i32
}

/// Call before writing `n` bytes to `send`: makes the stream a bulk transfer when `demotion`
/// says it has become one. Called before the first write, it puts even the stream's first
/// packet in its place.
pub fn record_write(send: &quinn::SendStream, demotion: &mut Demotion, n: usize) {
    if demotion.record(n) {
        // Fails only if the stream is already closed; the write that follows reports that.
        let _ = send.set_priority(next_bulk_priority());
    }
}

#[cfg(test)]
mod tests;
