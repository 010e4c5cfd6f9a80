//! `[auth]` of `edge.toml`: how MCP clients prove who they are, and its validation.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::auth::api_key::parse_sha256_hex;
use crate::auth::error::AuthError;
use crate::auth::identity::MAX_NAME_LEN;

/// Largest accepted clock-skew allowance.
const MAX_LEEWAY_SECS: u64 = 300;

/// `[auth]`: how MCP clients prove who they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Development only: unauthenticated clients become principal `anonymous`.
    #[serde(default)]
    pub anonymous: bool,
    /// CA of client certificates (principal `client:<name>`); used by the TLS layer.
    pub client_ca: Option<PathBuf>,
    /// API keys, stored as SHA-256 digests (principal `apikey:<name>`).
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Bearer JWTs issued by an OAuth authorization server (principal `jwt:<sub>`).
    pub jwt: Option<JwtConfig>,
    /// Public base URL of this edge (e.g. `https://edge.example.com`), used to build the
    /// RFC 9728 `resource` and `resource_metadata` URLs. Without it they are derived from the
    /// request by the caller.
    pub resource: Option<String>,
    /// Scopes every JWT must carry (403 `insufficient_scope` otherwise). Advertised as
    /// `scopes_supported` and in the `scope` parameter of challenges. API keys, client
    /// certificates and anonymous clients carry no scopes and are not subject to this.
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

/// `[[auth.api_keys]]`: one static API key, presented as `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Name of the key; the principal is `apikey:<name>`.
    pub name: String,
    /// Hex of SHA-256 of the key (64 hex digits). The key itself is never stored.
    pub sha256: String,
}

/// `[auth.jwt]`: bearer JWTs from an OAuth 2.1 authorization server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Required `iss` of every token.
    pub issuer: String,
    /// Required `aud` of every token: the canonical URI of this edge's MCP endpoint.
    pub audience: String,
    /// JSON Web Key Set file with the issuer's public signing keys.
    pub jwks_file: PathBuf,
    /// Claim holding the caller's groups (array of strings, or one string); a dotted path
    /// such as `realm_access.roles` reaches into nested objects. Default `groups`.
    pub groups_claim: Option<String>,
    /// Accepted signature algorithms. Default (and the only allowed values):
    /// `["RS256", "ES256", "EdDSA"]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds (at most 300). Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Authorization servers advertised in the RFC 9728 metadata. Default: `[issuer]`.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Claim holding the granted scopes: a space-separated string (`scope`, the default) or an
    /// array of strings (`scp`); either form is accepted under any name.
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
}

/// A JWT signature algorithm the edge accepts. Symmetric algorithms and `none` do not exist
/// here on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of at least 2048 bits).
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl JwtAlgorithm {
    /// The name used in JOSE headers.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub(super) fn from_header(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(JwtAlgorithm::Rs256),
            "ES256" => Some(JwtAlgorithm::Es256),
            "EdDSA" => Some(JwtAlgorithm::EdDsa),
            _ => None,
        }
    }

    pub(super) fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::EdDsa,
    ]
}

fn default_leeway() -> u64 {
    30
}

pub(super) fn default_scopes_claim() -> String {
    "scope".to_owned()
}

impl AuthConfig {
    /// Resolves `client_ca` and `jwt.jwks_file` against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.client_ca.as_mut() {
            fix(p);
        }
        if let Some(jwt) = self.jwt.as_mut() {
            fix(&mut jwt.jwks_file);
        }
    }

    /// Checks everything that can be checked without reading files.
    pub fn validate(&self) -> Result<(), AuthError> {
        let mut names = HashSet::new();
        let mut digests = HashSet::new();
        for key in &self.api_keys {
            if !valid_key_name(&key.name) {
                return Err(config_error(format!(
                    "[[auth.api_keys]] name {:?} is not valid: use 1-{MAX_NAME_LEN} letters, \
                     digits, '-', '_', '.' or '@'",
                    key.name
                )));
            }
            if !names.insert(key.name.as_str()) {
                return Err(config_error(format!(
                    "[[auth.api_keys]] name {:?} is listed twice",
                    key.name
                )));
            }
            let digest = parse_sha256_hex(&key.sha256).ok_or_else(|| {
                config_error(format!(
                    "[[auth.api_keys]] {:?}: sha256 must be 64 hex digits (sha256 of the key)",
                    key.name
                ))
            })?;
            if !digests.insert(digest) {
                return Err(config_error(format!(
                    "[[auth.api_keys]] {:?}: the same key is configured twice",
                    key.name
                )));
            }
        }
        if let Some(jwt) = &self.jwt {
            jwt.validate()?;
        }
        if let Some(resource) = &self.resource {
            validate_url("[auth] resource", resource)?;
        }
        for scope in &self.required_scopes {
            if !valid_scope(scope) {
                return Err(config_error(format!(
                    "[auth] required_scopes: {scope:?} is not a valid scope token"
                )));
            }
        }
        Ok(())
    }
}

impl JwtConfig {
    fn validate(&self) -> Result<(), AuthError> {
        if self.issuer.trim().is_empty() {
            return Err(config_error("[auth.jwt] issuer must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(config_error("[auth.jwt] audience must not be empty"));
        }
        if self.algorithms.is_empty() {
            return Err(config_error(
                "[auth.jwt] algorithms must name at least one of RS256, ES256, EdDSA",
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(config_error(format!(
                "[auth.jwt] leeway_secs must be at most {MAX_LEEWAY_SECS}"
            )));
        }
        if self.groups_claim.as_deref().is_some_and(|c| c.is_empty()) {
            return Err(config_error("[auth.jwt] groups_claim must not be empty"));
        }
        if self.scopes_claim.is_empty() {
            return Err(config_error("[auth.jwt] scopes_claim must not be empty"));
        }
        for server in &self.authorization_servers {
            validate_url("[auth.jwt] authorization_servers", server)?;
        }
        Ok(())
    }

    pub(super) fn advertised_servers(&self) -> Vec<String> {
        if self.authorization_servers.is_empty() {
            vec![self.issuer.clone()]
        } else {
            self.authorization_servers.clone()
        }
    }
}

fn validate_url(what: &str, url: &str) -> Result<(), AuthError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(['#', '"', '\\', ' '])
        && !url.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(config_error(format!(
            "{what}: {url:?} must be an absolute http(s) URL without fragment"
        )))
    }
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// RFC 6749 scope-token: `%x21 / %x23-5B / %x5D-7E`.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

pub(super) fn config_error(msg: impl Into<String>) -> AuthError {
    AuthError::Config(msg.into())
}
