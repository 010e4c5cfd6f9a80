//! The control protocol of a tunnel, as two sans-IO state machines: [`EdgeControl`] and
//! [`ConnectorControl`]. They take the bytes that arrived on the control stream and return what
//! to send and what happened; they hold no socket, timer or clock, so every transition is
//! unit-tested without a network (in the style of quinn-proto).
//!
//! # The conversation
//!
//! The control stream is the first bidirectional stream of a tunnel, opened by the connector.
//!
//! 1. The connector sends [`Hello`] (protocol version, its name, the services it offers, its
//!    build, and its capabilities).
//! 2. The edge answers [`Welcome`] (its name, limits, keep-alive interval, its capabilities) or
//!    [`Refused`] (a reason for the operator: a first message that is not a `Hello`, another
//!    protocol version, or the edge's own verdict), and then closes the tunnel.
//! 3. After `Welcome` the stream stays open both ways for later messages.
//!
//! # Evolving it: capabilities
//!
//! `Hello`, `Welcome` and `Refused` are the base protocol, understood by every peer of
//! protocol version 1. Any message added later is *optional*: each side lists in its `Hello` or
//! `Welcome` the optional message types it understands (`capabilities`, by type name), and
//!
//! - a message of an optional type is sent only to a peer that announced it
//!   ([`ControlError::PeerDidNotAnnounce`] otherwise), and one that arrives unannounced is a
//!   protocol error ([`ControlError::NotAnnounced`]);
//! - a message of a type this build does not know is ignored ([`EdgeOutput::Ignored`],
//!   [`ConnectorOutput::Ignored`], for a log line), never fatal.
//!
//! So a newer peer adds a message type without breaking an older one, in both directions.
//! Fields are added the same way: with `#[serde(default)]`, as `capabilities` itself was.
//!
//! # Wire format
//!
//! Each message is one [`crate::frame`] frame: a MessagePack map with one key, the type name,
//! whose value is a map of named fields (`{"Hello": {"protocol": 1, ...}}`), exactly as the
//! builds before capabilities wrote and read it.

mod connector;
mod edge;
mod message;

pub use connector::{ConnectorControl, ConnectorOutput};
pub use edge::{EdgeControl, EdgeOutput};
pub use message::{
    Control, Draining, EdgeConnects, Hello, Limits, Reauth, ReauthRefused, Reauthed, Received,
    Refused, Renew, RenewRefused, Renewed, ServiceStats, Stats, Time, TimeIs, Welcome,
};

use crate::frame::FrameError;

/// The optional control messages this build understands, announced in its `Hello` or
/// `Welcome`: [`Draining`] (either side, on SIGTERM); [`Renew`] (connector → edge) answered by
/// [`Renewed`] or [`RenewRefused`]; [`Reauth`] (connector → edge) answered by [`Reauthed`] or
/// [`ReauthRefused`]; [`Time`] (connector → edge, the doctor's clock-skew check) answered by
/// [`TimeIs`]; [`Stats`] (connector → edge, its figures for the edge's metrics).
pub const CAPABILITIES: &[&str] = &[
    "Draining",
    "Renew",
    "Renewed",
    "RenewRefused",
    "Reauth",
    "Reauthed",
    "ReauthRefused",
    "Time",
    "TimeIs",
    "Stats",
];

/// Why a control machine stopped, or refused a call. Every error but [`ControlError::State`]
/// and [`ControlError::PeerDidNotAnnounce`] (refused calls, which change nothing) ends the
/// conversation: the machine answers any later input with [`ControlError::Closed`].
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The bytes are not a control frame (garbage, oversized, cut short).
    #[error("bad control frame: {0}")]
    Frame(#[from] FrameError),
    /// A message of a known type that has no place here (a second `Hello`, a `Welcome` before
    /// any `Hello`, ...).
    #[error("unexpected {kind} control message {when}")]
    Unexpected {
        /// The message's type.
        kind: &'static str,
        /// Where the conversation was (e.g. "after Welcome").
        when: &'static str,
    },
    /// A message of an optional type this side did not announce arrived.
    #[error("received a {0} control message, which this side did not announce")]
    NotAnnounced(&'static str),
    /// A message of an optional type the peer did not announce was to be sent (it was not).
    #[error("the peer did not announce {0} control messages")]
    PeerDidNotAnnounce(&'static str),
    /// The peer ended the control stream before the handshake was done.
    #[error("the control stream ended {0}")]
    Ended(&'static str),
    /// A call that has no place in the machine's state (e.g. `accept` with no `Hello` to
    /// judge): a bug in the caller, which leaves the machine as it was.
    #[error("cannot {action} {when}")]
    State {
        /// What was asked.
        action: &'static str,
        /// Where the conversation was.
        when: &'static str,
    },
    /// Input after the conversation ended (a `Refused`, or an earlier error).
    #[error("the control conversation has ended")]
    Closed,
}

/// Whether `msg` may be sent to a peer that announced `peer_capabilities`: base messages
/// always, optional ones only when announced.
fn peer_understands(msg: &Control, peer_capabilities: &[String]) -> bool {
    msg.is_base() || peer_capabilities.iter().any(|c| c == msg.kind())
}

/// Whether a received optional message is one this side announced.
fn we_announced(msg: &Control, ours: &[String]) -> bool {
    msg.is_base() || ours.iter().any(|c| c == msg.kind())
}

/// This build's [`CAPABILITIES`], owned, for a `Hello` or an [`EdgeControl`].
pub fn capabilities() -> Vec<String> {
    CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()
}
