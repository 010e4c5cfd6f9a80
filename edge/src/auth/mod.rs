//! Authentication of MCP clients at the edge: the `[auth]` section of `edge.toml`.
//!
//! The edge is an OAuth 2.1 *resource server* (MCP authorization spec, RFC 9728, RFC 6750).
//! Every request is resolved to an [`Identity`] by [`Authenticator::authenticate`], in this
//! order:
//!
//! 1. an access token in the query string is refused outright ([`AuthError::TokenInQuery`],
//!    400): the MCP spec forbids it, and URLs end up in logs;
//! 2. `Authorization: Bearer <token>`: an API key (SHA-256 of the token compared in constant
//!    time with the configured digests) gives `apikey:<name>`; otherwise a JWT, verified against
//!    the configured JWKS file, gives `jwt:<sub>` plus `group:<g>` for each group claim entry.
//!    A bearer token that fails is an error ([`AuthError::InvalidToken`], 401): it never falls
//!    back to a weaker method;
//! 3. a verified client certificate (`client:<name>`, handed in by the TLS layer);
//! 4. `anonymous` when `[auth] anonymous = true` (development only), else
//!    [`AuthError::Missing`] (401).
//!
//! Tokens are never logged, never kept and never forwarded: backends receive an assertion
//! signed by the edge instead (see [`crate::assertion`]).
//!
//! The JWKS file is read at start; [`Authenticator::reload_jwks`] re-reads it on demand and
//! [`Authenticator::watch`] does so whenever its modification time changes or on SIGHUP. A
//! reload that fails keeps the previous keys.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::reload::Reloadable;

/// Path prefix of RFC 9728 protected resource metadata documents.
pub const PROTECTED_RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Largest bearer token considered at all (bigger ones are refused before any parsing).
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS file read.
const MAX_JWKS_FILE: u64 = 1024 * 1024;
/// Largest accepted clock-skew allowance.
const MAX_LEEWAY_SECS: u64 = 300;
/// Longest subject, group or API key name accepted into a principal.
const MAX_NAME_LEN: usize = 256;
/// Smallest RSA modulus accepted in the JWKS, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

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

    fn from_header(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(JwtAlgorithm::Rs256),
            "ES256" => Some(JwtAlgorithm::Es256),
            "EdDSA" => Some(JwtAlgorithm::EdDsa),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
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

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::EdDsa,
    ]
}

fn default_leeway() -> u64 {
    30
}

fn default_scopes_claim() -> String {
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

    fn advertised_servers(&self) -> Vec<String> {
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

fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn config_error(msg: impl Into<String>) -> AuthError {
    AuthError::Config(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Identities and errors
// ---------------------------------------------------------------------------------------------

pub use underpass_audit::AuthMethod;

/// Who a request comes from. Contains no credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `client:<name>`, `apikey:<name>`, `jwt:<sub>` or `anonymous`.
    pub principal: String,
    /// `group:<g>` for each group of a JWT caller (empty otherwise).
    pub groups: Vec<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// OAuth scopes granted to a JWT caller (empty otherwise).
    pub scopes: Vec<String>,
}

impl Identity {
    /// The principal `anonymous`.
    pub fn anonymous() -> Self {
        Identity {
            principal: "anonymous".to_owned(),
            groups: Vec::new(),
            method: AuthMethod::Anonymous,
            scopes: Vec::new(),
        }
    }

    /// Every name policy rules may match for this caller: the principal, then its groups.
    pub fn principals(&self) -> Vec<String> {
        let mut all = Vec::with_capacity(1 + self.groups.len());
        all.push(self.principal.clone());
        all.extend(self.groups.iter().cloned());
        all
    }
}

/// Why a request is not authenticated. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An access token (or API key) was sent in the query string (400 `invalid_request`).
    #[error("access token in the query string")]
    TokenInQuery,
    /// No credential at all and anonymous access is off (401, challenge without error code).
    #[error("no credential presented")]
    Missing,
    /// An `Authorization` scheme other than Bearer (401, challenge without error code, as
    /// RFC 6750 §3.1 asks for requests that use an unsupported authentication method).
    #[error("unsupported Authorization scheme")]
    UnsupportedScheme,
    /// A malformed `Authorization` header (400 `invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A bearer token that is not a known API key or a valid JWT (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A valid JWT that lacks required scopes (403 `insufficient_scope`).
    #[error("insufficient scope: requires {}", .required.join(" "))]
    InsufficientScope {
        /// The scopes the resource requires (all of them).
        required: Vec<String>,
    },
    /// The `[auth]` configuration or the JWKS file is unusable (500 if ever met per request).
    #[error("auth configuration: {0}")]
    Config(String),
}

impl AuthError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::TokenInQuery | AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::Missing | AuthError::UnsupportedScheme | AuthError::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 error code, if this error has one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::TokenInQuery | AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::Missing | AuthError::UnsupportedScheme | AuthError::Config(_) => None,
        }
    }

    /// A message safe to show the client (no credentials, no configuration details).
    pub fn message(&self) -> String {
        match self {
            AuthError::TokenInQuery => {
                "access tokens must be sent in the Authorization header, never in the query string"
                    .to_owned()
            }
            AuthError::Missing => "authentication required".to_owned(),
            AuthError::UnsupportedScheme => {
                "unsupported Authorization scheme: use Bearer".to_owned()
            }
            AuthError::InvalidRequest(reason) => format!("invalid request: {reason}"),
            AuthError::InvalidToken(reason) => format!("invalid token: {reason}"),
            AuthError::InsufficientScope { required } => format!(
                "insufficient scope: this resource requires {}",
                required.join(" ")
            ),
            AuthError::Config(_) => "authentication is unavailable".to_owned(),
        }
    }

    /// The `WWW-Authenticate` value for this error, e.g.
    /// `Bearer resource_metadata="https://edge/.well-known/oauth-protected-resource/mcp/x",
    /// error="invalid_token", error_description="token expired"`.
    ///
    /// [`Authenticator::challenge`] adds the configured required scopes to 401 challenges.
    pub fn www_authenticate(&self, resource_metadata_url: &str) -> String {
        self.challenge_with_scope(resource_metadata_url, None)
    }

    fn challenge_with_scope(&self, resource_metadata_url: &str, scope: Option<&str>) -> String {
        let mut out = format!(
            "Bearer resource_metadata=\"{}\"",
            quoted_string_safe(resource_metadata_url)
        );
        if let Some(code) = self.error_code() {
            out.push_str(&format!(", error=\"{code}\""));
        }
        let scope = match self {
            AuthError::InsufficientScope { required } => Some(required.join(" ")),
            _ => scope.filter(|s| !s.is_empty()).map(str::to_owned),
        };
        if let Some(scope) = scope {
            out.push_str(&format!(", scope=\"{}\"", quoted_string_safe(&scope)));
        }
        if self.error_code().is_some() {
            out.push_str(&format!(
                ", error_description=\"{}\"",
                quoted_string_safe(&self.message())
            ));
        }
        out
    }
}

