//! Real MCP traffic crosses a mutually authenticated QUIC tunnel: official SDK clients and the
//! official conformance suite against `server-everything`, through the real edge and connector.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post};
use underpass_tests::*;

/// What a user checks after pointing an MCP client at the edge: it initializes, sees the tools,
/// calls one, reads a resource, and gets the progress of a long-running tool as it happens.
fn assert_smoke(v: &Value, greeting: &str) {
    assert_eq!(v["serverName"], "mcp-servers/everything", "{v}");
    assert_eq!(v["protocolVersion"], "2025-11-25", "{v}");
    let tools: Vec<&str> = v["toolNames"]
        .as_array()
        .expect("toolNames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"trigger-long-running-operation"),
        "{v}"
    );
    assert_eq!(v["echo"], format!("Echo: {greeting}"), "{v}");
    assert_eq!(
        v["resourceUri"], "demo://resource/static/document/architecture.md",
        "{v}"
    );
    assert!(v["resourceTextLength"].as_u64().unwrap_or(0) > 1000, "{v}");
    assert_live_progress(v);
    assert!(
        v["longRunningResult"]
            .as_str()
            .is_some_and(|s| s.starts_with("Long running operation completed")),
        "{v}"
    );
    assert_eq!(v["terminated"], true, "{v}");
}

/// `server-everything` (Streamable HTTP) behind a connector, the edge serving it over HTTPS.
/// The backend process lives as long as the returned handle.
fn everything_over_https() -> (Peers, Deployment, (Proc, tempfile::TempDir)) {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (backend, backend_url) = start_server_everything(scratch.path(), &peers);
    let d = Deployment::start(true, "everything", &backend_url);
    (peers, d, (backend, scratch))
}

#[test]
fn typescript_sdk_client_through_the_tunnel_over_https() {
    let (peers, d, _backend) = everything_over_https();

    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut ts_client(&peers, &url, &["smoke", "--message=through the tunnel"]),
    );
    assert_smoke(&v, "through the tunnel");
}

#[test]
fn python_sdk_client_through_the_tunnel() {
    let (peers, d, _backend) = everything_over_https();

    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut py_client(&peers, &url, &["smoke", "--message=python via underpass"]),
    );
    assert_smoke(&v, "python via underpass");
}

#[test]
fn https_client_without_the_ca_is_refused() {
    let (peers, d, _backend) = everything_over_https();
    let out = Command::new(peers.path("NODE22"))
        .arg(peers.path("TS_CLIENT"))
        .arg(d.edge_setup.url("everything"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "client trusted an unknown CA:\n{}",
        show(&out)
    );
}

#[test]
fn conformance_parity_with_direct_backend() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_server_everything(scratch.path(), &peers);
    let d = Deployment::start(false, "everything", &backend_url);

    let (direct, direct_failed) = conformance(
        &peers,
        &backend_url,
        "2025-11-25",
        &scratch.path().join("direct"),
    );
    let (tunnel, tunnel_failed) = conformance(
        &peers,
        &d.edge_setup.url("everything"),
        "2025-11-25",
        &scratch.path().join("tunnel"),
    );
    let lost: Vec<&String> = direct.difference(&tunnel).collect();
    assert!(
        lost.is_empty(),
        "scenarios that pass directly but fail through Underpass: {lost:?}\n(all failing through the tunnel: {tunnel_failed:?})\nedge log:\n{}",
        d.edge.log_text()
    );
    // server-everything alone accepts a rebinding Host/Origin and answers 400 for an ended
    // session; the edge owns both checks, so through Underpass they pass.
    for s in ["dns-rebinding-protection", "server-session-lifecycle"] {
        assert!(
            direct_failed.contains(s),
            "{s} now passes against server-everything alone"
        );
        assert!(
            tunnel.contains(s),
            "edge-owned {s} fails through Underpass: {tunnel_failed:?}"
        );
    }
    // The scenarios server-everything is known to pass on its own must be among them: a
    // sanity check that the suite really exercised the tunnel.
    for s in [
        "server-initialize",
        "tools-call-simple-text",
        "resources-list",
        "ping",
    ] {
        assert!(
            tunnel.contains(s),
            "{s} failed through the tunnel: {tunnel:?}"
        );
    }
}

