//! A rogue connector for the adversarial suite: it holds a valid connector certificate of
//! the test PKI and speaks QUIC with the tunnel's ALPN (quinn and the product's own TLS
//! set-up), but then does whatever a test tells it: raw bytes on the control stream, streams
//! of its own, floods, and broken answers to the exchanges the edge sends it.
//!
//! It runs its own tokio runtime (one worker), so its tasks go on while a test thread waits
//! on a blocking HTTP client.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use underpass_proto::control::{Control, Hello};
use underpass_proto::frame::{self, ResponseHead, PROTOCOL_VERSION};
use underpass_proto::identity::Role;
use underpass_transport::tls::{self, Credentials, PeerPolicy};

/// How the rogue answers each exchange the edge opens.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Bytes that are no frame at all (a length prefix and random-looking bytes), then FIN.
    Garbage,
    /// A length prefix announcing a head of 1 MiB (over the 256 KiB limit), and some bytes.
    OversizedHead,
    /// A reset before any answer.
    ResetBeforeHead,
    /// A good `200` head, part of an event stream, then a reset of the stream.
    ResetMidBody,
    /// Nothing, ever: the request is read and the stream kept open.
    Never,
    /// A good `200` event-stream head and one event, then nothing more, ever.
    OpenForever,
    /// This head and body, then FIN.
    Head(ResponseHead, Vec<u8>),
}

/// What the rogue saw of the exchanges.
#[derive(Debug, Default)]
pub struct Seen {
    /// Exchange streams the edge opened.
    pub exchanges: AtomicUsize,
    /// Exchanges the edge gave up on (it stopped reading, or reset its side), e.g. because
    /// the client went away.
    pub abandoned_by_edge: AtomicUsize,
}

/// One rogue tunnel to an edge.
pub struct Rogue {
    rt: tokio::runtime::Runtime,
    _endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub seen: Arc<Seen>,
}

impl Rogue {
    /// Dials the edge's tunnel listener on loopback `port` with `cert` and `key` (any role:
    /// the edge judges them), checking the edge's certificate against `ca`. QUIC and TLS
    /// only: nothing is sent yet.
    pub fn dial(port: u16, cert: &Path, key: &Path, ca: &Path) -> Result<Rogue, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let creds = Credentials::load(cert, key, ca).map_err(|e| e.to_string())?;
        let policy = PeerPolicy {
            role: Role::Edge,
            trust_domain: "underpass.local".into(),
            revoked: None,
        };
        let crypto = tls::tunnel_client_crypto(&creds, policy).map_err(|e| e.to_string())?;
        let config = tls::tunnel_client_config(crypto).map_err(|e| e.to_string())?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let (endpoint, conn) = rt.block_on(async move {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr"))
                .map_err(|e| e.to_string())?;
            endpoint.set_default_client_config(config);
            let connecting = endpoint
                .connect(addr, "localhost")
                .map_err(|e| e.to_string())?;
            let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
                .await
                .map_err(|_| "QUIC handshake timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((endpoint, conn))
        })?;
        Ok(Rogue {
            rt,
            _endpoint: endpoint,
            conn,
            seen: Arc::new(Seen::default()),
        })
    }

