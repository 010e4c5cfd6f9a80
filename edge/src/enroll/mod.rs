//! Enrollment: a connector redeems a one-time token (`underpass-certs token create`) for its
//! first certificate, on the tunnel's TCP port with ALPN `underpass-enroll/1` and no client
//! certificate (it has none yet). The connector made its key itself; it sends a certificate
//! request (only its public key is used) and gets back the certificate, signed by the
//! connector-only issuer of `[enrollment]`, and the CA bundle.
//!
//! One request frame, one answer frame (`underpass_proto::enroll`). What a hostile peer can
//! make this cost is bounded: [`MAX_AT_ONCE`] enrollments at once (more are cut), a request of
//! at most `MAX_REQUEST_LEN` bytes (the length prefix is checked before the body is read)
//! within [`READ_DEADLINE`], and [`PER_IP_PER_MINUTE`] attempts per source address. Every
//! attempt, issued or refused, is one audit line (`mcp_method` `underpass/enroll`) and one log
//! line.

pub mod authority;
pub mod used;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use underpass_audit::{AuditRecord, Auditor, Outcome};
use underpass_pki::issuer::{self, IssuedLeaf};
use underpass_pki::time::OffsetDateTime;
use underpass_pki::token;
use underpass_proto::enroll::{
    EnrollAnswer, EnrollCode, EnrollRequest, TokenClaims, MAX_REQUEST_LEN,
};
use underpass_proto::frame;

use crate::config::EnrollmentConfig;
use crate::revocation::Revocations;
use crate::tunnels::registry::Tunnel;
use authority::{Authorities, Authority};
use used::{UsedError, UsedTokens};

/// Enrollments served at once; more connections are closed at once.
pub const MAX_AT_ONCE: usize = 32;
/// The whole request must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Attempts per source address per minute (a token is 128 random bits: this is about load,
/// not guessing).
pub const PER_IP_PER_MINUTE: u32 = 20;
/// Source addresses remembered for the rate (beyond, the oldest windows are dropped).
const MAX_SOURCES: usize = 4096;

/// A refusal: its code, the reason in words, and the token's claims once its signature was
/// checked (for the audit line: who tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: EnrollCode,
    pub reason: String,
    pub claims: Option<Box<TokenClaims>>,
}

fn refused(code: EnrollCode, reason: impl std::fmt::Display) -> Refused {
    Refused {
        code,
        reason: reason.to_string(),
        claims: None,
    }
}

/// What a successful enrollment produced.
#[derive(Debug)]
pub struct Enrolled {
    pub claims: TokenClaims,
    pub leaf: IssuedLeaf,
    /// The CA bundle read with the issuer that signed `leaf` (the connector's `ca` file).
    pub ca_pem: String,
}

/// The enrollment service of one edge.
pub struct Enrollment {
    /// The issuer, the CA bundle and the pin in force (watched: [`Enrollment::watch`]).
    authority: Arc<Authorities>,
    cert_ttl: Duration,
    used: UsedTokens,
    /// Source → (window start, attempts in it).
    per_ip: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    at_once: tokio::sync::Semaphore,
    auditor: Option<Auditor>,
    /// Read again before every issuance: a revoked issuer issues nothing, a revoked
    /// connector renews nothing.
    revocations: Arc<Revocations>,
}

impl Enrollment {
    /// Loads the issuer and the record of used tokens; `tunnel_ca` is the `[tunnel] ca`
    /// bundle, which must hold the root that signed the issuer. Both are read again when
    /// they change once [`Enrollment::watch`] runs.
    pub fn open(
        config: &EnrollmentConfig,
        tunnel_ca: &Path,
        trust_domain: &str,
        auditor: Option<Auditor>,
        revocations: Arc<Revocations>,
    ) -> anyhow::Result<Enrollment> {
        let authority = Arc::new(Authorities::load(config, tunnel_ca, trust_domain)?);
        let used = UsedTokens::open(
            &config.used_tokens_path(),
            OffsetDateTime::now_utc().unix_timestamp(),
        )?;
        Ok(Enrollment {
            authority,
            cert_ttl: config.cert_ttl,
            used,
            per_ip: Mutex::new(HashMap::new()),
            at_once: tokio::sync::Semaphore::new(MAX_AT_ONCE),
            auditor,
            revocations,
        })
    }

