//! `--peers`: Underpass beside the plain TCP tunnels users already run, measured by two
//! independent load generators.
//!
//! Two backends (`underpass-echo-backend`, sized answers; `tests/peers/node-echo.mjs`, Node's
//! `http.createServer` with chunked answers), each reached seven ways: direct, through rathole
//! (server + client, TCP transport), through bore (server + `bore local`), through two QUIC
//! references made of the tunnel's own TLS and QUIC settings (`underpass-quic-relay`:
//! `quic-relay` copies bytes on a stream per client connection; `quic-exchange` serves HTTP
//! with hyper and sends each request as an `underpass/1` exchange to hyper-util's client at the
//! other end: Underpass's architecture without the gateway), through Underpass with a
//! plaintext client listener, and through Underpass with TLS on the client listener (edge +
//! connector each). Every path × backend is measured with the bench's own closed-loop
//! generator and with `wrk` (`tests/wrk/tools_call.lua`): a stateless 2026-07-28 `tools/call`
//! with a 100-byte argument, at a low and a high concurrency (1 and 64), with the CPU the
//! path's own processes spend per request, from /proc.
//!
//! Modules: `wrk` (its command line and report), `tunnels` (the peers' processes and
//! rathole's configs), `table` (the markdown table and JSON).

mod table;
mod tunnels;
pub(crate) mod wrk;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::{
    free_port, repo_root, write_connector_config, ConnectorPki, EdgeSetup, Pki, Proc,
};

use crate::client::{connect_to, Caller, Target};
use crate::latency::{measure, Cell};
use crate::plan::{Args, Era, Plan, SMALL};
use crate::stack::{sibling_bin, spawn_connector, spawn_edge, BENCH_CLIENTS, BENCH_EDGE};

use table::PeerCell;
use tunnels::{loopback, Bore, Forward, Programs, QuicRelay, Rathole};

/// The backends, in table order.
pub(crate) const BACKENDS: [&str; 2] = ["rust", "node"];
/// The paths, in table order.
pub(crate) const PATHS: [&str; 7] = [
    "direct",
    "rathole",
    "bore",
    "quic-relay",
    "quic-exchange",
    "underpass",
    "underpass-tls",
];

/// One way to a backend: a target per backend (in [`BACKENDS`] order) and the processes
/// between load generator and backend.
struct Way {
    name: &'static str,
    targets: [Target; 2],
    hops: Vec<(&'static str, u32)>,
}

/// An edge and its connector serving both backends.
struct Underpass {
    setup: EdgeSetup,
    edge: Proc,
    connector: Proc,
    ca: std::path::PathBuf,
}

impl Underpass {
    fn start(
        dir: &Path,
        tls: bool,
        backends: &[(&str, std::net::SocketAddr)],
        audit: &str,
    ) -> Self {
        std::fs::create_dir_all(dir).expect("create Underpass folder");
        let pki = Pki::init(&dir.join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "pc");
        const CONNECTORS: &[&str] = &["pc"];
        let services: Vec<(&str, &[&str])> =
            backends.iter().map(|(n, _)| (*n, CONNECTORS)).collect();
        let setup = EdgeSetup::write(dir, tls, &services, &format!("{BENCH_EDGE}{audit}"));
        setup.add_clients_keys(BENCH_CLIENTS);
        let mut edge = spawn_edge(dir, &setup.config, "edge", &[]);
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        let urls: Vec<(String, String)> = backends
            .iter()
            .map(|(n, a)| ((*n).to_owned(), format!("http://{a}/mcp")))
            .collect();
        let urls: Vec<(&str, &str)> = urls.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
        let config = write_connector_config(
            dir,
            "connector.toml",
            "pc",
            setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &urls,
        );
        let connector = spawn_connector(dir, &config, "connector", &[]);
        for (n, _) in backends {
            setup.wait_ready(n, Duration::from_secs(30));
        }
        Underpass {
            setup,
            edge,
            connector,
            ca: pki.ca(),
        }
    }

