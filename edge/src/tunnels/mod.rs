//! The edge's side of the tunnels: accepting connectors ([`accept`]: QUIC listener, control
//! handshake; [`tcp`]: the TCP fallback carrier's listener, into the same handshake), which
//! tunnels serve which service and which legacy session goes where ([`registry`]; [`prefer`]:
//! a connector back on QUIC gets no new exchanges over TCP; [`spread`]: new exchanges go by
//! power of two choices on exchanges in flight), one client exchange down a tunnel
//! ([`exchange`]), how much a connector may send on its control stream ([`budget`]), and
//! which connectors left lately (drained or lost), so that requests wait for them to come
//! back ([`departed`]).

pub mod accept;
pub mod budget;
pub mod departed;
pub mod exchange;
pub mod prefer;
pub mod registry;
pub mod spread;
pub mod tcp;
