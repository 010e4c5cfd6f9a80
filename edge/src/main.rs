use std::path::PathBuf;

use clap::Parser;

/// Underpass edge: accepts MCP clients and relays them down QUIC tunnels to connectors.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Path to edge.toml.
    #[arg(long)]
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = underpass_edge::config::EdgeConfig::load(&cli.config).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(underpass_edge::run(config))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-edge: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
