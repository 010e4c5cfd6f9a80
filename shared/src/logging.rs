//! The daemons' one logging set-up.

use std::io::IsTerminal;

/// How log lines are written (`log_format` in either daemon's config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `time LEVEL target: message key=value …`, for people and grep.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields` with `message`,
    /// and the span), for log pipelines.
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): the daemons' one logging set-up.
/// Text has colours only on a terminal: a file or journald gets plain `key=value` fields.
/// Lines are written as they happen, so a line is on stderr before the answer it explains.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}
