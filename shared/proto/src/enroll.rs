//! Enrollment, free of crypto and I/O: the one-time join token's wire form and the messages a
//! connector and an edge exchange on the enrollment endpoint (ALPN [`ALPN`]).
//!
//! **Token.** `upt1.<base64url(payload)>.<base64url(signature)>` (URL-safe alphabet, no
//! padding). The payload is MessagePack (named fields) of [`TokenClaims`]; the signature is
//! made over the payload bytes exactly as sent (no canonical form) with the issuer key, and is
//! checked by `underpass_pki::token::verify`. This module only splits and decodes: a decoded
//! [`Token`] is *not* trusted.
//!
//! **Messages.** One [`EnrollRequest`] frame from the connector, one [`EnrollAnswer`] frame from
//! the edge, both in the length-prefixed MessagePack framing of [`crate::frame`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::identity::{validate_name, validate_trust_domain};

/// ALPN of the enrollment endpoint (served on the edge's TCP tunnel port).
pub const ALPN: &[u8] = b"underpass-enroll/1";
/// Every token starts with this (the `1` is the format version).
pub const TOKEN_PREFIX: &str = "upt1.";
/// Longest token accepted, in characters: far above a real one (a few hundred), small enough
/// that a hostile one costs nothing to refuse.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Most edge addresses one token may name.
pub const MAX_EDGES: usize = 8;
/// Most services one token may suggest.
pub const MAX_SERVICES: usize = 64;
/// Largest [`EnrollRequest`] frame an edge reads (the length prefix is checked before the body).
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// Largest [`EnrollAnswer`] frame a connector reads.
pub const MAX_ANSWER_LEN: usize = 64 * 1024;

/// What a token says. Signed by the issuer; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Random; the single-use key the edge burns on redemption.
    pub id: [u8; 16],
    /// Trust domain of the CA and issuer.
    pub trust_domain: String,
    /// The only connector name this token enrolls.
    pub connector: String,
    /// `HOST:PORT` of edges serving enrollment (their TCP tunnel port), tried in order.
    pub edges: Vec<String>,
    /// Name to verify the edge certificate against when the edge's HOST is not in it.
    #[serde(default)]
    pub server_name: Option<String>,
    /// SHA-256 of the root CA certificate (DER): the connector trusts only an edge chaining to it.
    pub ca_sha256: [u8; 32],
    /// First 8 bytes of SHA-256 of the issuer's SubjectPublicKeyInfo (DER).
    pub issuer_kid: [u8; 8],
    /// Unix seconds after which the token is refused.
    pub not_after: i64,
    /// Advisory: services the connector's suggested configuration lists.
    #[serde(default)]
    pub services: Vec<String>,
}

impl TokenClaims {
    /// The token id as lowercase hex (how audit lines and the used-token store name it).
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The MessagePack payload that gets signed.
    pub fn to_payload(&self) -> Result<Vec<u8>, TokenError> {
        rmp_serde::to_vec_named(self).map_err(|e| TokenError::Encode(e.to_string()))
    }

    /// Checks the fields' shapes (not the signature or the time).
    pub fn validate(&self) -> Result<(), TokenError> {
        let bad = |reason: String| Err(TokenError::Invalid(reason));
        if let Err(e) = validate_trust_domain(&self.trust_domain) {
            return bad(e.to_string());
        }
        if let Err(e) = validate_name(&self.connector) {
            return bad(e.to_string());
        }
        if self.edges.is_empty() || self.edges.len() > MAX_EDGES {
            return bad(format!(
                "names {} edges (1 to {MAX_EDGES})",
                self.edges.len()
            ));
        }
        for edge in &self.edges {
            validate_edge_addr(edge).map_err(TokenError::Invalid)?;
        }
        if self.services.len() > MAX_SERVICES {
            return bad(format!("lists more than {MAX_SERVICES} services"));
        }
        if let Some(s) = &self.server_name {
            if s.is_empty() || s.len() > 253 {
                return bad("server name is empty or too long".into());
            }
        }
        Ok(())
    }
}

/// Checks `HOST:PORT` (HOST a name, an IPv4 address or a bracketed IPv6 address; PORT
/// 1..=65535). Returns why not, in words.
pub fn validate_edge_addr(addr: &str) -> Result<(), String> {
    let bad = || Err(format!("edge address {addr:?} is not HOST:PORT"));
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad();
    };
    if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
        return bad();
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if host_ok {
        Ok(())
    } else {
        bad()
    }
}

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub claims: TokenClaims,
    /// The payload bytes exactly as carried: what the signature covers.
    pub signed: Vec<u8>,
    /// The signature bytes (ECDSA P-256, ASN.1 DER).
    pub sig: Vec<u8>,
}

/// Why a string is not a well-formed token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {0} characters long (at most {MAX_TOKEN_LEN})")]
    TooLong(usize),
    #[error("not an Underpass enrollment token (it should start with {TOKEN_PREFIX:?})")]
    Prefix,
    #[error("token has the wrong number of parts (expected upt1.<payload>.<signature>)")]
    Parts,
    #[error("token {0} is not base64url")]
    Base64(&'static str),
    #[error("token payload does not decode: {0}")]
    Payload(String),
    #[error("token payload is invalid: {0}")]
    Invalid(String),
    #[error("could not encode token payload: {0}")]
    Encode(String),
}

/// Splits and decodes a token (surrounding whitespace is ignored). Checks shapes only.
pub fn decode_token(s: &str) -> Result<Token, TokenError> {
    let s = s.trim();
    if s.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(s.len()));
    }
    let rest = s.strip_prefix(TOKEN_PREFIX).ok_or(TokenError::Prefix)?;
    let mut parts = rest.split('.');
    let (Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Parts);
    };
    let signed = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Base64("payload"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Base64("signature"))?;
    if sig.is_empty() {
        return Err(TokenError::Base64("signature"));
    }
    let claims: TokenClaims =
        rmp_serde::from_slice(&signed).map_err(|e| TokenError::Payload(e.to_string()))?;
    claims.validate()?;
    Ok(Token {
        claims,
        signed,
        sig,
    })
}

/// Joins a signed payload and its signature into the token string.
pub fn encode_token(payload: &[u8], sig: &[u8]) -> String {
    format!(
        "{TOKEN_PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Connector → edge: redeem a token for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token, as printed by `underpass-certs token create`.
    pub token: String,
    /// PKCS#10 request (PEM) for the key the connector generated; only its public key is used.
    pub csr_pem: String,
}

/// Edge → connector: the certificate, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollAnswer {
    Issued {
        /// The leaf then the issuer, PEM: the connector's `cert` file.
        chain_pem: String,
        /// The CA bundle the edge trusts for tunnels, PEM: the connector's `ca` file.
        ca_pem: String,
        connector: String,
        trust_domain: String,
        /// Unix seconds: the leaf's end.
        not_after: i64,
    },
    Refused {
        code: EnrollCode,
        /// In words an operator can act on.
        reason: String,
    },
}

/// Machine-readable reason of a refusal. Codes a newer edge adds read as [`EnrollCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollCode {
    Malformed,
    TooLarge,
    TokenInvalid,
    TokenExpired,
    TokenUsed,
    TokenOtherEdge,
    WrongName,
    BadCsr,
    OtherIdentity,
    RateLimited,
    Disabled,
    Internal,
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests;
