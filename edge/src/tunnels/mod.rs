//! The edge's side of the tunnels: accepting connectors ([`accept`]: transport listener,
//! control handshake), which tunnels serve which service and which legacy session is pinned
//! where ([`registry`]), one client exchange down a tunnel ([`exchange`]), and how much a
//! connector may send on its control stream ([`budget`]), and how new exchanges are spread
//! over the tunnels serving a service ([`spread`]).

pub mod accept;
pub mod budget;
pub mod exchange;
pub mod registry;
pub mod spread;
