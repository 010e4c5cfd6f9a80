//! Legacy HTTP+SSE backends (MCP 2024-11-05): a server whose endpoint is `GET <url>`, an SSE
//! stream that first names (`event: endpoint`) the URL to POST messages to and then carries
//! every server message as `event: message`; each POSTed message is answered 202 and its
//! reply arrives on that stream.
//!
//! Such a connection is bridged to Streamable HTTP exactly like a stdio process is (see
//! [`crate::bridge`]): one backend SSE connection per client session, opened by `initialize`
//! and named by a fresh `Mcp-Session-Id`; messages from the server are routed to the POST
//! exchange they belong to (response by id, progress by progressToken, other server messages
//! to the oldest pending request) or to the GET stream; DELETE closes the connection; a lost
//! connection ends the session and answers its pending requests with a JSON-RPC error. Only
//! the transport differs, so this module supplies just that: a [`LinkOpener`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout;
use underpass_shared::mcp::{SseParser, DEFAULT_MAX_EVENT_SIZE};

use crate::backends::{error_chain, HttpClient};
use crate::bridge::{Inbox, LinkOpener, StdioLimits, StdioResponse, StdioService, WriteCmd};

/// How long connecting and receiving the response head of the GET may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to send its `endpoint` event.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one POST of a message may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest POST answer body read (it is normally `Accepted`).
const POST_BODY_MAX: usize = 64 * 1024;

/// Why a backend connection could not be used; becomes the session's end reason.
#[derive(Debug, thiserror::Error)]
pub enum SseBackendError {
    #[error("could not be reached at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("answered GET {url} with HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("sent an event stream that is not valid SSE: {0}")]
    Sse(String),
    #[error("closed its event stream")]
    Closed,
    #[error("did not announce its message endpoint within {0} s")]
    NoEndpoint(u64),
    #[error("announced a message endpoint that is unusable: {0:?}")]
    BadEndpoint(String),
    #[error("failed reading its event stream: {0}")]
    Read(String),
}

/// One configured legacy HTTP+SSE service and the backend connections of its sessions.
pub struct SseBackendService {
    inner: StdioService,
}

impl SseBackendService {
    /// Nothing is connected here (no runtime needed): one connection is opened per session.
    /// `limits.max_processes` caps the open connections (`max_processes_per_principal` those of
    /// one principal). Only `http` URLs are supported.
    /// `client` is the connector's shared pool ([`crate::backends::http_client`]).
    pub fn new(service: &str, url: Uri, client: HttpClient, limits: StdioLimits) -> Self {
        let opener = Arc::new(Opener { url, client });
        SseBackendService {
            inner: StdioService::with_link(service, opener, limits),
        }
    }

    /// Serves one HTTP exchange with Streamable HTTP semantics (legacy era) for `principal`
    /// (see [`StdioService::exchange`]).
    pub async fn exchange(
        &self,
        principal: &str,
        method: &str,
        headers: &[(String, Vec<u8>)],
        body: Bytes,
    ) -> StdioResponse {
        self.inner.exchange(principal, method, headers, body).await
    }

    /// Closes every backend connection and refuses new sessions.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// Backend connections currently open (for metrics and tests).
    pub fn connection_count(&self) -> usize {
        self.inner.process_count()
    }
}

struct Opener {
    url: Uri,
    client: HttpClient,
}

impl LinkOpener for Opener {
    fn run(&self, writes: mpsc::Receiver<WriteCmd>, inbox: Inbox) -> BoxFuture<'static, String> {
        let url = self.url.clone();
        let client = self.client.clone();
        Box::pin(async move {
            match run_link(url, client, writes, inbox).await {
                Ok(never) => match never {},
                Err(e) => e.to_string(),
            }
        })
    }
}

