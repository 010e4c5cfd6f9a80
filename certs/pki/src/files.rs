//! Safe file creation for keys and certificates.
//!
//! Private keys must never be readable by others, not even for an instant, and an existing key
//! must never be replaced: overwriting `ca.key` would silently orphan every certificate the old
//! CA signed. So every file is created exclusively with its final mode already set, and appears
//! under its final name only once complete (written to a temporary file, then hard-linked,
//! which fails if the name is taken — unlike `rename`, which would replace it).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Mode of private key files: owner read/write only.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificates and the revocation list: public data.
pub const PUBLIC_MODE: u32 = 0o644;

/// Fails with [`Error::Exists`] naming the first of `paths` that already exists (a dangling
/// symlink counts: writing through it could land anywhere).
pub fn ensure_absent(paths: &[&Path]) -> Result<(), Error> {
    for path in paths {
        match path.symlink_metadata() {
            Ok(_) => {
                return Err(Error::Exists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(*path, e)),
        }
    }
    Ok(())
}

/// Creates `path` with `contents` and `mode`; never overwrites. Where the filesystem supports
/// hard links, readers see either no file or the complete one.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let exists = || Error::Exists {
        path: path.to_path_buf(),
    };
    let tmp = temp_path(path);
    // Staging can fail for reasons unrelated to `path` (a stale temporary name, a filesystem
    // without hard links); in that case write in place below, which is still exclusive.
    if write_exclusive(&tmp, contents, mode).is_ok() {
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_parent(path);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(_) => {}
        }
    }
    match write_exclusive(path, contents, mode) {
        Ok(()) => {
            sync_parent(path);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes a certificate and its key as a pair: both names must be free, the key is written
/// first, and if the certificate cannot be written the key is removed again, so a failure never
/// leaves a key without its certificate (or a certificate whose key is gone).
pub fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), Error> {
    ensure_absent(&[cert_path, key_path])?;
    write_new(key_path, key_pem.as_bytes(), KEY_MODE)?;
    if let Err(e) = write_new(cert_path, cert_pem.as_bytes(), PUBLIC_MODE) {
        let _ = std::fs::remove_file(key_path);
        return Err(e);
    }
    Ok(())
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn write_exclusive(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // From here on the file is ours: never leave a truncated one behind.
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// A hidden name next to `path`, unique within this process and, via the pid, across processes.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{file_name}.{}.{n}.tmp", std::process::id()))
}

/// Best effort: make the new directory entry durable. Failure here loses nothing that a
/// successful `sync_all` on the file did not already protect on common filesystems.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_with_mode_and_refuses_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.key");
        write_new(&path, b"secret", KEY_MODE).expect("first write");
        let meta = std::fs::metadata(&path).expect("metadata");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");

        let err = write_new(&path, b"other", KEY_MODE).expect_err("overwrite refused");
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn pair_refuses_when_either_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("a.crt");
        let key = dir.path().join("a.key");
        std::fs::write(&cert, "old").expect("write");
        let err = write_pair(&cert, "new", &key, "k").expect_err("refused");
        assert!(err.to_string().contains("a.crt already exists"), "{err}");
        assert!(
            !key.exists(),
            "key must not be written when the cert name is taken"
        );
    }

    #[test]
    fn pair_removes_key_when_cert_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The certificate's folder does not exist, so its write fails after the key's.
        let cert = dir.path().join("missing").join("a.crt");
        let key = dir.path().join("a.key");
        write_pair(&cert, "c", &key, "k").expect_err("cert write fails");
        assert!(!key.exists(), "half pair left behind");
    }
}
