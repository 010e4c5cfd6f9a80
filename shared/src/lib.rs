//! The plumbing the Underpass daemons share: their runtime (and its figures), logging,
//! shutdown signal, open-file limit, incident references and the hot-reload primitive
//! ([`reload`]).

#![forbid(unsafe_code)]

mod fd_limit;
pub mod incident;
mod logging;
pub mod reload;
mod runtime;

pub use fd_limit::{raise_fd_limit, FdLimit};
pub use logging::{init_logging, LogFormat, LogGuard};
pub use runtime::{log_stats_on_usr1, runtime, runtime_stats, shutdown_signal, RuntimeStats};
