//! The peers under test besides Underpass: the Node.js chunked backend and the plain TCP
//! tunnels rathole and bore, each a process on loopback; rathole's configs as plain text.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use underpass_tests::{free_port, repo_root, Peers, Proc};

/// Where `tests/bench/install-peers.sh` installs rathole and bore.
pub(crate) fn default_bin_dir() -> PathBuf {
    repo_root().join("target/bench-peers/bin")
}

/// The peers' programs, found before anything starts (with what to do when one is missing).
pub(crate) struct Programs {
    pub(crate) rathole: PathBuf,
    pub(crate) bore: PathBuf,
    pub(crate) node: PathBuf,
}

impl Programs {
    pub(crate) fn find(bin_dir: &Path) -> Result<Programs, String> {
        let mut missing = Vec::new();
        let mut in_dir = |name: &str| {
            let p = bin_dir.join(name);
            if !p.exists() {
                missing.push(format!(
                    "{} (run tests/bench/install-peers.sh)",
                    p.display()
                ));
            }
            p
        };
        let rathole = in_dir("rathole");
        let bore = in_dir("bore");
        let node = match std::fs::read_to_string(repo_root().join("target/peers/peers.env")) {
            Ok(_) => PathBuf::from(Peers::get().path("NODE22")),
            Err(_) => {
                missing.push(
                    "Node.js from target/peers/peers.env (run bash tests/peers/install.sh)".into(),
                );
                PathBuf::new()
            }
        };
        let wrk_found = Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty());
        if !wrk_found {
            missing.push(super::wrk::INSTALL_HINT.into());
        }
        if missing.is_empty() {
            Ok(Programs {
                rathole,
                bore,
                node,
            })
        } else {
            Err(format!(
                "--peers needs programs that are not installed:\n  {}",
                missing.join("\n  ")
            ))
        }
    }
}

/// Logs at `info` (what the readiness checks read), without colours.
fn quiet(cmd: &mut Command) -> &mut Command {
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1")
}

/// A loopback address on a port that was free a moment ago.
pub(crate) fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

/// The Node.js chunked backend (`tests/peers/node-echo.mjs`) on `addr`.
pub(crate) fn spawn_node_echo(dir: &Path, node: &Path, addr: SocketAddr) -> Proc {
    let mut p = Proc::spawn(
        "node-echo",
        dir,
        Command::new(node)
            .arg(repo_root().join("tests/peers/node-echo.mjs"))
            .args(["--listen", &addr.to_string()]),
    );
    p.wait_for_log("listening on", Duration::from_secs(20));
    p
}

