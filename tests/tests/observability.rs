//! What an operator watches, against real processes: `GET /metrics` on the edge's admin
//! listener (an allowed call, a denied one and requests for services and methods a client made
//! up are counted in `underpass_requests_total{service,method,outcome}` with bounded labels,
//! the live tunnels in `underpass_tunnels{connector,transport}`), and `log_format = "json"`.

use std::time::Duration;

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

#[test]
fn requests_and_tunnels_are_counted_with_bounded_labels() {
    let scratch = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(scratch.path());
    let d = Deployment::start_prepared(
        false,
        "ok",
        &backend.url("ok"),
        "log_format = \"json\"\naccess_log = true\n[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n\
         [audit]\nfile = \"audit.jsonl\"\n",
        |dir| std::fs::write(dir.join("policy.toml"), POLICY).unwrap(),
    );
    d.edge_setup.wait_ready("ok", Duration::from_secs(30));
    let url = d.edge_setup.url("ok");
    let call = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {"message": "hi"}}})
    };
    for _ in 0..3 {
        let r = http::mcp_post(&url, &[], &call("echo")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = http::mcp_post(&url, &[], &call("delete_everything")).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // Names a client makes up: an unknown service, an unknown method.
    for i in 0..5 {
        let made_up = format!(
            "{}/mcp/made-up-{i}",
            d.edge_setup.url("ok").trim_end_matches("/mcp/ok")
        );
        let _ = http::mcp_post(&made_up, &[], &call("echo")).unwrap();
        let odd = json!({"jsonrpc": "2.0", "id": 2, "method": format!("x/made-up-{i}")});
        let _ = http::mcp_post(&url, &[], &odd).unwrap();
    }

    // A request is counted when its answer's body has ended at the edge, which may be a moment
    // after the client has read it all: wait (bounded) for the last of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = http::get(&d.edge_setup.admin("/metrics")).unwrap();
        let counted: f64 = reply
            .text()
            .lines()
            .filter(|l| l.starts_with("underpass_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if counted >= 14.0 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.header("content-type")
    );
    let text = reply.text();
    let count = |labels: &str| sample(&text, &format!("underpass_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"service="ok",method="tools/call",outcome="ok""#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        count(r#"service="ok",method="tools/call",outcome="denied""#),
        Some(1.0),
        "{text}"
    );
    // An unknown service is refused before its body is read: no method.
    assert_eq!(
        count(r#"service="unknown",method="-",outcome="not_found""#),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        count(r#"service="ok",method="other",outcome="ok""#),
        Some(5.0),
        "{text}"
    );
    assert!(
        !text.contains("made-up"),
        "a client's name became a label:\n{text}"
    );
    let tunnels = sample(
        &text,
        r#"underpass_tunnels{connector="dc1",transport="quic"}"#,
    );
    assert_eq!(tunnels, Some(2.0), "{text}");
    assert_eq!(sample(&text, "underpass_sessions"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "underpass_audit_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "underpass_audit_queue_depth").is_some(),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    // Every log line is one JSON object; the tunnel's line carries its fields. (The access
    // lines are written with the counts above, so all 14 are there by now.)
    let log = d.edge.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let up = lines
        .iter()
        .find(|l| l["fields"]["message"] == "tunnel up")
        .unwrap_or_else(|| panic!("no tunnel up line:\n{log}"));
    assert_eq!(up["fields"]["connector"], "dc1", "{up}");
    assert_eq!(up["fields"]["transport"], "quic", "{up}");

    // One access line per request, with the audit record's fields (never the arguments).
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "underpass::access")
        .collect();
    assert_eq!(access.len(), 3 + 1 + 5 + 5, "{log}");
    let denied = access
        .iter()
        .find(|l| l["fields"]["outcome"] == "denied")
        .unwrap_or_else(|| panic!("no denied line:\n{log}"));
    let f = &denied["fields"];
    assert_eq!(f["status"], 403, "{denied}");
    assert_eq!(f["service"], "ok", "{denied}");
    assert_eq!(f["method"], "tools/call", "{denied}");
    assert_eq!(f["target"], "delete_everything", "{denied}");
    assert_eq!(f["principal"], "anonymous", "{denied}");
    assert_eq!(f["decision"], "deny", "{denied}");
    assert_eq!(f["trace_id"].as_str().map(str::len), Some(32), "{denied}");
    assert!(!log.contains("\"message\":\"hi\""), "arguments were logged");
}
