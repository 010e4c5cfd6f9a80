//! `underpass-certs`: the command-line face of the Underpass PKI. Parsing and printing only;
//! everything else lives in the library so the edge and the tests can reuse it.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use underpass_pki::issue::HostSan;
use underpass_pki::revoke::RevokeTarget;
use underpass_proto::identity::{Role, DEFAULT_TRUST_DOMAIN};

#[derive(Parser)]
#[command(
    name = "underpass-certs",
    version,
    about = "Underpass PKI: CA, certificates for edges, connectors and clients, revocation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new CA: DIR/ca.crt and DIR/ca.key.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Issue a certificate signed by the CA in DIR: DIR/NAME.crt and DIR/NAME.key.
    Issue {
        #[command(subcommand)]
        kind: IssueKind,
    },
    /// Show a certificate's identity, serial and validity.
    Inspect { file: PathBuf },
    /// Add a certificate to DIR/revoked.txt.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Revoke a serial even if no certificate in DIR has it.
        #[arg(long, requires = "serial")]
        force: bool,
    },
    /// Write a new session key (32 random bytes, mode 0600) for the edge's `[sessions] keys`.
    SessionKey {
        /// The file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum IssueKind {
    /// An edge (TLS server) certificate.
    Edge {
        #[command(flatten)]
        common: IssueArgs,
        /// Host name or IP address the edge serves under (repeatable; default: localhost and 127.0.0.1).
        #[arg(long = "san", value_name = "HOST_OR_IP")]
        sans: Vec<String>,
    },
    /// A connector (TLS client) certificate.
    Connector {
        #[command(flatten)]
        common: IssueArgs,
    },
    /// An MCP client (TLS client) certificate.
    Client {
        #[command(flatten)]
        common: IssueArgs,
    },
}

#[derive(Args)]
struct IssueArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Certificate name (also its file name); `-x` is passed on to be reported as invalid.
    #[arg(long, allow_hyphen_values = true)]
    name: String,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// Revoke DIR/NAME.crt.
    #[arg(long, allow_hyphen_values = true)]
    name: Option<String>,
    /// Revoke by serial number (hex; ':' separators and leading zeros allowed).
    #[arg(long)]
    serial: Option<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir, trust_domain } => {
            let ca = underpass_pki::ca::init(&dir, &trust_domain)?;
            println!(
                "created CA for trust domain {}: {} and {}",
                ca.trust_domain,
                ca.cert_path.display(),
                ca.key_path.display()
            );
            println!("serial:    {}", ca.serial);
            println!("not-after: {}", underpass_pki::rfc3339(ca.not_after));
        }
        Command::Issue { kind } => {
            let (role, common, sans) = match kind {
                IssueKind::Edge { common, sans } => (Role::Edge, common, sans),
                IssueKind::Connector { common } => (Role::Connector, common, Vec::new()),
                IssueKind::Client { common } => (Role::Client, common, Vec::new()),
            };
            let issued = underpass_pki::issue::issue(&common.dir, role, &common.name, &sans)?;
            println!(
                "issued {}: {} and {}",
                issued.identity,
                issued.cert_path.display(),
                issued.key_path.display()
            );
            if !issued.hosts.is_empty() {
                let hosts: Vec<String> = issued
                    .hosts
                    .iter()
                    .map(|h| match h {
                        HostSan::Dns(d) => d.clone(),
                        HostSan::Ip(ip) => ip.to_string(),
                    })
                    .collect();
                println!("hosts:     {}", hosts.join(", "));
            }
            println!("serial:    {}", issued.serial);
            println!("not-after: {}", underpass_pki::rfc3339(issued.not_after));
        }
        Command::SessionKey { out } => {
            underpass_pki::session_key::create(&out)?;
            println!(
                "wrote session key {} (32 random bytes, mode 0600): list it in edge.toml \
                 [sessions] keys, the same file on every edge",
                out.display()
            );
        }
        Command::Inspect { file } => {
            print!("{}", underpass_pki::inspect::inspect_file(&file)?);
        }
        Command::Revoke { dir, target, force } => {
            let target = match (target.name, target.serial) {
                (Some(name), _) => RevokeTarget::Name(name),
                (None, Some(serial)) => RevokeTarget::Serial(serial),
                (None, None) => anyhow::bail!("give --name or --serial"),
            };
            let r = underpass_pki::revoke::revoke(&dir, &target, force)?;
            let who = r
                .identity
                .as_ref()
                .map_or_else(|| "unknown identity".to_owned(), ToString::to_string);
            if r.already_listed {
                println!(
                    "already revoked: {} ({who}) is listed in {}; nothing to do",
                    r.serial,
                    r.list_path.display()
                );
            } else {
                if r.unknown_forced {
                    println!(
                        "note: no certificate in {} has serial {}; revoking it anyway (--force)",
                        dir.display(),
                        r.serial
                    );
                }
                println!(
                    "revoked {} ({who}): added to {}",
                    r.serial,
                    r.list_path.display()
                );
            }
        }
    }
    Ok(())
}
