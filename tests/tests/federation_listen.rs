//! Change notifications on the federated endpoint `/mcp` (issue 17): a 2026-07-28
//! `subscriptions/listen` and a 2025-11-25 session's event stream, each merged from every
//! service's own stream: the Python SDK fixture (a 2026-07-28 backend, reached with its own
//! `subscriptions/listen`) and `server-everything` (legacy only, reached through the event
//! stream of the edge's session there). A backend's `list_changed` drops its cached lists.
//! And the other way down a session: a 2025-11-25 client asked for input, on its call's own
//! stream, by the fixture's `input_required` rounds.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post, messages, EventStream};
use underpass_tests::*;

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// A resource of server-everything that accepts subscriptions, as `/mcp` names it.
const EVERYTHING_DOC: &str =
    "underpass://everything/demo://resource/static/document/architecture.md";

/// What the view `docs` calls [`EVERYTHING_DOC`].
const DOC_ALIAS: &str = "docs://architecture";

struct Two {
    d: Deployment,
    _fixture: Proc,
    _everything: Proc,
    _scratch: tempfile::TempDir,
}

/// The fixture (lists cacheable for a minute, public) and server-everything behind one
/// connector, anyone allowed everything.
fn fixture_and_everything() -> Two {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (everything, everything_url) = start_server_everything(scratch.path(), &peers);
    let port = free_port();
    let mut fixture = Proc::spawn(
        "fixture",
        scratch.path(),
        Command::new(peers.path("VENV_PYTHON"))
            .arg(repo_root().join("tests/peers/fixture/server.py"))
            .args(["--port", &port.to_string()])
            .env("FIXTURE_LIST_TTL_MS", "600000"),
    );
    fixture.wait_for_log("conformance-fixture ready", Duration::from_secs(30));
    let fixture_url = format!("http://127.0.0.1:{port}/mcp");
    let d = Deployment::start_services(
        false,
        &[
            ("fixture", fixture_url.as_str(), ""),
            ("everything", everything_url.as_str(), ""),
        ],
        &format!(
            "[auth]\nanonymous = true\n[policy]\nallow_all = true\n\
             [[views]]\nname = \"docs\"\nresources = [\"{EVERYTHING_DOC}\"]\n\
             aliases = {{ \"{DOC_ALIAS}\" = \"{EVERYTHING_DOC}\" }}\n"
        ),
        |_| {},
    );
    d.edge_setup
        .wait_ready("everything", Duration::from_secs(30));
    Two {
        d,
        _fixture: fixture,
        _everything: everything,
        _scratch: scratch,
    }
}

