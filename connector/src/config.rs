//! `connector.toml`: who this connector is, which edges it dials, and the services it serves.
//!
//! Relative paths are resolved against the folder of the config file.
//!
//! The file is read in two steps. serde reads it as written ([`ConnectorFile`]): a service is
//! a flat table of optional keys, because the spellings from before `kind` existed keep
//! working (`url = …` for Streamable HTTP, `url = …` with `transport = "sse"`, `command = […]`
//! for stdio). Validation then builds the typed [`ConnectorConfig`], in which a service's
//! backend is one [`BackendConfig`] variant carrying exactly the settings of its kind; a
//! contradictory entry (say `kind = "stdio"` with a `url`) is refused there, naming the
//! service and the key. A new kind (`"openapi"`) is a new variant of [`BackendKind`] and of
//! [`BackendConfig`], with its own keys.
//!
//! This module is a leaf: it depends on nothing else in the crate, and the modules that run
//! services read their settings from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use underpass_proto::identity::{validate_name, validate_trust_domain, DEFAULT_TRUST_DOMAIN};

mod openapi;
pub use openapi::{
    AuthConfig, OpenapiConfig, OperationFilter, Secret, SecretSource, SpecSource,
    DEFAULT_OPENAPI_TIMEOUT, METHODS,
};
use openapi::{AuthFile, OpenapiKeys};

/// Default of `max_processes`.
pub const DEFAULT_MAX_PROCESSES: usize = 32;
/// Default of `idle_timeout_secs`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 600;
/// Default of `max_concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;
/// Default of `tunnels_per_edge`.
pub const DEFAULT_TUNNELS_PER_EDGE: usize = 2;
/// Most tunnels per edge address `tunnels_per_edge` may ask for.
pub const MAX_TUNNELS_PER_EDGE: usize = 16;

/// A validated `connector.toml`.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// This connector's name (`name`); equals the name in its certificate's identity.
    pub name: String,
    /// SPIFFE trust domain of the deployment (`trust_domain`).
    pub trust_domain: String,
    /// Tokio worker threads (`worker_threads`; 1 = a current-thread runtime).
    pub worker_threads: usize,
    /// How log lines are written (`[telemetry] log_format`, or the older top-level key).
    pub log_format: underpass_shared::LogFormat,
    /// Spans of backend calls over OTLP (`[telemetry]`).
    pub telemetry: underpass_shared::telemetry::TelemetryConfig,
    /// Edge tunnel addresses to dial (`edges`).
    pub edges: Vec<String>,
    /// Name checked against the edge certificate (`edge_server_name`).
    pub edge_server_name: Option<String>,
    /// How tunnels are carried (`transport`): QUIC, TLS over TCP, or QUIC with TCP fallback.
    pub transport: TunnelTransport,
    /// Tunnels kept to every address of every edge (`tunnels_per_edge`, 1..=16).
    pub tunnels_per_edge: usize,
    /// On SIGTERM, how long exchanges in flight may take to finish (`drain_grace`).
    pub drain_grace: Duration,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Revocation list checked against edge certificates (`revocation_list`), resolved.
    pub revocation_list: Option<PathBuf>,
    /// The services this connector serves (`[[services]]`), in file order.
    pub services: Vec<ServiceConfig>,
    /// The opt-in loopback health listener (`[health]`).
    pub health: Option<HealthConfig>,
}

/// `[health]`: a loopback-only listener serving `GET /healthz` and `GET /readyz`, so a
/// supervisor (systemd, Kubernetes, a load balancer's agent) sees whether this connector
/// serves: `/readyz` is 503 while a pre-flight check fails or no tunnel is up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Address to listen on, e.g. `"127.0.0.1:9091"`. Loopback only (127.0.0.0/8 or `::1`):
    /// the connector accepts no connection from the network, by design.
    pub listen: std::net::SocketAddr,
}

/// The value of `transport`: how this connector carries its tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelTransport {
    /// QUIC; when no QUIC tunnel is up within about 2 s (UDP blocked), TLS over TCP, with
    /// QUIC re-probed in the background and preferred again once it works.
    #[default]
    Auto,
    /// QUIC over UDP only.
    Quic,
    /// TLS 1.3 over TCP only (the edge's `[tunnel] listen` port over TCP).
    Tcp,
}

