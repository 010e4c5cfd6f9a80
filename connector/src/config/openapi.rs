//! The keys of a `kind = "openapi"` service: its document, the REST API's base URL, which
//! operations become tools, the credentials the connector adds (never seen by the edge), and
//! the per-call limits.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// Default of `timeout`: one REST call, from request to the whole response read.
pub const DEFAULT_OPENAPI_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated `kind = "openapi"` service.
#[derive(Debug, Clone)]
pub struct OpenapiConfig {
    /// Where the OpenAPI document is (`spec`).
    pub spec: SpecSource,
    /// The REST API's base URL (`base_url`); an operation's path is appended to its path.
    pub base_url: http::Uri,
    /// Operations that become tools (`include`; empty: every operation).
    pub include: OperationFilter,
    /// Operations left out (`exclude`), after `include`.
    pub exclude: OperationFilter,
    /// Credentials added to every call (`[services.auth]`).
    pub auth: Option<AuthConfig>,
    /// One REST call's deadline (`timeout`).
    pub timeout: Duration,
}

/// Where an OpenAPI document is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// A file, absolute once loaded (read at start and by `--check`).
    File(PathBuf),
    /// An `http://` URL inside the private network (fetched at first use).
    Url(http::Uri),
}

/// `include` / `exclude`: an operation matches when any list given matches it (tags by
/// name, paths as written in the document, e.g. `/pets/{id}`, a trailing `*` a prefix;
/// methods case-insensitive). An empty filter matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFilter {
    /// Tags, e.g. `["pets"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Paths as in the document, e.g. `["/pets/{id}", "/admin/*"]`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// HTTP methods, e.g. `["get"]`.
    #[serde(default)]
    pub methods: Vec<String>,
}

impl OperationFilter {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.paths.is_empty() && self.methods.is_empty()
    }

    /// Whether an operation (`method` lowercase, `path` as in the document) matches.
    pub fn matches(&self, method: &str, path: &str, tags: &[String]) -> bool {
        self.tags.iter().any(|t| tags.contains(t))
            || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            || self.paths.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => p == path,
            })
    }
}

/// A secret from the config file or the environment. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the file.
    Inline(Secret),
    /// Read from this environment variable when the backend is built.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(name) => write!(f, "Env({name:?})"),
        }
    }
}

impl SecretSource {
    /// The value: an unset or empty variable is an error naming it (never the value).
    pub fn resolve(&self) -> anyhow::Result<Secret> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => bail!("environment variable {name} is not set (or empty)"),
            },
        }
    }
}

/// A credential's value. Neither `Debug` nor `Display` shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the one place that puts it in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[services.auth]`, validated: how the connector authenticates to the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer { token: SecretSource },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: String,
        password: SecretSource,
    },
    /// A header of the API's choosing, e.g. `X-API-Key`.
    Header {
        name: http::HeaderName,
        value: SecretSource,
    },
}

/// `[services.auth]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthFile {
    /// `"bearer"`, `"basic"` or `"header"`.
    kind: AuthKind,
    /// bearer: the token in the file (prefer `token_env`).
    token: Option<SecretString>,
    /// bearer: the environment variable holding the token.
    token_env: Option<String>,
    /// basic: the user name.
    username: Option<String>,
    /// basic: the password in the file (prefer `password_env`).
    password: Option<SecretString>,
    /// basic: the environment variable holding the password.
    password_env: Option<String>,
    /// header: the header's name, e.g. `"X-API-Key"`.
    header: Option<String>,
    /// header: its value in the file (prefer `value_env`).
    value: Option<SecretString>,
    /// header: the environment variable holding its value.
    value_env: Option<String>,
}

/// A secret as written, so that a `Debug` of the file as read cannot show it either.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct SecretString(String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    Bearer,
    Basic,
    Header,
}

/// One secret from `key` (in the file) or `key_env` (the environment): exactly one of them.
fn secret(
    service: &str,
    key: &str,
    inline: &Option<SecretString>,
    env: &Option<String>,
) -> anyhow::Result<SecretSource> {
    match (inline, env) {
        (Some(s), None) => Ok(SecretSource::Inline(Secret(s.0.clone()))),
        (None, Some(var)) if !var.is_empty() => Ok(SecretSource::Env(var.clone())),
        (None, None) | (None, Some(_)) => {
            bail!("service {service:?}: [services.auth] needs `{key}_env` (or `{key}`)")
        }
        (Some(_), Some(_)) => {
            bail!("service {service:?}: [services.auth] takes `{key}` or `{key}_env`, not both")
        }
    }
}

