//! `underpass-quic-relay`: a do-nothing tunnel over the tunnel's own QUIC, the reference path
//! of `underpass-bench --peers` that says what QUIC alone costs on this machine.
//!
//! Two processes, as Underpass: the `entry` (edge side) is the QUIC server and listens on TCP;
//! the `exit` (connector side) dials it and connects to the backends. Each TCP connection
//! accepted by the entry becomes one bidirectional stream (its first byte: which `--listen`
//! it came in on), which the exit joins to a new TCP connection to the matching `--to`; bytes
//! are copied both ways until either side ends. The TLS and QUIC settings are the tunnel's
//! (`underpass_transport::tls`, mutual TLS 1.3 with the edge and connector certificates,
//! `underpass_transport::quic`), so it costs what Underpass's transport costs and nothing
//! else: no HTTP, no stream per request, no policy. Like rathole (one stream per client
//! connection, not per request), it is a floor no per-request tunnel goes below.
//!
//! With `--per-request` on both sides it is Underpass's architecture with nothing of the
//! gateway on top: the entry serves HTTP/1.1 with hyper, and sends each request down a stream
//! of its own as an `underpass/1` request head frame and its body; the exit forwards it with
//! hyper-util's pooled client (as the connector does) and sends the response head frame and
//! body back. No authentication, policy, inspection, audit, metrics or tracing: what remains
//! is the cost of the crates and the exchange model, the floor of the gateway itself.
//!
//! One current-thread tokio runtime per process (as the edge and connector run by default).
//! Loopback only. Errors cost only their connection; they are logged.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use underpass_proto::identity::{Role, DEFAULT_TRUST_DOMAIN};
use underpass_transport::tls::{self, Credentials, PeerPolicy};

#[derive(Debug, Parser)]
#[command(
    name = "underpass-quic-relay",
    version,
    about = "Byte-copying tunnel over the tunnel's QUIC (reference path for benchmarks)"
)]
struct Args {
    #[command(subcommand)]
    side: Side,
    /// This side's certificate (PEM).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// This side's key (PEM).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// The CA bundle the other side's certificate must chain to.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// HTTP on both ends and a stream per request (give it to both sides). The exit sends
    /// every request to path `/mcp` of its backend.
    #[arg(long, global = true)]
    per_request: bool,
    /// With `--per-request`, the exit forwards over hyper HTTP/1 connections it drives itself
    /// in each exchange's task (kept for reuse) instead of hyper-util's pooled client.
    #[arg(long, global = true)]
    direct_client: bool,
    /// The entry parses HTTP/1.1 (requests from the client, answers from the backend) and
    /// speaks it over a stream per client connection, which the exit splices to a backend
    /// connection without parsing: a design where only the edge reads HTTP. The exit runs as
    /// without it.
    #[arg(long, global = true)]
    splice: bool,
}

#[derive(Debug, Subcommand)]
enum Side {
    /// The edge side: QUIC server on `--tunnel`, a TCP listener per `--listen`.
    Entry {
        #[arg(long)]
        tunnel: SocketAddr,
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
    },
    /// The connector side: dials `--tunnel`, joins the streams of the i-th listener to `--to` i.
    Exit {
        #[arg(long)]
        tunnel: SocketAddr,
        #[arg(long, required = true)]
        to: Vec<SocketAddr>,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("underpass-quic-relay: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-quic-relay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (Some(cert), Some(key), Some(ca)) = (&args.cert, &args.key, &args.ca) else {
        anyhow::bail!("--cert, --key and --ca are required");
    };
    let creds = Credentials::load(cert, key, ca).context("loading the certificate")?;
    let policy = |role| PeerPolicy {
        role,
        trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
        revoked: None,
    };
    match args.side {
        Side::Entry { tunnel, listen } => {
            if !tunnel.ip().is_loopback() || listen.iter().any(|a| !a.ip().is_loopback()) {
                anyhow::bail!("refusing to listen on a non-loopback address");
            }
            let crypto = tls::tunnel_server_crypto(&creds, policy(Role::Connector))?;
            let config = tls::tunnel_server_config(crypto)?;
            let mode = if args.per_request {
                Mode::PerRequest
            } else if args.splice {
                Mode::Splice
            } else {
                Mode::Bytes
            };
            entry(quinn::Endpoint::server(config, tunnel)?, listen, mode).await
        }
        Side::Exit { tunnel, to } => {
            let crypto = tls::tunnel_client_crypto(&creds, policy(Role::Edge))?;
            let mut endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
            endpoint.set_default_client_config(tls::tunnel_client_config(crypto)?);
            let conn = endpoint.connect(tunnel, "localhost")?.await?;
            println!("underpass-quic-relay exit connected to {tunnel}");
            if args.per_request && args.direct_client {
                per_request::exit_direct(conn, to).await
            } else if args.per_request {
                per_request::exit(conn, to).await
            } else {
                exit(conn, Arc::new(to)).await
            }
        }
    }
}

/// What the entry does with a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Copies its bytes on a stream of its own.
    Bytes,
    /// Serves its requests, each an exchange (`--per-request`).
    PerRequest,
    /// Serves its requests over HTTP/1.1 on a stream of its own (`--splice`).
    Splice,
}

