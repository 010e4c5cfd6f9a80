//! Who is calling, what they may do, and a record that cannot be rewritten: API keys and JWTs
//! at a real edge, policy with list filtering, denials that never reach the backend, rate
//! limits, the identity assertion backends receive instead of client tokens, and the audit log.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use underpass_tests::http::{self, mcp_post};
use underpass_tests::recorder::Recorder;
use underpass_tests::*;

const API_KEY: &str = "up_test_key_0123456789abcdef";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "https://edge.test/mcp";

const POLICY: &str = r#"
[[allow]]
name = "bots-echo"
principals = ["apikey:ci-bot"]
services = ["rec"]
tools = ["echo"]
rate = "5/s"

[[allow]]
name = "eng"
principals = ["group:eng"]
services = ["rec"]
tools = ["*"]

[[deny]]
name = "no-deletes"
principals = ["*"]
tools = ["*delete*"]
"#;

struct Idp {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl Idp {
    fn new() -> Idp {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        Idp { key, pkcs8 }
    }

    fn jwks(&self, kid: &str) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    fn token(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": ["eng"],
           "iat": now(), "nbf": now() - 10, "exp": now() + 300})
}

struct Setup {
    d: Deployment,
    idp: Idp,
    backend: Recorder,
}

fn setup() -> Setup {
    let backend = Recorder::start();
    let idp = Idp::new();
    let extra = format!(
        "[auth]\n[[auth.api_keys]]\nname = \"ci-bot\"\nsha256 = \"{}\"\n\
         [auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"jwks.json\"\n\
         [policy]\nfile = \"policy.toml\"\n[audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(API_KEY)
    );
    let d = Deployment::start_prepared(false, "rec", &backend.url, &extra, |dir| {
        std::fs::write(dir.join("jwks.json"), idp.jwks("k1").to_string()).unwrap();
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    });
    Setup { d, idp, backend }
}

fn call(s: &Setup, auth: &str, body: Value) -> http::Reply {
    let bearer = format!("Bearer {auth}");
    mcp_post(
        &s.d.edge_setup.url("rec"),
        &[("Authorization", &bearer)],
        &body,
    )
    .unwrap()
}

fn tool_call(name: &str) -> Value {
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":{}}})
}

fn listed_tools(r: &http::Reply) -> Vec<String> {
    let msgs = http::messages(r);
    msgs.last().expect("a response")["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn credentials_are_checked_and_refused_with_the_right_status() {
    let s = setup();
    let url = s.d.edge_setup.url("rec");
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    // No credential: 401 pointing at the RFC 9728 metadata.
    let r = mcp_post(&url, &[], &list).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("resource_metadata=\""),
        "{challenge}"
    );
    let meta_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let meta = http::get(meta_url).unwrap();
    assert_eq!(meta.status, 200, "{meta_url}: {}", meta.text());
    let m = meta.json();
    assert!(m["resource"].as_str().unwrap().ends_with("/mcp/rec"), "{m}");
    assert_eq!(m["authorization_servers"], json!([ISSUER]), "{m}");

    // Tokens in the query string are refused outright.
    let r = mcp_post(&format!("{url}?access_token={API_KEY}"), &[], &list).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // Each accepted method.
    assert_eq!(call(&s, API_KEY, list.clone()).status, 200);
    assert_eq!(
        call(&s, &s.idp.token("k1", &claims("bob")), list.clone()).status,
        200
    );

    // Each wrong credential.
    let mut bad: Vec<(&str, String)> = vec![("wrong api key", "up_not_the_key".into())];
    let mut c = claims("bob");
    c["exp"] = json!(now() - 3600);
    bad.push(("expired", s.idp.token("k1", &c)));
    let mut c = claims("bob");
    c["nbf"] = json!(now() + 3600);
    bad.push(("not yet valid", s.idp.token("k1", &c)));
    let mut c = claims("bob");
    c["aud"] = json!("https://other.test/mcp");
    bad.push(("wrong audience", s.idp.token("k1", &c)));
    let mut c = claims("bob");
    c["iss"] = json!("https://evil.test");
    bad.push(("wrong issuer", s.idp.token("k1", &c)));
    bad.push(("bad signature", Idp::new().token("k1", &claims("bob"))));
    bad.push(("unknown key id", s.idp.token("k9", &claims("bob"))));
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("bob").to_string());
    bad.push(("alg none", format!("{none_header}.{payload}.")));
    for (what, token) in bad {
        let r = call(&s, &token, list.clone());
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    assert!(s
        .backend
        .seen()
        .iter()
        .all(|seen| seen.method == "tools/list"));
}

