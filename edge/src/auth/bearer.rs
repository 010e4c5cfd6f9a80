//! Where a credential is in a request: `Authorization: Bearer`, and never the query string.

use http::HeaderValue;
use percent_encoding::percent_decode_str;

use crate::auth::error::AuthError;

/// Largest bearer token considered at all (bigger ones are refused before any parsing).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Whether the query string carries something that looks like a credential.
pub(super) fn query_carries_token(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        // Form encoding: `+` is a space, then percent-escapes.
        let name = name.replace('+', " ");
        let name = percent_decode_str(&name)
            .decode_utf8_lossy()
            .to_ascii_lowercase();
        matches!(name.trim(), "access_token" | "token" | "api_key" | "apikey")
    })
}

/// Extracts the token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub(super) fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
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
pub(super) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(_), Some(_), None) if !h.is_empty()
    )
}
