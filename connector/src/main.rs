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
    /// Pre-flight checks: config, certificate (identity, expiry, key, chain), revocation list,
    /// every edge (DNS, a QUIC and a TLS-over-TCP probe with this identity, clock skew) and
    /// every backend (HTTP reachable; stdio program found, not started). Prints a table;
    /// exit status 0 when nothing fails, 1 with any FAIL, 2 when the config cannot be loaded.
    Doctor {
        /// Path to connector.toml.
        #[arg(long)]
        config: PathBuf,
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Asks the running connector whether it is ready, through its loopback `[health]`
    /// listener: prints its `/readyz` answer; exit status 0 when ready, 1 when not (or no
    /// answer), 2 when the config cannot be loaded or has no `[health]`. For probes that can
    /// only run a command (a Kubernetes `exec` probe: the listener is loopback-only).
    Health {
        /// Path to connector.toml.
        #[arg(long)]
        config: PathBuf,
        /// Ask `/healthz` instead (the process is up and answers), for a liveness probe.
        #[arg(long)]
        live: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Enroll { token, dir }) => return enroll(&token, &dir),
        Some(Command::Doctor { config, json }) => return doctor(&config, json),
        Some(Command::Health { config, live }) => return health(&config, live),
        None => {}
    }
    let Some(config) = cli.config else {
        eprintln!("underpass-connector: error: --config connector.toml is required (or a subcommand: enroll)");
        return std::process::ExitCode::FAILURE;
    };
    if cli.check {
        return match underpass_connector::config::ConnectorConfig::load(&config) {
            Ok(loaded) => check_openapi(&config, &loaded),
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

/// `--check` of a config that loads: each `kind = "openapi"` service's document is read too
/// (a file; a URL is fetched when the connector runs), and any that does not load is an error.
fn check_openapi(
    path: &std::path::Path,
    config: &underpass_connector::config::ConnectorConfig,
) -> std::process::ExitCode {
    use underpass_connector::config::BackendConfig;
    let mut ok = true;
    for service in &config.services {
        if let BackendConfig::Openapi(openapi) = &service.backend {
            match underpass_connector::backends::openapi::check(openapi) {
                Ok(what) => println!("service {:?}: {what}", service.name),
                Err(e) => {
                    eprintln!(
                        "underpass-connector: error: service {:?}: {e:#}",
                        service.name
                    );
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return std::process::ExitCode::FAILURE;
    }
    println!("{}: ok", path.display());
    std::process::ExitCode::SUCCESS
}

/// `doctor`: the table (or JSON) on stdout; 2 when the config does not load, else 1 with any
/// failed check.
fn doctor(path: &std::path::Path, json: bool) -> std::process::ExitCode {
    use underpass_connector::doctor::{config_check, run_checks, Scope};
    use underpass_shared::doctor::Check;
    let load =
        underpass_connector::config::ConnectorConfig::load(path).map_err(|e| format!("{e:#}"));
    let (text, code) = underpass_shared::doctor::report(
        load,
        "connector.toml",
        |config| {
            let mut checks = vec![config_check(path, &config)];
            match underpass_shared::runtime(1) {
                Ok(rt) => checks.extend(rt.block_on(run_checks(&config, Scope::Doctor))),
                Err(e) => checks.push(Check::fail("runtime", format!("{e:#}"), "")),
            }
            checks
        },
        json,
    );
    print!("{text}");
    std::process::ExitCode::from(code)
}

/// `health`: `GET /readyz` (or `/healthz`) of the running connector's `[health]` listener.
fn health(path: &std::path::Path, live: bool) -> std::process::ExitCode {
    let listen = match underpass_connector::config::ConnectorConfig::load(path) {
        Ok(config) => match config.health {
            Some(health) => health.listen,
            None => {
                eprintln!(
                    "underpass-connector: error: {} has no [health] listen: add one (a \
                     loopback address) to ask the running connector",
                    path.display()
                );
                return std::process::ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("underpass-connector: error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let answer = underpass_shared::runtime(1)
        .map_err(|e| format!("{e:#}"))
        .and_then(|rt| {
            let path = if live { "/healthz" } else { "/readyz" };
            rt.block_on(underpass_connector::health::ask(listen, path))
        });
    match answer {
        Ok((ready, body)) => {
            println!("{body}");
            if ready {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("underpass-connector: not ready: {e}");
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
