//! A stdio MCP server (`server-everything` in stdio mode) behind the connector, reached by the
//! official TypeScript SDK client over Streamable HTTP through the edge.

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
    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut ts_client(
            &peers,
            &url,
            &["smoke", "--message=stdio through the tunnel"],
        ),
    );
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
        let url = format!("{}/sse", d.edge_setup.url("everything"));
        let v = run_client(
            &d,
            &mut ts_client(
                &peers,
                &url,
                &["smoke", "--transport=sse", "--message=old client"],
            ),
        );
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
    let url = d.edge_setup.url("everything");
    let v = run_client(
        &d,
        &mut ts_client(&peers, &url, &["smoke", "--message=via an sse backend"]),
    );
    assert_eq!(v["serverName"], "mcp-servers/everything", "{v}");
    assert_eq!(v["echo"], "Echo: via an sse backend", "{v}");
    assert_live_progress(&v);
    assert!(v["resourceTextLength"].as_u64().unwrap_or(0) > 1000, "{v}");
    assert_eq!(v["terminated"], true, "{v}");
}
