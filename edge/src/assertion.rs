//! The identity assertion backends receive instead of client credentials.
//!
//! The edge never forwards what a client authenticated with ("no token passthrough"). Each
//! request relayed to a backend carries, in the [`ASSERTION_HEADER`] header, a short-lived
//! ES256 JWT signed by the edge that says who the caller is:
//!
//! ```json
//! { "iss": "spiffe://<trust-domain>/edge/<edge-name>", "aud": "<service>",
//!   "sub": "<principal>", "groups": ["group:eng"], "sid": "<session id>",
//!   "trace_id": "<trace id>", "iat": 1700000000, "nbf": 1700000000, "exp": 1700000060,
//!   "jti": "<random>" }
//! ```
//!
//! Backends verify it with the edge's public key set ([`AssertionSigner::jwks`], served at
//! `/.well-known/jwks.json` on the admin listener): algorithm ES256, the `kid` from the
//! header, `aud` = their service name, `iss` = the edge's SPIFFE ID.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::{Error as PemError, PemObject};
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Serialize;
use serde_json::{json, Value};
use underpass_proto::identity::{validate_name, validate_trust_domain};

pub use underpass_proto::headers::ASSERTION_HEADER;

/// Lifetime of an assertion, in seconds.
pub const ASSERTION_TTL_SECS: u64 = 60;

/// Why an assertion signer could not be built or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The trust domain or edge name is not valid.
    #[error("invalid assertion issuer: {0}")]
    Issuer(String),
    /// The key file could not be read.
    #[error("cannot read assertion key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key is not a usable P-256 PKCS#8 key.
    #[error("bad assertion key: {0}")]
    Key(String),
    /// Key generation, randomness or signing failed.
    #[error("assertion signing failed")]
    Crypto,
    /// The system clock is before 1970.
    #[error("the system clock is before the Unix epoch")]
    Clock,
}

/// What an assertion says. Borrowed, so that building one per request costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct AssertionClaims<'a> {
    /// The service the request goes to: the assertion's `aud`.
    pub service: &'a str,
    /// The caller's principal (`client:alice`, `jwt:bob`, …): the assertion's `sub`.
    pub principal: &'a str,
    /// The caller's groups as the edge knows them (`group:<g>`), emitted as given.
    pub groups: &'a [String],
    /// The MCP session id, if the request belongs to one: `sid`.
    pub session_id: Option<&'a str>,
    /// The trace id of the request: `trace_id`.
    pub trace_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
}

/// Signs identity assertions with the edge's ES256 key.
pub struct AssertionSigner {
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
    issuer: String,
    kid: String,
    /// base64url of the (constant) JOSE header, with the trailing `.`.
    header_b64: String,
    jwks: Value,
    /// Tokens being reused, keyed by everything they assert (see [`AssertionSigner::reusable`]).
    reused: Mutex<Reused>,
}

/// Tokens being reused, and when stale ones were last swept out.
#[derive(Default)]
struct Reused {
    map: HashMap<ReuseKey, (String, Instant)>,
    swept: Option<Instant>,
}

type ReuseKey = (String, String, Vec<String>, Option<String>);

