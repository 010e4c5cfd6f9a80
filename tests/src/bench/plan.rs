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
    /// Phases to run: latency, mixed (small calls while 1 MiB results stream), failover (a
    /// connector SIGKILLed), restart, sessions, federation (`tools/list` on `/mcp` over ten
    /// services, cold and warm), recovery (UDP dropped and restored; needs root) (default all).
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
    /// The recovery phase: the connector re-probes QUIC every N–2N s (default: its own
    /// 30–60 s; --smoke 1).
    #[arg(long)]
    pub(crate) reprobe_secs: Option<u64>,
    /// Extra environment for the edge and connector processes only, e.g.
    /// `TOKIO_WORKER_THREADS=1` or `LD_PRELOAD=...` (repeatable; for experiments).
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) tunnel_env: Vec<String>,
    /// The connector's `transport`: `quic` (default), `tcp` (the fallback carrier, TLS over
    /// TCP with HTTP/2 streams) or `auto`. Run the bench once per transport to compare them.
    #[arg(long, default_value = "quic", value_parser = ["quic", "tcp", "auto"])]
    pub(crate) transport: String,
    /// The edge's audit log: none (the default, as the figures in README), `after` (a line
    /// with the outcome after each answer, `write_ahead = false`) or `ahead` (also a
    /// `dispatched` line before each request goes down the tunnel, the default of a configured
    /// `[audit]`). Both write a signed checkpoint per line, as configured by default.
    #[arg(long, value_enum, default_value_t = AuditMode::None)]
    pub(crate) audit: AuditMode,
    /// Export the edge's and the connector's spans to this OTLP/HTTP endpoint
    /// (`[telemetry] otlp_endpoint`, e.g. `tests/peers/otlp-receiver.py`): the cost of
    /// tracing, against a run without it.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// Print the process ids and wait for Enter before the latency phase (to attach a profiler).
    #[arg(long)]
    pub(crate) pause: bool,
    /// Against plain tunnels instead of the phases: the echo backend and a Node.js chunked
    /// backend, each direct, through rathole, through bore and through Underpass (plaintext and
    /// TLS client side), measured by this bench and by wrk (c=1 and c=64 unless --concurrency;
    /// needs wrk, and rathole and bore from tests/bench/install-peers.sh; see README).
    #[arg(long, conflicts_with = "soak")]
    pub(crate) peers: bool,
    /// `--peers`: where rathole and bore are installed (default target/bench-peers/bin).
    #[arg(long, value_name = "DIR")]
    pub(crate) peers_bin: Option<PathBuf>,
    /// Soak instead of the phases: hold a mixed load this long ("30m", "5m", "90s") and report
    /// memory, descriptors, threads, tasks and latency over time (see README, Soak).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak: Option<Duration>,
    /// Soak: one table row per interval (default: a fifth of the run, at most 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak_interval: Option<Duration>,
    /// Soak: how often process figures are sampled (default: a sixth of the interval).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak_sample: Option<Duration>,
    /// Soak: rewrite the policy file and SIGHUP the edge this often (default: half the
    /// interval; 0s = never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak_reload_every: Option<Duration>,
    /// Soak: restart the connector (SIGTERM, start again) this often (default: two intervals;
    /// 0s = never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak_restart_every: Option<Duration>,
    /// Soak: small `tools/call`s per second, both eras together.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) soak_rate: f64,
    /// Soak: 1 MiB results per second, both eras together.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) soak_large_rate: f64,
    /// Soak: legacy GET event streams held open at once (each for up to 10 s, then closed and
    /// its session deleted).
    #[arg(long, default_value_t = 8)]
    pub(crate) soak_streams: usize,
    /// Soak: sessions opened and deleted per second (initialize, a call, a denied call,
    /// DELETE; a new connection each).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) soak_churn_rate: f64,
}

/// `--audit`: what the benchmark's edge writes to its audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuditMode {
    None,
    After,
    Ahead,
}

impl AuditMode {
    /// The `[audit]` table for the edge's config.
    pub(crate) fn edge_table(self) -> &'static str {
        match self {
            AuditMode::None => "",
            AuditMode::After => "[audit]\nfile = \"audit.jsonl\"\nwrite_ahead = false\n",
            AuditMode::Ahead => "[audit]\nfile = \"audit.jsonl\"\nwrite_ahead = true\n",
        }
    }
}

/// A duration as the configs write it: `30m`, `90s`, `1h`, `1500ms`, or bare seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: a number and a unit (ms, s, m, h), e.g. 30m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
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
    pub(crate) reprobe_secs: Option<u64>,
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
                [
                    "latency",
                    "mixed",
                    "failover",
                    "restart",
                    "sessions",
                    "federation",
                    "mediation",
                    "recovery",
                ]
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
            reprobe_secs: a.reprobe_secs.or(a.smoke.then_some(1)),
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

/// What a soak drives and how often it looks (see `soak`).
#[derive(Debug, Clone)]
pub(crate) struct SoakPlan {
    pub(crate) duration: Duration,
    pub(crate) interval: Duration,
    pub(crate) sample: Duration,
    /// Zero: never.
    pub(crate) reload_every: Duration,
    /// Zero: never.
    pub(crate) restart_every: Duration,
    pub(crate) small_rate: f64,
    pub(crate) large_rate: f64,
    pub(crate) streams: usize,
    /// The longest an event stream is held (each holds for a random half to all of it).
    pub(crate) stream_hold: Duration,
    pub(crate) churn_rate: f64,
}

impl SoakPlan {
    pub(crate) fn from(a: &Args, duration: Duration) -> SoakPlan {
        let interval = a
            .soak_interval
            .unwrap_or_else(|| (duration / 5).min(Duration::from_secs(60)))
            .max(Duration::from_millis(200));
        // The interval is a whole number of samples, so that each row ends on a sample.
        let sample = a.soak_sample.unwrap_or(interval / 6);
        let per = (interval.as_secs_f64() / sample.as_secs_f64().max(0.05))
            .ceil()
            .max(1.0);
        SoakPlan {
            duration,
            interval,
            sample: interval.div_f64(per),
            reload_every: a.soak_reload_every.unwrap_or(interval / 2),
            restart_every: a.soak_restart_every.unwrap_or(interval * 2),
            small_rate: a.soak_rate.max(0.0),
            large_rate: a.soak_large_rate.max(0.0),
            streams: a.soak_streams,
            stream_hold: (interval / 2).min(Duration::from_secs(10)),
            churn_rate: a.soak_churn_rate.max(0.0),
        }
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_the_configs_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
