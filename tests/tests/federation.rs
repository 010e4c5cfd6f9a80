//! The federated endpoint `/mcp` (issue 17): one MCP server over every service the caller may
//! use, driven by the official TypeScript and Python SDK clients over real backends
//! (`server-everything` over HTTP, the Python SDK server, `server-everything` over stdio), and
//! by raw requests where the exact answer matters.

use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::http::{mcp_post, messages};
use underpass_tests::*;

const MODERN: &str = "2026-07-28";

/// The three backends of the issue behind one connector: `everything` (server-everything over
/// Streamable HTTP, legacy era only), `py` (the Python SDK, both eras), `stdio`
/// (server-everything over stdio, legacy era only).
struct ThreeBackends {
    d: Deployment,
    py: Proc,
    _everything: Proc,
    _scratch: tempfile::TempDir,
}

fn three_backends(tls: bool, edge_extra: &str) -> ThreeBackends {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let (py, py_url) = start_py_server(scratch.path(), &peers);
    let stdio = format!(
        "[\"{}\", \"{}\", \"stdio\"]",
        peers.path("NODE22"),
        peers.path("SERVER_EVERYTHING")
    );
    let extra = format!("[auth]\nanonymous = true\n[policy]\nallow_all = true\n{edge_extra}");
    let d = Deployment::start_services(
        tls,
        &[
            ("everything", everything_url.as_str(), ""),
            ("py", py_url.as_str(), ""),
            ("stdio", stdio.as_str(), ""),
        ],
        &extra,
        |_| {},
    );
    for s in ["py", "stdio"] {
        d.edge_setup.wait_ready(s, Duration::from_secs(30));
    }
    ThreeBackends {
        d,
        py,
        _everything: everything,
        _scratch: scratch,
    }
}

fn assert_federated(v: &Value, services: &[&str]) {
    assert_eq!(v["serverName"], "underpass", "{v}");
    let tools: Vec<&str> = v["toolNames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for s in services {
        assert!(tools.contains(&format!("{s}__echo").as_str()), "{s}: {v}");
        assert_eq!(
            v["calls"][s],
            format!("Echo: across services"),
            "{s}: the call reached its service: {v}"
        );
    }
    if services.contains(&"py") {
        assert!(tools.contains(&"py__get-sum"), "{v}");
    }
    assert!(
        tools.iter().all(|t| t.len() <= 64 && t.contains("__")),
        "every name is federated and at most 64 characters: {v}"
    );
    // Every service's resources are listed under its own URI, and read through it.
    for s in services {
        let read = v["reads"].as_object().and_then(|r| {
            r.iter()
                .find(|(uri, _)| uri.starts_with(&format!("underpass://{s}/")))
        });
        let (uri, text) = read.unwrap_or_else(|| panic!("no resource of {s} read: {v}"));
        assert!(
            text.is_string() || text.is_u64(),
            "{s}: reading {uri} failed: {v}"
        );
    }
    // server-everything's prompts (over HTTP and over stdio) are listed and fetched.
    for s in ["everything", "stdio"] {
        let got = v["prompts"].as_object().and_then(|p| {
            p.iter()
                .find(|(name, _)| name.starts_with(&format!("{s}__")))
        });
        let (name, messages) = got.unwrap_or_else(|| panic!("no prompt of {s} fetched: {v}"));
        assert!(messages.as_u64().unwrap_or(0) >= 1, "{name}: {v}");
    }
}

#[test]
fn sdk_clients_of_both_eras_list_call_read_and_get_prompts_across_three_backends() {
    let peers = Peers::get();
    let t = three_backends(true, "");
    let url = t.d.edge_setup.endpoint("/mcp");
    let services = ["everything", "py", "stdio"];
    let args = [
        "federated",
        "--services=everything,py,stdio",
        "--message=across services",
    ];

    let ts = run_client(&t.d, &mut ts_client(&peers, &url, &args));
    assert_federated(&ts, &services);
    assert_eq!(ts["protocolVersion"], "2025-11-25", "{ts}");
    assert!(
        ts["sessionId"].is_string(),
        "a legacy client gets a session: {ts}"
    );

    for mode in ["--mode=2026-07-28", "--mode=legacy", "--mode=auto"] {
        let mut cmd = py_client(&peers, &url, &args);
        cmd.arg(mode);
        let py = run_client(&t.d, &mut cmd);
        assert_federated(&py, &services);
        if mode != "--mode=legacy" {
            assert_eq!(py["protocolVersion"], MODERN, "{mode}: {py}");
        }
    }
}