#[test]
fn policy_filters_lists_denies_at_the_edge_and_rate_limits() {
    let s = setup();
    let jwt = s.idp.token("k1", &claims("bob"));
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    // The bot sees only echo; bob (group eng) sees everything but the denied delete tool.
    assert_eq!(listed_tools(&call(&s, API_KEY, list.clone())), vec!["echo"]);
    assert_eq!(
        listed_tools(&call(&s, &jwt, list.clone())),
        vec!["echo", "get-secret"]
    );

    // Denied calls are answered at the edge and never reach the backend.
    let r = call(&s, API_KEY, tool_call("get-secret"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["id"], 7);
    assert_eq!(r.json()["error"]["code"], -31403, "{}", r.text());
    let r = call(&s, &jwt, tool_call("delete-everything"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(s.backend.tool_calls("get-secret"), 0);
    assert_eq!(s.backend.tool_calls("delete-everything"), 0);
    assert_eq!(call(&s, &jwt, tool_call("get-secret")).status, 200);
    assert_eq!(s.backend.tool_calls("get-secret"), 1);

    // The bot's rule allows 5 calls per second: a burst trips it, and it recovers.
    let mut limited = None;
    for _ in 0..20 {
        let r = call(&s, API_KEY, tool_call("echo"));
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = limited.expect("rate limit never tripped");
    assert_eq!(r.json()["error"]["code"], -31429, "{}", r.text());
    // The bot's exhausted rate is its own: bob is served meanwhile.
    assert_eq!(call(&s, &jwt, tool_call("echo")).status, 200);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        r.json()["error"]["data"]["retryAfterSeconds"]
            .as_u64()
            .is_some(),
        "{}",
        r.text()
    );
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 200);
}

#[test]
fn backends_get_a_verifiable_identity_assertion_and_never_the_client_token() {
    let s = setup();
    let jwt = s.idp.token("k1", &claims("bob"));
    assert_eq!(call(&s, &jwt, tool_call("get-secret")).status, 200);
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 200);

    let jwks = http::get(&s.d.edge_setup.admin("/.well-known/jwks.json"))
        .unwrap()
        .json();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let seen = s.backend.seen();
    assert_eq!(seen.len(), 2);
    for (req, principal, group) in [
        (&seen[0], "jwt:bob", true),
        (&seen[1], "apikey:ci-bot", false),
    ] {
        assert!(
            req.header("authorization").is_none(),
            "client token reached the backend"
        );
        let token = req
            .header("x-underpass-identity")
            .expect("identity assertion");
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = set.find(&kid).expect("assertion key in the published JWKS");
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["rec"]);
        let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .expect("assertion verifies against the edge's JWKS");
        assert_eq!(data.claims["sub"], principal);
        assert!(data.claims["iss"]
            .as_str()
            .unwrap()
            .starts_with("spiffe://underpass.local/edge/"));
        assert_eq!(
            data.claims["groups"]
                .as_array()
                .is_some_and(|g| !g.is_empty()),
            group,
            "{}",
            data.claims
        );
        assert!(data.claims["exp"].as_u64().unwrap() <= now() + 61);
        // A token for another service does not verify here.
        let mut other = Validation::new(Algorithm::ES256);
        other.set_audience(&["other-service"]);
        assert!(
            jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &other)
                .is_err()
        );
    }
}

