//! The stack under test: a throwaway PKI, the echo backend, an edge, a connector, and the
//! reference relays, each a process of the release build.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use underpass_tests::{bin, free_port, write_connector_config, ConnectorPki, EdgeSetup, Pki, Proc};

use crate::client::Target;

/// The one service the stack serves.
pub(crate) const SERVICE: &str = "echo";

pub(crate) struct Stack {
    pub(crate) dir: PathBuf,
    pub(crate) edge_setup: EdgeSetup,
    pub(crate) edge: Proc,
    pub(crate) connector: Proc,
    pub(crate) connector_config: PathBuf,
    pub(crate) backend: Proc,
    pub(crate) backend_addr: SocketAddr,
    pub(crate) pki: Pki,
    /// The reference path, when measured: two chained byte-copying relays.
    pub(crate) relay: Option<Relay>,
    pub(crate) restarts: usize,
}

/// `relay1` listens on `addr` and relays to `relay2`, which relays to the echo backend.
pub(crate) struct Relay {
    pub(crate) relay1: Proc,
    pub(crate) relay2: Proc,
    pub(crate) addr: SocketAddr,
}

/// A helper binary of this crate: next to this executable (the same build), else the
/// workspace's release build.
pub(crate) fn sibling_bin(name: &str) -> PathBuf {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)));
    match here {
        Some(p) if p.exists() => p,
        _ => bin(name),
    }
}

/// Starts one `underpass-tcp-relay` on a free loopback port and waits until it listens.
pub(crate) fn spawn_relay(dir: &Path, name: &str, to: SocketAddr) -> (Proc, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut p = Proc::spawn(
        name,
        dir,
        Command::new(sibling_bin("underpass-tcp-relay")).args([
            "--listen",
            &addr.to_string(),
            "--to",
            &to.to_string(),
        ]),
    );
    p.wait_for_log("listening on", Duration::from_secs(20));
    (p, addr)
}

/// Writes `<name>.toml`: connector `name` serving [`SERVICE`] from the echo backend, with
/// the `--transport` chosen.
fn connector_config(
    dir: &Path,
    pki: &Pki,
    name: &str,
    (cert, key): (&Path, &Path),
    tunnel_port: u16,
    backend_addr: SocketAddr,
) -> PathBuf {
    let config = write_connector_config(
        dir,
        &format!("{name}.toml"),
        name,
        tunnel_port,
        ConnectorPki {
            cert,
            key,
            ca: &pki.ca(),
        },
        &[(SERVICE, &format!("http://{backend_addr}/mcp"))],
    );
    let mut text = std::fs::read_to_string(&config).expect("connector config");
    // The bench's one principal holds up to 10,000 event streams (`--session-streams`), each
    // an exchange in flight at the connector: lift the service's caps (1024, and a quarter of
    // that per principal, by default) as `BENCH_CLIENTS` lifts the edge's. `[[services]]` is
    // the file's last table here, so the keys land in it.
    text.push_str("max_concurrent = 100000\nmax_concurrent_per_principal = 100000\n");
    if let Some(transport) = TRANSPORT.get() {
        text = format!("transport = \"{transport}\"\n{text}");
    }
    if let Some(telemetry) = telemetry_table() {
        text = format!("{text}\n{telemetry}");
    }
    std::fs::write(&config, text).expect("write connector config");
    config
}

/// `--otlp-endpoint`: where edge and connector export spans.
static OTLP_ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the OTLP endpoint of every benchmark edge and connector.
pub(crate) fn set_otlp_endpoint(endpoint: &str) {
    let _ = OTLP_ENDPOINT.set(endpoint.to_owned());
}

/// The `[telemetry]` table of `--otlp-endpoint`, if given.
fn telemetry_table() -> Option<String> {
    OTLP_ENDPOINT
        .get()
        .map(|e| format!("[telemetry]\notlp_endpoint = \"{e}\"\n"))
}

/// `--tunnel-env`: extra environment of every edge and connector process.
static TUNNEL_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sets the extra environment of the edge and connector processes from `KEY=VALUE` pairs.
pub(crate) fn set_tunnel_env(pairs: &[String]) {
    let tunnel_env = pairs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => panic!("--tunnel-env wants KEY=VALUE, got {kv:?}"),
        })
        .collect();
    let _ = TUNNEL_ENV.set(tunnel_env);
}

/// `--transport`: the connector's `transport` key.
static TRANSPORT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the `transport` every benchmark connector is configured with.
pub(crate) fn set_transport(transport: &str) {
    let _ = TRANSPORT.set(transport.to_owned());
}

pub(crate) fn tunnel_command(binary: &str, config: &Path) -> Command {
    tunnel_command_in(&[], binary, config)
}

/// [`tunnel_command`] run through `prefix` (e.g. `ip netns exec NAME`), when not empty.
pub(crate) fn tunnel_command_in(prefix: &[String], binary: &str, config: &Path) -> Command {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin(binary));
            c
        }
        None => Command::new(bin(binary)),
    };
    cmd.arg("--config").arg(config).env("RUST_LOG", "info");
    for (k, v) in TUNNEL_ENV.get().map(Vec::as_slice).unwrap_or_default() {
        cmd.env(k, v);
    }
    cmd
}

/// An edge with `env` added to its environment.
pub(crate) fn spawn_edge(dir: &Path, config: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
    Proc::spawn(
        name,
        dir,
        tunnel_command("underpass-edge", config).envs(env.iter().copied()),
    )
}

