//! The edge's admin API (issue 15, items 4 and "Bad input"), against real processes:
//! - on a loopback admin listener every `GET /api/...` answers JSON about the live edge (the
//!   tunnel, the services and their figures, a session, a denial the test made, the audit
//!   trail verified, certificate expiry); draining a connector stops new requests to it
//!   (503) until it is resumed; ending a principal's sessions makes their ids 404; reload
//!   reports what it re-read; wrong methods are 405 with `Allow`, oversized bodies 413, and no
//!   response carries secret material;
//! - on a non-loopback admin listener with TLS, `/metrics`, `/` and `/api/...` need an operator
//!   certificate (`underpass-certs issue operator`): a client certificate is 403, none is 401,
//!   the probes stay open.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::faults::FaultBackend;
use underpass_tests::http::{self, Reply};
use underpass_tests::tls_client::TlsClient;
use underpass_tests::*;

const API_KEY: &str = "admin-test-key-3f9a1c";
const POLICY: &str = "[[allow]]\nprincipals = [\"apikey:ci\"]\ntools = [\"echo\"]\n";

fn edge_extra() -> String {
    format!(
        "[auth]\n[[auth.api_keys]]\nname = \"ci\"\nsha256 = \"{}\"\n[policy]\nfile = \"policy.toml\"\n\
         [audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(API_KEY)
    )
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": {"message": "hi"}}})
}

