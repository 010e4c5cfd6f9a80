//! Redaction and blocking as policy obligations (README, "Redaction and blocking"), end to
//! end: the official SDK clients and raw HTTP through edge and connector, in front of
//! server-everything (event-stream answers) and the echo backend (JSON answers).

use std::time::Duration;

use serde_json::{json, Value};
use underpass_tests::backends::{start_echo_backend, start_server_everything};
use underpass_tests::http::{self, mcp_post, messages};
use underpass_tests::{py_client, run_client, sha256_hex, ts_client, Deployment, Peers};

const MODERN: &str = "2026-07-28";
const BLOCKED: &str = "key-of-a-blocked-caller";
const PLAIN: &str = "key-of-a-plain-caller";
const MEDIATED: &str = "key-of-a-mediated-caller";

/// An AWS access key id (AWS's documented example) and a private key, as a backend or a client
/// might carry them.
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const EMAIL: &str = "ana.lopez@example.com";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----";

const POLICY: &str = r#"
[[allow]]
name = "redacted"
principals = ["anonymous", "apikey:mediated"]
tools = ["*"]
redact = ["secrets", "email"]

[[allow]]
name = "blocked"
principals = ["apikey:blocked"]
tools = ["*"]
block = ["secrets", "classified"]

[[allow]]
name = "plain"
principals = ["apikey:plain"]
tools = ["*"]

[detectors]
classified = "Echo: .*classified"
"#;

struct Setup {
    d: Deployment,
    echo_port: u16,
    _backends: Vec<underpass_tests::Proc>,
}

fn setup(peers: &Peers) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (everything, everything_url) = start_server_everything(dir.path(), peers);
    // The Python SDK client reads 2026-07-28 lists, which carry caching hints.
    let (echo, echo_port) = start_echo_backend(dir.path(), &["--list-ttl-ms", "0"]);
    let keys: String = [
        ("blocked", BLOCKED),
        ("plain", PLAIN),
        ("mediated", MEDIATED),
    ]
    .iter()
    .map(|(name, key)| {
        format!(
            "[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\n",
            sha256_hex(key)
        )
    })
    .collect();
    let extra = format!(
        "[auth]\nanonymous = true\n{keys}[policy]\nfile = \"policy.toml\"\n\
         [audit]\nfile = \"audit.jsonl\"\n"
    );
    let echo_url = format!("http://127.0.0.1:{echo_port}/mcp");
    let d = Deployment::start_services(
        false,
        &[("everything", &everything_url, ""), ("echo", &echo_url, "")],
        &extra,
        |dir| std::fs::write(dir.join("policy.toml"), POLICY).unwrap(),
    );
    d.edge_setup.wait_ready("echo", Duration::from_secs(30));
    Setup {
        d,
        echo_port,
        _backends: vec![everything, echo],
    }
}

/// A 2026-07-28 `tools/call` of `tool` with `arguments`, with the API key `key`.
fn call_modern(url: &str, key: &str, tool: &str, arguments: Value) -> http::Reply {
    let auth = format!("Bearer {key}");
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", tool),
    ];
    mcp_post(url, &headers, &body).unwrap()
}

