//! The MCP endpoints: admission of each request (authentication, inspection, policy, rates),
//! the Streamable HTTP relay (and its one retry of a safe request on another tunnel), the
//! 2024-11-05 SSE bridge, and the response filters.

pub mod admission;
pub mod discover;
pub mod failover;
pub mod judge;
pub mod legacy_sse;
pub mod list_filter;
pub mod mediate;
pub mod precheck;
pub mod session_id;
pub mod sessions;
pub mod streamable;
