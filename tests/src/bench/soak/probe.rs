//! What the soak reads of the processes under test: resident memory, open descriptors and
//! threads from /proc, tokio tasks from the edge's `/readyz` and from the connector's
//! `runtime stats` log line (written on SIGUSR1).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::{http, EdgeSetup};

use crate::procfs::{fds, rss_kib, threads};

/// One process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Figures {
    pub(crate) pid: u32,
    pub(crate) rss_kib: u64,
    pub(crate) fds: u64,
    pub(crate) threads: u64,
    /// Tokio tasks alive; `None` when the process did not say.
    pub(crate) tasks: Option<u64>,
}

impl Figures {
    fn of(pid: u32, tasks: Option<u64>) -> Figures {
        Figures {
            pid,
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            threads: threads(pid),
            tasks,
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "pid": self.pid,
            "rss_kib": self.rss_kib,
            "fds": self.fds,
            "threads": self.threads,
            "tasks": self.tasks,
        })
    }
}

/// Edge and connector at one moment of the soak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) t: f64,
    pub(crate) edge: Figures,
    pub(crate) connector: Figures,
    /// Legacy sessions the edge holds (`/readyz`).
    pub(crate) sessions: Option<u64>,
    /// When the sampled connector process started (seconds since the load started).
    pub(crate) connector_since: f64,
}

impl Sample {
    pub(crate) fn json(&self) -> Value {
        json!({
            "t_s": (self.t * 10.0).round() / 10.0,
            "edge": self.edge.json(),
            "connector": self.connector.json(),
            "edge_sessions": self.sessions,
            "connector_since_s": (self.connector_since * 10.0).round() / 10.0,
        })
    }
}

/// The lines a log file gained since the last look.
pub(crate) struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    pub(crate) fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    /// Whole lines written since the last call, escape sequences (colours) removed.
    pub(crate) fn lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(cut + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        done.lines().map(strip_ansi).collect()
    }
}

/// `line` without ANSI escape sequences (`ESC [ … letter`).
pub(crate) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `key=` in a log line.
pub(crate) fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The connector's tasks: SIGUSR1, then its `runtime stats` line (waited for up to 2 s).
/// `tail` follows the connector's log. Send it only to a connector that logged `tunnel up`:
/// before the handler is installed, SIGUSR1 ends the process.
pub(crate) fn connector_tasks(pid: u32, tail: &mut LogTail) -> Option<u64> {
    // Lines from before the signal are not the answer.
    let _ = tail.lines();
    let sent = Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let found = tail
            .lines()
            .iter()
            .rev()
            .find(|l| l.contains("runtime stats"))
            .and_then(|l| field(l, "tasks"));
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The edge's tasks and legacy sessions, from `/readyz`.
pub(crate) fn edge_readyz(setup: &EdgeSetup) -> (Option<u64>, Option<u64>) {
    let Ok(r) = http::get(&setup.admin("/readyz")) else {
        return (None, None);
    };
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (v["tasks"].as_u64(), v["sessions"].as_u64())
}

/// Edge and connector now.
pub(crate) fn sample(
    t: f64,
    setup: &EdgeSetup,
    edge_pid: u32,
    (connector_pid, connector_since): (u32, f64),
    connector_log: &mut LogTail,
) -> Sample {
    let (edge_tasks, sessions) = edge_readyz(setup);
    let connector_tasks = connector_tasks(connector_pid, connector_log);
    Sample {
        t,
        edge: Figures::of(edge_pid, edge_tasks),
        connector: Figures::of(connector_pid, connector_tasks),
        sessions,
        connector_since,
    }
}

#[cfg(test)]
mod tests {
    use super::{field, strip_ansi};

    #[test]
    fn runtime_stats_lines_are_read_through_colours() {
        let line = "\u{1b}[2m2026-12-01T10:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \
                    \u{1b}[2munderpass_shared::runtime\u{1b}[0m\u{1b}[2m:\u{1b}[0m runtime stats \
                    \u{1b}[3mtasks\u{1b}[0m\u{1b}[2m=\u{1b}[0m17 \u{1b}[3mfds\u{1b}[0m\u{1b}[2m=\u{1b}[0mSome(12)";
        let plain = strip_ansi(line);
        assert!(plain.contains("runtime stats tasks=17"), "{plain}");
        assert_eq!(field(&plain, "tasks"), Some(17));
        assert_eq!(field(&plain, "threads"), None);
    }
}
