//! The checkpoint signing key (Ed25519, PKCS#8 PEM) and the signed checkpoints.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};

use rustls_pki_types::pem::{Error as PemError, PemObject};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::error::{io_err, AuditError};
use crate::files::read_last_line;

/// Domain separation tag of the string a checkpoint signature covers.
const CHECKPOINT_TAG: &str = "underpass-audit-checkpoint-v1";

/// A signed statement that the chain had reached `seq` with head `hash`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkpoint {
    pub(crate) seq: u64,
    pub(crate) hash: String,
    pub(crate) file: String,
    pub(crate) time: String,
    pub(crate) key: String,
    pub(crate) sig: String,
}

pub(crate) fn checkpoint_message(seq: u64, hash: &str, file: &str, time: &str) -> String {
    format!("{CHECKPOINT_TAG}\n{seq}\n{hash}\n{file}\n{time}\n")
}

/// PEM (`PRIVATE KEY`, LF line ends, 64 columns) of a PKCS#8 DER key, as the key file is
/// written.
fn pem_encode(der: &[u8]) -> String {
    let block = ::pem::Pem::new("PRIVATE KEY", der);
    ::pem::encode_config(
        &block,
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// PKCS#8 DER from PEM (`PRIVATE KEY`) or raw DER bytes.
fn pkcs8_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let is_pem = std::str::from_utf8(bytes).is_ok_and(|text| text.contains("-----BEGIN"));
    if !is_pem {
        return Ok(bytes.to_vec());
    }
    match PrivatePkcs8KeyDer::from_pem_slice(bytes) {
        Ok(der) => Ok(der.secret_pkcs8_der().to_vec()),
        Err(PemError::NoItemsFound) => Err("no \"-----BEGIN PRIVATE KEY-----\" block".into()),
        Err(e) => Err(format!("bad PEM: {e}")),
    }
}

/// Loads the signing key, creating it (mode 0600) when missing.
pub(crate) fn load_or_create_key(path: &Path) -> Result<Ed25519KeyPair, AuditError> {
    let key_err = |reason: String| AuditError::Key {
        path: path.to_owned(),
        reason,
    };
    match fs::read(path) {
        Ok(bytes) => {
            #[cfg(unix)]
            if let Ok(meta) = fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        "audit signing key {} is readable by group or others; chmod 600 it",
                        path.display()
                    );
                }
            }
            let der = pkcs8_der(&bytes).map_err(key_err)?;
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| key_err(format!("not an Ed25519 PKCS#8 key: {e}")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| key_err("cannot generate a key".into()))?;
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(pem_encode(doc.as_ref()).as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io_err("write the signing key", path))?;
                    tracing::info!("created audit signing key {}", path.display());
                    Ed25519KeyPair::from_pkcs8(doc.as_ref())
                        .map_err(|e| key_err(format!("generated key unusable: {e}")))
                }
                // Someone else created it meanwhile: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(io_err("create the signing key", path)(e)),
            }
        }
        Err(e) => Err(io_err("read the signing key", path)(e)),
    }
}

/// Reads a base64 Ed25519 public key file (as `<file>.pub`).
pub(crate) fn read_public_key(path: &Path) -> Result<Vec<u8>, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let key = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    if key.len() != 32 {
        return Err(format!(
            "an Ed25519 public key has 32 bytes, not {}",
            key.len()
        ));
    }
    Ok(key)
}

/// The last checkpoint of a checkpoints file (or copy), if it has any.
pub(crate) fn newest_checkpoint(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let Some((line, terminated)) = read_last_line(path).map_err(io_err("read", path))? else {
        return Ok(None);
    };
    serde_json::from_slice(&line)
        .ok()
        .filter(|_| terminated)
        .map(Some)
        .ok_or_else(|| AuditError::CorruptTail {
            path: path.to_owned(),
            reason: "not a complete checkpoint".into(),
        })
}
