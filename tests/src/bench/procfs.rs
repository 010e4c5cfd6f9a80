//! Process figures from /proc: resident memory, threads, open descriptors, CPU time and
//! context switches.

/// A number field of /proc/<pid>/status (`VmRSS:`, `Threads:`), 0 when unreadable.
fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// VmRSS of a process in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// Threads of a process.
pub(crate) fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

/// Open file descriptors of a process (0 when unreadable).
pub(crate) fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// CPU time (ns; utime + stime of /proc/<pid>/stat, which keeps the time of exited threads)
/// and context switches summed over a process's live threads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStat {
    pub(crate) cpu_ns: u64,
    pub(crate) csw: u64,
}

/// Busy CPU time of the whole machine (ns), from /proc/stat.
pub(crate) fn machine_busy_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy * 10_000_000
}

pub(crate) fn proc_stat(pid: u32) -> ProcStat {
    let mut s = ProcStat::default();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        if let Some((_, rest)) = text.rsplit_once(')') {
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if f.len() > 12 {
                s.cpu_ns = (f[11] + f[12]) * 10_000_000; // USER_HZ = 100 on Linux
            }
        }
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return s;
    };
    for t in tasks.flatten() {
        let p = t.path();
        if let Ok(text) = std::fs::read_to_string(p.join("status")) {
            for l in text.lines() {
                if l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
                {
                    s.csw += l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    s
}
