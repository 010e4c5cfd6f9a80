//! Attacks on who the caller is, each with its documented answer (README, "Attacks and
//! answers"): JWT algorithm confusion (HS256 keyed with the public key, `alg` switched between
//! RS/ES/ES384), `crit` with extensions the edge does not know (RFC 7515 §4.1.11: refused),
//! `kid` injection, `jku`/`x5u` headers (never fetched: ignored), a token in the query string
//! (400) and tokens in several places (400). After each: the edge still serves a legitimate
//! caller, and its descriptors and memory are back near their baseline
//! (`underpass_tests::vitals`).

use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post, Reply};
use underpass_tests::recorder::Recorder;
use underpass_tests::vitals::{assert_survived, Vitals};
use underpass_tests::*;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "https://edge.test/mcp";

/// An identity provider with one P-256 key (ES256), published as `k1`.
struct Idp {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Idp {
    fn new() -> Idp {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Idp { key, rng }
    }

    fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    }

    /// A token with exactly this `header`, signed with this key (ES256, whatever the header
    /// says).
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// A token with this `header`, "signed" with HMAC-SHA256 keyed by `secret`.
fn hmac_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub,
           "iat": now(), "nbf": now() - 10, "exp": now() + 300})
}

fn es256(kid: &str) -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": kid})
}

struct Site {
    d: Deployment,
    idp: Idp,
    rec: Recorder,
}

fn site() -> Site {
    let rec = Recorder::start();
    let idp = Idp::new();
    let extra = format!(
        "[auth]\n[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         jwks_file = \"jwks.json\"\n[policy]\nallow_all = true\n"
    );
    let jwks = json!({"keys": [idp.jwk()]}).to_string();
    let d = Deployment::start_prepared(false, "rec", &rec.url, &extra, |dir| {
        std::fs::write(dir.join("jwks.json"), jwks).unwrap()
    });
    let s = Site { d, idp, rec };
    s.serves().unwrap();
    s
}

fn tool_call() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": {}}})
}

impl Site {
    fn vitals(&self) -> Vitals {
        Vitals::of(self.d.edge.pid())
    }

    fn call(&self, token: &str) -> Reply {
        let bearer = format!("Bearer {token}");
        mcp_post(
            &self.d.edge_setup.url("rec"),
            &[("Authorization", &bearer)],
            &tool_call(),
        )
        .unwrap()
    }

    /// A legitimate caller with a good token: 200, and the backend saw the call.
    fn serves(&self) -> Result<(), String> {
        let before = self.rec.tool_calls("echo");
        let r = self.call(&self.idp.sign(&es256("k1"), &claims("alice")));
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        if self.rec.tool_calls("echo") != before + 1 {
            return Err("the call did not reach the backend".into());
        }
        Ok(())
    }

    fn survived(&self, before: &Vitals, attack: &str) {
        assert_survived(before, attack, || self.serves(), || self.d.edge.log_text());
    }

    /// `token` is refused with 401 `invalid_token`, and reaches no backend.
    fn refused(&self, what: &str, token: &str) {
        let seen = self.rec.seen().len();
        let r = self.call(token);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert_eq!(self.rec.seen().len(), seen, "{what} reached the backend");
    }
}

#[test]
fn jwt_algorithm_confusion_is_refused() {
    let s = site();
    let before = s.vitals();
    let c = claims("mallory");
    let point = s.idp.key.public_key().as_ref().to_vec();
    let jwk_text = s.idp.jwk().to_string();
    // HS256 keyed with the public key, in every form a verifier might use as "the key".
    for (form, secret) in [
        ("SEC1 point", point.clone()),
        ("JWK text", jwk_text.into_bytes()),
        ("x coordinate", point[1..33].to_vec()),
    ] {
        for alg in ["HS256", "hs256", "HS384"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
            s.refused(
                &format!("{alg} keyed with the public key ({form})"),
                &hmac_token(&header, &c, &secret),
            );
        }
    }
    // A real ES256 signature under a header naming another algorithm.
    for alg in [
        "RS256", "PS256", "ES384", "ES512", "EdDSA", "es256", "ES256 ", "nOnE",
    ] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        s.refused(&format!("alg {alg:?}"), &s.idp.sign(&header, &c));
    }
    // No alg, alg not a string, and an empty signature.
    s.refused(
        "no alg",
        &s.idp.sign(&json!({"typ": "JWT", "kid": "k1"}), &c),
    );
    s.refused(
        "alg as a list",
        &s.idp
            .sign(&json!({"alg": ["ES256"], "typ": "JWT", "kid": "k1"}), &c),
    );
    let good = s.idp.sign(&es256("k1"), &c);
    let unsigned = format!("{}.", good.rsplit_once('.').unwrap().0);
    s.refused("an ES256 header with no signature", &unsigned);
    s.survived(&before, "JWT algorithm confusion");
}

