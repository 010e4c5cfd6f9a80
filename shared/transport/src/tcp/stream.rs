//! One exchange over the TCP carrier: an HTTP/2 stream, seen through the same operations as
//! a QUIC bidirectional stream (see [`crate::tunnel`]).
//!
//! Semantics kept equal to QUIC's:
//! - `reset(code)` and `stop(code)` send `RST_STREAM` with the application code mapped into a
//!   private range ([`reason_of`]); the peer reads [`TransportError::Reset`] (its reads) or
//!   [`TransportError::Stopped`] (its writes) with the same code.
//! - A send half dropped without `finish` or `reset` is finished, as quinn does.
//! - Dropping every handle of an unfinished exchange resets it (`CANCEL`), which the peer sees
//!   as code 0, as QUIC's implicit `STOP_SENDING(0)`: the connector's `stopped()` resolves when
//!   the edge abandons an exchange, and the backend request is cancelled.
//! - Flow control is HTTP/2's, per stream and per connection: a reader that does not read
//!   leaves the window closed, so the writer waits (bounded buffering at every hop).
//!
//! Two differences: `stop(code)` resets both directions (HTTP/2 has one reset per stream),
//! and `stopped()` resolves only on a reset or the tunnel's loss, not when the peer has read
//! everything (HTTP/2 has no acknowledgement of stream data).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::Reason;
use tokio::io::ReadBuf;

use crate::error::TransportError;

/// Application codes travel as `RST_STREAM` / `GOAWAY` reasons offset by this, outside the
/// range HTTP/2 defines for its own errors (0x0–0xd), so neither is mistaken for the other.
pub(crate) const CODE_BASE: u32 = 0x5550_0000;
/// The highest application code carried (the offset range's size).
const CODE_SPAN: u32 = 0x1_0000;

/// The HTTP/2 reason carrying application `code`.
pub(crate) fn reason_of(code: u32) -> Reason {
    Reason::from(CODE_BASE.saturating_add(code.min(CODE_SPAN - 1)))
}

/// The application code a reason carries: ours, or 0 for the resets HTTP/2 sends itself when
/// an exchange is abandoned (`CANCEL`, `NO_ERROR`), as QUIC reports a dropped stream.
pub(crate) fn code_of(reason: Reason) -> Option<u32> {
    let r = u32::from(reason);
    if (CODE_BASE..CODE_BASE + CODE_SPAN).contains(&r) {
        Some(r - CODE_BASE)
    } else if reason == Reason::CANCEL || reason == Reason::NO_ERROR {
        Some(0)
    } else {
        None
    }
}

/// What an h2 error on one stream means at the seam. `read` chooses between a reset (the
/// peer abandoned what we read) and a stop (the peer no longer reads what we write).
pub(crate) fn stream_error(e: &h2::Error, read: bool) -> TransportError {
    if e.is_reset() && e.is_remote() {
        if let Some(code) = e.reason().and_then(code_of) {
            return if read {
                TransportError::Reset(code)
            } else {
                TransportError::Stopped(code)
            };
        }
    }
    if e.is_io() || e.is_go_away() {
        return TransportError::Tunnel(super::describe(e));
    }
    TransportError::Stream(e.to_string())
}

/// A write to an exchange already finished or reset.
fn closed() -> TransportError {
    TransportError::Stream("exchange already closed".into())
}

/// A lock whose poisoning is ignored (a panic elsewhere leaves the stream state usable).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The send side of an HTTP/2 stream, shared by both halves of the exchange (the receive
/// half resets through it).
pub(crate) type Shared = Arc<Mutex<h2::SendStream<Bytes>>>;

/// The sending half of one exchange over TCP.
pub struct TcpSend {
    stream: Shared,
    /// `finish` or `reset` was called.
    done: bool,
}

