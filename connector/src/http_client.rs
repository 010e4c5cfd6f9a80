//! The connector's HTTP client to backends: one connection pool, shared by every Streamable
//! HTTP and legacy SSE backend.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The connector's HTTP client to backends (a connection pool; cheap to clone).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long an unused backend connection stays pooled.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn http_client() -> HttpClient {
    pooled_client(POOL_IDLE_TIMEOUT)
}

fn pooled_client(idle_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    // Without a timer the pool never reaps: an idle connection would be closed only when a
    // later request happened to check it out, so a burst's connections stayed open for good.
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .build(connector)
}

/// Why a [`get_once`] got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// No TCP connection (nothing listens, no route, no such host).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Connected, but what answered is not HTTP/1.x (or it closed without answering).
    #[error("no HTTP answer: {0}")]
    NotHttp(String),
}

/// A TCP connection to the host and port of `url` (plain http: port 80 by default).
pub async fn connect(url: &http::Uri) -> Result<tokio::net::TcpStream, GetError> {
    let authority = url
        .authority()
        .ok_or_else(|| GetError::Connect("no host in the url".into()))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    tokio::net::TcpStream::connect((host, authority.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| GetError::Connect(e.to_string()))
}

/// One GET of `url` (plain http) on a connection of its own, for the doctor and the health
/// probe, never the request path: the answer's head, its body left to read or drop (an event
/// stream may never end; dropping it closes the connection).
pub async fn get_once(
    url: &http::Uri,
    accept: &str,
    user_agent: &str,
) -> Result<http::Response<hyper::body::Incoming>, GetError> {
    let stream = connect(url).await?;
    let authority = url.authority().map_or("", |a| a.as_str());
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| GetError::NotHttp(error_chain(&e)))?;
    tokio::spawn(conn);
    let request = http::Request::get(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, accept)
        .header(http::header::USER_AGENT, user_agent)
        .body(Full::new(Bytes::new()))
        .map_err(|e| GetError::NotHttp(e.to_string()))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| GetError::NotHttp(error_chain(&e)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend connection left idle is closed once the idle timeout has passed, with no
    /// further request to notice it.
    #[tokio::test]
    async fn idle_backend_connections_are_closed_after_the_idle_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed before sending its request");
                seen.extend_from_slice(&buf[..n]);
            }
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // The connection is now idle in the client's pool: wait for the client to close it.
            sock.read(&mut buf).await.unwrap()
        });
        let client = pooled_client(Duration::from_millis(200));
        let req = http::Request::get(format!("http://{addr}/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(
            http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap(),
        );
        let closed = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the idle connection is still open 10 s after a 200 ms idle timeout")
            .unwrap();
        assert_eq!(closed, 0, "the client sent more instead of closing");
    }
}
