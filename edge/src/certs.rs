//! The edge's own TLS material, replaced while running: the tunnel certificate and key, the
//! CA bundle connectors are checked against (`[tunnel]`), and the client listener's
//! certificate, key and client CA (`[clients]`, `[auth] client_ca`). Each is watched (file
//! change, SIGHUP); new handshakes use what is in force, live tunnels and connections keep
//! what they negotiated. A replacement that does not load (unreadable, a key of another
//! certificate, a certificate of another role or trust domain) leaves the last good one in
//! force, is logged as an error on every attempt, and shows in `/readyz` `problems` until
//! fixed. A CA bundle may hold two CAs while one replaces the other (rotation with overlap).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use underpass_proto::identity::Role;
use underpass_transport::tls::{ReloadingCert, ReloadingRoots, TlsError};

use crate::config::EdgeConfig;

/// What is wrong with a component, for `/readyz` (component → detail).
#[derive(Debug, Default)]
pub struct Problems(Mutex<BTreeMap<&'static str, String>>);

impl Problems {
    pub fn set(&self, component: &'static str, detail: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match detail {
            Some(d) => {
                map.insert(component, d);
            }
            None => {
                map.remove(component);
            }
        }
    }

    pub fn list(&self) -> Vec<(&'static str, String)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// The certificates and roots in force.
pub struct Certs {
    pub tunnel_cert: Arc<ReloadingCert>,
    pub tunnel_roots: Arc<ReloadingRoots>,
    /// `[clients]` certificate (absent with `insecure_plaintext`).
    pub client_cert: Option<Arc<ReloadingCert>>,
    /// `[auth] client_ca`, when client certificates are accepted.
    pub client_roots: Option<Arc<ReloadingRoots>>,
    /// `[admin] cert` and `key`, when the admin listener speaks TLS.
    pub admin_cert: Option<Arc<ReloadingCert>>,
    pub problems: Arc<Problems>,
}

impl Certs {
    /// Loads everything once; a start-up failure is an error (nothing to fall back on).
    pub fn load(config: &EdgeConfig) -> anyhow::Result<Certs> {
        let t = &config.tunnel;
        let tunnel_cert = ReloadingCert::load(&t.cert, &t.key)
            .context("cannot load the [tunnel] certificate or key")?;
        tunnel_cert
            .identity()
            .context("the [tunnel] certificate has no Underpass identity")?
            .expect(Role::Edge, &config.trust_domain)
            .context("the [tunnel] certificate must be an edge certificate of this trust domain")?;
        let tunnel_roots =
            ReloadingRoots::load(&t.ca).context("cannot load the [tunnel] CA bundle")?;
        let client_cert = match (&config.clients.cert, &config.clients.key) {
            (Some(cert), Some(key)) if !config.clients.insecure_plaintext => Some(Arc::new(
                ReloadingCert::load(cert, key)
                    .context("cannot load the [clients] certificate or key")?,
            )),
            _ => None,
        };
        let client_roots = match config.auth.as_ref().and_then(|a| a.client_ca.as_ref()) {
            Some(ca) => Some(Arc::new(
                ReloadingRoots::load(ca).context("cannot load [auth] client_ca")?,
            )),
            None => None,
        };
        let admin_cert = match config.admin.as_ref().map(|a| (&a.cert, &a.key)) {
            Some((Some(cert), Some(key))) => Some(Arc::new(
                ReloadingCert::load(cert, key)
                    .context("cannot load the [admin] certificate or key")?,
            )),
            _ => None,
        };
        Ok(Certs {
            tunnel_cert: Arc::new(tunnel_cert),
            tunnel_roots: Arc::new(tunnel_roots),
            client_cert,
            client_roots,
            admin_cert,
            problems: Arc::default(),
        })
    }

    /// Starts the watchers of every file.
    pub fn watch(&self, config: &EdgeConfig) {
        let td = config.trust_domain.clone();
        let t = &config.tunnel;
        let cert = self.tunnel_cert.clone();
        watch_pair(
            "tunnel_cert",
            t.cert.clone(),
            t.key.clone(),
            self.problems.clone(),
            move |c, k| cert.reload_expecting(c, k, Role::Edge, &td).map(|_| ()),
        );
        watch_roots(
            "tunnel_ca",
            t.ca.clone(),
            self.tunnel_roots.clone(),
            self.problems.clone(),
        );
        if let (Some(cert), Some(c), Some(k)) = (
            self.client_cert.clone(),
            config.clients.cert.clone(),
            config.clients.key.clone(),
        ) {
            watch_pair("clients_cert", c, k, self.problems.clone(), move |c, k| {
                cert.reload(c, k)
            });
        }
        if let (Some(roots), Some(ca)) = (
            self.client_roots.clone(),
            config.auth.as_ref().and_then(|a| a.client_ca.clone()),
        ) {
            watch_roots("client_ca", ca, roots, self.problems.clone());
        }
        if let Some((cert, c, k)) = self.admin_pair(config) {
            watch_pair("admin_cert", c, k, self.problems.clone(), move |c, k| {
                cert.reload(c, k)
            });
        }
    }

    fn admin_pair(&self, config: &EdgeConfig) -> Option<(Arc<ReloadingCert>, PathBuf, PathBuf)> {
        let admin = config.admin.as_ref()?;
        Some((
            self.admin_cert.clone()?,
            admin.cert.clone()?,
            admin.key.clone()?,
        ))
    }

    /// Re-reads every certificate and CA bundle now, as a change of their files would (the
    /// admin API's reload): each component and its result, logged and in `/readyz` the same.
    pub fn reload_now(&self, config: &EdgeConfig) -> Vec<(&'static str, Result<(), String>)> {
        let mut done = Vec::new();
        let mut record = |component, result: Result<(), TlsError>, path: &std::path::Path| {
            let shown = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
            report(component, &self.problems, result, path);
            done.push((component, shown));
        };
        let t = &config.tunnel;
        let td = &config.trust_domain;
        record(
            "tunnel_cert",
            self.tunnel_cert
                .reload_expecting(&t.cert, &t.key, Role::Edge, td)
                .map(|_| ()),
            &t.cert,
        );
        record("tunnel_ca", self.tunnel_roots.reload(&t.ca), &t.ca);
        if let (Some(cert), Some(c), Some(k)) =
            (&self.client_cert, &config.clients.cert, &config.clients.key)
        {
            record("clients_cert", cert.reload(c, k), c);
        }
        if let (Some(roots), Some(ca)) = (
            &self.client_roots,
            config.auth.as_ref().and_then(|a| a.client_ca.as_ref()),
        ) {
            record("client_ca", roots.reload(ca), ca);
        }
        if let Some((cert, c, k)) = self.admin_pair(config) {
            record("admin_cert", cert.reload(&c, &k), &c);
        }
        done
    }
}

fn watch_pair(
    component: &'static str,
    cert: PathBuf,
    key: PathBuf,
    problems: Arc<Problems>,
    reload: impl Fn(&std::path::Path, &std::path::Path) -> Result<(), TlsError> + Send + 'static,
) {
    let files = vec![cert.clone(), key.clone()];
    tokio::spawn(underpass_shared::reload::watch_files(files, move |_| {
        report(component, &problems, reload(&cert, &key), &cert)
    }));
}

fn watch_roots(
    component: &'static str,
    ca: PathBuf,
    roots: Arc<ReloadingRoots>,
    problems: Arc<Problems>,
) {
    tokio::spawn(underpass_shared::reload::watch_files(
        vec![ca.clone()],
        move |_| report(component, &problems, roots.reload(&ca), &ca),
    ));
}

fn report(
    component: &'static str,
    problems: &Problems,
    result: Result<(), TlsError>,
    path: &std::path::Path,
) {
    match result {
        Ok(()) => {
            tracing::info!(
                file = %path.display(),
                "{component} reloaded: new handshakes use it, live connections keep theirs"
            );
            problems.set(component, None);
        }
        Err(e) => {
            tracing::error!(
                file = %path.display(),
                "{component} not reloaded, the last good one stays in force: {e}"
            );
            problems.set(
                component,
                Some(format!("{e}; the last good one stays in force")),
            );
        }
    }
}
