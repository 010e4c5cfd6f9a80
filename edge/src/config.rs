//! `edge.toml`: what the edge listens on, who may connect, and which connector serves what.
//!
//! Relative paths are resolved against the folder of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use underpass_proto::identity::{validate_name, validate_trust_domain, DEFAULT_TRUST_DOMAIN};

pub use crate::auth::{ApiKeyConfig, AuthConfig, JwtConfig};
pub use crate::federation::config::{FederationConfig, OnFailure, ViewConfig};
pub use underpass_audit::AuditConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// SPIFFE trust domain of every certificate this edge accepts.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Tokio worker threads. Default 1: on the 2-core hosts measured (edge, connector and
    /// backends sharing the cores) one worker had lower latency and higher throughput than
    /// several, because every cross-thread hop costs a wake-up. Raise it on larger machines.
    /// With 1, every task runs on one thread (a current-thread runtime).
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
    /// How log lines are written: `"text"` (the default) or `"json"`, one object per line.
    /// Also `[telemetry] log_format`; set it in one place.
    #[serde(default)]
    log_format: Option<underpass_shared::LogFormat>,
    /// Spans over OTLP (`otlp_endpoint`) and the log format.
    #[serde(default)]
    pub telemetry: underpass_shared::telemetry::TelemetryConfig,
    /// One log line per client request (target `underpass::access`: the audit record's fields
    /// without arguments or session id). Off by default: it costs CPU on every request (see
    /// README, "Logs"); the audit log is the durable record.
    #[serde(default)]
    pub access_log: bool,
    /// On SIGTERM, how long in-flight requests and open event streams may take to finish
    /// before the edge closes its tunnels and exits (`/readyz` is 503 and no new client
    /// connection is accepted from the first moment). At most 1 hour.
    #[serde(default = "default_drain_grace", with = "humantime_serde")]
    pub drain_grace: std::time::Duration,
    /// File of revoked certificate serials (one per line, as `underpass-certs revoke` writes).
    pub revocation_list: Option<PathBuf>,
    /// The HTTPS listener for MCP clients.
    pub clients: ClientsConfig,
    /// The QUIC listener for connectors.
    pub tunnel: TunnelConfig,
    /// Health and readiness endpoints; off when absent.
    pub admin: Option<AdminConfig>,
    /// Which connectors may serve which service. A connector offering anything else is refused.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// How MCP clients are authenticated. Required (or the edge refuses to start).
    pub auth: Option<AuthConfig>,
    /// What authenticated clients may do. Required (or the edge refuses to start).
    pub policy: Option<PolicyConfig>,
    /// Where the audit trail goes (one hash-chained JSON line per client request).
    pub audit: Option<AuditConfig>,
    /// The identity assertions backends receive instead of client credentials.
    #[serde(default)]
    pub assertion: AssertionConfig,
    /// Keys that seal legacy session ids (`Mcp-Session-Id`), the same on every edge so that
    /// any of them continues a session. Absent: a random key of this process (its sessions
    /// do not survive it).
    pub sessions: Option<SessionsConfig>,
    /// One-time enrollment of connectors (`underpass-connector enroll`), served on the
    /// `[tunnel] listen` port over TCP; off when absent.
    pub enrollment: Option<EnrollmentConfig>,
    /// The federated endpoint `/mcp`: fan-out deadline, name separator, pages, cache.
    #[serde(default)]
    pub federation: FederationConfig,
    /// Curated views of the federated endpoint, each at `/mcp/view/{name}`.
    #[serde(default)]
    pub views: Vec<ViewConfig>,
}

impl EdgeConfig {
    /// How log lines are written (`[telemetry] log_format`, or the older top-level key).
    /// Both set is refused by `validate`.
    pub fn log_format(&self) -> underpass_shared::LogFormat {
        self.telemetry
            .log_format(self.log_format)
            .unwrap_or_default()
    }
}

fn default_worker_threads() -> usize {
    1
}