    /// Decides one request at `now`: the token (signature, CA pin, trust domain, expiry), the
    /// certificate request (checked before the token is burnt, so a malformed one does not
    /// waste it), the token burnt, the certificate issued.
    pub fn decide(&self, req: &EnrollRequest, now: OffsetDateTime) -> Result<Enrolled, Refused> {
        let authority = self.authority.current();
        let claims = token::verify(&req.token, &authority.issuer, &authority.ca_sha256, now)
            .map_err(|e| refused(e.code(), e))?;
        let leaf = self
            .redeem(&authority, &claims, req, now)
            .map_err(|mut r| {
                r.claims = Some(Box::new(claims.clone()));
                r
            })?;
        Ok(Enrolled {
            claims,
            leaf,
            ca_pem: authority.ca_pem.clone(),
        })
    }

    /// Starts watching the issuer's files and the CA bundle (see [`authority`]); a
    /// replacement that does not load is reported in `problems`.
    pub fn watch(&self, problems: Arc<crate::certs::Problems>) {
        tokio::spawn(self.authority.clone().watch(problems));
    }

    /// Reads the issuer and the CA bundle again now (what the watcher does on a change).
    pub fn reload_authority(&self) -> anyhow::Result<()> {
        self.authority.reload().map(|_| ())
    }

