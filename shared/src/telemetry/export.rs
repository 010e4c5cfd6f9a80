//! The export task: batches of finished spans posted to the collector, one at a time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_rustls::TlsConnector;

use super::{otlp, Buffer, OtlpEndpoint};

/// Spans per request to the collector at most: ≈ 350 KiB of protobuf, below the size from
/// which the allocator maps (and the kernel zeroes) fresh pages for every body.
const MAX_BATCH: usize = 1024;
/// How often the buffer is emptied. Spans wait at most this long (plus the posts before
/// theirs) and the exporter wakes this often, whatever the request rate.
const EXPORT_EVERY: Duration = Duration::from_millis(200);
/// A post that takes longer failed (its spans are counted lost).
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning per this period about failed exports.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Until every [`super::Tracer`] of `buffer` is gone: every [`EXPORT_EVERY`], take what
/// gathered and post it, [`MAX_BATCH`] spans per request.
pub(super) async fn run(buffer: Weak<Buffer>, collector: Collector, service: String) {
    let endpoint = &collector.endpoint;
    let mut tick = tokio::time::interval(EXPORT_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut spare = Vec::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        tick.tick().await;
        let Some(buffer) = buffer.upgrade() else {
            return; // every tracer is gone
        };
        let mut spans = buffer.take(spare);
        for batch in spans.chunks(MAX_BATCH) {
            let body = otlp::encode(&service, batch);
            let n = batch.len() as u64;
            match timeout(POST_TIMEOUT, collector.post(body)).await {
                Ok(Ok(())) => {
                    buffer.stats.exported.fetch_add(n, Ordering::Relaxed);
                }
                failed => {
                    buffer.stats.failed.fetch_add(n, Ordering::Relaxed);
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no answer within {}s", POST_TIMEOUT.as_secs()),
                    };
                    if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            "telemetry: cannot export {n} spans to {}: {why} (spans are \
                             dropped until the collector answers; see \
                             underpass_trace_spans_total)",
                            endpoint.traces_url()
                        );
                    }
                }
            }
        }
        spans.clear();
        spare = spans;
    }
}

/// Where batches go: the endpoint, over TLS for `https://`.
pub(super) struct Collector {
    endpoint: OtlpEndpoint,
    tls: Option<TlsConnector>,
}

impl Collector {
    pub(super) fn new(endpoint: OtlpEndpoint, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Collector {
            endpoint,
            tls: tls.map(TlsConnector::from),
        }
    }

    /// One `POST /v1/traces` on a connection of its own (a batch at most every few hundred
    /// milliseconds does not need a pool).
    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(self.endpoint.authority())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return post_on(stream, &self.endpoint, body).await;
        };
        let name = ServerName::try_from(self.endpoint.host().to_owned())
            .map_err(|e| format!("{:?} is not a TLS server name: {e}", self.endpoint.host()))?;
        let stream = tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        post_on(stream, &self.endpoint, body).await
    }
}

async fn post_on<S>(stream: S, endpoint: &OtlpEndpoint, body: Vec<u8>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
