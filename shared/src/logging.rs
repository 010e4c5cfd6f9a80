//! The daemons' one logging set-up.

use std::io::IsTerminal;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): the daemons' one logging set-up.
/// Colours only on a terminal: a file or journald gets plain `key=value` fields to grep.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
