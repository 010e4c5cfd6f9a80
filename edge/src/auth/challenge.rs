//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1).

use crate::auth::error::AuthError;

impl AuthError {
    /// The `WWW-Authenticate` value for this error, e.g.
    /// `Bearer resource_metadata="https://edge/.well-known/oauth-protected-resource/mcp/x",
    /// error="invalid_token", error_description="token expired"`.
    ///
    /// [`Authenticator::challenge`] adds the configured required scopes to 401 challenges.
    pub fn www_authenticate(&self, resource_metadata_url: &str) -> String {
        self.challenge_with_scope(resource_metadata_url, None)
    }

    pub(super) fn challenge_with_scope(
        &self,
        resource_metadata_url: &str,
        scope: Option<&str>,
    ) -> String {
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
