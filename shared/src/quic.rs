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

use std::sync::atomic::{AtomicU32, Ordering};

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
    // Well below common NAT binding lifetimes (~30 s), so the connector's outbound mapping
    // survives; and a vanished peer is noticed within the idle timeout.
    t.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(15_000).into()));
    t
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
    fn later_bulk_transfers_queue_behind_earlier_ones() {
        let (a, b) = (next_bulk_priority(), next_bulk_priority());
        assert!(INTERACTIVE > BULK && BULK >= a && a > b, "{a} {b}");
    }

    #[test]
    fn no_overflow() {
        let mut d = Demotion::default();
        assert!(d.record(usize::MAX));
        assert!(!d.record(usize::MAX));
    }
}
