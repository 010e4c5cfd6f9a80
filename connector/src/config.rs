//! `connector.toml`: who this connector is, which edges it dials, and the services it serves.
//!
//! Relative paths are resolved against the folder of the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use underpass_shared::identity::{validate_name, validate_trust_domain, DEFAULT_TRUST_DOMAIN};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// This connector's name; must equal the name in its certificate's identity.
    pub name: String,
    /// SPIFFE trust domain of the deployment.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Tokio worker threads. Default 1: on the 2-core hosts measured (edge, connector and
    /// backends sharing the cores) one worker had lower latency and higher throughput than
    /// several, because every cross-thread hop costs a wake-up. Raise it on larger machines.
    /// With 1, every task runs on one thread (a current-thread runtime).
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
    /// Edge tunnel addresses (`host:port`, UDP) to dial. The connector keeps a tunnel to each.
    pub edges: Vec<String>,
    /// Name checked against the edge certificate; defaults to the host part of each edge.
    pub edge_server_name: Option<String>,
    /// This connector's certificate (PEM chain) with a `connector` identity.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The deployment CA that edge certificates must chain to.
    pub ca: PathBuf,
    /// The MCP servers this connector serves. Nothing else is reachable through it.
    pub services: Vec<ServiceConfig>,
}

fn default_worker_threads() -> usize {
    1
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service name, as the edge's `[[services]]` and `/mcp/{name}` know it.
    pub name: String,
    /// An HTTP backend, e.g. `http://127.0.0.1:3001/mcp`.
    pub url: Option<String>,
    /// What the `url` speaks: `streamable-http` (default; both MCP eras) or `sse` (the
    /// 2024-11-05 HTTP+SSE transport: `url` is its event-stream endpoint, e.g. `…/sse`).
    #[serde(default)]
    pub transport: Transport,
    /// A stdio backend: the program and its arguments.
    pub command: Option<Vec<String>>,
    /// Extra environment variables for a stdio backend.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of a stdio backend.
    pub cwd: Option<PathBuf>,
    /// stdio and `sse` backends: sessions open at once for all principals together (each is
    /// a process, or a connection to the `sse` backend); beyond it `initialize` is answered
    /// 503 with `Retry-After`. Default 32.
    pub max_processes: Option<usize>,
    /// stdio and `sse` backends: sessions one principal may hold open at once; beyond it
    /// `initialize` is answered 429 with `Retry-After`. Default: a quarter of `max_processes`
    /// (at least 1), so no single caller can take every process.
    pub max_processes_per_principal: Option<usize>,
    /// stdio and `sse` backends: a session with no request in flight for this many seconds is
    /// closed (its process stopped, its connection closed). Default 600; 0 keeps idle sessions
    /// until the client deletes them (not recommended: a forgotten client pins a process).
    pub idle_timeout_secs: Option<u64>,
    /// Exchanges in flight to this service at once, for all principals together (a tool call,
    /// an open event stream; each may hold a connection to the backend); beyond it requests
    /// are answered 503 with `Retry-After` at once, never queued. Default 1024.
    pub max_concurrent: Option<usize>,
    /// Exchanges one principal may have in flight to this service at once; beyond it 429 with
    /// `Retry-After`. Default: a quarter of `max_concurrent` (at least 1).
    pub max_concurrent_per_principal: Option<usize>,
}

/// Default of `max_processes`.
pub const DEFAULT_MAX_PROCESSES: usize = 32;
/// Default of `idle_timeout_secs`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 600;
/// Default of `max_concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;

/// A principal's default share of a service-wide cap: a quarter, at least 1.
fn fair_share(total: usize) -> usize {
    (total / 4).max(1)
}

/// Caps of one service on exchanges in flight, in total and per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub max: usize,
    pub per_principal: usize,
}

impl ServiceConfig {
    /// Whether sessions of this service are processes or backend connections the connector
    /// keeps (stdio and `sse` backends), so the session keys apply.
    pub fn keeps_sessions(&self) -> bool {
        self.command.is_some() || self.transport == Transport::Sse
    }

