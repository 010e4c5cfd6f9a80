//! `kind = "openapi"` services: a REST API described by an OpenAPI document, served by the
//! connector itself as an MCP server whose tools are the API's operations.
//!
//! The pure parts: [`spec`] (document → operations, `$ref`s resolved by [`refs`]), [`tools`]
//! (operations → tool definitions), [`request`] (arguments → HTTP request), [`result`] (HTTP
//! response → tool result), [`server`] (the JSON-RPC methods of one exchange). This module is
//! the async shell: the document read (a file at start, a URL at first use; a failure is
//! retried at most every [`RETRY_LOAD`]), the calls made over the shared HTTP client with the
//! service's credentials (never seen by the edge), a deadline and a response-size cap.

pub mod error;
pub mod refs;
pub mod request;
pub mod result;
pub mod server;
pub mod spec;
pub mod tools;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;
use underpass_proto::frame::RequestHead;
use underpass_proto::headers::{ASSERTION_HEADER, REQUEST_ID_HEADER, TRACE_HEADER};

use self::error::OpenapiError;
use self::server::Step;
use self::spec::{Catalog, Operation, MAX_DOCUMENT_BYTES};
use crate::answer::Answer;
use crate::config::{AuthConfig, OpenapiConfig, Secret, SpecSource};
use crate::http_client::{error_chain, HttpClient};
use underpass_mcp::jsonrpc::code;

/// Least time between two attempts to load a document that failed.
pub const RETRY_LOAD: Duration = Duration::from_secs(10);

/// One OpenAPI service.
pub struct OpenapiBackend {
    service: String,
    config: OpenapiConfig,
    client: HttpClient,
    /// The credential headers, or why they could not be made (an unset variable).
    auth: Result<Vec<(HeaderName, HeaderValue)>, String>,
    catalog: tokio::sync::OnceCell<Arc<Catalog>>,
    /// When loading last failed, and why (the same error is not retried sooner).
    failed: Mutex<Option<(Instant, String)>>,
}

impl OpenapiBackend {
    /// A file document is read now (a failure is logged, and retried on use); a URL is
    /// fetched at first use.
    pub fn new(service: &str, config: &OpenapiConfig, client: HttpClient) -> Self {
        let auth = auth_headers(config.auth.as_ref()).map_err(|e| format!("{e:#}"));
        if let Err(e) = &auth {
            tracing::error!(service, "openapi credentials: {e}; calls will fail");
        }
        let backend = OpenapiBackend {
            service: service.to_owned(),
            config: config.clone(),
            client,
            auth,
            catalog: tokio::sync::OnceCell::new(),
            failed: Mutex::new(None),
        };
        if let SpecSource::File(path) = &config.spec {
            match load_file(path, config) {
                Ok(catalog) => {
                    tracing::info!(
                        service,
                        tools = catalog.operations.len(),
                        "openapi document {} loaded",
                        path.display()
                    );
                    let _ = backend.catalog.set(Arc::new(catalog));
                }
                Err(e) => {
                    tracing::error!(service, "openapi document {}: {e}", path.display());
                    backend.remember_failure(e.to_string());
                }
            }
        }
        backend
    }

    fn remember_failure(&self, why: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *failed = Some((Instant::now(), why));
    }

