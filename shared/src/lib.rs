//! Common ground of the Underpass edge, connector and PKI: identities, the tunnel wire
//! protocol, TLS configuration and MCP message inspection.

pub mod frame;
pub mod identity;
pub mod tls;
