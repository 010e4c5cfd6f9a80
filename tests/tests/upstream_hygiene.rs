//! What reaches backends and what clients learn of them, checked on the wire with the real
//! binaries: per-principal caps at the connector (stdio sessions, exchanges in flight), its
//! open file limit, error bodies that name no internal address, command or connector,
//! forwarding headers set by the edge rather than the client, the configured URL's query, the
//! 2024-11-05 bridge's `Accept`, and how fast connectors recover from an edge crash.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_mcp::jsonrpc::code;
use underpass_tests::http::{self, mcp_post};
use underpass_tests::recorder::Recorder;
use underpass_tests::*;

/// `edge.toml` extra: API keys `key-<name>` for each name (principal `apikey:<name>`), and a
/// policy that allows everything.
fn api_keys(names: &[&str]) -> String {
    let mut extra = "[auth]\n".to_owned();
    for name in names {
        extra.push_str(&format!(
            "[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\n",
            sha256_hex(&format!("key-{name}"))
        ));
    }
    extra.push_str("[policy]\nallow_all = true\n");
    extra
}

fn tool_call(id: u64, name: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":{}}})
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

fn post_as(url: &str, who: &str, body: &Value) -> http::Reply {
    let bearer = format!("Bearer key-{who}");
    mcp_post(url, &[("Authorization", &bearer)], body).expect("POST to the edge")
}

/// Asserts a capacity refusal: status, JSON-RPC code, `Retry-After`, and the config key named.
fn assert_refused(r: &http::Reply, status: u16, rpc: i64, key: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], rpc, "{v}");
    assert!(
        r.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "Retry-After: {:?}",
        r.headers
    );
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains(key),
        "{v}"
    );
}

/// 1,200 long calls of one principal used to take every backend connection (and descriptor)
/// of the connector, so everyone else got 502. Now each principal has a share of the
/// service's exchanges in flight; beyond it, 429 at once (never queued), and beyond the
/// service's total, 503, both with `Retry-After`.
#[test]
fn one_principal_cannot_take_every_backend_connection() {
    let backend = Recorder::start();
    let d = Deployment::start_services(
        false,
        &[(
            "rec",
            &backend.url,
            "max_concurrent = 3\nmax_concurrent_per_principal = 2",
        )],
        &api_keys(&["alice", "bob", "carol"]),
        |_| {},
    );
    let url = d.edge_setup.url("rec");
    let hold = |who: &'static str, id: u64| {
        let url = url.clone();
        std::thread::spawn(move || post_as(&url, who, &tool_call(id, "hold")))
    };
    let alice = [hold("alice", 1), hold("alice", 2)];
    backend.wait_held(2, Duration::from_secs(30));

    let r = post_as(&url, "alice", &tool_call(3, "echo"));
    assert_refused(&r, 429, code::RATE_LIMITED, "max_concurrent_per_principal");
    assert_eq!(backend.tool_calls("echo"), 0, "refused at the connector");
    let r = post_as(&url, "bob", &tool_call(4, "echo"));
    assert_eq!(r.status, 200, "others are not starved: {}", r.text());

    let bob = hold("bob", 5);
    backend.wait_held(3, Duration::from_secs(30));
    let r = post_as(&url, "carol", &tool_call(6, "echo"));
    assert_refused(&r, 503, code::UNAVAILABLE, "max_concurrent");

    backend.release();
    for call in alice.into_iter().chain([bob]) {
        let r = call.join().expect("hold call");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = post_as(&url, "alice", &tool_call(7, "echo"));
    assert_eq!(r.status, 200, "places are returned: {}", r.text());
}

/// 32 `initialize` calls of one principal used to take every stdio process of the service.
/// Now `max_processes_per_principal` bounds each principal (429), `max_processes` the service
/// (503), and the 503 names a key that exists.
#[test]
fn one_principal_cannot_take_every_stdio_process() {
    let peers = Peers::get();
    let command = format!(
        "[\"{}\", \"{}\", \"stdio\"]",
        peers.path("NODE22"),
        peers.path("SERVER_EVERYTHING")
    );
    let d = Deployment::start_services(
        false,
        &[(
            "files",
            &command,
            "max_processes = 2\nmax_processes_per_principal = 1\nidle_timeout_secs = 60",
        )],
        &api_keys(&["alice", "bob", "carol"]),
        |_| {},
    );
    let url = d.edge_setup.url("files");
    let r = post_as(&url, "alice", &initialize());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_as(&url, "alice", &initialize());
    assert_refused(&r, 429, code::RATE_LIMITED, "max_processes_per_principal");
    let r = post_as(&url, "bob", &initialize());
    assert_eq!(
        r.status,
        200,
        "another principal still gets a process: {}",
        r.text()
    );
    let r = post_as(&url, "carol", &initialize());
    assert_refused(&r, 503, code::UNAVAILABLE, "`max_processes`");
}

