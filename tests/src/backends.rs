//! The MCP backends the tests start: the official peers (`server-everything`, the Python SDK
//! server and the conformance fixture) and this repository's demo and echo servers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{bin, free_port, repo_root, Peers, Proc};

/// `@modelcontextprotocol/server-everything` in Streamable HTTP mode on a loopback port.
pub fn start_server_everything(dir: &Path, peers: &Peers) -> (Proc, String) {
    let port = free_port();
    let mut p = Proc::spawn(
        "server-everything",
        dir,
        Command::new(peers.path("NODE22"))
            .arg("--require")
            .arg(peers.path("LOOPBACK_ONLY"))
            .arg(peers.path("SERVER_EVERYTHING"))
            .arg("streamableHttp")
            .env("PORT", port.to_string()),
    );
    p.wait_for_log("listening on port", Duration::from_secs(30));
    (p, format!("http://127.0.0.1:{port}/mcp"))
}

/// `server-everything` in its 2024-11-05 HTTP+SSE mode; returns its `/sse` URL.
pub fn start_server_everything_sse(dir: &Path, peers: &Peers) -> (Proc, String) {
    let port = free_port();
    let mut p = Proc::spawn(
        "server-everything-sse",
        dir,
        Command::new(peers.path("NODE22"))
            .arg("--require")
            .arg(peers.path("LOOPBACK_ONLY"))
            .arg(peers.path("SERVER_EVERYTHING"))
            .arg("sse")
            .env("PORT", port.to_string()),
    );
    p.wait_for_log("Server is running on port", Duration::from_secs(30));
    (p, format!("http://127.0.0.1:{port}/sse"))
}

/// The Rust demo server of this repository (`underpass-demo-server`).
pub fn start_demo_server(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let mut p = Proc::spawn(
        "demo-server",
        dir,
        Command::new(bin("underpass-demo-server")).args(["--listen", &format!("127.0.0.1:{port}")]),
    );
    p.wait_for_log("listening on", Duration::from_secs(20));
    (p, format!("http://127.0.0.1:{port}/mcp"))
}

/// The conformance fixture backend (`tests/peers/fixture/server.py`, official Python SDK),
/// which serves both 2025-11-25 and 2026-07-28 on one endpoint.
pub fn start_fixture(dir: &Path, peers: &Peers) -> (Proc, String) {
    let port = free_port();
    let mut p = Proc::spawn(
        "fixture",
        dir,
        Command::new(peers.path("VENV_PYTHON"))
            .arg(repo_root().join("tests/peers/fixture/server.py"))
            .args(["--port", &port.to_string()]),
    );
    p.wait_for_log("conformance-fixture ready", Duration::from_secs(30));
    (p, format!("http://127.0.0.1:{port}/mcp"))
}

/// Starts `underpass-echo-backend` on a current-thread runtime and a free loopback port, with
/// `args` besides; the process and its port (the endpoint is `http://127.0.0.1:{port}/mcp`).
pub fn start_echo_backend(dir: &Path, args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut backend = Proc::spawn(
        "echo-backend",
        dir,
        Command::new(bin("underpass-echo-backend"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--threads", "0"])
            .args(args),
    );
    backend.wait_for_log("listening", Duration::from_secs(20));
    (backend, port)
}

/// Starts `tests/peers/py-server.py` (the official Python SDK, both eras) on a free loopback
/// port; its endpoint URL.
pub fn start_py_server(dir: &Path, peers: &Peers) -> (Proc, String) {
    let port = free_port();
    let mut backend = Proc::spawn(
        "py-server",
        dir,
        Command::new(peers.path("VENV_PYTHON"))
            .arg(peers.path("PY_SERVER"))
            .args(["--port", &port.to_string()]),
    );
    backend.wait_for_log("Uvicorn running", Duration::from_secs(30));
    (backend, format!("http://127.0.0.1:{port}/mcp"))
}
