//! The client-facing HTTP layer: the listener, routing, the one response renderer, and the
//! header, host and media-type rules. The leaves (`body`, `respond`, `conn`, `headers`, `ids`,
//! `host`, `media`, `router`, `trace`) depend on nothing of the MCP layer; `dispatch` and `server` sit
//! on top of it.

pub mod audited;
pub mod body;
pub mod conn;
pub mod dispatch;
pub mod headers;
pub mod host;
pub mod ids;
pub mod media;
pub mod respond;
pub mod router;
pub mod server;
pub mod trace;
pub mod well_known;