    /// The catalog, loaded now if it is not yet (and the last failure is old enough).
    async fn catalog(&self) -> Result<Arc<Catalog>, String> {
        if let Some(c) = self.catalog.get() {
            return Ok(c.clone());
        }
        {
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, why)) = &*failed {
                if at.elapsed() < RETRY_LOAD {
                    return Err(why.clone());
                }
            }
        }
        let loaded = self
            .catalog
            .get_or_try_init(|| async {
                let catalog = match &self.config.spec {
                    SpecSource::File(path) => load_file(path, &self.config),
                    SpecSource::Url(url) => self.load_url(url).await,
                }?;
                tracing::info!(service = %self.service, tools = catalog.operations.len(),
                    "openapi document loaded");
                Ok::<_, OpenapiError>(Arc::new(catalog))
            })
            .await;
        match loaded {
            Ok(c) => Ok(c.clone()),
            Err(e) => {
                tracing::error!(service = %self.service, "openapi document: {e}");
                self.remember_failure(e.to_string());
                Err(e.to_string())
            }
        }
    }

    async fn load_url(&self, url: &http::Uri) -> Result<Catalog, OpenapiError> {
        let read = |e: String| OpenapiError::Read(url.to_string(), e);
        let req = http::Request::get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/json, application/yaml;q=0.9, */*;q=0.5",
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| read(e.to_string()))?;
        let fetch = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| read(error_chain(&e)))?;
            if !resp.status().is_success() {
                return Err(read(format!("HTTP {}", resp.status())));
            }
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        OpenapiError::TooLarge {
                            limit: MAX_DOCUMENT_BYTES,
                        }
                    } else {
                        read(e.to_string())
                    }
                })?;
            Ok(body.to_bytes())
        };
        let bytes = tokio::time::timeout(self.config.timeout, fetch)
            .await
            .map_err(|_| read(format!("no answer within {:?}", self.config.timeout)))??;
        let doc = spec::parse_document(&bytes)?;
        spec::catalog(&doc, &self.config.include, &self.config.exclude)
    }

    /// Serves one exchange: the JSON-RPC answer, or a 202.
    pub async fn answer(&self, head: &RequestHead, body: Bytes) -> Answer {
        let catalog = match self.catalog().await {
            Ok(c) => c,
            Err(why) => {
                let reference = underpass_shared::incident::new_ref();
                tracing::warn!(service = %self.service, trace_id = %head.trace_id, %reference,
                    "exchange refused: the OpenAPI document does not load: {why}");
                let msg = format!("the service's OpenAPI document does not load (ref {reference})");
                return Answer::error(502, code::UPSTREAM_FAILED, &msg, None);
            }
        };
        let version = header(head, "mcp-protocol-version");
        let step = server::step(&catalog, &self.service, &head.method, version, &body);
        let (status, value) = match step {
            Step::Accepted => return Answer::empty(202),
            Step::Reply(status, value) => (status, value),
            Step::Call {
                id,
                name,
                arguments,
                modern,
            } => {
                let result = match catalog.find(&name) {
                    Some(op) => self.call(head, op, arguments.as_ref()).await,
                    None => result::error(&format!("unknown tool: {name}")),
                };
                (200, server::call_answer(&id, result, modern))
            }
        };
        json_answer(status, &value)
    }

    /// One tool call: the REST request and its response as a tool result.
    async fn call(&self, head: &RequestHead, op: &Operation, arguments: Option<&Value>) -> Value {
        let base = &self.config.base_url;
        let call = match request::build(op, base.path(), base.query(), arguments) {
            Ok(c) => c,
            Err(e) => return result::error(&format!("invalid arguments for {}: {e}", op.name)),
        };
        let auth = match &self.auth {
            Ok(a) => a,
            Err(_) => return result::error("the connector has no credentials for this API"),
        };
        let req = match self.http_request(head, call, auth) {
            Ok(r) => r,
            Err(e) => return result::error(&format!("invalid arguments for {}: {e}", op.name)),
        };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let reference = underpass_shared::incident::new_ref();
                tracing::warn!(service = %self.service, trace_id = %head.trace_id, %reference,
                    "REST API {base} unreachable: {}", error_chain(&e));
                format!("the REST API could not be reached (ref {reference})")
            })?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), result::MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        format!(
                            "the REST API's response is over {} MiB",
                            result::MAX_RESPONSE_BYTES >> 20
                        )
                    } else {
                        format!("the REST API's response was cut: {e}")
                    }
                })?
                .to_bytes();
            Ok::<_, String>(result::tool_result(status, content_type.as_deref(), &body))
        };
        match tokio::time::timeout(self.config.timeout, exchange).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => result::error(&e),
            Err(_) => result::error(&format!(
                "the REST API did not answer within {} s",
                self.config.timeout.as_secs_f64()
            )),
        }
    }

    fn http_request(
        &self,
        head: &RequestHead,
        call: request::HttpCall,
        auth: &[(HeaderName, HeaderValue)],
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let base = &self.config.base_url;
        let uri = format!(
            "{}://{}{}",
            base.scheme_str().unwrap_or("http"),
            base.authority().map_or("", |a| a.as_str()),
            call.path_and_query
        );
        let mut req = http::Request::builder()
            .method(call.method.as_str())
            .uri(uri)
            .header(http::header::ACCEPT, "application/json, */*;q=0.5");
        for (name, value) in &call.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of header {name} is not valid"))?;
            req = req.header(name, value);
        }
        // Who is calling and the trace, as every backend gets them (never the client's own
        // credentials: the edge does not send them).
        if let Some(a) = head.assertion.as_deref() {
            req = req.header(ASSERTION_HEADER, a);
        }
        req = req
            .header(TRACE_HEADER, head.trace_id.as_str())
            .header(REQUEST_ID_HEADER, head.request_id.as_str());
        let body = match call.body {
            Some((content_type, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let mut req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        // Last, so that no parameter can replace them.
        for (name, value) in auth {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(req)
    }
}

/// The value of a request header (the first, trimmed), if it is text.
fn header<'h>(head: &'h RequestHead, name: &str) -> Option<&'h str> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn json_answer(status: u16, value: &Value) -> Answer {
    let body = Bytes::from(value.to_string());
    Answer {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: futures_util::stream::once(async move { Ok(body) }).boxed(),
    }
}