/// The raw answers a client relies on: `server/discover` for the union, names and URIs,
/// sealed cursors bound to the caller, unknown names and methods answered with clear errors.
#[test]
fn discover_pages_and_errors_follow_the_specification() {
    let t = three_backends(false, "[federation]\npage_size = 5\n");
    let url = t.d.edge_setup.endpoint("/mcp");
    let modern = |method: &str, name: Option<&str>| {
        let mut h = vec![("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        h.into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect::<Vec<_>>()
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": MODERN,
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let post = |method: &str, name: Option<&str>, params: Value| {
        let headers = modern(method, name);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut params = params;
        params["_meta"] = meta.clone();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = mcp_post(&url, &h, &body).expect("post");
        let msgs = messages(&reply);
        (reply.status, msgs.into_iter().next().unwrap_or(Value::Null))
    };

    let (status, discover) = post("server/discover", None, json!({}));
    assert_eq!(status, 200, "{discover}");

    // Resource links in a tool result name the resource as this endpoint does, so the client
    // reads it through the endpoint.
    let tool = "everything__get-resource-links";
    let (status, links) = post(
        "tools/call",
        Some(tool),
        json!({"name": tool, "arguments": {"count": 2}}),
    );
    assert_eq!(status, 200, "{links}");
    let uris: Vec<&str> = links["result"]["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .filter_map(|c| c["uri"].as_str())
        .collect();
    assert_eq!(uris.len(), 2, "{links}");
    for uri in uris {
        assert!(uri.starts_with("underpass://everything/demo://"), "{uri}");
        let (status, read) = post("resources/read", Some(uri), json!({"uri": uri}));
        assert_eq!(status, 200, "{read}");
        assert_eq!(read["result"]["contents"][0]["uri"], uri, "{read}");
    }
    let r = &discover["result"];
    assert!(
        r["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN)),
        "{r}"
    );
    assert_eq!(r["cacheScope"], "private", "{r}");
    assert!(r["ttlMs"].is_u64(), "{r}");
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "underpass",
        "{r}"
    );
    for cap in ["tools", "prompts", "resources"] {
        assert!(r["capabilities"][cap].is_object(), "{cap}: {r}");
    }

    // Pages of 5 across the three services, every tool exactly once.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let (status, page) = post("tools/list", None, params);
        assert_eq!(status, 200, "{page}");
        let tools = page["result"]["tools"].as_array().expect("tools").clone();
        assert!(tools.len() <= 5, "{page}");
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no tool twice: {names:?}");
    for s in ["everything", "py", "stdio"] {
        assert!(names.contains(&format!("{s}__echo")), "{names:?}");
    }

    // A cursor this endpoint did not hand out is refused, and so is one of another list.
    let (_, bad) = post("tools/list", None, json!({"cursor": "forged"}));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let (_, first) = post("tools/list", None, json!({}));
    let tools_cursor = first["result"]["nextCursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let (_, other) = post("prompts/list", None, json!({"cursor": tools_cursor}));
    assert_eq!(other["error"]["code"], -32602, "{other}");

    // A call routes to its service; an unknown prefix or method is a clear error.
    let (status, call) = post(
        "tools/call",
        Some("py__get-sum"),
        json!({"name": "py__get-sum", "arguments": {"a": 2, "b": 3}}),
    );
    assert_eq!(status, 200, "{call}");
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains('5'),
        "{call}"
    );
    let (_, unknown) = post(
        "tools/call",
        Some("nosuch__echo"),
        json!({"name": "nosuch__echo", "arguments": {}}),
    );
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let (_, method) = post("sampling/createMessage", None, json!({}));
    assert_eq!(method["error"]["code"], -32601, "{method}");

    // Mcp-Name must still agree with the body the client sent.
    let (status, mismatch) = post(
        "tools/call",
        Some("py__echo"),
        json!({"name": "py__get-sum", "arguments": {"a": 1, "b": 1}}),
    );
    assert_eq!(status, 400, "{mismatch}");
    assert_eq!(mismatch["error"]["code"], -32020, "{mismatch}");

    // A batch is refused (one message per request); a notification is taken and goes nowhere.
    let batch = json!([{"jsonrpc": "2.0", "id": 7, "method": "ping"}]);
    let reply = mcp_post(&url, &[], &batch).unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], -32600, "{}", reply.text());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": 1}});
    assert_eq!(mcp_post(&url, &[], &note).unwrap().status, 202);
    // HTTP/2 is served alike.
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}).to_string();
    let reply = http::h2_request(
        "POST",
        &url,
        None,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        list.as_bytes(),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains("everything__echo"),
        "{}",
        reply.text()
    );

    // A legacy session id this endpoint did not seal is not found.
    let reply = mcp_post(
        &url,
        &[("Mcp-Session-Id", "not-a-session")],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
}

/// One backend killed mid-test is left out of the lists (a log line, a metric), a call of its
/// tools is a clear error, and everything else keeps working.
#[test]
fn a_killed_backend_is_left_out_and_the_rest_keep_working() {
    let peers = Peers::get();
    let mut t = three_backends(true, "");
    let url = t.d.edge_setup.endpoint("/mcp");
    let args = [
        "federated",
        "--services=everything,py,stdio",
        "--message=across services",
    ];
    let before = run_client(&t.d, &mut ts_client(&peers, &url, &args));
    assert_federated(&before, &["everything", "py", "stdio"]);

    t.py.kill();
    let after = run_client(&t.d, &mut ts_client(&peers, &url, &args));
    assert_federated(&after, &["everything", "stdio"]);
    let tools = after["toolNames"].to_string();
    assert!(
        !tools.contains("py__"),
        "the dead service is left out: {after}"
    );
    let failed = &after["calls"]["py"];
    assert!(
        failed["error"].is_object() || failed["error"].is_string(),
        "{after}"
    );
    assert!(
        failed.to_string().contains("py"),
        "the error names the service: {failed}"
    );
    t.d.edge
        .wait_for_log("service left out of the answer", Duration::from_secs(10));
    let metrics = http::get(&t.d.edge_setup.admin("/metrics")).unwrap().text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("underpass_federation_omitted_total{service=\"py\"")),
        "{metrics}"
    );
}

