//! Bounded under pressure (issue 13, item 7): a tunnel takes at most
//! `[tunnel] max_exchanges_per_tunnel` exchanges at once. When every tunnel that could carry a
//! request is at that cap, the client gets 503 with `Retry-After` at once (no queue builds up
//! at the edge), and calls are served again as soon as room is made.

use std::time::{Duration, Instant};

use serde_json::json;
use underpass_tests::faults::FaultBackend;
use underpass_tests::load::{call_tool, Outcome, Plan};
use underpass_tests::*;

const CAP: usize = 2;

#[test]
fn a_full_tunnel_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let setup = EdgeSetup::write(
        dir.path(),
        false,
        &[("ok", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
    );
    let text = std::fs::read_to_string(&setup.config).expect("edge.toml");
    let text = text.replacen(
        "[tunnel]\n",
        &format!("[tunnel]\nmax_exchanges_per_tunnel = {CAP}\n"),
        1,
    );
    std::fs::write(&setup.config, text).expect("write edge.toml");
    let _edge = setup.start(dir.path());
    let port = free_port();
    let config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &[("ok", &FaultBackend::url_at(port, "ok"))],
    );
    let text = std::fs::read_to_string(&config).expect("connector.toml");
    std::fs::write(&config, format!("tunnels_per_edge = 1\n{text}")).expect("connector.toml");
    let backend = FaultBackend::start_at(dir.path(), port, &[]);
    let _connector = start_connector(dir.path(), "connector", &config);
    setup.wait_ready("ok", Duration::from_secs(30));

    // CAP long calls fill the one tunnel.
    let url = setup.url("ok");
    let mut plan = Plan::new(&url);
    plan.deadline = Duration::from_secs(30);
    let long: Vec<_> = (0..CAP)
        .map(|i| {
            let plan = plan.clone();
            std::thread::spawn(move || {
                call_tool(&plan, &format!("{:032x}", 0xf000 + i), Some(3000))
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend
        .records()
        .iter()
        .filter(|r| r["tool"] == "sleep")
        .count()
        < CAP
    {
        assert!(
            Instant::now() < deadline,
            "the long calls never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // One more: refused at once, with when to come back; the backend never sees it.
    let asked = Instant::now();
    let r = http::mcp_post(
        &url,
        &[("MCP-Protocol-Version", "2025-11-25")],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "over the cap"}}}),
    )
    .expect("the edge answers");
    println!("over the cap: {} after {:?}", r.status, asked.elapsed());
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON-RPC error");
    assert_eq!(body["error"]["code"], -31503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("exchanges in flight")),
        "{body}"
    );
    assert!(
        !backend.records().iter().any(|r| r["tool"] == "echo"),
        "a refused call reached the backend"
    );

    // The long calls finish, and there is room again.
    for call in long {
        assert_eq!(call.join().expect("caller"), Outcome::Ok);
    }
    assert_eq!(
        call_tool(&plan, &format!("{:032x}", 0xf100), None),
        Outcome::Ok
    );
}