/// Waits for the exit, then serves each accepted TCP connection as `mode` says.
async fn entry(
    endpoint: quinn::Endpoint,
    listen: Vec<SocketAddr>,
    mode: Mode,
) -> anyhow::Result<()> {
    // The first exit whose handshake passes (a refused one is logged, and the next awaited).
    let conn = loop {
        let incoming = endpoint.accept().await.context("endpoint closed")?;
        match incoming.await {
            Ok(conn) => break conn,
            Err(e) => eprintln!("exit refused: {e}"),
        }
    };
    let mut listeners = Vec::new();
    for addr in &listen {
        listeners.push(TcpListener::bind(addr).await?);
    }
    // The bench waits for this line before it sends traffic.
    println!("underpass-quic-relay listening on {listen:?}");
    let mut tasks = tokio::task::JoinSet::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let conn = conn.clone();
        let index = u8::try_from(index).context("at most 256 listeners")?;
        tasks.spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = conn.clone();
                match mode {
                    Mode::PerRequest => tokio::spawn(per_request::serve(tcp, conn, index)),
                    Mode::Splice => tokio::spawn(splice::serve(tcp, conn, index)),
                    Mode::Bytes => tokio::spawn(async move {
                        let joined = async {
                            let (send, recv) = open_stream(&conn, index).await?;
                            join(tcp, send, recv).await
                        };
                        if let Err(e) = joined.await {
                            eprintln!("{peer}: {e:#}");
                        }
                    }),
                };
            }
        });
    }
    tokio::select! {
        _ = tasks.join_next() => Ok(()),
        e = conn.closed() => Err(anyhow::anyhow!("tunnel closed: {e}")),
    }
}

/// Opens a stream the exit joins to a connection to backend `index` (its first byte).
async fn open_stream(
    conn: &quinn::Connection,
    index: u8,
) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream)> {
    let (mut send, recv) = conn.open_bi().await?;
    send.write_all(&[index]).await?;
    Ok((send, recv))
}

/// Joins each stream the entry opens to a new connection to its backend.
async fn exit(conn: quinn::Connection, to: Arc<Vec<SocketAddr>>) -> anyhow::Result<()> {
    loop {
        let (send, mut recv) = conn.accept_bi().await.context("tunnel closed")?;
        let to = to.clone();
        tokio::spawn(async move {
            let joined = async {
                let index = recv.read_u8().await?;
                let addr = to
                    .get(usize::from(index))
                    .with_context(|| format!("no --to number {index}"))?;
                join(TcpStream::connect(addr).await?, send, recv).await
            };
            if let Err(e) = joined.await {
                eprintln!("stream: {e:#}");
            }
        });
    }
}

/// Copies bytes both ways between a TCP connection and a QUIC stream until both are done.
async fn join(
    tcp: TcpStream,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let up = async {
        tokio::io::copy(&mut tcp_read, &mut send).await?;
        send.finish()?;
        anyhow::Ok(())
    };
    let down = async {
        tokio::io::copy(&mut recv, &mut tcp_write).await?;
        tcp_write.shutdown().await?;
        anyhow::Ok(())
    };
    tokio::try_join!(up, down)?;
    Ok(())
}

/// `--per-request`: an exchange per HTTP request, as Underpass does it.
mod per_request {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use anyhow::Context;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Body as _;
    use hyper::body::Incoming;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use underpass_proto::frame::{self, RequestHead, ResponseHead};

    /// Largest body either way.
    const MAX_BODY: usize = 64 * 1024 * 1024;

    /// Whether a request header goes on to the backend (hop-by-hop ones stop, as at the edge).
    fn end_to_end(name: &str) -> bool {
        ![
            "host",
            "content-length",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "te",
            "upgrade",
        ]
        .contains(&name)
    }

