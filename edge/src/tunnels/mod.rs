//! The edge's side of the tunnels: accepting connectors ([`accept`]: QUIC listener, control
//! handshake; [`tcp`]: the TCP fallback carrier's listener, into the same handshake), which
//! tunnels serve which service and which legacy session goes where ([`registry`]; [`prefer`]:
//! a connector back on QUIC gets no new exchanges over TCP; [`spread`]: new exchanges go by
//! power of two choices on exchanges in flight), one client exchange down a tunnel
//! ([`exchange`]), how much a connector may send on its control stream ([`budget`]), and
//! which connectors left lately (drained or lost), so that requests wait for them to come
//! back ([`departed`]); for `/metrics`, tunnels accepted per connector ([`connects`]) and the
//! figures connectors report over their control stream ([`stats`]).

pub mod accept;
pub mod budget;
pub mod connects;
pub mod departed;
pub mod exchange;
pub mod prefer;
pub mod registry;
pub mod spread;
pub mod stats;
pub mod tcp;
