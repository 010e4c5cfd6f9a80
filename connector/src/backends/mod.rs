//! Serving one exchange stream: read the request head and body from the tunnel, forward it to
//! the service's own backend (and nowhere else), stream the response back.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use underpass_shared::frame::{self, codes, RequestHead, ResponseHead};
use underpass_shared::quic;
use underpass_shared::transport::{ExchangeRecv, ExchangeSend};

use crate::bridge::StdioService;
use crate::concurrency::{self, Limiter};
use crate::config::{ConnectorConfig, Transport};

pub mod sse;
use self::sse::SseBackendService;

/// The header carrying the edge-signed identity assertion to backends.
pub const ASSERTION_HEADER: &str = "x-underpass-identity";

/// The header carrying the edge's trace id of the request, for correlating logs.
pub const TRACE_HEADER: &str = "x-underpass-trace-id";
/// The edge's unique id of the request (also in its audit record as `request_id`).
pub const REQUEST_ID_HEADER: &str = "x-underpass-request-id";

/// Largest request body accepted from the edge (the edge enforces its own, smaller limit).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Why an exchange could not be forwarded. The messages are what the client reads: they never
/// name the backend's URL (that goes to the log, under the reference a client can quote).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("this connector does not serve {0:?}")]
    UnknownService(String),
    #[error("bad request from the edge: {0}")]
    BadRequest(String),
    /// The client's query string repeats a parameter the configured backend URL sets.
    #[error(
        "query parameter {0:?} is fixed by the service's configuration and may not be given \
         by the client"
    )]
    QueryParameter(String),
    #[error("the backend failed (ref {reference})")]
    Unreachable { reference: String },
    #[error("{0}")]
    Refused(#[from] concurrency::Refused),
}

impl BackendError {
    fn status(&self) -> u16 {
        match self {
            BackendError::UnknownService(_) => 404,
            BackendError::BadRequest(_) | BackendError::QueryParameter(_) => 400,
            BackendError::Unreachable { .. } => 502,
            BackendError::Refused(r) => r.status(),
        }
    }

