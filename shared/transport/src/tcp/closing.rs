//! Ending a TCP tunnel cleanly: the edge's record of the streams it opened (reset when it
//! closes, so that h2 sends `GOAWAY` at once), and the socket's lingering close.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The streams the edge opened, weakly (an exchange's handles own them), to reset on close.
#[derive(Default)]
pub(super) struct Opened {
    pub(super) streams: Vec<Weak<Mutex<h2::SendStream<Bytes>>>>,
    /// The length at which the streams already gone are dropped from the list: twice the
    /// live ones at the last pruning, so that keeping the list costs O(1) per stream.
    prune_at: usize,
}

impl Opened {
    pub(super) fn push(&mut self, stream: &super::stream::Shared) {
        if self.streams.len() >= self.prune_at {
            self.streams.retain(|s| s.strong_count() > 0);
            self.prune_at = (2 * self.streams.len()).max(64);
        }
        self.streams.push(Arc::downgrade(stream));
    }
}

/// A second handle on a tunnel's socket, held beside the one TLS and HTTP/2 own, so that
/// dropping theirs does not close the socket: [`linger`] closes it.
pub(super) fn hold(tcp: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let tcp = tcp.into_std()?;
    let held = tcp.try_clone()?;
    Ok((TcpStream::from_std(tcp)?, held))
}

/// How long a closing end reads what its peer still sends, waiting for the peer's end.
const LINGER: Duration = Duration::from_secs(1);

/// Ends a tunnel's socket once HTTP/2 is done with it: sends FIN, then reads and discards
/// until the peer's FIN (at most [`LINGER`]). Closing a socket with bytes unread makes the
/// kernel send a reset, and a peer that gets it before it has read our `GOAWAY` sees a lost
/// tunnel instead of a closed one.
pub(super) async fn linger(held: std::net::TcpStream) {
    let _ = held.shutdown(std::net::Shutdown::Write);
    let Ok(mut tcp) = TcpStream::from_std(held) else {
        return;
    };
    let mut sink = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