/// Keeps only characters RFC 6750 allows inside its quoted parameters
/// (`%x20-21 / %x23-5B / %x5D-7E`).
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .filter(|&c| c == ' ' || c == '!' || (('#'..='~').contains(&c) && c != '\\'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------------

/// Resolves requests to identities. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Authenticator {
    anonymous: bool,
    api_keys: Vec<ApiKey>,
    jwt: Option<JwtVerifier>,
    resource: Option<String>,
    required_scopes: Vec<String>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no key material, not even digests.
        f.debug_struct("Authenticator")
            .field("anonymous", &self.anonymous)
            .field("api_keys", &self.api_keys.len())
            .field("jwt", &self.jwt.is_some())
            .field("resource", &self.resource)
            .field("required_scopes", &self.required_scopes)
            .finish()
    }
}

struct ApiKey {
    name: String,
    digest: [u8; 32],
}

struct JwtVerifier {
    config: JwtConfig,
    groups_claim: String,
    validations: Vec<(JwtAlgorithm, Validation)>,
    keys: Reloadable<KeySet>,
}

/// Usable verification keys by `kid`.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Vec<VerifyKey>>,
}

struct VerifyKey {
    alg: JwtAlgorithm,
    key: DecodingKey,
}

impl Authenticator {
    /// Builds the authenticator: validates `config` and reads the JWKS file (if JWTs are
    /// configured). Fails if the file is unreadable, or lists keys none of which is usable.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        config.validate()?;
        let api_keys = config
            .api_keys
            .iter()
            .map(|k| {
                parse_sha256_hex(&k.sha256)
                    .map(|digest| ApiKey {
                        name: k.name.clone(),
                        digest,
                    })
                    .ok_or_else(|| config_error("bad api key digest"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let jwt = match &config.jwt {
            Some(jwt) => Some(JwtVerifier::new(jwt)?),
            None => None,
        };
        Ok(Authenticator {
            anonymous: config.anonymous,
            api_keys,
            jwt,
            resource: config
                .resource
                .as_ref()
                .map(|r| r.trim_end_matches('/').to_owned()),
            required_scopes: config.required_scopes.clone(),
        })
    }

    /// Resolves one request to an identity; see the module documentation for the order.
    ///
    /// `cert_principal` is `client:<name>` when the TLS layer verified a client certificate;
    /// `query` is the raw query string of the request URI.
    pub fn authenticate(
        &self,
        cert_principal: Option<&str>,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, AuthError> {
        if query.is_some_and(query_carries_token) {
            return Err(AuthError::TokenInQuery);
        }
        let mut values = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(AuthError::InvalidRequest(
                    "more than one Authorization header".to_owned(),
                ));
            }
            let token = bearer_token(value)?;
            return self.authenticate_bearer(token);
        }
        if let Some(principal) = cert_principal {
            return Ok(Identity {
                principal: principal.to_owned(),
                groups: Vec::new(),
                method: AuthMethod::Cert,
                scopes: Vec::new(),
            });
        }
        if self.anonymous {
            return Ok(Identity::anonymous());
        }
        Err(AuthError::Missing)
    }

    fn authenticate_bearer(&self, token: &str) -> Result<Identity, AuthError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        // Compare with every key, without stopping early, in constant time per key.
        let mut matched: Option<&ApiKey> = None;
        for key in &self.api_keys {
            if constant_time_eq(&key.digest, digest.as_ref()) && matched.is_none() {
                matched = Some(key);
            }
        }
        if let Some(key) = matched {
            return Ok(Identity {
                principal: format!("apikey:{}", key.name),
                groups: Vec::new(),
                method: AuthMethod::ApiKey,
                scopes: Vec::new(),
            });
        }
        match &self.jwt {
            Some(jwt) if looks_like_jwt(token) => {
                let identity = jwt.verify(token)?;
                let missing: Vec<&String> = self
                    .required_scopes
                    .iter()
                    .filter(|s| !identity.scopes.contains(s))
                    .collect();
                if missing.is_empty() {
                    Ok(identity)
                } else {
                    Err(AuthError::InsufficientScope {
                        required: self.required_scopes.clone(),
                    })
                }
            }
            _ => Err(AuthError::InvalidToken("unrecognized token".to_owned())),
        }
    }

    /// Re-reads the JWKS file. On error the previous keys stay in force. Returns the number
    /// of usable keys now loaded (0 when JWTs are not configured).
    pub fn reload_jwks(&self) -> Result<usize, AuthError> {
        match &self.jwt {
            Some(jwt) => jwt.reload(),
            None => Ok(0),
        }
    }

    /// Reloads the JWKS file whenever its modification time changes (polled every second) and
    /// on SIGHUP; logs failures and keeps the previous keys. Returns at once when JWTs are not
    /// configured. Spawn it: `tokio::spawn(auth.clone().watch())`.
    pub async fn watch(self: Arc<Self>) {
        let Some(path) = self.jwt.as_ref().map(|j| j.config.jwks_file.clone()) else {
            return;
        };
        let shown = path.display().to_string();
        crate::reload::watch_file(path, |_| match self.reload_jwks() {
            Ok(n) => tracing::info!(path = %shown, keys = n, "JWKS reloaded"),
            Err(e) => tracing::error!("JWKS not reloaded, keeping the previous keys: {e}"),
        })
        .await
    }

    /// The scopes every JWT must carry.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// The `WWW-Authenticate` value for `err`: [`AuthError::www_authenticate`] plus, on 401
    /// answers, `scope="…"` with the required scopes when any are configured (the MCP spec
    /// asks servers to tell clients which scopes to request).
    pub fn challenge(&self, err: &AuthError, resource_metadata_url: &str) -> String {
        let scope = (err.status() == StatusCode::UNAUTHORIZED && !self.required_scopes.is_empty())
            .then(|| self.required_scopes.join(" "));
        err.challenge_with_scope(resource_metadata_url, scope.as_deref())
    }

    /// The RFC 9728 protected resource metadata for the resource at `resource_url` (e.g.
    /// `https://edge.example.com/mcp/everything`).
    ///
    /// `authorization_servers` is present when JWTs are configured (the MCP spec requires at
    /// least one for OAuth discovery); `scopes_supported` when required scopes are configured.
    pub fn protected_resource_metadata(&self, resource_url: &str) -> Value {
        let mut doc = Map::new();
        doc.insert("resource".to_owned(), json!(resource_url));
        if let Some(jwt) = &self.jwt {
            doc.insert(
                "authorization_servers".to_owned(),
                json!(jwt.config.advertised_servers()),
            );
        }
        if !self.required_scopes.is_empty() {
            doc.insert("scopes_supported".to_owned(), json!(self.required_scopes));
        }
        doc.insert("bearer_methods_supported".to_owned(), json!(["header"]));
        doc.insert("resource_name".to_owned(), json!("Underpass"));
        Value::Object(doc)
    }

    /// `<resource>/<mcp_path>` under the configured public base URL, e.g.
    /// `https://edge.example.com/mcp/everything` for `/mcp/everything`.
    pub fn resource_url(&self, mcp_path: &str) -> Option<String> {
        self.resource
            .as_deref()
            .map(|base| resource_url(base, mcp_path))
    }

    /// The RFC 9728 metadata URL for `mcp_path` under the configured public base URL, e.g.
    /// `https://edge.example.com/.well-known/oauth-protected-resource/mcp/everything`.
    pub fn resource_metadata_url(&self, mcp_path: &str) -> Option<String> {
        self.resource
            .as_deref()
            .map(|base| resource_metadata_url(base, mcp_path))
    }
}

/// `base` + `mcp_path` (`base` without trailing slash, `mcp_path` starting with `/`).
pub fn resource_url(base: &str, mcp_path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        mcp_path.trim_start_matches('/')
    )
}

/// RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
pub fn resource_metadata_url(base: &str, mcp_path: &str) -> String {
    let path = mcp_path.trim_start_matches('/');
    let base = base.trim_end_matches('/');
    if path.is_empty() {
        format!("{base}{PROTECTED_RESOURCE_WELL_KNOWN}")
    } else {
        format!("{base}{PROTECTED_RESOURCE_WELL_KNOWN}/{path}")
    }
}

/// Compares two byte strings without data-dependent branches.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether the query string carries something that looks like a credential.
fn query_carries_token(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        let name = percent_decode(name).to_ascii_lowercase();
        matches!(name.trim(), "access_token" | "token" | "api_key" | "apikey")
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Extracts the token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
    let value = value.to_str().map_err(|_| {
        AuthError::InvalidRequest("the Authorization header is not visible ASCII".to_owned())
    })?;
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest(
            "the Bearer credential is empty".to_owned(),
        ));
    }
    if token.contains([' ', '\t']) {
        return Err(AuthError::InvalidRequest(
            "the Bearer credential contains whitespace".to_owned(),
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::InvalidToken("token too large".to_owned()));
    }
    Ok(token)
}

/// Three dot-separated segments (the signature may be empty, so that unsigned tokens are
/// reported as such).
fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(_), Some(_), None) if !h.is_empty()
    )
}

// ---------------------------------------------------------------------------------------------
// JWT verification
// ---------------------------------------------------------------------------------------------