/// A token is reused for the first half of its lifetime, so a backend never receives one with
/// less than half its lifetime left.
const REUSE_FOR: Duration = Duration::from_secs(ASSERTION_TTL_SECS / 2);
/// Bound on reused tokens kept (one per service, principal, groups and session).
const REUSE_MAX: usize = 16_384;

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("AssertionSigner")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer for edge `edge_name` of `trust_domain`, with the key from `key_file` (PKCS#8,
    /// PEM or DER) when given, else a fresh key generated now (then the key, and its `kid`,
    /// change at every start; backends must follow the published JWKS).
    pub fn new(
        trust_domain: &str,
        edge_name: &str,
        key_file: Option<&Path>,
    ) -> Result<Self, AssertionError> {
        match key_file {
            Some(path) => Self::from_pkcs8_file(path, trust_domain, edge_name),
            None => Self::generate(trust_domain, edge_name),
        }
    }

    /// A signer with a P-256 key generated now.
    pub fn generate(trust_domain: &str, edge_name: &str) -> Result<Self, AssertionError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| AssertionError::Crypto)?;
        Self::from_pkcs8_der(pkcs8.as_ref(), trust_domain, edge_name)
    }

    /// A signer with the P-256 PKCS#8 key in `path` (PEM `PRIVATE KEY` or DER).
    pub fn from_pkcs8_file(
        path: &Path,
        trust_domain: &str,
        edge_name: &str,
    ) -> Result<Self, AssertionError> {
        let bytes = std::fs::read(path).map_err(|source| AssertionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let der = pkcs8_der(&bytes)?;
        Self::from_pkcs8_der(&der, trust_domain, edge_name)
    }

    /// A signer with a P-256 PKCS#8 DER key.
    pub fn from_pkcs8_der(
        pkcs8: &[u8],
        trust_domain: &str,
        edge_name: &str,
    ) -> Result<Self, AssertionError> {
        validate_trust_domain(trust_domain).map_err(|e| AssertionError::Issuer(e.to_string()))?;
        validate_name(edge_name).map_err(|e| AssertionError::Issuer(e.to_string()))?;
        let rng = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| AssertionError::Key(format!("not a P-256 PKCS#8 key ({e})")))?;
        let point = key_pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        if point.len() != 65 || point[0] != 4 {
            return Err(AssertionError::Key("unexpected public key encoding".into()));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, point);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8]);
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let header_b64 = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        let jwks = json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]});
        Ok(AssertionSigner {
            key_pair,
            rng,
            issuer: format!("spiffe://{trust_domain}/edge/{edge_name}"),
            kid,
            header_b64,
            jwks,
            reused: Mutex::new(Reused::default()),
        })
    }

    /// Signs an assertion valid from now for [`ASSERTION_TTL_SECS`] seconds.
    /// An assertion for `claims` without a trace id, reused while it is fresh: signing is an
    /// ECDSA operation, and measured at a third of the edge's CPU per request when done for
    /// every request. The trace id travels in its own header instead; `jti` then names the
    /// token, not the request.
    pub fn reusable(&self, claims: &AssertionClaims<'_>) -> Result<String, AssertionError> {
        self.reusable_at(claims, Instant::now())
    }

    /// [`AssertionSigner::reusable`] at time `now`. Stale tokens are swept out once per
    /// [`REUSE_FOR`]: one is kept per session, so waiting for [`REUSE_MAX`] would hold up to
    /// that many dead sessions' tokens (megabytes) on an edge whose sessions come and go.
    fn reusable_at(
        &self,
        claims: &AssertionClaims<'_>,
        now: Instant,
    ) -> Result<String, AssertionError> {
        let key: ReuseKey = (
            claims.service.to_owned(),
            claims.principal.to_owned(),
            claims.groups.to_vec(),
            claims.session_id.map(str::to_owned),
        );
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < REUSE_FOR;
        let mut guard = self.reused.lock().unwrap_or_else(|e| e.into_inner());
        let reused = &mut *guard;
        if let Some((token, at)) = reused.map.get(&key) {
            if fresh(at) {
                return Ok(token.clone());
            }
        }
        let token = self.sign(&AssertionClaims {
            trace_id: None,
            ..*claims
        })?;
        let swept = *reused.swept.get_or_insert(now);
        if now.saturating_duration_since(swept) >= REUSE_FOR || reused.map.len() >= REUSE_MAX {
            reused.map.retain(|_, (_, at)| fresh(at));
            reused.swept = Some(now);
            if reused.map.len() >= REUSE_MAX {
                reused.map.clear();
            }
        }
        reused.map.insert(key, (token.clone(), now));
        Ok(token)
    }

    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Result<String, AssertionError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AssertionError::Clock)?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| AssertionError::Crypto)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let payload = Payload {
            iss: &self.issuer,
            sub: claims.principal,
            aud: claims.service,
            groups: claims.groups,
            sid: claims.session_id,
            trace_id: claims.trace_id,
            iat,
            nbf: iat,
            exp: iat + ASSERTION_TTL_SECS,
            jti: &jti,
        };
        let payload = serde_json::to_vec(&payload).map_err(|_| AssertionError::Crypto)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 96);
        token.push_str(&self.header_b64);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        // ECDSA_P256_SHA256_FIXED gives r || s, exactly the JWS ES256 signature format.
        let signature = self
            .key_pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| AssertionError::Crypto)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// The public key set backends verify assertions with.
    pub fn jwks(&self) -> Value {
        self.jwks.clone()
    }

    /// The key id: base64url of the first 8 bytes of SHA-256 of the uncompressed public point.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `iss` of every assertion: `spiffe://<trust-domain>/edge/<name>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// DER of a PKCS#8 key given as PEM (`-----BEGIN PRIVATE KEY-----`) or as DER.
