//! Session keys for the edge's `[sessions] keys`: 32 random bytes that seal the legacy session
//! ids clients hold (the same file on every edge). Written like every private key here: mode
//! 0600 from the first byte, never over an existing file.

use std::path::Path;

use ring::rand::SecureRandom;

use crate::files::{write_new, KEY_MODE};
use crate::Error;

/// Bytes of a session key.
pub const SESSION_KEY_LEN: usize = 32;

/// Writes a new random session key to `path` (mode 0600); fails if `path` exists.
pub fn create(path: &Path) -> Result<(), Error> {
    let mut key = [0u8; SESSION_KEY_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::Random)?;
    write_new(path, &key, KEY_MODE)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn random_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.key"), dir.path().join("b.key"));
        create(&a).unwrap();
        create(&b).unwrap();
        let (ka, kb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ka.len(), SESSION_KEY_LEN);
        assert_ne!(ka, kb);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(create(&a), Err(Error::Exists { .. })));
        assert_eq!(std::fs::read(&a).unwrap(), ka, "the existing key is kept");
    }
}
