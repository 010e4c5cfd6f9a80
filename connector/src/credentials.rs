//! The connector's certificate, key and CA bundle, replaced while running: a renewal, an
//! operator replacing the files, or a CA bundle gaining a new CA (rotation with overlap). The
//! files are watched (change, SIGHUP); new handshakes use what is in force, live tunnels keep
//! theirs. A replacement that does not load, or names another connector, leaves the last good
//! one in force and is logged as an error on every attempt. A certificate in force that has
//! ended (offline past its end, or renewal failing until it) is reported with what to do:
//! enroll again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use underpass_pki::time::OffsetDateTime;
use underpass_proto::identity::{Role, SpiffeId};
use underpass_transport::tls::{ReloadingCert, ReloadingRoots};

use crate::config::ConnectorConfig;

/// What this connector presents and trusts.
pub struct Credentials {
    pub cert: Arc<ReloadingCert>,
    pub roots: Arc<ReloadingRoots>,
    pub identity: SpiffeId,
}

impl Credentials {
    /// Loads `cert`, `key` and `ca`; the certificate must be this connector's.
    pub fn load(config: &ConnectorConfig) -> anyhow::Result<Credentials> {
        let cert = ReloadingCert::load(&config.cert, &config.key)
            .context("cannot load the connector certificate or key")?;
        let identity = check(&cert, config)?;
        let roots = ReloadingRoots::load(&config.ca).context("cannot load the CA bundle `ca`")?;
        Ok(Credentials {
            cert: Arc::new(cert),
            roots: Arc::new(roots),
            identity,
        })
    }

    /// Reads the certificate and key again and puts them in force if they are this
    /// connector's (renewal calls this after writing them).
    pub fn reload_cert(&self, config: &ConnectorConfig) -> anyhow::Result<()> {
        let pair = ReloadingCert::read(&config.cert, &config.key)?;
        let candidate = ReloadingCert::new(pair.clone());
        check(&candidate, config)?;
        self.cert.store(pair);
        Ok(())
    }

    /// Starts the watchers of the certificate pair and of the CA bundle, and the one that
    /// says when the certificate in force has ended.
    pub fn watch(self: &Arc<Self>, config: &Arc<ConnectorConfig>) {
        tokio::spawn(say_when_ended(self.cert.clone(), config.cert.clone()));
        let (me, cfg) = (self.clone(), config.clone());
        let pair = vec![config.cert.clone(), config.key.clone()];
        tokio::spawn(underpass_shared::reload::watch_files(pair, move |_| {
            report("certificate", &cfg.cert, me.reload_cert(&cfg))
        }));
        let (roots, ca): (_, PathBuf) = (self.roots.clone(), config.ca.clone());
        tokio::spawn(underpass_shared::reload::watch_files(
            vec![ca.clone()],
            move |_| report("CA bundle", &ca, roots.reload(&ca).map_err(Into::into)),
        ));
    }
}

/// The certificate in `cert` is a connector certificate of the configured name and domain.
fn check(cert: &ReloadingCert, config: &ConnectorConfig) -> anyhow::Result<SpiffeId> {
    let id = cert
        .identity()
        .context("the connector certificate has no Underpass identity")?;
    id.expect(Role::Connector, &config.trust_domain)
        .context("`cert` must be a connector certificate of this trust domain")?;
    if id.name != config.name {
        anyhow::bail!(
            "`name = {:?}` does not match the certificate's identity {id}; set name = {:?}",
            config.name,
            id.name
        );
    }
    Ok(id)
}

/// How often an ended certificate is looked at again (for its replacement).
const ENDED_RECHECK: Duration = Duration::from_secs(5);

/// A certificate past its end is refused by every edge (as expired) and cannot renew (renewal
/// needs a tunnel): says so, with what to do, once per certificate, instead of leaving the
/// operator to decode a TLS alert on every dial. At start (a connector offline past its end)
/// and while running (renewal failed until the end); a replacement moves the end on.
async fn say_when_ended(cert: Arc<ReloadingCert>, path: PathBuf) {
    let mut told = None;
    loop {
        let Some(end) = end_of(&cert) else {
            return;
        };
        let left = end - OffsetDateTime::now_utc();
        if left.is_positive() {
            // Renewal moves the end: look again at this one's end.
            let left = Duration::try_from(left).unwrap_or(ENDED_RECHECK);
            tokio::time::sleep(left + Duration::from_secs(1)).await;
            continue;
        }
        if told != Some(end) {
            told = Some(end);
            let dir = path.parent().unwrap_or(Path::new("."));
            tracing::error!(
                file = %path.display(),
                "the certificate ended at {}: edges refuse it as expired and it cannot renew; \
                 enroll again with a new token (`underpass-certs token create`, then \
                 `underpass-connector enroll --token TOKEN --dir {}`, which replaces an ended \
                 certificate)",
                underpass_pki::rfc3339(end),
                dir.display()
            );
        }
        tokio::time::sleep(ENDED_RECHECK).await;
    }
}

/// The end of the certificate in force.
fn end_of(cert: &ReloadingCert) -> Option<OffsetDateTime> {
    let leaf = cert.leaf()?;
    underpass_pki::inspect::inspect_der(&leaf)
        .ok()
        .map(|info| info.not_after)
}

fn report(what: &str, path: &Path, result: anyhow::Result<()>) {
    match result {
        Ok(()) => tracing::info!(
            file = %path.display(),
            "{what} reloaded: new handshakes use it, live tunnels keep theirs"
        ),
        Err(e) => tracing::error!(
            file = %path.display(),
            "{what} not reloaded, the last good one stays in force: {e:#}"
        ),
    }
}
