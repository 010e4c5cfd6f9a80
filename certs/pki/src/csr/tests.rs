use super::*;
use rcgen::{BasicConstraints, CustomExtension};
use rustls_pki_types::pem::PemObject;

const TD: &str = "underpass.local";

/// An RSA-1024 request for `spiffe://underpass.local/connector/dc1` made with
/// `openssl req -new -newkey rsa:1024 ...` (rcgen cannot make RSA keys with ring).
const RSA_CSR: &str = "\
-----BEGIN CERTIFICATE REQUEST-----\n\
MIIBkTCB+wIBADAOMQwwCgYDVQQDDANkYzEwgZ8wDQYJKoZIhvcNAQEBBQADgY0A\n\
MIGJAoGBAKgwT/2VG6oIzUs1yTJRNvYoCfuHP2mp7G906eLnVZG3JPQRPsrPJnjR\n\
vBHnp5eBRjKtjFOq/qHAE1WkbtJ2PV45PFqMQFGFCAf0NGq3nSgMFtrk1ubW/19+\n\
jT/fE+YDMF/LyXILMOy9cKjQOEXMZ6TgFEd/2k80DfYMoIPHEwxhAgMBAAGgRDBC\n\
BgkqhkiG9w0BCQ4xNTAzMDEGA1UdEQQqMCiGJnNwaWZmZTovL3VuZGVycGFzcy5s\n\
b2NhbC9jb25uZWN0b3IvZGMxMA0GCSqGSIb3DQEBCwUAA4GBAHCbsrJnSqp+OFJD\n\
LNR8kLvs4+Z/7WioR5/8xpKkfuCqfq0bNmC0vuOxwkvKFNbcpVfe6b2zygINrFuw\n\
183U8aam5oIuL3B/H5NqhS28bLZyCif4FMjv5oWzDdJOEuDkvteiuEgiAZX1tiDX\n\
mTn80QbVKc/Eidc14o3MJzhKM3+z\n\
-----END CERTIFICATE REQUEST-----\n\
";

fn expected() -> SpiffeId {
    SpiffeId::new(TD, Role::Connector, "dc1").expect("id")
}

/// A request made with `key` for `params` (SAN etc. as given).
fn request(params: CertificateParams, key: &KeyPair) -> String {
    params
        .serialize_request(key)
        .expect("csr")
        .pem()
        .expect("pem")
}

fn with_sans(sans: Vec<SanType>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.subject_alt_names = sans;
    p
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.to_owned().try_into().expect("uri"))
}

#[test]
fn new_makes_a_request_that_checks() {
    let (key_pem, csr_pem) = new("dc1", TD).expect("new");
    assert!(key_pem.contains("PRIVATE KEY"));
    assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let public = check_request(csr_pem.as_bytes(), &expected()).expect("accepted");
    let key = KeyPair::from_pem(&key_pem).expect("key");
    assert_eq!(
        rcgen::PublicKeyData::der_bytes(&public),
        key.public_key_raw()
    );
    assert!(new("Bad/Name", TD).is_err());
    assert!(new("dc1", "Bad_TD").is_err());
}

#[test]
fn accepts_no_san_ed25519_and_ignores_subject_and_usages() {
    let key = KeyPair::generate().expect("key");
    check_request(request(with_sans(vec![]), &key).as_bytes(), &expected()).expect("no SAN");
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
    check_request(request(with_sans(vec![]), &ed).as_bytes(), &expected()).expect("ed25519");
    let mut p = with_sans(vec![uri(&format!("spiffe://{TD}/connector/dc1"))]);
    p.distinguished_name
        .push(DnType::CommonName, "root-of-all-evil");
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    p.is_ca = IsCa::ExplicitNoCa;
    check_request(request(p, &key).as_bytes(), &expected()).expect("ignored fields");
}

#[test]
fn refusals() {
    let key = KeyPair::generate().expect("key");
    let good = request(with_sans(vec![]), &key);

    let err = check_request(b"garbage", &expected()).expect_err("garbage");
    assert!(matches!(err, CsrRefusal::Malformed(_)), "{err}");
    let err = check_request(b"-----BEGIN NOTHING-----\n", &expected()).expect_err("pem");
    assert!(matches!(err, CsrRefusal::Malformed(_)), "{err}");
    let err = check_request(&vec![b'A'; MAX_CSR_LEN + 1], &expected()).expect_err("big");
    assert!(matches!(err, CsrRefusal::TooLarge(_)), "{err}");

    // A flipped bit in the signature.
    let mut der = CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
        .expect("der")
        .as_ref()
        .to_vec();
    let last = der.len() - 1;
    der[last] ^= 1;
    let err = check_request(&der, &expected()).expect_err("bad signature");
    assert!(matches!(err, CsrRefusal::BadSignature), "{err}");

    let err = check_request(RSA_CSR.as_bytes(), &expected()).expect_err("rsa");
    assert!(matches!(err, CsrRefusal::KeyAlgorithm(_)), "{err}");
    assert!(err.to_string().contains("only ECDSA P-256"), "{err}");
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
    let err =
        check_request(request(with_sans(vec![]), &p384).as_bytes(), &expected()).expect_err("p384");
    assert!(matches!(err, CsrRefusal::KeyAlgorithm(_)), "{err}");

    for (san, shows) in [
        (uri(&format!("spiffe://{TD}/edge/dc1")), "/edge/dc1"),
        (uri(&format!("spiffe://{TD}/client/dc1")), "/client/dc1"),
        (uri("spiffe://other.test/connector/dc1"), "other.test"),
        (
            uri(&format!("spiffe://{TD}/connector/dc2")),
            "/connector/dc2",
        ),
        (
            SanType::DnsName("edge.example.com".try_into().expect("dns")),
            "DNS name edge.example.com",
        ),
        (
            SanType::IpAddress([127, 0, 0, 1].into()),
            "IP address 127.0.0.1",
        ),
    ] {
        let err = check_request(request(with_sans(vec![san]), &key).as_bytes(), &expected())
            .expect_err(shows);
        assert!(matches!(err, CsrRefusal::OtherIdentity { .. }), "{err}");
        assert!(err.to_string().contains(shows), "{err}");
    }
    // The right SAN plus another one.
    let both = with_sans(vec![
        uri(&format!("spiffe://{TD}/connector/dc1")),
        uri(&format!("spiffe://{TD}/edge/e")),
    ]);
    let err = check_request(request(both, &key).as_bytes(), &expected()).expect_err("two");
    assert!(matches!(err, CsrRefusal::OtherIdentity { .. }), "{err}");

    let mut ca = with_sans(vec![]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let err = check_request(request(ca, &key).as_bytes(), &expected()).expect_err("ca");
    assert!(matches!(err, CsrRefusal::RequestsCa), "{err}");

    let mut ext = with_sans(vec![]);
    ext.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 99999, 1],
        vec![0x05, 0x00],
    )];
    let err = check_request(request(ext, &key).as_bytes(), &expected()).expect_err("ext");
    assert!(matches!(err, CsrRefusal::UnsupportedExtension), "{err}");
}