/// A view at `/mcp/view/{name}` shows only what it lists, under its aliases: the SDK smoke
/// clients (which know only the backend's own names) run unchanged through it, and a tool
/// call's progress notifications stream through the federated endpoint as they happen.
#[test]
fn a_view_serves_chosen_tools_under_aliases_and_streams_progress() {
    let peers = Peers::get();
    let view = r#"
[[views]]
name = "smoke"
tools = ["everything__echo", "everything__trigger-long-running-operation", "py__echo"]
resources = ["underpass://everything/demo://resource/static/document/architecture.md"]
aliases = { echo = "everything__echo", "trigger-long-running-operation" = "everything__trigger-long-running-operation" }
descriptions = { echo = "Echoes, through a view" }
"#;
    let t = three_backends(true, view);
    let url = t.d.edge_setup.endpoint("/mcp/view/smoke");
    let ts = run_client(
        &t.d,
        &mut ts_client(&peers, &url, &["smoke", "--message=via view"]),
    );
    assert_eq!(ts["echo"], "Echo: via view", "{ts}");
    let mut names: Vec<&str> = ts["toolNames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["echo", "py__echo", "trigger-long-running-operation"],
        "only what the view lists, under its aliases: {ts}"
    );
    assert_eq!(ts["resourceCount"], 1, "{ts}");
    assert!(ts["resourceTextLength"].as_u64().unwrap_or(0) > 100, "{ts}");
    assert_live_progress(&ts);

    // The Python SDK in the stateless era reaches the legacy-only backend through the view.
    let py = run_client(
        &t.d,
        &mut py_client(
            &peers,
            &url,
            &["smoke", "--mode=2026-07-28", "--message=via view"],
        ),
    );
    assert_eq!(py["protocolVersion"], MODERN, "{py}");
    assert_eq!(py["echo"], "Echo: via view", "{py}");
    assert_live_progress(&py);

    // What the view does not list is unknown there, though /mcp serves it.
    let call = run_client(
        &t.d,
        &mut ts_client(
            &peers,
            &url,
            &[
                "call",
                "--tool=everything__get-sum",
                "--args={\"a\":1,\"b\":2}",
            ],
        ),
    );
    assert_eq!(call["ok"], false, "{call}");
    assert_eq!(call["error"]["code"], -32602, "{call}");
    let unknown = http::get(&t.d.edge_setup.endpoint("/mcp/view/nosuch"));
    assert!(unknown.is_err() || unknown.is_ok_and(|r| r.status == 404));
}

