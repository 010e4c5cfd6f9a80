//! An MCP client over one HTTP/1.1 keep-alive connection: sessions (legacy era) and
//! `tools/call` (both eras), with the body checked.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::plan::Era;

/// The legacy era's protocol version (sessions).
pub(crate) const LEGACY: &str = "2025-11-25";
/// The modern era's protocol version (stateless).
pub(crate) const MODERN: &str = "2026-07-28";
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where requests go: an address and the request path, over TLS when `tls` is set.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) host: HeaderValue,
    /// TLS 1.3 to the server name `localhost` (the edge's client listener with a certificate).
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Send `tools/list` instead of `tools/call`, expecting this many tools on the first page
    /// (the federation phase).
    pub(crate) list: Option<usize>,
    /// Ask `blob` for a result that ends with a key (the mediation phase).
    pub(crate) secret: bool,
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, path: &str) -> Target {
        Target {
            addr,
            path: path.to_owned(),
            host: HeaderValue::from_str(&addr.to_string()).expect("host header"),
            tls: None,
            list: None,
            secret: false,
        }
    }

    /// The same target, its 1 MiB results ending with a key.
    pub(crate) fn carrying_secret(mut self) -> Target {
        self.secret = true;
        self
    }

    /// The same target, asked `tools/list` (expecting `tools` tools) instead of `tools/call`.
    pub(crate) fn listing(mut self, tools: usize) -> Target {
        self.list = Some(tools);
        self
    }

    /// The same target over TLS, trusting the CA in `ca` (PEM), HTTP/1.1 by ALPN.
    pub(crate) fn with_tls(mut self, ca: &Path) -> Target {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(Arc::new(config));
        self
    }

    /// The URL wrk is given for this target.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, self.path)
    }
}

pub(crate) type Sender = SendRequest<Full<Bytes>>;

pub(crate) async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A connection to `t`: plain TCP, or TLS when the target says so.
pub(crate) async fn connect_to(t: &Target) -> Result<Sender, String> {
    let Some(config) = &t.tls else {
        return connect(t.addr).await;
    };
    let s = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", t.addr))?;
    let _ = s.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let s = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, s)
        .await
        .map_err(|e| format!("TLS handshake with {}: {e}", t.addr))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) session: Option<String>,
    pub(crate) len: usize,
    pub(crate) body: Option<Vec<u8>>,
}

