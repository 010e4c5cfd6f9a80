//! The Underpass tunnel transport: TLS configuration (rustls, ring, TLS 1.3, role-checking
//! verifiers), the QUIC settings and stream scheduling, the fallback carrier over TCP
//! ([`tcp`]), and the seam the rest of the code uses tunnels through ([`TunnelConn`], [`ExchangeSend`], [`ExchangeRecv`]).

#![forbid(unsafe_code)]

mod error;
pub mod quic;
pub mod tcp;
pub mod tls;
mod tunnel;

pub use error::TransportError;
pub use tunnel::{ExchangeRecv, ExchangeSend, TunnelConn};
