//! `underpass-certs`: the command-line face of the Underpass PKI. Parsing and printing only;
//! everything else lives in the library so the edge and the tests can reuse it.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use underpass_pki::issue::HostSan;
use underpass_pki::revoke::{RevokeTarget, RuleTarget};
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
    /// Add a certificate, or a bulk rule, to DIR/revoked.txt.
    ///
    /// `--name N` / `--serial S` revoke one certificate (the connector issuer too: `--name
    /// issuer` refuses every chain it signed; only the root CA cannot be revoked).
    /// `--connector N --before T` / `--all-connectors --before T` append the rule
    /// `before T spiffe://<td>/connector/N` (or `.../connector/*`): every certificate of that
    /// connector (of every connector) issued before T is revoked, ones issued later are not
    /// (incident response: revoke, then re-issue or re-enroll). Edges and connectors reading
    /// the list pick it up within about a second.
    #[command(verbatim_doc_comment)]
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Revoke a serial even if no certificate in DIR has it.
        #[arg(long, requires = "serial")]
        force: bool,
        /// With --connector / --all-connectors: revoke what was issued before this time
        /// (RFC 3339 in UTC, e.g. 2026-11-23T19:00:00Z, or `now`). Default: now.
        #[arg(long, value_name = "RFC3339|now")]
        before: Option<String>,
    },
    /// Create the connector issuer DIR/issuer.crt + DIR/issuer.key (an intermediate CA that may
    /// issue connector identities only), signed by the CA in DIR.
    Issuer {
        #[arg(long)]
        dir: PathBuf,
        /// Lifetime (e.g. 90d, 365d); at most the CA's remaining life.
        #[arg(long, default_value = "365d")]
        ttl: String,
        /// Archive the current issuer (issuer-<serial>.crt/.key) and create a new one.
        #[arg(long)]
        rotate: bool,
    },
    /// One-time enrollment tokens for connectors.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
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
    /// An operator (TLS client) certificate, for the edge's admin API; refused as a client
    /// or a connector.
    Operator {
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
    /// Lifetime (e.g. 2m, 24h, 30d; at least 1m, at most the CA's remaining life). Default 90d.
    #[arg(long)]
    ttl: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a one-time enrollment token (on stdout, alone) for `underpass-connector enroll`.
    Create {
        /// PKI directory holding ca.crt, issuer.crt and issuer.key (ca.key is not needed).
        #[arg(long)]
        dir: PathBuf,
        /// The connector name the token enrolls.
        #[arg(long, allow_hyphen_values = true)]
        connector: String,
        /// HOST:PORT of an edge's tunnel port (TCP), repeatable; tried in order.
        #[arg(long = "edge", value_name = "HOST:PORT", required = true)]
        edges: Vec<String>,
        /// How long the token may be redeemed (at most 7d).
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Services for the suggested connector configuration (comma-separated).
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// Name to check the edge certificate against when HOST is not in it.
        #[arg(long)]
        server_name: Option<String>,
    },
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
    /// Revoke every certificate of connector NAME issued before --before (a rule).
    #[arg(long, allow_hyphen_values = true, value_name = "NAME")]
    connector: Option<String>,
    /// Revoke every connector certificate issued before --before (a rule).
    #[arg(long)]
    all_connectors: bool,
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

/// A token's end (unix seconds) as RFC 3339.
fn time_of(unix: i64) -> String {
    underpass_pki::time::OffsetDateTime::from_unix_timestamp(unix)
        .map_or_else(|_| unix.to_string(), underpass_pki::rfc3339)
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
                IssueKind::Operator { common } => (Role::Operator, common, Vec::new()),
            };
            let issued = match &common.ttl {
                Some(ttl) => underpass_pki::issue::issue_for(
                    &common.dir,
                    role,
                    &common.name,
                    &sans,
                    underpass_pki::ttl::parse(ttl)?,
                )?,
                None => underpass_pki::issue::issue(&common.dir, role, &common.name, &sans)?,
            };
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
        Command::Issuer { dir, ttl, rotate } => {
            let ttl = underpass_pki::ttl::parse(&ttl)?;
            let s = underpass_pki::issuer::create(&dir, ttl, rotate)?;
            if let Some((cert, key)) = &s.archived {
                println!(
                    "archived the previous issuer as {} and {}",
                    cert.display(),
                    key.display()
                );
            }
            println!(
                "created the connector issuer for trust domain {}: {} and {}",
                s.trust_domain,
                s.cert_path.display(),
                s.key_path.display()
            );
            println!("serial:    {}", s.serial);
            println!("not-after: {}", underpass_pki::rfc3339(s.not_after));
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    dir,
                    connector,
                    edges,
                    ttl,
                    services,
                    server_name,
                },
        } => {
            let services: Vec<String> = services
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let created = underpass_pki::token::create(
                &dir,
                &underpass_pki::token::NewToken {
                    connector: &connector,
                    edges: &edges,
                    server_name: server_name.as_deref(),
                    ttl: underpass_pki::ttl::parse(&ttl)?,
                    services: &services,
                },
            )?;
            let until = time_of(created.claims.not_after);
            eprintln!(
                "token for connector {} (id {}), valid until {until}, single use: \
                 underpass-connector enroll --token <TOKEN> --dir <DIR>",
                created.claims.connector,
                created.claims.id_hex()
            );
            println!("{}", created.token);
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
        Command::Revoke {
            dir,
            target,
            force,
            before,
        } => revoke(&dir, target, force, before.as_deref())?,
    }
    Ok(())
}

/// `revoke`: one certificate (`--name`, `--serial`) or a bulk rule (`--connector`,
/// `--all-connectors`).
fn revoke(
    dir: &std::path::Path,
    target: TargetArgs,
    force: bool,
    before: Option<&str>,
) -> anyhow::Result<()> {
    let rule_target = match (target.connector, target.all_connectors) {
        (Some(name), _) => Some(RuleTarget::Connector(name)),
        (None, true) => Some(RuleTarget::AllConnectors),
        (None, false) => None,
    };
    if let Some(rule_target) = rule_target {
        let before = underpass_pki::revocation::parse_time(before.unwrap_or("now"))?;
        let r = underpass_pki::revoke::revoke_before(dir, &rule_target, before)?;
        let line = r.rule.to_line();
        if r.already_listed {
            println!(
                "already listed in {}: {line}; nothing to do",
                r.list_path.display()
            );
        } else {
            println!(
                "revoked every certificate of {} issued before {}: added `{line}` to {}",
                r.rule.subject,
                line.split_whitespace().nth(1).unwrap_or_default(),
                r.list_path.display()
            );
        }
        return Ok(());
    }
    if before.is_some() {
        anyhow::bail!("--before goes with --connector or --all-connectors");
    }
    let target = match (target.name, target.serial) {
        (Some(name), _) => RevokeTarget::Name(name),
        (None, Some(serial)) => RevokeTarget::Serial(serial),
        (None, None) => anyhow::bail!("give --name, --serial, --connector or --all-connectors"),
    };
    let r = underpass_pki::revoke::revoke(dir, &target, force)?;
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
    Ok(())
}