    /// The headers of a head frame, as they cross the tunnel.
    fn wire_headers(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    /// An exchange's request head and body, and the backend its head names.
    async fn read_request(
        recv: &mut quinn::RecvStream,
        to: &[SocketAddr],
    ) -> anyhow::Result<(RequestHead, Bytes, SocketAddr)> {
        let head: RequestHead = frame::read_frame(recv).await?.context("no request head")?;
        let body = recv.read_to_end(MAX_BODY).await?;
        let addr = *to
            .get(head.service.parse::<usize>()?)
            .context("no such backend")?;
        Ok((head, Bytes::from(body), addr))
    }

    /// The backend request of an exchange, to `uri`: its method, end-to-end headers and body.
    fn backend_request(
        head: &RequestHead,
        uri: &str,
        body: Bytes,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let mut req = http::Request::builder()
            .method(head.method.as_str())
            .uri(uri);
        for (name, value) in head.headers.iter().filter(|(n, _)| end_to_end(n)) {
            req = req.header(name.as_str(), value.as_slice());
        }
        Ok(req.body(Full::new(body))?)
    }

    /// `base` with the client's query, if any.
    fn with_query(base: &str, query: &str) -> String {
        if query.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{query}")
        }
    }

    /// The response head frame of a backend's answer.
    fn response_head(parts: &http::response::Parts) -> ResponseHead {
        ResponseHead {
            status: parts.status.as_u16(),
            headers: wire_headers(&parts.headers),
            backend_us: None,
        }
    }

    /// Serves one client connection: each request an exchange down the tunnel.
    pub(super) async fn serve(tcp: tokio::net::TcpStream, conn: quinn::Connection, index: u8) {
        let _ = tcp.set_nodelay(true);
        let service = hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            async move {
                let resp = match exchange(&conn, index, req).await {
                    Ok(r) => r,
                    Err(e) => {
                        let mut r = http::Response::new(Full::new(Bytes::from(format!("{e:#}"))));
                        *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                        r
                    }
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    }

    async fn exchange(
        conn: &quinn::Connection,
        index: u8,
        req: http::Request<Incoming>,
    ) -> anyhow::Result<http::Response<Full<Bytes>>> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let head = RequestHead {
            service: index.to_string(),
            method: parts.method.as_str().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: wire_headers(&parts.headers),
            principal: String::new(),
            trace_id: String::new(),
            request_id: String::new(),
            assertion: None,
        };
        let (mut send, mut recv) = conn.open_bi().await?;
        let mut out = frame::encode(&head)?;
        out.extend_from_slice(&body);
        send.write_all(&out).await?;
        send.finish()?;
        let head: ResponseHead = frame::read_frame(&mut recv)
            .await?
            .context("no response head")?;
        let body = recv.read_to_end(MAX_BODY).await?;
        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = http::StatusCode::from_u16(head.status)?;
        for (name, value) in head.headers {
            let name = http::HeaderName::try_from(name)?;
            if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                resp.headers_mut()
                    .append(name, http::HeaderValue::from_bytes(&value)?);
            }
        }
        Ok(resp)
    }

