//! Why a request is not authenticated, and how each reason is answered.

use http::StatusCode;

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
}