/// One validated `[[services]]` entry.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Service name, as the edge's `[[services]]` and `/mcp/{name}` know it.
    pub name: String,
    pub backend: BackendConfig,
    /// Caps on exchanges in flight (`max_concurrent`, `max_concurrent_per_principal`).
    pub concurrency: Concurrency,
}

/// A service's backend, by kind, with exactly the settings of that kind.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// `kind = "http"`: a Streamable HTTP server (both MCP eras), each exchange forwarded.
    Http { url: http::Uri },
    /// `kind = "sse"`: a 2024-11-05 HTTP+SSE server; `url` is its event-stream endpoint.
    Sse {
        url: http::Uri,
        sessions: SessionLimits,
    },
    /// `kind = "stdio"`: a local process per session.
    Stdio {
        /// The program and its arguments.
        command: Vec<String>,
        /// Added to the connector's environment.
        env: BTreeMap<String, String>,
        /// Working directory (absolute once loaded).
        cwd: Option<PathBuf>,
        sessions: SessionLimits,
    },
    /// `kind = "openapi"`: a REST API described by an OpenAPI document, its operations
    /// served as MCP tools by the connector itself.
    Openapi(Box<OpenapiConfig>),
}

impl BackendConfig {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendConfig::Http { .. } => BackendKind::Http,
            BackendConfig::Sse { .. } => BackendKind::Sse,
            BackendConfig::Stdio { .. } => BackendKind::Stdio,
            BackendConfig::Openapi(_) => BackendKind::Openapi,
        }
    }

    /// The session limits of a backend whose sessions the connector keeps (stdio and `sse`).
    pub fn sessions(&self) -> Option<&SessionLimits> {
        match self {
            BackendConfig::Http { .. } | BackendConfig::Openapi(_) => None,
            BackendConfig::Sse { sessions, .. } | BackendConfig::Stdio { sessions, .. } => {
                Some(sessions)
            }
        }
    }
}

/// The value of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Http,
    Sse,
    Stdio,
    Openapi,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            BackendKind::Http => "http",
            BackendKind::Sse => "sse",
            BackendKind::Stdio => "stdio",
            BackendKind::Openapi => "openapi",
        }
    }
}

/// Limits on the sessions of a stdio or `sse` service (`max_processes`,
/// `max_processes_per_principal` and `idle_timeout_secs` of its `[[services]]` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions (each a process or a backend connection, including ones still initializing
    /// or shutting down) that may be open at once; beyond it `initialize` is answered 503.
    pub max_processes: usize,
    /// Of those, sessions one principal may hold; beyond it that principal's `initialize` is
    /// answered 429, so one caller cannot take every process.
    pub max_processes_per_principal: usize,
    /// A session with no request in flight and no new exchange for this long is shut down
    /// cleanly. An open GET stream alone does not count as activity, so a forgotten client
    /// cannot pin a process forever. `Duration::ZERO` disables the timeout.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_processes: DEFAULT_MAX_PROCESSES,
            max_processes_per_principal: fair_share(DEFAULT_MAX_PROCESSES),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
        }
    }
}

/// Caps of one service on exchanges in flight, in total and per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub max: usize,
    pub per_principal: usize,
}

/// A principal's default share of a service-wide cap: a quarter, at least 1.
fn fair_share(total: usize) -> usize {
    (total / 4).max(1)
}

impl ConnectorConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read connector config {}", path.display()))?;
        Self::from_toml(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("connector config {} is not usable", path.display()))
    }

    /// Parses and validates the text of a `connector.toml`, resolving relative paths
    /// against `base` (reads no file).
    pub fn from_toml(text: &str, base: &Path) -> anyhow::Result<Self> {
        let file: ConnectorFile = toml::from_str(text).context("invalid connector config")?;
        file.validate(base)
    }

    /// File descriptors the configured caps may use at once: a backend connection per
    /// exchange in flight, three pipes per stdio process, a connection per `sse` session.
    pub fn descriptor_budget(&self) -> u64 {
        self.services
            .iter()
            .map(|s| {
                let sessions = match &s.backend {
                    BackendConfig::Http { .. } | BackendConfig::Openapi(_) => 0,
                    BackendConfig::Sse { sessions, .. } => sessions.max_processes as u64,
                    BackendConfig::Stdio { sessions, .. } => sessions.max_processes as u64 * 3,
                };
                s.concurrency.max as u64 + sessions
            })
            .sum()
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }
}

