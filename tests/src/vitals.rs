//! The check after every attack of the adversarial suite: the process came through whole.
//! It still serves a legitimate request, and its open file descriptors and resident memory
//! (read from `/proc`) are back near a baseline taken before the attack.
//!
//! The bounds are generous on purpose, relative to the baseline: at most [`FD_SLACK`] more
//! descriptors (a keep-alive connection or two, the audit files), and at most
//! [`RSS_SLACK_KIB`] more resident memory (the allocator keeps some of what an attack made it
//! take, and backs its heap with 2 MiB pages). What they catch is what matters: a descriptor
//! per attacking connection or stream left open, or attack-sized buffers kept after it.
//! Both are polled for up to [`SETTLE`] before a failure is declared (closing and freeing
//! after an attack takes the edge a moment).

use std::time::{Duration, Instant};

/// Descriptors above the baseline still counted as "back".
pub const FD_SLACK: usize = 8;
/// Resident memory (KiB) above the baseline still counted as "back": 64 MiB.
pub const RSS_SLACK_KIB: u64 = 64 * 1024;
/// How long a process gets to come back after an attack.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Open descriptors of `pid` (0 once it is gone).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `f` while sampling the resident memory of `pid` every 10 ms; returns `f`'s result and
/// the highest RSS seen (KiB).
pub fn peak_rss_while<T>(pid: u32, f: impl FnOnce() -> T) -> (T, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = rss_kib(pid);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_kib(pid))
        })
    };
    let out = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    (out, peak)
}

/// A process's descriptors and memory at one moment: the baseline before an attack.
#[derive(Debug, Clone, Copy)]
pub struct Vitals {
    pub pid: u32,
    pub fds: usize,
    pub rss_kib: u64,
}

impl Vitals {
    /// The vitals of `pid` now.
    pub fn of(pid: u32) -> Vitals {
        Vitals {
            pid,
            fds: fds(pid),
            rss_kib: rss_kib(pid),
        }
    }

    /// Waits (at most [`SETTLE`]) until the process's descriptors and memory are within the
    /// bounds of this baseline; panics naming `attack`, with `log()` (the process's log).
    pub fn assert_back(&self, attack: &str, log: impl Fn() -> String) {
        let deadline = Instant::now() + SETTLE;
        let mut now = Vitals::of(self.pid);
        while !self.near(&now) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            now = Vitals::of(self.pid);
        }
        assert!(
            self.near(&now),
            "after {attack}: {} descriptors and {} KiB resident, {} and {} KiB before \
             (allowed: +{FD_SLACK} descriptors, +{RSS_SLACK_KIB} KiB)\nlog:\n{}",
            now.fds,
            now.rss_kib,
            self.fds,
            self.rss_kib,
            log()
        );
        eprintln!(
            "after {attack}: fds {} -> {}, RSS {} -> {} KiB",
            self.fds, now.fds, self.rss_kib, now.rss_kib
        );
    }

    fn near(&self, now: &Vitals) -> bool {
        now.fds > 0 && now.fds <= self.fds + FD_SLACK && now.rss_kib <= self.rss_kib + RSS_SLACK_KIB
    }
}

/// The check after an attack: `serves()` must succeed (a legitimate request, answered as it
/// should be; `Err` says what happened instead), and the process's vitals must come back near
/// `before` (see [`Vitals::assert_back`]).
pub fn assert_survived(
    before: &Vitals,
    attack: &str,
    serves: impl FnOnce() -> Result<(), String>,
    log: impl Fn() -> String,
) {
    if let Err(why) = serves() {
        panic!(
            "after {attack}: a legitimate request was not served: {why}\nlog:\n{}",
            log()
        );
    }
    before.assert_back(attack, log);
}