/// The assertion is reused while fresh (its `jti` names the token), so what identifies one
/// request at the backend is `x-underpass-request-id`: unique per request, and the same id the
/// edge's audit record carries.
#[test]
fn every_request_gets_its_own_id_at_the_backend_and_in_the_audit_log() {
    let s = setup();
    for _ in 0..2 {
        assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 200);
    }
    let seen = s.backend.seen();
    assert_eq!(seen.len(), 2);
    let ids: Vec<&str> = seen
        .iter()
        .map(|r| r.header("x-underpass-request-id").expect("request id"))
        .collect();
    assert_ne!(ids[0], ids[1], "request ids repeat");
    for id in &ids {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    // Documented: one principal's consecutive requests may share one assertion.
    assert_eq!(
        seen[0].header("x-underpass-identity"),
        seen[1].header("x-underpass-identity")
    );
    let log = s.d.path().join("audit.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let audited: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["request_id"].as_str().map(str::to_owned))
            .collect();
        if ids.iter().all(|id| audited.iter().any(|a| a == id)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request ids {ids:?} not in the audit log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rewrites the lines of a log.
type Tamper = Box<dyn Fn(&[&str]) -> Vec<String>>;

#[test]
fn audit_log_of_real_traffic_verifies_and_every_tampering_is_detected() {
    let mut s = setup();
    let jwt = s.idp.token("k1", &claims("bob"));
    for body in [
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        tool_call("echo"),
        tool_call("delete-everything"),
        tool_call("get-secret"),
    ] {
        call(&s, &jwt, body);
    }
    call(&s, "wrong", tool_call("echo"));
    s.d.edge.stop(); // flushes the log and writes a final checkpoint
    let log = s.d.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One line per answer, and a `dispatched` line, written before, for each of the three calls
    // that went down the tunnel (the denied one and the 401 never did).
    let dispatched = records
        .iter()
        .filter(|r| r["outcome"] == "dispatched")
        .count();
    assert_eq!((lines.len(), dispatched), (8, 3), "{text}");
    let denied = records
        .iter()
        .find(|r| r["target"] == "delete-everything")
        .unwrap_or_else(|| panic!("no line for the denied call: {text}"));
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied["rule"], "no-deletes");
    assert_eq!(denied["principal"], "jwt:bob");
    assert_eq!(denied["target"], "delete-everything");
    assert_eq!(denied["auth_method"], "jwt");
    assert!(
        denied.get("arguments").is_none(),
        "arguments are redacted by default"
    );
    assert!(
        !text.contains(API_KEY) && !text.contains(&jwt),
        "a credential was logged"
    );

    let verify = |file: &std::path::Path| {
        Command::new(bin("underpass-edge"))
            .args(["audit", "verify"])
            .arg(file)
            .output()
            .unwrap()
    };
    let ok = verify(&log);
    assert!(ok.status.success(), "{}", show(&ok));

    let tampered: [(&str, Tamper); 5] = [
        (
            "edited",
            Box::new(|l| {
                l.iter()
                    .map(|x| x.replace("\"deny\"", "\"allow\""))
                    .collect()
            }),
        ),
        (
            "removed",
            Box::new(|l| {
                l.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != 1)
                    .map(|(_, x)| x.to_string())
                    .collect()
            }),
        ),
        (
            "inserted",
            Box::new(|l| {
                let mut v: Vec<String> = l.iter().map(|x| x.to_string()).collect();
                v.insert(2, l[1].to_string());
                v
            }),
        ),
        (
            "reordered",
            Box::new(|l| {
                let mut v: Vec<String> = l.iter().map(|x| x.to_string()).collect();
                v.swap(1, 2);
                v
            }),
        ),
        (
            "cut from the end",
            Box::new(|l| l[..l.len() - 1].iter().map(|x| x.to_string()).collect()),
        ),
    ];
    for (what, change) in tampered {
        let copy_dir = tempfile::tempdir().unwrap();
        for ext in ["checkpoints", "pub"] {
            std::fs::copy(
                s.d.path().join(format!("audit.jsonl.{ext}")),
                copy_dir.path().join(format!("audit.jsonl.{ext}")),
            )
            .unwrap();
        }
        let copy = copy_dir.path().join("audit.jsonl");
        std::fs::write(&copy, change(&lines).join("\n") + "\n").unwrap();
        let out = verify(&copy);
        assert!(
            !out.status.success(),
            "{what} log passed verification:\n{}",
            show(&out)
        );
    }
}

#[test]
fn policy_check_cli_explains_decisions() {
    let s = setup();
    let check = |args: &[&str]| {
        run_ok(
            Command::new(bin("underpass-edge"))
                .args(["policy", "check", "--config"])
                .arg(&s.d.edge_setup.config)
                .args(args),
        )
    };
    assert!(check(&[
        "--principal",
        "apikey:ci-bot",
        "--service",
        "rec",
        "--tool",
        "echo"
    ])
    .starts_with("allow (rule \"bots-echo\")"));
    assert!(check(&[
        "--principal",
        "jwt:bob",
        "--group",
        "eng",
        "--service",
        "rec",
        "--tool",
        "delete-everything"
    ])
    .starts_with("deny (rule \"no-deletes\")"));
    assert!(check(&[
        "--principal",
        "jwt:eve",
        "--service",
        "rec",
        "--tool",
        "echo"
    ])
    .starts_with("deny (default deny"));
}

#[test]
fn policy_reloads_on_change_and_sighup_and_a_broken_file_keeps_the_old_one() {
    let mut s = setup();
    let policy = s.d.path().join("policy.toml");
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 200);

    // Revoke the bot's rule by editing the file: the running edge picks it up by itself.
    std::fs::write(&policy, POLICY.replace("apikey:ci-bot", "apikey:nobody")).unwrap();
    s.d.edge
        .wait_for_log("policy reloaded", Duration::from_secs(10));
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 403);

    // A broken file is refused and the last good policy stays in force.
    std::fs::write(&policy, "[[allow]\nthis is not toml").unwrap();
    s.d.edge
        .wait_for_log("policy not reloaded", Duration::from_secs(10));
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 403);
    let jwt = s.idp.token("k1", &claims("bob"));
    assert_eq!(call(&s, &jwt, tool_call("get-secret")).status, 200);

    // SIGHUP reloads on demand.
    std::fs::write(&policy, POLICY).unwrap();
    run_ok(Command::new("kill").args(["-HUP", &s.d.edge.pid().to_string()]));
    s.d.edge
        .wait_for_log_count("policy reloaded", 2, Duration::from_secs(10));
    assert_eq!(call(&s, API_KEY, tool_call("echo")).status, 200);
}