// ----- The file as written -------------------------------------------------------------------

/// `connector.toml` as written; [`ConnectorFile::validate`] makes a [`ConnectorConfig`] of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorFile {
    /// This connector's name; must equal the name in its certificate's identity.
    name: String,
    /// SPIFFE trust domain of the deployment.
    #[serde(default = "default_trust_domain")]
    trust_domain: String,
    /// Tokio worker threads. Default 1: on the 2-core hosts measured (edge, connector and
    /// backends sharing the cores) one worker had lower latency and higher throughput than
    /// several, because every cross-thread hop costs a wake-up. Raise it on larger machines.
    /// With 1, every task runs on one thread (a current-thread runtime).
    #[serde(default = "default_worker_threads")]
    worker_threads: usize,
    /// How log lines are written: `"text"` (the default) or `"json"`, one object per line.
    /// Also `[telemetry] log_format`; set it in one place.
    #[serde(default)]
    log_format: Option<underpass_shared::LogFormat>,
    /// Spans of backend calls over OTLP (`otlp_endpoint`: the connector exports its own,
    /// children of the edge's tunnel exchange) and the log format.
    #[serde(default)]
    telemetry: underpass_shared::telemetry::TelemetryConfig,
    /// Edge tunnel addresses (`host:port`: UDP for QUIC, TCP for the fallback) to dial. A
    /// name is resolved to every address it has (A and AAAA), again whenever a tunnel to it
    /// is dialed anew and every 30 s, and each address is dialed.
    edges: Vec<String>,
    /// Name checked against the edge certificate; defaults to the host part of each edge.
    edge_server_name: Option<String>,
    /// How tunnels are carried: `auto` (default: QUIC, falling back to TLS over TCP when UDP
    /// is blocked, QUIC re-probed every 30–60 s), `quic`, or `tcp`.
    #[serde(default)]
    transport: TunnelTransport,
    /// Tunnels kept to every address of every edge, each reconnecting on its own with
    /// jittered backoff. Default 2: losing one tunnel (its UDP path, a stuck stream) leaves
    /// the other serving while it redials. 1..=16.
    #[serde(default = "default_tunnels_per_edge")]
    tunnels_per_edge: usize,
    /// On SIGTERM the connector tells its edges it is draining (they send it nothing new),
    /// lets the exchanges in flight finish for at most this long, then closes its tunnels and
    /// exits. Default 30 s, at most 1 h.
    #[serde(default = "default_drain_grace", with = "humantime_serde")]
    drain_grace: Duration,
    /// This connector's certificate (PEM chain) with a `connector` identity.
    cert: PathBuf,
    key: PathBuf,
    /// The deployment CA that edge certificates must chain to.
    ca: PathBuf,
    /// Optional revocation list (`revoked.txt` as `underpass-certs revoke` writes it: serials
    /// and `before <time> <identity>` rules) checked against the edge's certificate and its
    /// intermediates; relative to this file. Re-read on change and on SIGHUP; fails closed
    /// (unreadable at start: the connector does not start; unreadable later: the last good
    /// list stays in force, logged as an error). A revoked edge's tunnels are closed.
    revocation_list: Option<PathBuf>,
    /// The MCP servers this connector serves. Nothing else is reachable through it.
    services: Vec<ServiceFile>,
    /// Optional loopback health listener (`GET /healthz`, `GET /readyz`).
    health: Option<HealthConfig>,
}

fn default_worker_threads() -> usize {
    1
}

fn default_tunnels_per_edge() -> usize {
    DEFAULT_TUNNELS_PER_EDGE
}

fn default_drain_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_owned()
}

