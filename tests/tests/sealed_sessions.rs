//! Sealed legacy session ids (issue 13, item 4), with real edges, a real connector and a
//! backend that refuses sessions it does not know: a 2025-11-25 session opened through one
//! edge continues through another that holds the same `[sessions] keys` (same backend
//! session), a tampered id or one sealed with another key is a 404 on every edge and never
//! reaches a backend, and key rotation (`keys = [new, old]`) opens old ids and seals new ones
//! with the new key. Key files come from `underpass-certs session-key`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post, Reply};
use underpass_tests::*;

const SERVICES: [&str; 2] = ["echo", "echo2"];

fn hash(k: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, k.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[auth]` with two API keys (alice, bob), and `[sessions] keys`.
fn edge_extra(keys: &[&Path]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.display().to_string()))
        .collect();
    format!(
        "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
         [[auth.api_keys]]\nname = \"bob\"\nsha256 = \"{}\"\n[policy]\nallow_all = true\n\
         [sessions]\nkeys = [{}]\n",
        hash("key-alice"),
        hash("key-bob"),
        keys.join(", ")
    )
}

fn session_key(path: &Path) -> PathBuf {
    run_ok(
        Command::new(bin("underpass-certs"))
            .args(["session-key", "--out"])
            .arg(path),
    );
    path.to_path_buf()
}

struct Edge {
    setup: EdgeSetup,
    proc: Proc,
}

/// An edge in `dir/<name>` (sharing the PKI in `dir/pki`), with `clients` keys added to its
/// `[clients]` table.
fn start_edge(dir: &Path, name: &str, keys: &[&Path], clients: &str) -> Edge {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(dir.join("pki"), home.join("pki")).unwrap();
    let services: Vec<(&str, &[&str])> = SERVICES.iter().map(|s| (*s, &["dc1"][..])).collect();
    let setup = EdgeSetup::write(&home, false, &services, &edge_extra(keys));
    setup.add_clients_keys(clients);
    let proc = setup.start(&home);
    Edge { setup, proc }
}

fn headers<'a>(key: &'a str, session: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("Authorization", key)];
    if let Some(s) = session {
        h.push(("Mcp-Session-Id", s));
        h.push(("MCP-Protocol-Version", "2025-11-25"));
    }
    h
}

const ALICE: &str = "Bearer key-alice";
const BOB: &str = "Bearer key-bob";

/// `initialize` and `notifications/initialized` through `url`; returns the session id.
fn open_session(url: &str) -> String {
    let r = mcp_post(
        url,
        &headers(ALICE, None),
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"sealed-sessions","version":"1"}}}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_owned();
    let r = mcp_post(
        url,
        &headers(ALICE, Some(&sid)),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    sid
}

fn echo(url: &str, key: &str, sid: &str, message: &str) -> Reply {
    mcp_post(
        url,
        &headers(key, Some(sid)),
        &json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
                "params":{"name":"echo","arguments":{"message":message}}}),
    )
    .unwrap()
}

fn echoed(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    http::messages(r)
        .last()
        .map(|m| m["result"]["content"][0]["text"].clone())
        .unwrap_or_default()
}

/// A 404 the edge gave (its own code), not one a backend gave.
fn assert_edge_404(r: &Reply, what: &str) {
    assert_eq!(r.status, 404, "{what}: {}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], -31404, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("session not found; initialize a new session"),
        "{what}: {v}"
    );
}

/// The id with the character at `at` replaced by another of the base64url alphabet.
fn tampered(sid: &str, at: usize) -> String {
    let mut b = sid.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn a_sealed_session_continues_on_any_edge_with_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (backend, port) = start_echo_backend(d, &[]);
    let backend_url = format!("http://127.0.0.1:{port}/mcp");

    let pki = Pki::init(&d.join("pki"));
    pki.issue("edge", "edge");
    let (cert, key) = pki.issue("connector", "dc1");
    let old = session_key(&d.join("old.key"));
    let new = session_key(&d.join("new.key"));

    // A and B share the old key (B forgets sessions idle for 1 s); R is mid-rotation (new
    // first, old kept).
    let a = start_edge(d, "a", &[&old], "");
    let mut b = start_edge(d, "b", &[&old], "session_idle_timeout = \"1s\"");
    let r = start_edge(d, "r", &[&new, &old], "");
    for e in [&a, &b, &r] {
        assert!(
            e.proc
                .log_text()
                .contains("legacy session ids sealed with [sessions] keys"),
            "{}",
            e.proc.log_text()
        );
    }
    let services: Vec<(&str, &str)> = SERVICES
        .iter()
        .map(|s| (*s, backend_url.as_str()))
        .collect();
    let config = write_connector_config(
        d,
        "connector.toml",
        "dc1",
        a.setup.tunnel_port,
        ConnectorPki {
            cert: &cert,
            key: &key,
            ca: &pki.ca(),
        },
        &services,
    );
    set_connector_edges(
        &config,
        &[&a, &b, &r].map(|e| format!("127.0.0.1:{}", e.setup.tunnel_port)),
    );
    let _connector = start_connector(d, "connector", &config);
    for e in [&a, &b, &r] {
        for s in SERVICES {
            e.setup.wait_ready(s, Duration::from_secs(30));
        }
    }
    let (url_a, url_b, url_r) = (
        a.setup.url("echo"),
        b.setup.url("echo"),
        r.setup.url("echo"),
    );

    // Opened through A, continued through B (and A again): the backend, which 404s any
    // session it does not know, serves it.
    let sid = open_session(&url_a);
    assert!(
        sid.len() > 60
            && sid
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "a sealed base64url id, not the backend's 32 hex digits: {sid}"
    );
    assert_eq!(echoed(&echo(&url_b, ALICE, &sid, "via b")), "via b");
    assert_eq!(echoed(&echo(&url_a, ALICE, &sid, "via a")), "via a");
    // The backend never sees the sealed id: given to it directly, it is unknown there.
    let direct = mcp_post(
        &backend_url,
        &[
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
    )
    .unwrap();
    assert_eq!(direct.status, 404, "{}", direct.text());

    // Tampered, truncated, other service, other principal: 404 from the edge itself, on
    // every edge.
    for (name, url) in [("a", &url_a), ("b", &url_b), ("r", &url_r)] {
        for at in [0, 3, 10, sid.len() / 2, sid.len() - 1] {
            assert_edge_404(
                &echo(url, ALICE, &tampered(&sid, at), "x"),
                &format!("edge {name}: tampered at {at}"),
            );
        }
        assert_edge_404(
            &echo(url, ALICE, &sid[..sid.len() - 4], "x"),
            &format!("edge {name}: truncated"),
        );
        assert_edge_404(&echo(url, BOB, &sid, "x"), &format!("edge {name}: bob"));
        let other = url.replace("/mcp/echo", "/mcp/echo2");
        assert_edge_404(
            &echo(&other, ALICE, &sid, "x"),
            &format!("edge {name}: other service"),
        );
    }
    assert_eq!(echoed(&echo(&url_b, ALICE, &sid, "still")), "still");

    // B adopted the session; idle there, B forgets it but must not end it at the backend:
    // with shared keys another edge may be serving it (here A).
    b.proc
        .wait_for_log("not ending them at their backends", Duration::from_secs(20));
    assert_eq!(echoed(&echo(&url_a, ALICE, &sid, "alive")), "alive");
    assert_eq!(
        echoed(&echo(&url_b, ALICE, &sid, "re-adopted")),
        "re-adopted"
    );

    // Rotation: R (keys = [new, old]) continues the old session, and seals new ones with the
    // new key, which A and B (old key only) cannot open: an id sealed with a key an edge does
    // not hold is a 404 there.
    assert_eq!(echoed(&echo(&url_r, ALICE, &sid, "via r")), "via r");
    let sid_new = open_session(&url_r);
    assert_eq!(echoed(&echo(&url_r, ALICE, &sid_new, "new")), "new");
    for (name, url) in [("a", &url_a), ("b", &url_b)] {
        assert_edge_404(
            &echo(url, ALICE, &sid_new, "x"),
            &format!("edge {name}: sealed with a key it does not hold"),
        );
    }

    // The same backend session everywhere: ended through B, it is gone for A too (the 404 now
    // comes from the backend, which A reached with the session's own id).
    let r_del = http::request("DELETE", &url_b, &headers(ALICE, Some(&sid)), b"").unwrap();
    assert_eq!(r_del.status, 200, "{}", r_del.text());
    let gone = echo(&url_a, ALICE, &sid, "x");
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(
        gone.json()["error"]["code"],
        -32001,
        "the backend's 404: {}",
        gone.text()
    );
    drop(backend);
}

#[test]
fn session_key_files_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::init(&d.join("pki"));
    pki.issue("edge", "edge");
    let good = session_key(&d.join("good.key"));
    let short = d.join("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    let missing = d.join("missing.key");
    let setup = EdgeSetup::write(d, false, &[("echo", &["dc1"])], &edge_extra(&[&good]));
    let check = |keys: &[&Path]| {
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let start = text.find("[sessions]").unwrap();
        let end = start + text[start..].find('\n').unwrap() + 1;
        let end = end + text[end..].find('\n').unwrap() + 1;
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("{:?}", k.display().to_string()))
            .collect();
        let text = format!(
            "{}[sessions]\nkeys = [{}]\n{}",
            &text[..start],
            keys.join(", "),
            &text[end..]
        );
        std::fs::write(&setup.config, text).unwrap();
        Command::new(bin("underpass-edge"))
            .arg("--config")
            .arg(&setup.config)
            .arg("--check")
            .output()
            .unwrap()
    };
    let out = check(&[&good]);
    assert!(out.status.success(), "{}", show(&out));
    for (keys, why) in [
        (
            vec![good.as_path(), short.as_path()],
            "holds 31 bytes, not 32",
        ),
        (vec![missing.as_path()], "cannot read session key"),
        (vec![good.as_path(), good.as_path()], "same key"),
    ] {
        let out = check(&keys);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{keys:?}: {}", show(&out));
        assert!(stderr.contains(why), "{keys:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Starting with a bad key file is the same clear error, not a running edge.
    check(&[&short]);
    let mut edge = Proc::spawn(
        "edge-bad-key",
        d,
        Command::new(bin("underpass-edge"))
            .arg("--config")
            .arg(&setup.config),
    );
    let status = edge.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        edge.log_text().contains("holds 31 bytes, not 32"),
        "{}",
        edge.log_text()
    );
}

#[test]
fn without_session_keys_the_edge_says_sessions_do_not_survive_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_demo_server(scratch.path());
    let d = Deployment::start(false, "demo", &backend_url);
    assert!(
        d.edge
            .log_text()
            .contains("sessions do not survive this edge"),
        "{}",
        d.edge.log_text()
    );
}