/// Client certificates on the HTTPS listener: the official TypeScript client presents one and
/// becomes `client:<name>`; a certificate of another CA, none at all, or a revoked one is refused.
#[test]
fn client_certificates_authenticate_and_revocation_bites() {
    let peers = Peers::get();
    let scratch = tempfile::tempdir().unwrap();
    let (_backend, backend_url) = start_server_everything(scratch.path(), &peers);
    let policy =
        "[[allow]]\nprincipals = [\"client:alice\"]\ntools = [\"*\"]\nresources = [\"*\"]\n";
    let mut d = Deployment::start_prepared(
        true,
        "everything",
        &backend_url,
        "revocation_list = \"pki/revoked.txt\"\n[auth]\nclient_ca = \"pki/ca.crt\"\n[policy]\nfile = \"policy.toml\"\n",
        |dir| std::fs::write(dir.join("policy.toml"), policy).unwrap(),
    );
    let (alice_crt, alice_key) = d.pki.issue("client", "alice");
    let rogue = Pki::init(&d.path().join("rogue"));
    let (mallory_crt, mallory_key) = rogue.issue("client", "alice");
    let client = |cert: Option<(&std::path::Path, &std::path::Path)>| {
        let mut cmd = Command::new(peers.path("NODE22"));
        cmd.arg(peers.path("TS_CLIENT"))
            .arg(d.edge_setup.url("everything"))
            .env("UNDERPASS_CA_FILE", d.pki.ca());
        if let Some((c, k)) = cert {
            cmd.env("UNDERPASS_CLIENT_CERT", c)
                .env("UNDERPASS_CLIENT_KEY", k);
        }
        cmd.output().unwrap()
    };

    let ok = client(Some((&alice_crt, &alice_key)));
    assert!(
        ok.status.success(),
        "alice refused:\n{}\nedge:\n{}",
        show(&ok),
        d.edge.log_text()
    );
    let v: Value = serde_json::from_slice(ok.stdout.trim_ascii()).unwrap();
    assert_eq!(v["echo"], "Echo: hello from ts-client", "{v}");

    let none = client(None);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("authentication required"),
        "{}",
        show(&none)
    );
    let foreign = client(Some((&mallory_crt, &mallory_key)));
    assert!(
        !foreign.status.success(),
        "a client certificate of another CA was accepted"
    );

    run_ok(
        Command::new(bin("underpass-certs"))
            .args(["revoke", "--dir"])
            .arg(&d.pki.dir)
            .args(["--name", "alice"]),
    );
    d.edge
        .wait_for_log("revocation list reloaded", Duration::from_secs(10));
    let revoked = client(Some((&alice_crt, &alice_key)));
    assert!(
        !revoked.status.success(),
        "a revoked client certificate was accepted:\n{}",
        show(&revoked)
    );
}
