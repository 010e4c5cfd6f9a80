//! The one error type of the transport seam, shared by both carriers and the seam itself (a
//! leaf, so that [`crate::tcp`] and [`crate::tunnel`] need not import each other).

/// Why a tunnel or one of its exchanges failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The tunnel connection is gone (closed by either side, timed out, reset).
    #[error("tunnel lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing an exchange failed (the peer stopped it, or the tunnel is gone).
    #[error("exchange write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading an exchange failed (the peer reset it, or the tunnel is gone).
    #[error("exchange read failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// The exchange was already finished or reset locally.
    #[error("exchange already closed")]
    Closed(#[from] quinn::ClosedStream),
    /// A body longer than the reader's limit.
    #[error("exchange body over {0} bytes")]
    TooLong(usize),
    /// The peer reset the exchange with an application code (TCP carrier; QUIC reports it
    /// as [`TransportError::Read`]).
    #[error("exchange read failed: reset by peer: code {0}")]
    Reset(u32),
    /// The peer no longer reads the exchange (TCP carrier; QUIC reports it as
    /// [`TransportError::Write`]).
    #[error("exchange write failed: stopped by peer: code {0}")]
    Stopped(u32),
    /// The TCP tunnel is gone (closed by either side, timed out, connection lost).
    #[error("tunnel lost: {0}")]
    Tunnel(String),
    /// An exchange stream of the TCP carrier failed otherwise.
    #[error("exchange failed: {0}")]
    Stream(String),
}
