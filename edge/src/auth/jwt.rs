//! Bearer JWTs: header pre-checks, signature and claims (jsonwebtoken), and the identity
//! they give.
//!
//! The JWS header is read by hand before `jsonwebtoken::decode` on purpose: jsonwebtoken 9's
//! `Header` has no `crit` field, so it would silently accept critical extensions; this
//! pre-check refuses them, refuses `none` and applies the algorithm allow-list.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use crate::auth::config::{JwtAlgorithm, JwtConfig};
use crate::auth::error::AuthError;
use crate::auth::identity::{AuthMethod, Identity, MAX_NAME_LEN};
use crate::auth::jwks::{load_jwks, KeySet};
use crate::reload::Reloadable;

pub(super) struct JwtVerifier {
    pub(super) config: JwtConfig,
    groups_claim: String,
    validations: Vec<(JwtAlgorithm, Validation)>,
    keys: Reloadable<KeySet>,
}

fn invalid(reason: &str) -> AuthError {
    AuthError::InvalidToken(reason.to_owned())
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtVerifier {
    pub(super) fn new(config: &JwtConfig) -> Result<Self, AuthError> {
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

    pub(super) fn reload(&self) -> Result<usize, AuthError> {
        let fresh = load_jwks(&self.config.jwks_file)?;
        let count = fresh.by_kid.values().map(Vec::len).sum();
        self.keys.set(fresh);
        Ok(count)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.get()
    }

    pub(super) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
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