const ALICE: &str = "up_federation_alice_key_0123456789";
const BOB: &str = "up_federation_bob_key_01234567890";

/// Two principals with different policies see different catalogues from one cached upstream
/// list: with a public list the backend sees one `tools/list` per TTL, not one per caller;
/// with a private one, one per caller.
#[test]
fn one_cached_upstream_list_serves_callers_with_different_policies() {
    for (scope, upstream_lists) in [("public", 1), ("private", 2)] {
        let dir = tempfile::tempdir().unwrap();
        let (_backend, port) = start_echo_backend(
            dir.path(),
            &[
                "--tools",
                "3",
                "--list-ttl-ms",
                "600000",
                "--list-scope",
                scope,
            ],
        );
        let policy = r#"
[[allow]]
name = "alice-echo"
principals = ["apikey:alice"]
tools = ["echo", "tool-*"]
[[allow]]
name = "bob-blob"
principals = ["apikey:bob"]
tools = ["blob"]
"#;
        let extra = format!(
            "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
             [[auth.api_keys]]\nname = \"bob\"\nsha256 = \"{}\"\n\
             [policy]\nfile = \"policy.toml\"\n",
            sha256_hex(ALICE),
            sha256_hex(BOB)
        );
        let d = Deployment::start_services(
            false,
            &[("echo", &format!("http://127.0.0.1:{port}/mcp"), "")],
            &extra,
            |dir| std::fs::write(dir.join("policy.toml"), policy).unwrap(),
        );
        let url = d.edge_setup.endpoint("/mcp");
        let list = |key: &str| -> Vec<String> {
            let v = tools_list(&url, key);
            assert_eq!(v["result"]["cacheScope"], "private", "{v}");
            v["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect()
        };
        for _ in 0..3 {
            assert_eq!(
                list(ALICE),
                [
                    "echo__echo",
                    "echo__tool-00001",
                    "echo__tool-00002",
                    "echo__tool-00003"
                ],
                "{scope}"
            );
            assert_eq!(list(BOB), ["echo__blob"], "{scope}");
        }
        let stats = http::get(&format!("http://127.0.0.1:{port}/stats"))
            .unwrap()
            .json();
        assert_eq!(
            stats["tools/list"], upstream_lists,
            "{scope}: one upstream list per authorization context that may share it: {stats}"
        );
        let metrics = http::get(&d.edge_setup.admin("/metrics")).unwrap().text();
        let hits = metrics
            .lines()
            .find(|l| l.starts_with("underpass_federation_cache_lookups_total{result=\"hit\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert_eq!(hits, 6 - upstream_lists, "{scope}: {metrics}");

        // `server/discover` too: the backend's answer (with the same hints) is kept, the
        // era probe's included, and the union is built per caller from it.
        for _ in 0..3 {
            for key in [ALICE, BOB] {
                let v = ask_modern(&url, key, "server/discover");
                assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
            }
        }
        let stats = http::get(&format!("http://127.0.0.1:{port}/stats"))
            .unwrap()
            .json();
        assert_eq!(
            stats["server/discover"], upstream_lists,
            "{scope}: one upstream server/discover per authorization context that may share it: {stats}"
        );
    }
}

/// A federated list that reads a service's backend counts against the caller's rate for
/// that service, as the same list on `/mcp/{service}` would: `/mcp` is no way around a
/// service's rate. A service over the caller's rate is left out (and counted), the others are
/// not, and the backend never sees the lists refused.
#[test]
fn a_federated_list_counts_against_each_services_rate() {
    let dir = tempfile::tempdir().unwrap();
    // No caching hints: every list reaches the backends.
    let (_metered, metered_port) = start_echo_backend(dir.path(), &["--tools", "1"]);
    let (_open, open_port) = start_echo_backend(dir.path(), &["--tools", "1"]);
    let policy = r#"
[[allow]]
name = "metered-base"
principals = ["apikey:alice"]
services = ["metered"]
rate = "2/min"
[[allow]]
name = "metered-tools"
principals = ["apikey:alice"]
services = ["metered"]
tools = ["*"]
[[allow]]
name = "open"
principals = ["apikey:alice"]
services = ["open"]
tools = ["*"]
"#;
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"alice\"\nsha256 = \"{}\"\n\
         [policy]\nfile = \"policy.toml\"\n",
        sha256_hex(ALICE),
    );
    let d = Deployment::start_services(
        false,
        &[
            (
                "metered",
                &format!("http://127.0.0.1:{metered_port}/mcp"),
                "",
            ),
            ("open", &format!("http://127.0.0.1:{open_port}/mcp"), ""),
        ],
        &extra,
        |dir| std::fs::write(dir.join("policy.toml"), policy).unwrap(),
    );
    d.edge_setup.wait_ready("open", Duration::from_secs(30));
    let url = d.edge_setup.endpoint("/mcp");
    let services_listed = || -> Vec<String> {
        let v = tools_list(&url, ALICE);
        let mut services: Vec<String> = v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .filter_map(|t| {
                t["name"]
                    .as_str()?
                    .split_once("__")
                    .map(|(s, _)| s.to_owned())
            })
            .collect();
        services.dedup();
        services
    };
    assert_eq!(services_listed(), ["metered", "open"]);
    assert_eq!(services_listed(), ["metered", "open"]);
    assert_eq!(
        services_listed(),
        ["open"],
        "the third list in a minute is over the rate"
    );
    let lists_seen = |port: u16| {
        let stats = http::get(&format!("http://127.0.0.1:{port}/stats"))
            .unwrap()
            .json();
        stats["tools/list"].as_u64().unwrap_or(0)
    };
    assert_eq!(
        lists_seen(metered_port),
        2,
        "the refused list never reached the backend"
    );
    assert_eq!(lists_seen(open_port), 3);
    let metrics = http::get(&d.edge_setup.admin("/metrics")).unwrap().text();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "underpass_federation_omitted_total{service=\"metered\",reason=\"rate_limited\"} 1"
        )),
        "{metrics}"
    );
}

