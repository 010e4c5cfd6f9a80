use super::*;
use crate::frame;

fn claims() -> TokenClaims {
    TokenClaims {
        id: [7; 16],
        trust_domain: "underpass.local".into(),
        connector: "dc1".into(),
        edges: vec!["edge.example.com:7443".into(), "[::1]:7443".into()],
        server_name: Some("edge.example.com".into()),
        ca_sha256: [1; 32],
        issuer_kid: [2; 8],
        not_after: 1_800_000_000,
        services: vec!["billing".into()],
    }
}

#[test]
fn token_round_trip() {
    let c = claims();
    let payload = c.to_payload().expect("payload");
    let s = encode_token(&payload, b"sig-bytes");
    assert!(s.starts_with(TOKEN_PREFIX));
    assert!(!s.contains('='), "no padding: {s}");
    let t = decode_token(&format!("  {s}\n")).expect("decode");
    assert_eq!(t.claims, c);
    assert_eq!(t.signed, payload);
    assert_eq!(t.sig, b"sig-bytes");
    assert_eq!(c.id_hex(), "07".repeat(16));
}

#[test]
fn optional_fields_default() {
    #[derive(Serialize)]
    struct Old {
        id: [u8; 16],
        trust_domain: String,
        connector: String,
        edges: Vec<String>,
        ca_sha256: [u8; 32],
        issuer_kid: [u8; 8],
        not_after: i64,
    }
    let old = Old {
        id: [0; 16],
        trust_domain: "td".into(),
        connector: "c".into(),
        edges: vec!["h:1".into()],
        ca_sha256: [0; 32],
        issuer_kid: [0; 8],
        not_after: 1,
    };
    let payload = rmp_serde::to_vec_named(&old).expect("encode");
    let t = decode_token(&encode_token(&payload, b"s")).expect("decode");
    assert_eq!(t.claims.server_name, None);
    assert!(t.claims.services.is_empty());
}

#[test]
fn malformed_tokens() {
    let payload = claims().to_payload().expect("payload");
    let good = encode_token(&payload, b"sig");
    type Case = (String, fn(&TokenError) -> bool);
    let cases: Vec<Case> = vec![
        ("x".repeat(MAX_TOKEN_LEN + 1), |e| {
            matches!(e, TokenError::TooLong(_))
        }),
        (good.replacen("upt1.", "upt2.", 1), |e| {
            matches!(e, TokenError::Prefix)
        }),
        (format!("{good}.x"), |e| matches!(e, TokenError::Parts)),
        ("upt1.abc".into(), |e| matches!(e, TokenError::Parts)),
        ("upt1.a+b.c".into(), |e| {
            matches!(e, TokenError::Base64("payload"))
        }),
        (encode_token(&payload, b"").to_string(), |e| {
            matches!(e, TokenError::Base64("signature"))
        }),
        (encode_token(b"\xc1", b"s"), |e| {
            matches!(e, TokenError::Payload(_))
        }),
        (encode_token(b"", b"s"), |e| {
            matches!(e, TokenError::Payload(_))
        }),
    ];
    for (s, ok) in cases {
        let err = decode_token(&s).expect_err(&s);
        assert!(ok(&err), "{s:?}: {err:?}");
    }
}

#[test]
fn invalid_claims() {
    let mutations: Vec<fn(&mut TokenClaims)> = vec![
        |c| c.connector = "Bad/Name".into(),
        |c| c.trust_domain = String::new(),
        |c| c.edges.clear(),
        |c| c.edges = vec!["h:1".into(); MAX_EDGES + 1],
        |c| c.edges = vec!["no-port".into()],
        |c| c.edges = vec!["h:0".into()],
        |c| c.edges = vec!["h:99999".into()],
        |c| c.edges = vec!["[not-v6]:1".into()],
        |c| c.edges = vec!["a b:1".into()],
        |c| c.services = vec!["s".into(); MAX_SERVICES + 1],
        |c| c.server_name = Some(String::new()),
    ];
    for (i, m) in mutations.into_iter().enumerate() {
        let mut c = claims();
        m(&mut c);
        let s = encode_token(&c.to_payload().expect("payload"), b"s");
        let err = decode_token(&s).expect_err("invalid");
        assert!(matches!(err, TokenError::Invalid(_)), "case {i}: {err:?}");
    }
}

#[test]
fn edge_addresses() {
    for ok in [
        "localhost:7443",
        "10.0.0.1:1",
        "[::1]:65535",
        "edge-1.example.com:443",
    ] {
        assert!(validate_edge_addr(ok).is_ok(), "{ok}");
    }
    for bad in ["", ":1", "h:", "h:x", "[::1]", "h:1:2x", "h/x:1"] {
        assert!(validate_edge_addr(bad).is_err(), "{bad}");
    }
}

#[test]
fn messages_round_trip_through_frames() {
    let req = EnrollRequest {
        token: "upt1.a.b".into(),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
    };
    let bytes = frame::encode(&req).expect("encode");
    let (back, used): (EnrollRequest, usize) =
        frame::decode(&bytes).expect("decode").expect("whole");
    assert_eq!((back, used), (req, bytes.len()));

    for answer in [
        EnrollAnswer::Issued {
            chain_pem: "chain".into(),
            ca_pem: "ca".into(),
            connector: "dc1".into(),
            trust_domain: "underpass.local".into(),
            not_after: 5,
        },
        EnrollAnswer::Refused {
            code: EnrollCode::TokenUsed,
            reason: "already used".into(),
        },
    ] {
        let bytes = frame::encode(&answer).expect("encode");
        let (back, _): (EnrollAnswer, usize) =
            frame::decode(&bytes).expect("decode").expect("whole");
        assert_eq!(back, answer);
    }
}

#[test]
fn unknown_codes_read_as_other() {
    let bytes = rmp_serde::to_vec_named(&"SomethingNew").expect("encode");
    let code: EnrollCode = rmp_serde::from_slice(&bytes).expect("decode");
    assert_eq!(code, EnrollCode::Other);
}