/// A 2026-07-28 request to `/mcp`: its HTTP status and first message.
fn modern_post(
    url: &str,
    id: u64,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> (u16, Value) {
    let mut headers = vec![("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
    if let Some(n) = name {
        headers.push(("Mcp-Name", n));
    }
    let reply = mcp_post(url, &headers, &modern_body(id, method, params)).expect("post");
    let first = messages(&reply).into_iter().next().unwrap_or(Value::Null);
    (reply.status, first)
}

fn modern_body(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "listen-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A 2025-11-25 client subscribes with `resources/subscribe` to resources of the fixture,
/// which speaks 2026-07-28 only for the edge and has no such method there: the edge keeps the
/// subscriptions for the session and asks the fixture for them with `subscriptions/listen`.
/// The session's event stream gets the updates under the federated URIs, for subscriptions
/// made before it opened and after, and none for a resource unsubscribed from.
#[test]
fn a_legacy_session_subscribes_through_the_edge_to_a_2026_only_backend() {
    const WATCHED: &str = "test://watched-resource";
    const STATIC: &str = "test://static-text";
    let t = fixture_and_everything();
    let url = t.d.edge_setup.endpoint("/mcp");
    let federated = |uri: &str| format!("underpass://fixture/{uri}");
    let (session, caps) = legacy_session(&url, json!({}));
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
    let legacy = ("MCP-Protocol-Version", LEGACY);
    let in_session = [legacy, ("Mcp-Session-Id", session.as_str())];
    let post = |headers: &[(&str, &str)], id: u64, method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = mcp_post(&url, headers, &body).unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        messages(&reply).remove(0)
    };
    let subscribe = |id: u64, method: &str, uri: &str| {
        let answer = post(&in_session, id, method, json!({"uri": federated(uri)}));
        assert_eq!(answer["result"], json!({}), "{method} {uri}: {answer}");
    };
    let trigger = |id: u64, uri: &str| {
        let params =
            json!({"name": "fixture__test_trigger_resource_update", "arguments": {"uri": uri}});
        let answer = post(&in_session, id, "tools/call", params);
        assert!(answer.get("result").is_some(), "{answer}");
    };

    // Without a session there is nothing to keep the subscription for: refused, saying why.
    let refused = post(
        &[legacy],
        2,
        "resources/subscribe",
        json!({"uri": federated(WATCHED)}),
    );
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("initialize"),
        "{refused}"
    );

    subscribe(3, "resources/subscribe", WATCHED);
    let mut stream = EventStream::open(
        "GET",
        &url,
        &[
            ("Accept", "text/event-stream"),
            legacy,
            ("Mcp-Session-Id", session.as_str()),
        ],
        b"",
    )
    .expect("open the event stream");
    assert_eq!(stream.status, 200);
    // The edge opens the fixture's listen in the background: trigger until the update comes.
    let next_update = |stream: &mut EventStream, wait: Duration| loop {
        let msg = stream.next_message(wait)?;
        if msg["method"] == "notifications/resources/updated" {
            return Some(msg);
        }
    };
    let mut id = 10;
    let mut until_updated = |stream: &mut EventStream, uri: &str| {
        for _ in 0..10 {
            id += 1;
            trigger(id, uri);
            if let Some(updated) = next_update(stream, Duration::from_secs(3)) {
                return updated;
            }
        }
        panic!("no update of {uri} on the session's event stream");
    };
    let updated = until_updated(&mut stream, WATCHED);
    assert_eq!(updated["params"]["uri"], federated(WATCHED), "{updated}");

    // A subscription made while the stream is open reaches the backend too.
    subscribe(4, "resources/subscribe", STATIC);
    let updated = until_updated(&mut stream, STATIC);
    assert_eq!(updated["params"]["uri"], federated(STATIC), "{updated}");

    // Once unsubscribed, the resource's updates are not reported; the other's still are.
    while next_update(&mut stream, Duration::from_secs(1)).is_some() {}
    subscribe(5, "resources/unsubscribe", WATCHED);
    trigger(6, WATCHED);
    trigger(7, STATIC);
    let updated = next_update(&mut stream, Duration::from_secs(30)).expect("an update");
    assert_eq!(updated["params"]["uri"], federated(STATIC), "{updated}");
}

/// A 2025-11-25 session of `url`'s: its id and the capabilities the edge declared.
/// A 2025-11-25 client calls the fixture's `test_elicitation`, which in 2026-07-28 answers
/// `input_required` until it has the client's answer: the edge asks the client on the call's
/// stream, with a request of its own, only a client that declared it can answer; only the
/// session asked can answer; the answer goes back to the fixture, whose result ends the
/// stream; a refusal ends the call with an error that names the request.
#[test]
fn a_legacy_session_is_asked_for_input_on_its_calls_stream() {
    let t = fixture_and_everything();
    let url = t.d.edge_setup.endpoint("/mcp");
    let call = |session: &str, id: u64| -> EventStream {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "fixture__test_elicitation", "arguments": {}}});
        let stream = EventStream::open(
            "POST",
            &url,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("MCP-Protocol-Version", LEGACY),
                ("Mcp-Session-Id", session),
            ],
            body.to_string().as_bytes(),
        )
        .expect("post the call");
        assert_eq!(stream.status, 200);
        stream
    };
    let answer = |session: &str, answer: Value| {
        let headers = [
            ("MCP-Protocol-Version", LEGACY),
            ("Mcp-Session-Id", session),
        ];
        let reply = mcp_post(&url, &headers, &answer).unwrap();
        assert_eq!(reply.status, 202, "{}", reply.text());
    };
    let wait = Duration::from_secs(30);
    let error_of = |msg: &Value| msg["error"]["message"].as_str().unwrap_or("").to_owned();

    // A client that declared no elicitation is not asked: the call fails, saying why.
    let (plain, _) = legacy_session(&url, json!({}));
    let ended = call(&plain, 2)
        .next_message(wait)
        .expect("the call's answer");
    assert_eq!(ended["id"], 2, "{ended}");
    assert!(
        error_of(&ended).contains("\"elicitation\" capability"),
        "{ended}"
    );

    let (asked, _) = legacy_session(&url, json!({"elicitation": {}}));
    let (other, _) = legacy_session(&url, json!({"elicitation": {}}));
    let mut stream = call(&asked, 3);
    let ask = stream.next_message(wait).expect("the input request");
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert!(ask["params"]["requestedSchema"].is_object(), "{ask}");
    let ask_id = ask["id"].as_str().expect("the edge's own id").to_owned();
    let accept = |id: &str, name: &str| {
        json!({"jsonrpc": "2.0", "id": id,
               "result": {"action": "accept", "content": {"name": name}}})
    };
    let waiting = || {
        let metrics = http::get(&t.d.edge_setup.admin("/metrics")).unwrap().text();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("underpass_federation_input_requests_waiting "))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("no waiting gauge: {metrics}"))
    };
    // Another session's answer with that id reaches nothing: the call still waits.
    answer(&other, accept(&ask_id, "mallory"));
    assert_eq!(stream.next_message(Duration::from_secs(1)), None);
    assert_eq!(waiting(), "underpass_federation_input_requests_waiting 1");
    answer(&asked, accept(&ask_id, "ada"));
    let done = stream.next_message(wait).expect("the call's result");
    assert_eq!(done["id"], 3, "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("action=accept") && text.contains("ada"),
        "{done}"
    );
    assert!(!text.contains("mallory"), "{done}");
    assert_eq!(waiting(), "underpass_federation_input_requests_waiting 0");

    // A client that hangs up while asked: nothing is left waiting for its answer.
    let mut stream = call(&asked, 5);
    stream.next_message(wait).expect("the input request");
    assert_eq!(waiting(), "underpass_federation_input_requests_waiting 1");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(60);
    while waiting() != "underpass_federation_input_requests_waiting 0" {
        assert!(Instant::now() < deadline, "still waiting: {}", waiting());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The client refuses: the call ends with an error naming the request.
    let mut stream = call(&asked, 4);
    let ask = stream.next_message(wait).expect("the input request");
    let refusal = json!({"jsonrpc": "2.0", "id": ask["id"],
                         "error": {"code": -1, "message": "user closed the dialog"}});
    answer(&asked, refusal);
    let ended = stream.next_message(wait).expect("the call's answer");
    assert_eq!(ended["id"], 4, "{ended}");
    let said = error_of(&ended);
    assert!(
        said.contains("refused") && said.contains("user_info"),
        "{ended}"
    );

    // server-everything speaks 2025-11-25 only and asks with requests of its own; it offers
    // its sampling tool only to a session whose client declared sampling: the edge opens a
    // backend session per set of client capabilities, and relays the backend's request.
    const SAMPLING_TOOL: &str = "everything__trigger-sampling-request";
    let tools = |session: &str| -> Vec<String> {
        let headers = [
            ("MCP-Protocol-Version", LEGACY),
            ("Mcp-Session-Id", session),
        ];
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}});
        let reply = mcp_post(&url, &headers, &body).unwrap();
        let list = messages(&reply).remove(0);
        list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (sampler, _) = legacy_session(&url, json!({"sampling": {}}));
    assert!(!tools(&plain).iter().any(|t| t == SAMPLING_TOOL));
    assert!(tools(&sampler).iter().any(|t| t == SAMPLING_TOOL));
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
        "name": SAMPLING_TOOL, "arguments": {"prompt": "hello", "maxTokens": 5}}});
    let mut stream = EventStream::open(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", LEGACY),
            ("Mcp-Session-Id", sampler.as_str()),
        ],
        body.to_string().as_bytes(),
    )
    .expect("post the call");
    let ask = stream.next_message(wait).expect("the sampling request");
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    let ask_id = ask["id"].as_str().expect("the edge's own id");
    assert!(ask_id.starts_with("underpass-ask-"), "{ask}");
    answer(
        &sampler,
        json!({"jsonrpc": "2.0", "id": ask_id, "result": {
            "role": "assistant", "model": "test-model", "stopReason": "endTurn",
            "content": {"type": "text", "text": "sampled by the client"}}}),
    );
    let done = stream.next_message(wait).expect("the call's result");
    assert_eq!(done["id"], 6, "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("sampled by the client"), "{done}");
}

