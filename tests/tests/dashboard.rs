//! The dashboard (issue 15, item 5) in a real headless Chromium: the page served by the
//! admin listener renders, shows the live connector and its tunnel, and, without a reload,
//! a denial the test makes (it polls the admin API); a tool name carrying markup is shown as
//! text and never becomes an element. A screenshot is kept at
//! `target/artifacts/dashboard.png`.

use std::time::{Duration, Instant};

use serde_json::json;
use underpass_tests::cdp::{Chromium, Page};
use underpass_tests::faults::FaultBackend;
use underpass_tests::http;
use underpass_tests::*;

const API_KEY: &str = "dashboard-test-key-71c2";
const POLICY: &str = "[[allow]]\nprincipals = [\"apikey:ci\"]\ntools = [\"echo\"]\n";
/// A tool name a hostile client makes up: must show as text, never as markup.
const HOSTILE: &str = "<img src=x onerror=\"document.title='owned'\">";

/// Polls the page's text until `pred` holds, for at most `timeout`.
fn wait_text(
    page: &mut Page,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = page.text();
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed {what}; it shows:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_dashboard_shows_the_live_tunnel_and_new_denials_in_a_real_browser() {
    let scratch = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(scratch.path());
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"ci\"\nsha256 = \"{}\"\n[policy]\nfile = \"policy.toml\"\n\
         [audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(API_KEY)
    );
    let d = Deployment::start_prepared(false, "ok", &backend.url("ok"), &extra, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap()
    });
    let url = d.edge_setup.url("ok");
    let bearer = format!("Bearer {API_KEY}");
    let auth = [("Authorization", bearer.as_str())];
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {"message": "hi"}}})
    };
    for _ in 0..5 {
        let r = http::mcp_post(&url, &auth, &call("echo")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let browser = Chromium::launch();
    let mut page = browser.page();
    page.navigate(&d.edge_setup.admin("/"));

    // The live connector and its tunnel, with the transport.
    let text = wait_text(&mut page, "the live tunnel", Duration::from_secs(30), |t| {
        t.contains("dc1") && t.contains("quic") && t.contains("online") && t.contains("live")
    });
    assert!(text.contains("no denial since start"), "{text}");
    assert!(text.contains("healthy"), "{text}");

    // A denial made now appears without a reload.
    let marker = "drop_all_tables";
    let r = http::mcp_post(&url, &auth, &call(marker)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let text = wait_text(&mut page, "the new denial", Duration::from_secs(20), |t| {
        t.contains(marker)
    });
    assert!(text.contains("apikey:ci"), "{text}");
    assert!(text.contains("denied"), "{text}");

    // Markup in a client's tool name is text on the page, not an element.
    let r = http::mcp_post(&url, &auth, &call(HOSTILE)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    wait_text(
        &mut page,
        "the hostile tool name as text",
        Duration::from_secs(20),
        |t| t.contains(HOSTILE),
    );
    assert_eq!(
        page.eval("document.querySelectorAll('img').length"),
        json!(0)
    );
    assert_ne!(page.eval("document.title"), json!("owned"));

    // The audit trail's state and the certificates are shown.
    let text = wait_text(&mut page, "the audit state", Duration::from_secs(20), |t| {
        t.contains("chain and checkpoints verify")
    });
    assert!(text.contains("edge tunnel_cert"), "{text}");

    // Some traffic over a few polls, so the charts in the screenshot have a shape.
    for round in 0..4 {
        for _ in 0..=round {
            let r = http::mcp_post(&url, &auth, &call("echo")).unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
        }
        std::thread::sleep(Duration::from_millis(1100));
    }

    let shot = repo_root().join("target/artifacts/dashboard.png");
    page.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 10_000, "a suspiciously small screenshot");
}
