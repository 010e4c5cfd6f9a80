//! Traces across the tunnel, against a real OTLP receiver (`tests/peers/otlp-receiver.py`,
//! which decodes with the official OpenTelemetry protobuf definitions): the client's W3C trace
//! (header, or `params._meta.traceparent`) continues through edge → tunnel → connector →
//! backend, each hop a child of the one before; the trace id is in the audit record and the
//! JSON access log; a denial is a failed span; a collector that never answers costs the
//! clients nothing and its lost spans are counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::http;
use underpass_tests::recorder::Recorder;
use underpass_tests::*;

const POLICY: &str = "[[allow]]\nprincipals = [\"anonymous\"]\ntools = [\"echo\"]\n";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The receiver, writing the spans it decodes to `out`; over HTTPS with `tls` (certificate,
/// key).
fn receiver(
    dir: &Path,
    peers: &Peers,
    mode: &str,
    tls: Option<(&Path, &Path)>,
) -> (Proc, u16, PathBuf) {
    let out = dir.join(format!("spans-{mode}.jsonl"));
    let mut command = Command::new(peers.path("VENV_PYTHON"));
    command
        .arg(repo_root().join("tests/peers/otlp-receiver.py"))
        .arg("--out")
        .arg(&out)
        .args(["--mode", mode]);
    if let Some((cert, key)) = tls {
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let mut p = Proc::spawn(&format!("otlp-{mode}"), dir, &mut command);
    p.wait_for_log("listening on", Duration::from_secs(30));
    let port = p
        .log_text()
        .lines()
        .find_map(|l| l.strip_prefix("listening on ")?.trim().parse().ok())
        .expect("receiver port");
    (p, port, out)
}

struct Traced {
    dir: tempfile::TempDir,
    edge_setup: EdgeSetup,
    _edge: Proc,
    _connector: Proc,
}

/// Edge and connector `dc1` (service `rec` from `backend`), both exporting to
/// `endpoint` with the `[telemetry]` keys `telemetry`, JSON access log and audit on.
fn deployment(backend: &str, endpoint: &str, telemetry: &str) -> Traced {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("policy.toml"), POLICY).expect("policy");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let edge_setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("rec", &["dc1"])],
        &format!(
            "access_log = true\n[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n\
             [audit]\nfile = \"audit.jsonl\"\n\
             [telemetry]\nlog_format = \"json\"\notlp_endpoint = \"{endpoint}\"\n{telemetry}\n"
        ),
    );
    let edge = edge_setup.start(dir.path());
    let config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("rec", backend)],
    );
    let text = std::fs::read_to_string(&config).expect("connector config");
    std::fs::write(
        &config,
        format!("{text}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n{telemetry}\n"),
    )
    .expect("connector config");
    let connector = start_connector(dir.path(), "connector", &config);
    edge_setup.wait_ready("rec", Duration::from_secs(30));
    Traced {
        dir,
        edge_setup,
        _edge: edge,
        _connector: connector,
    }
}