/// A 2026-07-28 backend that asks a 2025-11-25 client for input without end, or for input no
/// client gives: the edge relays 16 rounds, then ends the call with an error saying why; what
/// no client answers is never sent to it.
#[test]
fn a_backend_that_asks_without_end_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, port) = start_echo_backend(dir.path(), &["--modern-only"]);
    let d = Deployment::start_services(
        false,
        &[("echo", &format!("http://127.0.0.1:{port}/mcp"), "")],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        |_| {},
    );
    let url = d.edge_setup.endpoint("/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "asks-test", "version": "1"}}});
    let reply = mcp_post(&url, &[], &init).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session = reply
        .header("mcp-session-id")
        .expect("a session")
        .to_owned();
    let in_session = [
        ("MCP-Protocol-Version", "2025-11-25"),
        ("Mcp-Session-Id", session.as_str()),
    ];
    let call = |id: u64, arguments: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "echo__ask", "arguments": arguments}});
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        headers.extend(in_session);
        let stream = http::EventStream::open("POST", &url, &headers, body.to_string().as_bytes())
            .expect("post the call");
        assert_eq!(stream.status, 200);
        stream
    };
    let wait = Duration::from_secs(30);

    let mut stream = call(2, json!({}));
    let mut asked = 0;
    let ended = loop {
        let msg = stream.next_message(wait).expect("a message of the call");
        if msg.get("method").is_none() {
            break msg;
        }
        assert_eq!(msg["method"], "elicitation/create", "{msg}");
        asked += 1;
        assert!(asked <= 16, "relayed past the bound: {msg}");
        let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"action": "decline"}});
        let reply = mcp_post(&url, &in_session, &answer).unwrap();
        assert_eq!(reply.status, 202, "{}", reply.text());
    };
    assert_eq!(asked, 16);
    assert_eq!(ended["id"], 2, "{ended}");
    let said = ended["error"]["message"].as_str().unwrap_or("");
    assert!(said.contains("more than 16 times"), "{ended}");

    // Input no client gives is never sent: the call ends at once, saying what was asked.
    let mut stream = call(3, json!({"message": "tools/call"}));
    let ended = stream.next_message(wait).expect("the call's answer");
    assert_eq!(ended["id"], 3, "{ended}");
    let said = ended["error"]["message"].as_str().unwrap_or("");
    assert!(
        said.contains("\"tools/call\", which no client answers"),
        "{ended}"
    );
}

