//! `underpass-bench`: what the gateway costs, measured against going direct.
//!
//! Starts everything itself from the release build (a throwaway PKI via `underpass-certs`,
//! `underpass-echo-backend`, an edge with plaintext clients on loopback, anonymous auth and
//! allow-all policy, one connector) and measures the same echo backend **direct** and
//! **through edge + connector**, side by side:
//! - `tools/call` latency (p50/p90/p99/max) and throughput with a 100-byte and a 1 MiB result
//!   at several concurrencies, in both MCP eras (legacy with a session, 2026-07-28 stateless);
//!   closed loop, one HTTP/1.1 keep-alive connection per worker;
//! - resident memory of edge and connector with many idle legacy sessions;
//! - time from SIGTERM of the edge until a `tools/call` through the restarted edge succeeds,
//!   and the same after SIGKILL (a crash: the edge says no goodbye, so the connector learns of
//!   the restart from the new edge's stateless reset);
//! - failover: one of two connectors SIGKILLed under a steady trickle of calls (detection time,
//!   failed calls);
//! - federation: `tools/list` on `/mcp` over ten services, the edge's cache cold and warm,
//!   beside the backend direct and one service through the tunnel (with a wrk cross-check);
//! - mediation: `tools/call` with a rule without obligations and with `redact = ["secrets"]`,
//!   100 B and 1 MiB results (with a wrk cross-check);
//! - transport recovery (root): UDP to the edge dropped and restored with nftables, a
//!   connector with `transport = "auto"` in a network namespace (first call on a UDP-blocked
//!   network, QUIC → TCP and back, failed calls).
//!
//! A third, **reference** path (`relay`, 100-byte results only) goes through two chained
//! `underpass-tcp-relay` processes that do nothing but copy bytes (load generator → relay 1 →
//! relay 2 → echo backend): the floor that any two-process tunnel pays on this machine for two
//! extra TCP hops and process wake-ups. It is reported beside the tunnel, never as a target.
//!
//! With `--peers` it compares Underpass with plain TCP tunnels (rathole, bore) in front of the
//! echo backend and a Node.js chunked backend, with wrk as a second load generator (`peers`).
//!
//! With `--soak DURATION` it runs a soak instead of these phases: a mixed load held that long
//! (small calls, large results, event streams, session churn, policy reloads, connector
//! restarts) with memory, descriptors, threads, tasks and latency reported over time.
//!
//! Prints markdown tables; `--json FILE` writes every figure. Loopback only; every loop is
//! bounded by a deadline.
//!
//! Modules: `plan` (command line, what to measure), `stack` (the processes under test),
//! `client` (MCP over HTTP/1.1), `hist` (latency histogram), `procfs` (process figures),
//! `latency` (latency, throughput and mixed cells), `restart` (edge restarts), `sessions`
//! (idle sessions), `steady` (a trickle of calls timed against events), `failover` (a
//! connector killed), `federation` (`tools/list` on `/mcp` over ten services), `mediation`
//! (what `redact` costs the response path), `recovery`
//! (transport switches), `report` (tables, targets, JSON), `soak` (the soak), `peers`
//! (`--peers`: beside rathole and bore, with wrk too). This file runs the phases in order.
#![forbid(unsafe_code)]

mod client;
mod failover;
mod federation;
mod hist;
mod latency;
mod mediation;
mod peers;
mod plan;
mod procfs;
mod recovery;
mod report;
mod restart;
mod sessions;
mod soak;
mod stack;
mod steady;

use std::time::Instant;

use clap::Parser;