fn default_drain_grace() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsConfig {
    /// Address of the client listener, e.g. `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// Server certificate (PEM chain) presented to clients; required unless plaintext.
    pub cert: Option<PathBuf>,
    /// Private key of `cert`.
    pub key: Option<PathBuf>,
    /// Serve plain HTTP. Refused unless `listen` is a loopback address.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// Host names clients may use to reach the edge (DNS rebinding protection). Empty: any
    /// name, except that a loopback listener answers only to loopback names.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed besides the edge's own (e.g. `https://app.example.com`).
    /// A request carrying any other `Origin` gets 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes (413 above it). Default 4 MiB.
    #[serde(default = "default_max_body")]
    pub max_request_body: usize,
    // Resource limits (defaults and their mechanisms in `crate::limits`).
    /// Client connections open at once (TLS handshakes included). At the cap a new connection
    /// replaces the one idle longest (no request in flight); if none is idle it is closed at
    /// once. Lowered at start to fit the open-file limit.
    #[serde(default = "crate::limits::default_max_connections")]
    pub max_connections: usize,
    /// Client connections open at once from one source address (IPv6: one /64).
    #[serde(default = "crate::limits::default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Time a client has to complete its TLS handshake.
    #[serde(
        default = "crate::limits::default_handshake_timeout",
        with = "humantime_serde"
    )]
    pub handshake_timeout: std::time::Duration,
    /// Time a client has to send a request's headers (HTTP/1.1).
    #[serde(
        default = "crate::limits::default_header_timeout",
        with = "humantime_serde"
    )]
    pub header_timeout: std::time::Duration,
    /// Time a client has to send a whole request body (408 after it).
    #[serde(
        default = "crate::limits::default_body_timeout",
        with = "humantime_serde"
    )]
    pub body_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed (both protocols; an
    /// open event stream or a long tool call is a request in flight).
    #[serde(
        default = "crate::limits::default_idle_timeout",
        with = "humantime_serde"
    )]
    pub idle_timeout: std::time::Duration,
    /// HTTP/2 PING interval to detect dead peers (`"0s"`: off).
    #[serde(default = "crate::limits::default_keepalive", with = "humantime_serde")]
    pub http2_keepalive_interval: std::time::Duration,
    /// An HTTP/2 PING unanswered for this long closes the connection.
    #[serde(default = "crate::limits::default_keepalive", with = "humantime_serde")]
    pub http2_keepalive_timeout: std::time::Duration,
    /// Concurrent HTTP/2 streams per connection.
    #[serde(default = "crate::limits::default_max_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list, and largest HTTP/1.1 request head, in bytes (431 beyond);
    /// 8 KiB to 128 KiB (a request head crosses the tunnel in one 256 KiB frame).
    #[serde(default = "crate::limits::default_max_header_list")]
    pub http2_max_header_list_size: u32,
    /// Total bytes of request bodies held by the edge at once, all clients together (503
    /// with `Retry-After` beyond). At least `max_request_body`.
    #[serde(default = "crate::limits::default_max_buffered_body_bytes")]
    pub max_buffered_body_bytes: usize,
    /// Requests in flight at once per principal, event streams included (429 beyond).
    #[serde(default = "crate::limits::default_max_concurrent_per_principal")]
    pub max_concurrent_per_principal: usize,
    /// Legacy sessions (`Mcp-Session-Id`, and 2024-11-05 SSE streams) open at once per
    /// principal (429 on the `initialize` beyond).
    #[serde(default = "crate::limits::default_max_sessions_per_principal")]
    pub max_sessions_per_principal: usize,
    /// A legacy session with no request for this long is forgotten and ended at its backend.
    #[serde(
        default = "crate::limits::default_session_idle_timeout",
        with = "humantime_serde"
    )]
    pub session_idle_timeout: std::time::Duration,
}

fn default_max_body() -> usize {
    4 * 1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// UDP address connectors dial, e.g. `0.0.0.0:7844`.
    pub listen: SocketAddr,
    /// Edge certificate (PEM chain) with an `edge` SPIFFE identity.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The deployment CA that connector certificates must chain to.
    pub ca: PathBuf,
    /// Exchanges in flight at once on one tunnel. A tunnel at its cap gets no new exchange;
    /// when every tunnel that could take a request is, the client gets 503 with
    /// `Retry-After` instead of a queue. 1 to 16384 (QUIC's stream limit); default 4096.
    #[serde(default = "default_max_exchanges_per_tunnel")]
    pub max_exchanges_per_tunnel: usize,
}

