//! `wrk`, the second, independent load generator: its command line and its `--latency`
//! report read back into figures.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::procfs::{machine_busy_ns, proc_stat};

/// What to install when `wrk` is missing.
pub(crate) const INSTALL_HINT: &str =
    "wrk is missing: install it (`apt-get install -y wrk` on Debian, or run tests/bench/install-peers.sh as root)";

/// The figures of one `wrk --latency` run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrkReport {
    pub(crate) p50_us: f64,
    pub(crate) p75_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub(crate) errors: u64,
}

/// A wrk time (`250.00us`, `5.80ms`, `1.02s`, `2.00m`, `1.00h`) in microseconds.
pub(crate) fn parse_time_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// Reads the report `wrk --latency` prints; says what is missing when it is not one.
pub(crate) fn parse(text: &str) -> Result<WrkReport, String> {
    let mut pct = [None; 4];
    let mut requests = None;
    let mut rps = None;
    let mut errors = 0u64;
    for line in text.lines() {
        let l = line.trim();
        let mut words = l.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some(p) = first.strip_suffix('%') {
            // "50%  250.00us" lines of the latency distribution ("93.69%" in the stats
            // header has more words and no time after it).
            let slot = match p {
                "50" => 0,
                "75" => 1,
                "90" => 2,
                "99" => 3,
                _ => continue,
            };
            if let Some(t) = words.next().and_then(parse_time_us) {
                pct[slot] = Some(t);
            }
        } else if l.contains(" requests in ") {
            // "1118581 requests in 10.01s, 143.94MB read"
            let n = first.parse::<u64>().ok();
            let secs = l
                .split(" requests in ")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(parse_time_us)
                .map(|us| us / 1e6);
            requests = n.zip(secs);
        } else if let Some(r) = l.strip_prefix("Requests/sec:") {
            rps = r.trim().parse::<f64>().ok();
        } else if let Some(r) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += r.trim().parse::<u64>().unwrap_or(1);
        } else if let Some(r) = l.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            errors += r
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1))
                .map(|n| n.parse::<u64>().unwrap_or(1))
                .sum::<u64>();
        }
    }
    let [Some(p50_us), Some(p75_us), Some(p90_us), Some(p99_us)] = pct else {
        return Err(format!(
            "no latency distribution in wrk's output (was --latency given?):\n{text}"
        ));
    };
    let (requests, seconds) =
        requests.ok_or_else(|| format!("no \"N requests in T\" line in wrk's output:\n{text}"))?;
    let rps = rps.ok_or_else(|| format!("no Requests/sec line in wrk's output:\n{text}"))?;
    Ok(WrkReport {
        p50_us,
        p75_us,
        p90_us,
        p99_us,
        requests,
        seconds,
        rps,
        errors,
    })
}

/// wrk's arguments for `connections` connections on `threads` threads for `seconds` (wrk
/// takes whole seconds), sending the request of `script`.
pub(crate) fn args(
    url: &str,
    threads: usize,
    connections: usize,
    seconds: u64,
    script: &Path,
) -> Vec<String> {
    vec![
        format!("-t{}", threads.clamp(1, connections.max(1))),
        format!("-c{}", connections.max(1)),
        format!("-d{}s", seconds.max(1)),
        "--timeout".into(),
        "30s".into(),
        "--latency".into(),
        "-s".into(),
        script.display().to_string(),
        url.to_owned(),
    ]
}

/// The command line as a user would type it (for the report).
pub(crate) fn command_line(args: &[String]) -> String {
    std::iter::once("wrk")
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One wrk run with the CPU of `procs` over it.
pub(crate) struct WrkRun {
    pub(crate) report: WrkReport,
    /// CPU ns of each of `procs` over the run.
    pub(crate) cpu_ns: Vec<u64>,
    /// CPU of everything else on the machine (wrk excluded), in % of one core.
    pub(crate) foreign_cpu_pct: f64,
}

/// Runs wrk with `args` (bounded: wrk's own duration plus a minute) and reads its report.
pub(crate) fn run(args: &[String], seconds: u64, procs: &[u32]) -> Result<WrkRun, String> {
    let before: Vec<u64> = procs.iter().map(|p| proc_stat(*p).cpu_ns).collect();
    let (t0, m0) = (Instant::now(), machine_busy_ns());
    let child = Command::new("wrk")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                INSTALL_HINT.to_owned()
            } else {
                format!("cannot start wrk: {e}")
            }
        })?;
    let pid = child.id();
    // wrk's own CPU, sampled while it runs (its /proc entry goes when it exits), so that the
    // "other CPU" column does not count the load generator.
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    let out = std::thread::scope(|scope| {
        let sampler = scope.spawn(move || {
            let mut last = 0;
            let proc_dir = format!("/proc/{pid}");
            // Until wrk is reaped (a zombie keeps its figures), or killed at the deadline.
            while Path::new(&proc_dir).exists() {
                last = last.max(proc_stat(pid).cpu_ns);
                if Instant::now() >= deadline {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last
        });
        let out = child.wait_with_output();
        (out, sampler.join().unwrap_or(0))
    });
    let (out, wrk_ns) = out;
    let after: Vec<u64> = procs.iter().map(|p| proc_stat(*p).cpu_ns).collect();
    let (t1, m1) = (Instant::now(), machine_busy_ns());
    let out = out.map_err(|e| format!("wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report = parse(&stdout)?;
    let cpu_ns: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    let ours = cpu_ns.iter().sum::<u64>() + wrk_ns;
    let foreign_cpu_pct = m1.saturating_sub(m0).saturating_sub(ours) as f64
        / (t1 - t0).as_nanos().max(1) as f64
        * 100.0;
    Ok(WrkRun {
        report,
        cpu_ns,
        foreign_cpu_pct,
    })
}
