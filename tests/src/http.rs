//! A minimal blocking HTTP/1.1 client over plain TCP for assertions on exact status codes,
//! headers and bodies (the real MCP clients hide those). Loopback only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(url: &str) -> std::io::Result<Reply> {
    request("GET", url, &[], b"")
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// Sends `head` (a request line and headers, exactly as given, ending in a blank line) and
/// `body` to `addr`, and reads the whole response: for requests a client library would not
/// send.
pub fn raw(addr: &str, head: &str, body: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A JSON-RPC POST with the headers every MCP Streamable HTTP client sends.
pub fn mcp_post(
    url: &str,
    extra: &[(&str, &str)],
    body: &serde_json::Value,
) -> std::io::Result<Reply> {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    headers.extend_from_slice(extra);
    request("POST", url, &headers, body.to_string().as_bytes())
}

/// The JSON-RPC messages in an SSE or JSON response body.
pub fn messages(reply: &Reply) -> Vec<serde_json::Value> {
    let text = reply.text();
    if reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    }
}

/// One HTTP/2 request over cleartext TCP (prior knowledge, as an `insecure_plaintext` edge
/// accepts it). `url` is absolute; its authority becomes `:authority` unless `authority`
/// overrides it; `headers` may add a `Host` header of their own. Loopback only.
pub fn h2_request(
    method: &str,
    url: &str,
    authority: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    use http_body_util::{BodyExt, Full};
    let uri: http::Uri = url.parse().map_err(std::io::Error::other)?;
    let addr = uri
        .authority()
        .ok_or_else(|| std::io::Error::other("absolute URL needed"))?
        .to_string();
    let target = match authority {
        Some(a) => format!(
            "http://{a}{}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
        None => url.to_owned(),
    };
    let mut req = http::Request::builder().method(method).uri(target);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .map_err(std::io::Error::other)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let resp = tokio::time::timeout(Duration::from_secs(60), send.send_request(req))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        })
    })
}

/// A long-lived event stream (`text/event-stream` over HTTP/1.1, chunked), read message by
/// message as the server sends them.
pub struct EventStream {
    pub status: u16,
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    pending: Vec<u8>,
    /// Decoded body not yet split into events.
    body: Vec<u8>,
}

impl EventStream {
    /// Sends a request and reads its head; the body is read by [`EventStream::next_message`].
    pub fn open(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<EventStream> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(authority)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes())?;
        stream.write_all(body)?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut pending = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if std::time::Instant::now() > deadline {
                return Err(std::io::Error::other("no response head in 30 s"));
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => return Err(std::io::Error::other("closed before the head")),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        pending.drain(..end + 4);
        Ok(EventStream {
            status,
            stream,
            pending,
            body: Vec::new(),
        })
    }

    /// The next JSON-RPC message of the stream (comments and non-JSON events are passed
    /// over), waiting at most `wait`; `None` when none came in time or the stream ended.
    pub fn next_message(&mut self, wait: Duration) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            self.decode_chunks();
            while let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.body.drain(..i + 2).collect();
                let data: String = String::from_utf8_lossy(&event)
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if let Ok(msg) = serde_json::from_str(&data) {
                    return Some(msg);
                }
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until the server ends the stream (at most `wait`); returns how many bytes came
    /// after the head, framing included.
    pub fn read_to_end(mut self, wait: Duration) -> usize {
        let deadline = std::time::Instant::now() + wait;
        let mut got = self.pending.len() + self.body.len();
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
        got
    }

    /// Moves the complete chunks of `pending` into `body`.
    fn decode_chunks(&mut self) {
        while let Some(line) = self.pending.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.pending[..line])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
            let Some(size) = size else {
                // Not chunked: the bytes are the body.
                self.body.append(&mut self.pending);
                return;
            };
            if self.pending.len() < line + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.pending[line + 2..line + 2 + size]);
            self.pending.drain(..line + 2 + size + 2);
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
