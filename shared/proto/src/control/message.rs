//! The control messages and their decoding, which tells a message of an unknown type (from a
//! newer peer) from a broken frame.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The connector introduces itself: the first message on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The tunnel protocol version it speaks ([`crate::frame::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// Its name; the edge checks it against the name in its certificate.
    pub connector: String,
    /// The services it offers.
    pub services: Vec<String>,
    /// Its build, for the edge's logs.
    pub build: String,
    /// The optional control message types it understands (see the [module](super) docs).
    /// Absent from older connectors' `Hello`, and left out when empty, so an older edge reads
    /// exactly what it always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// The edge accepts the connector: the tunnel is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The edge's name.
    pub edge: String,
    /// What the edge will send down this tunnel.
    pub limits: Limits,
    /// Interval of QUIC keep-alives the connector should send, in milliseconds.
    pub heartbeat_ms: u64,
    /// The optional control message types the edge understands, as in [`Hello`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// The edge's limits on one tunnel, announced in [`Welcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body the edge will forward.
    pub max_request_body: u64,
    /// Concurrent exchange streams the edge may open on this tunnel.
    pub max_concurrent_exchanges: u64,
}

/// The edge refuses the connector, and closes the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Why, in words the connector's operator can act on.
    pub reason: String,
}

/// The sender is draining (it got SIGTERM): from a connector, the edge sends it no new
/// exchanges (those in flight finish); from an edge, the connector learns its tunnel will be
/// closed once the edge's clients are gone. Optional: sent only to a peer that announced
/// `"Draining"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draining {
    /// How long the sender waits at most for its work in flight before it closes, in
    /// milliseconds.
    pub grace_ms: u64,
}

/// Connector → edge: a certificate request (PEM; only its public key is used) for this
/// tunnel's connector identity, made with a new key, to renew before the certificate ends.
/// Optional: sent only to an edge that announced `"Renew"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renew {
    /// Chosen by the connector; the answer carries it back.
    pub id: u64,
    pub csr_pem: String,
}

/// Edge → connector: the renewed certificate (PEM, then its issuer) and the edge's CA bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    pub id: u64,
    pub chain_pem: String,
    pub ca_pem: String,
}

/// Edge → connector: no renewal, and why (this edge does not issue, the connector is revoked,
/// the request is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRefused {
    pub id: u64,
    pub reason: String,
}

/// Connector → edge: the connector's renewed certificate chain (DER, leaf first), to be
/// trusted on this live tunnel in place of the one its handshake presented, with a proof
/// that the sender holds the new key: `signature` by it, in TLS `SignatureScheme` `scheme`,
/// over this tunnel's exporter value (see `underpass_transport::tls::reauth`). Lets a tunnel
/// to an edge that did not issue the certificate outlive the old one. Optional: sent only
/// to an edge that announced `"Reauth"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reauth {
    /// Chosen by the connector; the answer carries it back.
    pub id: u64,
    pub chain: Vec<Vec<u8>>,
    pub scheme: u16,
    pub signature: Vec<u8>,
}

/// Edge → connector: the tunnel now lives until `not_after` (Unix seconds), the end of the
/// certificate of [`Reauth`] `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reauthed {
    pub id: u64,
    pub not_after: i64,
}

/// Edge → connector: the certificate of [`Reauth`] `id` is not taken, and why; the tunnel
/// keeps the end it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReauthRefused {
    pub id: u64,
    pub reason: String,
}

/// Connector → edge: what time is it? Sent by `underpass-connector doctor` (and the
/// connector's start-up checks) to measure clock skew: certificates and tokens break when the
/// clocks of the two ends disagree by more than their allowed skew. Optional: sent only to an
/// edge that announced `"Time"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Chosen by the connector; the answer carries it back.
    pub id: u64,
}

/// Edge → connector: the edge's wall clock when it answered [`Time`] `id`, in Unix
/// milliseconds. The connector compares it with the midpoint of its own send and receive times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeIs {
    pub id: u64,
    pub unix_ms: i64,
}

/// Connector → edge: the connector's own figures, cumulative since it started (a snapshot,
/// not deltas: the edge keeps the latest per connector, so a snapshot sent on several tunnels
/// is not counted twice). Sent every few seconds on each tunnel; the edge exports them as
/// `underpass_connector_*`. Optional: sent only to an edge that announced `"Stats"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Per service the connector offers.
    #[serde(default)]
    pub services: Vec<ServiceStats>,
    /// Stdio backend processes running now.
    #[serde(default)]
    pub stdio_processes: u64,
    /// Legacy (2024-11-05) bridge sessions open now.
    #[serde(default)]
    pub bridge_sessions: u64,
    /// Exchanges being served now.
    #[serde(default)]
    pub in_flight: u64,
    /// Tunnels established per edge (as configured), since start: reconnects show as its rate.
    #[serde(default)]
    pub connects: Vec<EdgeConnects>,
}

/// One service's exchanges and backend traffic in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub service: String,
    /// Exchanges its backend answered.
    #[serde(default)]
    pub ok: u64,
    /// Exchanges its backend failed (unreachable, broken answer).
    #[serde(default)]
    pub backend_error: u64,
    /// Exchanges refused before the backend (over the service's caps).
    #[serde(default)]
    pub refused: u64,
    /// Request body bytes sent to the backend.
    #[serde(default)]
    pub bytes_in: u64,
    /// Response body bytes received from the backend.
    #[serde(default)]
    pub bytes_out: u64,
}

