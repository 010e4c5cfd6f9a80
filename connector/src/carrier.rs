//! How a tunnel to an edge is carried: QUIC over UDP, or the fallback, TLS 1.3 over TCP
//! (`underpass_transport::tcp`), as `transport` in `connector.toml` says.
//!
//! With `transport = "auto"` (the default) a dial tries QUIC first and falls back to TCP when
//! no QUIC tunnel is up within [`FALLBACK_AFTER`] (UDP blocked or broken). While on TCP, the
//! connector re-probes QUIC every 30–60 s (jittered; [`REPROBE_ENV`] shortens it for tests) and
//! moves back to it: new exchanges go to the QUIC tunnel, the TCP one drains and closes
//! (`tunnel::Dialer`).

use std::net::SocketAddr;
use std::time::Duration;

use underpass_transport::TunnelConn;

use crate::config::TunnelTransport;

/// How long `auto` waits for a QUIC tunnel (handshake and Welcome) before it dials TCP.
pub const FALLBACK_AFTER: Duration = Duration::from_secs(2);
/// The re-probe period's lower bound; each wait is drawn from [it, twice it].
pub const REPROBE: Duration = Duration::from_secs(30);
/// Lower bound of the first re-probe after a fallback (see [`Carriers::first_reprobe_delay`]).
const FIRST_REPROBE: Duration = Duration::from_secs(2);
/// Environment variable overriding [`REPROBE`] in whole seconds (for tests: `1` re-probes every
/// 1–2 s). Not a config key on purpose: operators have no reason to change it.
pub const REPROBE_ENV: &str = "UNDERPASS_QUIC_REPROBE_SECS";

/// Which carrier one dial uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Quic,
    Tcp,
}

/// The client configurations of both carriers and the configured choice.
#[derive(Clone)]
pub struct Carriers {
    pub mode: TunnelTransport,
    pub quic: quinn::ClientConfig,
    pub tcp: tokio_rustls::TlsConnector,
    /// Lower bound of the re-probe period.
    pub reprobe: Duration,
}

/// Why a dial failed, and whether the edge answered on the way (then its carrier works: an
/// edge refusing QUIC connections while it shuts down must not send `auto` to TCP).
#[derive(Debug)]
pub struct DialFailure {
    pub reason: String,
    pub answered: bool,
}

impl DialFailure {
    fn unanswered(reason: String) -> Self {
        DialFailure {
            reason,
            answered: false,
        }
    }
}

/// A connected tunnel, before the control handshake, and the QUIC endpoint it lives on.
pub struct Dialed {
    pub conn: TunnelConn,
    pub endpoint: Option<quinn::Endpoint>,
}

impl Carriers {
    pub fn new(
        mode: TunnelTransport,
        quic: quinn::ClientConfig,
        tcp: tokio_rustls::TlsConnector,
    ) -> Self {
        let reprobe = std::env::var(REPROBE_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map_or(REPROBE, Duration::from_secs);
        Carriers {
            mode,
            quic,
            tcp,
            reprobe,
        }
    }

    /// The carrier a first dial tries (`auto` starts with QUIC).
    pub fn first(&self) -> Carrier {
        match self.mode {
            TunnelTransport::Tcp => Carrier::Tcp,
            TunnelTransport::Auto | TunnelTransport::Quic => Carrier::Quic,
        }
    }

    /// The wait before the next QUIC re-probe, jittered over [reprobe, 2 × reprobe].
    pub fn reprobe_delay(&self) -> Duration {
        self.reprobe.mul_f64(1.0 + rand::random::<f64>())
    }

    /// The wait before the first re-probe after falling back: 2–4 s (or the re-probe delay if
    /// shorter). A fallback is not always UDP being blocked: an edge that restarts while a
    /// QUIC dial waits, and is back for the TCP dial, looks the same; the early probe brings
    /// such a tunnel back to QUIC within seconds instead of a re-probe period.
    pub fn first_reprobe_delay(&self) -> Duration {
        self.reprobe_delay()
            .min(FIRST_REPROBE.mul_f64(1.0 + rand::random::<f64>()))
    }

    pub async fn dial(
        &self,
        carrier: Carrier,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Dialed, DialFailure> {
        match carrier {
            Carrier::Quic => {
                let bind = if addr.is_ipv6() {
                    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
                };
                let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| {
                    DialFailure::unanswered(format!("cannot open a UDP socket: {e}"))
                })?;
                endpoint.set_default_client_config(self.quic.clone());
                let conn = endpoint
                    .connect(addr, server_name)
                    .map_err(|e| DialFailure::unanswered(e.to_string()))?
                    .await
                    .map_err(|e| DialFailure {
                        reason: format!("handshake with {addr} failed: {e}"),
                        // Anything but silence means packets came back from the edge.
                        answered: !matches!(
                            e,
                            quinn::ConnectionError::TimedOut
                                | quinn::ConnectionError::VersionMismatch
                                | quinn::ConnectionError::LocallyClosed
                                | quinn::ConnectionError::CidsExhausted
                        ),
                    })?;
                Ok(Dialed {
                    conn: TunnelConn::Quic(conn),
                    endpoint: Some(endpoint),
                })
            }
            Carrier::Tcp => {
                let tunnel = underpass_transport::tcp::connect(addr, server_name, &self.tcp)
                    .await
                    .map_err(DialFailure::unanswered)?;
                Ok(Dialed {
                    conn: TunnelConn::Tcp(tunnel),
                    endpoint: None,
                })
            }
        }
    }
}
