use super::table::{markdown, PeerCell};
use super::tunnels::{bore_local_args, rathole_configs, Forward};
use super::wrk::{args, command_line, parse, parse_time_us};

/// `wrk --latency` as wrk 4.1.0 (Debian 12) printed it against node-echo.mjs with
/// tests/wrk/tools_call.lua, on a busy machine (hence the millisecond tail).
const WRK_SAMPLE: &str = "\
Running 1s test @ http://127.0.0.1:39556/mcp
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   787.69us    1.91ms  18.08ms   91.59%
    Req/Sec     4.98k     1.53k    6.90k    50.00%
  Latency Distribution
     50%  143.00us
     75%  278.00us
     90%    2.24ms
     99%   10.40ms
  4964 requests in 1.00s, 1.84MB read
Requests/sec:   4943.96
Transfer/sec:      1.83MB
";

#[test]
fn wrk_times_read_in_every_unit_wrk_prints() {
    assert_eq!(parse_time_us("250.00us"), Some(250.0));
    assert_eq!(parse_time_us("5.80ms"), Some(5800.0));
    assert_eq!(parse_time_us("1.02s"), Some(1_020_000.0));
    assert_eq!(parse_time_us("2.00m"), Some(120_000_000.0));
    assert_eq!(parse_time_us("1.00h"), Some(3_600_000_000.0));
    assert_eq!(parse_time_us("12"), None, "a time has a unit");
    assert_eq!(parse_time_us("1.5parsecs"), None);
    assert_eq!(parse_time_us("us"), None);
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-6, "{got} != {want}");
}

#[test]
fn a_real_wrk_report_reads_into_its_figures() {
    let r = parse(WRK_SAMPLE).expect("wrk report");
    assert_close(r.p50_us, 143.0);
    assert_close(r.p75_us, 278.0);
    assert_close(r.p90_us, 2240.0);
    assert_close(r.p99_us, 10400.0);
    assert_eq!(r.requests, 4964);
    assert!((r.seconds - 1.00).abs() < 1e-9, "{}", r.seconds);
    assert!((r.rps - 4943.96).abs() < 1e-9, "{}", r.rps);
    assert_eq!(r.errors, 0);
}

#[test]
fn wrk_errors_and_non_2xx_answers_are_counted() {
    let text = WRK_SAMPLE.replace(
        "Requests/sec:",
        "  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 40\nRequests/sec:",
    );
    let r = parse(&text).expect("wrk report");
    assert_eq!(r.errors, 46);
}

