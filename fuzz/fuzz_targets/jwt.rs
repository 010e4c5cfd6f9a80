//! Bearer tokens against a fixed key set: the edge's `Authenticator` with JWT (RS256, ES256,
//! EdDSA) and an API key configured, given any `Authorization` value and query string.
//! With the first byte's low bit set, the input is a JWS header and claims (JSON, separated
//! by `\0`) that the target signs with the set's Ed25519 key, so claim checks are reached.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use underpass_edge::auth::{AuthConfig, AuthMethod, Authenticator};
use underpass_fuzz::{mode, sections};

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[9; 32]).expect("a fixed seed"))
}

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("underpass-fuzz-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the key directory");
        let jwks = dir.join("jwks.json");
        let x = URL_SAFE_NO_PAD.encode(key().public_key().as_ref());
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": x, "use": "sig"},
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        std::fs::write(&jwks, doc.to_string()).expect("write the JWKS");
        let config: AuthConfig = toml::from_str(&format!(
            r#"
            required_scopes = ["mcp"]
            [[api_keys]]
            name = "ci-bot"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            [jwt]
            issuer = "https://issuer.example"
            audience = "https://edge.example/mcp"
            jwks_file = "{}"
            algorithms = ["RS256", "ES256", "EdDSA"]
            groups_claim = "realm.groups"
            "#,
            jwks.display()
        ))
        .expect("the fuzz auth config parses");
        let auth = Authenticator::new(&config).expect("the fuzz authenticator builds");
        let _ = std::fs::remove_dir_all(&dir);
        auth
    })
}

/// `header.claims.signature`, signed with the set's Ed25519 key.
fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let auth = authenticator();
    let (value, query) = if m & 1 == 1 {
        let parts = sections(rest, b"\0");
        let claims = parts.get(1).copied().unwrap_or_default();
        (
            format!("Bearer {}", signed(parts[0], claims)).into_bytes(),
            None,
        )
    } else {
        let parts = sections(rest, b"\0");
        (
            parts[0].to_vec(),
            parts
                .get(1)
                .map(|q| String::from_utf8_lossy(q).into_owned()),
        )
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(AUTHORIZATION, v);
    }
    match auth.authenticate(None, &headers, query.as_deref()) {
        Ok(id) => {
            // Only a good signature or the API key gets in, and never anonymously.
            match id.method {
                AuthMethod::Jwt => {
                    assert!(m & 1 == 1, "an unsigned fuzz token was accepted: {id:?}");
                    assert!(id.principal.starts_with("jwt:"));
                    assert!(id.scopes.iter().any(|s| s == "mcp"));
                }
                AuthMethod::ApiKey => assert_eq!(id.principal, "apikey:ci-bot"),
                other => panic!("authenticated by {other:?} without a credential"),
            }
        }
        Err(e) => {
            let _ = (
                e.to_string(),
                auth.challenge(&e, "https://edge.example/.well-known"),
            );
        }
    }
});