/// Highest `max_exchanges_per_tunnel`: the streams a connector lets the edge open at once.
pub const MAX_EXCHANGES_PER_TUNNEL: usize = 16_384;

fn default_max_exchanges_per_tunnel() -> usize {
    4096
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/healthz`, `/readyz`, `/metrics`, the admin API (`/api/...`) and the
    /// dashboard (`/`). On a loopback address everything is open to local processes; on any
    /// other, `/metrics`, `/` and `/api/...` need an operator certificate, hence `cert`/`key`.
    pub listen: SocketAddr,
    /// Server certificate (PEM chain) of the admin listener: with it the listener speaks
    /// TLS 1.3 only and accepts operator client certificates (`underpass-certs issue
    /// operator`) chaining to `[tunnel] ca`. Without it, plain HTTP.
    pub cert: Option<PathBuf>,
    /// Private key of `cert`.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service name, as in `/mcp/{name}`.
    pub name: String,
    /// Names of the connectors allowed to serve it.
    pub connectors: Vec<String>,
    /// Tools whose `tools/call` is safe to send twice (they change nothing): when the tunnel
    /// carrying such a call is lost before any answer came back, the edge sends it once more
    /// on another tunnel. `server/discover`, `initialize`, the `*/list` methods,
    /// `resources/read` and `prompts/get` are retried that way without being listed; nothing
    /// else ever is. Default: none.
    #[serde(default)]
    pub retry_tools: Vec<String>,
    /// What names its tools, prompts and resources on the federated endpoint `/mcp`:
    /// `{prefix}__{name}`. Default: the service's name.
    #[serde(default)]
    pub prefix: Option<String>,
    /// When the service cannot answer a federated list in time: `"omit"` (the default) leaves
    /// it out of the answer, `"fail"` fails the answer.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Serve both protocol eras on `/mcp/{service}` whatever the backend speaks: the edge is
    /// then the MCP server there (as on `/mcp`, under the backend's own names), and reaches the
    /// backend in its own era. Server-to-client requests and GET event streams are not served
    /// on a bridged endpoint. `/mcp` always bridges. Default false.
    #[serde(default)]
    pub bridge_eras: bool,
    /// Pinned tool definitions: hide a tool whose definition changed since an operator
    /// approved it. Not in this build yet: `false` (the default, nothing pinned) loads, `true`
    /// is refused at load rather than silently not pinning.
    #[serde(default)]
    pub pin_tools: bool,
}

impl ServiceConfig {
    /// The prefix of its names on the federated endpoint.
    pub fn federated_prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy rules file (default deny).
    pub file: Option<PathBuf>,
    /// Development only: no rules, everything allowed.
    #[serde(default)]
    pub allow_all: bool,
}

/// `[sessions]`: the keys that seal legacy session ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Files of 32 random bytes each (`underpass-certs session-key --out FILE`). The first
    /// seals new session ids, every one opens them: to rotate, put a new key first and keep
    /// the old one until the sessions it sealed are gone.
    pub keys: Vec<PathBuf>,
}

/// `[enrollment]`: the connector-only issuer this edge signs enrolled (and renewed) connector
/// certificates with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// The issuer certificate (`underpass-certs issuer --dir DIR` writes `DIR/issuer.crt`);
    /// it must chain to a root of `[tunnel] ca`.
    pub issuer_cert: PathBuf,
    /// Its key (`DIR/issuer.key`). It can mint connector identities only.
    pub issuer_key: PathBuf,
    /// Lifetime of the connector certificates this edge issues: 60s to 30d.
    #[serde(default = "default_cert_ttl", with = "humantime_serde")]
    pub cert_ttl: std::time::Duration,
    /// The record of redeemed tokens (one line per token, appended before a certificate is
    /// issued, locked while it is read and written). Edges that share this file refuse a
    /// token any of them redeemed; edges with a file each accept a token once each. Default:
    /// `used-tokens.txt` beside `issuer_key`.
    pub used_tokens: Option<PathBuf>,
}

fn default_cert_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(24 * 3600)
}

impl EnrollmentConfig {
    /// `used_tokens`, or its default.
    pub fn used_tokens_path(&self) -> PathBuf {
        self.used_tokens.clone().unwrap_or_else(|| {
            self.issuer_key
                .parent()
                .unwrap_or(Path::new("."))
                .join("used-tokens.txt")
        })
    }
}