impl std::fmt::Debug for TcpSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSend")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl TcpSend {
    pub(crate) fn new(stream: Shared) -> Self {
        TcpSend {
            stream,
            done: false,
        }
    }

    /// Sends from the front of `data` as far as flow control allows; ready once all is sent.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        data: &mut Bytes,
    ) -> Poll<Result<(), TransportError>> {
        let mut s = lock(&self.stream);
        while !data.is_empty() {
            s.reserve_capacity(data.len());
            match s.poll_capacity(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(n))) => {
                    let chunk = data.split_to(n.min(data.len()));
                    if let Err(e) = s.send_data(chunk, false) {
                        return Poll::Ready(Err(stream_error(&e, false)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(stream_error(&e, false))),
                // The stream can send no more: reset by the peer, or the tunnel is gone.
                Poll::Ready(None) => {
                    return Poll::Ready(Err(match s.poll_reset(cx) {
                        Poll::Ready(Ok(reason)) => {
                            TransportError::Stopped(code_of(reason).unwrap_or(u32::from(reason)))
                        }
                        Poll::Ready(Err(e)) => stream_error(&e, false),
                        Poll::Pending => closed(),
                    }))
                }
            }
        }
        s.reserve_capacity(0);
        Poll::Ready(Ok(()))
    }

    pub(crate) async fn write_chunks(
        &mut self,
        chunks: &mut [Bytes],
    ) -> Result<(), TransportError> {
        for chunk in chunks.iter_mut() {
            std::future::poll_fn(|cx| self.poll_send(cx, chunk)).await?;
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> Result<(), TransportError> {
        if self.done {
            return Err(closed());
        }
        self.done = true;
        lock(&self.stream)
            .send_data(Bytes::new(), true)
            .map_err(|_| closed())
    }

    pub(crate) fn reset(&mut self, code: u32) {
        self.done = true;
        lock(&self.stream).send_reset(reason_of(code));
    }

    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let stream = self.stream.clone();
        async move {
            let _ = std::future::poll_fn(|cx| lock(&stream).poll_reset(cx)).await;
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut s = lock(&self.stream);
        s.reserve_capacity(buf.len());
        loop {
            return match s.poll_capacity(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(n))) => {
                    let n = n.min(buf.len());
                    match s.send_data(Bytes::copy_from_slice(&buf[..n]), false) {
                        Ok(()) => Poll::Ready(Ok(n)),
                        Err(e) => Poll::Ready(Err(io::Error::other(stream_error(&e, false)))),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    Poll::Ready(Err(io::Error::other(stream_error(&e, false))))
                }
                Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "exchange closed",
                ))),
            };
        }
    }

    pub(crate) fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        if !self.done {
            self.finish().map_err(io::Error::other)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpSend {
    /// Like quinn: a send half dropped without `finish` or `reset` is finished.
    fn drop(&mut self) {
        if !self.done {
            let _ = lock(&self.stream).send_data(Bytes::new(), true);
        }
    }
}

/// Where the receiving half is.
enum RecvState {
    /// The edge opened the stream and waits for the connector's response headers.
    Waiting(h2::client::ResponseFuture),
    /// Data flows.
    Body(h2::RecvStream),
    /// The stream ended cleanly.
    Done,
}

/// The receiving half of one exchange over TCP.
pub struct TcpRecv {
    state: RecvState,
    stream: Shared,
    /// What a short `poll_read` left of the last chunk.
    leftover: Bytes,
}

impl std::fmt::Debug for TcpRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpRecv").finish_non_exhaustive()
    }
}

impl TcpRecv {
    pub(crate) fn waiting(response: h2::client::ResponseFuture, stream: Shared) -> Self {
        TcpRecv {
            state: RecvState::Waiting(response),
            stream,
            leftover: Bytes::new(),
        }
    }

    pub(crate) fn body(body: h2::RecvStream, stream: Shared) -> Self {
        TcpRecv {
            state: RecvState::Body(body),
            stream,
            leftover: Bytes::new(),
        }
    }

    /// The next non-empty chunk (its flow-control credit given back at once), or `None` at
    /// the end of the stream.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, TransportError>> {
        if !self.leftover.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.leftover))));
        }
        loop {
            match &mut self.state {
                RecvState::Waiting(response) => match Pin::new(response).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(resp)) if resp.status() == http::StatusCode::OK => {
                        self.state = RecvState::Body(resp.into_body())
                    }
                    Poll::Ready(Ok(resp)) => {
                        let status = resp.status();
                        self.state = RecvState::Done;
                        return Poll::Ready(Err(TransportError::Stream(format!(
                            "the peer answered the stream with status {status}"
                        ))));
                    }
                    Poll::Ready(Err(e)) => {
                        self.state = RecvState::Done;
                        return Poll::Ready(Err(stream_error(&e, true)));
                    }
                },
                RecvState::Body(body) => match body.poll_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(data))) => {
                        let _ = body.flow_control().release_capacity(data.len());
                        if !data.is_empty() {
                            return Poll::Ready(Ok(Some(data)));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(stream_error(&e, true))),
                    Poll::Ready(None) => {
                        self.state = RecvState::Done;
                        return Poll::Ready(Ok(None));
                    }
                },
                RecvState::Done => return Poll::Ready(Ok(None)),
            }
        }
    }

    pub(crate) async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    pub(crate) async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read_chunk().await? {
            if out.len() + chunk.len() > limit {
                self.stop(0);
                return Err(TransportError::TooLong(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// HTTP/2 has one reset per stream: stopping the receive half resets the exchange.
    pub(crate) fn stop(&mut self, code: u32) {
        lock(&self.stream).send_reset(reason_of(code));
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = match self.poll_chunk(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(chunk))) => chunk,
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk.split_to(n));
        self.leftover = chunk;
        Poll::Ready(Ok(()))
    }
}
