//! The plumbing the Underpass daemons share: their runtime, logging, shutdown signal,
//! open-file limit and incident references.

#![forbid(unsafe_code)]

mod fd_limit;
pub mod incident;
mod logging;
mod runtime;

pub use fd_limit::{raise_fd_limit, FdLimit};
pub use logging::init_logging;
pub use runtime::{runtime, shutdown_signal};

// The modules that moved to their own crates, under their old paths while the edge, the
// connector and the tests still import them from here.
pub use underpass_mcp as mcp;
pub use underpass_mcp::jsonrpc;
pub use underpass_proto::{control, frame, headers, identity};
pub use underpass_transport as transport;
pub use underpass_transport::{quic, tls};