/// A connector with `env` added to its environment.
pub(crate) fn spawn_connector(dir: &Path, config: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
    Proc::spawn(
        name,
        dir,
        tunnel_command("underpass-connector", config).envs(env.iter().copied()),
    )
}

/// The benchmark's edge: anonymous clients, everything allowed.
pub(crate) const BENCH_EDGE: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true\n";
/// Every bench client is one principal (anonymous) from one address, holding up to 10,000
/// sessions and event streams: lift the per-caller caps the edge applies.
pub(crate) const BENCH_CLIENTS: &str =
    "max_connections = 100000\nmax_connections_per_ip = 100000\n\
     max_concurrent_per_principal = 100000\nmax_sessions_per_principal = 100000\n\
     idle_timeout = \"1h\"";

impl Stack {
    /// The benchmark's stack; `audit` is the edge's `[audit]` table (or empty).
    pub(crate) fn start(
        dir: &Path,
        backend_threads: usize,
        with_relay: bool,
        audit: &str,
    ) -> Stack {
        let edge = format!(
            "{BENCH_EDGE}{audit}\n{}",
            telemetry_table().unwrap_or_default()
        );
        Self::start_with(dir, backend_threads, with_relay, &edge, BENCH_CLIENTS)
    }

    /// A stack whose edge gets `edge_extra` (as [`EdgeSetup::write`] takes it) and, when not
    /// empty, `clients_keys` in its `[clients]` table; files the edge reads must be in `dir`.
    pub(crate) fn start_with(
        dir: &Path,
        backend_threads: usize,
        with_relay: bool,
        edge_extra: &str,
        clients_keys: &str,
    ) -> Stack {
        let pki = Pki::init(&dir.join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");

        let port = free_port();
        let backend_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut backend = Proc::spawn(
            "echo-backend",
            dir,
            Command::new(sibling_bin("underpass-echo-backend")).args([
                "--listen",
                &backend_addr.to_string(),
                "--threads",
                &backend_threads.to_string(),
            ]),
        );
        backend.wait_for_log("listening on", Duration::from_secs(20));
        // The far end of the chain first, so that every hop listens before anything connects.
        let relay = with_relay.then(|| {
            let (relay2, relay2_addr) = spawn_relay(dir, "relay2", backend_addr);
            let (relay1, addr) = spawn_relay(dir, "relay1", relay2_addr);
            Relay {
                relay1,
                relay2,
                addr,
            }
        });

        // `dc2` is the second connector of the failover phase (started only there).
        let edge_setup = EdgeSetup::write(dir, false, &[(SERVICE, &["dc1", "dc2"])], edge_extra);
        if !clients_keys.is_empty() {
            edge_setup.add_clients_keys(clients_keys);
        }
        // 10,000 held event streams (`--session-streams`) are 10,000 exchanges in flight on
        // the connector's two tunnels: more than the default 4096 per tunnel.
        edge_setup.add_keys("tunnel", "max_exchanges_per_tunnel = 16384");
        let mut edge = spawn_edge(dir, &edge_setup.config, "edge", &[]);
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        let connector_config = connector_config(
            dir,
            &pki,
            "dc1",
            (&cert, &key),
            edge_setup.tunnel_port,
            backend_addr,
        );
        let connector = spawn_connector(dir, &connector_config, "connector", &[]);
        edge_setup.wait_ready(SERVICE, Duration::from_secs(30));
        Stack {
            dir: dir.to_path_buf(),
            edge_setup,
            edge,
            connector,
            connector_config,
            backend,
            backend_addr,
            pki,
            relay,
            restarts: 0,
        }
    }

    /// New edge and connector processes (same config, same ports, same backend), with `env`
    /// added to their environment.
    pub(crate) fn fresh_tunnel(&mut self, env: &[(&str, &str)]) {
        self.connector.stop();
        self.edge.stop();
        self.restarts += 1;
        let mut edge = spawn_edge(
            &self.dir,
            &self.edge_setup.config,
            &format!("edge-{}", self.restarts),
            env,
        );
        edge.wait_for_log("tunnel listener up", Duration::from_secs(20));
        self.edge = edge;
        self.connector = spawn_connector(
            &self.dir,
            &self.connector_config,
            &format!("connector-{}", self.restarts),
            env,
        );
        self.edge_setup.wait_ready(SERVICE, Duration::from_secs(30));
    }

    /// A second connector, `dc2`, serving the same backend; returns it and its config.
    pub(crate) fn spawn_second_connector(&self) -> (Proc, PathBuf) {
        let (cert, key) = self.pki.issue("connector", "dc2");
        let config = connector_config(
            &self.dir,
            &self.pki,
            "dc2",
            (&cert, &key),
            self.edge_setup.tunnel_port,
            self.backend_addr,
        );
        let p = spawn_connector(&self.dir, &config, "connector-dc2", &[]);
        (p, config)
    }

    pub(crate) fn direct(&self) -> Target {
        Target::new(self.backend_addr, "/mcp")
    }

    pub(crate) fn relay(&self) -> Option<Target> {
        self.relay.as_ref().map(|r| Target::new(r.addr, "/mcp"))
    }

    pub(crate) fn tunnel(&self) -> Target {
        Target::new(
            ([127, 0, 0, 1], self.edge_setup.client_port).into(),
            &format!("/mcp/{SERVICE}"),
        )
    }
}
