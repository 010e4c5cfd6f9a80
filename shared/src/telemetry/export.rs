//! The export task: batches of finished spans posted to the collector, one at a time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout, timeout_at, Instant};

use super::{otlp, OtlpEndpoint, SpanRecord, SpanStats};

/// Spans per request to the collector at most.
const MAX_BATCH: usize = 512;
/// How long a batch waits for more spans after its first.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// A post that takes longer failed (its spans are counted lost).
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning per this period about failed exports.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub(super) async fn run(
    mut rx: Receiver<SpanRecord>,
    endpoint: OtlpEndpoint,
    service: String,
    stats: Arc<SpanStats>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_warning: Option<Instant> = None;
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return; // every tracer is gone
        }
        let deadline = Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let body = otlp::encode(&service, &batch);
        let n = batch.len() as u64;
        batch.clear();
        match timeout(POST_TIMEOUT, post(&endpoint, body)).await {
            Ok(Ok(())) => {
                stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            failed => {
                stats.failed.fetch_add(n, Ordering::Relaxed);
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {}s", POST_TIMEOUT.as_secs()),
                };
                if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        "telemetry: cannot export {n} spans to {}: {why} (spans are dropped \
                         until the collector answers; see underpass_trace_spans_total)",
                        endpoint.traces_url()
                    );
                }
            }
        }
    }
}

/// One `POST /v1/traces` on a connection of its own (a batch at most every few hundred
/// milliseconds does not need a pool).
async fn post(endpoint: &OtlpEndpoint, body: Vec<u8>) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(endpoint.authority())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = http::Request::post(endpoint.traces_path())
        .header(http::header::HOST, endpoint.host_header())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    // Read the (small) answer so the connection ends cleanly.
    let _ = resp.into_body().collect().await;
    conn.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {status}"))
    }
}
