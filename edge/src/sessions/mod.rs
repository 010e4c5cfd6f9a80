//! Sealed legacy session ids: the keys in force (`[sessions] keys`, read once at start) and
//! the pure sealing in [`seal`].
//!
//! With `[sessions] keys`, every edge that holds the same key files opens the ids any of them
//! sealed, so any edge with a tunnel to a session's connector continues it. Without it the
//! edge seals with a random key of its own process: its sessions end with it.

pub mod seal;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub use seal::{Opened, Payload, Refused, SealError, Sealer, SECRET_LEN};

/// Reads one key file: exactly [`SECRET_LEN`] bytes (`underpass-certs session-key` writes
/// them).
pub fn read_key(path: &Path) -> anyhow::Result<[u8; SECRET_LEN]> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read session key {}", path.display()))?;
    <[u8; SECRET_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "session key {} holds {} bytes, not {SECRET_LEN}: make one with \
             `underpass-certs session-key --out FILE`",
            path.display(),
            bytes.len()
        )
    })
}

/// The sealer for `[sessions] keys` (in order: the first seals, all open), or a random key
/// of this process when `keys` is `None`.
pub fn load(keys: Option<&[PathBuf]>) -> anyhow::Result<Sealer> {
    let Some(paths) = keys else {
        return Sealer::ephemeral().context("cannot make a session key");
    };
    let mut secrets = Vec::with_capacity(paths.len());
    for path in paths {
        let secret = read_key(path).context("invalid [sessions] keys")?;
        if secrets.contains(&secret) {
            bail!(
                "invalid [sessions] keys: {} holds the same key as another file of the list",
                path.display()
            );
        }
        secrets.push(secret);
    }
    Sealer::new(&secrets).context("invalid [sessions] keys")
}

#[cfg(test)]
mod tests;
