use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::config::{default_algorithms, default_scopes_claim};
use super::jwt::unix_now;
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
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_doc.as_ref(), &rng).unwrap();
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