fn call(id: u64, tool: &str, meta: Option<&str>) -> Value {
    let mut params = json!({"name": tool, "arguments": {"message": "hi"}});
    if let Some(tp) = meta {
        params["_meta"] = json!({"traceparent": tp});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The spans of `trace` the receiver has decoded so far.
fn spans_now(out: &Path, trace: &str) -> Vec<Value> {
    lines(out)
        .into_iter()
        .filter(|s| s["trace_id"] == trace)
        .collect()
}

/// The spans of `trace` once at least `n` of them arrived (bounded wait).
fn spans_of(out: &Path, trace: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = spans_now(out, trace);
        if spans.len() >= n || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[test]
fn a_call_is_one_trace_from_client_to_backend() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_rx, port, out) = receiver(scratch.path(), &peers, "ok", None);
    let backend = Recorder::start();
    let d = deployment(&backend.url, &format!("http://127.0.0.1:{port}"), "");
    let url = d.edge_setup.url("rec");

    // 1. The client's traceparent header.
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = http::mcp_post(&url, &[("traceparent", &client)], &call(1, "echo", None)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = spans_of(&out, CLIENT_TRACE, 4);
    let server = named(&spans, "tools/call rec");
    let admission = named(&spans, "admission");
    let exchange = named(&spans, "tunnel exchange");
    let backend_span = named(&spans, "backend rec");
    assert_eq!(server["service"], "underpass-edge");
    assert_eq!(server["kind"], "server");
    assert_eq!(
        server["parent_span_id"], CLIENT_SPAN,
        "continues the client's span"
    );
    assert_eq!(server["attributes"]["mcp.method.name"], "tools/call");
    assert_eq!(server["attributes"]["underpass.target"], "echo");
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(admission["parent_span_id"], server["span_id"]);
    assert_eq!(admission["attributes"]["underpass.decision"], "allow");
    assert_eq!(exchange["parent_span_id"], server["span_id"]);
    assert_eq!(exchange["kind"], "client");
    assert_eq!(backend_span["service"], "underpass-connector");
    assert_eq!(
        backend_span["parent_span_id"], exchange["span_id"],
        "the connector's call is a child of the edge's exchange"
    );
    assert_eq!(backend_span["attributes"]["http.response.status_code"], 200);
    for s in [server, admission, exchange, backend_span] {
        assert_eq!(s["status"], 0, "unset (ok): {s}");
        assert!(s["start"].as_u64() <= s["end"].as_u64(), "{s}");
    }
    // The backend's traceparent names the connector's span as its parent.
    let seen = backend
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.method == "tools/call")
        .expect("the backend saw the call");
    let expected = format!(
        "00-{CLIENT_TRACE}-{}-01",
        backend_span["span_id"].as_str().unwrap()
    );
    assert_eq!(seen.header_values("traceparent"), [expected.as_str()]);
    // The trace id is in the audit record and in the JSON access line.
    let request_id = server["attributes"]["underpass.request_id"].clone();
    let audit = lines(&d.dir.path().join("audit.jsonl"));
    let record = audit
        .iter()
        .find(|l| l["request_id"] == request_id && l["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no audit record of {request_id} in {audit:#?}"));
    assert_eq!(record["trace_id"], CLIENT_TRACE);
    let edge_log = std::fs::read_to_string(d.dir.path().join("edge.log")).unwrap();
    let access = edge_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["target"] == "underpass::access" && l["fields"]["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access line in {edge_log}"));
    assert_eq!(access["fields"]["trace_id"], CLIENT_TRACE);

    // 2. No header: the 2026-07-28 `params._meta.traceparent` names the trace.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta = format!("00-{meta_trace}-b7ad6b7169203331-01");
    let r = http::mcp_post(&url, &[], &call(2, "echo", Some(&meta))).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = spans_of(&out, meta_trace, 4);
    assert_eq!(
        named(&spans, "tools/call rec")["parent_span_id"],
        "b7ad6b7169203331"
    );
    named(&spans, "backend rec");

    // 3. A denial: a failed request span and admission span, nothing crossed the tunnel.
    let denied_trace = "11111111111111111111111111111111";
    let tp = format!("00-{denied_trace}-2222222222222222-01");
    let r = http::mcp_post(&url, &[("traceparent", &tp)], &call(3, "forbidden", None)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let spans = spans_of(&out, denied_trace, 2);
    let server = named(&spans, "tools/call rec");
    assert_eq!(server["status"], 2, "error");
    assert_eq!(server["attributes"]["underpass.outcome"], "denied");
    let admission = named(&spans, "admission");
    assert_eq!(admission["attributes"]["underpass.decision"], "deny");
    assert_eq!(admission["status"], 2);
    // A batch leaves every 200 ms: had the refused call crossed, its spans would be here.
    std::thread::sleep(Duration::from_millis(500));
    let all = spans_now(&out, denied_trace);
    assert!(
        all.iter()
            .all(|s| s["name"] != "tunnel exchange" && s["name"] != "backend rec"),
        "{all:#?}"
    );

    // 4. Not sampled by the client: propagated, not recorded.
    let unsampled = "33333333333333333333333333333333";
    let tp = format!("00-{unsampled}-4444444444444444-00");
    let r = http::mcp_post(&url, &[("traceparent", &tp)], &call(4, "echo", None)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let last = backend
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.method == "tools/call")
        .expect("the call");
    let got = last.header_values("traceparent");
    assert!(
        got.len() == 1
            && got[0].starts_with(&format!("00-{unsampled}-"))
            && got[0].ends_with("-00"),
        "{got:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(spans_now(&out, unsampled).is_empty());
}

#[test]
fn a_collector_that_never_answers_costs_clients_nothing_and_lost_spans_are_counted() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_rx, port, _out) = receiver(scratch.path(), &peers, "stall", None);
    let backend = Recorder::start();
    let d = deployment(
        &backend.url,
        &format!("http://127.0.0.1:{port}"),
        "export_queue = 8",
    );
    let url = d.edge_setup.url("rec");
    for id in 0..300 {
        let r = http::mcp_post(&url, &[], &call(id, "echo", None)).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // 300 requests make 900 edge spans; one export is stuck in a post that never ends (5 s
    // before it counts as failed), and the buffer holds 8: the rest are dropped and counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (dropped, text) = loop {
        let text = http::get(&d.edge_setup.admin("/metrics")).unwrap().text();
        let dropped = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("underpass_trace_spans_total{result=\"dropped\"} ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        if dropped > 0.0 || Instant::now() > deadline {
            break (dropped, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(dropped >= 1.0, "dropped spans counted: {text}");
}

#[test]
fn spans_reach_an_https_collector_under_the_configured_ca() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    // The collector's own CA, not the deployment's: its certificate (localhost, 127.0.0.1).
    let collector_pki = Pki::init(&scratch.path().join("collector-pki"));
    let (cert, key) = collector_pki.issue("edge", "collector");
    let (_rx, port, out) = receiver(scratch.path(), &peers, "ok", Some((&cert, &key)));
    let backend = Recorder::start();
    let d = deployment(
        &backend.url,
        &format!("https://127.0.0.1:{port}"),
        &format!("otlp_ca = \"{}\"", collector_pki.ca().display()),
    );
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = http::mcp_post(
        &d.edge_setup.url("rec"),
        &[("traceparent", &traceparent)],
        &call(1, "echo", None),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Both daemons' spans crossed TLS: the edge's three and the connector's backend call.
    let spans = spans_of(&out, CLIENT_TRACE, 4);
    named(&spans, "tools/call rec");
    named(&spans, "tunnel exchange");
    let backend_span = named(&spans, "backend rec");
    assert_eq!(backend_span["service"], "underpass-connector");
}
