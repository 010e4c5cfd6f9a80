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
        }
        Ok(())
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
    fn bad_services() {
        assert!(parse("").is_err());
        assert!(parse("[[services]]\nname = \"x\"").is_err());
        assert!(parse("[[services]]\nname = \"x\"\nurl = \"ftp://h/\"").is_err());
        assert!(parse("[[services]]\nname = \"Bad Name\"\nurl = \"http://h/\"").is_err());
    }
}