fn legacy_session(url: &str, capabilities: Value) -> (String, Value) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": capabilities,
        "clientInfo": {"name": "listen-test", "version": "1"}}});
    let reply = mcp_post(url, &[], &init).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session = reply
        .header("mcp-session-id")
        .expect("a session")
        .to_owned();
    let caps = messages(&reply)[0]["result"]["capabilities"].clone();
    (session, caps)
}

/// A 2026-07-28 `subscriptions/listen` (request `id`, asking `filter`) opened at `url`.
fn listen(url: &str, id: u64, filter: Value) -> EventStream {
    let body = modern_body(id, "subscriptions/listen", filter);
    let stream = EventStream::open(
        "POST",
        url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        body.to_string().as_bytes(),
    )
    .unwrap_or_else(|e| panic!("open the listen stream at {url}: {e}"));
    assert_eq!(stream.status, 200, "the listen stream at {url}");
    stream
}

/// What may come on the first subscription's stream before the message awaited.
const LIST_CHANGED: &[&str] = &["notifications/tools/list_changed"];

/// Waits for the next `notifications/resources/updated` on a subscription's stream (only
/// `allowed` may come before it) and checks it names `uri` and the subscription `id`.
fn resource_update(stream: &mut EventStream, uri: &str, id: u64, allowed: &[&str]) {
    let updated = wait_for(
        stream,
        "notifications/resources/updated",
        allowed,
        Duration::from_secs(30),
    );
    assert_eq!(updated["params"]["uri"], uri, "{updated}");
    assert_eq!(updated["params"]["_meta"][SUBSCRIPTION_ID], id, "{updated}");
}