    fn rpc_code(&self) -> i64 {
        use underpass_shared::jsonrpc::code;
        match self {
            BackendError::UnknownService(_) => code::NOT_FOUND,
            BackendError::BadRequest(_) | BackendError::QueryParameter(_) => code::INVALID_REQUEST,
            BackendError::Unreachable { .. } => code::UPSTREAM_FAILED,
            BackendError::Refused(r) => r.rpc_code(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        matches!(self, BackendError::Refused(_)).then_some(concurrency::RETRY_AFTER_SECS)
    }
}

/// The backends of this connector's services: HTTP ones share one pooled client; each stdio
/// one runs a process per legacy session.
pub struct Backends {
    urls: HashMap<String, Uri>,
    stdio: HashMap<String, StdioService>,
    sse: HashMap<String, SseBackendService>,
    /// Exchanges in flight per service (every kind of backend).
    limits: HashMap<String, Limiter>,
    client: HttpClient,
}

/// The connector's HTTP client to backends (a connection pool; cheap to clone).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// A backend's answer, whatever the kind of backend.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl Backends {
    pub fn new(config: &ConnectorConfig) -> Self {
        let client = http_client();
        let urls = config
            .services
            .iter()
            .filter(|s| s.transport == Transport::StreamableHttp)
            .filter_map(|s| Some((s.name.clone(), s.url.as_ref()?.parse().ok()?)))
            .collect();
        let sse = config
            .services
            .iter()
            .filter(|s| s.transport == Transport::Sse)
            .filter_map(|s| {
                let url = s.url.as_ref()?.parse().ok()?;
                Some((
                    s.name.clone(),
                    SseBackendService::new(&s.name, url, client.clone(), s.stdio_limits()),
                ))
            })
            .collect();
        let stdio = config
            .services
            .iter()
            .filter_map(|s| {
                let command = s.command.clone()?;
                let service = StdioService::new(
                    &s.name,
                    command,
                    s.env.clone(),
                    s.cwd.clone(),
                    s.stdio_limits(),
                );
                Some((s.name.clone(), service))
            })
            .collect();
        let limits = config
            .services
            .iter()
            .map(|s| (s.name.clone(), Limiter::new(&s.name, s.concurrency())))
            .collect();
        Backends {
            urls,
            stdio,
            sse,
            limits,
            client,
        }
    }

    /// A place for one exchange of `head.principal` under the service's caps.
    fn admit(&self, head: &RequestHead) -> Result<concurrency::Permit, BackendError> {
        let limiter = self
            .limits
            .get(&head.service)
            .ok_or_else(|| BackendError::UnknownService(head.service.clone()))?;
        limiter.admit(&head.principal).map_err(|refused| {
            tracing::info!(service = %head.service, principal = %head.principal,
                trace_id = %head.trace_id, "exchange refused: {refused}");
            BackendError::from(refused)
        })
    }

    /// Ends every stdio backend process.
    pub async fn shutdown(&self) {
        for service in self.stdio.values() {
            service.shutdown().await;
        }
        for service in self.sse.values() {
            service.shutdown().await;
        }
    }

    async fn answer(&self, head: &RequestHead, body: Bytes) -> Result<Answer, BackendError> {
        let bridged = match (self.stdio.get(&head.service), self.sse.get(&head.service)) {
            (Some(stdio), _) => Some(
                stdio
                    .exchange(&head.principal, &head.method, &head.headers, body.clone())
                    .await,
            ),
            (None, Some(sse)) => Some(
                sse.exchange(&head.principal, &head.method, &head.headers, body.clone())
                    .await,
            ),
            (None, None) => None,
        };
        if let Some(r) = bridged {
            return Ok(Answer {
                status: r.status,
                headers: r.headers,
                body: r.body,
            });
        }
        let resp = self.forward(head, body).await?;
        let (parts, body) = resp.into_parts();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: body
                .into_data_stream()
                .map_err(std::io::Error::other)
                .boxed(),
        })
    }

    async fn forward(
        &self,
        head: &RequestHead,
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, BackendError> {
        let base = self
            .urls
            .get(&head.service)
            .ok_or_else(|| BackendError::UnknownService(head.service.clone()))?;
        let uri = with_query(base, &head.query)?;
        let method = http::Method::from_bytes(head.method.as_bytes())
            .map_err(|_| BackendError::BadRequest(format!("bad method {:?}", head.method)))?;
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(h) = req.headers_mut() {
            for (name, value) in &head.headers {
                let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(name.as_str()),
                    HeaderValue::from_bytes(value),
                ) else {
                    return Err(BackendError::BadRequest(format!("bad header {name:?}")));
                };
                if name == http::header::HOST
                    || name == http::header::CONTENT_LENGTH
                    || name.as_str() == ASSERTION_HEADER
                {
                    continue;
                }
                h.append(name, value);
            }
            if let Some(assertion) = head.assertion.as_deref() {
                if let Ok(v) = HeaderValue::from_str(assertion) {
                    h.insert(ASSERTION_HEADER, v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&head.trace_id) {
                h.insert(TRACE_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&head.request_id) {
                h.insert(REQUEST_ID_HEADER, v);
            }
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| BackendError::BadRequest(e.to_string()))?;
        self.client.request(req).await.map_err(|e| {
            let reference = underpass_shared::incident::new_ref();
            tracing::warn!(service = %head.service, trace_id = %head.trace_id, %reference,
                "backend {base} unreachable: {}", error_chain(&e));
            BackendError::Unreachable { reference }
        })
    }
}

/// The backend URL for a client query: the configured URL's own query first, then the
/// client's. A client may not give a parameter the configured URL sets (compared after
/// percent-decoding, `+` as space): that is refused (400), so a backend that reads the first
/// or the last of repeated parameters cannot be steered by the client either way.
fn with_query(base: &Uri, query: &str) -> Result<Uri, BackendError> {
    if query.is_empty() {
        return Ok(base.clone());
    }
    let fixed: Vec<String> = base.query().map(query_keys).unwrap_or_default();
    if let Some(key) = query_keys(query).into_iter().find(|k| fixed.contains(k)) {
        return Err(BackendError::QueryParameter(key));
    }
    let path = base.path();
    let joined = match base.query() {
        Some(q) => format!("{path}?{q}&{query}"),
        None => format!("{path}?{query}"),
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        joined
            .parse()
            .map_err(|_| BackendError::BadRequest(format!("bad query {query:?}")))?,
    );
    Uri::from_parts(parts).map_err(|e| BackendError::BadRequest(e.to_string()))
}

/// The decoded names of a query string's parameters (`a=1&b&c=` → `a`, `b`, `c`).
fn query_keys(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let key = pair
                .split_once('=')
                .map_or(pair, |(k, _)| k)
                .replace('+', " ");
            percent_encoding::percent_decode_str(&key)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// An error and all its sources, `: `-joined (hyper's top-level messages say little alone).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

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
    // Held until the response is sent or the exchange is cancelled.
    let _permit = match backends.admit(&head) {
        Ok(p) => p,
        Err(e) => return send_error(&mut send, &e).await,
    };
    let stopped = send.stopped();
    tokio::pin!(stopped);

    // If the client goes away while the backend works, the edge stops the stream: dropping
    // the backend future then cancels the backend request.
    let result = tokio::select! {
        r = backends.answer(&head, body) => r,
        _ = &mut stopped => return,
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(service = %head.service, trace_id = %head.trace_id, "{e}");
            return send_error(&mut send, &e).await;
        }
    };

    let Answer {
        status,
        headers,
        mut body,
    } = resp;
    let encoded = match frame::encode(&ResponseHead { status, headers }) {
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
        // stream learns whether it is a bulk transfer (see `underpass_shared::quic`).
        let mut len: usize = batch.iter().map(Bytes::len).sum();
        while !ended && len as u64 <= quic::BULK_AFTER {
            match body.next().now_or_never() {
                None => break,
                Some(None) => ended = true,
                Some(Some(Ok(data))) => {
                    len += data.len();
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
            Some(Ok(data)) => batch.push(data),
            Some(Err(e)) => return body_failed(&mut send, &head, &e),
        }
    }
    let _ = send.finish();
}

/// Answers the exchange with `e` as a JSON-RPC error (and `Retry-After` on a capacity refusal).
async fn send_error(send: &mut ExchangeSend, e: &BackendError) {
    let retry = e.retry_after();
    let data = retry.map(|secs| serde_json::json!({ "retryAfterSeconds": secs }));
    let body = underpass_shared::jsonrpc::error(None, e.rpc_code(), &e.to_string(), data);
    let mut headers = vec![("content-type".into(), b"application/json".to_vec())];
    if let Some(secs) = retry {
        headers.push(("retry-after".into(), secs.to_string().into_bytes()));
    }
    let head = ResponseHead {
        status: e.status(),
        headers,
    };
    if let Ok(mut out) = frame::encode(&head) {
        out.extend_from_slice(body.to_string().as_bytes());
        let _ = send.write_all(&out).await;
    }
    let _ = send.finish();
}

/// Truncates loudly: a reset tells the edge (and so the client) the body is incomplete.
fn body_failed(send: &mut ExchangeSend, head: &RequestHead, e: &std::io::Error) {
    tracing::warn!(service = %head.service, trace_id = %head.trace_id, "backend body failed: {e}");
    send.reset(codes::CANCELLED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_joins() {
        let base: Uri = "http://127.0.0.1:3001/mcp".parse().unwrap();
        assert_eq!(with_query(&base, "").unwrap(), base);
        assert_eq!(
            with_query(&base, "a=1").unwrap().to_string(),
            "http://127.0.0.1:3001/mcp?a=1"
        );
        let base: Uri = "http://h/mcp?k=v".parse().unwrap();
        assert_eq!(
            with_query(&base, "a=1").unwrap().to_string(),
            "http://h/mcp?k=v&a=1"
        );
        assert_eq!(with_query(&base, "").unwrap(), base);
    }

    #[test]
    fn the_configured_query_cannot_be_overridden() {
        let base: Uri = "http://h/mcp?tenant=acme&mode=ro".parse().unwrap();
        for query in [
            "tenant=evil",
            "a=1&tenant=evil",
            "tenant",
            "%74enant=evil",
            "mode=rw&x=1",
        ] {
            match with_query(&base, query) {
                Err(BackendError::QueryParameter(k)) => {
                    assert!(k == "tenant" || k == "mode", "{query}: {k}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        assert_eq!(
            with_query(&base, "tenantx=1&x=tenant").unwrap().to_string(),
            "http://h/mcp?tenant=acme&mode=ro&tenantx=1&x=tenant"
        );
        let e = with_query(&base, "tenant=evil").unwrap_err();
        assert_eq!(e.status(), 400);
        // A URL without a query fixes nothing.
        let plain: Uri = "http://h/mcp".parse().unwrap();
        assert!(with_query(&plain, "tenant=x").is_ok());
    }

    #[test]
    fn query_keys_decode() {
        assert_eq!(
            query_keys("a=1&b&&c=&d+e=2&%41=3"),
            ["a", "b", "c", "d e", "A"]
        );
    }
}