use crate::plan::{Args, Plan, SoakPlan};
use crate::report::Results;
use crate::stack::{Stack, SERVICE};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = Plan::from(&args);
    stack::set_tunnel_env(&args.tunnel_env);
    stack::set_transport(&args.transport);
    if let Some(endpoint) = &args.otlp_endpoint {
        stack::set_otlp_endpoint(endpoint);
    }
    // Control work (restarts, sessions) runs on a small multi-thread runtime; latency cells on
    // `client_threads` current-thread runtimes, one per load thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let clients: Vec<tokio::runtime::Runtime> = (0..args.client_threads.max(1))
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .collect();

    let scratch = tempfile::Builder::new()
        .prefix("underpass-bench-")
        .tempdir()
        .expect("tempdir");
    let dir = scratch.path().to_path_buf();
    if args.keep {
        eprintln!("scratch folder (kept): {}", dir.display());
    }
    let overall = Instant::now();
    if let Some(duration) = args.soak {
        let plan = SoakPlan::from(&args, duration);
        let (tables, doc, failed) = soak::run(&plan, &clients, &dir, args.backend_threads);
        println!("{tables}");
        eprintln!("total {:.1} s", overall.elapsed().as_secs_f64());
        let doc = serde_json::json!({
            "machine": report::machine(),
            "config": {
                "mode": "soak",
                "command": std::env::args().collect::<Vec<_>>().join(" "),
                "client_threads": args.client_threads,
                "backend_threads": args.backend_threads,
                "tunnel_env": args.tunnel_env,
            },
            "soak": doc,
        });
        let written = write_json(args.json.as_deref(), &doc);
        if args.keep {
            let _ = scratch.keep();
        }
        if failed {
            eprintln!("underpass-bench: the soak failed (see Failures above)");
        }
        return if failed || !written {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        };
    }
    if args.peers {
        let mut plan = plan;
        if args.concurrency.is_none() {
            plan.concurrency = vec![1, 64];
        }
        let (tables, doc, failed) = peers::run(&args, &plan, &clients, &dir);
        println!("{tables}");
        eprintln!("total {:.1} s", overall.elapsed().as_secs_f64());
        if let Some(e) = doc["error"].as_str() {
            eprintln!("underpass-bench: {e}");
        }
        let written = write_json(args.json.as_deref(), &doc);
        if args.keep {
            let _ = scratch.keep();
        }
        if failed && doc["error"].is_null() {
            eprintln!("underpass-bench: some peers measurements failed (see above)");
        }
        return if failed || !written {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        };
    }
    eprintln!(
        "starting PKI, echo backend, {}edge and connector in {}",
        if plan.needs_relay() {
            "two TCP relays, "
        } else {
            ""
        },
        dir.display()
    );
    let mut stack = Stack::start(
        &dir,
        args.backend_threads,
        plan.needs_relay(),
        args.audit.edge_table(),
    );
    if args.pause {
        pause(&stack);
    }

    let rows = if plan.runs("latency") {
        latency::latency_phase(&clients, &plan, &stack)
    } else {
        Vec::new()
    };
    // Small calls while large results stream on the same paths.
    let mixed = if plan.runs("mixed") {
        latency::mixed_phase(&clients, &plan, &stack)
    } else {
        Vec::new()
    };
    let (failover, failover_error) = if plan.runs("failover") {
        failover::failover_phase(&rt, &mut stack, &plan)
    } else {
        (Vec::new(), None)
    };
    let (restarts, restart_error) = if plan.runs("restart") {
        restart::restart_phase(&rt, &mut stack, &plan)
    } else {
        (Vec::new(), None)
    };
    let (sessions, session_error) = if plan.runs("sessions") {
        sessions::run_phase(&rt, &mut stack, &plan, args.session_streams)
    } else {
        (Vec::new(), None)
    };
    // Its own edge, connector and backend, in and beside a network namespace.
    let (recovery, recovery_error) = if plan.runs("recovery") {
        recovery::recovery_phase(&rt, &plan, &dir, args.backend_threads, plan.reprobe_secs)
    } else {
        (Vec::new(), None)
    };
    // Its own stacks (ten services on one backend), cold then warm.
    let federation = plan
        .runs("federation")
        .then(|| federation::run(&clients, &plan, &dir, args.backend_threads));
    // Its own stack, whose policy file is rewritten between its cells.
    let mediation = plan
        .runs("mediation")
        .then(|| mediation::run(&clients, &plan, &dir, args.backend_threads));
    let results = Results {
        rows,
        mixed,
        restarts,
        restart_error,
        sessions,
        session_error,
        failover,
        failover_error,
        recovery,
        recovery_error,
        reprobe_secs: plan.reprobe_secs,
    };

    let mut out = report::tables(&plan, &results);
    let targets = report::targets(&plan, &results);
    out.push_str(&report::targets_table(&targets));
    if let Some(f) = &federation {
        out.push_str(&f.table(&plan));
    }
    if let Some(m) = &mediation {
        out.push_str(&m.table(&plan));
    }
    println!("{out}");
    eprintln!("total {:.1} s", overall.elapsed().as_secs_f64());

    let mut doc = report::json(&args, &plan, &results, &targets);
    if let Some(f) = &federation {
        doc["federation"] = f.json();
    }
    if let Some(m) = &mediation {
        doc["mediation"] = m.json();
    }
    if !write_json(args.json.as_deref(), &doc) {
        return std::process::ExitCode::FAILURE;
    }
    if args.keep {
        let _ = scratch.keep();
    }
    if results.failed(&plan)
        || federation.as_ref().is_some_and(federation::Outcome::failed)
        || mediation.as_ref().is_some_and(mediation::Outcome::failed)
    {
        eprintln!("underpass-bench: some measurements failed (see above)");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// Writes `doc` to `path` (if given); false when it cannot.
fn write_json(path: Option<&std::path::Path>, doc: &serde_json::Value) -> bool {
    let Some(path) = path else { return true };
    match std::fs::write(
        path,
        serde_json::to_string_pretty(doc).expect("JSON") + "\n",
    ) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            false
        }
    }
}

/// Prints the process ids and waits for Enter (to attach a profiler).
fn pause(stack: &Stack) {
    eprintln!(
        "paused: edge pid {}, connector pid {}, backend pid {}, tunnel http://127.0.0.1:{}/mcp/{SERVICE}, direct http://{}/mcp — press Enter",
        stack.edge.pid(),
        stack.connector.pid(),
        stack.backend.pid(),
        stack.edge_setup.client_port,
        stack.backend_addr
    );
    if let Some(r) = &stack.relay {
        eprintln!(
            "        relay1 pid {}, relay2 pid {}, relay http://{}/mcp",
            r.relay1.pid(),
            r.relay2.pid(),
            r.addr
        );
    }
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
