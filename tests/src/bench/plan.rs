//! What to measure: the command line and the plan it makes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The small result size (bytes): a typical tool answer.
pub(crate) const SMALL: usize = 100;
/// The large result size (bytes).
pub(crate) const LARGE: usize = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "underpass-bench",
    version,
    about = "Underpass load generator: direct vs through edge + connector"
)]
pub(crate) struct Args {
    /// Shortened run (under two minutes).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Tiny run of a second or two, to keep the instrument from rotting (used by a test).
    #[arg(long, conflicts_with = "quick")]
    pub(crate) smoke: bool,
    /// Measured seconds per latency cell (default 3; --quick 1; --smoke 0.1).
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Warm-up seconds per latency cell, not measured (default 1; --quick 0.3; --smoke 0.05).
    #[arg(long)]
    pub(crate) warmup: Option<f64>,
    /// Concurrencies (default 1,16,64,256; --smoke 2).
    #[arg(long, value_delimiter = ',')]
    pub(crate) concurrency: Option<Vec<usize>>,
    /// Result sizes in bytes (default 100,1048576).
    #[arg(long, value_delimiter = ',')]
    pub(crate) payloads: Option<Vec<usize>>,
    /// Eras: legacy, modern (default both).
    #[arg(long, value_delimiter = ',')]
    pub(crate) eras: Option<Vec<String>>,
    /// Idle legacy session counts (default 1000,10000; --smoke 50).
    #[arg(long, value_delimiter = ',')]
    pub(crate) sessions: Option<Vec<usize>>,
    /// Also measure idle sessions that each hold a GET event stream open.
    #[arg(long)]
    pub(crate) session_streams: bool,
    /// Edge restarts to time per signal, SIGTERM then SIGKILL (default 3; --quick and --smoke 1).
    #[arg(long)]
    pub(crate) restarts: Option<usize>,
    /// Phases to run: latency, mixed (small calls while 1 MiB results stream), restart,
    /// sessions (default all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) phases: Option<Vec<String>>,
    /// Load-generator threads, each with its own current-thread runtime and a share of the
    /// workers (c=1 uses one).
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// Worker threads of the echo backend (0 = current-thread runtime).
    #[arg(long, default_value_t = 2)]
    pub(crate) backend_threads: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Keep the scratch folder (configs, PKI, logs) and print its path.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Paths to measure in the latency phase: direct, relay (the two-hop TCP relay reference,
    /// 100-byte results only), tunnel (default all three).
    #[arg(long, value_delimiter = ',')]
    pub(crate) paths: Option<Vec<String>>,
    /// A fixed number of measured requests per latency cell instead of a duration (for
    /// syscall and allocation counts; the mixed phase always runs for the duration).
    #[arg(long)]
    pub(crate) requests: Option<u64>,
    /// Extra environment for the edge and connector processes only, e.g.
    /// `TOKIO_WORKER_THREADS=1` or `LD_PRELOAD=...` (repeatable; for experiments).
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) tunnel_env: Vec<String>,
    /// Print the process ids and wait for Enter before the latency phase (to attach a profiler).
    #[arg(long)]
    pub(crate) pause: bool,
}

pub(crate) struct Plan {
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) concurrency: Vec<usize>,
    pub(crate) payloads: Vec<usize>,
    pub(crate) eras: Vec<Era>,
    pub(crate) sessions: Vec<usize>,
    pub(crate) restarts: usize,
    pub(crate) phases: Vec<String>,
    pub(crate) paths: Vec<&'static str>,
    pub(crate) requests: Option<u64>,
    pub(crate) fresh_for_sessions: bool,
}

impl Plan {
    pub(crate) fn from(a: &Args) -> Plan {
        let (d, w, c, s, r) = if a.smoke {
            (0.1, 0.05, vec![2], vec![50], 1)
        } else if a.quick {
            (1.0, 0.3, vec![1, 16, 64, 256], vec![1000, 10000], 1)
        } else {
            (3.0, 1.0, vec![1, 16, 64, 256], vec![1000, 10000], 3)
        };
        let eras = a
            .eras
            .clone()
            .unwrap_or_else(|| vec!["legacy".into(), "modern".into()])
            .iter()
            .map(|e| match e.as_str() {
                "legacy" => Era::Legacy,
                "modern" => Era::Modern,
                other => panic!("unknown era {other:?}: legacy or modern"),
            })
            .collect();
        Plan {
            duration: Duration::from_secs_f64(a.duration.unwrap_or(d)),
            warmup: Duration::from_secs_f64(a.warmup.unwrap_or(w)),
            concurrency: a.concurrency.clone().unwrap_or(c),
            payloads: a.payloads.clone().unwrap_or_else(|| vec![SMALL, LARGE]),
            eras,
            sessions: a.sessions.clone().unwrap_or(s),
            restarts: a.restarts.unwrap_or(r),
            phases: a.phases.clone().unwrap_or_else(|| {
                ["latency", "mixed", "restart", "sessions"]
                    .map(String::from)
                    .to_vec()
            }),
            paths: a
                .paths
                .clone()
                .unwrap_or_else(|| vec!["direct".into(), "relay".into(), "tunnel".into()])
                .iter()
                .map(|p| match p.as_str() {
                    "direct" => "direct",
                    "relay" => "relay",
                    "tunnel" => "tunnel",
                    other => panic!("unknown path {other:?}: direct, relay or tunnel"),
                })
                .collect(),
            requests: a.requests,
            fresh_for_sessions: !a.smoke,
        }
    }
    pub(crate) fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
    /// Whether a latency cell is measured: the relay reference only with small results.
    pub(crate) fn measures(&self, path: &str, payload: usize) -> bool {
        path != "relay" || payload == SMALL
    }
    /// Whether the relay processes are needed at all.
    pub(crate) fn needs_relay(&self) -> bool {
        self.runs("latency")
            && self.paths.contains(&"relay")
            && self.payloads.iter().any(|&p| self.measures("relay", p))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    Legacy,
    Modern,
}

impl Era {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}
