//! The role-checking verifiers: webpki's chain check against the roots in force, then
//! [`PeerPolicy::check`]. The roots are read on every handshake; webpki's verifier is rebuilt
//! only when their generation changes (a reload), so replacing the CA bundle takes effect for
//! the next handshake without rebuilding any rustls config.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use underpass_proto::identity::SpiffeId;

use super::{provider, PeerPolicy, ReloadingRoots, RootsSnapshot, TlsError};

/// webpki's verifier for one generation of the roots.
struct Built<V: ?Sized> {
    generation: u64,
    verifier: Arc<V>,
}

/// The webpki verifier matching the roots in force, rebuilt when they changed.
struct Current<V: ?Sized> {
    roots: Arc<ReloadingRoots>,
    built: ArcSwap<Built<V>>,
    build: fn(&RootsSnapshot, bool) -> Result<Arc<V>, TlsError>,
    optional: bool,
}

impl<V: ?Sized> Current<V> {
    fn new(
        roots: Arc<ReloadingRoots>,
        build: fn(&RootsSnapshot, bool) -> Result<Arc<V>, TlsError>,
        optional: bool,
    ) -> Result<Self, TlsError> {
        let snapshot = roots.snapshot();
        let verifier = build(&snapshot, optional)?;
        Ok(Current {
            roots,
            built: ArcSwap::from_pointee(Built {
                generation: snapshot.generation,
                verifier,
            }),
            build,
            optional,
        })
    }

    /// The roots in force and a webpki verifier built from exactly those roots.
    fn get(&self) -> Result<(Arc<RootsSnapshot>, Arc<V>), rustls::Error> {
        let snapshot = self.roots.snapshot();
        let built = self.built.load();
        if built.generation == snapshot.generation {
            return Ok((snapshot, built.verifier.clone()));
        }
        let verifier = (self.build)(&snapshot, self.optional)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        // Two handshakes racing here both build; either result is right for its snapshot.
        self.built.store(Arc::new(Built {
            generation: snapshot.generation,
            verifier: verifier.clone(),
        }));
        Ok((snapshot, verifier))
    }

    /// The verifier in force, for the signature checks (which do not depend on the roots).
    fn any(&self) -> Arc<V> {
        self.built.load().verifier.clone()
    }
}

fn build_client(
    snapshot: &RootsSnapshot,
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(snapshot.store.clone(), provider());
    if optional {
        builder = builder.allow_unauthenticated();
    }
    builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

fn build_server(
    snapshot: &RootsSnapshot,
    _optional: bool,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(snapshot.store.clone(), provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// Client-certificate verifier: webpki chain check, then [`PeerPolicy::check`].
struct RoleClientVerifier {
    current: Current<dyn ClientCertVerifier>,
    policy: PeerPolicy,
    optional: bool,
    /// Any role of the trust domain passes (the policy's role is ignored): the admin
    /// listener refuses a non-operator per request, with an answer that says why.
    any_role: bool,
    /// CA names sent to clients: those of fixed roots; none when the roots can change
    /// (`root_hint_subjects` borrows `self`, and TLS 1.3 clients need no hints).
    hints: Vec<DistinguishedName>,
}

impl std::fmt::Debug for RoleClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleClientVerifier")
            .field("policy", &self.policy)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

/// A client-certificate verifier over `roots` (read on every handshake) and `policy`.
/// `optional` lets clients without a certificate through (the HTTPS listener); `hints` sends
/// the current root names as CA hints (only for roots that never change).
pub(super) fn client_verifier(
    roots: Arc<ReloadingRoots>,
    policy: PeerPolicy,
    optional: bool,
    hints: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let hints = if hints {
        roots
            .snapshot()
            .subjects
            .iter()
            .map(|s| DistinguishedName::in_sequence(s))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Arc::new(RoleClientVerifier {
        current: Current::new(roots, build_client, optional)?,
        policy,
        optional,
        any_role: false,
        hints,
    }))
}

/// An optional client-certificate verifier over `roots` that checks everything
/// [`client_verifier`] does (chain, issuer rule, trust domain, revocation) except the role,
/// which the caller reads from the certificate and decides on per request.
pub(super) fn any_role_client_verifier(
    roots: Arc<ReloadingRoots>,
    policy: PeerPolicy,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    Ok(Arc::new(RoleClientVerifier {
        current: Current::new(roots, build_client, true)?,
        policy,
        optional: true,
        any_role: true,
        hints: Vec::new(),
    }))
}

impl ClientCertVerifier for RoleClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        !self.optional
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (roots, inner) = self.current.get()?;
        inner.verify_client_cert(end_entity, intermediates, now)?;
        if self.any_role {
            let id = SpiffeId::from_certificate_der(end_entity).map_err(super::invalid)?;
            let policy = PeerPolicy {
                role: id.role,
                ..self.policy.clone()
            };
            policy.check(end_entity, intermediates, &roots.subjects)?;
        } else {
            self.policy
                .check(end_entity, intermediates, &roots.subjects)?;
        }
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .any()
            .verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .any()
            .verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.any().supported_verify_schemes()
    }
}

/// Server-certificate verifier: webpki chain and name check, then [`PeerPolicy::check`].
struct RoleServerVerifier {
    current: Current<WebPkiServerVerifier>,
    policy: PeerPolicy,
}

impl std::fmt::Debug for RoleServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleServerVerifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A server-certificate verifier over `roots` (read on every handshake) and `policy`.
pub(super) fn server_verifier(
    roots: Arc<ReloadingRoots>,
    policy: PeerPolicy,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    Ok(Arc::new(RoleServerVerifier {
        current: Current::new(roots, build_server, false)?,
        policy,
    }))
}

impl ServerCertVerifier for RoleServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, inner) = self.current.get()?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.policy
            .check(end_entity, intermediates, &roots.subjects)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .any()
            .verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .any()
            .verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.any().supported_verify_schemes()
    }
}