/// Connects, waits for the endpoint, then reads the stream and POSTs messages concurrently
/// until the stream ends.
async fn run_link(
    url: Uri,
    client: HttpClient,
    writes: mpsc::Receiver<WriteCmd>,
    inbox: Inbox,
) -> Result<std::convert::Infallible, SseBackendError> {
    let request = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::new()))
        .map_err(|e| SseBackendError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let response = timeout(CONNECT_TIMEOUT, client.request(request))
        .await
        .map_err(|_| SseBackendError::Connect {
            url: url.to_string(),
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| SseBackendError::Connect {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    if !response.status().is_success() {
        return Err(SseBackendError::Status {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    let mut stream = EventStream {
        body: response.into_body(),
        parser: SseParser::new(DEFAULT_MAX_EVENT_SIZE),
        queue: Default::default(),
    };
    let endpoint = timeout(ENDPOINT_TIMEOUT, async {
        loop {
            let (kind, data) = stream.next().await?;
            if kind == "endpoint" {
                return resolve_endpoint(&url, data.trim());
            }
            tracing::debug!(service = %inbox.service(), session = %inbox.session(),
                "event {kind:?} before the endpoint event, skipped");
        }
    })
    .await
    .map_err(|_| SseBackendError::NoEndpoint(ENDPOINT_TIMEOUT.as_secs()))??;
    tracing::debug!(service = %inbox.service(), session = %inbox.session(), %endpoint, "SSE backend connected");
    let reader = async {
        loop {
            let (kind, data) = stream.next().await?;
            if kind != "message" {
                tracing::debug!(service = %inbox.service(), session = %inbox.session(),
                    "event {kind:?} from the SSE backend, skipped");
                continue;
            }
            inbox.dispatch(&one_line(data.as_bytes())).await;
        }
    };
    let writer = post_messages(&client, &endpoint, writes, &inbox);
    tokio::select! {
        r = reader => r,
        never = writer => match never {},
    }
}

/// The backend's event stream, event by event.
struct EventStream {
    body: hyper::body::Incoming,
    parser: SseParser,
    queue: std::collections::VecDeque<(String, String)>,
}

impl EventStream {
    /// The next event that has data: its type (`message` by default) and data.
    async fn next(&mut self) -> Result<(String, String), SseBackendError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(event);
            }
            let frame = match self.body.frame().await {
                None => return Err(SseBackendError::Closed),
                Some(Err(e)) => return Err(SseBackendError::Read(error_chain(&e))),
                Some(Ok(frame)) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let events = self
                .parser
                .feed(&chunk)
                .map_err(|e| SseBackendError::Sse(e.to_string()))?;
            for ev in events {
                if let Some(data) = ev.data() {
                    let kind = ev.event().unwrap_or("message").to_owned();
                    self.queue.push_back((kind, data.to_owned()));
                }
            }
        }
    }
}

/// POSTs each message in order; runs until the session is gone (then stays pending so the
/// reader decides how the link ends).
async fn post_messages(
    client: &HttpClient,
    endpoint: &Uri,
    mut writes: mpsc::Receiver<WriteCmd>,
    inbox: &Inbox,
) -> std::convert::Infallible {
    while let Some(cmd) = writes.recv().await {
        let WriteCmd::Line(line, ack) = cmd else {
            continue;
        };
        let line = Bytes::copy_from_slice(line.trim_ascii());
        match post(client, endpoint, line.clone()).await {
            Ok(()) => {}
            Err(reason) => {
                let reference = underpass_shared::incident::new_ref();
                tracing::warn!(service = %inbox.service(), session = %inbox.session(), %reference,
                    "posting a message to the SSE backend failed: {reason}");
                // A request would never be answered: answer it with an error here (the reason
                // stays in the log: it may name the backend).
                if let Some(error) = error_for_request(&line, &reference) {
                    inbox.dispatch(&error).await;
                }
            }
        }
        let _ = ack.send(Ok::<(), io::Error>(()));
    }
    std::future::pending().await
}

async fn post(client: &HttpClient, endpoint: &Uri, line: Bytes) -> Result<(), String> {
    let request = http::Request::post(endpoint.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(line))
        .map_err(|e| e.to_string())?;
    let result = timeout(POST_TIMEOUT, async {
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        // Read the (small) answer so the connection can be reused.
        let _ = Limited::new(response.into_body(), POST_BODY_MAX)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP status {}", status.as_u16()))
        }
    })
    .await;
    result.unwrap_or_else(|_| Err(format!("no answer within {} s", POST_TIMEOUT.as_secs())))
}

/// A JSON-RPC error response for `line` if it is a request, else `None`; `reference` points
/// at the log line with the details.
fn error_for_request(line: &[u8], reference: &str) -> Option<Vec<u8>> {
    let msg: Value = serde_json::from_slice(line).ok()?;
    msg.get("method")?;
    let id = msg
        .get("id")
        .filter(|id| id.is_string() || id.is_number())?;
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": underpass_shared::jsonrpc::code::UPSTREAM_FAILED,
        "message": format!("the SSE MCP server did not accept the message (ref {reference})")}});
    Some(v.to_string().into_bytes())
}

/// Resolves the `endpoint` event's data against the SSE URL. Only the same origin is
/// accepted, so a backend cannot make the connector post elsewhere.
fn resolve_endpoint(base: &Uri, data: &str) -> Result<Uri, SseBackendError> {
    let bad = || SseBackendError::BadEndpoint(data.to_owned());
    let (Some(scheme), Some(authority)) = (base.scheme(), base.authority()) else {
        return Err(bad());
    };
    if data.is_empty() || data.chars().any(|c| c.is_ascii_whitespace()) {
        return Err(bad());
    }
    if data.contains("://") || data.starts_with("//") {
        let uri: Uri = data.parse().map_err(|_| bad())?;
        if uri.scheme() != Some(scheme) || uri.authority() != Some(authority) {
            return Err(bad());
        }
        return Ok(uri);
    }
    let path_and_query = if data.starts_with('/') {
        data.to_owned()
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{data}")
    };
    Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| bad())
}

/// SSE data as one line: in valid JSON a CR or LF can only be whitespace between tokens.
fn one_line(data: &[u8]) -> Vec<u8> {
    data.trim_ascii()
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_on_the_same_origin_only() {
        let base: Uri = "http://127.0.0.1:9/sse".parse().unwrap();
        let r = |d: &str| resolve_endpoint(&base, d).map(|u| u.to_string());
        assert_eq!(
            r("/message?sessionId=a").unwrap(),
            "http://127.0.0.1:9/message?sessionId=a"
        );
        assert_eq!(r("messages/x").unwrap(), "http://127.0.0.1:9/messages/x");
        assert_eq!(
            r("http://127.0.0.1:9/m?x=1").unwrap(),
            "http://127.0.0.1:9/m?x=1"
        );
        assert!(r("http://evil:9/m").is_err());
        assert!(r("//evil/m").is_err());
        assert!(r("").is_err());
        let nested: Uri = "http://h/a/b/sse".parse().unwrap();
        assert_eq!(
            resolve_endpoint(&nested, "msg").unwrap().to_string(),
            "http://h/a/b/msg"
        );
    }

    #[test]
    fn failed_requests_get_an_error_response() {
        let e = error_for_request(br#"{"jsonrpc":"2.0","id":3,"method":"x"}"#, "boom").unwrap();
        let v: Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["id"], 3);
        assert!(error_for_request(br#"{"jsonrpc":"2.0","method":"n"}"#, "boom").is_none());
    }
}