/// A 2026-07-28 `tools/list` at `url` with the API key `key`: the answer (HTTP 200).
fn tools_list(url: &str, key: &str) -> Value {
    ask_modern(url, key, "tools/list")
}

/// A 2026-07-28 request of `method` without parameters at `url` with the API key `key`: the
/// answer (HTTP 200).
fn ask_modern(url: &str, key: &str, method: &str) -> Value {
    let auth = format!("Bearer {key}");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", method),
    ];
    let reply = mcp_post(url, &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Backends that list garbage: a list that is no list, duplicate names, names with control
/// characters, 10,000 tools, a cursor that loops, a list slower than the deadline. Each costs
/// bounded work and a log line; none takes the endpoint down or hides the others.
#[test]
fn hostile_lists_are_bounded_logged_and_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let faults = faults::FaultBackend::start(dir.path());
    let modes = [
        "ok",
        "list-malformed",
        "list-duplicates",
        "list-control",
        "list-many",
        "list-loop",
        "list-slow",
    ];
    let urls: Vec<String> = modes.iter().map(|m| faults.url(m)).collect();
    let names: Vec<String> = modes.iter().map(|m| m.replace('-', "")).collect();
    let services: Vec<(&str, &str, &str)> = names
        .iter()
        .zip(&urls)
        .map(|(n, u)| (n.as_str(), u.as_str(), ""))
        .collect();
    // The deadline leaves reading 10,000 tools time on a loaded machine; `list-slow` answers
    // after 5 s, beyond it.
    let mut d = Deployment::start_services(
        false,
        &services,
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n[federation]\ndeadline = \"3s\"\npage_size = 1000\nmax_pages = 50\n",
        |_| {},
    );
    for n in &names {
        d.edge_setup.wait_ready(n, Duration::from_secs(30));
    }
    let url = d.edge_setup.endpoint("/mcp");
    let list_all = || -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
            let reply = mcp_post(&url, &[], &body).expect("list");
            assert_eq!(reply.status, 200, "{}", reply.text());
            let v = reply.json();
            let tools = v["result"]["tools"].as_array().expect("tools").clone();
            out.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
            cursor = v["result"]["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                return out;
            }
        }
        panic!("the federated list never ended");
    };
    let tools = list_all();
    let of = |svc: &str| {
        tools
            .iter()
            .filter(|t| t.starts_with(&format!("{svc}__")))
            .count()
    };
    assert!(tools.contains(&"ok__echo".to_owned()), "{tools:?}");
    assert_eq!(of("listmalformed"), 0, "a list that is no list is left out");
    assert_eq!(
        of("listduplicates"),
        0,
        "every copy of a duplicated name is dropped"
    );
    assert_eq!(
        tools
            .iter()
            .filter(|t| t.starts_with("listcontrol__"))
            .collect::<Vec<_>>(),
        ["listcontrol__echo"],
        "names with control characters are dropped, the rest kept"
    );
    assert_eq!(of("listmany"), 10_000, "10,000 tools, paged by the edge");
    assert!(
        of("listloop") >= 1 && of("listloop") <= 50,
        "a looping cursor ends the reading"
    );
    assert_eq!(
        of("listslow"),
        0,
        "a list slower than the deadline is left out"
    );
    assert!(tools
        .iter()
        .all(|t| !t.chars().any(char::is_control) && t.len() <= 64));
    for needle in [
        "has no `tools` list",
        "names left out",
        "a cursor it gave before",
        "no answer within the [federation] deadline",
    ] {
        d.edge.wait_for_log(needle, Duration::from_secs(10));
    }
    // The endpoint still serves calls of the healthy service.
    let call = mcp_post(
        &url,
        &[],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "ok__echo", "arguments": {"message": "still here"}}}),
    )
    .unwrap();
    assert!(call.text().contains("still here"), "{}", call.text());
}

