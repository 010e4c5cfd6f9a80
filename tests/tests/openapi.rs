//! A `kind = "openapi"` service end to end: httpbin (psf/httpbin, a REST application nobody
//! here wrote) behind the connector through `tests/openapi/httpbin.yaml`, listed and called by
//! the official TypeScript (2025-11-25) and Python (2026-07-28) SDK clients through edge and
//! connector, on `/mcp/httpbin` and on the federated `/mcp`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post};
use underpass_tests::{
    free_port, py_client, repo_root, run_client, ts_client, Deployment, Peers, Proc,
};

/// The REST API's credential: in the connector's config only.
const TOKEN: &str = "token-only-the-connector-knows";

fn start_httpbin(dir: &std::path::Path, peers: &Peers) -> (Proc, String) {
    let port = free_port();
    let proc = Proc::spawn(
        "httpbin",
        dir,
        Command::new(peers.path("VENV_PYTHON")).args([
            "-m",
            "httpbin.core",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http::get(&format!("{base}/get")).is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "httpbin did not start: {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, base)
}

fn call_args(tool: &str, args: &Value) -> Vec<String> {
    vec![
        "call".into(),
        format!("--tool={tool}"),
        format!("--args={args}"),
    ]
}

#[test]
fn a_rest_api_is_listed_and_called_as_mcp_tools_by_the_sdk_clients() {
    let peers = Peers::get();
    let dir = tempfile::tempdir().unwrap();
    let (_httpbin, base) = start_httpbin(dir.path(), &peers);
    let spec = repo_root().join("tests/openapi/httpbin.yaml");
    let backend = format!("openapi:{}|{base}", spec.display());
    let d = Deployment::start_services(
        false,
        &[(
            "httpbin",
            &backend,
            &format!("auth = {{ kind = \"bearer\", token = \"{TOKEN}\" }}"),
        )],
        "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        |_| {},
    );
    let url = d.edge_setup.url("httpbin");

    // The list, as a 2026-07-28 client reads it: a tool per operation, with its schemas.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
    ];
    let reply = mcp_post(&url, &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let tools = reply.json()["result"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "bearer",
            "get_echo",
            "headers",
            "html",
            "post_echo",
            "status"
        ],
        "{tools}"
    );
    let tool = |name: &str| {
        tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(tool("get_echo")["annotations"]["readOnlyHint"], true);
    assert_ne!(tool("post_echo")["annotations"]["readOnlyHint"], true);
    // The request body's schema, its `$ref` resolved.
    let post = tool("post_echo");
    assert_eq!(
        post["inputSchema"]["properties"]["body"]["properties"]["name"]["type"], "string",
        "{post}"
    );
    assert!(!post.to_string().contains("$ref"), "{post}");

    // A JSON request body, through the TypeScript SDK (2025-11-25).
    let item = json!({"name": "widget", "size": 3});
    let out = run_client(
        &d,
        &mut ts_client(
            &peers,
            &url,
            &call_args("post_echo", &json!({"body": item}))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(out["ok"], true, "{out}");
    let echoed: Value = serde_json::from_str(out["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        echoed["json"], item,
        "httpbin read the body the client sent: {echoed}"
    );

    // An error response, through the Python SDK (2026-07-28): a tool error with the status.
    let out = run_client(
        &d,
        &mut py_client(
            &peers,
            &url,
            &call_args("status", &json!({"code": 418}))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(out["isError"], true, "{out}");
    assert!(out["text"].as_str().unwrap().contains("418"), "{out}");

    // Query parameters, and the REST credential the connector adds (httpbin's `/bearer`
    // answers 401 without it), through the federated endpoint.
    let fed = d.edge_setup.endpoint("/mcp");
    let out = run_client(
        &d,
        &mut py_client(
            &peers,
            &fed,
            &call_args("httpbin__get_echo", &json!({"q": "a b&c", "n": [1, 2]}))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(out["ok"], true, "{out}");
    let echoed: Value = serde_json::from_str(out["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["args"]["q"], "a b&c", "{echoed}");
    assert_eq!(echoed["args"]["n"], json!(["1", "2"]), "{echoed}");
    let out = run_client(
        &d,
        &mut ts_client(
            &peers,
            &fed,
            &call_args("httpbin__bearer", &json!({}))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(out["ok"], true, "{out}");
    let seen: Value = serde_json::from_str(out["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen["authenticated"], true, "{seen}");
    assert!(
        !d.edge.log_text().contains(TOKEN),
        "the edge never holds the REST API's credential"
    );

    // A text (HTML) answer is a text result.
    let out = run_client(
        &d,
        &mut ts_client(
            &peers,
            &url,
            &call_args("html", &json!({}))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["text"].as_str().unwrap().contains("<html"), "{out}");
}