impl AuthFile {
    pub(super) fn validate(&self, service: &str) -> anyhow::Result<AuthConfig> {
        let given = [
            ("token", self.token.is_some() || self.token_env.is_some()),
            ("username", self.username.is_some()),
            (
                "password",
                self.password.is_some() || self.password_env.is_some(),
            ),
            ("header", self.header.is_some()),
            ("value", self.value.is_some() || self.value_env.is_some()),
        ];
        let (kind, own): (&str, &[&str]) = match self.kind {
            AuthKind::Bearer => ("bearer", &["token"]),
            AuthKind::Basic => ("basic", &["username", "password"]),
            AuthKind::Header => ("header", &["header", "value"]),
        };
        if let Some((key, _)) = given.iter().find(|(k, set)| *set && !own.contains(k)) {
            bail!("service {service:?}: [services.auth] kind = {kind:?} takes no `{key}`");
        }
        Ok(match self.kind {
            AuthKind::Bearer => AuthConfig::Bearer {
                token: secret(service, "token", &self.token, &self.token_env)?,
            },
            AuthKind::Basic => AuthConfig::Basic {
                username: self.username.clone().with_context(|| {
                    format!(
                        "service {service:?}: [services.auth] kind = \"basic\" needs `username`"
                    )
                })?,
                password: secret(service, "password", &self.password, &self.password_env)?,
            },
            AuthKind::Header => {
                let Some(header) = &self.header else {
                    bail!("service {service:?}: [services.auth] kind = \"header\" needs `header`");
                };
                let name = http::HeaderName::try_from(header.as_str()).with_context(|| {
                    format!("service {service:?}: [services.auth] header {header:?} is not a valid header name")
                })?;
                AuthConfig::Header {
                    name,
                    value: secret(service, "value", &self.value, &self.value_env)?,
                }
            }
        })
    }
}

/// The `openapi` keys of one `[[services]]` entry as written.
pub(super) struct OpenapiKeys<'a> {
    pub spec: &'a Option<String>,
    pub base_url: &'a Option<String>,
    pub include: &'a Option<OperationFilter>,
    pub exclude: &'a Option<OperationFilter>,
    pub auth: &'a Option<AuthFile>,
    pub timeout: Option<Duration>,
}

impl OpenapiKeys<'_> {
    /// The names of the keys given, for the check that other kinds take none of them.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("spec", self.spec.is_some()),
            ("base_url", self.base_url.is_some()),
            ("include", self.include.is_some()),
            ("exclude", self.exclude.is_some()),
            ("auth", self.auth.is_some()),
            ("timeout", self.timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    pub fn validate(&self, service: &str, base: &Path) -> anyhow::Result<OpenapiConfig> {
        let Some(spec) = self.spec else {
            bail!(
                "service {service:?}: kind = \"openapi\" needs `spec` (a file or an http:// URL)"
            );
        };
        let spec = if spec.starts_with("http://") || spec.starts_with("https://") {
            SpecSource::Url(http_url(service, "spec", spec)?)
        } else {
            let p = PathBuf::from(spec);
            SpecSource::File(if p.is_relative() { base.join(p) } else { p })
        };
        let Some(base_url) = self.base_url else {
            bail!("service {service:?}: kind = \"openapi\" needs `base_url` (the REST API's http:// URL)");
        };
        let base_url = http_url(service, "base_url", base_url)?;
        let timeout = self.timeout.unwrap_or(DEFAULT_OPENAPI_TIMEOUT);
        if timeout.is_zero() || timeout > Duration::from_secs(3600) {
            bail!("service {service:?}: `timeout` must be above 0 and at most 1h");
        }
        for (key, filter) in [("include", self.include), ("exclude", self.exclude)] {
            for m in filter.iter().flat_map(|f| &f.methods) {
                if !METHODS.iter().any(|k| k.eq_ignore_ascii_case(m)) {
                    bail!("service {service:?}: `{key}.methods` has {m:?}, not an HTTP method of OpenAPI ({})", METHODS.join(", "));
                }
            }
        }
        Ok(OpenapiConfig {
            spec,
            base_url,
            include: self.include.clone().unwrap_or_default(),
            exclude: self.exclude.clone().unwrap_or_default(),
            auth: self
                .auth
                .as_ref()
                .map(|a| a.validate(service))
                .transpose()?,
            timeout,
        })
    }
}

/// The methods an OpenAPI path item may hold operations for.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An absolute `http://` URL (the connector's backend client has no TLS).
fn http_url(service: &str, key: &str, url: &str) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("service {service:?}: invalid `{key}` {url:?}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        bail!(
            "service {service:?}: `{key}` must be an absolute http:// URL (https is not supported by this build)"
        );
    }
    Ok(uri)
}
