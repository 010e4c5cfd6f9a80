//! Certificate renewal over a live tunnel: at two thirds of its certificate's life the
//! connector makes a new key, sends a certificate request on the control stream of a tunnel
//! whose edge announced `Renew`, checks the certificate it gets back, replaces its `key` and
//! `cert` files (each written whole, then renamed over the old one: key first), and puts the
//! new pair in force for the next handshakes. Live tunnels run on: the edge that issued moves
//! the end of the carrying tunnel to the new certificate's, and every other tunnel, to any
//! edge, presents the new certificate with proof of its key (`Reauth`, see
//! `underpass_transport::tls::reauth`) and lives on until its end. A refusal or no answer is
//! retried, sooner as the end nears; a connector offline past its certificate's end must
//! enroll again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::{mpsc, oneshot};
use underpass_pki::time::OffsetDateTime;
use underpass_transport::tls::ReloadingCert;

use crate::config::ConnectorConfig;
use crate::credentials::Credentials;

/// How long a renewal request may wait for a tunnel to take it and its edge to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest and longest wait before retrying a failed renewal.
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(600);

/// What an edge answered: the certificate chain and CA bundle, or why not.
pub type Answer = Result<(String, String), String>;

/// One renewal request waiting for a tunnel to carry it.
pub struct Job {
    pub csr_pem: String,
    pub reply: oneshot::Sender<Answer>,
}

/// Where renewal requests wait for a control stream that can carry them (the first tunnel
/// whose edge announced `Renew` takes each), beside the certificate in force, which every
/// tunnel presents again (`Reauth`) when it changes.
pub struct Renewals {
    tx: mpsc::Sender<Job>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    cert: Arc<ReloadingCert>,
}

impl Renewals {
    pub fn new(cert: Arc<ReloadingCert>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        Renewals {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            cert,
        }
    }

    /// The certificate in force: renewal and replaced files put new ones in force.
    pub fn cert(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }

    /// The next request, for a control stream that can send it (cancel-safe).
    pub async fn next(&self) -> Option<Job> {
        self.rx.lock().await.recv().await
    }

    async fn ask(&self, csr_pem: String) -> anyhow::Result<(String, String)> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { csr_pem, reply })
            .await
            .context("renewal stopped")?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Err(_) => bail!("no tunnel to an edge that renews certificates took the request within {ANSWER_TIMEOUT:?}"),
            Ok(Err(_)) => bail!("the tunnel carrying the request closed before the answer"),
            Ok(Ok(Err(reason))) => bail!("the edge refused: {reason}"),
            Ok(Ok(Ok(answer))) => Ok(answer),
        }
    }
}

/// Renews the certificate in force, before every end, until shutdown.
pub async fn run(
    creds: Arc<Credentials>,
    config: Arc<ConnectorConfig>,
    renewals: Arc<Renewals>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut retry = RETRY_MIN;
    loop {
        let wait = match due_in(&creds) {
            Ok(wait) => wait,
            Err(e) => return tracing::warn!("certificate renewal off: {e:#}"),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        match renew_once(&creds, &config, &renewals).await {
            Ok(not_after) => {
                retry = RETRY_MIN;
                tracing::info!(
                    cert = %config.cert.display(),
                    not_after = %underpass_pki::rfc3339(not_after),
                    "certificate renewed: new handshakes use it; live tunnels run on"
                );
            }
            Err(e) => {
                let left = remaining(&creds).unwrap_or_default();
                retry = (retry * 2).min(RETRY_MAX).min((left / 10).max(RETRY_MIN));
                tracing::warn!(retry_in = ?retry, "certificate renewal failed: {e:#}");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Validity of the certificate in force: (issued, end). Issued is `notBefore` plus the clock
/// skew certificates are back-dated by.
fn validity(creds: &Credentials) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let leaf = creds.cert.leaf().context("no certificate in force")?;
    let info = underpass_pki::inspect::inspect_der(&leaf)?;
    let issued = (info.not_before + underpass_pki::ca::CLOCK_SKEW).min(info.not_after);
    Ok((issued, info.not_after))
}

/// Time left until the renewal is due (two thirds of the life), zero when it is.
fn due_in(creds: &Credentials) -> anyhow::Result<Duration> {
    let (issued, end) = validity(creds)?;
    let due = issued + (end - issued) * 2 / 3;
    Ok(Duration::try_from(due - OffsetDateTime::now_utc()).unwrap_or_default())
}

fn remaining(creds: &Credentials) -> anyhow::Result<Duration> {
    let (_, end) = validity(creds)?;
    Ok(Duration::try_from(end - OffsetDateTime::now_utc()).unwrap_or_default())
}

/// One renewal: new key, request, answer checked, files replaced, pair in force.
async fn renew_once(
    creds: &Credentials,
    config: &ConnectorConfig,
    renewals: &Renewals,
) -> anyhow::Result<OffsetDateTime> {
    let (key_pem, csr_pem) =
        underpass_pki::csr::new(&creds.identity.name, &creds.identity.trust_domain)?;
    let (chain_pem, ca_pem) = renewals.ask(csr_pem).await?;
    // The chain must lead to a CA this connector already trusts.
    let trusted = underpass_transport::tls::load_certs(&config.ca)?;
    let now = OffsetDateTime::now_utc();
    let checked = trusted
        .iter()
        .map(|root| underpass_pki::token::fingerprint(root))
        .find_map(|pin| {
            underpass_pki::chain::check_issued_chain(
                &chain_pem,
                &ca_pem,
                &key_pem,
                &creds.identity,
                &pin,
                now,
            )
            .ok()
        })
        .context("the renewed certificate does not lead to a CA of `ca`")?;
    replace(&config.key, key_pem.as_bytes(), 0o600)?;
    replace(&config.cert, chain_pem.as_bytes(), 0o644)?;
    creds.reload_cert(config)?;
    Ok(checked.not_after)
}

/// Writes `contents` to `path` whole (a temporary file beside it, synced, renamed over it).
fn replace(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("renewing");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
