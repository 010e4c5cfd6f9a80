//! The rest of `/metrics`, against real processes: the latency split into edge, tunnel and
//! backend time (the connector reports the backend's), denials by rule, client bytes, event
//! streams open, tunnel RTT and connects, and the figures a connector reports about itself
//! over its control stream (`Stats`: exchanges, stdio processes), all with bounded labels.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use underpass_tests::faults::FaultBackend;
use underpass_tests::http;
use underpass_tests::*;

const POLICY: &str = "[[allow]]\nprincipals = [\"anonymous\"]\ntools = [\"echo\"]\n";

/// The value of the sample `series` (name and labels, exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes `/metrics` until `ready` says the exposition is what the test waits for (bounded:
/// the last scrape is returned either way, for the assertions to explain).
fn scrape_until(d: &Deployment, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http::get(&d.edge_setup.admin("/metrics"))
            .map(|r| r.text())
            .unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "waited for {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn phases_denials_bytes_streams_tunnels_and_connector_figures() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(scratch.path());
    let stdio = format!(
        "[\"{}\", \"{}\", \"stdio\"]",
        peers.path("NODE22"),
        peers.path("SERVER_EVERYTHING")
    );
    let d = Deployment::start_services(
        false,
        &[("ok", &backend.url("ok"), ""), ("local", &stdio, "")],
        "[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n",
        |dir| std::fs::write(dir.join("policy.toml"), POLICY).unwrap(),
    );
    d.edge_setup.wait_ready("local", Duration::from_secs(30));
    let url = d.edge_setup.url("ok");
    let call = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {"message": "hi"}}})
    };
    let mut sent = 0usize;
    let mut received = 0usize;
    for _ in 0..3 {
        let body = call("echo");
        sent += body.to_string().len();
        let r = http::mcp_post(&url, &[], &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        received += r.body.len();
    }
    let denied = http::mcp_post(&url, &[], &call("delete_everything")).unwrap();
    assert_eq!(denied.status, 403, "{}", denied.text());
    let rule = denied.json()["error"]["data"]["rule"]
        .as_str()
        .unwrap_or_else(|| panic!("no data.rule: {}", denied.text()))
        .to_owned();
    // Made-up service and method names.
    for i in 0..3 {
        let made_up = url.replace("/mcp/ok", &format!("/mcp/made-up-{i}"));
        let _ = http::mcp_post(&made_up, &[], &call("echo")).unwrap();
        let odd = json!({"jsonrpc": "2.0", "id": 2, "method": format!("x/made-up-{i}")});
        let _ = http::mcp_post(&url, &[], &odd).unwrap();
    }
    // A session with the stdio backend: a process at the connector while it is open.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "metrics-test", "version": "1"}}});
    let local = d.edge_setup.url("local");
    let r = http::mcp_post(&local, &[], &init).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session id: {:?}", r.headers))
        .to_owned();

    let text = scrape_until(&d, "the connector's Stats and the requests", |t| {
        sample(t, r#"underpass_connector_stdio_processes{connector="dc1"}"#) == Some(1.0)
            && sample(
                t,
                r#"underpass_connector_exchanges_total{connector="dc1",service="ok",result="ok"}"#,
            )
            .is_some_and(|n| n >= 3.0)
            && sample(
                t,
                r#"underpass_request_phase_seconds_count{service="ok",phase="backend"}"#,
            )
            .is_some_and(|n| n >= 3.0)
    });
    // The latency split: the three phases observed for the calls that crossed the tunnel,
    // the backend's time reported by the connector and above zero.
    let phase = |p: &str, what: &str| {
        sample(
            &text,
            &format!(r#"underpass_request_phase_seconds_{what}{{service="ok",phase="{p}"}}"#),
        )
    };
    assert!(phase("backend", "count") >= Some(3.0), "{text}");
    assert!(phase("tunnel", "count") >= Some(3.0), "{text}");
    assert!(phase("backend", "sum") > Some(0.0), "{text}");
    // The denied call and the odd methods never crossed: edge time only.
    assert!(phase("edge", "count") > phase("backend", "count"), "{text}");
    // The denial, under the rule the client was told.
    assert_eq!(
        sample(
            &text,
            &format!(r#"underpass_denials_total{{service="ok",rule="{rule}"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    // Bytes: at least the bodies sent and received.
    let bytes = |dir: &str| {
        sample(
            &text,
            &format!(r#"underpass_client_bytes_total{{service="ok",direction="{dir}"}}"#),
        )
        .unwrap_or(0.0)
    };
    assert!(bytes("in") >= sent as f64, "{sent} sent: {text}");
    assert!(
        bytes("out") >= received as f64,
        "{received} received: {text}"
    );
    // Two tunnels of dc1 (QUIC, or TCP where `auto` fell back), each with its RTT.
    let connects: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"underpass_tunnel_connects_total{connector="dc1","#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(connects >= 2.0, "{text}");
    let rtts = text
        .lines()
        .filter(|l| l.starts_with(r#"underpass_tunnel_rtt_seconds{connector="dc1","#))
        .count();
    assert_eq!(rtts, 2, "{text}");
    // The connector's own account of the tunnels it established.
    let connector_connects: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"underpass_connector_tunnel_connects_total{connector="dc1","#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(connector_connects >= 2.0, "{text}");
    // Nothing a client made up is a label value.
    assert!(!text.contains("made-up"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    // An event stream: counted while open, not after its client leaves.
    let addr = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /mcp/ok/sse HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("event: endpoint") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    scrape_until(&d, "one event stream open", |t| {
        sample(t, r#"underpass_event_streams{service="ok"}"#) == Some(1.0)
    });
    drop(stream);
    scrape_until(&d, "no event stream open", |t| {
        sample(t, r#"underpass_event_streams{service="ok"}"#) == Some(0.0)
    });

    // The stdio session ends: its process goes, and the connector says so.
    let r = http::request(
        "DELETE",
        &local,
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        b"",
    )
    .unwrap();
    assert!(r.status < 300, "{} {}", r.status, r.text());
    scrape_until(&d, "no stdio process", |t| {
        sample(t, r#"underpass_connector_stdio_processes{connector="dc1"}"#) == Some(0.0)
    });
}

/// Over the TCP carrier the RTT is the round trip of the carrier's HTTP/2 keep-alive PING.
#[test]
fn tcp_tunnels_show_their_rtt_and_connects() {
    let scratch = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(scratch.path());
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let edge_setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    let edge = edge_setup.start(dir.path());
    let connector_config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("ok", &backend.url("ok"))],
    );
    prepend_top_level(&connector_config, "transport = \"tcp\"");
    let connector = start_connector(dir.path(), "connector", &connector_config);
    edge_setup.wait_ready("ok", Duration::from_secs(30));
    let d = Deployment {
        dir,
        pki,
        edge_setup,
        edge,
        connector,
        connector_config,
    };
    let text = scrape_until(&d, "the RTT of both TCP tunnels", |t| {
        t.lines()
            .filter(|l| {
                l.starts_with(r#"underpass_tunnel_rtt_seconds{connector="dc1",transport="tcp","#)
            })
            .count()
            == 2
    });
    assert_eq!(
        sample(
            &text,
            r#"underpass_tunnel_connects_total{connector="dc1",transport="tcp"}"#
        ),
        Some(2.0),
        "{text}"
    );
    let rtts: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("underpass_tunnel_rtt_seconds{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    // A measured round trip, not a placeholder.
    assert!(rtts.iter().all(|r| *r > 0.0), "{text}");
}