    /// Answers each exchange from the backend its head names, through one pooled client.
    pub(super) async fn exit(conn: quinn::Connection, to: Vec<SocketAddr>) -> anyhow::Result<()> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let to = Arc::new(to);
        loop {
            let (send, recv) = conn.accept_bi().await.context("tunnel closed")?;
            let (client, to) = (client.clone(), to.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(&client, &to, send, recv).await {
                    eprintln!("exchange: {e:#}");
                }
            });
        }
    }

    type Conn = hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>;
    type Idle = Vec<(hyper::client::conn::http1::SendRequest<Full<Bytes>>, Conn)>;

    /// [`exit`], with connections driven by the exchanges themselves.
    pub(super) async fn exit_direct(
        conn: quinn::Connection,
        to: Vec<SocketAddr>,
    ) -> anyhow::Result<()> {
        let idle: Arc<std::sync::Mutex<Idle>> = Arc::default();
        let to = Arc::new(to);
        loop {
            let (send, recv) = conn.accept_bi().await.context("tunnel closed")?;
            let (idle, to) = (idle.clone(), to.clone());
            tokio::spawn(async move {
                if let Err(e) = answer_direct(&idle, &to, send, recv).await {
                    eprintln!("exchange: {e:#}");
                }
            });
        }
    }

    async fn answer_direct(
        idle: &std::sync::Mutex<Idle>,
        to: &[SocketAddr],
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> anyhow::Result<()> {
        use std::future::Future;
        let (head, body, addr) = read_request(&mut recv, to).await?;
        let reused = idle.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
        let (mut sender, mut conn) = match reused {
            Some(pair) => pair,
            None => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?
            }
        };
        let mut req = backend_request(&head, &with_query("/mcp", &head.query), body)?;
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::try_from(addr.to_string())?,
        );
        // A reused connection takes a request once its last exchange is wound up, which
        // polling it does.
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = std::pin::Pin::new(&mut conn).poll(cx) {
                return std::task::Poll::Ready(
                    r.map_err(anyhow::Error::from)
                        .and_then(|()| Err(anyhow::anyhow!("backend closed"))),
                );
            }
            sender.poll_ready(cx).map_err(anyhow::Error::from)
        })
        .await?;
        let asked = sender.send_request(req);
        tokio::pin!(asked);
        // The connection is polled alongside: it does the I/O of this exchange.
        let resp = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = asked.as_mut().poll(cx) {
                return std::task::Poll::Ready(r.map_err(anyhow::Error::from));
            }
            match std::pin::Pin::new(&mut conn).poll(cx) {
                // The connection may have ended right after handing over the answer.
                std::task::Poll::Ready(ended) => match asked.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => std::task::Poll::Ready(r.map_err(Into::into)),
                    std::task::Poll::Pending => std::task::Poll::Ready(Err(match ended {
                        Ok(()) => anyhow::anyhow!("backend closed"),
                        Err(e) => e.into(),
                    })),
                },
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await?;
        let (parts, mut body) = resp.into_parts();
        send.write_all(&frame::encode(&response_head(&parts))?)
            .await?;
        let mut open = true;
        loop {
            let next = std::future::poll_fn(|cx| {
                if open && std::pin::Pin::new(&mut conn).poll(cx).is_ready() {
                    open = false;
                }
                std::pin::Pin::new(&mut body).poll_frame(cx)
            })
            .await;
            match next {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        send.write_chunk(data).await?;
                    }
                }
                None => break,
            }
        }
        send.finish()?;
        if open {
            idle.lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push((sender, conn));
        }
        Ok(())
    }

    async fn answer(
        client: &Client<HttpConnector, Full<Bytes>>,
        to: &[SocketAddr],
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> anyhow::Result<()> {
        let (head, body, addr) = read_request(&mut recv, to).await?;
        let uri = with_query(&format!("http://{addr}/mcp"), &head.query);
        let resp = client.request(backend_request(&head, &uri, body)?).await?;
        let (parts, mut body) = resp.into_parts();
        send.write_all(&frame::encode(&response_head(&parts))?)
            .await?;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                send.write_chunk(data).await?;
            }
        }
        send.finish()?;
        Ok(())
    }
}

/// `--splice`: HTTP/1.1 parsed at the entry only; the exit copies bytes.
mod splice {
    use std::convert::Infallible;
    use std::sync::Arc;

    use hyper_util::rt::TokioIo;

    /// Serves one client connection: its requests go, one after another, over an HTTP/1.1
    /// connection on one stream, whose other end the exit joins to a backend connection.
    pub(super) async fn serve(tcp: tokio::net::TcpStream, conn: quinn::Connection, index: u8) {
        let _ = tcp.set_nodelay(true);
        let upstream = async {
            let (send, recv) = super::open_stream(&conn, index).await?;
            let io = TokioIo::new(tokio::io::join(recv, send));
            anyhow::Ok(hyper::client::conn::http1::handshake(io).await?)
        };
        let (sender, connection) = match upstream.await {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("splice: {e:#}");
                return;
            }
        };
        tokio::spawn(connection);
        // hyper serves a connection's requests one at a time: the lock is never contended.
        let sender = Arc::new(tokio::sync::Mutex::new(sender));
        let service =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                let sender = sender.clone();
                async move {
                    for hop in ["connection", "keep-alive", "te", "upgrade"] {
                        req.headers_mut().remove(hop);
                    }
                    let mut sender = sender.lock().await;
                    let answer = match sender.ready().await {
                        Ok(()) => sender.send_request(req).await,
                        Err(e) => Err(e),
                    };
                    Ok::<_, Infallible>(match answer {
                        Ok(resp) => resp.map(http_body_util::Either::Left),
                        Err(e) => {
                            let mut r = http::Response::new(http_body_util::Either::Right(
                                http_body_util::Full::new(bytes::Bytes::from(e.to_string())),
                            ));
                            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                            r
                        }
                    })
                }
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    }
}