/// One service carried by rathole: the server listens on `public`, the client forwards to
/// `local`.
#[derive(Debug, Clone)]
pub(crate) struct Forward {
    pub(crate) name: String,
    pub(crate) public: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// rathole's server and client configs: TCP transport with TCP_NODELAY (its default, written
/// out), one shared token, the control channel on `control`.
pub(crate) fn rathole_configs(
    control: SocketAddr,
    token: &str,
    forwards: &[Forward],
) -> (String, String) {
    let mut server = format!(
        "[server]\nbind_addr = \"{control}\"\ndefault_token = \"{token}\"\n\n\
         [server.transport]\ntype = \"tcp\"\n\n[server.transport.tcp]\nnodelay = true\n"
    );
    let mut client = format!(
        "[client]\nremote_addr = \"{control}\"\ndefault_token = \"{token}\"\n\n\
         [client.transport]\ntype = \"tcp\"\n\n[client.transport.tcp]\nnodelay = true\n"
    );
    for f in forwards {
        let _ = write!(
            server,
            "\n[server.services.{}]\nbind_addr = \"{}\"\nnodelay = true\n",
            f.name, f.public
        );
        let _ = write!(
            client,
            "\n[client.services.{}]\nlocal_addr = \"{}\"\nnodelay = true\n",
            f.name, f.local
        );
    }
    (server, client)
}

/// A rathole server and client carrying `forwards`.
pub(crate) struct Rathole {
    pub(crate) server: Proc,
    pub(crate) client: Proc,
}

impl Rathole {
    pub(crate) fn start(dir: &Path, binary: &Path, forwards: &[Forward]) -> Rathole {
        let (server_toml, client_toml) = rathole_configs(loopback(), "underpass-bench", forwards);
        let (server_path, client_path) = (
            dir.join("rathole-server.toml"),
            dir.join("rathole-client.toml"),
        );
        std::fs::write(&server_path, server_toml).expect("write rathole server config");
        std::fs::write(&client_path, client_toml).expect("write rathole client config");
        let mut server = Proc::spawn(
            "rathole-server",
            dir,
            quiet(Command::new(binary).arg("--server").arg(&server_path)),
        );
        server.wait_for_log("Listening at", Duration::from_secs(20));
        let mut client = Proc::spawn(
            "rathole-client",
            dir,
            quiet(Command::new(binary).arg("--client").arg(&client_path)),
        );
        client.wait_for_log_count(
            "Control channel established",
            forwards.len(),
            Duration::from_secs(20),
        );
        Rathole { server, client }
    }
}

/// A bore server (control port 7835, fixed by bore) and one `bore local` per forward.
pub(crate) struct Bore {
    pub(crate) server: Proc,
    pub(crate) locals: Vec<Proc>,
}

/// bore's control port: not configurable in bore 0.6.
pub(crate) const BORE_CONTROL_PORT: u16 = 7835;

/// `bore local` arguments exposing `local` as port `public` of the server on loopback.
pub(crate) fn bore_local_args(local: SocketAddr, public: u16) -> Vec<String> {
    vec![
        "local".into(),
        local.port().to_string(),
        "--local-host".into(),
        local.ip().to_string(),
        "--to".into(),
        "127.0.0.1".into(),
        "--port".into(),
        public.to_string(),
    ]
}

impl Bore {
    pub(crate) fn start(dir: &Path, binary: &Path, forwards: &[Forward]) -> Result<Bore, String> {
        if std::net::TcpListener::bind(("127.0.0.1", BORE_CONTROL_PORT)).is_err() {
            return Err(format!(
                "bore needs 127.0.0.1:{BORE_CONTROL_PORT} (its fixed control port), which is taken"
            ));
        }
        let mut server = Proc::spawn(
            "bore-server",
            dir,
            quiet(Command::new(binary).args(["server", "--bind-addr", "127.0.0.1"])),
        );
        server.wait_for_log("server listening", Duration::from_secs(20));
        let mut locals = Vec::new();
        for f in forwards {
            let mut p = Proc::spawn(
                &format!("bore-local-{}", f.name),
                dir,
                quiet(Command::new(binary).args(bore_local_args(f.local, f.public.port()))),
            );
            p.wait_for_log("listening at", Duration::from_secs(20));
            locals.push(p);
        }
        Ok(Bore { server, locals })
    }
}

/// The QUIC references: `underpass-quic-relay` entry (edge side) and exit (connector side), the
/// tunnel's own TLS and QUIC with nothing on top: one stream per client connection, or with
/// `per_request` hyper at both ends and an exchange (stream, head frames) per request.
pub(crate) struct QuicRelay {
    pub(crate) entry: Proc,
    pub(crate) exit: Proc,
}

impl QuicRelay {
    /// `forwards[i].public` is carried to `forwards[i].local`; certificates from a PKI with an
    /// `edge` and a connector `pc` issued.
    pub(crate) fn start(
        dir: &Path,
        binary: &Path,
        pki: &underpass_tests::Pki,
        forwards: &[Forward],
        per_request: bool,
    ) -> QuicRelay {
        let tunnel = loopback();
        let creds = |name: &str| {
            let mode = per_request.then(|| "--per-request".to_owned());
            mode.into_iter().chain(pki.credential_args(name))
        };
        let mut entry = Command::new(binary);
        entry.args(["entry", "--tunnel", &tunnel.to_string()]);
        for f in forwards {
            entry.args(["--listen", &f.public.to_string()]);
        }
        let tag = if per_request {
            "quic-exchange"
        } else {
            "quic-relay"
        };
        let mut entry = Proc::spawn(&format!("{tag}-entry"), dir, entry.args(creds("edge")));
        let mut exit = Command::new(binary);
        exit.args(["exit", "--tunnel", &tunnel.to_string()]);
        for f in forwards {
            exit.args(["--to", &f.local.to_string()]);
        }
        // Started together: should the exit's first packet beat the entry's socket, QUIC
        // sends its Initial again.
        let mut exit = Proc::spawn(&format!("{tag}-exit"), dir, exit.args(creds("pc")));
        exit.wait_for_log("connected to", Duration::from_secs(20));
        entry.wait_for_log("listening on", Duration::from_secs(20));
        QuicRelay { entry, exit }
    }
}
