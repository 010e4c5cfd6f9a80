//! The tunnel wire protocol, version 1 (ALPN `underpass/1`).
//!
//! Every frame is a 4-byte big-endian length followed by that many bytes of MessagePack
//! (a map with named fields, so fields can be added without breaking older peers).
//!
//! Streams:
//! - **control**: the first bidirectional stream, opened by the connector: the handshake and
//!   any later control message (the `control` module).
//! - **exchange**: one bidirectional stream per client HTTP exchange, opened by the edge. It
//!   writes a [`RequestHead`] frame followed by the raw request body up to FIN; the connector
//!   answers with a [`ResponseHead`] frame followed by the raw response body up to FIN, streamed
//!   as it arrives. A reset on either side cancels the exchange.
//!
//! Encoding and decoding are plain functions over bytes ([`encode`], [`decode`], and
//! [`FrameBuffer`] for frames arriving in pieces); [`read_frame`] and [`write_frame`] are thin
//! async shells over them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// ALPN of tunnel connections; bumped with any incompatible change to this module.
pub const ALPN: &[u8] = b"underpass/1";
/// The protocol version carried in the control protocol's `Hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Hard cap on one frame (heads and control messages; bodies are not framed).
pub const MAX_FRAME_LEN: usize = 256 * 1024;
const LEN_PREFIX: usize = 4;

/// QUIC application error codes used when closing a connection or resetting a stream.
pub mod codes {
    pub const NORMAL: u32 = 0;
    /// The connector was refused (see the reason in the control protocol's `Refused`).
    pub const REFUSED: u32 = 1;
    /// The peer broke the protocol (bad frame, wrong stream order).
    pub const PROTOCOL: u32 = 2;
    /// The exchange was cancelled (client went away).
    pub const CANCELLED: u32 = 3;
    /// The identity was revoked or the edge is shutting down.
    pub const GOING_AWAY: u32 = 4;
}

/// One HTTP header as it crosses the tunnel (value bytes kept exact).
pub type Header = (String, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    pub service: String,
    /// HTTP method: GET, POST or DELETE.
    pub method: String,
    /// Query string of the client request, without the `?` (empty when there is none).
    pub query: String,
    /// End-to-end headers only; hop-by-hop headers and client credentials never cross.
    pub headers: Vec<Header>,
    /// Who the edge authenticated, e.g. `client:alice`.
    pub principal: String,
    /// W3C trace id for correlating edge, connector and backend logs.
    pub trace_id: String,
    /// Unique id of this request, made by the edge: in its audit record and, as
    /// `x-underpass-request-id`, at the backend (the reused assertion's `jti` names the token,
    /// not the request).
    #[serde(default)]
    pub request_id: String,
    /// Short-lived JWT signed by the edge saying who is calling (principal, groups, session,
    /// trace id; audience = the service). The connector hands it to the backend in the
    /// `x-underpass-identity` header: backends verify it against the edge's JWKS and never
    /// see the client's own credentials.
    #[serde(default)]
    pub assertion: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<Header>,
    /// Microseconds the connector waited for its backend's response head (from sending the
    /// request to the backend); the edge splits its latency metrics with it. Absent from
    /// older connectors and from answers no backend gave (refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_us: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("undecodable frame (peer speaks another protocol version?): {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("could not encode frame: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("stream I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one length-prefixed frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; LEN_PREFIX];
    rmp_serde::encode::write_named(&mut buf, msg)?;
    let len = buf.len() - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    buf[..LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes one frame from the front of `buf`. Returns `Ok(None)` when `buf` does not yet hold a
/// whole frame, otherwise the message and the number of bytes it used.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let Some(payload) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    Ok(Some((rmp_serde::from_slice(payload)?, LEN_PREFIX + len)))
}

/// Reassembles frames from the pieces a stream delivers them in: [`FrameBuffer::push`] what
/// arrived, then take whole frames with [`FrameBuffer::next_frame`]. A frame announcing more than
/// [`MAX_FRAME_LEN`] bytes is refused as soon as its length prefix is in, so the buffer never
/// holds more than one frame's worth.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// Appends bytes as they arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or `Ok(None)` until more bytes arrive.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match decode(&self.buf)? {
            Some((msg, used)) => {
                self.buf.drain(..used);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Whether bytes of an unfinished frame are waiting (at the end of the stream: it was cut).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Reads exactly one frame. `Ok(None)` means the stream ended cleanly before any byte of it.
pub async fn read_frame<T, R>(r: &mut R) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    read_frame_within(r, MAX_FRAME_LEN).await
}

/// [`read_frame`] with a limit of `max` bytes (at most [`MAX_FRAME_LEN`]), checked on the
/// length prefix before any of the body is read.
pub async fn read_frame_within<T, R>(r: &mut R, max: usize) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let max = max.min(MAX_FRAME_LEN);
    let mut prefix = [0u8; LEN_PREFIX];
    let mut got = 0;
    while got < LEN_PREFIX {
        match r.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(rmp_serde::from_slice(&payload)?))
}

pub async fn write_frame<T, W>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    w.write_all(&encode(msg)?).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
