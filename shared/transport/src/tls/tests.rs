//! Verifier and reload tests with hand-made PKIs: roots, an intermediate shaped like the
//! online connector issuer (pathlen 0, EKU clientAuth only), leaves of each role; real rustls
//! handshakes over in-memory pipes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use underpass_proto::identity::{Role, DEFAULT_TRUST_DOMAIN};

use super::*;

const MESSAGE: &str = "an intermediate may issue connector identities only";

static SERIAL: AtomicU64 = AtomicU64::new(1000);

fn serial() -> SerialNumber {
    SerialNumber::from(SERIAL.fetch_add(1, Ordering::Relaxed))
}

/// A CA (root or intermediate): its certificate and the means to sign with it.
struct Ca {
    der: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str, pathlen: u8) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, cn.to_owned());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(pathlen));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial());
    params
}

fn root(cn: &str) -> Ca {
    root_with_pathlen(cn, 1)
}

fn root_with_pathlen(cn: &str, pathlen: u8) -> Ca {
    let params = ca_params(cn, pathlen);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// The connector issuer's profile; `client_only = false` makes a sloppier intermediate without
/// EKU (to show that the issuer rule holds where EKU would not stop a server certificate).
fn intermediate(root: &Ca, client_only: bool) -> Ca {
    let mut params = ca_params("Underpass connector issuer", 0);
    if client_only {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &root.issuer).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    key: PrivateKeyDer<'static>,
    key_pem: String,
}

impl Leaf {
    fn der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
    fn reloading(&self) -> Arc<ReloadingCert> {
        Arc::new(ReloadingCert::from_der(self.chain.clone(), self.key.clone_key()).unwrap())
    }
    fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.chain_pem).unwrap();
        std::fs::write(key, &self.key_pem).unwrap();
    }
}

/// A leaf of `role` signed by `by`; the chain also carries `via` (the intermediate) if given.
fn leaf(by: &Ca, via: Option<&Ca>, role: Role, name: &str) -> Leaf {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![
        SanType::URI(
            format!("spiffe://{DEFAULT_TRUST_DOMAIN}/{}/{name}", role.as_str())
                .try_into()
                .unwrap(),
        ),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(serial());
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &by.issuer).unwrap();
    let mut chain = vec![cert.der().clone()];
    let mut chain_pem = cert.pem();
    if let Some(via) = via {
        chain.push(via.der.clone());
        chain_pem.push_str(&via.pem);
    }
    Leaf {
        chain,
        chain_pem,
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        key_pem: key.serialize_pem(),
    }
}

fn roots(cas: &[&Ca]) -> Arc<ReloadingRoots> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.der.clone()).unwrap();
    }
    Arc::new(ReloadingRoots::new(Arc::new(store)))
}

fn policy(role: Role) -> PeerPolicy {
    PeerPolicy {
        role,
        trust_domain: DEFAULT_TRUST_DOMAIN.into(),
        revoked: None,
    }
}

/// What a verifier said, as text (our policy errors by their message).
fn reason(result: Result<(), rustls::Error>) -> String {
    match result {
        Ok(()) => "accepted".into(),
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
            other.0.to_string()
        }
        Err(e) => e.to_string(),
    }
}

fn verify_client(
    verifier: &Arc<dyn rustls::server::danger::ClientCertVerifier>,
    leaf: &Leaf,
) -> String {
    reason(
        verifier
            .verify_client_cert(leaf.der(), &leaf.chain[1..], UnixTime::now())
            .map(|_| ()),
    )
}

fn verify_server(
    verifier: &Arc<dyn rustls::client::danger::ServerCertVerifier>,
    leaf: &Leaf,
) -> String {
    let name = ServerName::try_from("localhost").unwrap();
    reason(
        verifier
            .verify_server_cert(leaf.der(), &leaf.chain[1..], &name, &[], UnixTime::now())
            .map(|_| ()),
    )
}

