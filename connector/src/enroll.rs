//! `underpass-connector enroll --token TOKEN --dir DIR`: joins a deployment with a one-time
//! token. The key is made here and never leaves this host: the edge gets a certificate request
//! (only its public key is used) and answers with the certificate and the CA bundle.
//!
//! The token pins the CA (SHA-256 of its certificate): the edge is trusted only if it presents
//! that CA and a valid edge certificate under it (`underpass_transport::tls::
//! enroll_client_crypto`), and the answer is checked again before anything is written
//! (`underpass_pki::chain`). Files: `DIR/<name>.key` (0600), `DIR/<name>.crt` (the
//! certificate, then its issuer), `DIR/ca.crt`; none is ever overwritten, except after a
//! certificate that has ended: a connector offline past its end must enroll again, into the
//! folder its configuration names, so once the new certificate is checked the ended files are
//! renamed to `*.ended` and the new ones written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use underpass_pki::files::{self, KEY_MODE, PUBLIC_MODE};
use underpass_pki::time::OffsetDateTime;
use underpass_proto::enroll::{
    decode_token, EnrollAnswer, EnrollCode, EnrollRequest, TokenClaims, MAX_ANSWER_LEN,
};
use underpass_proto::frame;
use underpass_proto::identity::{Role, SpiffeId};
use underpass_transport::tls;

/// One edge's attempt: connect, TLS, request, answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// What an enrollment wrote.
#[derive(Debug)]
pub struct Enrolled {
    pub claims: TokenClaims,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub not_after: OffsetDateTime,
    pub edge: String,
    /// The end of the ended certificate this enrollment replaced (its files kept as `*.ended`).
    pub replaced: Option<OffsetDateTime>,
}

/// Redeems `token` at the edges it names, in order, and writes the files into `dir`.
pub async fn enroll(token: &str, dir: &Path) -> anyhow::Result<Enrolled> {
    let token = token.trim();
    let claims = decode_token(token)
        .context("this is not an enrollment token (as `underpass-certs token create` prints)")?
        .claims;
    let now = OffsetDateTime::now_utc();
    if now.unix_timestamp() >= claims.not_after {
        bail!(
            "the token expired at {}: ask for a new one",
            OffsetDateTime::from_unix_timestamp(claims.not_after)
                .map_or_else(|_| claims.not_after.to_string(), underpass_pki::rfc3339)
        );
    }
    let name = &claims.connector;
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let ca = dir.join("ca.crt");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let replaced = match files::ensure_absent(&[&cert, &key, &ca]) {
        Ok(()) => None,
        Err(exists) => Some(ended_here(&cert, now, exists)?),
    };
    let identity = SpiffeId::new(&claims.trust_domain, Role::Connector, name)?;
    let (key_pem, csr_pem) = underpass_pki::csr::new(name, &claims.trust_domain)?;
    let request = EnrollRequest {
        token: token.to_owned(),
        csr_pem,
    };
    let crypto = tls::enroll_client_crypto(claims.ca_sha256, &claims.trust_domain)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(crypto));

    let mut failures = Vec::new();
    for edge in &claims.edges {
        let attempt = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            ask(&connector, edge, claims.server_name.as_deref(), &request),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ATTEMPT_TIMEOUT:?}")));
        let answer = match attempt {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(%edge, "enrollment attempt failed: {e:#}");
                failures.push(format!("{edge}: {e:#}"));
                continue;
            }
        };
        let (chain_pem, ca_pem) = match answer {
            EnrollAnswer::Issued {
                chain_pem, ca_pem, ..
            } => (chain_pem, ca_pem),
            // The edge judged the token: another edge would judge it the same way.
            EnrollAnswer::Refused { code, reason } => {
                bail!(
                    "{edge} refused the enrollment ({}): {reason}",
                    code_name(code)
                )
            }
        };
        let checked = underpass_pki::chain::check_issued_chain(
            &chain_pem,
            &ca_pem,
            &key_pem,
            &identity,
            &claims.ca_sha256,
            OffsetDateTime::now_utc(),
        )
        .with_context(|| format!("{edge} answered with an unusable certificate"))?;
        if replaced.is_some() {
            set_aside(&[&key, &cert, &ca])?;
        }
        files::write_new(&key, key_pem.as_bytes(), KEY_MODE)?;
        files::write_new(&cert, chain_pem.as_bytes(), PUBLIC_MODE)?;
        files::write_new(&ca, ca_pem.as_bytes(), PUBLIC_MODE)?;
        return Ok(Enrolled {
            claims: claims.clone(),
            cert,
            key,
            ca,
            not_after: checked.not_after,
            edge: edge.clone(),
            replaced,
        });
    }
    bail!("no edge could be reached: {}", failures.join("; "))
}