    /// The session limits of a stdio or `sse` service.
    pub fn stdio_limits(&self) -> crate::bridge::StdioLimits {
        let max = self.max_processes.unwrap_or(DEFAULT_MAX_PROCESSES);
        crate::bridge::StdioLimits {
            max_processes: max,
            max_processes_per_principal: self
                .max_processes_per_principal
                .unwrap_or_else(|| fair_share(max)),
            idle_timeout: std::time::Duration::from_secs(
                self.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
            ),
        }
    }

    /// The caps on exchanges in flight to this service.
    pub fn concurrency(&self) -> Concurrency {
        let max = self.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT);
        Concurrency {
            max,
            per_principal: self
                .max_concurrent_per_principal
                .unwrap_or_else(|| fair_share(max)),
        }
    }

    fn validate_limits(&self) -> anyhow::Result<()> {
        let name = &self.name;
        let session_keys = [
            ("max_processes", self.max_processes.is_some()),
            (
                "max_processes_per_principal",
                self.max_processes_per_principal.is_some(),
            ),
            ("idle_timeout_secs", self.idle_timeout_secs.is_some()),
        ];
        if !self.keeps_sessions() {
            if let Some((key, _)) = session_keys.iter().find(|(_, set)| *set) {
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
        let limits = self.stdio_limits();
        if limits.max_processes_per_principal > limits.max_processes {
            bail!(
                "service {name:?}: `max_processes_per_principal` ({}) exceeds `max_processes` ({})",
                limits.max_processes_per_principal,
                limits.max_processes
            );
        }
        let c = self.concurrency();
        if c.per_principal > c.max {
            bail!(
                "service {name:?}: `max_concurrent_per_principal` ({}) exceeds `max_concurrent` ({})",
                c.per_principal,
                c.max
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    #[default]
    StreamableHttp,
    Sse,
}

impl ConnectorConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read connector config {}", path.display()))?;
        let mut config: ConnectorConfig = toml::from_str(&text)
            .with_context(|| format!("invalid connector config {}", path.display()))?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config
            .validate()
            .with_context(|| format!("connector config {} is not usable", path.display()))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.cert, &mut self.key, &mut self.ca]
            .into_iter()
            .chain(self.services.iter_mut().filter_map(|s| s.cwd.as_mut()))
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        validate_name(&self.name).context("invalid `name`")?;
        validate_trust_domain(&self.trust_domain)?;
        if self.edges.is_empty() {
            bail!("`edges` is empty: name at least one edge tunnel address");
        }
        if self.services.is_empty() {
            bail!("no [[services]]: a connector must serve at least one service");
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            validate_name(&s.name).context("invalid [[services]] name")?;
            if !seen.insert(&s.name) {
                bail!("service {:?} is listed twice", s.name);
            }
            if s.transport == Transport::Sse && s.url.is_none() {
                bail!("service {:?}: transport = \"sse\" needs a url", s.name);
            }
            match (&s.url, &s.command) {
                (Some(url), None) => {
                    let uri: http::Uri = url
                        .parse()
                        .with_context(|| format!("service {:?}: invalid url {url:?}", s.name))?;
                    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                        bail!(
                            "service {:?}: url must be an absolute http:// URL (https backends are not supported by this build)",
                            s.name
                        );
                    }
                }
                (None, Some(command)) => {
                    if command.is_empty() || command[0].is_empty() {
                        bail!(
                            "service {:?}: `command` needs at least the program to run",
                            s.name
                        );
                    }
                }

                (Some(_), Some(_)) => {
                    bail!("service {:?}: set either url or command, not both", s.name)
                }
                (None, None) => bail!("service {:?}: set url (or command)", s.name),
            }
            s.validate_limits()?;
        }
        Ok(())
    }

    /// File descriptors the configured caps may use at once: a backend connection per
    /// exchange in flight, three pipes per stdio process, a connection per `sse` session.
    pub fn descriptor_budget(&self) -> u64 {
        self.services
            .iter()
            .map(|s| {
                let sessions = if s.keeps_sessions() {
                    let per = if s.command.is_some() { 3 } else { 1 };
                    s.stdio_limits().max_processes as u64 * per
                } else {
                    0
                };
                s.concurrency().max as u64 + sessions
            })
            .sum()
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(services: &str) -> anyhow::Result<ConnectorConfig> {
        let mut c: ConnectorConfig = toml::from_str(&format!(
            "name = \"dc1\"\nedges = [\"127.0.0.1:7844\"]\ncert = \"pki/dc1.crt\"\nkey = \"pki/dc1.key\"\nca = \"pki/ca.crt\"\n{services}"
        ))?;
        c.resolve_paths(Path::new("/etc/up"));
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn http_service() {
        let c = parse("[[services]]\nname = \"everything\"\nurl = \"http://127.0.0.1:3001/mcp\"")
            .unwrap();
        assert_eq!(c.cert, Path::new("/etc/up/pki/dc1.crt"));
        assert!(c.service("everything").is_some());
        assert!(c.service("other").is_none());
    }

    #[test]
    fn limits_default_to_a_fair_share() {
        let c = parse("[[services]]\nname = \"files\"\ncommand = [\"srv\"]").unwrap();
        let s = c.service("files").unwrap();
        let l = s.stdio_limits();
        assert_eq!(l.max_processes, 32);
        assert_eq!(l.max_processes_per_principal, 8);
        assert_eq!(l.idle_timeout, std::time::Duration::from_secs(600));
        assert_eq!(
            s.concurrency(),
            Concurrency {
                max: 1024,
                per_principal: 256
            }
        );
        let c = parse(
            "[[services]]\nname = \"files\"\ncommand = [\"srv\"]\nmax_processes = 6\n\
             idle_timeout_secs = 30\nmax_concurrent = 2\n",
        )
        .unwrap();
        let s = c.service("files").unwrap();
        let l = s.stdio_limits();
        assert_eq!(
            (l.max_processes, l.max_processes_per_principal),
            (6, 1),
            "a quarter, at least one"
        );
        assert_eq!(l.idle_timeout, std::time::Duration::from_secs(30));
        assert_eq!(
            s.concurrency(),
            Concurrency {
                max: 2,
                per_principal: 1
            }
        );
        let c = parse(
            "[[services]]\nname = \"old\"\nurl = \"http://h/sse\"\ntransport = \"sse\"\n\
             max_processes = 10\nmax_processes_per_principal = 10\n",
        )
        .unwrap();
        assert_eq!(
            c.service("old")
                .unwrap()
                .stdio_limits()
                .max_processes_per_principal,
            10
        );
        assert_eq!(c.descriptor_budget(), 1024 + 10);
    }

    #[test]
    fn bad_limits() {
        let svc = "[[services]]\nname = \"files\"\ncommand = [\"srv\"]\n";
        for bad in [
            "max_processes = 0",
            "max_processes_per_principal = 0",
            "max_processes = 4\nmax_processes_per_principal = 5",
            "max_concurrent = 0",
            "max_concurrent = 8\nmax_concurrent_per_principal = 9",
            "max_processes = \"many\"",
            "max_sessions = 3",
        ] {
            assert!(parse(&format!("{svc}{bad}")).is_err(), "{bad}");
        }
        // Session keys on a Streamable HTTP service would silently do nothing.
        let http = "[[services]]\nname = \"h\"\nurl = \"http://h/mcp\"\n";
        let e = parse(&format!("{http}max_processes = 3")).unwrap_err();
        assert!(format!("{e:#}").contains("stdio"), "{e:#}");
        assert!(parse(&format!("{http}max_concurrent = 3")).is_ok());
    }

    #[test]
    fn bad_services() {
        assert!(parse("").is_err());
        assert!(parse("[[services]]\nname = \"x\"").is_err());
        assert!(parse("[[services]]\nname = \"x\"\nurl = \"ftp://h/\"").is_err());
        assert!(parse("[[services]]\nname = \"Bad Name\"\nurl = \"http://h/\"").is_err());
    }
}