/// The next message of `stream` with `method`, within `wait`; every message before it must
/// be one of `allowed`.
fn wait_for(stream: &mut EventStream, method: &str, allowed: &[&str], wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let Some(msg) = stream.next_message(deadline - Instant::now()) else {
            break;
        };
        let got = msg["method"].as_str().unwrap_or("");
        if got == method {
            return msg;
        }
        assert!(
            allowed.contains(&got),
            "the stream carried {msg} while waiting for {method}"
        );
    }
    panic!("no {method} on the stream within {wait:?}");
}

fn cache_hits(d: &Deployment) -> u64 {
    let metrics = http::get(&d.edge_setup.admin("/metrics")).unwrap().text();
    metrics
        .lines()
        .find(|l| l.starts_with("underpass_federation_cache_lookups_total{result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn a_subscription_is_acknowledged_first_then_merges_every_services_changes() {
    let t = fixture_and_everything();
    let url = t.d.edge_setup.endpoint("/mcp");

    // The fixture's tool list is cached: the second listing is a hit.
    let (status, first) = modern_post(&url, 1, "tools/list", None, json!({}));
    assert_eq!(status, 200, "{first}");
    let before = cache_hits(&t.d);
    let (_, again) = modern_post(&url, 2, "tools/list", None, json!({}));
    assert_eq!(first["result"]["tools"], again["result"]["tools"]);
    assert_eq!(
        cache_hits(&t.d),
        before + 1,
        "the fixture's list came from the cache"
    );

    let filter = json!({"notifications": {
        "toolsListChanged": true,
        "resourceSubscriptions": [EVERYTHING_DOC, "underpass://nowhere/x://y"],
    }});
    let mut stream = listen(&url, 77, filter);

    // The acknowledgement comes first, tagged, and honours only what some backend can send:
    // tool list changes, and the subscription to a resource of a service that exists.
    let ack = stream
        .next_message(Duration::from_secs(30))
        .expect("an acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], 77, "{ack}");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": [EVERYTHING_DOC]}),
        "{ack}"
    );

    // A tool list change at the fixture (a 2026-07-28 backend) reaches the client, tagged
    // with its subscription id, and drops the fixture's cached list.
    let (status, called) = modern_post(
        &url,
        3,
        "tools/call",
        Some("fixture__test_trigger_tool_change"),
        json!({"name": "fixture__test_trigger_tool_change", "arguments": {}}),
    );
    assert_eq!(status, 200, "{called}");
    assert!(called.get("result").is_some(), "{called}");
    let changed = wait_for(
        &mut stream,
        "notifications/tools/list_changed",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(changed["params"]["_meta"][SUBSCRIPTION_ID], 77, "{changed}");
    let hits = cache_hits(&t.d);
    let (_, relisted) = modern_post(&url, 4, "tools/list", None, json!({}));
    assert!(relisted["result"]["tools"].is_array(), "{relisted}");
    assert_eq!(
        cache_hits(&t.d),
        hits,
        "after list_changed the fixture's list is read again, not served from the cache"
    );

    // server-everything (legacy only) reports updates of the subscribed resource on the
    // event stream of the edge's session there; they arrive under the federated URI.
    let (status, toggled) = modern_post(
        &url,
        5,
        "tools/call",
        Some("everything__toggle-subscriber-updates"),
        json!({"name": "everything__toggle-subscriber-updates", "arguments": {}}),
    );
    assert_eq!(status, 200, "{toggled}");
    resource_update(&mut stream, EVERYTHING_DOC, 77, LIST_CHANGED);

    // Progress and log messages of the backends never travel on a listen stream.
    let mut later = Vec::new();
    while let Some(msg) = stream.next_message(Duration::from_secs(6)) {
        later.push(msg);
        if later.len() >= 3 {
            break;
        }
    }
    for msg in &later {
        let method = msg["method"].as_str().unwrap_or("");
        assert!(
            [
                "notifications/resources/updated",
                "notifications/tools/list_changed"
            ]
            .contains(&method),
            "{msg}"
        );
    }
    // On a view, the resource goes by the view's alias both ways: asked by it, acknowledged
    // and updated under it. The first stream stays open: both are fed by the one event stream
    // of the edge's legacy session at server-everything, and both keep getting updates.
    let filter = json!({"notifications": {"resourceSubscriptions": [DOC_ALIAS]}});
    let mut on_view = listen(&t.d.edge_setup.endpoint("/mcp/view/docs"), 78, filter);
    let ack = on_view
        .next_message(Duration::from_secs(30))
        .expect("an acknowledgement");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": [DOC_ALIAS]}),
        "{ack}"
    );
    resource_update(&mut on_view, DOC_ALIAS, 78, &[]);
    // What the first stream had before is passed over (updates come seconds apart); the
    // next one must still come.
    for _ in 0..50 {
        if stream.next_message(Duration::from_millis(300)).is_none() {
            break;
        }
    }
    resource_update(&mut stream, EVERYTHING_DOC, 77, LIST_CHANGED);
    drop(on_view);
    drop(stream);
    // Stop the simulated updates (the tool toggles them).
    modern_post(
        &url,
        6,
        "tools/call",
        Some("everything__toggle-subscriber-updates"),
        json!({"name": "everything__toggle-subscriber-updates", "arguments": {}}),
    );
}