    /// Runs `f` on the rogue's runtime and waits for it.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Opens the control stream (the tunnel's first stream).
    pub fn open_control(&self) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let conn = self.conn.clone();
        self.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), conn.open_bi())
                .await
                .map_err(|_| "no stream credit".to_string())?
                .map_err(|e| e.to_string())
        })
    }

    /// Opens the control stream, sends a well-formed `Hello` for `name` offering `services`,
    /// and reads the edge's answer: `Ok` with the stream after a `Welcome`.
    pub fn hello(
        &self,
        name: &str,
        services: &[&str],
    ) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let (mut send, mut recv) = self.open_control()?;
        let hello = Control::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            connector: name.to_owned(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            build: "rogue".into(),
            capabilities: Vec::new(),
        });
        self.block_on(async move {
            frame::write_frame(&mut send, &hello)
                .await
                .map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                frame::read_frame::<underpass_proto::control::Received, _>(&mut recv),
            )
            .await
            .map_err(|_| "no answer to Hello".to_string())?
            .map_err(|e| e.to_string())?;
            match answer {
                Some(underpass_proto::control::Received::Known(Control::Welcome(_))) => {
                    Ok((send, recv))
                }
                other => Err(format!("no Welcome: {other:?}")),
            }
        })
    }

    /// Writes `bytes` on `send` (errors are returned, e.g. once the edge closed the tunnel).
    pub fn write(&self, send: &mut quinn::SendStream, bytes: &[u8]) -> Result<(), String> {
        self.block_on(send.write_all(bytes))
            .map_err(|e| e.to_string())
    }

    /// Why the tunnel closed, if it closes within `within`.
    pub fn closed_within(&self, within: Duration) -> Option<quinn::ConnectionError> {
        let conn = self.conn.clone();
        self.block_on(async move { tokio::time::timeout(within, conn.closed()).await.ok() })
    }

    /// Answers every exchange the edge opens on this tunnel with `answer`, from now on.
    pub fn serve(&self, answer: Answer) {
        let conn = self.conn.clone();
        let seen = self.seen.clone();
        self.rt.spawn(async move {
            while let Ok((send, recv)) = conn.accept_bi().await {
                seen.exchanges.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer_one(send, recv, answer.clone(), seen.clone()));
            }
        });
    }
}

impl Drop for Rogue {
    /// Closes the tunnel and lets the close reach the edge before the runtime stops.
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"rogue done");
        let endpoint = self._endpoint.clone();
        self.rt.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        });
    }
}

/// Reads the edge's request (head and body, bounded), then answers as told.
async fn answer_one(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    answer: Answer,
    seen: Arc<Seen>,
) {
    let _ = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(8 << 20)).await;
    let sse_head = || ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        backend_us: None,
    };
    let event = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\n";
    match answer {
        Answer::Garbage => {
            let mut junk = 40u32.to_be_bytes().to_vec();
            junk.extend((0..40u8).map(|b| b.wrapping_mul(97) ^ 0xc1));
            let _ = send.write_all(&junk).await;
            let _ = send.finish();
        }
        Answer::OversizedHead => {
            let _ = send.write_all(&(1u32 << 20).to_be_bytes()).await;
            let _ = send.write_all(&[0x80; 4096]).await;
            let _ = send.finish();
        }
        Answer::ResetBeforeHead => {
            let _ = send.reset(7u32.into());
        }
        Answer::ResetMidBody => {
            if let Ok(head) = frame::encode(&sse_head()) {
                let _ = send.write_all(&head).await;
                let _ = send.write_all(event).await;
                let _ = send.write_all(b"event: message\ndata: {\"cut").await;
                // Let the edge pass the first part on before the reset.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = send.reset(7u32.into());
            }
        }
        Answer::Never => {
            // Kept open until the edge gives up on it.
            if tokio::time::timeout(Duration::from_secs(120), send.stopped())
                .await
                .is_ok()
            {
                seen.abandoned_by_edge.fetch_add(1, Ordering::SeqCst);
            }
        }
        Answer::OpenForever => {
            if let Ok(head) = frame::encode(&sse_head()) {
                let _ = send.write_all(&head).await;
                let _ = send.write_all(event).await;
            }
            if tokio::time::timeout(Duration::from_secs(120), send.stopped())
                .await
                .is_ok()
            {
                seen.abandoned_by_edge.fetch_add(1, Ordering::SeqCst);
            }
        }
        Answer::Head(head, body) => {
            if let Ok(bytes) = frame::encode(&head) {
                let _ = send.write_all(&bytes).await;
                let _ = send.write_all(&body).await;
            }
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_secs(10), send.stopped()).await;
        }
    }
}
