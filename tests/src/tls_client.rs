//! A blocking HTTPS client for the edge's client listener (TLS 1.3, HTTP/1.1, one request per
//! connection), with or without a client certificate, that tells a refused handshake apart
//! from an HTTP answer: what certificate attacks need to assert on (the MCP SDK clients only
//! say that something failed). Loopback by default ([`TlsClient::at`] another address); the
//! server name is `localhost`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::http::{self, Reply};

/// How long a read or a write may wait before the attempt counts as hung.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no HTTP answer came back.
#[derive(Debug)]
pub struct Refusal {
    /// The TLS alert the server sent, if one was read.
    pub alert: Option<AlertDescription>,
    /// The error as the client saw it.
    pub error: String,
}

/// A TLS client trusting one CA, presenting `cert` if given.
pub struct TlsClient {
    config: Arc<ClientConfig>,
    host: IpAddr,
}

impl TlsClient {
    /// Trusts the CA in `ca`; presents the certificate and key in `cert` (PEM files) if given.
    pub fn new(ca: &Path, cert: Option<(&Path, &Path)>) -> TlsClient {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3")
                .with_root_certificates(roots);
        let mut config = match cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .expect("read certificate file")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("certificate PEM");
                let key = PrivateKeyDer::from_pem_file(key).expect("read key file");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client certificate and key")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsClient {
            config: Arc::new(config),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Connects to `host` instead of 127.0.0.1 (the server name stays `localhost`).
    pub fn at(mut self, host: IpAddr) -> TlsClient {
        self.host = host;
        self
    }

    /// Opens a connection to `127.0.0.1:port` (or [`TlsClient::at`]'s address; server name
    /// `localhost`). The handshake happens with the first request.
    pub fn connect(&self, port: u16) -> Result<Session, Refusal> {
        let tcp = TcpStream::connect((self.host, port)).map_err(refusal)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(refusal)?;
        tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(refusal)?;
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = ClientConnection::new(self.config.clone(), name).map_err(|e| Refusal {
            alert: None,
            error: e.to_string(),
        })?;
        Ok(Session {
            tls: StreamOwned::new(conn, tcp),
            port,
            buf: Vec::new(),
        })
    }

    /// Completes a handshake with `127.0.0.1:port` and returns the serial (lowercase hex) of
    /// the certificate the server presented.
    pub fn server_serial(&self, port: u16) -> Result<String, Refusal> {
        let mut session = self.connect(port)?;
        while session.tls.conn.is_handshaking() {
            session
                .tls
                .conn
                .complete_io(&mut session.tls.sock)
                .map_err(refusal)?;
        }
        let leaf = session
            .tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| Refusal {
                alert: None,
                error: "no server certificate".into(),
            })?;
        underpass_pki::revocation::certificate_serial(leaf.as_ref()).map_err(|e| Refusal {
            alert: None,
            error: e.to_string(),
        })
    }

    /// POSTs `body` to `path` with `headers` on a connection of its own
    /// (`Connection: close`), and reads the whole answer. `Err` when no HTTP answer came:
    /// the handshake was refused, or the connection ended without one.
    pub fn post(
        &self,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        self.request(port, "POST", path, headers, body)
    }

    /// [`TlsClient::post`] with any method.
    pub fn request(
        &self,
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let mut session = self.connect(port)?;
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        session.send(method, path, &all, body)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match session.tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A server that closes without close_notify after a whole answer.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
                Err(e) => return Err(refusal(e)),
            }
        }
        if raw.is_empty() {
            return Err(Refusal {
                alert: None,
                error: "the connection ended without an answer".into(),
            });
        }
        http::parse(&raw).map_err(refusal)
    }

    /// A JSON-RPC POST (as [`TlsClient::post`]) with the headers every MCP Streamable HTTP
    /// client sends.
    pub fn mcp_post(
        &self,
        port: u16,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, Refusal> {
        self.post(port, path, &MCP_HEADERS, body.to_string().as_bytes())
    }
}

const MCP_HEADERS: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
];

/// One kept-alive connection: several requests, one after the other.
pub struct Session {
    tls: StreamOwned<ClientConnection, TcpStream>,
    port: u16,
    /// Bytes read past the previous answer.
    buf: Vec<u8>,
}

impl Session {
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Refusal> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // The first write completes the handshake (TLS 1.3: the client's side of it; a server
        // that refuses the client's certificate says so with an alert read afterwards). A
        // write can fail once the server has refused and closed: the alert may still be
        // there to read.
        let written = self
            .tls
            .write_all(head.as_bytes())
            .and_then(|()| self.tls.write_all(body))
            .and_then(|()| self.tls.flush());
        if let Err(e) = written {
            return Err(match self.alert_after_write_failed() {
                Some(alert) => Refusal {
                    alert: Some(alert),
                    error: format!("{e}, after the alert {alert:?}"),
                },
                None => refusal(e),
            });
        }
        Ok(())
    }

    /// The alert the server sent before it closed, read straight off the socket: reading
    /// through the stream would first try to write what is still buffered, and fail again.
    fn alert_after_write_failed(&mut self) -> Option<AlertDescription> {
        for _ in 0..16 {
            match self.tls.conn.read_tls(&mut self.tls.sock) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            match self.tls.conn.process_new_packets() {
                Err(rustls::Error::AlertReceived(alert)) => return Some(alert),
                Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    }

    /// A JSON-RPC POST on this connection (kept alive); reads one answer (`Content-Length`
    /// or chunked).
    pub fn mcp_post(&mut self, path: &str, body: &serde_json::Value) -> Result<Reply, Refusal> {
        self.send("POST", path, &MCP_HEADERS, body.to_string().as_bytes())?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(len) = answer_len(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..len).collect();
                return http::parse(&raw).map_err(refusal);
            }
            match self.tls.read(&mut chunk) {
                Ok(0) => {
                    return Err(Refusal {
                        alert: None,
                        error: "the connection ended before a whole answer".into(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(refusal(e)),
            }
        }
    }
}

/// The length of the first whole HTTP/1.1 answer in `buf`, once it is all there.
fn answer_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut at = head_end;
        loop {
            let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2 + size + 2;
            if buf.len() < at {
                return None;
            }
            if size == 0 {
                return Some(at);
            }
        }
    }
    let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
    (buf.len() >= head_end + len).then_some(head_end + len)
}

fn refusal(e: std::io::Error) -> Refusal {
    Refusal {
        alert: alert_of(&e),
        error: e.to_string(),
    }
}

/// The TLS alert behind an I/O error of a rustls stream, if that is what it is.
fn alert_of(e: &std::io::Error) -> Option<AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}
