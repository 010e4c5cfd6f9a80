//! A network namespace joined to the host by a veth pair, with nftables rules that drop a
//! share of the tunnel's UDP packets (this kernel has no netem): packet loss and partitions
//! for the network fault tests. Everything is removed when the guard drops, also when a test
//! fails. Needs root, `ip` (iproute2) and `nft` (nftables); without them the tests fail with a
//! message saying so, they do not skip.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The nftables table the rules live in (inside the namespace only).
const TABLE: &str = "underpass_faults";

/// A network namespace and its veth link to the host.
pub struct NetNs {
    pub name: String,
    host_if: String,
    /// The host's end of the link (where the edge's tunnel listens).
    pub host_addr: Ipv4Addr,
    /// The namespace's end (where the connector's packets come from).
    pub ns_addr: Ipv4Addr,
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Panics with a clear message unless this process may create namespaces and nft rules.
pub fn require_tools() {
    let uid = run(&["id", "-u"]).unwrap_or_default();
    assert_eq!(
        uid.trim(),
        "0",
        "the network fault tests need root (network namespaces, nftables); run them as root \
         (CI does)"
    );
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        assert!(
            run(&[tool, "-V"]).is_ok() || run(&[tool, "--version"]).is_ok(),
            "the network fault tests need `{tool}`: apt-get install -y {package} \
             (tests/run.sh installs it when missing)"
        );
    }
}

impl NetNs {
    /// A fresh namespace with loopback up and a /30 veth link to the host.
    pub fn create() -> NetNs {
        require_tools();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:05}{n}", pid % 100_000);
        let taken = run(&["ip", "-o", "-4", "addr", "show"]).unwrap_or_default();
        // A /30 in 10.213.0.0/16 that no interface uses yet.
        let mut block = (pid.wrapping_mul(7).wrapping_add(n * 13)) % 16_384;
        let (host_addr, ns_addr) = loop {
            let base = (10u32 << 24) | (213 << 16) | (block * 4);
            let host = Ipv4Addr::from(base + 1);
            if !taken.contains(&format!(" {host}/")) {
                break (host, Ipv4Addr::from(base + 2));
            }
            block = (block + 1) % 16_384;
        };
        let ns = NetNs {
            name: format!("upf{tag}"),
            host_if: format!("upf{tag}h"),
            host_addr,
            ns_addr,
        };
        let ns_if = format!("upf{tag}n");
        let steps: Vec<Vec<String>> = vec![
            vec!["ip", "netns", "add", &ns.name],
            vec![
                "ip",
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns_if,
            ],
            vec!["ip", "link", "set", &ns_if, "netns", &ns.name],
            vec![
                "ip",
                "addr",
                "add",
                &format!("{host_addr}/30"),
                "dev",
                &ns.host_if,
            ],
            vec!["ip", "link", "set", &ns.host_if, "up"],
            vec![
                "ip",
                "netns",
                "exec",
                &ns.name,
                "ip",
                "addr",
                "add",
                &format!("{ns_addr}/30"),
                "dev",
                &ns_if,
            ],
            vec![
                "ip", "netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up",
            ],
            vec![
                "ip", "netns", "exec", &ns.name, "ip", "link", "set", "lo", "up",
            ],
        ]
        .into_iter()
        .map(|s| s.into_iter().map(str::to_owned).collect())
        .collect();
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if let Err(e) = run(&args) {
                drop(ns); // removes what was made so far
                panic!("cannot set up a network namespace for the fault tests: {e}");
            }
        }
        ns.nft(&format!(
            "add table inet {TABLE}\n\
             add chain inet {TABLE} in {{ type filter hook input priority 0; }}\n\
             add chain inet {TABLE} out {{ type filter hook output priority 0; }}\n"
        ));
        ns
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(str::to_owned)
            .to_vec()
    }

    /// Runs an nft script inside the namespace; panics (with nft's message) on failure.
    fn nft(&self, script: &str) {
        let path = std::env::temp_dir().join(format!(
            "{}-{}.nft",
            self.name,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, script).expect("write nft script");
        let result = run(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "nft",
            "-f",
            &path.to_string_lossy(),
        ]);
        let _ = std::fs::remove_file(&path);
        if let Err(e) = result {
            panic!("nftables refused the fault rules: {e}");
        }
    }

    /// Drops `percent` % of the UDP packets to and from `port` (the edge's tunnel port) at
    /// random, both ways (replacing any earlier rule); 100 is a partition, 0 lifts it.
    pub fn set_loss(&self, port: u16, percent: u8) {
        let rule = |dir: &str| {
            match percent {
            0 => String::new(),
            p if p >= 100 => format!("add rule inet {TABLE} {} udp {dir} {port} counter drop\n", chain(dir)),
            p => format!(
                "add rule inet {TABLE} {} udp {dir} {port} numgen random mod 100 < {p} counter drop\n",
                chain(dir)
            ),
        }
        };
        fn chain(dir: &str) -> &'static str {
            if dir == "sport" {
                "in"
            } else {
                "out"
            }
        }
        self.nft(&format!(
            "flush chain inet {TABLE} in\nflush chain inet {TABLE} out\n{}{}",
            rule("sport"),
            rule("dport")
        ));
    }

    /// Counts the UDP packets to and from `port` both ways, dropping none (replacing any
    /// earlier rule); [`NetNs::counted`] reads the count.
    pub fn count_udp(&self, port: u16) {
        self.nft(&format!(
            "flush chain inet {TABLE} in\nflush chain inet {TABLE} out\n\
             add rule inet {TABLE} in udp sport {port} counter\n\
             add rule inet {TABLE} out udp dport {port} counter\n"
        ));
    }

    /// Packets the rules in force have counted so far, all rules together.
    pub fn counted(&self) -> u64 {
        self.ruleset()
            .split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// The rules in force with their counters (packets and bytes dropped so far).
    pub fn ruleset(&self) -> String {
        run(&[
            "ip", "netns", "exec", &self.name, "nft", "list", "table", "inet", TABLE,
        ])
        .unwrap_or_else(|e| e)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes started in the namespace belong to their own guards (dropped first);
        // whatever is left, the namespace and both ends of the link go.
        let _ = run(&[
            "ip", "netns", "exec", &self.name, "nft", "delete", "table", "inet", TABLE,
        ]);
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = run(&["ip", "link", "del", &self.host_if]);
    }
}