/// A tiny stdio MCP server (the peers' Python): answers every request, `initialize` with a
/// 2025-11-25 result.
const TINY_STDIO_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" in m and "method" in m:
        r = {}
        if m["method"] == "initialize":
            r = {"protocolVersion": "2025-11-25", "capabilities": {},
                 "serverInfo": {"name": "tiny", "version": "0"}}
        print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

/// Without any cap configured, one principal gets a fair share of the 32 default processes
/// (8), not all of them: the 9th `initialize` is 429, another principal's is served.
#[test]
fn stdio_defaults_give_each_principal_a_fair_share() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("tiny.py");
    std::fs::write(&script, TINY_STDIO_SERVER).unwrap();
    let command = format!(
        "[\"{}\", \"{}\"]",
        peers.path("VENV_PYTHON"),
        script.display()
    );
    let d = Deployment::start_services(
        false,
        &[("tiny", &command, "")],
        &api_keys(&["alice", "bob"]),
        |_| {},
    );
    let url = d.edge_setup.url("tiny");
    for n in 1..=8 {
        let r = post_as(&url, "alice", &initialize());
        assert_eq!(r.status, 200, "session {n}: {}", r.text());
    }
    let r = post_as(&url, "alice", &initialize());
    assert_refused(&r, 429, code::RATE_LIMITED, "max_processes_per_principal");
    let r = post_as(&url, "bob", &initialize());
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The connector raises its soft open file limit to the hard limit at start (a soft limit of
/// 1,024 was what one principal's burst exhausted).
#[test]
fn the_connector_raises_its_open_file_limit() {
    let hard = limits_of("self").1;
    if hard.is_some_and(|h| h <= 256) {
        eprintln!("hard open file limit {hard:?}: nothing to raise here");
        return;
    }
    let backend = Recorder::start();
    let mut d = Deployment::start(false, "rec", &backend.url);
    d.connector.stop();
    let mut low = Proc::spawn(
        "connector-low-limit",
        d.path(),
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -Sn 256 && exec \"$0\" --config \"$1\"")
            .arg(bin("underpass-connector"))
            .arg(&d.connector_config)
            .env("RUST_LOG", "info"),
    );
    low.wait_for_log("dialing edge", Duration::from_secs(20));
    let (soft, hard) = limits_of(&low.pid().to_string());
    assert_eq!(soft, hard, "soft limit raised to the hard limit");
    assert!(soft.is_none_or(|s| s > 256), "{soft:?}");
}

/// (soft, hard) "Max open files" of /proc/<pid>/limits; `None` is unlimited.
fn limits_of(pid: &str) -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let value = |s: &str| s.parse::<u64>().ok();
    (value(fields[0]), value(fields[1]))
}

/// A 502 used to tell any authenticated client the backend URL, the stdio command or the
/// connector's name. Now the body says what failed with a reference; the details are in the
/// log line with the same reference.
#[test]
fn error_bodies_name_no_backend_command_or_connector() {
    let closed = free_port();
    let http_url = format!("http://127.0.0.1:{closed}/secret-path/mcp");
    let sse_url = format!("sse:http://127.0.0.1:{closed}/secret-sse");
    let mut d = Deployment::start_services(
        false,
        &[
            ("gone", &http_url, ""),
            (
                "nocmd",
                "[\"/nonexistent/secret-server\", \"--token=s3cret\"]",
                "",
            ),
            (
                "dies",
                "[\"/bin/sh\", \"-c\", \"echo secret-stderr >&2; exit 3\"]",
                "",
            ),
            ("oldgone", &sse_url, ""),
        ],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        |_| {},
    );
    for service in ["nocmd", "dies", "oldgone"] {
        d.edge_setup.wait_ready(service, Duration::from_secs(30));
    }
    let leaks = [
        "secret".to_owned(),
        "s3cret".to_owned(),
        "/bin/sh".to_owned(),
        "nonexistent".to_owned(),
        format!(":{closed}"),
        "dc1".to_owned(),
    ];
    let check = |service: &str, r: &http::Reply| -> String {
        assert_eq!(r.status, 502, "{service}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], code::UPSTREAM_FAILED, "{service}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        let reference = message
            .split("(ref ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("{service}: no reference in {message:?}"))
            .to_owned();
        // The reference is random hex, so it may spell "dc1" by chance; only the rest of
        // the body must not name what the client may not know.
        let text = r.text().replace(&reference, "REF");
        for leak in &leaks {
            assert!(
                !text.contains(leak.as_str()),
                "{service} leaks {leak:?}: {text}"
            );
        }
        reference
    };

    let r = mcp_post(&d.edge_setup.url("gone"), &[], &tool_call(1, "echo")).unwrap();
    let reference = check("gone", &r);
    let log = d.connector.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&reference) && l.contains("secret-path")),
        "the connector log has the details under {reference}:\n{log}"
    );
    for service in ["nocmd", "dies", "oldgone"] {
        let r = mcp_post(&d.edge_setup.url(service), &[], &initialize()).unwrap();
        let reference = check(service, &r);
        assert!(
            d.connector.log_text().contains(&reference),
            "{service}: {reference} not in the connector log"
        );
    }

    // A tunnel that fails mid-exchange: the connector dies without a word.
    let pid = d.connector.pid().to_string();
    run_ok(Command::new("kill").args(["-KILL", &pid]));
    d.connector.wait_exit(Duration::from_secs(10));
    let r = mcp_post(&d.edge_setup.url("gone"), &[], &tool_call(2, "echo")).unwrap();
    let reference = check("the tunnel", &r);
    let edge_log = d.edge.log_text();
    assert!(
        edge_log
            .lines()
            .any(|l| l.contains(&reference) && l.contains("connector \"dc1\"")),
        "the edge log has the connector under {reference}:\n{edge_log}"
    );
}

