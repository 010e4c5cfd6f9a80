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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;
use underpass_mcp::{SseParser, DEFAULT_MAX_EVENT_SIZE};

use crate::bridge::{one_line, BridgeError, End, Inbox, Link, LinkOpener, SessionBridge, WriteCmd};
use crate::http_client::{error_chain, HttpClient};

/// How long connecting and receiving the response head of the GET may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to send its `endpoint` event.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one POST of a message may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest POST answer body read (it is normally `Accepted`).
const POST_BODY_MAX: usize = 64 * 1024;

/// One configured legacy HTTP+SSE service and the backend connections of its sessions:
/// `max_processes` caps the open connections (`max_processes_per_principal` those of one
/// principal).
pub type SseBackend = SessionBridge<SseOpener>;

/// Why a backend connection could not be used; becomes the session's end reason.
#[derive(Debug, thiserror::Error)]
pub enum SseLinkError {
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

/// Opens one connection to the SSE server per session. Only `http` URLs are supported.
pub struct SseOpener {
    url: Uri,
    client: HttpClient,
}

impl SseOpener {
    /// Nothing is connected here (no runtime needed). `client` is the connector's shared pool
    /// ([`crate::http_client::http_client`]).
    pub fn new(url: Uri, client: HttpClient) -> Self {
        SseOpener { url, client }
    }
}

impl LinkOpener for SseOpener {
    type Link = SseLink;
    const LABEL: &'static str = "SSE";

    fn open(&self, writes: mpsc::Receiver<WriteCmd>, inbox: Inbox) -> Result<SseLink, BridgeError> {
        let run = run_link(self.url.clone(), self.client.clone(), writes, inbox.clone());
        Ok(SseLink {
            run: Some(Box::pin(async move {
                match run.await {
                    Ok(never) => match never {},
                    Err(e) => e,
                }
            })),
            inbox,
            end: None,
        })
    }
}

/// One session's connection: it runs inside the future `run` (dropped to close it).
pub struct SseLink {
    run: Option<Pin<Box<dyn Future<Output = SseLinkError> + Send>>>,
    inbox: Inbox,
    end: Option<End<SseLinkError>>,
}

impl Link for SseLink {
    type Ended = SseLinkError;

    async fn ended(&mut self) -> SseLinkError {
        match self.run.as_mut() {
            Some(run) => run.await,
            None => std::future::pending().await,
        }
    }

    async fn close(&mut self, end: End<SseLinkError>) {
        self.run = None;
        self.end = Some(end);
    }

    async fn report(self) -> String {
        let (service, session) = (self.inbox.service(), self.inbox.session());
        match self.end {
            // A lost link's reason names the backend (its URL, the error): it goes to the log,
            // and clients get a reference to it.
            Some(End::Ended(e)) => {
                let reference = underpass_shared::incident::new_ref();
                tracing::warn!(%service, %session, %reference, "MCP server connection lost: the server {e}");
                format!("lost its connection (ref {reference})")
            }
            Some(End::Stopped(stop)) => {
                let reason = stop.reason();
                tracing::info!(%service, %session, "MCP server session ended: {reason}");
                reason
            }
            None => crate::bridge::Stop::Dropped.reason(),
        }
    }
}

/// Connects, waits for the endpoint, then reads the stream and POSTs messages concurrently
/// until the stream ends.
async fn run_link(
    url: Uri,
    client: HttpClient,
    writes: mpsc::Receiver<WriteCmd>,
    inbox: Inbox,
) -> Result<std::convert::Infallible, SseLinkError> {
    let request = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::new()))
        .map_err(|e| SseLinkError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let response = timeout(CONNECT_TIMEOUT, client.request(request))
        .await
        .map_err(|_| SseLinkError::Connect {
            url: url.to_string(),
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| SseLinkError::Connect {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
    if !response.status().is_success() {
        return Err(SseLinkError::Status {
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
    .map_err(|_| SseLinkError::NoEndpoint(ENDPOINT_TIMEOUT.as_secs()))??;
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
    async fn next(&mut self) -> Result<(String, String), SseLinkError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(event);
            }
            let frame = match self.body.frame().await {
                None => return Err(SseLinkError::Closed),
                Some(Err(e)) => return Err(SseLinkError::Read(error_chain(&e))),
                Some(Ok(frame)) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let events = self
                .parser
                .feed(&chunk)
                .map_err(|e| SseLinkError::Sse(e.to_string()))?;
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
    let v = underpass_mcp::jsonrpc::error(
        Some(id),
        underpass_mcp::jsonrpc::code::UPSTREAM_FAILED,
        &format!("the SSE MCP server did not accept the message (ref {reference})"),
        None,
    );
    Some(v.to_string().into_bytes())
}

/// Resolves the `endpoint` event's data against the SSE URL. Only the same origin is
/// accepted, so a backend cannot make the connector post elsewhere.
fn resolve_endpoint(base: &Uri, data: &str) -> Result<Uri, SseLinkError> {
    let bad = || SseLinkError::BadEndpoint(data.to_owned());
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

#[cfg(test)]
mod tests;