/// One `[[services]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    /// Service name, as the edge's `[[services]]` and `/mcp/{name}` know it.
    name: String,
    /// The kind of backend: `http` (Streamable HTTP at `url`), `sse` (HTTP+SSE at `url`),
    /// `stdio` (`command`) or `openapi` (`spec` and `base_url`). Optional for the first three:
    /// without it the kind follows from the keys given (`command` → stdio; `url` → `http`, or
    /// `sse` with `transport = "sse"`).
    kind: Option<BackendKind>,
    /// An HTTP backend, e.g. `http://127.0.0.1:3001/mcp`.
    url: Option<String>,
    /// What the `url` speaks: `streamable-http` (default; both MCP eras) or `sse` (the
    /// 2024-11-05 HTTP+SSE transport: `url` is its event-stream endpoint, e.g. `…/sse`).
    /// The older spelling of `kind = "http" | "sse"`.
    transport: Option<Transport>,
    /// A stdio backend: the program and its arguments.
    command: Option<Vec<String>>,
    /// Extra environment variables for a stdio backend.
    env: Option<BTreeMap<String, String>>,
    /// Working directory of a stdio backend.
    cwd: Option<PathBuf>,
    /// stdio and `sse` backends: sessions open at once for all principals together (each is
    /// a process, or a connection to the `sse` backend); beyond it `initialize` is answered
    /// 503 with `Retry-After`. Default 32.
    max_processes: Option<usize>,
    /// stdio and `sse` backends: sessions one principal may hold open at once; beyond it
    /// `initialize` is answered 429 with `Retry-After`. Default: a quarter of `max_processes`
    /// (at least 1), so no single caller can take every process.
    max_processes_per_principal: Option<usize>,
    /// stdio and `sse` backends: a session with no request in flight for this many seconds is
    /// closed (its process stopped, its connection closed). Default 600; 0 keeps idle sessions
    /// until the client deletes them (not recommended: a forgotten client pins a process).
    idle_timeout_secs: Option<u64>,
    /// openapi: the OpenAPI document (3.0 or 3.1, JSON or YAML), a file (relative to this
    /// file) or an `http://` URL inside the private network (fetched at first use).
    spec: Option<String>,
    /// openapi: the REST API's `http://` base URL; an operation's path is appended to it.
    base_url: Option<String>,
    /// openapi: only operations matching these `tags`, `paths` or `methods` become tools
    /// (default: all).
    include: Option<OperationFilter>,
    /// openapi: operations matching these `tags`, `paths` or `methods` are left out.
    exclude: Option<OperationFilter>,
    /// openapi: credentials the connector adds to every call (`kind = "bearer" | "basic" |
    /// "header"`); the edge never sees them.
    auth: Option<AuthFile>,
    /// openapi: one REST call's deadline, e.g. `"30s"` (the default).
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    /// Exchanges in flight to this service at once, for all principals together (a tool call,
    /// an open event stream; each may hold a connection to the backend); beyond it requests
    /// are answered 503 with `Retry-After` at once, never queued. Default 1024.
    max_concurrent: Option<usize>,
    /// Exchanges one principal may have in flight to this service at once; beyond it 429 with
    /// `Retry-After`. Default: a quarter of `max_concurrent` (at least 1).
    max_concurrent_per_principal: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Transport {
    StreamableHttp,
    Sse,
}