#[test]
fn jwt_crit_kid_injection_and_key_urls() {
    let s = site();
    let before = s.vitals();
    let c = claims("mallory");

    // `crit` names extensions this edge does not understand: RFC 7515 §4.1.11 says refuse.
    for crit in [
        json!(["x-never-heard"]),
        json!(["exp"]),
        json!([]),
        json!("b64"),
    ] {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "k1", "crit": crit,
                            "x-never-heard": true, "b64": false});
        s.refused(&format!("crit {crit}"), &s.idp.sign(&header, &c));
    }

    // `kid` injection: no spelling of a kid finds a key other than the one it names.
    let long = "k".repeat(8000);
    for kid in [
        json!("../../../../etc/passwd"),
        json!("k1\u{0}"),
        json!("k1' OR '1'='1"),
        json!("k1 "),
        json!("K1"),
        json!("*"),
        json!(""),
        json!(long),
        json!(1),
        json!(["k1"]),
        json!({"kid": "k1"}),
        Value::Null,
    ] {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let shown: String = kid.to_string().chars().take(40).collect();
        s.refused(&format!("kid {shown}"), &s.idp.sign(&header, &c));
    }

    // `jku` / `x5u` / `jwk` / `x5c` pointing at keys the attacker controls: never fetched,
    // never used. A token signed by the attacker's key is refused; a token signed by the
    // real key carrying them is served (the headers are ignored).
    let lure = TcpListener::bind("127.0.0.1:0").unwrap();
    lure.set_nonblocking(true).unwrap();
    let lure_url = format!("http://{}/jwks.json", lure.local_addr().unwrap());
    let attacker = Idp::new();
    let key_headers = [
        json!({"jku": lure_url}),
        json!({"x5u": lure_url}),
        json!({"jwk": attacker.jwk()}),
        json!({"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    for extra in &key_headers {
        let mut header = es256("k1");
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        s.refused(
            &format!("attacker key via {extra}"),
            &attacker.sign(&header, &c),
        );
        let r = s.call(&s.idp.sign(&header, &claims("alice")));
        assert_eq!(r.status, 200, "the real key with {extra}: {}", r.text());
    }
    assert!(
        lure.accept().is_err(),
        "the edge fetched a key from a URL in a token header"
    );
    s.survived(&before, "crit, kid injection and key URLs in JWT headers");
}

#[test]
fn tokens_in_the_query_string_or_in_several_places_are_refused() {
    let s = site();
    let before = s.vitals();
    let good = s.idp.sign(&es256("k1"), &claims("alice"));
    let url = s.d.edge_setup.url("rec");
    let body = tool_call();
    let seen = s.rec.seen().len();

    // In the query string, with or without a good Authorization header too: 400.
    for query in [
        format!("access_token={good}"),
        format!("token={good}"),
        format!("api_key={good}"),
        format!("x=1&ACCESS_TOKEN={good}"),
        format!("access%5Ftoken={good}"),
        format!("x=1;token={good}"),
    ] {
        let r = mcp_post(&format!("{url}?{query}"), &[], &body).unwrap();
        assert_eq!(r.status, 400, "?{query:.40}: {}", r.text());
        let bearer = format!("Bearer {good}");
        let r = mcp_post(
            &format!("{url}?{query}"),
            &[("Authorization", &bearer)],
            &body,
        )
        .unwrap();
        assert_eq!(r.status, 400, "?{query:.40} and a header: {}", r.text());
    }

    // Two Authorization headers (even the same token twice), two tokens in one, another
    // scheme carrying the token: 400, 400, 401.
    let bearer = format!("Bearer {good}");
    for (what, headers, status) in [
        (
            "two Authorization headers",
            vec![
                ("Authorization", bearer.as_str()),
                ("Authorization", "Bearer x"),
            ],
            400,
        ),
        (
            "the same token twice",
            vec![
                ("Authorization", bearer.as_str()),
                ("Authorization", bearer.as_str()),
            ],
            400,
        ),
        (
            "two tokens in one header",
            vec![("Authorization", &*format!("{bearer} {good}").leak())],
            400,
        ),
        (
            "a token under another scheme",
            vec![("Authorization", &*format!("Token {good}").leak())],
            401,
        ),
    ] {
        let r = mcp_post(&url, &headers, &body).unwrap();
        assert_eq!(r.status, status, "{what}: {}", r.text());
    }
    // A token in a cookie or a custom header, no Authorization: nobody (401).
    for (name, value) in [
        ("Cookie", format!("access_token={good}")),
        ("X-Access-Token", good.clone()),
    ] {
        let r = mcp_post(&url, &[(name, &value)], &body).unwrap();
        assert_eq!(r.status, 401, "{name}: {}", r.text());
    }
    assert_eq!(
        s.rec.seen().len(),
        seen,
        "a refused request reached the backend"
    );
    let r = http::get(&format!("{url}?access_token={good}")).unwrap();
    assert_eq!(r.status, 400, "GET with a token in the query: {}", r.text());
    s.survived(&before, "tokens in the query string and in several places");
}
