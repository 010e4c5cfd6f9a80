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