#[test]
fn connector_leaf_under_the_intermediate_is_accepted_other_roles_are_refused() {
    let ca = root("Underpass CA");
    let issuer = intermediate(&ca, true);
    let tunnel =
        verify::client_verifier(roots(&[&ca]), policy(Role::Connector), false, false).unwrap();
    let clients =
        verify::client_verifier(roots(&[&ca]), policy(Role::Client), true, false).unwrap();

    let connector = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
    assert_eq!(verify_client(&tunnel, &connector), "accepted");

    let client = leaf(&issuer, Some(&issuer), Role::Client, "alice");
    let said = verify_client(&clients, &client);
    assert!(said.contains(MESSAGE), "{said}");
    let edge = leaf(&issuer, Some(&issuer), Role::Edge, "edge");
    let said = verify_client(&tunnel, &edge);
    assert!(said.contains(MESSAGE), "{said}");

    // Signed by the root directly, the same identities pass (the DN comparison sees roots).
    assert_eq!(
        verify_client(&clients, &leaf(&ca, None, Role::Client, "alice")),
        "accepted"
    );
    assert_eq!(
        verify_client(&tunnel, &leaf(&ca, None, Role::Connector, "dc1")),
        "accepted"
    );
}

#[test]
fn a_pathlen_0_root_of_an_older_deployment_still_accepts_leaves_of_its_issuer() {
    // webpki treats a root as a bare trust anchor and does not check its path length: CAs
    // made before the issuer existed (pathlen 0) keep working. Pinned so a change is noticed.
    let ca = root_with_pathlen("Underpass CA", 0);
    let issuer = intermediate(&ca, true);
    let tunnel =
        verify::client_verifier(roots(&[&ca]), policy(Role::Connector), false, false).unwrap();
    let connector = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
    assert_eq!(verify_client(&tunnel, &connector), "accepted");
}

#[test]
fn fixed_roots_are_sent_as_hints_reloading_ones_are_not() {
    let ca = root("Underpass CA");
    let fixed = verify::client_verifier(roots(&[&ca]), policy(Role::Client), true, true).unwrap();
    assert_eq!(fixed.root_hint_subjects().len(), 1);
    let live = verify::client_verifier(roots(&[&ca]), policy(Role::Client), true, false).unwrap();
    assert!(live.root_hint_subjects().is_empty());
    assert!(!live.client_auth_mandatory() && live.offer_client_auth());
}

#[test]
fn an_edge_certificate_minted_by_an_intermediate_is_refused_by_the_connector() {
    let ca = root("Underpass CA");
    let edge_check = verify::server_verifier(roots(&[&ca]), policy(Role::Edge)).unwrap();
    assert_eq!(
        verify_server(&edge_check, &leaf(&ca, None, Role::Edge, "edge")),
        "accepted"
    );

    // The issuer profile (EKU clientAuth only) already fails webpki for a server certificate.
    let issuer = intermediate(&ca, true);
    let said = verify_server(
        &edge_check,
        &leaf(&issuer, Some(&issuer), Role::Edge, "edge"),
    );
    assert_ne!(said, "accepted");
    // An intermediate without that EKU: the issuer rule refuses it.
    let sloppy = intermediate(&ca, false);
    let said = verify_server(
        &edge_check,
        &leaf(&sloppy, Some(&sloppy), Role::Edge, "edge"),
    );
    assert!(said.contains(MESSAGE), "{said}");
}

#[test]
fn a_revoked_intermediate_refuses_its_leaves() {
    let ca = root("Underpass CA");
    let issuer = intermediate(&ca, true);
    let revoked_der = issuer.der.clone();
    let mut connectors = policy(Role::Connector);
    connectors.revoked = Some(Arc::new(move |cert| cert.as_ref() == revoked_der.as_ref()));
    let tunnel = verify::client_verifier(roots(&[&ca]), connectors, false, false).unwrap();

    let under = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
    let said = verify_client(&tunnel, &under);
    assert_eq!(
        said,
        rustls::Error::InvalidCertificate(CertificateError::Revoked).to_string()
    );
    // A leaf the root signed itself is not affected.
    assert_eq!(
        verify_client(&tunnel, &leaf(&ca, None, Role::Connector, "dc2")),
        "accepted"
    );
}