fn invalid(reason: &str) -> AuthError {
    AuthError::InvalidToken(reason.to_owned())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtVerifier {
    fn new(config: &JwtConfig) -> Result<Self, AuthError> {
        let mut algorithms = config.algorithms.clone();
        algorithms.dedup();
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg.jsonwebtoken());
                v.leeway = config.leeway_secs;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_issuer(&[config.issuer.as_str()]);
                v.set_audience(&[config.audience.as_str()]);
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (alg, v)
            })
            .collect();
        let keys = load_jwks(&config.jwks_file)?;
        Ok(JwtVerifier {
            groups_claim: config
                .groups_claim
                .clone()
                .unwrap_or_else(|| "groups".to_owned()),
            config: config.clone(),
            validations,
            keys: Reloadable::new(keys),
        })
    }

    fn reload(&self) -> Result<usize, AuthError> {
        let fresh = load_jwks(&self.config.jwks_file)?;
        let count = fresh.by_kid.values().map(Vec::len).sum();
        self.keys.set(fresh);
        Ok(count)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.get()
    }

    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header_b64 = token.split('.').next().unwrap_or_default();
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| invalid("malformed token header"))?;
        let header: Map<String, Value> =
            serde_json::from_slice(&header_json).map_err(|_| invalid("malformed token header"))?;

        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("token header has no alg"))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(invalid("unsigned tokens are not accepted"));
        }
        let (alg, validation) = JwtAlgorithm::from_header(alg_name)
            .and_then(|alg| self.validations.iter().find(|(a, _)| *a == alg))
            .ok_or_else(|| {
                AuthError::InvalidToken(format!(
                    "algorithm {} is not accepted",
                    printable(alg_name, 16)
                ))
            })?;
        if header.contains_key("crit") {
            return Err(invalid("token header has unsupported critical extensions"));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("token header has no key id (kid)"))?;

        let keys = self.current_keys();
        let candidates = keys
            .by_kid
            .get(kid)
            .ok_or_else(|| invalid("unknown key id (kid)"))?;
        let mut error: Option<AuthError> = None;
        for key in candidates.iter().filter(|k| k.alg == *alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.identity_from_claims(&data.claims),
                // Prefer a claim error (some key's signature was good) over a signature error.
                Err(e) => {
                    if error.is_none() || !matches!(e.kind(), JwtErrorKind::InvalidSignature) {
                        error = Some(map_jwt_error(e.kind()));
                    }
                }
            }
        }
        Err(error.unwrap_or_else(|| invalid("the key does not fit the token algorithm")))
    }

    fn identity_from_claims(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| valid_claim_name(s))
            .ok_or_else(|| invalid("token has no usable subject (sub)"))?;
        if let Some(iat) = claims.get("iat").and_then(Value::as_f64) {
            let limit = unix_now().saturating_add(self.config.leeway_secs);
            if iat > limit as f64 {
                return Err(invalid("token issued in the future"));
            }
        }
        let mut groups: Vec<String> = Vec::new();
        for g in string_list(lookup_claim(claims, &self.groups_claim), false) {
            let g = format!("group:{g}");
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let scopes = string_list(lookup_claim(claims, &self.config.scopes_claim), true);
        Ok(Identity {
            principal: format!("jwt:{sub}"),
            groups,
            method: AuthMethod::Jwt,
            scopes,
        })
    }
}

/// A claim by exact name, else by dotted path through nested objects.
fn lookup_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Strings of an array claim, or of a string claim (split on whitespace if `split`).
/// Unusable entries (non-strings, empty, control characters, too long) are dropped.
fn string_list(value: Option<&Value>, split: bool) -> Vec<String> {
    let raw: Vec<&str> = match value {
        Some(Value::String(s)) if split => s.split_whitespace().collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .filter(|s| valid_claim_name(s))
        .map(str::to_owned)
        .collect()
}

fn valid_claim_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && !s.chars().any(char::is_control)
}

/// At most `max` printable ASCII characters of `s` (for error messages).
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(max)
        .collect()
}

fn map_jwt_error(kind: &JwtErrorKind) -> AuthError {
    let reason = match kind {
        JwtErrorKind::ExpiredSignature => "token expired".to_owned(),
        JwtErrorKind::ImmatureSignature => "token not yet valid".to_owned(),
        JwtErrorKind::InvalidAudience => "token audience is not this resource".to_owned(),
        JwtErrorKind::InvalidIssuer => "token issuer is not trusted".to_owned(),
        JwtErrorKind::InvalidSignature => "bad signature".to_owned(),
        JwtErrorKind::MissingRequiredClaim(claim) => {
            format!("token has no usable {} claim", printable(claim, 8))
        }
        JwtErrorKind::InvalidAlgorithm => "the key does not fit the token algorithm".to_owned(),
        _ => "malformed token".to_owned(),
    };
    AuthError::InvalidToken(reason)
}

// ---------------------------------------------------------------------------------------------
// JWKS
// ---------------------------------------------------------------------------------------------

