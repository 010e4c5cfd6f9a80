//! `underpass-connector`: the connector daemon's command line (see the library for what it does).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;

// Measured: glibc malloc was a quarter of the connector's CPU per request; mimalloc cut it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Underpass connector: dials out to edges and serves the internal MCP servers it names.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Path to connector.toml.
    #[arg(long)]
    config: PathBuf,
    /// Only load and validate the config, then exit.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.check {
        return match underpass_connector::config::ConnectorConfig::load(&cli.config) {
            Ok(_) => {
                println!("{}: ok", cli.config.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("underpass-connector: error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    underpass_shared::init_logging();
    let result =
        underpass_connector::config::ConnectorConfig::load(&cli.config).and_then(|config| {
            underpass_shared::runtime(config.worker_threads)?
                .block_on(underpass_connector::run(config))
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-connector: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
