//! Which endpoint of the federation a request names, and what it covers. A leaf.

use crate::config::{ServiceConfig, ViewConfig};

/// Which endpoint: `/mcp`, a view, or one service bridged across eras.
pub struct Endpoint<'a> {
    /// `/mcp`, `/mcp/view/{name}` or `/mcp/{service}`: what its sealed sessions and cursors
    /// are bound to.
    pub key: String,
    pub view: Option<&'a ViewConfig>,
    /// `/mcp/{service}` of a service with `bridge_eras = true`: that service alone, under its
    /// backend's own names.
    pub single: Option<&'a ServiceConfig>,
}

/// Which endpoint a request names.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Federated,
    View(&'a str),
    Bridged(&'a str),
}
