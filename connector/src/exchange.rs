//! Serving one exchange stream: read the request head and body from the tunnel, admit it
//! under the service's caps, have the service's own backend (and nowhere else) answer it, and
//! stream the answer back. Written against the transport seam
//! (`underpass_transport::{ExchangeSend, ExchangeRecv}`) only.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use underpass_proto::frame::{self, codes, RequestHead, ResponseHead};
use underpass_transport::quic;
use underpass_transport::{ExchangeRecv, ExchangeSend};

use crate::answer::{error_parts, Answer};
use crate::backends::{BackendError, Backends};
use crate::stats::{ConnectorStats, Served};

/// Largest request body accepted from the edge (the edge enforces its own, smaller limit).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Serves one exchange stream to completion. Never panics on what the edge sends.
pub async fn serve_exchange(backends: &Backends, mut send: ExchangeSend, mut recv: ExchangeRecv) {
    let head = match frame::read_frame::<RequestHead, _>(&mut recv).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("bad exchange head from edge: {e}");
            send.reset(codes::PROTOCOL);
            return;
        }
    };
    let body = match recv.read_to_end(MAX_REQUEST_BODY).await {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::debug!(service = %head.service, "request body not received: {e}");
            send.reset(codes::CANCELLED);
            return;
        }
    };
    let stats = &backends.stats;
    let _in_flight = stats.in_flight();
    // Held until the response is sent or the exchange is cancelled.
    let (backend, _permit) = match backends.admit(&head) {
        Ok(p) => p,
        Err(e) => {
            stats.served(&head.service, Served::Refused);
            return send_error(&mut send, &e).await;
        }
    };
    let mut counted = Counted {
        stats,
        service: &head.service,
        to_backend: body.len() as u64,
        from_backend: 0,
    };
    let stopped = send.stopped();
    tokio::pin!(stopped);

    // If the client goes away while the backend works, the edge stops the stream: dropping
    // the backend future then cancels the backend request.
    let asked = std::time::Instant::now();
    let result = tokio::select! {
        r = backend.answer(&head, body) => r,
        _ = &mut stopped => return,
    };
    // Until the backend's response head: what the edge reports as the backend phase.
    let backend_us = Some(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(service = %head.service, trace_id = %head.trace_id, "{e}");
            stats.served(&head.service, Served::BackendError);
            return send_error(&mut send, &e).await;
        }
    };
    stats.served(&head.service, Served::Ok);

    let Answer {
        status,
        headers,
        mut body,
    } = resp;
    let encoded = match frame::encode(&ResponseHead {
        status,
        headers,
        backend_us,
    }) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("backend response head not sendable: {e}");
            send.reset(codes::PROTOCOL);
            return;
        }
    };
    // A GET is a long-lived event stream: its events stay ahead of bulk transfers.
    let mut demotion = (head.method != "GET").then(quic::Demotion::default);
    let mut batch = vec![Bytes::from(encoded)];
    let mut ended = false;
    loop {
        // Whatever the backend has ready goes out in one write, and before the first one the
        // stream learns whether it is a bulk transfer (see `underpass_transport::quic`).
        let mut len: usize = batch.iter().map(Bytes::len).sum();
        let mut yielded = false;
        while !ended && len as u64 <= quic::BULK_AFTER {
            match body.next().now_or_never() {
                // A chunked answer's end reaches the body from hyper's connection task a turn
                // after its last chunk, even when both came in one read: one turn lets it
                // arrive, so the end leaves with the data (one datagram for a small answer
                // instead of two, and one client write at the edge instead of two).
                None if !yielded => {
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                None => break,
                Some(None) => ended = true,
                Some(Some(Ok(data))) => {
                    len += data.len();
                    counted.from_backend += data.len() as u64;
                    batch.push(data);
                }
                Some(Some(Err(e))) => return body_failed(&mut send, &head, &e),
            }
        }
        if let Some(d) = demotion.as_mut() {
            send.note_write(d, len);
        }
        if send.write_chunks(&mut batch).await.is_err() {
            return;
        }
        batch.clear();
        if ended {
            break;
        }
        let next = tokio::select! {
            chunk = body.next() => chunk,
            _ = &mut stopped => return,
        };
        match next {
            None => break,
            Some(Ok(data)) => {
                counted.from_backend += data.len() as u64;
                batch.push(data);
            }
            Some(Err(e)) => return body_failed(&mut send, &head, &e),
        }
    }
    let _ = send.finish();
}

/// The bytes of one exchange, added to its service's counters however the exchange ends.
struct Counted<'a> {
    stats: &'a ConnectorStats,
    service: &'a str,
    to_backend: u64,
    from_backend: u64,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.stats
            .bytes(self.service, self.to_backend, self.from_backend);
    }
}

/// Answers the exchange with `e` as a JSON-RPC error (and `Retry-After` on a capacity refusal).
async fn send_error(send: &mut ExchangeSend, e: &BackendError) {
    let (headers, body) = error_parts(e.rpc_code(), &e.to_string(), e.retry_after());
    let head = ResponseHead {
        status: e.status(),
        headers,
        backend_us: None,
    };
    if let Ok(mut out) = frame::encode(&head) {
        out.extend_from_slice(&body);
        let _ = send.write_all(&out).await;
    }
    let _ = send.finish();
}

/// Truncates loudly: a reset tells the edge (and so the client) the body is incomplete.
fn body_failed(send: &mut ExchangeSend, head: &RequestHead, e: &std::io::Error) {
    tracing::warn!(service = %head.service, trace_id = %head.trace_id, "backend body failed: {e}");
    send.reset(codes::CANCELLED);
}