/// Forwarding headers reach the backend as the edge observed the request, whatever the client
/// claimed; the configured URL's query parameters cannot be repeated by the client.
#[test]
fn forwarding_headers_and_query_are_the_edges() {
    let backend = Recorder::start();
    let d = Deployment::start(false, "rec", &format!("{}?tenant=acme", backend.url));
    let url = d.edge_setup.url("rec");
    let port = d.edge_setup.client_port;
    let spoofed = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example.com"),
        ("X-Forwarded-Proto", "gopher"),
        ("X-Forwarded-Port", "1"),
        ("Forwarded", "for=6.6.6.6;host=evil.example.com"),
        ("X-Real-IP", "6.6.6.6"),
    ];
    let r = mcp_post(&url, &spoofed, &tool_call(1, "echo")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = backend.seen();
    let call = seen
        .iter()
        .find(|s| s.method == "tools/call")
        .expect("the call");
    let host = format!("127.0.0.1:{port}");
    assert_eq!(call.header_values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(call.header_values("x-forwarded-proto"), ["http"]);
    assert_eq!(call.header_values("x-forwarded-host"), [host.as_str()]);
    assert_eq!(
        call.header_values("forwarded"),
        [format!("for=127.0.0.1;proto=http;host=\"{host}\"").as_str()]
    );
    assert!(call.header_values("x-real-ip").is_empty(), "{call:?}");
    assert!(
        call.header_values("x-forwarded-port").is_empty(),
        "{call:?}"
    );
    assert_eq!(call.uri, "/mcp?tenant=acme");

    // The client's query follows the configured one; it may not set a parameter again.
    let r = mcp_post(&format!("{url}?x=1"), &[], &tool_call(2, "echo")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        backend
            .seen()
            .last()
            .map(|s| s.uri.clone())
            .unwrap_or_default(),
        "/mcp?tenant=acme&x=1"
    );
    let before = backend.seen().len();
    for query in ["tenant=evil", "x=1&tenant=evil", "%74enant=evil"] {
        let r = mcp_post(&format!("{url}?{query}"), &[], &tool_call(3, "echo")).unwrap();
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code::INVALID_REQUEST, "{query}");
    }
    assert_eq!(backend.seen().len(), before, "refused before the backend");
}