/// The chains each side of a [`pipe_handshake`] saw: the client's (none without a client
/// certificate) and the server's.
type Seen = (
    Option<Vec<CertificateDer<'static>>>,
    Option<Vec<CertificateDer<'static>>>,
);

/// One TLS handshake over an in-memory pipe, then one byte from the server, bounded; the
/// chains each side saw, or the sides' errors.
async fn pipe_handshake(
    server: &Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Result<Seen, String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = ServerName::try_from("localhost").unwrap();
    let server_side = async move {
        let mut tls = acceptor
            .accept(a)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let seen = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec);
        tls.write_all(b"s")
            .await
            .map_err(|e| format!("server: {e}"))?;
        tls.flush().await.map_err(|e| format!("server: {e}"))?;
        Ok::<_, String>(seen)
    };
    let client_side = async move {
        let mut tls = connector
            .connect(name, b)
            .await
            .map_err(|e| format!("client: {e}"))?;
        let seen = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec);
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)
            .await
            .map_err(|e| format!("client: {e}"))?;
        Ok::<_, String>(seen)
    };
    let bounded = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(server_side, client_side)
    });
    match bounded.await.map_err(|_| "timed out".to_owned())? {
        (Ok(server_saw), Ok(client_saw)) => Ok((server_saw, client_saw)),
        (server, client) => Err(format!("{:?} / {:?}", server.err(), client.err())),
    }
}

/// A mutually authenticated [`pipe_handshake`]: the leaves the client and the server saw.
async fn handshake(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> Result<(CertificateDer<'static>, CertificateDer<'static>), String> {
    let (server_saw, client_saw) = pipe_handshake(server, client.clone()).await?;
    let leaf = |chain: Option<Vec<_>>, what: &str| {
        chain
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| format!("no {what} certificate"))
    };
    Ok((leaf(client_saw, "server")?, leaf(server_saw, "client")?))
}

struct Setup {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn setup(
    edge: Arc<ReloadingCert>,
    edge_roots: Arc<ReloadingRoots>,
    connector: Arc<ReloadingCert>,
    connector_roots: Arc<ReloadingRoots>,
) -> Setup {
    Setup {
        server: Arc::new(
            tunnel_server_crypto_reloading(edge, edge_roots, policy(Role::Connector)).unwrap(),
        ),
        client: Arc::new(
            tunnel_client_crypto_reloading(connector, connector_roots, policy(Role::Edge)).unwrap(),
        ),
    }
}

#[tokio::test]
async fn connector_under_the_intermediate_completes_a_tunnel_handshake() {
    let ca = root("Underpass CA");
    let issuer = intermediate(&ca, true);
    let edge = leaf(&ca, None, Role::Edge, "edge");
    let dc1 = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
    let s = setup(
        edge.reloading(),
        roots(&[&ca]),
        dc1.reloading(),
        roots(&[&ca]),
    );
    let (edge_seen, dc1_seen) = handshake(&s.server, &s.client).await.unwrap();
    assert_eq!((&edge_seen, &dc1_seen), (edge.der(), dc1.der()));
}

#[tokio::test]
async fn reloaded_certificates_serve_new_handshakes_and_bad_files_keep_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let (edge_crt, edge_key) = (dir.path().join("edge.crt"), dir.path().join("edge.key"));
    let (dc_crt, dc_key) = (dir.path().join("dc1.crt"), dir.path().join("dc1.key"));
    let ca = root("Underpass CA");
    let edge1 = leaf(&ca, None, Role::Edge, "edge");
    let dc1_old = leaf(&ca, None, Role::Connector, "dc1");
    edge1.write(&edge_crt, &edge_key);
    dc1_old.write(&dc_crt, &dc_key);
    let edge_cert = Arc::new(ReloadingCert::load(&edge_crt, &edge_key).unwrap());
    let dc_cert = Arc::new(ReloadingCert::load(&dc_crt, &dc_key).unwrap());
    let s = setup(
        edge_cert.clone(),
        roots(&[&ca]),
        dc_cert.clone(),
        roots(&[&ca]),
    );
    assert_eq!(
        handshake(&s.server, &s.client).await.unwrap(),
        (edge1.der().clone(), dc1_old.der().clone())
    );

