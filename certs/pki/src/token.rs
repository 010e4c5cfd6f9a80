//! One-time enrollment tokens: made by `underpass-certs token create` with the issuer key,
//! checked by the edge before it issues a certificate. The wire form and the claims live in
//! [`underpass_proto::enroll`]; this module signs and verifies.
//!
//! The signature is ECDSA P-256 / SHA-256 (ASN.1 DER) by the issuer key over the payload bytes
//! exactly as carried. Whoever holds the issuer key can already mint connector certificates,
//! so letting it mint tokens adds no power and no secret to distribute; rotating the issuer
//! invalidates outstanding tokens. Single use is the edge's business (it burns the token id).

use std::path::Path;
use std::time::Duration;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use time::OffsetDateTime;
use underpass_proto::enroll::{decode_token, encode_token, EnrollCode, TokenClaims, TokenError};
use underpass_proto::identity::validate_name;

use crate::issuer::{self, LoadedIssuer};
use crate::{ca, inspect, Error, CA_CERT_FILE};

/// Default token lifetime (`--ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest token lifetime accepted.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The connector name it enrolls.
    pub connector: &'a str,
    /// `HOST:PORT` of the edges' TCP tunnel ports, tried in order (1 to 8).
    pub edges: &'a [String],
    /// Name the edge certificate is checked against, when not the edge's HOST.
    pub server_name: Option<&'a str>,
    /// How long it may be redeemed (1 s to [`MAX_TOKEN_TTL`]).
    pub ttl: Duration,
    /// Advisory service names for the connector's suggested configuration.
    pub services: &'a [String],
}

/// A signed token and what it says.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: String,
    pub claims: TokenClaims,
}

/// SHA-256 of a certificate (DER): the CA fingerprint a token pins.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Makes a token with the issuer in `dir` (`issuer.crt`, `issuer.key`) pinning `dir/ca.crt`.
/// The root CA key is not needed. Refuses an issuer not signed by that CA, and an issuer that
/// ends before the token would.
pub fn create(dir: &Path, req: &NewToken<'_>) -> Result<CreatedToken, Error> {
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_der = match inspect::read_certificate(&ca_path) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoCa {
                dir: dir.to_path_buf(),
            })
        }
        other => other?,
    };
    let iss = issuer::load_dir(dir)?;
    issuer::check_issued_by(&iss, &ca_der, &ca_path)?;
    sign(&iss, &ca_der, req, ca::now())
}

/// Signs a token with `iss`, pinning the CA certificate `ca_der`, valid from `now` for
/// `req.ttl`.
pub fn sign(
    iss: &LoadedIssuer,
    ca_der: &[u8],
    req: &NewToken<'_>,
    now: OffsetDateTime,
) -> Result<CreatedToken, Error> {
    validate_name(req.connector)?;
    let ttl_text = crate::ttl::format(req.ttl);
    if req.ttl < Duration::from_secs(1) || req.ttl > MAX_TOKEN_TTL {
        return Err(Error::BadTtl {
            value: ttl_text,
            reason: format!("a token lives 1s to {}", crate::ttl::format(MAX_TOKEN_TTL)),
        });
    }
    // Bounded above by MAX_TOKEN_TTL, so neither conversion can fail.
    let not_after = now.unix_timestamp() + i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX);
    if not_after > iss.not_after.unix_timestamp() {
        return Err(Error::IssuerEndsFirst {
            at: crate::rfc3339(iss.not_after),
            token_end: OffsetDateTime::from_unix_timestamp(not_after)
                .map_or_else(|_| not_after.to_string(), crate::rfc3339),
        });
    }
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| Error::Random)?;
    let claims = TokenClaims {
        id,
        trust_domain: iss.trust_domain.clone(),
        connector: req.connector.to_owned(),
        edges: req.edges.to_vec(),
        server_name: req.server_name.map(str::to_owned),
        ca_sha256: fingerprint(ca_der),
        issuer_kid: iss.kid,
        not_after,
        services: req.services.to_vec(),
    };
    claims.validate()?;
    let payload = claims.to_payload()?;
    let sig = iss.sign(&payload)?;
    let token = encode_token(&payload, &sig);
    if token.len() > underpass_proto::enroll::MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(token.len()).into());
    }
    Ok(CreatedToken { token, claims })
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("malformed token: {0}")]
    Malformed(#[from] TokenError),
    #[error("the token's signature does not verify (altered or forged)")]
    BadSignature,
    #[error(
        "the token was signed by another issuer (rotated since the token was made, or another \
         PKI): ask for a new token"
    )]
    OtherIssuer,
    #[error("the token pins another CA than this edge's: it belongs to another PKI")]
    OtherCa,
    #[error("the token expired at {at}: ask for a new one")]
    Expired { at: String },
    #[error("the token is for trust domain {token}, this edge serves {ours}")]
    OtherTrustDomain { token: String, ours: String },
}

impl TokenRefusal {
    /// The code an edge answers with.
    pub fn code(&self) -> EnrollCode {
        match self {
            TokenRefusal::Expired { .. } => EnrollCode::TokenExpired,
            TokenRefusal::Malformed(_) => EnrollCode::Malformed,
            _ => EnrollCode::TokenInvalid,
        }
    }
}

/// Checks a token against the issuer `iss` and the CA fingerprint `ca_sha256` at `now`, and
/// returns its claims. Order: shape, signature (a signature that fails under a token naming
/// another issuer key reads [`TokenRefusal::OtherIssuer`]), CA pin, trust domain, expiry.
/// Single use is not checked here.
pub fn verify(
    token: &str,
    iss: &LoadedIssuer,
    ca_sha256: &[u8; 32],
    now: OffsetDateTime,
) -> Result<TokenClaims, TokenRefusal> {
    let t = decode_token(token)?;
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &iss.public_key);
    if key.verify(&t.signed, &t.sig).is_err() {
        return Err(if t.claims.issuer_kid == iss.kid {
            TokenRefusal::BadSignature
        } else {
            TokenRefusal::OtherIssuer
        });
    }
    let claims = t.claims;
    if claims.issuer_kid != iss.kid {
        // Signed by our key yet naming another: only a bug could make this; refuse anyway.
        return Err(TokenRefusal::OtherIssuer);
    }
    if &claims.ca_sha256 != ca_sha256 {
        return Err(TokenRefusal::OtherCa);
    }
    if claims.trust_domain != iss.trust_domain {
        return Err(TokenRefusal::OtherTrustDomain {
            token: claims.trust_domain,
            ours: iss.trust_domain.clone(),
        });
    }
    if now.unix_timestamp() >= claims.not_after {
        return Err(TokenRefusal::Expired {
            at: OffsetDateTime::from_unix_timestamp(claims.not_after)
                .map_or_else(|_| claims.not_after.to_string(), crate::rfc3339),
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