/// W3C Trace Context reaches the backend on every request: the client's trace continued
/// (same trace id and flags, a parent id of the hop's own, its `tracestate` kept), or a new
/// sampled trace when the client sent none or a malformed one (whose `tracestate` is dropped).
/// The trace id is the one the edge uses (`x-underpass-trace-id`).
#[test]
fn the_backend_gets_a_traceparent_on_every_request() {
    let backend = Recorder::start();
    let d = Deployment::start(false, "rec", &backend.url);
    let url = d.edge_setup.url("rec");
    let last_call = || {
        backend
            .seen()
            .into_iter()
            .rev()
            .find(|s| s.method == "tools/call")
            .expect("a call")
    };
    let fields = |tp: &str| -> Vec<String> { tp.split('-').map(str::to_owned).collect() };

    let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let r = mcp_post(
        &url,
        &[("traceparent", client), ("tracestate", "vendor=x")],
        &tool_call(1, "echo"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let call = last_call();
    let got = call.header_values("traceparent");
    assert_eq!(got.len(), 1, "{call:?}");
    let f = fields(got[0]);
    assert_eq!(f[0], "00");
    assert_eq!(
        f[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the client's trace"
    );
    assert_ne!(f[2], "00f067aa0ba902b7", "the hop's own parent id");
    assert_eq!(f[2].len(), 16);
    assert_eq!(f[3], "00", "the client's flags");
    assert_eq!(call.header_values("tracestate"), ["vendor=x"]);
    assert_eq!(
        call.header_values("x-underpass-trace-id"),
        ["4bf92f3577b34da6a3ce929d0e0e4736"]
    );

    for sent in [None, Some("00-xyz-00f067aa0ba902b7-01")] {
        let mut headers = vec![("tracestate", "vendor=x")];
        headers.extend(sent.map(|tp| ("traceparent", tp)));
        let r = mcp_post(&url, &headers, &tool_call(2, "echo")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let call = last_call();
        let got = call.header_values("traceparent");
        assert_eq!(got.len(), 1, "{sent:?}: {call:?}");
        let f = fields(got[0]);
        assert_eq!(f.len(), 4, "{got:?}");
        assert_eq!(f[1].len(), 32, "{got:?}");
        assert_eq!(f[3], "01", "a new trace is sampled");
        assert_eq!(call.header_values("x-underpass-trace-id"), [f[1].as_str()]);
        assert!(
            call.header_values("tracestate").is_empty(),
            "{sent:?}: {call:?}"
        );
    }
}

/// A 2024-11-05 client at `/mcp/{service}/sse`: once initialized, the bridge opens the
/// backend's GET stream with one `Accept: text/event-stream` (it used to send two), and its
/// exchanges carry the edge's forwarding headers.
#[test]
fn legacy_bridge_listens_with_one_accept_header() {
    let backend = Recorder::start();
    let d = Deployment::start(false, "rec", &backend.url);
    let port = d.edge_setup.client_port;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /mcp/rec/sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\
         X-Forwarded-For: 6.6.6.6\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut endpoint = None;
    for _ in 0..50 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(path) = line.trim().strip_prefix("data: ") {
            endpoint = Some(path.to_owned());
            break;
        }
    }
    let endpoint = endpoint.expect("an endpoint event");
    let post = format!("http://127.0.0.1:{port}{endpoint}");
    let r = mcp_post(&post, &[], &initialize()).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let r = mcp_post(&post, &[], &initialized).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());

    let deadline = Instant::now() + Duration::from_secs(20);
    let get = loop {
        if let Some(get) = backend.seen().into_iter().find(|s| s.http_method == "GET") {
            break get;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge never listened: {:?}",
            backend.seen()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        get.header_values("accept"),
        ["text/event-stream"],
        "{get:?}"
    );
    assert!(get.header_values("content-type").is_empty(), "{get:?}");
    let init = backend
        .seen()
        .into_iter()
        .find(|s| s.method == "initialize")
        .expect("initialize reached the backend");
    assert_eq!(
        init.header_values("x-forwarded-for"),
        ["127.0.0.1"],
        "{init:?}"
    );
    drop(reader);
}

/// After an edge is killed (SIGKILL: no goodbye to its connectors) and restarted on the same
/// ports, the connector used to keep the dead tunnel until the QUIC idle timeout (503 for
/// ~13 s). The restarted edge now answers the old tunnel's packets with a stateless reset,
/// so the connector learns it at its next keep-alive, says so, and dials again.
#[test]
fn a_restarted_edge_resets_the_old_tunnels() {
    let backend = Recorder::start();
    let mut d = Deployment::start(false, "rec", &backend.url);
    let url = d.edge_setup.url("rec");
    assert_eq!(
        mcp_post(&url, &[], &tool_call(1, "echo")).unwrap().status,
        200
    );

    let pid = d.edge.pid().to_string();
    run_ok(Command::new("kill").args(["-KILL", &pid]));
    d.edge.wait_exit(Duration::from_secs(10));
    d.edge = d.edge_setup.start(d.path());
    d.connector
        .wait_for_log("tunnel closed:", Duration::from_secs(30));
    let log = d.connector.log_text();
    let closed = log
        .lines()
        .find(|l| l.contains("tunnel closed:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        closed.contains("reset"),
        "the connector learned of the restart from a stateless reset, not a timeout: {closed}"
    );
    d.edge_setup.wait_ready("rec", Duration::from_secs(30));
    let r = mcp_post(&url, &[], &tool_call(2, "echo")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}
