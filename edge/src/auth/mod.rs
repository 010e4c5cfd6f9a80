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

mod api_key;
mod bearer;
mod challenge;
mod config;
mod error;
mod identity;
mod jwks;
mod jwt;
mod metadata;

use std::fmt;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

pub use config::{ApiKeyConfig, AuthConfig, JwtAlgorithm, JwtConfig};
pub use error::AuthError;
pub use identity::{AuthMethod, Identity};
pub use metadata::PROTECTED_RESOURCE_WELL_KNOWN;
pub use metadata::{resource_metadata_url, resource_url};

/// Entry points for the fuzz targets in `fuzz/` (not part of the API).
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    /// Reads a JWKS document from bytes, as from a `jwks_file`: the number of usable keys, or
    /// why the document is refused.
    pub fn jwks_key_count(text: &[u8]) -> Result<usize, String> {
        super::jwks::parse_jwks(text, Path::new("fuzz.jwks"))
            .map(|set| set.by_kid.values().map(Vec::len).sum())
    }
}

use api_key::{parse_sha256_hex, ApiKey};
use bearer::{bearer_token, looks_like_jwt, query_carries_token};
use config::config_error;
use jwt::JwtVerifier;

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
        if let Some(key) = api_key::matching(&self.api_keys, token) {
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
        metadata::document(
            resource_url,
            self.jwt.as_ref().map(|j| &j.config),
            &self.required_scopes,
        )
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

#[cfg(test)]
mod tests;