impl ConnectorFile {
    /// Checks the file and builds the typed config, with relative paths resolved against
    /// `base`.
    fn validate(self, base: &Path) -> anyhow::Result<ConnectorConfig> {
        validate_name(&self.name).context("invalid `name`")?;
        validate_trust_domain(&self.trust_domain)?;
        if self.edges.is_empty() {
            bail!("`edges` is empty: name at least one edge tunnel address");
        }
        if self.services.is_empty() {
            bail!("no [[services]]: a connector must serve at least one service");
        }
        if !(1..=MAX_TUNNELS_PER_EDGE).contains(&self.tunnels_per_edge) {
            bail!(
                "`tunnels_per_edge = {}` is out of bounds: 1 to {MAX_TUNNELS_PER_EDGE}",
                self.tunnels_per_edge
            );
        }
        if self.drain_grace > Duration::from_secs(3600) {
            bail!("`drain_grace` must be at most 1h (it delays every shutdown by up to that long)");
        }
        if let Some(health) = &self.health {
            if !health.listen.ip().is_loopback() {
                bail!(
                    "[health] listen = \"{}\" is not a loopback address: the connector accepts \
                     no connection from the network; use 127.0.0.1:PORT (or [::1]:PORT)",
                    health.listen
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut services = Vec::with_capacity(self.services.len());
        for s in self.services {
            validate_name(&s.name).context("invalid [[services]] name")?;
            if !seen.insert(s.name.clone()) {
                bail!("service {:?} is listed twice", s.name);
            }
            services.push(s.validate(base)?);
        }
        let log_format = self
            .telemetry
            .log_format(self.log_format)
            .map_err(anyhow::Error::msg)?;
        self.telemetry.validate().map_err(anyhow::Error::msg)?;
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        Ok(ConnectorConfig {
            name: self.name,
            trust_domain: self.trust_domain,
            worker_threads: self.worker_threads,
            log_format,
            telemetry: self.telemetry,
            edges: self.edges,
            edge_server_name: self.edge_server_name,
            transport: self.transport,
            tunnels_per_edge: self.tunnels_per_edge,
            drain_grace: self.drain_grace,
            cert: resolve(self.cert),
            key: resolve(self.key),
            ca: resolve(self.ca),
            revocation_list: self.revocation_list.map(resolve),
            services,
            health: self.health,
        })
    }
}

impl ServiceFile {
    fn validate(self, base: &Path) -> anyhow::Result<ServiceConfig> {
        let kind = match self.kind {
            Some(kind) => {
                self.check_keys_of(kind)?;
                kind
            }
            None => self.kind_from_keys()?,
        };
        let name = &self.name;
        let sessions = || {
            let max = self.max_processes.unwrap_or(DEFAULT_MAX_PROCESSES);
            SessionLimits {
                max_processes: max,
                max_processes_per_principal: self
                    .max_processes_per_principal
                    .unwrap_or_else(|| fair_share(max)),
                idle_timeout: Duration::from_secs(
                    self.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
                ),
            }
        };
        let backend = match kind {
            BackendKind::Openapi => {
                BackendConfig::Openapi(Box::new(self.openapi_keys().validate(name, base)?))
            }
            BackendKind::Http | BackendKind::Sse => {
                let Some(url) = &self.url else {
                    bail!("service {name:?}: kind = {:?} needs a url", kind.name());
                };
                let url = parse_url(name, url)?;
                if kind == BackendKind::Sse {
                    BackendConfig::Sse {
                        url,
                        sessions: sessions(),
                    }
                } else {
                    BackendConfig::Http { url }
                }
            }
            BackendKind::Stdio => {
                let Some(command) = &self.command else {
                    bail!("service {name:?}: kind = \"stdio\" needs a `command`");
                };
                if command.is_empty() || command[0].is_empty() {
                    bail!("service {name:?}: `command` needs at least the program to run");
                }
                BackendConfig::Stdio {
                    command: command.clone(),
                    env: self.env.clone().unwrap_or_default(),
                    cwd: self.cwd.as_ref().map(|p| {
                        if p.is_relative() {
                            base.join(p)
                        } else {
                            p.clone()
                        }
                    }),
                    sessions: sessions(),
                }
            }
        };
        self.check_limits(kind)?;
        let max = self.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT);
        let concurrency = Concurrency {
            max,
            per_principal: self
                .max_concurrent_per_principal
                .unwrap_or_else(|| fair_share(max)),
        };
        Ok(ServiceConfig {
            name: self.name,
            backend,
            concurrency,
        })
    }

    fn openapi_keys(&self) -> OpenapiKeys<'_> {
        OpenapiKeys {
            spec: &self.spec,
            base_url: &self.base_url,
            include: &self.include,
            exclude: &self.exclude,
            auth: &self.auth,
            timeout: self.timeout,
        }
    }

    /// The kind of an entry without `kind`, from its keys, exactly as before `kind` existed.
    fn kind_from_keys(&self) -> anyhow::Result<BackendKind> {
        let name = &self.name;
        if let Some(key) = self.openapi_keys().given().first() {
            bail!("service {name:?}: `{key}` is a key of kind = \"openapi\": set it");
        }
        let sse = self.transport == Some(Transport::Sse);
        if sse && self.url.is_none() {
            bail!("service {name:?}: transport = \"sse\" needs a url");
        }
        match (&self.url, &self.command) {
            (Some(_), None) if sse => Ok(BackendKind::Sse),
            (Some(_), None) => Ok(BackendKind::Http),
            (None, Some(_)) => Ok(BackendKind::Stdio),
            (Some(_), Some(_)) => bail!("service {name:?}: set either url or command, not both"),
            (None, None) => bail!("service {name:?}: set url (or command)"),
        }
    }

    /// With an explicit `kind`, a key of another kind is a contradiction, not a key to ignore.
    fn check_keys_of(&self, kind: BackendKind) -> anyhow::Result<()> {
        let name = &self.name;
        let k = kind.name();
        let stdio = kind == BackendKind::Stdio;
        let openapi = kind == BackendKind::Openapi;
        if !openapi {
            if let Some(key) = self.openapi_keys().given().first() {
                bail!(
                    "service {name:?}: kind = {k:?} takes no `{key}` (a key of kind = \"openapi\"); \
                     remove `{key}` or change `kind`"
                );
            }
        } else {
            for (key, given) in [
                ("url", self.url.is_some()),
                ("transport", self.transport.is_some()),
                ("command", self.command.is_some()),
                ("env", self.env.is_some()),
                ("cwd", self.cwd.is_some()),
            ] {
                if given {
                    bail!(
                        "service {name:?}: kind = \"openapi\" takes no `{key}` (the REST API is \
                         `base_url`, its document `spec`); remove `{key}`"
                    );
                }
            }
        }
        for (key, given) in [
            ("url", self.url.is_some()),
            ("transport", self.transport.is_some()),
        ] {
            if stdio && given {
                bail!(
                    "service {name:?}: kind = \"stdio\" takes no `{key}` (a stdio backend is a \
                     `command`); remove `{key}` or change `kind`"
                );
            }
        }
        for (key, given) in [
            ("command", self.command.is_some()),
            ("env", self.env.is_some()),
            ("cwd", self.cwd.is_some()),
        ] {
            if !stdio && given {
                bail!(
                    "service {name:?}: kind = {k:?} takes no `{key}` (only a stdio backend \
                     runs a command); remove `{key}` or set kind = \"stdio\""
                );
            }
        }
        let agrees = match self.transport {
            None => true,
            Some(Transport::Sse) => kind == BackendKind::Sse,
            Some(Transport::StreamableHttp) => kind == BackendKind::Http,
        };
        if !agrees {
            bail!(
                "service {name:?}: kind = {k:?} contradicts its `transport`; `kind` alone says \
                 what the backend speaks: remove `transport`"
            );
        }
        Ok(())
    }

    fn check_limits(&self, kind: BackendKind) -> anyhow::Result<()> {
        let name = &self.name;
        let session_keys = [
            ("max_processes", self.max_processes.is_some()),
            (
                "max_processes_per_principal",
                self.max_processes_per_principal.is_some(),
            ),
            ("idle_timeout_secs", self.idle_timeout_secs.is_some()),
        ];
        if kind == BackendKind::Http || kind == BackendKind::Openapi {
            if let Some((key, _)) = session_keys.iter().find(|(_, set)| *set) {
                if kind == BackendKind::Openapi {
                    bail!(
                        "service {name:?}: `{key}` applies to kind = \"stdio\" and kind = \"sse\" \
                         services only; an openapi service keeps no sessions"
                    );
                }
                if self.kind.is_some() {
                    bail!(
                        "service {name:?}: `{key}` applies to kind = \"stdio\" and kind = \"sse\" \
                         services only; a Streamable HTTP backend keeps its own sessions"
                    );
                }
                bail!(
                    "service {name:?}: `{key}` applies to stdio (`command`) and `transport = \"sse\"` \
                     services only; a Streamable HTTP backend keeps its own sessions"
                );
            }
        }
        let pairs = [
            (
                "max_processes",
                self.max_processes,
                "max_processes_per_principal",
                self.max_processes_per_principal,
            ),
            (
                "max_concurrent",
                self.max_concurrent,
                "max_concurrent_per_principal",
                self.max_concurrent_per_principal,
            ),
        ];
        for (total_key, total, share_key, share) in pairs {
            if total == Some(0) {
                bail!("service {name:?}: `{total_key}` must be at least 1");
            }
            if share == Some(0) {
                bail!("service {name:?}: `{share_key}` must be at least 1");
            }
        }
        for (default, (total_key, total, share_key, share)) in
            [DEFAULT_MAX_PROCESSES, DEFAULT_MAX_CONCURRENT]
                .into_iter()
                .zip(pairs)
        {
            let total = total.unwrap_or(default);
            let share = share.unwrap_or_else(|| fair_share(total));
            if share > total {
                bail!("service {name:?}: `{share_key}` ({share}) exceeds `{total_key}` ({total})");
            }
        }
        Ok(())
    }
}

/// A backend URL: absolute `http://` (this build has no TLS to backends).
fn parse_url(service: &str, url: &str) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("service {service:?}: invalid url {url:?}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        bail!(
            "service {service:?}: url must be an absolute http:// URL (https backends are not supported by this build)"
        );
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