#[test]
fn legacy_sessions_stay_pinned_to_their_connector() {
    // Two connectors, each with its own backend: a session exists only in the backend that
    // answered its initialize, so every request of the session must go to that connector.
    let scratch = tempfile::tempdir().unwrap();
    let (_b1, url1) = start_demo_server(scratch.path());
    let dir = tempfile::tempdir().unwrap();
    let (_b2, url2) = {
        let (p, u) = start_demo_server(dir.path());
        (p, u)
    };
    let pki = Pki::init(&scratch.path().join("pki"));
    pki.issue("edge", "edge");
    let (c1, k1) = pki.issue("connector", "dc1");
    let (c2, k2) = pki.issue("connector", "dc2");
    let edge_setup = EdgeSetup::write(
        scratch.path(),
        false,
        &[("demo", &["dc1", "dc2"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    let _edge = edge_setup.start(scratch.path());
    let cfg1 = write_connector_config(
        scratch.path(),
        "c1.toml",
        "dc1",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &c1,
            key: &k1,
            ca: &pki.ca(),
        },
        &[("demo", &url1)],
    );
    let cfg2 = write_connector_config(
        scratch.path(),
        "c2.toml",
        "dc2",
        edge_setup.tunnel_port,
        ConnectorPki {
            cert: &c2,
            key: &k2,
            ca: &pki.ca(),
        },
        &[("demo", &url2)],
    );
    let _conn1 = start_connector(scratch.path(), "dc1", &cfg1);
    let _conn2 = start_connector(scratch.path(), "dc2", &cfg2);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http::get(&edge_setup.admin("/readyz")).unwrap();
        // Two tunnels per connector (`tunnels_per_edge` by default).
        if r.json()["services"]["demo"] == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both tunnels never came up: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let url = edge_setup.url("demo");
    for _ in 0..4 {
        let init = mcp_post(
            &url,
            &[],
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        )
        .unwrap();
        assert_eq!(init.status, 200, "{}", init.text());
        let sid = init
            .header("mcp-session-id")
            .expect("session id")
            .to_owned();
        let h = [
            ("Mcp-Session-Id", sid.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        let r = mcp_post(
            &url,
            &h,
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        for i in 0..6 {
            let r = mcp_post(
                &url,
                &h,
                &json!({"jsonrpc":"2.0","id":10+i,"method":"tools/call","params":{"name":"echo","arguments":{"message":"pinned"}}}),
            )
            .unwrap();
            assert_eq!(
                r.status,
                200,
                "request {i} of session {sid} went astray: {}",
                r.text()
            );
            let msgs = http::messages(&r);
            assert_eq!(
                msgs.last().map(|m| &m["result"]["content"][0]["text"]),
                Some(&json!("pinned")),
                "{msgs:?}"
            );
        }
        let r = http::request("DELETE", &url, &h, b"").unwrap();
        assert!(
            r.status == 200 || r.status == 202 || r.status == 204,
            "DELETE: {} {}",
            r.status,
            r.text()
        );
        // A deleted session is gone at the edge too.
        let r = mcp_post(
            &url,
            &h,
            &json!({"jsonrpc":"2.0","id":99,"method":"tools/list"}),
        )
        .unwrap();
        assert_eq!(r.status, 404, "{}", r.text());
    }
}

#[test]
fn unknown_service_unknown_session_and_offline_service() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let d = Deployment::start(false, "demo", &backend_url);
    let base = format!("http://127.0.0.1:{}", d.edge_setup.client_port);
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    let r = mcp_post(&format!("{base}/mcp/nope"), &[], &list).unwrap();
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0");
    // Gateway codes sit outside the JSON-RPC reserved range -32768..-32000 (MCP 2026-07-28).
    assert_eq!(v["error"]["code"], -31404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown service"),
        "{v}"
    );

    let r = mcp_post(
        &d.edge_setup.url("demo"),
        &[("Mcp-Session-Id", "not-a-session")],
        &list,
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], -31404);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("session not found"));

    // A service this edge grants but nobody serves right now: 503, not a hang.
    let mut d = d;
    d.connector.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = mcp_post(&d.edge_setup.url("demo"), &[], &list).unwrap();
        if r.status == 503 {
            assert_eq!(r.json()["error"]["code"], -31503, "{}", r.text());
            assert!(r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no connector"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} after the connector stopped",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn edge_restart_recovers_without_restarting_the_connector() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let mut d = Deployment::start(false, "demo", &backend_url);
    let connector_pid = d.connector.pid();
    let echo = |url: &str| {
        mcp_post(
            url,
            &[("MCP-Protocol-Version", "2025-11-25")],
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        )
    };
    assert_eq!(echo(&d.edge_setup.url("demo")).unwrap().status, 200);

    for round in 0..2 {
        d.edge.stop();
        assert!(
            echo(&d.edge_setup.url("demo")).is_err(),
            "edge still answering after stop"
        );
        d.edge = d.edge_setup.start(d.path());
        d.edge_setup.wait_ready("demo", Duration::from_secs(30));
        let r = echo(&d.edge_setup.url("demo")).unwrap();
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    assert!(
        d.connector.alive(),
        "connector exited:\n{}",
        d.connector.log_text()
    );
    assert_eq!(d.connector.pid(), connector_pid);
    assert!(
        d.connector.log_text().contains("reconnecting"),
        "{}",
        d.connector.log_text()
    );
}

/// Inodes of the TCP sockets in LISTEN state on this machine.
fn listening_inodes() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9) {
                    set.insert((*inode).to_owned());
                }
            }
        }
    }
    set
}

#[test]
fn connector_listens_on_no_port() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let d = Deployment::start(false, "demo", &backend_url);
    let listening = listening_inodes();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.connector.pid())).unwrap();
    let mut sockets = 0;
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        if let Some(inode) = target
            .to_string_lossy()
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            sockets += 1;
            assert!(
                !listening.contains(inode),
                "connector has a listening TCP socket (inode {inode})"
            );
        }
    }
    assert!(
        sockets > 0,
        "expected the connector's outbound sockets to be visible"
    );
}

/// Server→client requests cross the tunnel the other way: `server-everything` asks the
/// client for a sampling and an elicitation mid-tool-call, and the official TypeScript
/// client's own callbacks answer.
#[test]
fn sampling_and_elicitation_round_trips_through_the_tunnel() {
    let (peers, d, _backend) = everything_over_https();
    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut ts_client(&peers, &url, &["roundtrips", "--message=tell me a story"]),
    );
    let sampling = v["samplingRequests"].as_array().expect("samplingRequests");
    assert_eq!(sampling.len(), 1, "{v}");
    assert!(
        sampling[0].as_str().unwrap().contains("tell me a story"),
        "{v}"
    );
    assert!(
        v["samplingResult"]
            .as_str()
            .unwrap()
            .contains("sampled by ts-client"),
        "{v}"
    );
    assert_eq!(
        v["elicitationRequests"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    let elicited = v["elicitationResult"].as_str().unwrap();
    assert!(
        elicited.contains("Ada Lovelace") && elicited.contains("Agreed to terms: true"),
        "{v}"
    );
}
