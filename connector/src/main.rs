//! `underpass-connector`: the connector daemon's command line (see the library for what it does).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

// Measured: glibc malloc was a quarter of the connector's CPU per request; mimalloc cut it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Underpass connector: dials out to edges and serves the internal MCP servers it names.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Path to connector.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only load and validate the config, then exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Join a deployment with a one-time token (`underpass-certs token create`): makes this
    /// connector's key here, has the edge certify it, writes DIR/NAME.key, DIR/NAME.crt and
    /// DIR/ca.crt, and prints a connector.toml to complete.
    Enroll {
        /// The token ("-": read it from standard input).
        #[arg(long)]
        token: String,
        /// Folder for the key and certificates (created if missing; nothing is overwritten).
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Enroll { token, dir }) = cli.command {
        return enroll(&token, &dir);
    }
    let Some(config) = cli.config else {
        eprintln!("underpass-connector: error: --config connector.toml is required (or a subcommand: enroll)");
        return std::process::ExitCode::FAILURE;
    };
    if cli.check {
        return match underpass_connector::config::ConnectorConfig::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("underpass-connector: error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = underpass_connector::config::ConnectorConfig::load(&config).and_then(|config| {
        underpass_shared::init_logging(config.log_format);
        underpass_shared::runtime(config.worker_threads)?.block_on(underpass_connector::run(config))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-connector: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `enroll`: the token's edges in order; the suggested config on stdout, the rest on stderr.
fn enroll(token: &str, dir: &std::path::Path) -> std::process::ExitCode {
    underpass_shared::init_logging(underpass_shared::LogFormat::Text);
    let token = if token == "-" {
        let mut t = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut t) {
            eprintln!("underpass-connector: error: cannot read the token from stdin: {e}");
            return std::process::ExitCode::FAILURE;
        }
        t
    } else {
        token.to_owned()
    };
    let result = underpass_shared::runtime(1)
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(underpass_connector::enroll::enroll(&token, dir)));
    match result {
        Ok(e) => {
            if let Some(ended) = e.replaced {
                eprintln!(
                    "replaced the certificate that ended at {} (the old files are kept as *.ended)",
                    underpass_pki::rfc3339(ended)
                );
            }
            eprintln!(
                "enrolled as {} at {}: {} (valid until {}), {}, {}",
                e.claims.connector,
                e.edge,
                e.cert.display(),
                underpass_pki::rfc3339(e.not_after),
                e.key.display(),
                e.ca.display()
            );
            print!("{}", underpass_connector::enroll::suggested_config(&e));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("underpass-connector: enrollment failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
