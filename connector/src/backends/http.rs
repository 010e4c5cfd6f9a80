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

pub use underpass_proto::headers::{ASSERTION_HEADER, REQUEST_ID_HEADER, TRACE_HEADER};
use underpass_proto::trace;

/// One Streamable HTTP service: its URL and the shared client.
pub struct HttpBackend {
    url: Uri,
    client: HttpClient,
}

impl HttpBackend {
    pub fn new(url: Uri, client: HttpClient) -> Self {
        HttpBackend { url, client }
    }

    /// Forwards one exchange and hands back the backend's answer as it streams.
    pub async fn answer(&self, head: &RequestHead, body: Bytes) -> Result<Answer, BackendError> {
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
            trace::continued(&head.trace_id, incoming, rand::random::<u64>());
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
