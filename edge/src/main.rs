//! `underpass-edge`: the CLI (run, --check, policy check, audit verify); the gateway is the
//! library, the offline verifier the `underpass-audit` crate.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

// Measured: glibc malloc was a quarter of the connector's CPU per request; mimalloc cut it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use underpass_edge::config::EdgeConfig;

/// Underpass edge: accepts MCP clients and relays them down QUIC tunnels to connectors.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Path to edge.toml (runs the edge when no subcommand is given).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only load and validate the config (with its policy file and session keys), then exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Pre-flight checks: config and policy, authentication, tunnel and client certificates
    /// (identity, expiry, key, chain), client CA, every listen address bindable, audit folder
    /// and signing key, revocation list, enrollment issuer, session keys. Prints a table; exit
    /// status 0 when nothing fails, 1 with any FAIL, 2 when the config cannot be loaded.
    Doctor {
        /// Path to edge.toml.
        #[arg(long)]
        config: PathBuf,
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Prints allow or deny for one call, and the rule that decided.
    Check {
        #[arg(long)]
        config: PathBuf,
        /// e.g. client:alice, apikey:ci-bot, jwt:bob
        #[arg(long)]
        principal: String,
        /// Groups of the principal (as `group:<g>` principals).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        service: String,
        #[arg(long, conflicts_with_all = ["resource", "prompt"])]
        tool: Option<String>,
        #[arg(long, conflicts_with = "prompt")]
        resource: Option<String>,
        #[arg(long)]
        prompt: Option<String>,
        /// Tool arguments as JSON, for argument constraints.
        #[arg(long)]
        arguments: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verifies the hash chain and signed checkpoints of an audit log (and its rotated files).
    /// Exit status: 0 intact, 1 failed verification, 2 intact chain that records lost
    /// records (gaps).
    Verify {
        file: PathBuf,
        /// Expected checkpoint public key (`<file>.pub`); pinning it is stronger than trusting
        /// the copy next to the log.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Checkpoints to check against instead of `<file>.checkpoints`: a copy kept
        /// elsewhere (`[audit] checkpoint_copy`, syslog) catches a log cut short together
        /// with its local checkpoints.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Fail unless the log reaches at least this seq (e.g. the last seq seen before).
        #[arg(long)]
        expect_min_seq: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => match cli.config {
            Some(path) if cli.check => EdgeConfig::load(&path).and_then(|config| {
                let keys = config.sessions.as_ref().map(|s| s.keys.as_slice());
                underpass_edge::sessions::load(keys)?;
                // The policy file too: a rule or detector it refuses is the start's error.
                let policy = config.policy.as_ref().and_then(|p| p.file.as_ref());
                underpass_edge::policy::store::load_store(policy)
                    .context("cannot load the policy")?;
                println!("{}: ok", path.display());
                Ok(())
            }),
            Some(path) => run(&path),
            None => Err(anyhow::anyhow!("--config edge.toml is required")),
        },
        Some(Command::Policy {
            command:
                PolicyCommand::Check {
                    config,
                    principal,
                    groups,
                    service,
                    tool,
                    resource,
                    prompt,
                    arguments,
                },
        }) => policy_check(
            &config, principal, groups, &service, tool, resource, prompt, arguments,
        ),
        Some(Command::Doctor { config, json }) => return doctor(&config, json),
        Some(Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    key,
                    checkpoints,
                    expect_min_seq,
                },
        }) => {
            return audit_verify(
                &file,
                &underpass_audit::VerifyOptions {
                    key,
                    checkpoints,
                    expect_min_seq,
                },
            )
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-edge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `doctor`: the table (or JSON) on stdout; 2 when the config does not load, else 1 with any
/// failed check.
fn doctor(path: &std::path::Path, json: bool) -> ExitCode {
    let load = EdgeConfig::load(path).map_err(|e| format!("{e:#}"));
    let (text, code) = underpass_shared::doctor::report(
        load,
        "edge.toml",
        |config| {
            let mut checks = vec![underpass_edge::doctor::config_check(path, &config)];
            checks.extend(underpass_edge::doctor::run_checks(&config));
            checks
        },
        json,
    );
    print!("{text}");
    ExitCode::from(code)
}

/// Exit status of `audit verify` for an intact chain that records lost records.
const EXIT_GAPS: u8 = 2;

fn audit_verify(file: &std::path::Path, opts: &underpass_audit::VerifyOptions) -> ExitCode {
    let report = match underpass_audit::verify_with(file, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "underpass-edge: error: audit log {} FAILED verification: {e}",
                file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut line = format!(
        "{} records in {} file(s), last seq {:?}, {} checkpoint(s)",
        report.records, report.files, report.last_seq, report.checkpoints
    );
    if report.unsigned_tail > 0 {
        line.push_str(&format!(
            ", {} record(s) after the last checkpoint",
            report.unsigned_tail
        ));
    }
    if report.first_seq > 0 {
        line.push_str(&format!(
            "; records before seq {} were deleted by retention (max_files), as the chain records",
            report.first_seq
        ));
    }
    if report.gaps.is_empty() {
        println!("ok: {line}");
        return ExitCode::SUCCESS;
    }
    println!(
        "INCOMPLETE: the chain is intact ({line}), but the edge recorded {} gap(s): {} record(s) \
         were lost (never written)",
        report.gaps.len(),
        report.lost()
    );
    for g in &report.gaps {
        println!(
            "  gap at seq {}: {} record(s) lost between {} and {} ({})",
            g.seq,
            g.lost,
            g.from,
            g.to,
            g.reasons.join("; ")
        );
    }
    ExitCode::from(EXIT_GAPS)
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = EdgeConfig::load(path)?;
    underpass_shared::init_logging(config.log_format());
    underpass_shared::runtime(config.worker_threads)?.block_on(underpass_edge::run(config))
}

#[allow(clippy::too_many_arguments)] // one per CLI flag
fn policy_check(
    config: &std::path::Path,
    principal: String,
    groups: Vec<String>,
    service: &str,
    tool: Option<String>,
    resource: Option<String>,
    prompt: Option<String>,
    arguments: Option<String>,
) -> anyhow::Result<()> {
    use underpass_edge::policy::{self, Target};
    let config = EdgeConfig::load(config)?;
    let file = config.policy.as_ref().and_then(|p| p.file.clone());
    let policy = policy::store::load_store(file.as_ref())?.get();
    let target = match (&tool, &resource, &prompt) {
        (Some(t), _, _) => Target::Tool(t),
        (_, Some(r), _) => Target::Resource(r),
        (_, _, Some(p)) => Target::Prompt(p),
        _ => Target::Service,
    };
    let arguments: Option<serde_json::Value> = arguments
        .map(|a| serde_json::from_str(&a))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--arguments is not JSON: {e}"))?;
    let mut principals = vec![principal];
    principals.extend(groups.into_iter().map(|g| {
        if g.starts_with("group:") {
            g
        } else {
            format!("group:{g}")
        }
    }));
    let decision = policy.decide(&principals, service, &target, arguments.as_ref());
    println!("{decision}");
    if let Some(rate) = decision.rate {
        println!("rate: {rate}");
    }
    Ok(())
}
