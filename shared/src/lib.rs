//! The plumbing the Underpass daemons share: their runtime (and its figures), logging,
//! shutdown signal, open-file limit, incident references, the hot-reload primitive
//! ([`reload`]) and, built on it, the live revocation list both daemons enforce
//! ([`revocation`]), and span export over OTLP ([`telemetry`]).

#![forbid(unsafe_code)]

pub mod doctor;
mod fd_limit;
pub mod incident;
mod logging;
pub mod reload;
pub mod revocation;
mod runtime;
pub mod telemetry;

pub use fd_limit::{raise_fd_limit, FdLimit};
pub use logging::{init_logging, LogFormat};
pub use runtime::{log_stats_on_usr1, runtime, runtime_stats, shutdown_signal, RuntimeStats};
