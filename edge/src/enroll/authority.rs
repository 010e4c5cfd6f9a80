//! What an edge enrolls and renews with, in force and watched: the connector issuer
//! (`[enrollment] issuer_cert`, `issuer_key`), the `[tunnel] ca` bundle handed to connectors,
//! and the SHA-256 of the root that signed the issuer (the CA tokens must pin).
//!
//! The three are read together and swapped as one value, so a request is decided, signed and
//! answered with one consistent set even while `underpass-certs issuer --rotate` or a CA
//! rotation replaces the files. A replacement that does not load (unreadable, a key of another
//! certificate, an expired issuer, an issuer of another trust domain or not signed by a CA of
//! the bundle) leaves the last good set in force, is logged as an error on every attempt and
//! shows in `/readyz` `problems` as [`COMPONENT`] until fixed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use underpass_pki::issuer::{self, LoadedIssuer};
use underpass_pki::token;

use crate::certs::Problems;
use crate::config::EnrollmentConfig;

/// The `/readyz` problem name of a replacement that did not load.
pub const COMPONENT: &str = "enrollment_issuer";

/// One consistent set: the issuer, the CA bundle given to connectors, the pin.
pub struct Authority {
    pub issuer: LoadedIssuer,
    /// SHA-256 of the root that signed the issuer: the CA tokens must pin.
    pub ca_sha256: [u8; 32],
    /// The `[tunnel] ca` bundle, PEM: the enrolled connector's `ca` file.
    pub ca_pem: String,
}

/// The files the set is read from.
#[derive(Debug, Clone)]
struct Sources {
    issuer_cert: PathBuf,
    issuer_key: PathBuf,
    tunnel_ca: PathBuf,
    trust_domain: String,
}

impl Sources {
    /// Reads and checks the set without putting it in force.
    fn read(&self) -> anyhow::Result<Authority> {
        let issuer = issuer::load(&self.issuer_cert, &self.issuer_key)
            .context("[enrollment] issuer_cert / issuer_key")?;
        anyhow::ensure!(
            issuer.trust_domain == self.trust_domain,
            "[enrollment] the issuer is for trust domain {}, this edge serves {}",
            issuer.trust_domain,
            self.trust_domain
        );
        let ca = &self.tunnel_ca;
        let ca_pem = std::fs::read_to_string(ca)
            .with_context(|| format!("cannot read [tunnel] ca {}", ca.display()))?;
        let root = underpass_transport::tls::load_certs(ca)?
            .into_iter()
            .find(|der| issuer::check_issued_by(&issuer, der, ca).is_ok())
            .with_context(|| {
                format!(
                    "[enrollment] the issuer {} is not signed by a CA of [tunnel] ca {}: \
                     connectors it enrolls could not connect",
                    self.issuer_cert.display(),
                    ca.display()
                )
            })?;
        Ok(Authority {
            issuer,
            ca_sha256: token::fingerprint(&root),
            ca_pem,
        })
    }
}

/// The set in force, replaced whole when its files change.
pub struct Authorities {
    current: ArcSwap<Authority>,
    sources: Sources,
}

impl Authorities {
    /// Reads the set once; a start-up failure is an error (nothing to fall back on).
    pub fn load(
        config: &EnrollmentConfig,
        tunnel_ca: &std::path::Path,
        trust_domain: &str,
    ) -> anyhow::Result<Authorities> {
        let sources = Sources {
            issuer_cert: config.issuer_cert.clone(),
            issuer_key: config.issuer_key.clone(),
            tunnel_ca: tunnel_ca.to_path_buf(),
            trust_domain: trust_domain.to_owned(),
        };
        Ok(Authorities {
            current: ArcSwap::from_pointee(sources.read()?),
            sources,
        })
    }

    /// The set in force now (hold it for the whole of one request).
    pub fn current(&self) -> Arc<Authority> {
        self.current.load_full()
    }

    /// Reads the files again and puts the set in force; on any error the set in force stays.
    pub fn reload(&self) -> anyhow::Result<Arc<Authority>> {
        let new = Arc::new(self.sources.read()?);
        self.current.store(new.clone());
        Ok(new)
    }

    /// Reloads on every change of the issuer's files or the CA bundle (and SIGHUP), reporting
    /// each attempt in the log and a failure in `problems`.
    pub async fn watch(self: Arc<Self>, problems: Arc<Problems>) {
        let s = &self.sources;
        let files = vec![
            s.issuer_cert.clone(),
            s.issuer_key.clone(),
            s.tunnel_ca.clone(),
        ];
        underpass_shared::reload::watch_files(files, |_| match self.reload() {
            Ok(now) => {
                tracing::info!(
                    issuer = %self.sources.issuer_cert.display(),
                    serial = %now.issuer.serial,
                    not_after = %now.issuer.not_after,
                    "enrollment issuer and CA bundle reloaded: new enrollments and renewals \
                     use them; tokens of another issuer are refused"
                );
                problems.set(COMPONENT, None);
            }
            Err(e) => {
                tracing::error!(
                    issuer = %self.sources.issuer_cert.display(),
                    "enrollment issuer not reloaded, the last good one stays in force: {e:#}"
                );
                problems.set(
                    COMPONENT,
                    Some(format!("{e:#}; the last good issuer stays in force")),
                );
            }
        })
        .await;
    }
}
