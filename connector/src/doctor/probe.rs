//! The I/O of the edge checks: resolve an edge's name, and probe one address over one carrier
//! with this connector's real TLS configuration: the handshake, a `Hello` offering no service
//! (a probe, which the edge welcomes but never gives exchanges), and a `Time` round trip for
//! the clock. Each step is bounded by [`PROBE_TIMEOUT`].

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use underpass_proto::control::{self, ConnectorControl, ConnectorOutput, Control, Hello, Time};
use underpass_proto::frame::{self, codes, PROTOCOL_VERSION};

use underpass_transport::TunnelConn;

use crate::carrier::{Carrier, Carriers};

/// How long one probe (handshake, Welcome, clock) may take in all.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// The edge completed the handshake and welcomed this identity.
    Welcomed {
        /// The edge's name (from `Welcome`).
        edge: String,
        /// The clock reading, when the edge answers `Time`.
        clock: Option<ClockSample>,
        /// Handshake and Welcome, in ms.
        rtt_ms: u64,
    },
    /// The edge refused this connector in its control protocol, with its reason.
    Refused(String),
    /// No tunnel: the reason, in words.
    Failed(ProbeFailure),
}

/// Why a probe found no tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Nothing answered within [`PROBE_TIMEOUT`].
    Timeout,
    /// The connection or handshake failed, or the edge closed it (a TLS alert, a refusal).
    Error(String),
}

/// The local and the edge's clocks around one `Time` round trip, in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    pub sent_ms: i64,
    pub received_ms: i64,
    pub edge_ms: i64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Resolves `edge` (`host:port`) to its addresses, bounded.
pub async fn resolve(edge: &str) -> Result<Vec<SocketAddr>, String> {
    let looked_up = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::lookup_host(edge)).await;
    let mut all: Vec<SocketAddr> = Vec::new();
    match looked_up {
        Err(_) => return Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(addrs)) => {
            for a in addrs {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
    }
    if all.is_empty() {
        return Err("no address".into());
    }
    Ok(all)
}

/// Probes `addr` over `carrier` as `connector`.
pub async fn probe(
    carriers: &Carriers,
    carrier: Carrier,
    addr: SocketAddr,
    server_name: &str,
    connector: &str,
) -> Probed {
    let started = std::time::Instant::now();
    match tokio::time::timeout(
        PROBE_TIMEOUT,
        probe_inner(carriers, carrier, addr, server_name, connector, started),
    )
    .await
    {
        Ok(probed) => probed,
        Err(_) => Probed::Failed(ProbeFailure::Timeout),
    }
}

async fn probe_inner(
    carriers: &Carriers,
    carrier: Carrier,
    addr: SocketAddr,
    server_name: &str,
    connector: &str,
    started: std::time::Instant,
) -> Probed {
    let dialed = match carriers.dial(carrier, addr, server_name).await {
        Ok(d) => d,
        Err(e) => return Probed::Failed(ProbeFailure::Error(e.reason)),
    };
    let probed = talk(&dialed.conn, connector, started).await;
    dialed.conn.close(codes::NORMAL, b"doctor done");
    if let Some(endpoint) = dialed.endpoint {
        endpoint.close(0u32.into(), b"");
    }
    probed
}

/// The control conversation of a probe: Hello (no service), Welcome, Time, TimeIs.
async fn talk(conn: &TunnelConn, connector: &str, started: std::time::Instant) -> Probed {
    // In TLS 1.3 the edge judges the client certificate after the client's handshake is done:
    // a refusal shows up as the connection closing, with the alert as its reason.
    let fail = |e: String| {
        Probed::Failed(ProbeFailure::Error(match conn.close_reason() {
            Some(r) => format!("the edge closed the connection: {r}"),
            None => e,
        }))
    };
    let (mut send, mut recv) = match conn.open_exchange().await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let mut machine = ConnectorControl::new(Hello {
        protocol: PROTOCOL_VERSION,
        connector: connector.to_owned(),
        services: Vec::new(),
        build: concat!("underpass-connector doctor ", env!("CARGO_PKG_VERSION")).to_owned(),
        capabilities: control::capabilities(),
    });
    let mut outputs = match machine.start() {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    let mut welcomed: Option<(String, u64)> = None;
    let mut sent_ms = 0;
    loop {
        for output in std::mem::take(&mut outputs) {
            match output {
                ConnectorOutput::Send(msg) => {
                    if let Err(e) = frame::write_frame(&mut send, &msg).await {
                        return fail(format!("cannot send {}: {e}", msg.kind()));
                    }
                }
                ConnectorOutput::Welcomed(w) => {
                    let rtt_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    if !w.capabilities.iter().any(|c| c == "Time") {
                        // An edge that predates the clock check.
                        return Probed::Welcomed {
                            edge: w.edge,
                            clock: None,
                            rtt_ms,
                        };
                    }
                    welcomed = Some((w.edge, rtt_ms));
                    sent_ms = now_ms();
                    match machine.send(Control::Time(Time { id: 1 })) {
                        Ok(more) => outputs.extend(more),
                        Err(e) => return fail(e.to_string()),
                    }
                }
                ConnectorOutput::Refused(reason) => return Probed::Refused(reason),
                ConnectorOutput::Message(Control::TimeIs(t)) if t.id == 1 => {
                    let clock = ClockSample {
                        sent_ms,
                        received_ms: now_ms(),
                        edge_ms: t.unix_ms,
                    };
                    let (edge, rtt_ms) = welcomed.unwrap_or_default();
                    return Probed::Welcomed {
                        edge,
                        clock: Some(clock),
                        rtt_ms,
                    };
                }
                ConnectorOutput::Message(_) | ConnectorOutput::Ignored(_) => {}
            }
        }
        if !outputs.is_empty() {
            continue;
        }
        let read = recv.read_chunk().await;
        match (read, welcomed.take()) {
            (Ok(Some(chunk)), w) => {
                welcomed = w;
                match machine.handle_bytes(&chunk) {
                    Ok(o) => outputs = o,
                    Err(e) => return fail(e.to_string()),
                }
            }
            // Welcomed, then the stream ended without a clock reading.
            (_, Some((edge, rtt_ms))) => {
                return Probed::Welcomed {
                    edge,
                    clock: None,
                    rtt_ms,
                }
            }
            (Ok(None), None) => return fail("the edge ended the control stream".into()),
            (Err(e), None) => return fail(e.to_string()),
        }
    }
}
