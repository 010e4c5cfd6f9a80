//! The edge's side of the tunnels: accepting connectors ([`accept`]: transport listener,
//! control handshake), which tunnels serve which service and which legacy session is pinned
//! where ([`registry`]), and one client exchange down a tunnel ([`exchange`]).

pub mod accept;
pub mod exchange;
pub mod registry;