fn pkcs8_der(bytes: &[u8]) -> Result<Vec<u8>, AssertionError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AssertionError::Key("neither PEM nor DER".into()))?;
    match PrivatePkcs8KeyDer::from_pem_slice(bytes) {
        Ok(der) => Ok(der.secret_pkcs8_der().to_vec()),
        Err(PemError::NoItemsFound) => {
            let hint = if text.contains("BEGIN EC PRIVATE KEY") {
                "a SEC1 key: convert it with `openssl pkcs8 -topk8 -nocrypt`"
            } else if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
                "an encrypted key: store it unencrypted (and protect the file)"
            } else {
                "no PRIVATE KEY PEM block"
            };
            Err(AssertionError::Key(format!(
                "expected PKCS#8, found {hint}"
            )))
        }
        Err(e) => Err(AssertionError::Key(format!("bad PEM block: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    use serde_json::Map;

    fn signer() -> AssertionSigner {
        AssertionSigner::generate("underpass.local", "edge1").unwrap()
    }

    fn claims<'a>(groups: &'a [String]) -> AssertionClaims<'a> {
        AssertionClaims {
            service: "everything",
            principal: "jwt:alice",
            groups,
            session_id: Some("sess-1"),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        }
    }

    /// What a backend does: fetch the JWKS, pick the key by kid, verify.
    fn verify(
        jwks: &Value,
        token: &str,
        audience: &str,
    ) -> jsonwebtoken::errors::Result<Map<String, Value>> {
        let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let header = decode_header(token)?;
        assert_eq!(header.alg, Algorithm::ES256);
        let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwk)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.set_issuer(&["spiffe://underpass.local/edge/edge1"]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        v.validate_nbf = true;
        v.leeway = 0;
        decode::<Map<String, Value>>(token, &key, &v).map(|d| d.claims)
    }

    /// Regression (soak: the edge grew ~0.6 KiB per legacy session opened and deleted, up to
    /// REUSE_MAX sessions' worth): the tokens of sessions long gone are swept out.
    #[test]
    fn stale_reused_tokens_are_swept_out() {
        let s = signer();
        let groups: Vec<String> = Vec::new();
        let t0 = Instant::now();
        let ids: Vec<String> = (0..100).map(|i| format!("gone-{i}")).collect();
        for id in &ids {
            let c = AssertionClaims {
                session_id: Some(id),
                ..claims(&groups)
            };
            s.reusable_at(&c, t0).unwrap();
        }
        // Within its reuse window a token is handed out again; after it, a new one.
        let first = s.reusable_at(&claims(&groups), t0).unwrap();
        let half = t0 + REUSE_FOR / 2;
        assert_eq!(s.reusable_at(&claims(&groups), half).unwrap(), first);
        assert_eq!(s.reused.lock().unwrap().map.len(), 101);

        let later = t0 + REUSE_FOR + Duration::from_secs(1);
        let again = s.reusable_at(&claims(&groups), later).unwrap();
        assert_ne!(again, first);
        assert_eq!(
            s.reused.lock().unwrap().map.len(),
            1,
            "the 100 dead sessions' tokens are still held"
        );
    }

    #[test]
    fn verifies_with_published_jwks() {
        let s = signer();
        let groups = vec!["group:eng".to_owned()];
        let token = s.sign(&claims(&groups)).unwrap();
        let c = verify(&s.jwks(), &token, "everything").unwrap();
        assert_eq!(c["iss"], "spiffe://underpass.local/edge/edge1");
        assert_eq!(c["sub"], "jwt:alice");
        assert_eq!(c["aud"], "everything");
        assert_eq!(c["groups"], json!(["group:eng"]));
        assert_eq!(c["sid"], "sess-1");
        assert_eq!(c["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let iat = c["iat"].as_u64().unwrap();
        assert_eq!(c["nbf"].as_u64(), Some(iat));
        assert_eq!(c["exp"].as_u64(), Some(iat + 60));
        assert_eq!(c["jti"].as_str().map(str::len), Some(22));

        // Every assertion has its own jti.
        let again = s.sign(&claims(&groups)).unwrap();
        let c2 = verify(&s.jwks(), &again, "everything").unwrap();
        assert_ne!(c["jti"], c2["jti"]);

        // Optional claims are omitted, not null.
        let bare = AssertionClaims {
            session_id: None,
            trace_id: None,
            ..claims(&[])
        };
        let c3 = verify(&s.jwks(), &s.sign(&bare).unwrap(), "everything").unwrap();
        assert!(!c3.contains_key("sid") && !c3.contains_key("trace_id"));
    }

    #[test]
    fn audience_mismatch_rejected() {
        let s = signer();
        let token = s.sign(&claims(&[])).unwrap();
        let err = verify(&s.jwks(), &token, "files").unwrap_err();
        assert!(matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidAudience
        ));
    }

    #[test]
    fn another_edge_key_rejected() {
        let a = signer();
        let b = signer();
        assert_ne!(a.kid(), b.kid());
        let token = a.sign(&claims(&[])).unwrap();
        // Same kid lookup would fail; force b's key to prove the signature is checked.
        let mut jwks = b.jwks();
        jwks["keys"][0]["kid"] = json!(a.kid());
        let err = verify(&jwks, &token, "everything").unwrap_err();
        assert!(matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature
        ));
    }

    #[test]
    fn jwks_shape_and_kid() {
        let s = signer();
        let jwks = s.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], s.kid());
        assert_eq!(s.kid().len(), 11); // base64url of 8 bytes
        for coord in ["x", "y"] {
            let raw = URL_SAFE_NO_PAD
                .decode(key[coord].as_str().unwrap())
                .unwrap();
            assert_eq!(raw.len(), 32);
        }
        assert!(!format!("{s:?}").contains("key_pair"));
    }

    #[test]
    fn loads_pkcs8_pem_and_der() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let dir = std::env::temp_dir();
        let der_path = dir.join(format!("underpass-assertion-{}.der", std::process::id()));
        let pem_path = dir.join(format!("underpass-assertion-{}.pem", std::process::id()));
        std::fs::write(&der_path, doc.as_ref()).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(doc.as_ref())
        );
        std::fs::write(&pem_path, pem).unwrap();
        let a = AssertionSigner::new("underpass.local", "edge1", Some(&der_path)).unwrap();
        let b = AssertionSigner::new("underpass.local", "edge1", Some(&pem_path)).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.jwks(), b.jwks());
        let token = a.sign(&claims(&[])).unwrap();
        assert!(verify(&b.jwks(), &token, "everything").is_ok());
        let _ = std::fs::remove_file(der_path);
        let _ = std::fs::remove_file(pem_path);

        assert!(matches!(
            pkcs8_der(b"-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----"),
            Err(AssertionError::Key(_))
        ));
        assert!(AssertionSigner::generate("Bad Domain", "edge1").is_err());
    }
}
