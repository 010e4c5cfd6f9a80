//! The edge's side of an `underpass/1` exchange: one request down a fresh stream of a tunnel,
//! its response head and body back as they arrive. Written against the transport seam
//! (`underpass_transport`), so it serves every tunnel transport alike.

use bytes::Bytes;
use futures_util::StreamExt;
use hyper::body::Frame;
use underpass_mcp::sse::{KEEPALIVE_COMMENT, KEEPALIVE_INTERVAL};
use underpass_proto::frame::{self, codes, FrameError, RequestHead, ResponseHead};
use underpass_transport::{ExchangeRecv, TransportError, TunnelConn};

use crate::http::body::BodyError;

/// Why an exchange brought no response head.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The tunnel or the stream failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A frame could not be encoded, or the connector's answer is not a frame we read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connector ended the stream without a response head.
    #[error("connector closed the exchange without answering")]
    NoAnswer,
    /// The connector's response head carries no final HTTP status (1xx, or outside
    /// 100..=599): nothing a backend answers through a connector.
    #[error("connector answered with status {0}, which is no final HTTP status")]
    BadStatus(u16),
}

/// Sends one request down a fresh stream and waits for the response head. A large request
/// body is queued as a bulk transfer, behind other exchanges' small messages.
pub async fn exchange(
    conn: &TunnelConn,
    head: &RequestHead,
    body: Bytes,
) -> Result<(ResponseHead, ExchangeRecv), ExchangeError> {
    let (mut send, mut recv) = conn.open_exchange().await?;
    let mut out = frame::encode(head)?;
    out.extend_from_slice(&body);
    send.note_write(&mut Default::default(), out.len());
    send.write_all(&out).await?;
    send.finish()?;
    drop((out, body)); // sent: free it (and its share of the body budget) during a long call
    match frame::read_frame::<ResponseHead, _>(&mut recv).await {
        Ok(Some(h)) if (200..=599).contains(&h.status) => Ok((h, recv)),
        Ok(Some(h)) => {
            recv.stop(codes::PROTOCOL);
            Err(ExchangeError::BadStatus(h.status))
        }
        Ok(None) => Err(ExchangeError::NoAnswer),
        Err(e) => {
            recv.stop(codes::PROTOCOL);
            Err(e.into())
        }
    }
}

/// The response body: chunks from the tunnel as they arrive, plus SSE keep-alive comments
/// between events when the stream is idle. A stream that fails (the connector reset it, the
/// tunnel went down) ends the body with an error, logged with the `connector`'s name.
pub fn response_stream(
    recv: ExchangeRecv,
    is_sse: bool,
    connector: &str,
) -> futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, BodyError>> {
    let connector = connector.to_owned();
    struct S {
        recv: ExchangeRecv,
        at_event_boundary: bool,
        failed: bool,
    }
    let init = S {
        recv,
        at_event_boundary: true,
        failed: false,
    };
    futures_util::stream::unfold(init, move |mut s| {
        let connector = connector.clone();
        async move {
            if s.failed {
                return None;
            }
            let read = if is_sse && s.at_event_boundary {
                match tokio::time::timeout(KEEPALIVE_INTERVAL, s.recv.read_chunk()).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Some((Ok(Frame::data(Bytes::from_static(KEEPALIVE_COMMENT))), s))
                    }
                }
            } else {
                s.recv.read_chunk().await
            };
            match read {
                Ok(Some(b)) => {
                    s.at_event_boundary =
                        b.ends_with(b"\n\n") || b.ends_with(b"\r\n\r\n") || b.ends_with(b"\r\r");
                    Some((Ok(Frame::data(b)), s))
                }
                Ok(None) => None,
                Err(e) => {
                    s.failed = true;
                    tracing::warn!(%connector, "tunnel stream failed mid-response: {e}");
                    Some((Err(format!("tunnel stream failed: {e}").into()), s))
                }
            }
        }
    })
    .boxed()
}
