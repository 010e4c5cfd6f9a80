//! Streamable HTTP backends: each exchange is forwarded as one HTTP request to the service's
//! configured URL (and nowhere else), over the connector's shared connection pool.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use underpass_proto::frame::RequestHead;

use super::error::BackendError;
use crate::answer::Answer;
use crate::http_client::{error_chain, HttpClient};
use underpass_shared::telemetry::{new_span_id, Tracer};

mod span;
use span::BackendSpan;

pub use underpass_proto::headers::{ASSERTION_HEADER, REQUEST_ID_HEADER, TRACE_HEADER};
use underpass_proto::trace;

/// One Streamable HTTP service: its URL, the shared client, where its calls' spans go.
pub struct HttpBackend {
    url: Uri,
    client: HttpClient,
    tracer: Tracer,
}

impl HttpBackend {
    pub fn new(url: Uri, client: HttpClient, tracer: Tracer) -> Self {
        HttpBackend {
            url,
            client,
            tracer,
        }
    }

    /// Forwards one exchange and hands back the backend's answer as it streams. With spans
    /// exported, the call's span ends when the answer has been relayed (or dropped).
    pub async fn answer(&self, head: &RequestHead, body: Bytes) -> Result<Answer, BackendError> {
        let span_id = new_span_id();
        let span = BackendSpan::start(&self.tracer, head, span_id);
        let resp = match self.forward(head, body, span_id).await {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(span) = span {
                    span.fail(e.to_string());
                }
                return Err(e);
            }
        };
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        let span = span.map(|s| s.answered(status));
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
                .map(move |chunk| {
                    // Ends (is dropped) with the answer.
                    let _span = &span;
                    chunk
                })
                .boxed(),
        })
    }

    async fn forward(
        &self,
        head: &RequestHead,
        body: Bytes,
        span_id: [u8; 8],
    ) -> Result<http::Response<hyper::body::Incoming>, BackendError> {
        let base = &self.url;
        let uri = with_query(base, &head.query)?;
        let method = http::Method::from_bytes(head.method.as_bytes())
            .map_err(|_| BackendError::BadRequest(format!("bad method {:?}", head.method)))?;
        let mut req = Request::builder().method(method).uri(uri);
        // The hop to the backend continues the request's trace with a span of its own.
        let incoming = head
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trace::TRACEPARENT))
            .map(|(_, value)| value.as_slice());
        let (traceparent, keep_state) =
            trace::continued(&head.trace_id, incoming, u64::from_be_bytes(span_id));
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
                    || name.as_str() == trace::TRACEPARENT
                    || (name.as_str() == trace::TRACESTATE && !keep_state)
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
            if let Ok(v) = HeaderValue::from_str(&traceparent) {
                h.insert(trace::TRACEPARENT, v);
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

#[cfg(test)]
mod tests;