    // A live connection made before the reload keeps working after it.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("localhost").unwrap();
    let (live_server, live_client) = tokio::join!(
        tokio_rustls::TlsAcceptor::from(s.server.clone()).accept(a),
        tokio_rustls::TlsConnector::from(s.client.clone()).connect(name, b)
    );
    let (mut live_server, mut live_client) = (live_server.unwrap(), live_client.unwrap());

    let edge2 = leaf(&ca, None, Role::Edge, "edge");
    let dc1_new = leaf(&ca, None, Role::Connector, "dc1");
    edge2.write(&edge_crt, &edge_key);
    dc1_new.write(&dc_crt, &dc_key);
    edge_cert
        .reload_expecting(&edge_crt, &edge_key, Role::Edge, DEFAULT_TRUST_DOMAIN)
        .unwrap();
    dc_cert.reload(&dc_crt, &dc_key).unwrap();
    assert_eq!(
        handshake(&s.server, &s.client).await.unwrap(),
        (edge2.der().clone(), dc1_new.der().clone()),
        "new handshakes present the new certificates"
    );
    live_client.write_all(b"still here").await.unwrap();
    live_client.flush().await.unwrap();
    let mut got = [0u8; 10];
    live_server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still here");

    // Garbage, a key of another certificate, a missing file, the wrong role: refused, and
    // the last good pair stays in force.
    std::fs::write(&edge_crt, "not a certificate").unwrap();
    assert!(edge_cert.reload(&edge_crt, &edge_key).is_err());
    let edge3 = leaf(&ca, None, Role::Edge, "edge");
    std::fs::write(&edge_crt, &edge3.chain_pem).unwrap();
    let mismatch = edge_cert.reload(&edge_crt, &edge_key).unwrap_err();
    assert!(
        matches!(mismatch, TlsError::KeyMismatch { .. }),
        "{mismatch}"
    );
    assert!(edge_cert
        .reload(&dir.path().join("gone.crt"), &edge_key)
        .is_err());
    dc1_new.write(&edge_crt, &edge_key);
    let wrong = edge_cert
        .reload_expecting(&edge_crt, &edge_key, Role::Edge, DEFAULT_TRUST_DOMAIN)
        .unwrap_err();
    assert!(matches!(wrong, TlsError::Identity { .. }), "{wrong}");
    assert_eq!(edge_cert.leaf().as_ref(), Some(edge2.der()));
    assert_eq!(
        handshake(&s.server, &s.client).await.unwrap().0,
        edge2.der().clone()
    );
}

fn write_bundle(path: &Path, cas: &[&Ca]) {
    let pem: String = cas.iter().map(|ca| ca.pem.as_str()).collect();
    std::fs::write(path, pem).unwrap();
}