/// Tunnels a connector established to one edge, in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConnects {
    /// The edge as the connector's configuration names it (`host:port`).
    pub edge: String,
    pub connects: u64,
}

/// A control message of a type this build knows.
///
/// Serialized externally tagged (`{"Hello": {...}}`), as the first builds wrote their
/// `Control` enum; decode received frames as [`Received`], which also accepts types added
/// after this build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// See [`Refused`].
    Refused(Refused),
    /// See [`Draining`].
    Draining(Draining),
    /// See [`Renew`].
    Renew(Renew),
    /// See [`Renewed`].
    Renewed(Renewed),
    /// See [`RenewRefused`].
    RenewRefused(RenewRefused),
    /// See [`Reauth`].
    Reauth(Reauth),
    /// See [`Reauthed`].
    Reauthed(Reauthed),
    /// See [`ReauthRefused`].
    ReauthRefused(ReauthRefused),
    /// See [`Time`].
    Time(Time),
    /// See [`TimeIs`].
    TimeIs(TimeIs),
    /// See [`Stats`].
    Stats(Stats),
    /// Stands in, in unit tests, for the first optional message type (drain notices,
    /// certificate renewal, ...): sent only to a peer that announced `"Probe"`.
    #[cfg(test)]
    Probe {
        /// Anything.
        note: String,
    },
}

impl Control {
    /// The message's type name: its tag on the wire, and its capability name when optional.
    pub fn kind(&self) -> &'static str {
        match self {
            Control::Hello(_) => "Hello",
            Control::Welcome(_) => "Welcome",
            Control::Refused(_) => "Refused",
            Control::Draining(_) => "Draining",
            Control::Renew(_) => "Renew",
            Control::Renewed(_) => "Renewed",
            Control::RenewRefused(_) => "RenewRefused",
            Control::Reauth(_) => "Reauth",
            Control::Reauthed(_) => "Reauthed",
            Control::ReauthRefused(_) => "ReauthRefused",
            Control::Time(_) => "Time",
            Control::TimeIs(_) => "TimeIs",
            Control::Stats(_) => "Stats",
            #[cfg(test)]
            Control::Probe { .. } => "Probe",
        }
    }

    /// Whether the message belongs to the base protocol, which every peer understands; any
    /// other is sent only to a peer that announced it.
    pub fn is_base(&self) -> bool {
        matches!(
            self,
            Control::Hello(_) | Control::Welcome(_) | Control::Refused(_)
        )
    }
}

/// A control frame as received: a message of a known type, or the type name of one this
/// build does not know (added by a newer peer), whose content was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message this build understands.
    Known(Control),
    /// A well-formed message of an unknown type.
    Unknown(String),
}

/// The base protocol's type names; with [`crate::control::CAPABILITIES`] (and `Probe` in unit
/// tests), every type this build decodes.
const BASE: &[&str] = &["Hello", "Welcome", "Refused"];

fn is_known(kind: &str) -> bool {
    BASE.contains(&kind)
        || crate::control::CAPABILITIES.contains(&kind)
        || (cfg!(test) && kind == "Probe")
}

impl<'de> Deserialize<'de> for Received {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReceivedVisitor)
    }
}

struct ReceivedVisitor;

impl<'de> Visitor<'de> for ReceivedVisitor {
    type Value = Received;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a control message: a map of one type name to its fields")
    }

    /// A message with content: `{type: fields}`.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Received, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let received = match kind.as_str() {
            "Hello" => Received::Known(Control::Hello(map.next_value()?)),
            "Welcome" => Received::Known(Control::Welcome(map.next_value()?)),
            "Refused" => Received::Known(Control::Refused(map.next_value()?)),
            "Draining" => Received::Known(Control::Draining(map.next_value()?)),
            "Renew" => Received::Known(Control::Renew(map.next_value()?)),
            "Renewed" => Received::Known(Control::Renewed(map.next_value()?)),
            "RenewRefused" => Received::Known(Control::RenewRefused(map.next_value()?)),
            "Reauth" => Received::Known(Control::Reauth(map.next_value()?)),
            "Reauthed" => Received::Known(Control::Reauthed(map.next_value()?)),
            "ReauthRefused" => Received::Known(Control::ReauthRefused(map.next_value()?)),
            "Time" => Received::Known(Control::Time(map.next_value()?)),
            "TimeIs" => Received::Known(Control::TimeIs(map.next_value()?)),
            "Stats" => Received::Known(Control::Stats(map.next_value()?)),
            #[cfg(test)]
            "Probe" => {
                #[derive(Deserialize)]
                struct Probe {
                    note: String,
                }
                let Probe { note } = map.next_value()?;
                Received::Known(Control::Probe { note })
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
                Received::Unknown(kind)
            }
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a control message has exactly one type"));
        }
        Ok(received)
    }

    /// A message without content (how MessagePack writes a unit variant): only a newer
    /// peer's type can look like this.
    fn visit_str<E: de::Error>(self, kind: &str) -> Result<Received, E> {
        if is_known(kind) {
            return Err(E::custom(format!("{kind} without its fields")));
        }
        Ok(Received::Unknown(kind.to_owned()))
    }

    fn visit_string<E: de::Error>(self, kind: String) -> Result<Received, E> {
        self.visit_str(&kind)
    }
}

#[cfg(test)]
mod tests;