#[test]
fn a_legacy_session_gets_list_changes_on_its_event_stream() {
    let t = fixture_and_everything();
    let url = t.d.edge_setup.endpoint("/mcp");
    let legacy = [("MCP-Protocol-Version", LEGACY)];

    let (session, caps) = legacy_session(&url, json!({}));
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");

    // A GET needs the session, and a 2026-07-28 client is pointed to subscriptions/listen.
    let get = |headers: &[(&str, &str)]| http::request("GET", &url, headers, b"").unwrap();
    let no_session = get(&[("Accept", "text/event-stream"), legacy[0]]);
    assert_eq!(no_session.status, 400, "{}", no_session.text());
    let modern = get(&[
        ("Accept", "text/event-stream"),
        ("MCP-Protocol-Version", MODERN),
    ]);
    assert_eq!(modern.status, 405, "{}", modern.text());
    let forged = get(&[
        ("Accept", "text/event-stream"),
        legacy[0],
        ("Mcp-Session-Id", "forged"),
    ]);
    assert_eq!(forged.status, 404, "{}", forged.text());
    // And subscriptions/listen is not a 2025-11-25 method.
    let listen = json!({"jsonrpc": "2.0", "id": 2, "method": "subscriptions/listen", "params": {}});
    let reply = mcp_post(
        &url,
        &[legacy[0], ("Mcp-Session-Id", session.as_str())],
        &listen,
    )
    .unwrap();
    assert_eq!(
        messages(&reply)[0]["error"]["code"],
        -32601,
        "{}",
        reply.text()
    );

    let mut stream = EventStream::open(
        "GET",
        &url,
        &[
            ("Accept", "text/event-stream"),
            legacy[0],
            ("Mcp-Session-Id", session.as_str()),
        ],
        b"",
    )
    .expect("open the event stream");
    assert_eq!(stream.status, 200);
    // The edge opens the services' streams in the background: call until the change arrives.
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "fixture__test_trigger_prompt_change", "arguments": {}}});
    let mut changed = None;
    for _ in 0..10 {
        let reply = mcp_post(
            &url,
            &[legacy[0], ("Mcp-Session-Id", session.as_str())],
            &call,
        )
        .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        if let Some(msg) = stream.next_message(Duration::from_secs(3)) {
            changed = Some(msg);
            break;
        }
    }
    let changed = changed.expect("a prompts/list_changed on the session's event stream");
    assert_eq!(
        changed["method"], "notifications/prompts/list_changed",
        "{changed}"
    );
    assert!(
        changed
            .pointer(&format!(
                "/params/_meta/{}",
                SUBSCRIPTION_ID.replace('/', "~1")
            ))
            .is_none(),
        "a 2025-11-25 stream carries no subscription id: {changed}"
    );
}