/// Sends one request and reads the whole response; keeps the body only when `keep` is set.
pub(crate) async fn send(
    sender: &mut Sender,
    t: &Target,
    method: Method,
    headers: &[(&'static str, HeaderValue)],
    body: Bytes,
    keep: bool,
) -> Result<Reply, String> {
    let fut = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("not ready: {e}"))?;
        let mut req = Request::builder()
            .method(method)
            .uri(t.path.as_str())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        h.insert(http::header::HOST, t.host.clone());
        for (n, v) in headers {
            h.insert(HeaderName::from_static(n), v.clone());
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = resp.into_body();
        let mut len = 0;
        let mut kept = keep.then(Vec::new);
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| format!("body: {e}"))?;
            if let Some(d) = f.data_ref() {
                len += d.len();
                if let Some(k) = &mut kept {
                    k.extend_from_slice(d);
                }
            }
        }
        Ok(Reply {
            status,
            session,
            len,
            body: kept,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

pub(crate) fn base_headers() -> Vec<(&'static str, HeaderValue)> {
    vec![
        ("content-type", HeaderValue::from_static("application/json")),
        (
            "accept",
            HeaderValue::from_static("application/json, text/event-stream"),
        ),
    ]
}

/// A legacy session: initialize, then notifications/initialized. Returns its id.
pub(crate) async fn open_session(sender: &mut Sender, t: &Target) -> Result<String, String> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "underpass-bench", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let r = send(
        sender,
        t,
        Method::POST,
        &base_headers(),
        Bytes::from(init.to_string()),
        false,
    )
    .await?;
    if r.status != StatusCode::OK {
        return Err(format!("initialize: HTTP {}", r.status));
    }
    let sid = r.session.ok_or("initialize: no Mcp-Session-Id")?;
    let mut h = base_headers();
    h.push(("mcp-session-id", hv(&sid)));
    h.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = send(
        sender,
        t,
        Method::POST,
        &h,
        Bytes::from_static(note.as_bytes()),
        false,
    )
    .await?;
    if r.status != StatusCode::ACCEPTED {
        return Err(format!("notifications/initialized: HTTP {}", r.status));
    }
    Ok(sid)
}

/// What one worker sends on its connection.
pub(crate) struct Caller {
    pub(crate) era: Era,
    pub(crate) payload: usize,
    pub(crate) headers: Vec<(&'static str, HeaderValue)>,
    pub(crate) session: Option<String>,
    pub(crate) message: String,
    pub(crate) next_id: u64,
    /// `tools/list` expecting this many tools (see [`Target::list`]).
    pub(crate) list: Option<usize>,
    /// See [`Target::secret`].
    pub(crate) secret: bool,
}

impl Caller {
    pub(crate) async fn new(
        sender: &mut Sender,
        t: &Target,
        era: Era,
        payload: usize,
    ) -> Result<Caller, String> {
        let mut headers = base_headers();
        let mut session = None;
        match era {
            Era::Legacy => {
                let sid = open_session(sender, t).await?;
                headers.push(("mcp-session-id", hv(&sid)));
                headers.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
                session = Some(sid);
            }
            Era::Modern => {
                headers.push(("mcp-protocol-version", HeaderValue::from_static(MODERN)));
                if t.list.is_some() {
                    headers.push(("mcp-method", HeaderValue::from_static("tools/list")));
                } else {
                    headers.push(("mcp-method", HeaderValue::from_static("tools/call")));
                    headers.push((
                        "mcp-name",
                        HeaderValue::from_static(if payload <= 4096 { "echo" } else { "blob" }),
                    ));
                }
            }
        }
        Ok(Caller {
            era,
            payload,
            headers,
            session,
            message: "m".repeat(payload.min(4096)),
            next_id: 1,
            list: t.list,
            secret: t.secret,
        })
    }

    pub(crate) fn body(&mut self) -> Bytes {
        let id = self.next_id;
        self.next_id += 1;
        let meta = match self.era {
            Era::Legacy => String::new(),
            Era::Modern => format!(
                r#","_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientInfo":{{"name":"underpass-bench","version":"{}"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}"#,
                env!("CARGO_PKG_VERSION")
            ),
        };
        if self.list.is_some() {
            let params = meta.strip_prefix(',').unwrap_or_default();
            return Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{{params}}}}}"#
            ));
        }
        let call = if self.payload <= 4096 {
            format!(
                r#""name":"echo","arguments":{{"message":"{}"}}"#,
                self.message
            )
        } else {
            format!(
                r#""name":"blob","arguments":{{"size":{},"secret":{}}}"#,
                self.payload, self.secret
            )
        };
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{call}{meta}}}}}"#
        ))
    }

    /// One tools/call; checks status and size, and with `verify` the JSON result itself.
    pub(crate) async fn call(
        &mut self,
        sender: &mut Sender,
        t: &Target,
        verify: bool,
    ) -> Result<usize, String> {
        let body = self.body();
        let r = send(sender, t, Method::POST, &self.headers, body, verify).await?;
        if let Some(tools) = self.list {
            return listed(&r, tools);
        }
        if r.status != StatusCode::OK {
            return Err(format!("tools/call: HTTP {}", r.status));
        }
        if r.len < self.payload {
            return Err(format!(
                "tools/call: {} bytes, expected > {}",
                r.len, self.payload
            ));
        }
        if let Some(b) = r.body {
            let v: Value = serde_json::from_slice(&b).map_err(|e| format!("bad JSON: {e}"))?;
            let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
            // A result ending with a key is longer by it, or by its redaction.
            let sized = if self.secret {
                text.len() > self.payload
            } else {
                text.len() == self.payload
            };
            if !sized {
                return Err(format!("tools/call result: {v:.200}"));
            }
        }
        Ok(r.len)
    }

    pub(crate) async fn close(&self, sender: &mut Sender, t: &Target) {
        if let Some(sid) = &self.session {
            let mut h = base_headers();
            h.push(("mcp-session-id", hv(sid)));
            h.push(("mcp-protocol-version", HeaderValue::from_static(LEGACY)));
            let _ = send(sender, t, Method::DELETE, &h, Bytes::new(), false).await;
        }
    }
}

/// Checks a `tools/list` answer: 200, and (when its body was kept) `tools` tools on the page.
fn listed(r: &Reply, tools: usize) -> Result<usize, String> {
    if r.status != StatusCode::OK {
        return Err(format!("tools/list: HTTP {}", r.status));
    }
    if let Some(b) = &r.body {
        let v: Value = serde_json::from_slice(b).map_err(|e| format!("bad JSON: {e}"))?;
        let n = v["result"]["tools"].as_array().map_or(0, Vec::len);
        if n != tools {
            return Err(format!("tools/list: {n} tools, expected {tools}: {v:.200}"));
        }
    }
    Ok(r.len)
}
