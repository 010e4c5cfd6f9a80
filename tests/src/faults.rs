//! Pieces of the fault injection tests: a seeded random source (the seed is printed, so a
//! failing run can be replayed with `UNDERPASS_FAULT_SEED`), the misbehaving backend
//! (`underpass-fault-backend`) as a process, and what its record and the edge's audit log say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{bin, free_port, Proc};

/// xorshift64*: small, seeded, good enough to pick fault times.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from `UNDERPASS_FAULT_SEED` when set, else from the clock; prints the seed
    /// (with `what`) so a failure can be replayed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("UNDERPASS_FAULT_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{what}: UNDERPASS_FAULT_SEED={seed}");
        Rng::new(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A duration uniform in `lo..=hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }

    /// An independent stream for another thread.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// `underpass-fault-backend` on a fixed port (so it can be killed and started again in its
/// place), recording what reached it into `record`.
pub struct FaultBackend {
    pub port: u16,
    pub record: PathBuf,
    dir: PathBuf,
    /// A command prefix to run it with (e.g. `ip netns exec NS`).
    prefix: Vec<String>,
    pub proc: Option<Proc>,
}

impl FaultBackend {
    pub fn start(dir: &Path) -> FaultBackend {
        Self::start_at(dir, free_port(), &[])
    }

    /// Started on `port`, through `prefix` (a command and its arguments, before the
    /// backend's own, e.g. `ip netns exec NS`), recording into `dir`.
    pub fn start_at(dir: &Path, port: u16, prefix: &[String]) -> FaultBackend {
        let mut b = FaultBackend {
            port,
            record: dir.join("backend-record.jsonl"),
            dir: dir.to_path_buf(),
            prefix: prefix.to_vec(),
            proc: None,
        };
        b.restart();
        b
    }

    /// The URL of a service answered in `mode` by a backend on `port`.
    pub fn url_at(port: u16, mode: &str) -> String {
        format!("http://127.0.0.1:{port}/{mode}/mcp")
    }

    /// The URL of a service answered in `mode` (see the binary's documentation).
    pub fn url(&self, mode: &str) -> String {
        Self::url_at(self.port, mode)
    }

    /// SIGKILL, at once.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Starts it (again) on its port; waits until it listens.
    pub fn restart(&mut self) {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("underpass-fault-backend"));
                c
            }
            None => Command::new(bin("underpass-fault-backend")),
        };
        cmd.args(["--listen", &format!("127.0.0.1:{}", self.port), "--record"])
            .arg(&self.record);
        let mut p = Proc::spawn("fault-backend", &self.dir, &mut cmd);
        p.wait_for_log("listening on", Duration::from_secs(20));
        self.proc = Some(p);
    }

    /// Every line of its record.
    pub fn records(&self) -> Vec<Value> {
        read_jsonl(&self.record)
    }

    /// Request ids of the requests that reached it (in `mode`, or any when `None`).
    pub fn request_ids(&self, mode: Option<&str>) -> BTreeSet<String> {
        self.records()
            .iter()
            .filter(|r| r["event"] == "request")
            .filter(|r| mode.is_none_or(|m| r["mode"] == m))
            .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Requests in `mode` whose peer hung up while this backend stalled or streamed junk.
    pub fn peer_closed(&self, mode: &str) -> usize {
        self.records()
            .iter()
            .filter(|r| r["event"] == "peer_closed" && r["mode"] == mode)
            .count()
    }
}

/// The JSON lines of a file (lines that do not parse are skipped).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The audit trail, by request id: every line that carries one.
pub fn audit_by_request(path: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in read_jsonl(path) {
        if let Some(id) = line["request_id"].as_str() {
            by_id.entry(id.to_owned()).or_default().push(line);
        }
    }
    by_id
}

/// Request ids that reached the backend but have no line in the audit trail at `audit`.
pub fn unaudited(backend: &FaultBackend, audit: &Path) -> Vec<String> {
    let audited = audit_by_request(audit);
    backend
        .request_ids(None)
        .into_iter()
        .filter(|id| !audited.contains_key(id))
        .collect()
}

/// `underpass-edge audit verify FILE`: its exit code and output.
pub fn audit_verify(audit: &Path) -> (i32, String) {
    let out = Command::new(bin("underpass-edge"))
        .args(["audit", "verify"])
        .arg(audit)
        .output()
        .expect("run audit verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
