//! A stdio MCP server (`server-everything` in stdio mode) behind the connector, reached by the
//! official TypeScript SDK client over Streamable HTTP through the edge.

use std::process::Command;

use serde_json::Value;
use underpass_tests::*;

#[test]
fn streamable_http_client_reaches_a_stdio_backend_through_the_tunnel() {
    let peers = Peers::get();
    let command = format!(
        "[\"{}\", \"{}\", \"stdio\"]",
        peers.path("NODE22"),
        peers.path("SERVER_EVERYTHING")
    );
    let d = Deployment::start(true, "everything", &command);
    let out = Command::new(peers.path("NODE22"))
        .arg(peers.path("TS_CLIENT"))
        .arg(d.edge_setup.url("everything"))
        .args(["smoke", "--message=stdio through the tunnel"])
        .env("UNDERPASS_CA_FILE", d.pki.ca())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed:\n{}\nconnector log:\n{}",
        show(&out),
        d.connector.log_text()
    );
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("client JSON");
    assert_eq!(v["serverName"], "mcp-servers/everything", "{v}");
    assert_eq!(v["echo"], "Echo: stdio through the tunnel", "{v}");
    assert_live_progress(&v);
    assert!(v["resourceTextLength"].as_u64().unwrap_or(0) > 1000, "{v}");
    assert_eq!(v["terminated"], true, "{v}");
}

/// A 2024-11-05 HTTP+SSE client (the TypeScript SDK's `SSEClientTransport`) at
/// `/mcp/{service}/sse`, bridged onto a stdio backend and onto a Streamable HTTP backend.
#[test]
fn legacy_sse_client_reaches_stdio_and_http_backends() {
    let peers = Peers::get();
    let stdio = format!(
        "[\"{}\", \"{}\", \"stdio\"]",
        peers.path("NODE22"),
        peers.path("SERVER_EVERYTHING")
    );
    let scratch = tempfile::tempdir().unwrap();
    let (_http_backend, http_url) = start_server_everything(scratch.path(), &peers);
    for backend in [stdio.as_str(), http_url.as_str()] {
        let d = Deployment::start(true, "everything", backend);
        let out = Command::new(peers.path("NODE22"))
            .arg(peers.path("TS_CLIENT"))
            .arg(format!("{}/sse", d.edge_setup.url("everything")))
            .args(["smoke", "--transport=sse", "--message=old client"])
            .env("UNDERPASS_CA_FILE", d.pki.ca())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{backend}: client failed:\n{}\nedge log:\n{}\nconnector log:\n{}",
            show(&out),
            d.edge.log_text(),
            d.connector.log_text()
        );
        let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("client JSON");
        assert_eq!(v["serverName"], "mcp-servers/everything", "{backend}: {v}");
        assert_eq!(v["echo"], "Echo: old client", "{backend}: {v}");
        assert_live_progress(&v);
        assert!(v["resourceTextLength"].as_u64().unwrap_or(0) > 1000, "{v}");
    }
}

/// A 2024-11-05 HTTP+SSE backend (`server-everything` in `sse` mode) behind the connector
/// (`transport = "sse"`), used by a Streamable HTTP client through the edge.
#[test]
fn streamable_http_client_reaches_a_legacy_sse_backend() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, sse_url) = start_server_everything_sse(scratch.path(), &peers);
    let d = Deployment::start(true, "everything", &format!("sse:{sse_url}"));
    let out = Command::new(peers.path("NODE22"))
        .arg(peers.path("TS_CLIENT"))
        .arg(d.edge_setup.url("everything"))
        .args(["smoke", "--message=via an sse backend"])
        .env("UNDERPASS_CA_FILE", d.pki.ca())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed:\n{}\nconnector log:\n{}",
        show(&out),
        d.connector.log_text()
    );
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("client JSON");
    assert_eq!(v["serverName"], "mcp-servers/everything", "{v}");
    assert_eq!(v["echo"], "Echo: via an sse backend", "{v}");
    assert_live_progress(&v);
    assert!(v["resourceTextLength"].as_u64().unwrap_or(0) > 1000, "{v}");
    assert_eq!(v["terminated"], true, "{v}");
}
