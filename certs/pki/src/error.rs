//! The one error type of the certs library. The CLI prints it with `{:#}` (anyhow), which
//! appends the `source` chain; messages therefore never repeat their source themselves.

use std::path::PathBuf;

use underpass_proto::identity::IdentityError;

use crate::revocation::RevocationError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no CA in {dir}: run `underpass-certs init --dir {dir}` first", dir = .dir.display())]
    NoCa { dir: PathBuf },

    #[error(
        "{} is missing: the CA certificate is there but its key is not, so nothing can be \
         signed (restore the key, or run `underpass-certs init` in a new directory)",
        .path.display()
    )]
    CaKeyMissing { path: PathBuf },

    #[error("{} already exists: remove it or pick another name", .path.display())]
    Exists { path: PathBuf },

    #[error(transparent)]
    Identity(#[from] IdentityError),

    #[error(
        "the name \"ca\" is reserved for the CA's own files (ca.crt, ca.key): pick another name"
    )]
    ReservedName,

    #[error("--san applies only to edge certificates (a {role} certificate names no hosts)")]
    SanNotAllowed { role: &'static str },

    #[error("invalid --san {value:?}: {reason}")]
    InvalidSan { value: String, reason: &'static str },

    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {reason}", .path.display())]
    BadCertificate { path: PathBuf, reason: String },

    #[error("{}: not a usable private key: {reason}", .path.display())]
    BadKey { path: PathBuf, reason: String },

    #[error("{} is not the key of {}", .key.display(), .cert.display())]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },

    #[error("{}: the CA certificate expired at {at}: create a new CA", .path.display())]
    CaExpired { path: PathBuf, at: String },

    #[error("a certificate valid from {not_before} to {not_after} would never be valid")]
    EmptyValidity {
        not_before: String,
        not_after: String,
    },

    #[error("could not generate a certificate")]
    Generate(#[from] rcgen::Error),

    #[error("the system random number generator failed")]
    Random,

    #[error("no certificate {}: nothing was issued under that name here", .path.display())]
    UnknownName { path: PathBuf },

    #[error(
        "no certificate in {} has serial {serial} (check `underpass-certs inspect`, or pass \
         --force to revoke it anyway)",
        .dir.display()
    )]
    UnknownSerial { dir: PathBuf, serial: String },

    #[error(
        "refusing to revoke the CA certificate itself: create a new CA with \
         `underpass-certs init` in a new directory and re-issue instead"
    )]
    RevokeCa,

    #[error(transparent)]
    Revocation(#[from] RevocationError),

    #[error("invalid --ttl {value:?}: {reason}")]
    BadTtl { value: String, reason: String },

    #[error("--ttl {ttl} is too short: at least {min}")]
    TtlTooShort { ttl: String, min: String },

    #[error(
        "--ttl {ttl} would end at {end}, after the signing CA's own end ({ca_end}): use a \
         shorter --ttl"
    )]
    TtlBeyondCa {
        ttl: String,
        end: String,
        ca_end: String,
    },

    #[error(
        "{} already exists: pass --rotate to archive the current issuer and create a new one",
        .path.display()
    )]
    IssuerExists { path: PathBuf },

    #[error("{}: the issuer certificate expired at {at}: run `underpass-certs issuer --rotate`", .path.display())]
    IssuerExpired { path: PathBuf, at: String },

    #[error("{}: {reason}", .path.display())]
    BadIssuer { path: PathBuf, reason: String },

    #[error("the issuer expires at {at}, before the token would ({token_end}): rotate the issuer or use a shorter --ttl")]
    IssuerEndsFirst { at: String, token_end: String },

    #[error(transparent)]
    Token(#[from] underpass_proto::enroll::TokenError),

    #[error("could not sign: {0}")]
    Sign(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