    fn target(&self, service: &str) -> Target {
        let t = Target::new(
            ([127, 0, 0, 1], self.setup.client_port).into(),
            &format!("/mcp/{service}"),
        );
        if self.setup.tls {
            t.with_tls(&self.ca)
        } else {
            t
        }
    }
}

/// Calls `t` until one verified `tools/call` succeeds (at most 20 s).
fn probe(rt: &tokio::runtime::Runtime, t: &Target) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let attempt = rt.block_on(async {
            let mut s = connect_to(t).await?;
            let mut c = Caller::new(&mut s, t, Era::Modern, SMALL).await?;
            c.call(&mut s, t, true).await
        });
        match attempt {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{} never answered a tools/call: {last}", t.url()))
}

/// The first line a program prints for `--version` (for the report).
fn version(program: &Path) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

/// Runs the peers comparison; returns the tables, the JSON document and whether it failed.
pub(crate) fn run(
    args: &Args,
    plan: &Plan,
    clients: &[tokio::runtime::Runtime],
    dir: &Path,
) -> (String, Value, bool) {
    let bin_dir = args
        .peers_bin
        .clone()
        .unwrap_or_else(tunnels::default_bin_dir);
    let programs = match Programs::find(&bin_dir) {
        Ok(p) => p,
        Err(e) => return (String::new(), json!({ "error": e }), true),
    };
    eprintln!(
        "starting backends, rathole, bore, the QUIC relay and two Underpass stacks in {}",
        dir.display()
    );
    let rust_addr = loopback();
    let mut rust = Proc::spawn(
        "echo-backend",
        dir,
        std::process::Command::new(sibling_bin("underpass-echo-backend")).args([
            "--listen",
            &rust_addr.to_string(),
            "--threads",
            &args.backend_threads.to_string(),
        ]),
    );
    rust.wait_for_log("listening on", Duration::from_secs(20));
    let node_addr = loopback();
    let node = tunnels::spawn_node_echo(dir, &programs.node, node_addr);
    let backends = [("rust", rust_addr), ("node", node_addr)];
    let backend_pids = [rust.pid(), node.pid()];

    // Each tunnel exposes each backend on a loopback port of its own.
    let forwards = || -> Vec<Forward> {
        backends
            .iter()
            .map(|(name, local)| Forward {
                name: (*name).to_owned(),
                public: ([127, 0, 0, 1], free_port()).into(),
                local: *local,
            })
            .collect()
    };
    let rathole_fw = forwards();
    let rathole = Rathole::start(dir, &programs.rathole, &rathole_fw);
    let bore_fw = forwards();
    let bore = match Bore::start(dir, &programs.bore, &bore_fw) {
        Ok(b) => b,
        Err(e) => return (String::new(), json!({ "error": e }), true),
    };
    let quic_fw = forwards();
    let quic_dir = dir.join("quic-relay");
    std::fs::create_dir_all(&quic_dir).expect("create quic-relay folder");
    let quic_pki = Pki::init(&quic_dir.join("pki"));
    quic_pki.issue("edge", "edge");
    quic_pki.issue("connector", "pc");
    let relay_bin = sibling_bin("underpass-quic-relay");
    let quic = QuicRelay::start(&quic_dir, &relay_bin, &quic_pki, &quic_fw, false);
    let exchange_fw = forwards();
    let exchange = QuicRelay::start(&quic_dir, &relay_bin, &quic_pki, &exchange_fw, true);
    let audit = args.audit.edge_table();
    let plain = Underpass::start(&dir.join("underpass"), false, &backends, audit);
    let tls = Underpass::start(&dir.join("underpass-tls"), true, &backends, audit);

    let direct = |i: usize| Target::new(backends[i].1, "/mcp");
    let via = |fw: &[Forward], i: usize| Target::new(fw[i].public, "/mcp");
    let ways = [
        Way {
            name: "direct",
            targets: [direct(0), direct(1)],
            hops: vec![],
        },
        Way {
            name: "rathole",
            targets: [via(&rathole_fw, 0), via(&rathole_fw, 1)],
            hops: vec![
                ("rathole-server", rathole.server.pid()),
                ("rathole-client", rathole.client.pid()),
            ],
        },
        Way {
            name: "bore",
            targets: [via(&bore_fw, 0), via(&bore_fw, 1)],
            hops: std::iter::once(("bore-server", bore.server.pid()))
                .chain(bore.locals.iter().map(|p| ("bore-local", p.pid())))
                .collect(),
        },
        Way {
            name: "quic-relay",
            targets: [via(&quic_fw, 0), via(&quic_fw, 1)],
            hops: vec![
                ("quic-relay-entry", quic.entry.pid()),
                ("quic-relay-exit", quic.exit.pid()),
            ],
        },
        Way {
            name: "quic-exchange",
            targets: [via(&exchange_fw, 0), via(&exchange_fw, 1)],
            hops: vec![
                ("quic-exchange-entry", exchange.entry.pid()),
                ("quic-exchange-exit", exchange.exit.pid()),
            ],
        },
        Way {
            name: "underpass",
            targets: [plain.target("rust"), plain.target("node")],
            hops: vec![
                ("edge", plain.edge.pid()),
                ("connector", plain.connector.pid()),
            ],
        },
        Way {
            name: "underpass-tls",
            targets: [tls.target("rust"), tls.target("node")],
            hops: vec![("edge", tls.edge.pid()), ("connector", tls.connector.pid())],
        },
    ];
    let script = repo_root().join("tests/wrk/tools_call.lua");
    let wrk_seconds = plan.duration.as_secs_f64().round().max(1.0) as u64;
    let mut cells: Vec<PeerCell> = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    let mut failed = false;
    for (b, &backend) in BACKENDS.iter().enumerate() {
        for way in &ways {
            let t = &way.targets[b];
            if let Err(e) = probe(&clients[0], t) {
                eprintln!("  {:13} {backend:4}: {e}", way.name);
                failed = true;
                continue;
            }
            let mut procs = vec![(backend, backend_pids[b])];
            procs.extend(way.hops.iter().copied());
            let hop_names: Vec<&str> = way.hops.iter().map(|(n, _)| *n).collect();
            for &c in &plan.concurrency {
                let cell = Cell {
                    path: way.name,
                    era: Era::Modern,
                    concurrency: c,
                    payload: SMALL,
                    bulk_workers: 0,
                };
                let row = measure(clients, plan, t.clone(), &procs, cell);
                let bench = PeerCell::from_row(&row, backend, &hop_names);
                eprintln!("{}", bench.progress());
                failed |= bench.failed();
                cells.push(bench);

                let wrk_args = wrk::args(&t.url(), args.client_threads, c, wrk_seconds, &script);
                if plan.warmup >= Duration::from_millis(200) {
                    let warm = wrk::args(&t.url(), args.client_threads, c, 1, &script);
                    let _ = wrk::run(&warm, 1, &[]);
                }
                let pids: Vec<u32> = procs.iter().map(|(_, p)| *p).collect();
                let command = wrk::command_line(&wrk_args);
                let cell = match wrk::run(&wrk_args, wrk_seconds, &pids) {
                    Ok(run) => {
                        PeerCell::from_wrk(way.name, backend, c, &procs, &hop_names, &run, &command)
                    }
                    Err(e) => PeerCell::error(way.name, backend, "wrk", c, e),
                };
                eprintln!("{}", cell.progress());
                failed |= cell.failed();
                commands.push(command);
                cells.push(cell);
            }
        }
    }
    let versions = json!({
        "rathole": version(&programs.rathole),
        "bore": version(&programs.bore),
        "node": version(&programs.node),
        "wrk": version(Path::new("wrk")),
    });
    let out = table::markdown(&cells, &plan.concurrency, &commands, &versions);
    let doc = json!({
        "machine": crate::report::machine(),
        "config": {
            "mode": "peers",
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "duration_s": plan.duration.as_secs_f64(),
            "warmup_s": plan.warmup.as_secs_f64(),
            "wrk_seconds": wrk_seconds,
            "client_threads": args.client_threads,
            "backend_threads": args.backend_threads,
            "tunnel_env": args.tunnel_env,
            "transport": args.transport,
            "versions": versions,
            "wrk_commands": commands,
        },
        "peers": cells.iter().map(PeerCell::json).collect::<Vec<_>>(),
    });
    drop((rathole, bore, quic, exchange, plain, tls, rust, node));
    (out, doc, failed)
}