/// The end of the certificate already at `cert`, if it has ended by `now` (only then may
/// enrollment replace it); otherwise the refusal, from `exists` (what is in the way).
fn ended_here(
    cert: &Path,
    now: OffsetDateTime,
    exists: underpass_pki::Error,
) -> anyhow::Result<OffsetDateTime> {
    const ALREADY: &str = "already enrolled here: remove the files, or enroll into another --dir";
    let Ok(info) = underpass_pki::inspect::inspect_file(cert) else {
        return Err(exists).context(ALREADY);
    };
    if info.not_after > now {
        bail!(
            "{ALREADY} ({} is valid until {})",
            cert.display(),
            underpass_pki::rfc3339(info.not_after)
        );
    }
    Ok(info.not_after)
}

/// Renames each existing file to `<file>.ended` (replacing an older one of that name).
fn set_aside(paths: &[&Path]) -> anyhow::Result<()> {
    for path in paths {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".ended");
        match std::fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot rename {}", path.display())),
        }
    }
    Ok(())
}

/// One attempt at `edge` (`HOST:PORT`).
async fn ask(
    connector: &tokio_rustls::TlsConnector,
    edge: &str,
    server_name: Option<&str>,
    request: &EnrollRequest,
) -> anyhow::Result<EnrollAnswer> {
    let host = edge
        .rsplit_once(':')
        .map_or(edge, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(server_name.unwrap_or(host).to_owned())
        .with_context(|| format!("{:?} is no server name", server_name.unwrap_or(host)))?;
    let tcp = TcpStream::connect(edge)
        .await
        .with_context(|| format!("cannot connect to tcp/{edge}"))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| anyhow::anyhow!("TLS with the edge failed: {}", tls_failure(&e)))?;
    frame::write_frame(&mut tls, request).await?;
    tls.flush().await?;
    match frame::read_frame_within::<EnrollAnswer, _>(&mut tls, MAX_ANSWER_LEN).await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => bail!("the edge closed without answering"),
        Err(frame::FrameError::TooLarge { len, max }) => {
            bail!("the edge's answer announces {len} bytes (at most {max})")
        }
        Err(frame::FrameError::Truncated) => bail!("the edge's answer was cut"),
        Err(e) => Err(e.into()),
    }
}

/// A failed handshake in words: our verifier's own reason when it refused the edge.
fn tls_failure(e: &std::io::Error) -> String {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            other.0.to_string()
        }
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => {
            "the edge does not serve enrollment (it needs [enrollment] in edge.toml)".into()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

fn code_name(code: EnrollCode) -> &'static str {
    match code {
        EnrollCode::Malformed => "malformed request",
        EnrollCode::TooLarge => "request too large",
        EnrollCode::TokenInvalid => "token not valid",
        EnrollCode::TokenExpired => "token expired",
        EnrollCode::TokenUsed => "token already used",
        EnrollCode::TokenOtherEdge => "token for another edge",
        EnrollCode::WrongName => "wrong name",
        EnrollCode::BadCsr => "bad certificate request",
        EnrollCode::OtherIdentity => "another identity asked for",
        EnrollCode::RateLimited => "too many attempts",
        EnrollCode::Disabled => "enrollment disabled",
        EnrollCode::Internal => "edge error",
        EnrollCode::Other => "refused",
    }
}

/// A `connector.toml` for what was enrolled (printed for the operator to complete).
pub fn suggested_config(e: &Enrolled) -> String {
    let quoted: Vec<String> = e.claims.edges.iter().map(|a| format!("{a:?}")).collect();
    let mut out = format!(
        "name = {:?}\ntrust_domain = {:?}\nedges = [{}]\n",
        e.claims.connector,
        e.claims.trust_domain,
        quoted.join(", ")
    );
    if let Some(s) = &e.claims.server_name {
        out.push_str(&format!("edge_server_name = {s:?}\n"));
    }
    out.push_str(&format!(
        "cert = {:?}\nkey = {:?}\nca = {:?}\n",
        e.cert.display().to_string(),
        e.key.display().to_string(),
        e.ca.display().to_string()
    ));
    let services: Vec<&str> = if e.claims.services.is_empty() {
        vec!["SERVICE"]
    } else {
        e.claims.services.iter().map(String::as_str).collect()
    };
    for s in services {
        out.push_str(&format!(
            "\n[[services]]\nname = {s:?}\nurl = \"http://127.0.0.1:PORT/mcp\"   # the internal MCP server\n"
        ));
    }
    out
}