/// Key of the identity assertions the edge signs for backends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// PKCS#8 ES256 key (PEM or DER). Absent: a fresh key per start (backends re-fetch the
    /// JWKS from the admin listener when they see an unknown `kid`).
    pub key: Option<PathBuf>,
}

impl EdgeConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read edge config {}", path.display()))?;
        let mut config: EdgeConfig = toml::from_str(&text)
            .with_context(|| format!("invalid edge config {}", path.display()))?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config
            .validate()
            .with_context(|| format!("edge config {} is not usable", path.display()))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(auth) = self.auth.as_mut() {
            auth.resolve_paths(base);
        }
        if let Some(audit) = self.audit.as_mut() {
            fix(&mut audit.file);
            for p in [
                audit.signing_key.as_mut(),
                audit.checkpoint_copy.as_mut(),
                audit.checkpoint_syslog.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                fix(p);
            }
        }
        for p in [
            self.clients.cert.as_mut(),
            self.clients.key.as_mut(),
            self.revocation_list.as_mut(),
            Some(&mut self.tunnel.cert),
            Some(&mut self.tunnel.key),
            Some(&mut self.tunnel.ca),
            self.policy.as_mut().and_then(|p| p.file.as_mut()),
            self.assertion.key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(admin) = self.admin.as_mut() {
            for p in [admin.cert.as_mut(), admin.key.as_mut()]
                .into_iter()
                .flatten()
            {
                fix(p);
            }
        }
        for p in self.sessions.iter_mut().flat_map(|s| s.keys.iter_mut()) {
            fix(p);
        }
        if let Some(e) = self.enrollment.as_mut() {
            for p in [
                Some(&mut e.issuer_cert),
                Some(&mut e.issuer_key),
                e.used_tokens.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                fix(p);
            }
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.telemetry
            .log_format(self.log_format)
            .map_err(anyhow::Error::msg)?;
        self.telemetry.validate().map_err(anyhow::Error::msg)?;
        validate_trust_domain(&self.trust_domain)?;
        if let Some(e) = &self.enrollment {
            let ttl = e.cert_ttl.as_secs();
            if !(60..=30 * 86_400).contains(&ttl) {
                bail!("[enrollment] cert_ttl must be between 60s and 30d");
            }
        }
        if !(1..=MAX_EXCHANGES_PER_TUNNEL).contains(&self.tunnel.max_exchanges_per_tunnel) {
            bail!(
                "[tunnel] max_exchanges_per_tunnel must be between 1 and \
                 {MAX_EXCHANGES_PER_TUNNEL}"
            );
        }
        if self.drain_grace > std::time::Duration::from_secs(3600) {
            bail!("drain_grace must be at most 1h (it delays every shutdown by up to that long)");
        }
        match (&self.auth, &self.policy) {
            (None, None) => bail!(
                "neither [auth] nor [policy] is configured, so nothing would be protected; \
                 configure both (for local development: `[auth] anonymous = true` and \
                 `[policy] allow_all = true`)"
            ),
            (None, Some(_)) => bail!("[auth] is missing: say how clients authenticate"),
            (Some(_), None) => bail!("[policy] is missing: say what clients may do"),
            _ => {}
        }
        if let Some(auth) = &self.auth {
            if !auth.anonymous
                && auth.client_ca.is_none()
                && auth.api_keys.is_empty()
                && auth.jwt.is_none()
            {
                bail!("[auth] enables no method: set anonymous, client_ca, api_keys or jwt");
            }
            auth.validate().context("invalid [auth]")?;
            if auth.client_ca.is_some() && self.clients.insecure_plaintext {
                bail!("[auth] client_ca needs TLS on [clients]; remove insecure_plaintext");
            }
        }
        if let Some(policy) = &self.policy {
            match (&policy.file, policy.allow_all) {
                (Some(_), true) => bail!("[policy] set either file or allow_all, not both"),
                (None, false) => bail!("[policy] names no rules: set file = \"policy.toml\" (or allow_all = true for development)"),
                _ => {}
            }
        }
        if self.clients.insecure_plaintext {
            if !self.clients.listen.ip().is_loopback() {
                bail!(
                    "[clients] insecure_plaintext is only allowed on a loopback address, not {}",
                    self.clients.listen
                );
            }
        } else if self.clients.cert.is_none() || self.clients.key.is_none() {
            bail!("[clients] needs cert and key (or insecure_plaintext = true on loopback)");
        }
        validate_clients(&self.clients)?;
        if let Some(admin) = &self.admin {
            if admin.cert.is_some() != admin.key.is_some() {
                bail!("[admin] needs both cert and key for TLS (or neither for plain HTTP)");
            }
        }
        if self.sessions.as_ref().is_some_and(|s| s.keys.is_empty()) {
            bail!(
                "[sessions] keys is empty: list at least one key file \
                 (`underpass-certs session-key --out FILE`), or remove [sessions]"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            validate_name(&s.name).with_context(|| "invalid [[services]] name")?;
            if !seen.insert(&s.name) {
                bail!("service {:?} is listed twice in [[services]]", s.name);
            }
            for c in &s.connectors {
                validate_name(c)
                    .with_context(|| format!("invalid connector name in service {:?}", s.name))?;
            }
            if s.pin_tools {
                bail!(
                    "service {:?}: pin_tools = true (pinned tool definitions) is not available in \
                     this build, and the edge will not run without the protection asked for; set \
                     pin_tools = false or remove it",
                    s.name
                );
            }
        }
        let prefixes: Vec<(&str, &str)> = self
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.federated_prefix()))
            .collect();
        crate::federation::config::validate(&self.federation, &prefixes, &self.views)?;
        if self.has_service("view") {
            bail!("the service name \"view\" is reserved (views are served at /mcp/view/{{name}}): rename the service");
        }
        Ok(())
    }

    /// Whether connector `connector` may serve `service`.
    pub fn grants(&self, connector: &str, service: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.name == service && s.connectors.iter().any(|c| c == connector))
    }

    pub fn has_service(&self, service: &str) -> bool {
        self.services.iter().any(|s| s.name == service)
    }

    /// Whether `/mcp/{service}` is served by the edge across eras (`bridge_eras = true`).
    pub fn bridges_eras(&self, service: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.name == service && s.bridge_eras)
    }

    /// The `retry_tools` of `service` (empty for an unknown one).
    pub fn retry_tools(&self, service: &str) -> &[String] {
        self.services
            .iter()
            .find(|s| s.name == service)
            .map_or(&[], |s| s.retry_tools.as_slice())
    }
}

