//! Test harness for the end-to-end tests: runs the real release binaries and the real MCP
//! peers (installed by `tests/peers/install.sh` into `target/peers/`) over real sockets.
//!
//! Everything a test starts is killed when its handle drops; logs go to files in the test's
//! own temporary folder and are printed when a wait fails, so a failure explains itself.

#![forbid(unsafe_code)]

pub mod backends;
pub mod cdp;
pub mod faults;
pub mod http;
pub mod identity;
pub mod lb;
pub mod load;
pub mod netns;
pub mod recorder;
pub mod rogue;
pub mod tls_client;
pub mod vitals;

pub use backends::{
    start_demo_server, start_echo_backend, start_fixture, start_py_server, start_server_everything,
    start_server_everything_sse,
};

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Root of the repository (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A release binary of this workspace. The test command builds them before running tests.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = dir.join("release").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --workspace --bins` first (tests/run.sh does)",
        path.display()
    );
    path
}

/// Paths of the installed MCP peers (`target/peers/peers.env`, written by install.sh).
pub struct Peers(HashMap<String, String>);

impl Peers {
    pub fn get() -> Peers {
        let env = repo_root().join("target/peers/peers.env");
        let text = std::fs::read_to_string(&env).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the real MCP peers are not installed: run `bash tests/peers/install.sh` (tests/run.sh does)",
                env.display()
            )
        });
        Peers(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn path(&self, key: &str) -> String {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("peers.env has no {key}; re-run tests/peers/install.sh"))
            .clone()
    }
}

/// A loopback port that was free a moment ago (TCP and UDP both).
pub fn free_port() -> u16 {
    // Each port once per test process: tests run in parallel threads, and a port handed out
    // but not yet bound (an edge binds its tunnel port over UDP and TCP) is free to the
    // kernel, which may offer it again.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
            if !handed_out.contains(&port) {
                handed_out.push(port);
                return port;
            }
        }
    }
}

/// A running child process, killed on drop; its output goes to `<dir>/<name>.log`.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            log,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log contains `needle`; panics (showing the log) after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub fn wait_for_log_count(&mut self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().matches(needle).count() >= count {
                return;
            }
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} never logged {needle:?}; its log:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself and returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit; log:\n{}", self.name, self.log_text());
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A throwaway PKI made with the real `underpass-certs`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn init(dir: &Path) -> Pki {
        run_ok(
            Command::new(bin("underpass-certs"))
                .args(["init", "--dir"])
                .arg(dir),
        );
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// Issues a certificate; `role` is edge, connector or client.
    pub fn issue(&self, role: &str, name: &str) -> (PathBuf, PathBuf) {
        run_ok(
            Command::new(bin("underpass-certs"))
                .args(["issue", role, "--dir"])
                .arg(&self.dir)
                .args(["--name", name]),
        );
        (self.cert(name), self.key(name))
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// `--cert`, `--key` and `--ca` for a program presenting `name`'s certificate.
    pub fn credential_args(&self, name: &str) -> [String; 6] {
        [
            "--cert".to_owned(),
            self.cert(name).display().to_string(),
            "--key".to_owned(),
            self.key(name).display().to_string(),
            "--ca".to_owned(),
            self.ca().display().to_string(),
        ]
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

/// Ports and files of one edge instance.
pub struct EdgeSetup {
    pub client_port: u16,
    pub tunnel_port: u16,
    pub admin_port: u16,
    pub config: PathBuf,
    pub tls: bool,
}

impl EdgeSetup {
    /// Writes `edge.toml` in `dir` (PKI in `dir/pki`, which must hold `edge.crt`).
    /// `services` is a list of (service, [connectors]); `extra` is appended verbatim, except
    /// that its top-level keys (the lines before its first table) go to the top of the file.
    pub fn write(dir: &Path, tls: bool, services: &[(&str, &[&str])], extra: &str) -> EdgeSetup {
        let (client_port, tunnel_port, admin_port) = (free_port(), free_port(), free_port());
        let split = extra
            .lines()
            .position(|l| l.trim_start().starts_with('['))
            .unwrap_or(extra.lines().count());
        let top: Vec<&str> = extra.lines().take(split).collect();
        let mut tables: Vec<&str> = extra.lines().skip(split).collect();
        // At start the edge lists every service (the shortened-name report): traffic that
        // tests counting what reaches a backend must not see. Off unless a test sets it.
        if !extra.contains("list_at_start") {
            match tables.iter().position(|l| l.trim() == "[federation]") {
                Some(i) => tables.insert(i + 1, "list_at_start = false"),
                None => tables.extend(["[federation]", "list_at_start = false"]),
            }
        }
        let (top, extra) = (top.join("\n"), tables.join("\n"));
        let mut toml = format!(
            "{top}\n[clients]\nlisten = \"127.0.0.1:{client_port}\"\n{}\n\
             [tunnel]\nlisten = \"127.0.0.1:{tunnel_port}\"\ncert = \"pki/edge.crt\"\nkey = \"pki/edge.key\"\nca = \"pki/ca.crt\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n{extra}\n",
            if tls {
                "cert = \"pki/edge.crt\"\nkey = \"pki/edge.key\"\n"
            } else {
                "insecure_plaintext = true\n"
            }
        );
        for (name, connectors) in services {
            let list: Vec<String> = connectors.iter().map(|c| format!("\"{c}\"")).collect();
            let _ = write!(
                toml,
                "\n[[services]]\nname = \"{name}\"\nconnectors = [{}]\n",
                list.join(", ")
            );
        }
        let config = dir.join("edge.toml");
        std::fs::write(&config, toml).expect("write edge.toml");
        EdgeSetup {
            client_port,
            tunnel_port,
            admin_port,
            config,
            tls,
        }
    }

    /// Moves the tunnel listener from loopback to `host` (an IP, `[::]` for every IPv6 and
    /// IPv4 address), same port.
    pub fn set_tunnel_host(&self, host: &str) {
        let port = self.tunnel_port;
        let text = std::fs::read_to_string(&self.config).expect("read edge.toml");
        let from = format!("[tunnel]\nlisten = \"127.0.0.1:{port}\"");
        assert!(
            text.contains(&from),
            "edge.toml has no loopback tunnel listener"
        );
        let text = text.replacen(&from, &format!("[tunnel]\nlisten = \"{host}:{port}\""), 1);
        std::fs::write(&self.config, text).expect("write edge.toml");
    }

    /// Adds `lines` (TOML `key = value` lines) to the `[clients]` table of the written config.
    pub fn add_clients_keys(&self, lines: &str) {
        self.add_keys("clients", lines);
    }

    /// Adds `lines` (keys) at the top of the edge's `[table]`.
    pub fn add_keys(&self, table: &str, lines: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read edge.toml");
        let header = format!("[{table}]\n");
        assert!(text.contains(&header), "edge.toml has no [{table}] table");
        let text = text.replacen(&header, &format!("{header}{lines}\n"), 1);
        std::fs::write(&self.config, text).expect("write edge.toml");
    }

    pub fn start(&self, dir: &Path) -> Proc {
        let mut p = Proc::spawn(
            "edge",
            dir,
            Command::new(bin("underpass-edge"))
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", "info,underpass_edge=debug"),
        );
        p.wait_for_log("tunnel listener up", Duration::from_secs(20));
        p
    }

    pub fn url(&self, service: &str) -> String {
        self.endpoint(&format!("/mcp/{service}"))
    }

    /// The client listener's URL of `path` (`/mcp`, `/mcp/view/support`).
    pub fn endpoint(&self, path: &str) -> String {
        let scheme = if self.tls {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        format!("{scheme}:{}{path}", self.client_port)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// The live tunnels `/readyz` lists, as (connector, transport) pairs in its order; empty
    /// when the edge does not answer.
    pub fn tunnels(&self) -> Vec<(String, String)> {
        let Ok(r) = http::get(&self.admin("/readyz")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["connectors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_owned(),
                            c["transport"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `/readyz` reports a tunnel serving `service`.
    pub fn wait_ready(&self, service: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = http::get(&self.admin("/readyz")) {
                let served = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["services"][service].as_u64())
                    .unwrap_or(0);
                if served > 0 {
                    return;
                }
                last = String::from_utf8_lossy(&r.body).into_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no tunnel for {service:?} within {timeout:?}; last /readyz: {last}");
    }
}

/// The certificate, key and CA a connector is configured with.
pub struct ConnectorPki<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

/// Writes a connector config named `file` in `dir` and returns its path. `services` pairs a
/// service name with its backend: a URL, or a stdio command as a TOML array (`["node", …]`).
pub fn write_connector_config(
    dir: &Path,
    file: &str,
    name: &str,
    tunnel_port: u16,
    pki: ConnectorPki<'_>,
    services: &[(&str, &str)],
) -> PathBuf {
    let ConnectorPki { cert, key, ca } = pki;
    let mut toml = format!(
        "name = \"{name}\"\nedges = [\"127.0.0.1:{tunnel_port}\"]\nedge_server_name = \"localhost\"\n\
         cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        cert.display(),
        key.display(),
        ca.display()
    );
    for (service, backend) in services {
        // A backend starting with `[` is a stdio command (a TOML array), one starting with
        // `sse:` a 2024-11-05 HTTP+SSE URL, `openapi:SPEC|BASE_URL` an OpenAPI document and
        // its REST API; anything else a Streamable HTTP URL.
        let line = if backend.starts_with('[') {
            format!("command = {backend}")
        } else if let Some(url) = backend.strip_prefix("sse:") {
            format!("url = \"{url}\"\ntransport = \"sse\"")
        } else if let Some((spec, base)) = backend
            .strip_prefix("openapi:")
            .and_then(|rest| rest.split_once('|'))
        {
            format!("kind = \"openapi\"\nspec = \"{spec}\"\nbase_url = \"{base}\"")
        } else {
            format!("url = \"{backend}\"")
        };
        let _ = write!(toml, "\n[[services]]\nname = \"{service}\"\n{line}\n");
    }
    let path = dir.join(file);
    std::fs::write(&path, toml).expect("write connector config");
    path
}

/// Adds top-level `lines` (e.g. `transport = "tcp"`) to a config file.
pub fn prepend_top_level(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).expect("read config");
    std::fs::write(config, format!("{lines}\n{text}")).expect("write config");
}

/// Replaces the `edges` a connector config written by [`write_connector_config`] dials.
pub fn set_connector_edges(config: &Path, edges: &[String]) {
    let text = std::fs::read_to_string(config).expect("read connector config");
    let list: Vec<String> = edges.iter().map(|e| format!("\"{e}\"")).collect();
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("edges = [") {
                format!("edges = [{}]", list.join(", "))
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(config, text.join("\n") + "\n").expect("write connector config");
}

pub fn start_connector(dir: &Path, name: &str, config: &Path) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(bin("underpass-connector"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,underpass_connector=debug"),
    )
}

/// A complete deployment: PKI, edge, one connector `dc1` serving `service` from `backend_url`.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub edge_setup: EdgeSetup,
    pub edge: Proc,
    pub connector: Proc,
    pub connector_config: PathBuf,
}

impl Deployment {
    pub fn start(tls: bool, service: &str, backend_url: &str) -> Deployment {
        Self::start_with(
            tls,
            service,
            backend_url,
            "[auth]\nanonymous = true\n[policy]\nallow_all = true\n",
        )
    }

    pub fn start_with(tls: bool, service: &str, backend_url: &str, extra: &str) -> Deployment {
        Self::start_prepared(tls, service, backend_url, extra, |_| {})
    }

    /// Like [`Deployment::start_with`], with `prepare` writing extra files (policy, JWKS)
    /// into the deployment folder before the edge starts.
    pub fn start_prepared(
        tls: bool,
        service: &str,
        backend_url: &str,
        extra: &str,
        prepare: impl FnOnce(&Path),
    ) -> Deployment {
        Self::start_services(tls, &[(service, backend_url, "")], extra, prepare)
    }

    /// A deployment whose connector `dc1` serves several services: (name, backend as in
    /// [`write_connector_config`], extra `[[services]]` keys of the connector). `edge_extra`
    /// is added to `edge.toml` as in [`EdgeSetup::write`]; waits until the first service is
    /// ready.
    pub fn start_services(
        tls: bool,
        services: &[(&str, &str, &str)],
        edge_extra: &str,
        prepare: impl FnOnce(&Path),
    ) -> Deployment {
        Self::start_services_with(tls, services, edge_extra, &[], prepare)
    }

    /// [`Deployment::start_services`], with extra keys of the edge's `[[services]]` entries:
    /// (service, TOML lines).
    pub fn start_services_with(
        tls: bool,
        services: &[(&str, &str, &str)],
        edge_extra: &str,
        edge_service_keys: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let pki = Pki::init(&dir.path().join("pki"));
        pki.issue("edge", "edge");
        let (cert, key) = pki.issue("connector", "dc1");
        let granted: Vec<(&str, &[&str])> = services
            .iter()
            .map(|(name, _, _)| (*name, &["dc1"][..]))
            .collect();
        let edge_setup = EdgeSetup::write(dir.path(), tls, &granted, edge_extra);
        if !edge_service_keys.is_empty() {
            let mut text = std::fs::read_to_string(&edge_setup.config).expect("edge.toml");
            for (name, keys) in edge_service_keys {
                let entry = format!("[[services]]\nname = \"{name}\"\n");
                assert!(text.contains(&entry), "edge.toml has no service {name}");
                text = text.replacen(&entry, &format!("{entry}{keys}\n"), 1);
            }
            std::fs::write(&edge_setup.config, text).expect("write edge.toml");
        }
        let edge = edge_setup.start(dir.path());
        let backends: Vec<(&str, &str)> = services.iter().map(|(n, b, _)| (*n, *b)).collect();
        let connector_config = write_connector_config(
            dir.path(),
            "connector.toml",
            "dc1",
            edge_setup.tunnel_port,
            ConnectorPki {
                cert: &cert,
                key: &key,
                ca: &pki.ca(),
            },
            &backends,
        );
        // Each service's extra keys go right after its `name` line.
        let mut text = std::fs::read_to_string(&connector_config).expect("connector config");
        for (name, _, keys) in services.iter().filter(|(_, _, k)| !k.is_empty()) {
            let line = format!("name = \"{name}\"\n");
            text = text.replacen(&line, &format!("{line}{keys}\n"), 1);
        }
        std::fs::write(&connector_config, text).expect("write connector config");
        let connector = start_connector(dir.path(), "connector", &connector_config);
        if let Some((first, _, _)) = services.first() {
            edge_setup.wait_ready(first, Duration::from_secs(30));
        }
        Deployment {
            dir,
            pki,
            edge_setup,
            edge,
            connector,
            connector_config,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs the official conformance suite's server scenarios of spec revision `spec` against
/// `url`; returns the names of the scenarios that passed and that failed.
pub fn conformance(
    peers: &Peers,
    url: &str,
    spec: &str,
    out: &Path,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let run = Command::new(peers.path("NODE22"))
        .arg(peers.path("CONFORMANCE"))
        .args(["server", "--url", url, "--requirements", spec, "-o"])
        .arg(out)
        .output()
        .expect("run conformance suite");
    // Exit status 1 only says that some scenario failed; the per-scenario results decide.
    let summary = Command::new(peers.path("VENV_PYTHON"))
        .arg(repo_root().join("tests/peers/conformance-summary.py"))
        .arg(out)
        .output()
        .expect("summarize conformance results");
    assert!(
        summary.status.success(),
        "no conformance results:\n{}\n{}",
        show(&run),
        show(&summary)
    );
    let v: serde_json::Value = serde_json::from_slice(&summary.stdout).expect("summary JSON");
    let names = |k: &str| -> BTreeSet<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (passed, failed) = (names("passed"), names("failed"));
    assert!(
        !passed.is_empty(),
        "conformance suite passed nothing at {url}:\n{}",
        show(&run)
    );
    (passed, failed)
}

/// The hex SHA-256 of an API key, as `[[auth.api_keys]] sha256` takes it.
pub fn sha256_hex(key: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that a smoke client saw the progress of a 4-step tool live and in order.
///
/// The TypeScript SDK (1.32) handles a response synchronously but a notification a microtask
/// later, so when the last progress and the result arrive in one read it drops that last
/// progress itself (`protocol.js`: `_onresponse` deletes the progress handler first). The
/// gateway delivers all four in order; a client may report three.
pub fn assert_live_progress(v: &serde_json::Value) {
    let progress: Vec<u64> = v["progressValues"]
        .as_array()
        .unwrap_or_else(|| panic!("no progressValues: {v}"))
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert!(progress.len() >= 3, "progress lost: {v}");
    assert_eq!(
        progress,
        (1..=progress.len() as u64).collect::<Vec<_>>(),
        "progress out of order: {v}"
    );
}

/// The official TypeScript SDK client script (`tests/peers/ts-client.mjs`) aimed at `url`.
pub fn ts_client(peers: &Peers, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(peers.path("NODE22"));
    cmd.arg(peers.path("TS_CLIENT")).arg(url).args(args);
    cmd
}

/// The official Python SDK client script (`tests/peers/py-client.py`) aimed at `url`.
pub fn py_client(peers: &Peers, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(peers.path("VENV_PYTHON"));
    cmd.arg(peers.path("PY_CLIENT")).arg(url).args(args);
    cmd
}

/// Runs a client script (it prints one JSON line) against `d`, trusting `d`'s CA; on failure
/// shows the client's output and the edge's and connector's logs.
pub fn run_client(d: &Deployment, cmd: &mut Command) -> serde_json::Value {
    let out = cmd
        .env("UNDERPASS_CA_FILE", d.pki.ca())
        .output()
        .expect("run MCP client");
    assert!(
        out.status.success(),
        "MCP client failed:\n{}\nedge log:\n{}\nconnector log:\n{}",
        show(&out),
        d.edge.log_text(),
        d.connector.log_text()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("client printed no JSON ({e}):\n{}", show(&out)))
}
