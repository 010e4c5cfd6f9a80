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
/// body is queued as a bulk transfer, behind other exchanges' small messages. If the caller
/// goes away meanwhile (the client left), the exchange is reset.
pub async fn exchange(
    conn: &TunnelConn,
    head: &RequestHead,
    body: Bytes,
) -> Result<(ResponseHead, ExchangeRecv), ExchangeError> {
    exchange_then(conn, head, body, OnHangUp::Cancel).await
}

/// [`exchange`], where `on_hang_up` says what becomes of the exchange if the caller goes
/// away before the response head: with [`OnHangUp::RunOn`] the head is awaited by a task of
/// its own, and an answer nobody takes is read to its end and dropped.
pub async fn exchange_then(
    conn: &TunnelConn,
    head: &RequestHead,
    body: Bytes,
    on_hang_up: OnHangUp,
) -> Result<(ResponseHead, ExchangeRecv), ExchangeError> {
    let (mut send, recv) = conn.open_exchange().await?;
    let mut out = frame::encode(head)?;
    out.extend_from_slice(&body);
    send.note_write(&mut Default::default(), out.len());
    send.write_all(&out).await?;
    send.finish()?;
    drop((out, body)); // sent: free it (and its share of the body budget) during a long call
    if on_hang_up == OnHangUp::Cancel {
        return read_head(recv).await;
    }
    let (answer, answered) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(Ok((_, recv))) = answer.send(read_head(recv).await) {
            // The caller is gone: its request runs on.
            run_on_unless_too_many(recv, "?");
        }
    });
    answered.await.unwrap_or(Err(ExchangeError::NoAnswer))
}

/// Reads the response head of an exchange whose request is sent.
async fn read_head(mut recv: ExchangeRecv) -> Result<(ResponseHead, ExchangeRecv), ExchangeError> {
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

/// What happens to an exchange whose client went away before its answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHangUp {
    /// The exchange is reset: the connector aborts the backend request, which sees it (a
    /// 2026-07-28 request: closing the response stream is how a client cancels).
    Cancel,
    /// The answer is read to its end and dropped, so the backend request runs on (2025-11-25:
    /// a disconnect is not a cancellation; `notifications/cancelled` is). Bounded: see
    /// [`RUN_ON_MAX`], [`RUN_ON_AT_ONCE`].
    RunOn,
}

/// Longest an abandoned answer is read on after its client left.
pub const RUN_ON_MAX: std::time::Duration = std::time::Duration::from_secs(600);
/// Most abandoned answers read on at once; beyond, an abandoned exchange is cancelled (and
/// that is logged), so clients that hang up cannot pile up work without bound.
pub const RUN_ON_AT_ONCE: usize = 1024;

static RUNNING_ON: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The response body: chunks from the tunnel as they arrive, plus SSE keep-alive comments
/// between events when the stream is idle. A stream that fails (the connector reset it, the
/// tunnel went down) is logged with the `connector`'s name; an event stream that fails
/// between two events ends with `last_words` (an SSE event: the JSON-RPC error answering the
/// request, so the client is not left waiting), any other fails the body. If the body is
/// dropped before its end (the client went away), `on_hang_up` says what becomes of the
/// exchange.
pub fn response_stream(
    recv: ExchangeRecv,
    is_sse: bool,
    connector: &str,
    on_hang_up: OnHangUp,
    last_words: Option<Bytes>,
) -> futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, BodyError>> {
    let connector = connector.to_owned();
    let init = Relay {
        recv: Some(recv),
        at_event_boundary: true,
        done: false,
        on_hang_up,
        connector: connector.clone(),
        last_words,
    };
    futures_util::stream::unfold(init, move |mut s| {
        let connector = connector.clone();
        async move {
            if s.done {
                return None;
            }
            let recv = s.recv.as_mut()?;
            let read = if is_sse && s.at_event_boundary {
                match tokio::time::timeout(KEEPALIVE_INTERVAL, recv.read_chunk()).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Some((Ok(Frame::data(Bytes::from_static(KEEPALIVE_COMMENT))), s))
                    }
                }
            } else {
                recv.read_chunk().await
            };
            match read {
                Ok(Some(b)) => {
                    s.at_event_boundary =
                        b.ends_with(b"\n\n") || b.ends_with(b"\r\n\r\n") || b.ends_with(b"\r\r");
                    Some((Ok(Frame::data(b)), s))
                }
                Ok(None) => {
                    // The answer ended: nothing to cancel or run on when `s` drops.
                    drop(s.recv.take());
                    None
                }
                Err(e) => {
                    s.done = true;
                    tracing::warn!(%connector, "tunnel stream failed mid-response: {e}");
                    match s
                        .last_words
                        .take()
                        .filter(|_| is_sse && s.at_event_boundary)
                    {
                        Some(event) => Some((Ok(Frame::data(event)), s)),
                        None => Some((Err(format!("tunnel stream failed: {e}").into()), s)),
                    }
                }
            }
        }
    })
    .boxed()
}

/// The state of [`response_stream`]; dropping it before the answer ended means the client
/// went away.
struct Relay {
    recv: Option<ExchangeRecv>,
    at_event_boundary: bool,
    /// The answer ended (or failed): nothing left to cancel or run on.
    done: bool,
    on_hang_up: OnHangUp,
    connector: String,
    /// What ends an event stream that failed between events.
    last_words: Option<Bytes>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let Some(recv) = self.recv.take().filter(|_| !self.done) else {
            return;
        };
        if self.on_hang_up == OnHangUp::Cancel {
            return; // dropping `recv` stops the stream: the connector aborts the request
        }
        run_on_unless_too_many(recv, &self.connector);
    }
}

/// Reads an abandoned answer on in a task of its own (see [`run_on`]), unless
/// [`RUN_ON_AT_ONCE`] are already: then the exchange is reset, and that is logged.
fn run_on_unless_too_many(recv: ExchangeRecv, connector: &str) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if RUNNING_ON.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= RUN_ON_AT_ONCE {
        RUNNING_ON.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        tracing::warn!(
            %connector,
            "client gone: {RUN_ON_AT_ONCE} abandoned answers already read on, so this \
             exchange is cancelled instead"
        );
        return;
    }
    tracing::debug!(%connector, "client gone: the request runs on (not a cancellation in this protocol era)");
    runtime.spawn(run_on(recv));
}

/// Reads an abandoned answer to its end (or for [`RUN_ON_MAX`]) and drops it.
async fn run_on(mut recv: ExchangeRecv) {
    let _ = tokio::time::timeout(RUN_ON_MAX, async {
        while let Ok(Some(_)) = recv.read_chunk().await {}
    })
    .await;
    RUNNING_ON.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}