    /// The steps after the token's signature: the request checked, the token burnt, the
    /// certificate issued.
    fn redeem(
        &self,
        authority: &Authority,
        claims: &TokenClaims,
        req: &EnrollRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedLeaf, Refused> {
        let identity = underpass_proto::identity::SpiffeId::new(
            &claims.trust_domain,
            underpass_proto::identity::Role::Connector,
            &claims.connector,
        )
        .map_err(|e| refused(EnrollCode::Malformed, e))?;
        underpass_pki::csr::check_request(req.csr_pem.as_bytes(), &identity)
            .map_err(|e| refused(csr_code(&e), e))?;
        self.issuer_usable(authority)?;
        self.used
            .consume(&claims.id_hex(), claims.not_after, &claims.connector)
            .map_err(|e| match e {
                UsedError::AlreadyUsed(_) => refused(EnrollCode::TokenUsed, e),
                UsedError::Unusable { .. } => {
                    tracing::error!("enrollment refused: {e}");
                    refused(
                        EnrollCode::Internal,
                        "the edge cannot record used tokens; ask its operator",
                    )
                }
            })?;
        issuer::issue_connector(
            &authority.issuer,
            &claims.connector,
            req.csr_pem.as_bytes(),
            self.cert_ttl,
            now,
        )
        .map_err(|e| refused(csr_code(&e), e))
    }

    /// Refuses while the issuer itself is revoked (the list read again first).
    fn issuer_usable(&self, authority: &Authority) -> Result<(), Refused> {
        self.revocations.reload_now();
        if self.revocations.is_revoked(&authority.issuer.cert_der) {
            return Err(refused(
                EnrollCode::Disabled,
                "this edge's issuer is revoked: it issues nothing until it is replaced",
            ));
        }
        Ok(())
    }

    /// A renewal over `tunnel` (for the identity its handshake proved): refused if any
    /// certificate the tunnel holds is revoked (the list read again first); the request
    /// must be for that identity; audited as `underpass/renew`.
    pub fn renew(&self, tunnel: &Tunnel, csr_pem: &str) -> Result<IssuedLeaf, Refused> {
        let started = Instant::now();
        let name = tunnel.connector.as_str();
        let remote = tunnel.conn.remote_addr();
        let authority = self.authority.current();
        let result = if self.revocations.may_renew(tunnel) {
            self.issuer_usable(&authority).and_then(|()| {
                issuer::issue_connector(
                    &authority.issuer,
                    name,
                    csr_pem.as_bytes(),
                    self.cert_ttl,
                    OffsetDateTime::now_utc(),
                )
                .map_err(|e| refused(csr_code(&e), e))
            })
        } else {
            Err(refused(
                EnrollCode::TokenInvalid,
                "this connector's certificate is revoked: it renews nothing",
            ))
        };
        match &result {
            Ok(leaf) => tracing::info!(
                connector = %name,
                serial = %leaf.serial,
                not_after = %leaf.not_after,
                "connector certificate renewed"
            ),
            Err(r) => tracing::warn!(connector = %name, "renewal refused: {}", r.reason),
        }
        if let Some(auditor) = &self.auditor {
            let mut record = AuditRecord {
                mcp_method: Some("underpass/renew".into()),
                principal: Some(format!("connector:{name}")),
                source: Some(remote.ip().to_string()),
                latency_us: Some(started.elapsed().as_micros().try_into().unwrap_or(u64::MAX)),
                ..AuditRecord::default()
            };
            match &result {
                Ok(leaf) => record.issued = Some(leaf.serial.clone()),
                Err(r) => {
                    record.rule = Some(format!("{:?}", r.code));
                    record.outcome = refusal_outcome(r.code);
                }
            }
            auditor.record(record);
        }
        result
    }

    /// The CA bundle connectors are given (the `[tunnel] ca` file as last read well).
    pub fn ca_pem(&self) -> String {
        self.authority.current().ca_pem.clone()
    }

    /// Serves one enrollment connection (TLS done): reads the request, answers, audits.
    pub async fn serve<S>(&self, mut stream: S, remote: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Ok(_slot) = self.at_once.try_acquire() else {
            tracing::warn!(%remote, "enrollment refused: {MAX_AT_ONCE} already in progress");
            return;
        };
        let started = Instant::now();
        let result = if self.over_rate(remote.ip(), Instant::now()) {
            Err(refused(
                EnrollCode::RateLimited,
                format!("more than {PER_IP_PER_MINUTE} attempts a minute from this address"),
            ))
        } else {
            match tokio::time::timeout(READ_DEADLINE, read_request(&mut stream)).await {
                Err(_) => Err(refused(
                    EnrollCode::Malformed,
                    format!("the request did not arrive within {READ_DEADLINE:?}"),
                )),
                Ok(Err(r)) => Err(r),
                Ok(Ok(req)) => self.decide(&req, OffsetDateTime::now_utc()),
            }
        };
        let answer = match &result {
            Ok(e) => EnrollAnswer::Issued {
                chain_pem: e.leaf.chain_pem.clone(),
                ca_pem: e.ca_pem.clone(),
                connector: e.claims.connector.clone(),
                trust_domain: e.claims.trust_domain.clone(),
                not_after: e.leaf.not_after.unix_timestamp(),
            },
            Err(r) => EnrollAnswer::Refused {
                code: r.code,
                reason: r.reason.clone(),
            },
        };
        let sent = async {
            frame::write_frame(&mut stream, &answer).await?;
            stream.shutdown().await?;
            Ok::<(), frame::FrameError>(())
        };
        if let Err(e) = tokio::time::timeout(READ_DEADLINE, sent).await {
            tracing::debug!(%remote, "enrollment answer not delivered: {e}");
        }
        match &result {
            Ok(e) => tracing::info!(
                %remote,
                connector = %e.claims.connector,
                token = %e.claims.id_hex(),
                serial = %e.leaf.serial,
                not_after = %e.leaf.not_after,
                "connector enrolled"
            ),
            Err(r) => tracing::warn!(%remote, code = ?r.code, "enrollment refused: {}", r.reason),
        }
        self.audit(&result, remote, started.elapsed());
    }

    /// Counts an attempt from `ip`; true when it is over the rate.
    fn over_rate(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(mut map) = self.per_ip.lock() else {
            return true;
        };
        if map.len() >= MAX_SOURCES {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        if map.len() >= MAX_SOURCES {
            return true; // under a flood from many addresses: refuse until windows expire
        }
        let (start, count) = map.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count > PER_IP_PER_MINUTE
    }

    fn audit(&self, result: &Result<Enrolled, Refused>, remote: SocketAddr, took: Duration) {
        let Some(auditor) = &self.auditor else {
            return;
        };
        let mut record = AuditRecord {
            mcp_method: Some("underpass/enroll".into()),
            source: Some(remote.ip().to_string()),
            latency_us: Some(took.as_micros().try_into().unwrap_or(u64::MAX)),
            ..AuditRecord::default()
        };
        match result {
            Ok(e) => {
                record.principal = Some(format!("connector:{}", e.claims.connector));
                record.target = Some(format!("token:{}", e.claims.id_hex()));
                record.issued = Some(e.leaf.serial.clone());
                record.outcome = Outcome::Ok;
            }
            Err(r) => {
                if let Some(claims) = &r.claims {
                    record.principal = Some(format!("connector:{}", claims.connector));
                    record.target = Some(format!("token:{}", claims.id_hex()));
                }
                record.rule = Some(format!("{:?}", r.code));
                record.outcome = refusal_outcome(r.code);
            }
        }
        auditor.record(record);
    }
}

/// The audit outcome of a refusal.
fn refusal_outcome(code: EnrollCode) -> Outcome {
    match code {
        EnrollCode::TokenInvalid
        | EnrollCode::TokenExpired
        | EnrollCode::TokenUsed
        | EnrollCode::TokenOtherEdge
        | EnrollCode::WrongName => Outcome::Unauthenticated,
        EnrollCode::TooLarge => Outcome::TooLarge,
        EnrollCode::RateLimited => Outcome::RateLimited,
        EnrollCode::Internal | EnrollCode::Disabled => Outcome::Unavailable,
        EnrollCode::Malformed
        | EnrollCode::BadCsr
        | EnrollCode::OtherIdentity
        | EnrollCode::Other => Outcome::BadRequest,
    }
}

/// The code of a refused certificate request.
fn csr_code(e: &underpass_pki::csr::CsrRefusal) -> EnrollCode {
    use underpass_pki::csr::CsrRefusal as R;
    match e {
        R::TooLarge(_) => EnrollCode::TooLarge,
        R::OtherIdentity { .. } | R::RequestsCa | R::Name(_) => EnrollCode::OtherIdentity,
        R::IssuerExpired(_) | R::Sign(_) | R::Random => EnrollCode::Internal,
        R::Malformed(_) | R::BadSignature | R::KeyAlgorithm(_) | R::UnsupportedExtension => {
            EnrollCode::BadCsr
        }
    }
}

/// Reads the one request frame: its length prefix is checked against `MAX_REQUEST_LEN`
/// before any of the body is read.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<EnrollRequest, Refused> {
    match frame::read_frame_within::<EnrollRequest, _>(stream, MAX_REQUEST_LEN).await {
        Ok(Some(req)) => Ok(req),
        Ok(None) => Err(refused(
            EnrollCode::Malformed,
            "no request: the stream ended",
        )),
        Err(frame::FrameError::TooLarge { len, max }) => Err(refused(
            EnrollCode::TooLarge,
            format!("a request of {len} bytes (at most {max})"),
        )),
        Err(frame::FrameError::Truncated) => {
            Err(refused(EnrollCode::Malformed, "the request was cut"))
        }
        Err(e) => Err(refused(
            EnrollCode::Malformed,
            format!("not a request: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests;