fn metric(d: &Deployment, prefix: &str) -> u64 {
    let text = http::get(&d.edge_setup.admin("/metrics")).unwrap().text();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The audit lines so far (the writer flushes within moments of a request's end).
fn audit_lines(d: &Deployment, until: impl Fn(&[Value]) -> bool) -> (Vec<Value>, String) {
    let path = d.path().join("audit.jsonl");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if until(&lines) {
            return (lines, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "audit log never showed what was expected:\n{}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
}

fn mediations(lines: &[Value], action: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| l["mediation"].as_array())
        .flatten()
        .filter(|m| m["action"] == action)
        .cloned()
        .collect()
}

/// The official SDK clients call a tool whose result carries a key and an email: through
/// `/mcp/{service}` with an event-stream answer (server-everything, TypeScript SDK) and a
/// JSON answer (echo backend, Python SDK), and through the federated `/mcp`. Each gets the
/// text with both replaced; the audit log says what was redacted where, never the values;
/// the metrics count it.
#[test]
fn secrets_and_emails_in_tool_results_are_redacted_for_sdk_clients() {
    let peers = Peers::get();
    let s = setup(&peers);
    let message = format!("deploy with {AWS_KEY} and tell {EMAIL} when done");
    let redacted = "deploy with [REDACTED:secrets] and tell [REDACTED:email] when done";
    let args = json!({ "message": message }).to_string();
    let tool_arg = "--tool=echo".to_owned();
    let args_arg = format!("--args={args}");
    let call = [tool_arg.as_str(), args_arg.as_str()];

    // Event stream: server-everything answers tools/call with SSE.
    let url = s.d.edge_setup.url("everything");
    let out = run_client(
        &s.d,
        &mut ts_client(&peers, &url, &[&["call"][..], &call].concat()),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["text"], format!("Echo: {redacted}"), "{out}");

    // JSON: the echo backend answers with one JSON body.
    let url = s.d.edge_setup.url("echo");
    let out = run_client(
        &s.d,
        &mut py_client(&peers, &url, &[&["call"][..], &call].concat()),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["text"], redacted, "{out}");

    // The federated endpoint applies the same rule of the real service.
    let url = s.d.edge_setup.endpoint("/mcp");
    let fed_tool = "--tool=everything__echo";
    let out = run_client(
        &s.d,
        &mut ts_client(&peers, &url, &["call", fed_tool, args_arg.as_str()]),
    );
    assert_eq!(out["text"], format!("Echo: {redacted}"), "{out}");

    let (lines, text) = audit_lines(&s.d, |l| mediations(l, "redact").len() >= 6);
    assert!(!text.contains(AWS_KEY) && !text.contains(EMAIL), "{text}");
    for m in mediations(&lines, "redact") {
        assert_eq!(m["location"], "tools/call result", "{m}");
        assert_eq!(m["count"], 1, "{m}");
        assert!(
            m["detector"] == "secrets" || m["detector"] == "email",
            "{m}"
        );
    }
    let redacted_lines: Vec<&Value> = lines.iter().filter(|l| l["mediation"].is_array()).collect();
    assert!(
        redacted_lines
            .iter()
            .all(|l| l["rule"] == "redacted" && l["mcp_method"] == "tools/call"),
        "{redacted_lines:?}"
    );
    let counted = metric(
        &s.d,
        "underpass_mediations_total{service=\"everything\",action=\"redact\",detector=\"secrets\"}",
    );
    assert_eq!(
        counted, 2,
        "one direct and one federated call to everything"
    );
}

/// A call whose arguments carry a private key is refused before it crosses (403, the
/// detector named, the key nowhere in the answer or the audit log; the backend never saw
/// it), on `/mcp/{service}` and on `/mcp`. A result that carries what a `block` detector
/// finds is replaced with an error.
#[test]
fn a_private_key_in_arguments_is_blocked_and_a_result_that_carries_one_is_withheld() {
    let peers = Peers::get();
    let s = setup(&peers);
    let stats = || {
        http::get(&format!("http://127.0.0.1:{}/stats", s.echo_port))
            .unwrap()
            .json()["tools/call"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = stats();
    for url in [s.d.edge_setup.url("echo"), s.d.edge_setup.endpoint("/mcp")] {
        let tool = if url.ends_with("/mcp") {
            "echo__echo"
        } else {
            "echo"
        };
        let reply = call_modern(
            &url,
            BLOCKED,
            tool,
            json!({"message": format!("use {PEM}")}),
        );
        assert_eq!(reply.status, 403, "{}", reply.text());
        let v = reply.json();
        assert_eq!(v["error"]["code"], -31403, "{v}");
        assert_eq!(v["error"]["data"]["detector"], "secrets", "{v}");
        assert_eq!(v["id"], 9, "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("\"secrets\"") && message.contains("blocked"),
            "{v}"
        );
        assert!(!reply.text().contains("MIIE"), "{v}");
    }
    assert_eq!(stats(), before, "a blocked call never reaches the backend");

    // The same caller's clean call goes through untouched.
    let reply = call_modern(
        &s.d.edge_setup.url("echo"),
        BLOCKED,
        "echo",
        json!({"message": "hi"}),
    );
    assert_eq!(reply.json()["result"]["content"][0]["text"], "hi");

    // A result the `classified` detector finds in (server-everything's "Echo: …"; the
    // arguments alone hold no match): the backend ran the call, the caller gets an error
    // instead of the result.
    let reply = call_modern(
        &s.d.edge_setup.endpoint("/mcp"),
        BLOCKED,
        "everything__echo",
        json!({"message": "the classified plan"}),
    );
    let msgs = messages(&reply);
    let answer = msgs
        .iter()
        .find(|m| m["id"] == 9)
        .unwrap_or_else(|| panic!("{}", reply.text()));
    assert_eq!(answer["error"]["code"], -31403, "{answer}");
    assert_eq!(
        answer["error"]["data"]["detector"], "classified",
        "{answer}"
    );
    assert!(
        !reply.text().contains("classified plan"),
        "{}",
        reply.text()
    );

    let (lines, text) = audit_lines(&s.d, |l| mediations(l, "block").len() >= 3);
    assert!(!text.contains("MIIE"), "{text}");
    let blocks = mediations(&lines, "block");
    let places: Vec<(&str, &str)> = blocks
        .iter()
        .map(|m| {
            (
                m["detector"].as_str().unwrap_or_default(),
                m["location"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            ("secrets", "tools/call arguments"),
            ("secrets", "tools/call arguments"),
            ("classified", "tools/call result"),
        ],
        "{blocks:?}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["mediation"][0]["location"] == "tools/call arguments")
            .all(|l| l["outcome"] == "denied" && l["http_status"] == 403),
        "{text}"
    );
}

/// Clean answers cross byte for byte whether or not a rule carries obligations: a small JSON
/// answer, and a 1 MiB one (read whole by the redaction path, and forwarded as it came).
#[test]
fn clean_traffic_is_byte_identical_with_obligations() {
    let peers = Peers::get();
    let s = setup(&peers);
    let url = s.d.edge_setup.url("echo");
    for (tool, arguments) in [
        (
            "echo",
            json!({"message": "nothing secret here, just 42 words"}),
        ),
        ("blob", json!({"size": 1 << 20})),
    ] {
        let plain = call_modern(&url, PLAIN, tool, arguments.clone());
        let mediated = call_modern(&url, MEDIATED, tool, arguments);
        assert_eq!(plain.status, 200, "{}", plain.text());
        assert_eq!(mediated.status, 200);
        assert!(plain.body == mediated.body, "{tool}: bodies differ");
        assert!(plain.body.len() >= if tool == "blob" { 1 << 20 } else { 10 });
    }
    let counted = metric(&s.d, "underpass_mediations_total");
    assert_eq!(counted, 0, "nothing was found, so nothing is counted");
}

/// An invalid pattern, an unknown detector and an empty list are each a clear error that
/// `--check` reports (exit 1, naming the rule), never a crash; the running edge keeps its
/// policy when a reload brings one.
#[test]
fn bad_detectors_are_reported_by_check_and_refused_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let pki = underpass_tests::Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let setup = underpass_tests::EdgeSetup::write(
        dir.path(),
        false,
        &[("echo", &["dc1"])],
        "[auth]\nanonymous = true\n[policy]\nfile = \"policy.toml\"\n",
    );
    let policy = dir.path().join("policy.toml");
    let check = |text: &str| {
        std::fs::write(&policy, text).unwrap();
        std::process::Command::new(underpass_tests::bin("underpass-edge"))
            .arg("--config")
            .arg(&setup.config)
            .arg("--check")
            .output()
            .unwrap()
    };
    let rule = "[[allow]]\nname = \"ext\"\nprincipals = [\"*\"]\ntools = [\"*\"]\n";
    let good = format!(
        "{rule}redact = [\"secrets\", \"badge\"]\n[detectors]\nbadge = \"EMP-[0-9]{{6}}\"\n"
    );
    let out = check(&good);
    assert!(out.status.success(), "{}", underpass_tests::show(&out));
    for (text, why) in [
        (
            format!("{rule}redact = [\"badge\"]\n[detectors]\nbadge = \"EMP-([0-9]\"\n"),
            "not a valid regex",
        ),
        (
            format!("{rule}block = [\"ssn\"]\n"),
            "no detector named \"ssn\"",
        ),
        (format!("{rule}redact = []\n"), "`redact` must not be empty"),
        (
            format!("{rule}redact = [\"x\"]\n[detectors]\nx = \"a*\"\n"),
            "matches the empty text",
        ),
    ] {
        let out = check(&text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{text}: {}",
            underpass_tests::show(&out)
        );
        // A rule's list names the rule; a named pattern names itself.
        let named = stderr.contains("\"ext\"") || stderr.contains("[detectors]: detector");
        assert!(stderr.contains(why) && named, "{why}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // A running edge given a bad policy keeps the one in force, and says why.
    std::fs::write(&policy, &good).unwrap();
    let mut edge = setup.start(dir.path());
    std::fs::write(&policy, format!("{rule}block = [\"ssn\"]\n")).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &edge.pid().to_string()])
        .status();
    edge.wait_for_log("policy not reloaded", Duration::from_secs(10));
    assert!(edge.alive(), "{}", edge.log_text());
}
