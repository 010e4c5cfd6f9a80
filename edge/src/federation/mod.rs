//! The federated endpoint `/mcp` and its views `/mcp/view/{name}`: every service the caller
//! may use, as one MCP server (see README, "One endpoint for every service").
//!
//! - [`config`]: `[federation]` and `[[views]]` (a leaf);
//! - [`cache`]: the bounded cache of backend results, pure;
//! - [`state`]: what is kept between requests: eras, pooled legacy sessions, caches, counts (a leaf);
//! - [`target`]: which endpoint a request names (`/mcp`, a view, a bridged service; a leaf);
//! - [`upstream`]: the edge as an MCP client of one service, on a caller's behalf;
//! - [`lists`]: the lists fanned out to the services under a deadline, filtered per caller after
//!   the cache, renamed and paged;
//! - [`calls`]: a call routed to its service through admission (policy and audit see the real
//!   service and tool);
//! - [`asks`]: a 2025-11-25 client's call at a 2026-07-28-only service that asks for input
//!   (`input_required`): relayed as the edge's own requests on the call's stream, the call sent
//!   again with the answers;
//! - [`pending`]: the input requests relayed that clients have yet to answer, bounded (a leaf);
//! - [`listen`]: the change stream (`subscriptions/listen`, a legacy session's `GET`), merged
//!   from every service's, invalidating the cache as changes come;
//! - [`fanout`]: one legacy session's event stream shared by its caller's change streams (a leaf);
//! - [`subscribed`]: what 2025-11-25 sessions subscribed to at 2026-07-28-only services, kept
//!   by the edge, bounded (a leaf);
//! - [`request`]: the request being served, the answers the edge originates, and the values it
//!   seals for the caller (sessions, cursors, task ids; shared by `endpoint` and `calls`);
//! - [`stateless`]: what the endpoint refuses a 2026-07-28 request before serving it (pure);
//! - [`endpoint`]: one request to `/mcp` or a view, from method to answer;
//! - [`shortened`]: the names cut to 64 characters, listed at start and shown in the admin API.
//!
//! The pure naming rules are `underpass_mcp::federation`.

pub mod asks;
pub mod cache;
pub mod calls;
pub mod config;
pub mod endpoint;
pub mod fanout;
pub mod listen;
pub mod lists;
pub mod pending;
pub mod request;
pub mod shortened;
pub mod state;
pub mod stateless;
pub mod subscribed;
pub mod target;
pub mod upstream;