#[tokio::test]
async fn reloaded_roots_trust_a_new_ca_and_an_overlap_bundle_trusts_both() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.crt");
    let old = root("Underpass CA");
    let new = root("Underpass CA 2");
    write_bundle(&bundle, &[&old]);
    let edge_roots = Arc::new(ReloadingRoots::load(&bundle).unwrap());
    let edge = leaf(&old, None, Role::Edge, "edge");
    let on_old = leaf(&old, None, Role::Connector, "dc1");
    let on_new = leaf(&new, None, Role::Connector, "dc2");
    let connectors_trust = roots(&[&old]);
    let via_old = setup(
        edge.reloading(),
        edge_roots.clone(),
        on_old.reloading(),
        connectors_trust.clone(),
    );
    let via_new = setup(
        edge.reloading(),
        edge_roots.clone(),
        on_new.reloading(),
        connectors_trust,
    );
    // The two setups share the edge's roots; the servers are equivalent.
    let (server, old_client, new_client) = (via_old.server, via_old.client, via_new.client);

    assert!(handshake(&server, &old_client).await.is_ok());
    let refused = handshake(&server, &new_client).await.unwrap_err();
    // The edge refuses the client certificate of an unknown CA.
    assert!(
        refused.contains("server: invalid peer certificate"),
        "{refused}"
    );

    write_bundle(&bundle, &[&old, &new]);
    edge_roots.reload(&bundle).unwrap();
    assert_eq!(edge_roots.generation(), 1);
    assert!(
        handshake(&server, &old_client).await.is_ok(),
        "overlap: old CA"
    );
    assert!(
        handshake(&server, &new_client).await.is_ok(),
        "overlap: new CA"
    );

    // A broken bundle keeps the roots in force.
    std::fs::write(&bundle, "garbage").unwrap();
    assert!(edge_roots.reload(&bundle).is_err());
    assert_eq!(edge_roots.generation(), 1);
    assert!(handshake(&server, &new_client).await.is_ok());

    // The old root leaves the bundle: its connectors are refused from the next handshake.
    write_bundle(&bundle, &[&new]);
    edge_roots.reload(&bundle).unwrap();
    assert!(handshake(&server, &old_client).await.is_err());
    assert!(handshake(&server, &new_client).await.is_ok());
}

#[tokio::test]
async fn the_connector_picks_up_a_new_ca_for_the_edge_certificate() {
    let old = root("Underpass CA");
    let new = root("Underpass CA 2");
    let edge_on_new = leaf(&new, None, Role::Edge, "edge");
    let dc1 = leaf(&old, None, Role::Connector, "dc1");
    let trusted = roots(&[&old]);
    let s = setup(
        edge_on_new.reloading(),
        roots(&[&old]),
        dc1.reloading(),
        trusted.clone(),
    );
    let refused = handshake(&s.server, &s.client).await.unwrap_err();
    assert!(
        refused.contains("client: invalid peer certificate"),
        "{refused}"
    );
    let mut both = RootCertStore::empty();
    both.add(old.der.clone()).unwrap();
    both.add(new.der.clone()).unwrap();
    trusted.replace(Arc::new(both));
    assert!(handshake(&s.server, &s.client).await.is_ok());
}

#[test]
fn credentials_builders_still_work() {
    let ca = root("Underpass CA");
    let edge = leaf(&ca, None, Role::Edge, "edge");
    let mut store = RootCertStore::empty();
    store.add(ca.der.clone()).unwrap();
    let creds = Credentials {
        chain: edge.chain.clone(),
        key: edge.key.clone_key(),
        roots: Arc::new(store),
    };
    let server = tunnel_server_crypto(&creds, policy(Role::Connector)).unwrap();
    assert!(server.alpn_protocols.iter().any(|p| p == ALPN));
    tunnel_client_crypto(&creds, policy(Role::Edge)).unwrap();
    https_server_crypto(
        edge.chain.clone(),
        edge.key.clone_key(),
        Some((creds.roots.clone(), policy(Role::Client))),
    )
    .unwrap();
    // A key that is not the leaf's is refused up front.
    let other = leaf(&ca, None, Role::Edge, "edge");
    assert!(ReloadingCert::from_der(edge.chain.clone(), other.key.clone_key()).is_err());
}

#[test]
fn der_contents_strips_short_and_long_sequence_headers() {
    assert_eq!(der_contents(&[0x30, 2, 1, 2]), &[1, 2]);
    let long: Vec<u8> = [0x30, 0x81, 200].into_iter().chain([7u8; 200]).collect();
    assert_eq!(der_contents(&long), &[7u8; 200][..]);
    assert_eq!(der_contents(&[0x31, 1, 1]), &[0x31, 1, 1]);
}