#[test]
fn wrk_output_without_the_latency_distribution_or_totals_is_refused() {
    let no_latency: String = WRK_SAMPLE
        .lines()
        .filter(|l| !l.trim_start().starts_with("50%"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = parse(&no_latency).expect_err("no p50");
    assert!(e.contains("--latency"), "{e}");
    let no_rps = WRK_SAMPLE.replace("Requests/sec:   4943.96", "");
    assert!(parse(&no_rps).expect_err("no rps").contains("Requests/sec"));
    let no_total = WRK_SAMPLE.replace("4964 requests in 1.00s, 1.84MB read", "");
    assert!(parse(&no_total).is_err());
    assert!(parse("").is_err());
    assert!(parse("wrk: unknown option -- x\nUsage: wrk <options> <url>").is_err());
}

#[test]
fn wrk_is_given_whole_seconds_and_no_more_threads_than_connections() {
    let script = std::path::Path::new("tests/wrk/tools_call.lua");
    let a = args("http://127.0.0.1:1/mcp", 2, 1, 0, script);
    assert_eq!(
        command_line(&a),
        "wrk -t1 -c1 -d1s --timeout 30s --latency -s tests/wrk/tools_call.lua http://127.0.0.1:1/mcp"
    );
    let a = args("https://127.0.0.1:2/mcp/node", 2, 64, 3, script);
    assert!(command_line(&a).starts_with("wrk -t2 -c64 -d3s "), "{a:?}");
    assert_eq!(
        a.last().map(String::as_str),
        Some("https://127.0.0.1:2/mcp/node")
    );
}

fn forwards() -> Vec<Forward> {
    vec![
        Forward {
            name: "rust".into(),
            public: "127.0.0.1:5001".parse().unwrap(),
            local: "127.0.0.1:4001".parse().unwrap(),
        },
        Forward {
            name: "node".into(),
            public: "127.0.0.1:5002".parse().unwrap(),
            local: "127.0.0.1:4002".parse().unwrap(),
        },
    ]
}

#[test]
fn rathole_configs_carry_every_service_over_tcp_with_nodelay() {
    let (server, client) = rathole_configs("127.0.0.1:2333".parse().unwrap(), "tok", &forwards());
    assert_eq!(
        server,
        "[server]\nbind_addr = \"127.0.0.1:2333\"\ndefault_token = \"tok\"\n\n\
         [server.transport]\ntype = \"tcp\"\n\n[server.transport.tcp]\nnodelay = true\n\
         \n[server.services.rust]\nbind_addr = \"127.0.0.1:5001\"\nnodelay = true\n\
         \n[server.services.node]\nbind_addr = \"127.0.0.1:5002\"\nnodelay = true\n"
    );
    assert_eq!(
        client,
        "[client]\nremote_addr = \"127.0.0.1:2333\"\ndefault_token = \"tok\"\n\n\
         [client.transport]\ntype = \"tcp\"\n\n[client.transport.tcp]\nnodelay = true\n\
         \n[client.services.rust]\nlocal_addr = \"127.0.0.1:4001\"\nnodelay = true\n\
         \n[client.services.node]\nlocal_addr = \"127.0.0.1:4002\"\nnodelay = true\n"
    );
    // Loopback only: nothing binds a wildcard address.
    assert!(!server.contains("0.0.0.0") && !client.contains("0.0.0.0"));
}

#[test]
fn bore_local_exposes_the_backend_on_the_chosen_loopback_port() {
    let f = &forwards()[1];
    assert_eq!(
        bore_local_args(f.local, f.public.port()).join(" "),
        "local 4002 --local-host 127.0.0.1 --to 127.0.0.1 --port 5002"
    );
}

fn cell(path: &'static str, generator: &'static str, c: usize, p50: f64, rps: f64) -> PeerCell {
    PeerCell {
        path,
        backend: "node",
        generator,
        concurrency: c,
        p50_us: p50,
        p90_us: p50 * 1.2,
        p99_us: p50 * 2.0,
        rps,
        requests: 1000,
        errors: 0,
        error: None,
        cpu: vec![
            ("node".into(), 30.0),
            ("edge".into(), 20.0),
            ("connector".into(), 25.0),
        ],
        path_cpu_us: 45.0,
        other_cpu_pct: 12.0,
        command: None,
    }
}

#[test]
fn the_table_has_a_row_per_path_backend_and_generator_with_the_added_latency() {
    let cells = vec![
        cell("underpass-tls", "wrk", 1, 400.0, 2500.0),
        cell("underpass-tls", "wrk", 64, 6000.0, 9000.0),
        cell("direct", "wrk", 1, 65.0, 15000.0),
        cell("direct", "wrk", 64, 2000.0, 30000.0),
        cell("direct", "bench", 1, 60.0, 16000.0),
        cell("direct", "bench", 64, 1900.0, 31000.0),
    ];
    let out = markdown(
        &cells,
        &[1, 64],
        &["wrk -t1 -c1 ...".into()],
        &serde_json::json!({}),
    );
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| path"))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    // Direct first (bench, then wrk), then the tunnels; added p50 against direct, same generator.
    assert!(
        rows[0].starts_with("| direct | node | bench | 60 | — |"),
        "{out}"
    );
    assert!(
        rows[1].starts_with("| direct | node | wrk | 65 | — |"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("| underpass-tls | node | wrk | 400 | 335 |"),
        "{out}"
    );
    assert!(rows[2].contains("| 9000 |"), "{out}");
    assert!(
        out.contains("wrk -t1 -c1 ..."),
        "the wrk commands are printed: {out}"
    );
}

#[test]
fn a_failed_cell_reads_failed_and_is_listed_with_its_error() {
    let mut bad = cell("bore", "wrk", 64, 0.0, 0.0);
    bad.errors = 3;
    bad.error = Some("3 socket errors or non-2xx answers".into());
    let cells = vec![cell("bore", "wrk", 1, 150.0, 6000.0), bad.clone()];
    let out = markdown(&cells, &[1, 64], &[], &serde_json::json!({}));
    assert!(out.contains("| failed |"), "{out}");
    assert!(
        out.contains("- bore node wrk c=64: 3 socket errors"),
        "{out}"
    );
    assert!(bad.failed());
    let v = bad.json();
    assert_eq!(v["errors"], 3);
    assert_eq!(v["generator"], "wrk");
    assert_eq!(v["payload_bytes"], 100);
}
