//! Certificates and roots that can be replaced while running (renewal, replaced files, CA
//! rotation). Each is one [`ArcSwap`]: a handshake takes the value in force when it starts, a
//! reload swaps the whole value at once, and a failed reload keeps the last good one.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use underpass_proto::identity::{IdentityError, Role, SpiffeId};

use super::{load_certs, load_key, provider, TlsError};

/// Our own certificate chain and key, replaceable at run time. Serves as the certificate
/// resolver of server configs (edge listeners) and client configs (connector).
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
    /// Ticks on every [`ReloadingCert::store`]: a connector re-authenticates its live tunnels.
    stored: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").finish_non_exhaustive()
    }
}

impl ReloadingCert {
    pub fn new(key: CertifiedKey) -> Self {
        ReloadingCert {
            current: ArcSwap::from_pointee(key),
            stored: tokio::sync::watch::Sender::new(()),
        }
    }

    /// A chain and key already in memory; refused unless the key matches the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        Ok(Self::new(certified(chain, key, "(memory)", "(memory)")?))
    }

    /// Reads a PEM chain (leaf first) and a PEM key; refused unless the key matches the leaf.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self::new(Self::read(cert, key)?))
    }

    /// Reads and checks a pair without putting it in force (to inspect it first).
    pub fn read(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
        certified(
            load_certs(cert)?,
            load_key(key)?,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    /// Re-reads the pair and puts it in force for the next handshakes. On any error (file
    /// missing or garbage, key not matching) the pair in force stays and the error is returned.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        self.store(Self::read(cert, key)?);
        Ok(())
    }

    /// [`ReloadingCert::reload`] that also requires the new leaf to carry `role` in
    /// `trust_domain` (an edge's tunnel certificate must stay an edge certificate); returns
    /// the new identity.
    pub fn reload_expecting(
        &self,
        cert: &Path,
        key: &Path,
        role: Role,
        trust_domain: &str,
    ) -> Result<SpiffeId, TlsError> {
        let pair = Self::read(cert, key)?;
        let wrong = |e: IdentityError| TlsError::Identity {
            path: cert.display().to_string(),
            reason: e.to_string(),
        };
        let id = leaf_identity(&pair).map_err(wrong)?;
        id.expect(role, trust_domain).map_err(wrong)?;
        self.store(pair);
        Ok(id)
    }

    /// Puts `key` in force for the next handshakes.
    pub fn store(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
        self.stored.send_replace(());
    }

    /// Changes whenever a pair is put in force.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.stored.subscribe()
    }

    /// The pair in force now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The leaf certificate in force now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }

    /// The SPIFFE identity of the leaf in force now.
    pub fn identity(&self) -> Result<SpiffeId, IdentityError> {
        leaf_identity(&self.current.load())
    }
}

fn leaf_identity(key: &CertifiedKey) -> Result<SpiffeId, IdentityError> {
    let leaf = key.cert.first().ok_or(IdentityError::Missing)?;
    SpiffeId::from_certificate_der(leaf)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &str,
    key_path: &str,
) -> Result<CertifiedKey, TlsError> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(pair)
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// One generation of trusted roots.
#[derive(Debug)]
pub struct RootsSnapshot {
    pub store: Arc<RootCertStore>,
    /// The roots' subject names as DER contents (for the issuer rule of
    /// [`super::PeerPolicy::check`]).
    pub subjects: Vec<Vec<u8>>,
    /// Bumped by every replacement (verifiers rebuild webpki's verifier when it changes).
    pub generation: u64,
    /// The bundle's certificates as read from its file, in order (the enrollment endpoint
    /// presents them after its own certificate); empty when built from a store in memory.
    pub certs: Vec<CertificateDer<'static>>,
}

/// The trusted CA bundle, replaceable at run time (CA rotation: a bundle with the old and the
/// new root trusts both). Verifiers read it on every handshake.
#[derive(Debug)]
pub struct ReloadingRoots {
    current: ArcSwap<RootsSnapshot>,
}

impl ReloadingRoots {
    pub fn new(store: Arc<RootCertStore>) -> Self {
        ReloadingRoots {
            current: ArcSwap::from_pointee(snapshot(store, Vec::new(), 0)),
        }
    }

    /// Reads a PEM bundle of one or more roots (their certificates kept in the snapshot).
    pub fn load(ca: &Path) -> Result<Self, TlsError> {
        let (store, certs) = read_bundle(ca)?;
        Ok(ReloadingRoots {
            current: ArcSwap::from_pointee(snapshot(store, certs, 0)),
        })
    }

    /// Re-reads the bundle and puts it in force for the next handshakes. On any error the
    /// roots in force stay and the error is returned.
    pub fn reload(&self, ca: &Path) -> Result<(), TlsError> {
        let (store, certs) = read_bundle(ca)?;
        self.put(store, certs);
        Ok(())
    }

    /// Puts `store` in force for the next handshakes (with no certificates to present).
    pub fn replace(&self, store: Arc<RootCertStore>) {
        self.put(store, Vec::new());
    }

    fn put(&self, store: Arc<RootCertStore>, certs: Vec<CertificateDer<'static>>) {
        let subjects = subjects(&store);
        self.current.rcu(|old| {
            Arc::new(RootsSnapshot {
                store: store.clone(),
                subjects: subjects.clone(),
                generation: old.generation.wrapping_add(1),
                certs: certs.clone(),
            })
        });
    }

    /// The roots in force now.
    pub fn snapshot(&self) -> Arc<RootsSnapshot> {
        self.current.load_full()
    }

    /// How many times the roots were replaced.
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }
}

fn snapshot(
    store: Arc<RootCertStore>,
    certs: Vec<CertificateDer<'static>>,
    generation: u64,
) -> RootsSnapshot {
    RootsSnapshot {
        subjects: subjects(&store),
        store,
        generation,
        certs,
    }
}

/// The bundle as a root store and as the certificates it holds (one read of the file).
fn read_bundle(ca: &Path) -> Result<(Arc<RootCertStore>, Vec<CertificateDer<'static>>), TlsError> {
    let certs = load_certs(ca)?;
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store.add(cert.clone()).map_err(|e| TlsError::Ca {
            path: ca.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok((Arc::new(store), certs))
}

fn subjects(store: &RootCertStore) -> Vec<Vec<u8>> {
    store
        .roots
        .iter()
        .map(|anchor| anchor.subject.as_ref().to_vec())
        .collect()
}