#[tokio::test]
async fn quic_endpoint_built_once_serves_the_reloaded_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("edge.crt"), dir.path().join("edge.key"));
    let ca = root("Underpass CA");
    let edge1 = leaf(&ca, None, Role::Edge, "edge");
    edge1.write(&crt, &key);
    let edge_cert = Arc::new(ReloadingCert::load(&crt, &key).unwrap());
    let dc1 = leaf(&ca, None, Role::Connector, "dc1");
    let s = setup(
        edge_cert.clone(),
        roots(&[&ca]),
        dc1.reloading(),
        roots(&[&ca]),
    );
    let server_config = tunnel_server_config(Arc::unwrap_or_clone(s.server.clone())).unwrap();
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(
        tunnel_client_config(Arc::unwrap_or_clone(s.client.clone())).unwrap(),
    );
    let accepting = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Some(incoming) = server.accept().await {
                if let Ok(conn) = incoming.await {
                    conns.push(conn);
                }
            }
        })
    };
    let connect = || async {
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            client.connect(addr, "localhost").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        let leaf = peer_chain(&conn).into_iter().next().unwrap();
        (conn, leaf)
    };
    let (first, seen) = connect().await;
    assert_eq!(&seen, edge1.der());

    let edge2 = leaf(&ca, None, Role::Edge, "edge");
    edge2.write(&crt, &key);
    edge_cert.reload(&crt, &key).unwrap();
    let (_second, seen) = connect().await;
    assert_eq!(
        &seen,
        edge2.der(),
        "a new handshake sees the new certificate"
    );
    assert!(
        first.close_reason().is_none(),
        "the live connection is untouched"
    );
    assert_eq!(peer_chain(&first).first(), Some(edge1.der()));
    accepting.abort();
}

mod reauth {
    use super::*;
    use crate::tls::reauth::{prove, Proof, ReauthError, Reauthenticator, BINDING_LEN};

    fn certified(leaf: &Leaf) -> rustls::sign::CertifiedKey {
        ReloadingCert::from_der(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap()
            .current()
            .as_ref()
            .clone()
    }

    #[test]
    fn a_renewed_chain_with_its_key_proves_the_connector() {
        let ca = root("Underpass CA");
        let issuer = intermediate(&ca, true);
        let reauth = Reauthenticator::new(roots(&[&ca]), policy(Role::Connector)).unwrap();
        let renewed = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
        let binding = [7u8; BINDING_LEN];
        let proof = prove(&certified(&renewed), &binding).unwrap();
        let id = reauth.check(&renewed.chain, &binding, &proof).unwrap();
        assert_eq!(id.name, "dc1");
        assert_eq!(id.role, Role::Connector);

        // Made for another tunnel (another binding): refused.
        let other = [8u8; BINDING_LEN];
        assert!(matches!(
            reauth.check(&renewed.chain, &other, &proof),
            Err(ReauthError::Signature)
        ));
        // A certificate someone else holds, with a proof by the wrong key: refused.
        let thief = leaf(&issuer, Some(&issuer), Role::Connector, "dc1");
        let stolen = prove(&certified(&thief), &binding).unwrap();
        assert!(matches!(
            reauth.check(&renewed.chain, &binding, &stolen),
            Err(ReauthError::Signature)
        ));
        // A tampered signature, an unknown scheme, an empty chain.
        let mut bent = proof.clone();
        if let Some(b) = bent.signature.last_mut() {
            *b ^= 1;
        }
        assert!(reauth.check(&renewed.chain, &binding, &bent).is_err());
        let odd = Proof {
            scheme: 0x0201, // RSA PKCS#1 SHA-1: not a TLS 1.3 scheme
            signature: proof.signature.clone(),
        };
        assert!(matches!(
            reauth.check(&renewed.chain, &binding, &odd),
            Err(ReauthError::Scheme(0x0201))
        ));
        assert!(matches!(
            reauth.check(&[], &binding, &proof),
            Err(ReauthError::NoCertificate)
        ));
    }

    #[test]
    fn the_handshake_rules_apply_to_a_reauthentication() {
        let ca = root("Underpass CA");
        // An issuer without the connector-only constraints: our issuer rule must catch it.
        let issuer = intermediate(&ca, false);
        let stranger = root("Another CA");
        let revoked = leaf(&ca, None, Role::Connector, "dc9");
        let revoked_der = revoked.chain[0].clone();
        let mut connectors = policy(Role::Connector);
        connectors.revoked = Some(Arc::new(move |c| c.as_ref() == revoked_der.as_ref()));
        let reauth = Reauthenticator::new(roots(&[&ca]), connectors).unwrap();
        let binding = [1u8; BINDING_LEN];
        let refused = |l: &Leaf| {
            let proof = prove(&certified(l), &binding).unwrap();
            match reauth.check(&l.chain, &binding, &proof) {
                Err(ReauthError::Certificate(e)) => reason(Err(e)),
                other => panic!("accepted or refused for another reason: {other:?}"),
            }
        };
        // Another CA, another role, an edge identity minted by the issuer, a revoked leaf.
        refused(&leaf(&stranger, None, Role::Connector, "dc1"));
        refused(&leaf(&ca, None, Role::Edge, "edge"));
        assert!(refused(&leaf(&issuer, Some(&issuer), Role::Edge, "e")).contains(MESSAGE));
        assert!(refused(&revoked).contains("Revoked"));
    }
}

/// One enrollment handshake (no client certificate) by a connector pinning `pin`; returns the
/// chain the edge presented.
async fn enroll_handshake(
    server: &Arc<rustls::ServerConfig>,
    pin: &Ca,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, pin.der.as_ref())
        .as_ref()
        .try_into()
        .unwrap();
    let client = Arc::new(enroll_client_crypto(sha, DEFAULT_TRUST_DOMAIN).unwrap());
    let (_, client_saw) = pipe_handshake(server, client).await?;
    client_saw.ok_or_else(|| "client: no server certificate".to_owned())
}