/// Era bridging both ways: a 2025-11-25 client reaches a backend that speaks only 2026-07-28
/// (the edge answers `initialize` and keeps the session on its side), and a 2026-07-28 client
/// reaches `server-everything` (legacy only: the edge holds a backend session and wraps each
/// stateless request), on `/mcp` always and on `/mcp/{service}` with `bridge_eras = true`.
#[test]
fn clients_of_either_era_reach_backends_of_the_other() {
    let peers = Peers::get();
    let dir = tempfile::tempdir().unwrap();
    let (_modern_only, port) = start_echo_backend(dir.path(), &["--modern-only"]);
    let (_everything, everything_url) = start_server_everything(dir.path(), &peers);
    let modern_url = format!("http://127.0.0.1:{port}/mcp");
    let d = Deployment::start_services_with(
        true,
        &[
            ("modern", modern_url.as_str(), ""),
            ("everything", everything_url.as_str(), ""),
            ("plain", modern_url.as_str(), ""),
        ],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        &[
            ("modern", "bridge_eras = true"),
            ("everything", "bridge_eras = true"),
        ],
        |_| {},
    );
    for s in ["everything", "plain"] {
        d.edge_setup.wait_ready(s, Duration::from_secs(30));
    }
    let call = |cmd: &mut std::process::Command| -> String {
        let out = cmd.env("UNDERPASS_CA_FILE", d.pki.ca()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let args = ["call", "--tool=echo", "--args={\"message\":\"old to new\"}"];

    // Without bridging, a legacy client cannot talk to the 2026-only backend at all ...
    let plain = call(&mut ts_client(&peers, &d.edge_setup.url("plain"), &args));
    assert!(!plain.contains("\"ok\":true"), "{plain}");
    // ... with bridge_eras it can, under the backend's own names.
    let v = run_client(
        &d,
        &mut ts_client(&peers, &d.edge_setup.url("modern"), &args),
    );
    assert_eq!(v, json!({"ok": true, "text": "old to new"}), "{v}");
    // A 2026-07-28 client reaches server-everything on its own bridged endpoint, progress and all.
    let py = run_client(
        &d,
        &mut py_client(
            &peers,
            &d.edge_setup.url("everything"),
            &["smoke", "--mode=2026-07-28", "--message=new to old"],
        ),
    );
    assert_eq!(py["protocolVersion"], MODERN, "{py}");
    assert_eq!(py["echo"], "Echo: new to old", "{py}");
    assert_live_progress(&py);

    // Through /mcp, a legacy client calls the 2026-only backend's tool.
    let url = d.edge_setup.endpoint("/mcp");
    let v = run_client(
        &d,
        &mut ts_client(
            &peers,
            &url,
            &[
                "call",
                "--tool=modern__echo",
                "--args={\"message\":\"old to new\"}",
            ],
        ),
    );
    assert_eq!(v, json!({"ok": true, "text": "old to new"}), "{v}");
    // And a 2026-07-28 client calls server-everything's.
    let v = run_client(
        &d,
        &mut py_client(
            &peers,
            &url,
            &[
                "call",
                "--tool=everything__echo",
                "--args={\"message\":\"new to old\"}",
                "--mode=2026-07-28",
            ],
        ),
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["text"], "Echo: new to old", "{v}");
}