/// Reads a JWKS file. Keys that cannot be used for RS256, ES256 or EdDSA signatures (other
/// key types or curves, encryption keys, keys without `kid`, RSA keys under 2048 bits) are
/// skipped with a warning; a file whose keys are all unusable is an error (a broken rotation
/// must not silently distrust every token, nor be mistaken for one). An empty `keys` array is a
/// deliberate "no key is trusted": it loads, and every JWT is refused until keys come back.
fn load_jwks(path: &Path) -> Result<KeySet, AuthError> {
    let file_error = |e: &dyn fmt::Display| {
        config_error(format!("cannot read JWKS file {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| file_error(&e))?;
    if meta.len() > MAX_JWKS_FILE {
        return Err(file_error(&"file too large"));
    }
    let text = std::fs::read(path).map_err(|e| file_error(&e))?;
    let doc: Value = serde_json::from_slice(&text).map_err(|e| file_error(&e))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| file_error(&"no \"keys\" array"))?;
    let mut set = KeySet::default();
    for (i, jwk) in keys.iter().enumerate() {
        match parse_jwk(jwk) {
            Ok((kid, key)) => set.by_kid.entry(kid).or_default().push(key),
            Err(why) => tracing::warn!(
                path = %path.display(),
                index = i,
                "JWKS key skipped: {why}"
            ),
        }
    }
    if keys.is_empty() {
        tracing::warn!(
            path = %path.display(),
            "JWKS lists no keys: every JWT is refused until a key is added"
        );
    } else if set.by_kid.is_empty() {
        return Err(file_error(
            &"no usable key (RS256, ES256 or EdDSA signing keys with a kid)",
        ));
    }
    Ok(set)
}

fn parse_jwk(jwk: &Value) -> Result<(String, VerifyKey), String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let field = |name: &str| obj.get(name).and_then(Value::as_str);
    let kid = field("kid").ok_or("no kid")?.to_owned();
    if let Some(usage) = obj.get("use") {
        if usage.as_str() != Some("sig") {
            return Err(format!("kid {kid:?}: not a signing key"));
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err(format!("kid {kid:?}: key_ops does not allow verify"));
        }
    }
    if obj.contains_key("d") {
        tracing::warn!(kid = %kid, "JWKS key contains private key material; only its public part is used: publish public keys only");
    }
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let value = field(name).ok_or_else(|| format!("kid {kid:?}: no {name}"))?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| format!("kid {kid:?}: {name} is not base64url"))
    };
    let (alg, key) = match (field("kty"), field("crv")) {
        (Some("RSA"), _) => {
            let n = b64("n")?;
            let e = b64("e")?;
            let significant = n.iter().skip_while(|&&b| b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!("kid {kid:?}: RSA key shorter than 2048 bits"));
            }
            (
                JwtAlgorithm::Rs256,
                DecodingKey::from_rsa_raw_components(&n, &e),
            )
        }
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (b64("x")?, b64("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(format!("kid {kid:?}: bad P-256 coordinates"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (JwtAlgorithm::Es256, DecodingKey::from_ec_der(&point))
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = b64("x")?;
            if x.len() != 32 {
                return Err(format!("kid {kid:?}: bad Ed25519 key"));
            }
            (JwtAlgorithm::EdDsa, DecodingKey::from_ed_der(&x))
        }
        (kty, crv) => {
            return Err(format!(
                "kid {kid:?}: unsupported key type {} {}",
                kty.unwrap_or("?"),
                crv.unwrap_or("")
            ))
        }
    };
    if let Some(declared) = field("alg") {
        if declared != alg.as_str() {
            return Err(format!(
                "kid {kid:?}: alg {declared} is not supported for this key"
            ));
        }
    }
    Ok((kid, VerifyKey { alg, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// TEST-ONLY RSA key, PKCS#1 (generated with `openssl genrsa 2048` for these unit tests;
    /// it protects nothing).
    const TEST_ONLY_RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAwHYJz4VdQPi6f7WEcWK1h8aIF0PGfjgcmPIHhYyaq65Ubbvz
1x7IBnGsxR66ZO4QMBtcPRc40J3sFlVnFwCEjIa9ifr74XcpmLtY7mFta50zczjW
/WOoijFmG468ceDs2aNDABFVPBzvdLpRYAKdiBHqUYzYdCQMhJWcujos0b63d8IL
SPq2I2rhwWZ5/ytKA1+QnG9hD4Tyj1OIBDTbnPhb9MZ5aLW+CKAFElUFfhAXMXg6
yF3Ji3og40tLE9AgnBXDAQr8AeuBaiXbSpQqu2eTYE65ThSGVWrlN/U0cORbXCAq
X02RhjiWQzFr1YX9fcZki82NAMEzDivhwXygkQIDAQABAoIBACfX5/UJv4IFXBq3
Odl9XWZj7+WdFtknhagWJv97WcPj/b+P8w2cZj2LSACw+VaOwFQtPd250n3By8/d
0088QLSU6mVHy+Bj2n0vf9wt2Ei4jR+z6zIe8RPW4TQgSxvqPC5cMbEwZWxh8yK/
tbwCHpm+V7uVRHRayCqkjIMzKvcqv5AdBFM8Nq2GCebxuvC8iq+jEfgs4cHnBmCK
Bf3RyHVP1++Qqo5IouK8eTuAYXbhKuWErUTNrOsQQN6IROZxzgKfvXG+bbhadJSP
EmktGkUt9G1K7kq+HQb8fGrYnh13EZ3C7gpE2djlUwryvnDtZpUlDyPODmdXxw6j
+2LQmwkCgYEA9brvwrNiV+U+P81knncr9TU5DIENi/5/bIFIDDp8CGnNeM3lSzy5
hEqw4W1FxjeaYluSTcCG2/HDohL8gp/4gjWmqMXm+kH+tAND1hWXR98EvISY9aY7
3qXaJwcxRxZlg5IvoexQZL+y4pPTvtSg/6CPCmFGKAJDKe8bccVane0CgYEAyIEt
G9n+QqSeEA+xyAMkzkmaXgtYvSeS3Ps8FqohdxJxkuyaGZi2SStf8iS2i+LoDfBo
PJJYgRK0ZI149KXxqvCOl8h6e36BEr5pWyiGXSvgFlFz8IM0ikSK1sBMW4HGxys0
2cAUKgQYxkZgIXxWA7ZpBLtJBTWffdgbp4J32LUCgYBT8JaESOi4I6v++Xd8ljLi
4Vpqhg8NmlMGyqbE3pmN+i5hLNw9tjGdGjKP3tbt3gKTxLoWa0TmDxEH5TpymJi4
SgFzN58uL6sE7PSYRenWeD1S9GyXxUBATyFVIaTYprLoneA9jM7ti3pc4ah8UH/q
snsKTa48boFo6q/STlslBQKBgEDtQ5QvRRyDfgOpcWJZUkPSpcAqYHPwKqiQWmbk
dK3ANTLklwoO34hWGV2p8crekVJiNP7YTPyO+AdPoIloaxd1ilcwPilbT6SoMCmq
t8fX+1p+ydJqSksz4tmjr5Y6MgowvY59mon4haU/CMYPIzNUkDFODFk5ggoYPuxB
XVm5AoGBAKciHii/dATeZyysPlYB9++kN4YGxJj3tvYrT6iZNnauchPjqgBGdmof
TwznRQPNNOD6pfpUS7UzPHdeb6oIJneRe+tDLDJDDXKJ7BvrfnHoNOiiVWkt8fJW
+25lE8J8FECoJaeAMDA2wyoYPph7io+jr29anYbL9Axs1JffzJS7
-----END RSA PRIVATE KEY-----
";

    const ISSUER: &str = "https://idp.example.com";
    const AUDIENCE: &str = "https://edge.example.com/mcp";
    const API_KEY: &str = "s3cret-api-key-for-tests";

    struct Keys {
        rsa: EncodingKey,
        ec: EncodingKey,
        ed: EncodingKey,
        jwks: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keys() -> Keys {
        let rng = SystemRandom::new();
        // RSA
        let pem_body: String = TEST_ONLY_RSA_KEY
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(pem_body)
            .expect("test key");
        let rsa_pair = RsaKeyPair::from_der(&der).expect("test key");
        let comps: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa_pair.public().into();
        // EC
        let ec_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_doc.as_ref(), &rng)
                .unwrap();
        let point = ec_pair.public_key().as_ref();
        // Ed25519
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pair = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref()).unwrap();
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
             "n": b64(&comps.n), "e": b64(&comps.e)},
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "alg": "EdDSA",
             "x": b64(ed_pair.public_key().as_ref())},
            // Skipped: a symmetric key must never become a verification key.
            {"kty": "oct", "kid": "hmac", "k": b64(b"shared-secret")},
            // Skipped: encryption key.
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        ]});
        Keys {
            rsa: EncodingKey::from_rsa_der(&der),
            ec: EncodingKey::from_ec_der(ec_doc.as_ref()),
            ed: EncodingKey::from_ed_der(ed_doc.as_ref()),
            jwks,
        }
    }

    /// A JWKS fixture under `target/` (not the system temp dir): names are reused run after
    /// run, so repeated test runs leave nothing growing behind.
    fn temp_file(contents: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/unit-test-files");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "auth-jwks-{}.json",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn sha256_hex(s: &str) -> String {
        ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn config(keys: &Keys) -> AuthConfig {
        AuthConfig {
            anonymous: false,
            client_ca: None,
            api_keys: vec![ApiKeyConfig {
                name: "ci-bot".to_owned(),
                sha256: sha256_hex(API_KEY),
            }],
            jwt: Some(JwtConfig {
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                jwks_file: temp_file(&keys.jwks.to_string()),
                groups_claim: None,
                algorithms: default_algorithms(),
                leeway_secs: 30,
                authorization_servers: Vec::new(),
                scopes_claim: default_scopes_claim(),
            }),
            resource: Some("https://edge.example.com/".to_owned()),
            required_scopes: Vec::new(),
        }
    }

    fn claims() -> Value {
        let now = unix_now();
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
            "iat": now, "nbf": now, "exp": now + 300,
            "groups": ["eng", "ops"], "scope": "mcp:read mcp:write",
        })
    }

    fn token(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn reason(err: AuthError) -> String {
        match err {
            AuthError::InvalidToken(r) => r,
            other => panic!("expected invalid_token, got {other:?}"),
        }
    }

    struct Fixture {
        keys: Keys,
        auth: Authenticator,
    }

    fn fixture() -> Fixture {
        let keys = keys();
        let auth = Authenticator::new(&config(&keys)).unwrap();
        Fixture { keys, auth }
    }

    impl Fixture {
        fn check(&self, token: &str) -> Result<Identity, AuthError> {
            self.auth.authenticate(None, &bearer(token), None)
        }
    }

    #[test]
    fn api_key_ok_and_wrong() {
        let f = fixture();
        let id = f.check(API_KEY).unwrap();
        assert_eq!(id.principal, "apikey:ci-bot");
        assert_eq!(id.method, AuthMethod::ApiKey);
        assert_eq!(id.method.to_string(), "apikey");
        let err = f.check("not-the-key").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(reason(err), "unrecognized token");
        // The scheme is case-insensitive.
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {API_KEY}")).unwrap(),
        );
        assert!(f.auth.authenticate(None, &h, None).is_ok());
    }

    #[test]
    fn jwt_ok_for_every_algorithm() {
        let f = fixture();
        for (alg, kid, key) in [
            (Algorithm::RS256, "rsa1", &f.keys.rsa),
            (Algorithm::ES256, "ec1", &f.keys.ec),
            (Algorithm::EdDSA, "ed1", &f.keys.ed),
        ] {
            let id = f.check(&token(alg, Some(kid), &claims(), key)).unwrap();
            assert_eq!(id.principal, "jwt:alice");
            assert_eq!(id.groups, ["group:eng", "group:ops"]);
            assert_eq!(id.method, AuthMethod::Jwt);
            assert_eq!(id.scopes, ["mcp:read", "mcp:write"]);
            assert_eq!(id.principals(), ["jwt:alice", "group:eng", "group:ops"]);
        }
    }

    #[test]
    fn jwt_time_checks() {
        let f = fixture();
        let now = unix_now();
        let mut c = claims();
        c["exp"] = json!(now - 120);
        c["iat"] = json!(now - 600);
        c["nbf"] = json!(now - 600);
        let t = token(Algorithm::ES256, Some("ec1"), &c, &f.keys.ec);
        assert_eq!(reason(f.check(&t).unwrap_err()), "token expired");

        let mut c = claims();
        c["nbf"] = json!(now + 600);
        let t = token(Algorithm::ES256, Some("ec1"), &c, &f.keys.ec);
        assert_eq!(reason(f.check(&t).unwrap_err()), "token not yet valid");

        // Within the leeway both are fine.
        let mut c = claims();
        c["exp"] = json!(now - 5);
        c["nbf"] = json!(now + 5);
        let t = token(Algorithm::ES256, Some("ec1"), &c, &f.keys.ec);
        assert!(f.check(&t).is_ok());

        let mut c = claims();
        c["iat"] = json!(now + 600);
        let t = token(Algorithm::ES256, Some("ec1"), &c, &f.keys.ec);
        assert_eq!(
            reason(f.check(&t).unwrap_err()),
            "token issued in the future"
        );

        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        let t = token(Algorithm::ES256, Some("ec1"), &c, &f.keys.ec);
        assert!(reason(f.check(&t).unwrap_err()).contains("exp"));
    }

    #[test]
    fn jwt_wrong_audience_issuer_subject() {
        let f = fixture();
        let mut c = claims();
        c["aud"] = json!("https://other.example.com/mcp");
        let t = token(Algorithm::RS256, Some("rsa1"), &c, &f.keys.rsa);
        assert_eq!(
            reason(f.check(&t).unwrap_err()),
            "token audience is not this resource"
        );

        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        let t = token(Algorithm::RS256, Some("rsa1"), &c, &f.keys.rsa);
        assert!(reason(f.check(&t).unwrap_err()).contains("aud"));

        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        let t = token(Algorithm::RS256, Some("rsa1"), &c, &f.keys.rsa);
        assert_eq!(
            reason(f.check(&t).unwrap_err()),
            "token issuer is not trusted"
        );

        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        let t = token(Algorithm::RS256, Some("rsa1"), &c, &f.keys.rsa);
        assert!(reason(f.check(&t).unwrap_err()).contains("sub"));
    }

    #[test]
    fn jwt_bad_signature() {
        let f = fixture();
        // Signed by a key the JWKS does not hold, under a kid it does.
        let rng = SystemRandom::new();
        let other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let t = token(
            Algorithm::ES256,
            Some("ec1"),
            &claims(),
            &EncodingKey::from_ec_der(other.as_ref()),
        );
        assert_eq!(reason(f.check(&t).unwrap_err()), "bad signature");

        // A tampered payload.
        let good = token(Algorithm::EdDSA, Some("ed1"), &claims(), &f.keys.ed);
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged = b64(c.to_string().as_bytes());
        parts[1] = &forged;
        assert_eq!(
            reason(f.check(&parts.join(".")).unwrap_err()),
            "bad signature"
        );
    }

    #[test]
    fn jwt_alg_none_and_hmac_refused() {
        let f = fixture();
        let header = b64(br#"{"alg":"none","typ":"JWT","kid":"ec1"}"#);
        let payload = b64(claims().to_string().as_bytes());
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            reason(f.check(&unsigned).unwrap_err()),
            "unsigned tokens are not accepted"
        );

        let hs = token(
            Algorithm::HS256,
            Some("hmac"),
            &claims(),
            &EncodingKey::from_secret(b"shared-secret"),
        );
        assert_eq!(
            reason(f.check(&hs).unwrap_err()),
            "algorithm HS256 is not accepted"
        );
    }

    #[test]
    fn jwt_kid_rules() {
        let f = fixture();
        let t = token(Algorithm::ES256, Some("nope"), &claims(), &f.keys.ec);
        assert_eq!(reason(f.check(&t).unwrap_err()), "unknown key id (kid)");
        let t = token(Algorithm::ES256, None, &claims(), &f.keys.ec);
        assert_eq!(
            reason(f.check(&t).unwrap_err()),
            "token header has no key id (kid)"
        );
        // The key behind the kid must fit the algorithm.
        let t = token(Algorithm::ES256, Some("rsa1"), &claims(), &f.keys.ec);
        assert_eq!(
            reason(f.check(&t).unwrap_err()),
            "the key does not fit the token algorithm"
        );
        // Encryption keys were skipped at load.
        let t = token(Algorithm::ES256, Some("enc"), &claims(), &f.keys.ec);
        assert_eq!(reason(f.check(&t).unwrap_err()), "unknown key id (kid)");
    }

    #[test]
    fn jwt_algorithm_allowlist_is_configurable() {
        let keys = keys();
        let mut cfg = config(&keys);
        if let Some(jwt) = cfg.jwt.as_mut() {
            jwt.algorithms = vec![JwtAlgorithm::Es256];
        }
        let auth = Authenticator::new(&cfg).unwrap();
        let rs = token(Algorithm::RS256, Some("rsa1"), &claims(), &keys.rsa);
        let err = auth.authenticate(None, &bearer(&rs), None).unwrap_err();
        assert_eq!(reason(err), "algorithm RS256 is not accepted");
        let es = token(Algorithm::ES256, Some("ec1"), &claims(), &keys.ec);
        assert!(auth.authenticate(None, &bearer(&es), None).is_ok());
        // Unknown algorithm names are configuration errors.
        assert!(toml::from_str::<JwtConfig>(
            "issuer = \"a\"\naudience = \"b\"\njwks_file = \"j\"\nalgorithms = [\"HS256\"]"
        )
        .is_err());
    }

    #[test]
    fn token_in_query_refused() {
        let f = fixture();
        for q in [
            "access_token=abc",
            "x=1&token=abc",
            "api_key=abc",
            "APIKEY=abc",
            "access%5Ftoken=abc",
        ] {
            let err = f
                .auth
                .authenticate(None, &bearer(API_KEY), Some(q))
                .unwrap_err();
            assert!(matches!(err, AuthError::TokenInQuery), "{q}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err
                .www_authenticate("u")
                .contains("error=\"invalid_request\""));
        }
        assert!(f
            .auth
            .authenticate(None, &bearer(API_KEY), Some("sessionId=abc&tokens=1"))
            .is_ok());
    }

    #[test]
    fn no_credential_anonymous_and_cert() {
        let keys = keys();
        let mut cfg = config(&keys);
        let auth = Authenticator::new(&cfg).unwrap();
        let err = auth
            .authenticate(None, &HeaderMap::new(), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::Missing));
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);

        let id = auth
            .authenticate(Some("client:alice"), &HeaderMap::new(), None)
            .unwrap();
        assert_eq!(id.principal, "client:alice");
        assert_eq!(id.method, AuthMethod::Cert);
        assert_eq!(id.principals(), ["client:alice"]);

        cfg.anonymous = true;
        let auth = Authenticator::new(&cfg).unwrap();
        let id = auth.authenticate(None, &HeaderMap::new(), None).unwrap();
        assert_eq!(id, Identity::anonymous());
        assert_eq!(id.method.to_string(), "anonymous");
        // A bad bearer never falls back to anonymous or to the certificate.
        let err = auth
            .authenticate(Some("client:alice"), &bearer("wrong"), None)
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn malformed_authorization() {
        let f = fixture();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWxhZGRpbjpvcGVu"),
        );
        let err = f.auth.authenticate(None, &h, None).unwrap_err();
        assert!(matches!(err, AuthError::UnsupportedScheme));
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert!(!err.www_authenticate("u").contains("error="));

        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
        let err = f.auth.authenticate(None, &h, None).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);

        let mut h = bearer(API_KEY);
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        let err = f.auth.authenticate(None, &h, None).unwrap_err();
        assert!(matches!(err, AuthError::InvalidRequest(_)));
    }

    #[test]
    fn insufficient_scope() {
        let keys = keys();
        let mut cfg = config(&keys);
        cfg.required_scopes = vec!["mcp:read".to_owned(), "mcp:admin".to_owned()];
        let auth = Authenticator::new(&cfg).unwrap();
        let t = token(Algorithm::ES256, Some("ec1"), &claims(), &keys.ec);
        let err = auth.authenticate(None, &bearer(&t), None).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        let challenge = err.www_authenticate("https://edge/.well-known/oauth-protected-resource");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("scope=\"mcp:read mcp:admin\""),
            "{challenge}"
        );

        // The `scp` array form.
        if let Some(jwt) = cfg.jwt.as_mut() {
            jwt.scopes_claim = "scp".to_owned();
        }
        let auth = Authenticator::new(&cfg).unwrap();
        let mut c = claims();
        c["scp"] = json!(["mcp:read", "mcp:admin"]);
        let t = token(Algorithm::ES256, Some("ec1"), &c, &keys.ec);
        let id = auth.authenticate(None, &bearer(&t), None).unwrap();
        assert_eq!(id.scopes, ["mcp:read", "mcp:admin"]);
        // API keys carry no scopes and are not subject to them.
        assert!(auth.authenticate(None, &bearer(API_KEY), None).is_ok());
        // 401 challenges advertise the required scopes.
        let challenge = auth.challenge(&AuthError::Missing, "https://m");
        assert_eq!(
            challenge,
            "Bearer resource_metadata=\"https://m\", scope=\"mcp:read mcp:admin\""
        );
    }

    #[test]
    fn nested_groups_claim() {
        let keys = keys();
        let mut cfg = config(&keys);
        if let Some(jwt) = cfg.jwt.as_mut() {
            jwt.groups_claim = Some("realm_access.roles".to_owned());
        }
        let auth = Authenticator::new(&cfg).unwrap();
        let mut c = claims();
        c["realm_access"] = json!({"roles": ["admin", "admin", "", 7]});
        let t = token(Algorithm::ES256, Some("ec1"), &c, &keys.ec);
        let id = auth.authenticate(None, &bearer(&t), None).unwrap();
        assert_eq!(id.groups, ["group:admin"]);
    }

    #[test]
    fn www_authenticate_formatting() {
        let url = "https://edge/.well-known/oauth-protected-resource/mcp/everything";
        assert_eq!(
            AuthError::Missing.www_authenticate(url),
            format!("Bearer resource_metadata=\"{url}\"")
        );
        assert_eq!(
            AuthError::InvalidToken("token expired".to_owned()).www_authenticate(url),
            format!(
                "Bearer resource_metadata=\"{url}\", error=\"invalid_token\", \
                 error_description=\"invalid token: token expired\""
            )
        );
        // Quotes and backslashes cannot break out of the quoted strings.
        let evil = AuthError::InvalidToken("a\"b\\c".to_owned()).www_authenticate("x\"y");
        assert_eq!(
            evil,
            "Bearer resource_metadata=\"xy\", error=\"invalid_token\", \
             error_description=\"invalid token: abc\""
        );
        assert_eq!(
            AuthError::Config("secret path".into()).message(),
            "authentication is unavailable"
        );
    }

    #[test]
    fn metadata_and_urls() {
        let f = fixture();
        let url = f.auth.resource_url("/mcp/everything").unwrap();
        assert_eq!(url, "https://edge.example.com/mcp/everything");
        assert_eq!(
            f.auth.resource_metadata_url("/mcp/everything").unwrap(),
            "https://edge.example.com/.well-known/oauth-protected-resource/mcp/everything"
        );
        let doc = f.auth.protected_resource_metadata(&url);
        assert_eq!(doc["resource"], url);
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc.get("scopes_supported").is_none());
    }

    #[test]
    fn config_validation_and_reload() {
        let keys = keys();
        let mut cfg = config(&keys);
        cfg.api_keys[0].sha256 = "zz".to_owned();
        assert!(Authenticator::new(&cfg).is_err());

        let cfg = config(&keys);
        let auth = Authenticator::new(&cfg).unwrap();
        let path = cfg.jwt.as_ref().unwrap().jwks_file.clone();
        // A broken file keeps the previous keys.
        std::fs::write(&path, "{not json").unwrap();
        assert!(auth.reload_jwks().is_err());
        let t = token(Algorithm::ES256, Some("ec1"), &claims(), &keys.ec);
        assert!(auth.authenticate(None, &bearer(&t), None).is_ok());
        // A rotated file drops the old keys.
        std::fs::write(&path, json!({"keys": [keys.jwks["keys"][0]]}).to_string()).unwrap();
        assert_eq!(auth.reload_jwks().unwrap(), 1);
        assert!(auth.authenticate(None, &bearer(&t), None).is_err());
        // Every key unusable (here: not signing keys) is a broken file: the last keys stay.
        let t0 = token(Algorithm::RS256, Some("rsa1"), &claims(), &keys.rsa);
        assert!(auth.authenticate(None, &bearer(&t0), None).is_ok());
        let mut unusable = keys.jwks["keys"][0].clone();
        unusable["use"] = json!("enc");
        std::fs::write(&path, json!({ "keys": [unusable] }).to_string()).unwrap();
        assert!(auth.reload_jwks().is_err());
        assert!(auth.authenticate(None, &bearer(&t0), None).is_ok());
        // An emptied JWKS is a deliberate "trust no key", and takes effect.
        std::fs::write(&path, r#"{"keys": []}"#).unwrap();
        assert_eq!(auth.reload_jwks().unwrap(), 0);
        assert!(auth.authenticate(None, &bearer(&t0), None).is_err());
        let _ = std::fs::remove_file(path);

        assert!(toml::from_str::<AuthConfig>("bogus = 1").is_err());
    }
}