#[tokio::test]
async fn the_enrollment_endpoint_presents_the_certificate_and_ca_bundle_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key, bundle) = (
        dir.path().join("edge.crt"),
        dir.path().join("edge.key"),
        dir.path().join("ca.crt"),
    );
    let old = root("Underpass CA");
    let new = root("Underpass CA 2");
    let edge1 = leaf(&old, None, Role::Edge, "edge");
    edge1.write(&crt, &key);
    write_bundle(&bundle, &[&old]);
    let cert = Arc::new(ReloadingCert::load(&crt, &key).unwrap());
    let roots = Arc::new(ReloadingRoots::load(&bundle).unwrap());
    let server = Arc::new(enroll_server_crypto_reloading(cert.clone(), roots.clone()).unwrap());

    assert_eq!(
        enroll_handshake(&server, &old).await.unwrap(),
        vec![edge1.der().clone(), old.der.clone()]
    );
    // A token pinning a CA the edge does not present yet is refused.
    let refused = enroll_handshake(&server, &new).await.unwrap_err();
    assert!(refused.contains("PinMismatch"), "{refused}");

    // CA rotation: the bundle holds both, then the edge certificate comes from the new CA.
    // Both reach the next handshake without a new config.
    write_bundle(&bundle, &[&old, &new]);
    roots.reload(&bundle).unwrap();
    let edge2 = leaf(&new, None, Role::Edge, "edge");
    edge2.write(&crt, &key);
    cert.reload_expecting(&crt, &key, Role::Edge, DEFAULT_TRUST_DOMAIN)
        .unwrap();
    assert_eq!(
        enroll_handshake(&server, &new).await.unwrap(),
        vec![edge2.der().clone(), old.der.clone(), new.der.clone()]
    );
    // Tokens pinning the old CA still find it presented, but the edge's certificate no
    // longer verifies under it.
    assert!(enroll_handshake(&server, &old).await.is_err());

    // A bad bundle keeps the last good one presented.
    std::fs::write(&bundle, "garbage").unwrap();
    assert!(roots.reload(&bundle).is_err());
    assert_eq!(
        enroll_handshake(&server, &new).await.unwrap().len(),
        3,
        "the last good bundle is still presented"
    );
}