/// Reads and loads a document file (size checked before it is read).
pub fn load_file(path: &std::path::Path, config: &OpenapiConfig) -> Result<Catalog, OpenapiError> {
    let read = |e: std::io::Error| OpenapiError::Read(path.display().to_string(), e.to_string());
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_DOCUMENT_BYTES as u64 {
        return Err(OpenapiError::TooLarge {
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    let doc = spec::parse_document(&bytes)?;
    spec::catalog(&doc, &config.include, &config.exclude)
}

/// The credential headers of `auth`, marked sensitive (never shown by `Debug`).
pub fn auth_headers(auth: Option<&AuthConfig>) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    let Some(auth) = auth else {
        return Ok(Vec::new());
    };
    let (name, value) = match auth {
        AuthConfig::Bearer { token } => (
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.resolve()?.expose()),
        ),
        AuthConfig::Basic { username, password } => {
            let pair = format!("{username}:{}", password.resolve()?.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            (http::header::AUTHORIZATION, format!("Basic {encoded}"))
        }
        AuthConfig::Header { name, value } => (name.clone(), value.resolve()?.expose().to_owned()),
    };
    let secret = Secret::new(value);
    let mut value = HeaderValue::from_str(secret.expose())
        .map_err(|_| anyhow::anyhow!("the credential is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(vec![(name, value)])
}

/// What `--check` says of a service: the tools a file document makes, or why it does not
/// load; a URL document is only named (it is fetched when the connector runs).
pub fn check(config: &OpenapiConfig) -> anyhow::Result<String> {
    let auth = auth_headers(config.auth.as_ref()).err();
    let document = match &config.spec {
        SpecSource::File(path) => load_file(path, config)
            .map(|c| format!("{} tools from {}", c.operations.len(), path.display())),
        SpecSource::Url(url) => Ok(format!("document {url} is fetched when the connector runs")),
    };
    // Both problems at once, so one `--check` run shows all there is to fix.
    match (document, auth) {
        (Ok(what), None) => Ok(what),
        (Ok(_), Some(auth)) => Err(auth),
        (Err(doc), None) => Err(doc.into()),
        (Err(doc), Some(auth)) => Err(anyhow::anyhow!("{doc}; and {auth:#}")),
    }
}

#[cfg(test)]
mod tests;
