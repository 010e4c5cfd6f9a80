//! The issuer's JSON Web Key Set: which keys verify JWTs, read from `jwks_file` (and
//! reloaded through [`crate::reload`] by the authenticator).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::auth::config::{config_error, JwtAlgorithm};
use crate::auth::error::AuthError;

/// Largest JWKS file read.
const MAX_JWKS_FILE: u64 = 1024 * 1024;
/// Smallest RSA modulus accepted in the JWKS, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Usable verification keys by `kid`.
#[derive(Default)]
pub(super) struct KeySet {
    pub(super) by_kid: HashMap<String, Vec<VerifyKey>>,
}

pub(super) struct VerifyKey {
    pub(super) alg: JwtAlgorithm,
    pub(super) key: DecodingKey,
}

/// Reads a JWKS file. Keys that cannot be used for RS256, ES256 or EdDSA signatures (other
/// key types or curves, encryption keys, keys without `kid`, RSA keys under 2048 bits) are
/// skipped with a warning; a file whose keys are all unusable is an error (a broken rotation
/// must not silently distrust every token, nor be mistaken for one). An empty `keys` array is a
/// deliberate "no key is trusted": it loads, and every JWT is refused until keys come back.
pub(super) fn load_jwks(path: &Path) -> Result<KeySet, AuthError> {
    let file_error = |e: &dyn fmt::Display| {
        config_error(format!("cannot read JWKS file {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| file_error(&e))?;
    if meta.len() > MAX_JWKS_FILE {
        return Err(file_error(&"file too large"));
    }
    let text = std::fs::read(path).map_err(|e| file_error(&e))?;
    parse_jwks(&text, path).map_err(|e| file_error(&e))
}

/// The usable keys of a JWKS document (the contents of `path`, named in log lines); see
/// [`load_jwks`] for what is skipped and what is an error.
pub(super) fn parse_jwks(text: &[u8], path: &Path) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
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
        return Err("no usable key (RS256, ES256 or EdDSA signing keys with a kid)".to_owned());
    }
    Ok(set)
}

/// One key of the set, decoded by `jsonwebtoken::jwk`, under the edge's own rules: a `kid`
/// is required; `use`, if present, must be `sig` and `key_ops`, if present, must allow
/// `verify`; only RSA (at least 2048 bits), EC P-256 and Ed25519 keys, never symmetric ones;
/// a declared `alg` must be the one the key type implies.
fn parse_jwk(raw: &Value) -> Result<(String, VerifyKey), String> {
    let obj = raw.as_object().ok_or("not a JSON object")?;
    let kid = obj
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("no kid")?
        .to_owned();
    if obj.contains_key("d") {
        tracing::warn!(kid = %kid, "JWKS key contains private key material; only its public part is used: publish public keys only");
    }
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("kid {kid:?}: {e}"))?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(format!("kid {kid:?}: not a signing key"));
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(format!("kid {kid:?}: key_ops does not allow verify"));
    }
    // Sizes are checked on the decoded bytes; the key itself is built by jsonwebtoken.
    let decoded_len = |name: &str, value: &str| -> Result<usize, String> {
        URL_SAFE_NO_PAD
            .decode(value)
            .map(|b| b.len())
            .map_err(|_| format!("kid {kid:?}: {name} is not base64url"))
    };
    let bad_key = |e: jsonwebtoken::errors::Error| format!("kid {kid:?}: unusable key: {e}");
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| format!("kid {kid:?}: n is not base64url"))?;
            decoded_len("e", &rsa.e)?;
            let significant = n.iter().skip_while(|&&b| b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!("kid {kid:?}: RSA key shorter than 2048 bits"));
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).map_err(bad_key)?;
            (JwtAlgorithm::Rs256, key)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            if decoded_len("x", &ec.x)? != 32 || decoded_len("y", &ec.y)? != 32 {
                return Err(format!("kid {kid:?}: bad P-256 coordinates"));
            }
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y).map_err(bad_key)?;
            (JwtAlgorithm::Es256, key)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            if decoded_len("x", &okp.x)? != 32 {
                return Err(format!("kid {kid:?}: bad Ed25519 key"));
            }
            let key = DecodingKey::from_ed_components(&okp.x).map_err(bad_key)?;
            (JwtAlgorithm::EdDsa, key)
        }
        AlgorithmParameters::OctetKey(_) => {
            // A symmetric key must never become a verification key.
            return Err(format!("kid {kid:?}: unsupported key type oct"));
        }
        other => {
            return Err(format!(
                "kid {kid:?}: unsupported key type {}",
                match other {
                    AlgorithmParameters::RSA(_) => "RSA",
                    AlgorithmParameters::EllipticCurve(_) => "EC",
                    AlgorithmParameters::OctetKeyPair(_) => "OKP",
                    AlgorithmParameters::OctetKey(_) => "oct",
                }
            ))
        }
    };
    if let Some(declared) = obj.get("alg").and_then(Value::as_str) {
        if declared != alg.as_str() {
            return Err(format!(
                "kid {kid:?}: alg {declared} is not supported for this key"
            ));
        }
    }
    Ok((kid, VerifyKey { alg, key }))
}