/// No key, key digest or PEM private key in an admin answer.
fn assert_no_secrets(what: &str, text: &str) {
    for secret in [API_KEY, &sha256_hex(API_KEY), "PRIVATE KEY", "BEGIN"] {
        assert!(!text.contains(secret), "{what} exposes {secret:?}:\n{text}");
    }
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_json(d: &Deployment, path: &str) -> Value {
    let r = http::get(&d.edge_setup.admin(path)).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_no_secrets(path, &r.text());
    r.json()
}

fn post(d: &Deployment, path: &str, body: &str) -> Reply {
    http::request(
        "POST",
        &d.edge_setup.admin(path),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap()
}

#[test]
fn the_admin_api_shows_and_steers_the_live_edge_on_loopback() {
    let scratch = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(scratch.path());
    let d =
        Deployment::start_prepared(false, "ok", &backend.url("session"), &edge_extra(), |dir| {
            std::fs::write(dir.join("policy.toml"), POLICY).unwrap()
        });
    let url = d.edge_setup.url("ok");
    let bearer = format!("Bearer {API_KEY}");
    let auth = [("Authorization", bearer.as_str())];

    // A legacy session, an allowed call and a denied one.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"admin-test","version":"1"}}});
    let r = http::mcp_post(&url, &auth, &init).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.header("mcp-session-id").expect("a session").to_owned();
    let r = http::mcp_post(&url, &auth, &call("echo")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http::mcp_post(&url, &auth, &call("delete_everything")).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    // Connectors: the live tunnel with its transport, addresses and certificate expiry.
    let v = get_json(&d, "/api/connectors");
    let dc1 = v["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dc1")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(dc1["online"], true, "{v}");
    assert_eq!(dc1["drained"], false, "{v}");
    let tunnels = dc1["tunnels"].as_array().unwrap();
    assert!(!tunnels.is_empty(), "{v}");
    // The transport each tunnel really has (QUIC, or TCP when a loaded machine made `auto`
    // fall back), as /readyz reports it for the same remote address.
    let ready = http::get(&d.edge_setup.admin("/readyz")).unwrap().json();
    for t in tunnels {
        let same = ready["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["remote"] == t["remote_addr"])
            .unwrap_or_else(|| panic!("{t} not in /readyz {ready}"));
        assert_eq!(t["transport"], same["transport"], "{t}");
        assert_eq!(t["services"], json!(["ok"]), "{t}");
        assert!(
            t["remote_addr"].as_str().unwrap().contains("127.0.0.1"),
            "{t}"
        );
        assert!(t["since"].as_str().unwrap().ends_with('Z'), "{t}");
        assert!(
            t["build"]
                .as_str()
                .unwrap()
                .starts_with("underpass-connector "),
            "the build the connector announced: {t}"
        );
        assert!(
            t["certificate"]["expires_in_seconds"].as_i64().unwrap() > 0,
            "{t}"
        );
    }
    assert!(v["edge"]["version"].is_string(), "{v}");

    // Services: healthy, the requests counted (the last may be counted a moment after its
    // answer was read).
    let v = wait_for("the requests counted", Duration::from_secs(10), || {
        let v = get_json(&d, "/api/services");
        (v["services"][0]["requests"].as_u64() >= Some(3)).then_some(v)
    });
    let ok = &v["services"][0];
    assert_eq!(ok["name"], "ok", "{v}");
    assert_eq!(ok["healthy"], true, "{v}");
    assert_eq!(ok["denied"], 1, "{v}");
    assert!(ok["latency_ms"]["p50"].is_u64(), "{v}");

    // Sessions: counted per principal, never listed by id.
    let v = get_json(&d, "/api/sessions");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(
        v["by_principal"],
        json!([{"service": "ok", "principal": "apikey:ci", "sessions": 1}]),
        "{v}"
    );
    assert!(!v.to_string().contains(&sid), "{v}");

    // Denials: the refused call, with who, what and which rule.
    let v = get_json(&d, "/api/denials");
    let denial = &v["denials"][0];
    assert_eq!(denial["principal"], "apikey:ci", "{v}");
    assert_eq!(denial["service"], "ok", "{v}");
    assert_eq!(denial["method"], "tools/call", "{v}");
    assert_eq!(denial["target"], "delete_everything", "{v}");
    assert_eq!(denial["reason"], "denied", "{v}");
    assert_eq!(denial["status"], 403, "{v}");
    assert!(denial["rule"].is_string(), "{v}");

    // Audit: configured and verified.
    let v = get_json(&d, "/api/audit");
    assert_eq!(v["configured"], true, "{v}");
    assert_eq!(v["verify"]["ok"], true, "{v}");
    assert!(v["verify"]["records"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["last_checkpoint"]["seq"].is_u64(), "{v}");

    // Certificates: the edge's own and the connector's.
    let v = get_json(&d, "/api/certificates");
    let edge = &v["edge"][0];
    assert_eq!(edge["component"], "tunnel_cert", "{v}");
    assert!(edge["identity"].as_str().unwrap().contains("/edge/"), "{v}");
    assert!(edge["expires_in_seconds"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["connectors"][0]["connector"], "dc1", "{v}");

    // The dashboard and its script, with a policy that allows only same-origin files.
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        let r = http::get(&d.edge_setup.admin(path)).unwrap();
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_no_secrets(path, &r.text());
    }
    let metrics = http::get(&d.edge_setup.admin("/metrics")).unwrap();
    assert_eq!(metrics.status, 200);
    assert_no_secrets("/metrics", &metrics.text());

    // Wrong methods: 405 with Allow; unknown paths 404; oversized bodies 413.
    for (method, path, allow) in [
        ("POST", "/api/connectors", "GET"),
        ("DELETE", "/api/services", "GET"),
        ("PUT", "/metrics", "GET"),
        ("GET", "/api/reload", "POST"),
        ("DELETE", "/api/connectors/dc1/drain", "POST"),
    ] {
        let r = http::request(method, &d.edge_setup.admin(path), &[], b"").unwrap();
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    let r = http::get(&d.edge_setup.admin("/api/keys")).unwrap();
    assert_eq!(r.status, 404);
    let big = format!("{{\"principal\": \"{}\"}}", "x".repeat(100 * 1024));
    let r = post(&d, "/api/sessions/end", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = post(&d, "/api/sessions/end", "{\"who\": 1}");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(&d, "/api/connectors/nobody/drain", "");
    assert_eq!(r.status, 404, "{}", r.text());

    // End the principal's sessions: the id is refused by the edge itself from now on.
    let r = post(&d, "/api/sessions/end", "{\"principal\": \"apikey:ci\"}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], 1, "{}", r.text());
    assert_eq!(get_json(&d, "/api/sessions")["total"], 0);
    let with_session = [
        ("Authorization", bearer.as_str()),
        ("Mcp-Session-Id", sid.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let r = http::mcp_post(&url, &with_session, &call("echo")).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // Reload: what was re-read, each with its result.
    let r = post(&d, "/api/reload", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    let components: Vec<&str> = v["reloaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["component"].as_str())
        .collect();
    for c in ["policy", "tunnel_cert", "tunnel_ca"] {
        assert!(components.contains(&c), "{c} not reloaded: {v}");
    }
    assert_no_secrets("/api/reload", &r.text());

    // A page elsewhere cannot use a local browser: a cross-site change is refused (nothing is
    // drained), and a name rebound to 127.0.0.1 cannot read the API; probes stay open.
    let csrf = http::request(
        "POST",
        &d.edge_setup.admin("/api/connectors/dc1/drain"),
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(csrf.status, 403, "{}", csrf.text());
    assert_eq!(
        get_json(&d, "/api/connectors")["connectors"][0]["drained"],
        false
    );
    let rebound = raw_get(d.edge_setup.admin_port, "evil.example", "/api/connectors");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let probe = raw_get(d.edge_setup.admin_port, "evil.example", "/healthz");
    assert!(probe.starts_with("HTTP/1.1 200"), "{probe}");

    // Drain: the connector's tunnels get no new requests (503, the service is unhealthy)
    // until it is resumed; the operator's calls are logged with who made them.
    let r = post(&d, "/api/connectors/dc1/drain", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["drained"], true, "{v}");
    assert!(v["tunnels"].as_u64().unwrap() >= 1, "{v}");
    let r = http::mcp_post(&url, &auth, &call("echo")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        get_json(&d, "/api/services")["services"][0]["healthy"],
        false
    );
    assert_eq!(
        get_json(&d, "/api/connectors")["connectors"][0]["drained"],
        true
    );
    let r = post(&d, "/api/connectors/dc1/resume", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http::mcp_post(&url, &auth, &call("echo")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let log = d.edge.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("admin: connector drained") && l.contains("loopback")),
        "no admin log line naming the actor:\n{log}"
    );
    // And each change is on the audit trail, with who made it.
    let audit = d.dir.path().join("audit.jsonl");
    let admin_records = |audit: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["rule"] == "admin")
            .collect()
    };
    let records = wait_for(
        "the admin actions' audit records",
        Duration::from_secs(10),
        || {
            let records = admin_records(&audit);
            (records.len() >= 4).then_some(records)
        },
    );
    let targets: Vec<&str> = records
        .iter()
        .filter_map(|r| r["target"].as_str())
        .collect();
    for done in [
        "end sessions of apikey:ci",
        "reload: ",
        "drain dc1",
        "resume dc1",
    ] {
        assert!(
            targets.iter().any(|t| t.starts_with(done)),
            "{done:?} not audited: {records:#?}"
        );
    }
    assert!(
        records.iter().all(|r| r["principal"] == "loopback"),
        "{records:#?}"
    );
}

/// An admin listener on every interface (`0.0.0.0`, which is not loopback: the listener is
/// judged by the address it is bound to), reached over loopback.
#[test]
fn a_network_admin_listener_serves_operators_only() {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = FaultBackend::start(dir.path());
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("edge", "edge");
    let (conn_cert, conn_key) = pki.issue("connector", "dc1");
    let (ops_cert, ops_key) = pki.issue("operator", "ops");
    let (alice_cert, alice_key) = pki.issue("client", "alice");
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let setup = EdgeSetup::write(dir.path(), false, &[("ok", &["dc1"])], &edge_extra());
    let port = setup.admin_port;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replacen(
        &format!("[admin]\nlisten = \"127.0.0.1:{port}\""),
        &format!(
            "[admin]\nlisten = \"0.0.0.0:{port}\"\ncert = \"pki/edge.crt\"\nkey = \"pki/edge.key\""
        ),
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
    let _edge = setup.start(dir.path());
    let connector_config = write_connector_config(
        dir.path(),
        "connector.toml",
        "dc1",
        setup.tunnel_port,
        ConnectorPki {
            cert: &conn_cert,
            key: &conn_key,
            ca: &pki.ca(),
        },
        &[("ok", &backend.url("ok"))],
    );
    let _connector = start_connector(dir.path(), "connector", &connector_config);

    // The admin listener binds a moment after the line `start` waits for.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the admin listener never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ca = pki.ca();
    let operator = TlsClient::new(&ca, Some((&ops_cert, &ops_key))).at(ip);
    let client = TlsClient::new(&ca, Some((&alice_cert, &alice_key))).at(ip);
    let nobody = TlsClient::new(&ca, None).at(ip);
    let get = |c: &TlsClient, path: &str| c.request(port, "GET", path, &[], b"").unwrap();

    // The operator sees the live tunnel once it is up.
    let v = wait_for(
        "the tunnel in /api/connectors",
        Duration::from_secs(30),
        || {
            let r = get(&operator, "/api/connectors");
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            (v["connectors"][0]["online"] == true).then_some(v)
        },
    );
    assert_no_secrets("/api/connectors", &v.to_string());
    for path in [
        "/metrics",
        "/",
        "/api/services",
        "/api/denials",
        "/api/audit",
    ] {
        let r = get(&operator, path);
        assert_eq!(r.status, 200, "operator {path}: {}", r.text());
        assert_no_secrets(path, &r.text());
    }

    // Probes stay open to anyone.
    for path in ["/healthz", "/readyz", "/.well-known/jwks.json"] {
        let r = get(&nobody, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    // Without a certificate: 401; with a client's: 403, reads and changes alike.
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/api/connectors"),
        ("POST", "/api/reload"),
        ("POST", "/api/connectors/dc1/drain"),
    ] {
        let r = nobody.request(port, method, path, &[], b"").unwrap();
        assert_eq!(
            r.status,
            401,
            "no certificate {method} {path}: {}",
            r.text()
        );
        assert!(r.text().contains("operator"), "{}", r.text());
        let r = client.request(port, method, path, &[], b"").unwrap();
        assert_eq!(r.status, 403, "client {method} {path}: {}", r.text());
        assert!(r.text().contains("not an operator"), "{}", r.text());
    }
    // Nothing was drained by them.
    let v = get(&operator, "/api/connectors").json();
    assert_eq!(v["connectors"][0]["drained"], false, "{v}");

    // The operator may change things; bad methods and oversized bodies are refused.
    let r = operator
        .request(port, "POST", "/api/reload", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = operator
        .request(port, "PUT", "/api/connectors", &[], b"")
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), Some("GET"));
    let big = vec![b'x'; 100 * 1024];
    let r = operator
        .request(port, "POST", "/api/sessions/end", &[], &big)
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
}

/// `GET path` on the loopback admin port with the `Host` a browser would send for `host`.
fn raw_get(port: u16, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// The name `list-long` of the fault backend lists beside `echo` (77 characters).
const LONG_NAME: &str =
    "a-tool-whose-name-runs-far-past-the-sixty-four-characters-that-clients-accept";

/// Issue 17: the names the federated endpoint cuts to 64 characters are reported at start
/// (logged once, before any client lists) and in `GET /api/federation/names`, and the name
/// reported is the one clients are handed.
#[test]
fn shortened_federated_names_are_logged_at_start_and_listed_by_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultBackend::start(dir.path());
    let (long, ok) = (faults.url("list-long"), faults.url("ok"));
    let mut d = Deployment::start_services(
        false,
        &[("long", long.as_str(), ""), ("ok", ok.as_str(), "")],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n[federation]\nlist_at_start = true\n",
        |_| {},
    );
    for s in ["long", "ok"] {
        d.edge_setup.wait_ready(s, Duration::from_secs(30));
    }
    let names = d.edge_setup.admin("/api/federation/names");
    // No client has listed anything: the edge lists by itself once the tunnels are up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let r = http::get(&names).expect("GET /api/federation/names");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if v["services"]["long"].as_array().map_or(0, Vec::len) == 2
            && v["services"]["ok"].is_array()
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the start report never learned both lists: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["services"]["ok"], json!([]), "{report}");
    let entries = report["services"]["long"].as_array().unwrap();
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["prompt", "tool"], "{report}");
    for e in entries {
        assert_eq!(e["original"], LONG_NAME, "{e}");
        let federated = e["federated"].as_str().unwrap();
        assert_eq!(federated.chars().count(), 64, "{federated}");
        assert!(
            federated.starts_with("long__a-tool-whose-name"),
            "{federated}"
        );
        let hash = federated.rsplit('-').next().unwrap();
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{federated}"
        );
    }
    let federated = entries[1]["federated"].as_str().unwrap().to_owned();
    // Logged at start, once per mapping, naming service, kind, original and federated name.
    d.edge
        .wait_for_log_count("federated name shortened", 2, Duration::from_secs(10));
    let log = d.edge.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("federated name shortened") && l.contains("kind=tool"))
        .expect("the tool's line");
    assert!(
        line.contains("long") && line.contains(&federated) && line.contains(LONG_NAME),
        "{line}"
    );
    // A client's list hands out that name; reading the list again logs nothing new.
    let url = d.edge_setup.endpoint("/mcp");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for _ in 0..2 {
        let v = http::mcp_post(&url, &[], &list).expect("tools/list").json();
        let shown: Vec<&str> = v["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(shown.contains(&federated.as_str()), "{v}");
        assert!(shown.contains(&"ok__echo"), "{v}");
    }
    let log = d.edge.log_text();
    assert_eq!(log.matches("federated name shortened").count(), 2, "{log}");
    // Read-only: another method is 405 with Allow; no secret in the answer.
    let r = http::request("POST", &names, &[], b"{}").expect("POST");
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), Some("GET"), "{:?}", r.text());
    assert_no_secrets("/api/federation/names", &report.to_string());
}
