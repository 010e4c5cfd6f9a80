use super::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::UnixTime;
use std::os::unix::fs::PermissionsExt;

const TD: &str = "underpass.local";
const DAY: Duration = Duration::from_secs(86_400);

fn pki(path_len: u8) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ca::init_with_path_len(dir.path(), TD, path_len).expect("init");
    create(dir.path(), ISSUER_VALIDITY, false).expect("issuer");
    dir
}

fn verify_client(
    root_der: &[u8],
    issuer_der: &[u8],
    leaf_der: &[u8],
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root_der);
    let anchors = [webpki::anchor_from_trusted_cert(&root).expect("anchor")];
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf).expect("end entity");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[CertificateDer::from(issuer_der)],
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .map(|_| ())
}

fn root_der(dir: &Path) -> Vec<u8> {
    inspect::read_certificate(&dir.join(crate::CA_CERT_FILE)).expect("ca")
}

#[test]
fn profile() {
    let dir = pki(1);
    let iss = load_dir(dir.path()).expect("load");
    assert_eq!(iss.trust_domain, TD);
    let (_, x) = x509_parser::parse_x509_certificate(&iss.cert_der).expect("parse");
    assert_eq!(
        x.subject().to_string(),
        format!("CN=Underpass connector issuer {TD}")
    );
    assert_ne!(x.subject(), x.issuer());
    let bc = x.basic_constraints().expect("bc").expect("present").value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = x.key_usage().expect("ku").expect("present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    let eku = x.extended_key_usage().expect("eku").expect("present").value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    let nc = x.name_constraints().expect("nc").expect("present").value;
    let permitted = nc.permitted_subtrees.as_ref().expect("permitted");
    assert_eq!(permitted.len(), 1);
    assert_eq!(nc.excluded_subtrees.as_ref().expect("excluded").len(), 2);
    let all = permitted
        .iter()
        .chain(nc.excluded_subtrees.iter().flatten());
    for s in all {
        assert!(
            !matches!(s.base, x509_parser::extensions::GeneralName::URI(_)),
            "no URI constraints (webpki would refuse every leaf)"
        );
    }
    let mode = std::fs::metadata(dir.path().join(ISSUER_KEY_FILE))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Loads via the CA's own trust-domain reader, and the key matches.
    assert_eq!(iss.kid, key_id(x.public_key().raw));
    assert!(iss.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn refuses_overwrite_and_rotates_by_archiving() {
    let dir = pki(1);
    let first = load_dir(dir.path()).expect("load");
    let err = create(dir.path(), ISSUER_VALIDITY, false).expect_err("exists");
    assert!(matches!(err, Error::IssuerExists { .. }), "{err}");
    assert!(err.to_string().contains("--rotate"), "{err}");

    let summary = create(dir.path(), 30 * DAY, true).expect("rotate");
    let (old_cert, old_key) = summary.archived.expect("archived");
    assert_eq!(
        old_cert.file_name().and_then(|n| n.to_str()),
        Some(format!("issuer-{}.crt", first.serial).as_str())
    );
    let archived = load(&old_cert, &old_key).expect("old pair still whole");
    assert_eq!(archived.serial, first.serial);
    let second = load_dir(dir.path()).expect("new pair");
    assert_ne!(second.serial, first.serial);
    assert_eq!(second.serial, summary.serial);
    assert_ne!(second.kid, first.kid);
    let mode = std::fs::metadata(&summary.key_path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary files left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // Rotating to the same archive name again is refused, never replaced.
    std::fs::hard_link(
        &summary.cert_path,
        dir.path().join(format!("issuer-{}.crt", second.serial)),
    )
    .expect("occupy archive name");
    let err = create(dir.path(), 30 * DAY, true).expect_err("archive name taken");
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(
        load_dir(dir.path()).expect("unchanged").serial,
        second.serial
    );
}

#[test]
fn ttl_bounds_and_missing_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        create(dir.path(), DAY, false),
        Err(Error::NoCa { .. })
    ));
    ca::init(dir.path(), TD).expect("init");
    let err = create(dir.path(), Duration::from_secs(5), false).expect_err("short");
    assert!(matches!(err, Error::TtlTooShort { .. }), "{err}");
    let err = create(dir.path(), 4000 * DAY, false).expect_err("beyond CA");
    assert!(matches!(err, Error::TtlBeyondCa { .. }), "{err}");
    assert!(!dir.path().join(ISSUER_CERT_FILE).exists());
}

#[test]
fn load_refusals() {
    let dir = pki(1);
    let other = pki(1);
    // A key from another issuer.
    let err = load(
        &dir.path().join(ISSUER_CERT_FILE),
        &other.path().join(ISSUER_KEY_FILE),
    )
    .expect_err("mismatch");
    assert!(matches!(err, Error::CaKeyMismatch { .. }), "{err}");
    // A leaf is not an issuer.
    let leaf = crate::issue::issue(dir.path(), Role::Client, "alice", &[]).expect("leaf");
    let err = load(&leaf.cert_path, &leaf.key_path).expect_err("leaf");
    assert!(matches!(err, Error::BadIssuer { .. }), "{err}");
    let err = load(&dir.path().join("nope.crt"), &dir.path().join("nope.key")).expect_err("none");
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

fn leaf_for(iss: &LoadedIssuer, name: &str) -> IssuedLeaf {
    let (_key, csr_pem) = csr::new(name, TD).expect("csr");
    issue_connector(iss, name, csr_pem.as_bytes(), DAY, ca::now()).expect("issue")
}

#[test]
fn issued_leaf_verifies_as_client_under_pathlen_0_and_1_roots() {
    for path_len in [0, 1] {
        let dir = pki(path_len);
        let iss = load_dir(dir.path()).expect("load");
        let leaf = leaf_for(&iss, "dc1");
        verify_client(
            &root_der(dir.path()),
            &iss.cert_der,
            &leaf.der,
            webpki::KeyUsage::client_auth(),
        )
        .unwrap_or_else(|e| panic!("pathlen {path_len}: {e:?}"));
        // And never as a server.
        assert!(verify_client(
            &root_der(dir.path()),
            &iss.cert_der,
            &leaf.der,
            webpki::KeyUsage::server_auth()
        )
        .is_err());
    }
}

#[test]
fn server_leaf_forged_with_issuer_key_fails_server_verification() {
    let dir = pki(1);
    let iss = load_dir(dir.path()).expect("load");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        format!("spiffe://{TD}/edge/evil").try_into().expect("uri"),
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.is_ca = IsCa::ExplicitNoCa;
    let now = ca::now();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + time::Duration::days(1);
    let forged = params.signed_by(&key, &iss.issuer).expect("forge");
    let err = verify_client(
        &root_der(dir.path()),
        &iss.cert_der,
        forged.der(),
        webpki::KeyUsage::server_auth(),
    )
    .expect_err("server use refused");
    assert!(
        format!("{err:?}").contains("Eku"),
        "refused for EKU: {err:?}"
    );
}

#[test]
fn leaf_profile_chain_and_ttl() {
    let dir = pki(1);
    let iss = load_dir(dir.path()).expect("load");
    let now = ca::now();
    let (_key, csr_pem) = csr::new("dc1", TD).expect("csr");
    let leaf = issue_connector(&iss, "dc1", csr_pem.as_bytes(), DAY, now).expect("issue");
    assert_eq!(
        leaf.identity.to_string(),
        format!("spiffe://{TD}/connector/dc1")
    );
    assert_eq!(leaf.not_before, now - CLOCK_SKEW);
    assert_eq!(leaf.not_after, now + time::Duration::days(1));
    let (_, x) = x509_parser::parse_x509_certificate(&leaf.der).expect("parse");
    assert_eq!(x.subject().to_string(), "CN=dc1");
    let bc = x.basic_constraints().expect("bc").expect("present").value;
    assert!(!bc.ca);
    let eku = x.extended_key_usage().expect("eku").expect("present").value;
    assert!(eku.client_auth && !eku.server_auth);
    let id = SpiffeId::from_certificate_der(&leaf.der).expect("identity");
    assert_eq!(id, leaf.identity);
    // The chain file: leaf then issuer.
    assert_eq!(leaf.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(leaf.chain_pem.ends_with(&iss.cert_pem));
    // DER requests work too, and the lifetime is cut to the issuer's end.
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .expect("der");
    let long = issue_connector(&iss, "dc1", der.as_ref(), 4000 * DAY, now).expect("long");
    assert_eq!(long.not_after, iss.not_after);
    // An expired issuer issues nothing.
    let err = issue_connector(&iss, "dc1", csr_pem.as_bytes(), DAY, iss.not_after)
        .expect_err("issuer expired");
    assert!(matches!(err, CsrRefusal::IssuerExpired(_)), "{err}");
    let err = issue_connector(&iss, "Bad/Name", csr_pem.as_bytes(), DAY, now).expect_err("name");
    assert!(matches!(err, CsrRefusal::Name(_)), "{err}");
}

#[test]
fn issued_by_its_own_ca_only() {
    let a = pki(1);
    let b = pki(1);
    let iss = load_dir(a.path()).expect("load");
    let ca_path = a.path().join(crate::CA_CERT_FILE);
    check_issued_by(&iss, &root_der(a.path()), &ca_path).expect("own CA");
    let err = check_issued_by(&iss, &root_der(b.path()), &ca_path).expect_err("other CA");
    assert!(err.to_string().contains("not signed by this CA"), "{err}");
    let other_td = tempfile::tempdir().expect("tempdir");
    ca::init(other_td.path(), "other.test").expect("init");
    let err = check_issued_by(&iss, &root_der(other_td.path()), &ca_path).expect_err("td");
    assert!(err.to_string().contains("not signed by this CA"), "{err}");
}