/// Checks the `[clients]` limits for values that would refuse everything or nothing.
/// Bounds of `http2_max_header_list_size`: hyper's smallest HTTP/1.1 read buffer, and a
/// head that fits the tunnel's head frame with room for the edge's own headers.
const MIN_HEADER_BYTES: u32 = 8192;
const MAX_HEADER_BYTES: u32 = 128 * 1024;

fn validate_clients(c: &ClientsConfig) -> anyhow::Result<()> {
    let positive = [
        ("max_connections", c.max_connections),
        ("max_connections_per_ip", c.max_connections_per_ip),
        (
            "max_concurrent_per_principal",
            c.max_concurrent_per_principal,
        ),
        ("max_sessions_per_principal", c.max_sessions_per_principal),
        (
            "http2_max_concurrent_streams",
            c.http2_max_concurrent_streams as usize,
        ),
    ];
    for (key, value) in positive {
        if value == 0 {
            anyhow::bail!("[clients] {key} must be at least 1");
        }
    }
    let durations = [
        ("handshake_timeout", c.handshake_timeout),
        ("header_timeout", c.header_timeout),
        ("body_timeout", c.body_timeout),
        ("idle_timeout", c.idle_timeout),
        ("session_idle_timeout", c.session_idle_timeout),
    ];
    for (key, value) in durations {
        if value.is_zero() {
            anyhow::bail!("[clients] {key} must be longer than 0s");
        }
    }
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&c.http2_max_header_list_size) {
        anyhow::bail!(
            "[clients] http2_max_header_list_size must be between {MIN_HEADER_BYTES} and \
             {MAX_HEADER_BYTES} bytes (a request head crosses the tunnel in one frame)"
        );
    }
    if c.max_buffered_body_bytes < c.max_request_body {
        anyhow::bail!(
            "[clients] max_buffered_body_bytes ({}) is below max_request_body ({}): a body of \
             the largest allowed size could never be accepted",
            c.max_buffered_body_bytes,
            c.max_request_body
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [clients]
        listen = "127.0.0.1:8443"
        insecure_plaintext = true
        [tunnel]
        listen = "127.0.0.1:7844"
        cert = "pki/edge.crt"
        key = "pki/edge.key"
        ca = "pki/ca.crt"
        [[services]]
        name = "everything"
        connectors = ["dc1"]
    "#;

    /// Anonymous clients, everything allowed: enough to start.
    const DEV: &str = "[auth]\nanonymous = true\n[policy]\nallow_all = true";

    fn parse(extra: &str) -> anyhow::Result<EdgeConfig> {
        let mut c: EdgeConfig = toml::from_str(&format!("{BASE}\n{extra}"))?;
        c.resolve_paths(Path::new("/etc/underpass"));
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn pin_tools_false_loads_and_true_is_refused_until_pinning_exists() {
        let with = |v: &str| {
            BASE.replace(
                "connectors = [\"dc1\"]",
                &format!("connectors = [\"dc1\"]\npin_tools = {v}"),
            )
        };
        let c: EdgeConfig = toml::from_str(&format!("{}\n{DEV}", with("false"))).unwrap();
        c.validate().unwrap();
        let c: EdgeConfig = toml::from_str(&format!("{}\n{DEV}", with("true"))).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("pin_tools = true") && err.contains("\"everything\""),
            "{err}"
        );
    }

    #[test]
    fn refuses_to_start_open() {
        let err = parse("").unwrap_err().to_string();
        assert!(err.contains("neither [auth] nor [policy]"), "{err}");
    }

    #[test]
    fn dev_mode_and_paths() {
        let c = parse("[auth]\nanonymous = true\n[policy]\nallow_all = true").unwrap();
        assert_eq!(c.tunnel.ca, Path::new("/etc/underpass/pki/ca.crt"));
        assert!(c.grants("dc1", "everything"));
        assert!(!c.grants("dc2", "everything"));
        assert!(!c.grants("dc1", "files"));
    }

    #[test]
    fn plaintext_only_on_loopback() {
        let text = BASE.replace("127.0.0.1:8443", "0.0.0.0:8443");
        let mut c: EdgeConfig = toml::from_str(&format!(
            "{text}\n[auth]\nanonymous = true\n[policy]\nallow_all = true"
        ))
        .unwrap();
        c.resolve_paths(Path::new("/"));
        assert!(c.validate().unwrap_err().to_string().contains("loopback"));
    }

    #[test]
    fn client_limits_have_defaults_and_typed_durations() {
        let dev = "[auth]\nanonymous = true\n[policy]\nallow_all = true";
        let c = parse(dev).unwrap().clients;
        assert_eq!(c.max_connections, 8192);
        assert_eq!(c.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.session_idle_timeout, std::time::Duration::from_secs(3600));
        let text = BASE.replace(
            "insecure_plaintext = true",
            "insecure_plaintext = true\nidle_timeout = \"90s\"\nsession_idle_timeout = \"30m\"\n\
             body_timeout = \"1500ms\"\nmax_sessions_per_principal = 3",
        );
        let c: EdgeConfig = toml::from_str(&format!("{text}\n{dev}")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.clients.idle_timeout, std::time::Duration::from_secs(90));
        assert_eq!(
            c.clients.session_idle_timeout,
            std::time::Duration::from_secs(1800)
        );
        assert_eq!(
            c.clients.body_timeout,
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(c.clients.max_sessions_per_principal, 3);
        for bad in ["idle_timeout = 30", "idle_timeout = \"soon\""] {
            let text = BASE.replace(
                "insecure_plaintext = true",
                &format!("insecure_plaintext = true\n{bad}"),
            );
            assert!(toml::from_str::<EdgeConfig>(&text).is_err(), "{bad}");
        }
        for (bad, why) in [
            ("max_connections = 0", "max_connections must be at least 1"),
            (
                "idle_timeout = \"0s\"",
                "idle_timeout must be longer than 0s",
            ),
            ("max_buffered_body_bytes = 1024", "below max_request_body"),
            (
                "http2_max_header_list_size = 4096",
                "http2_max_header_list_size must be between 8192 and 131072",
            ),
            (
                "http2_max_header_list_size = 262144",
                "http2_max_header_list_size must be between 8192 and 131072",
            ),
        ] {
            let text = BASE.replace(
                "insecure_plaintext = true",
                &format!("insecure_plaintext = true\n{bad}"),
            );
            let c: EdgeConfig = toml::from_str(&format!("{text}\n{dev}")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn sessions_keys_are_paths_resolved_against_the_config() {
        let dev = "[auth]\nanonymous = true\n[policy]\nallow_all = true";
        let c = parse(&format!(
            "[sessions]\nkeys = [\"sessions.key\", \"/keys/old.key\"]\n{dev}"
        ))
        .unwrap();
        let keys = c.sessions.unwrap().keys;
        assert_eq!(
            keys,
            vec![
                PathBuf::from("/etc/underpass/sessions.key"),
                PathBuf::from("/keys/old.key")
            ]
        );
        assert!(parse(dev).unwrap().sessions.is_none());
        let err = parse(&format!("[sessions]\nkeys = []\n{dev}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[sessions] keys is empty"), "{err}");
        assert!(parse(&format!("[sessions]\nkeys = [\"k\"]\nkey = \"x\"\n{dev}")).is_err());
    }

    #[test]
    fn admin_tls_needs_cert_and_key_together() {
        let dev = "[auth]\nanonymous = true\n[policy]\nallow_all = true";
        let c = parse(&format!(
            "[admin]\nlisten = \"0.0.0.0:9090\"\ncert = \"a.crt\"\nkey = \"a.key\"\n{dev}"
        ))
        .unwrap();
        let admin = c.admin.unwrap();
        assert_eq!(admin.cert, Some(PathBuf::from("/etc/underpass/a.crt")));
        assert_eq!(admin.key, Some(PathBuf::from("/etc/underpass/a.key")));
        let err = parse(&format!(
            "[admin]\nlisten = \"0.0.0.0:9090\"\ncert = \"a.crt\"\n{dev}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("both cert and key"), "{err}");
        let plain = parse(&format!("[admin]\nlisten = \"127.0.0.1:9090\"\n{dev}")).unwrap();
        assert!(plain.admin.unwrap().cert.is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<EdgeConfig>(&format!("{BASE}\nbogus = 1")).is_err());
    }

    #[test]
    fn log_format_is_text_json_or_an_error() {
        use underpass_shared::LogFormat;
        let with = |line: &str| toml::from_str::<EdgeConfig>(&format!("{line}\n{BASE}"));
        assert_eq!(with("").unwrap().log_format(), LogFormat::Text);
        assert_eq!(
            with("log_format = \"json\"").unwrap().log_format(),
            LogFormat::Json
        );
        assert!(with("log_format = \"xml\"").is_err());
        // In [telemetry], where it belongs; once only.
        let telemetry = |top: &str| -> anyhow::Result<EdgeConfig> {
            let text = format!("{top}\n{BASE}\n{DEV}\n[telemetry]\nlog_format = \"json\"\n");
            let c: EdgeConfig = toml::from_str(&text)?;
            c.validate()?;
            Ok(c)
        };
        assert_eq!(telemetry("").unwrap().log_format(), LogFormat::Json);
        let twice = telemetry("log_format = \"json\"").unwrap_err().to_string();
        assert!(twice.contains("set twice"), "{twice}");
    }

    #[test]
    fn telemetry_endpoint_is_plain_http_on_loopback_unless_allowed() {
        let with = |keys: &str| parse(&format!("{DEV}\n[telemetry]\n{keys}\n"));
        let c = with("otlp_endpoint = \"http://127.0.0.1:4318\"").unwrap();
        assert!(c.telemetry.otlp_endpoint.is_some());
        let err = with("otlp_endpoint = \"http://collector.internal:4318\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("otlp_insecure"), "{err}");
        assert!(
            with("otlp_endpoint = \"http://collector.internal:4318\"\notlp_insecure = true")
                .is_ok()
        );
        assert!(with("otlp_endpoint = \"https://c:4318\"").is_err());
        assert!(with("bogus = 1").is_err());
    }
}
