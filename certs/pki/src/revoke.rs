//! `underpass-certs revoke`: appending to `revoked.txt` (format in [`crate::revocation`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use underpass_proto::identity::{validate_name, SpiffeId};

use crate::files::PUBLIC_MODE;
use crate::{inspect, revocation, Error, CA_CERT_FILE, REVOCATION_FILE};

/// Which certificate to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// The certificate `DIR/<name>.crt`.
    Name(String),
    /// A serial number in any spelling [`revocation::parse_serial`] accepts.
    Serial(String),
}

/// What `revoke` did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Canonical serial.
    pub serial: String,
    /// The certificate's identity, if its file was found.
    pub identity: Option<SpiffeId>,
    /// True if the list already held this serial (nothing was written).
    pub already_listed: bool,
    /// True if `--force` revoked a serial no certificate in the directory has.
    pub unknown_forced: bool,
    pub list_path: PathBuf,
}

/// Adds a certificate to `dir/revoked.txt` (created with mode 0644 if missing).
///
/// A serial is looked up among the `*.crt` files of `dir` so the line can name the identity;
/// a serial found nowhere is refused unless `force` is set (a typo would otherwise revoke
/// nothing while looking like it worked). The CA itself cannot be revoked this way.
pub fn revoke(dir: &Path, target: &RevokeTarget, force: bool) -> Result<Revoked, Error> {
    let (serial, identity, unknown_forced) = match target {
        RevokeTarget::Name(name) => {
            validate_name(name)?;
            if name == "ca" {
                return Err(Error::RevokeCa);
            }
            let path = dir.join(format!("{name}.crt"));
            let der = match inspect::read_certificate(&path) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::UnknownName { path })
                }
                other => other?,
            };
            let info = inspect::inspect_der(&der).map_err(|e| Error::BadCertificate {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if info.ca_trust_domain.is_some() {
                return Err(Error::RevokeCa);
            }
            (info.serial, info.identity, false)
        }
        RevokeTarget::Serial(text) => {
            let serial = revocation::parse_serial(text)?;
            match find_by_serial(dir, &serial)? {
                Some((file, _)) if file == CA_CERT_FILE => return Err(Error::RevokeCa),
                Some((_, info)) if info.ca_trust_domain.is_some() => return Err(Error::RevokeCa),
                Some((_, info)) => (serial, info.identity, false),
                None if force => (serial, None, true),
                None => {
                    return Err(Error::UnknownSerial {
                        dir: dir.to_path_buf(),
                        serial,
                    })
                }
            }
        }
    };

    let list_path = dir.join(REVOCATION_FILE);
    let existing = match std::fs::read_to_string(&list_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&list_path, e)),
    };
    let listed =
        revocation::read_revocation_list(&existing).map_err(|e| Error::BadCertificate {
            path: list_path.clone(),
            reason: format!("unreadable revocation list: {e}"),
        })?;
    let already_listed = listed.contains(&serial);
    if !already_listed {
        let mut line = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            line.push('\n');
        }
        let who = identity
            .as_ref()
            .map_or_else(|| "-".to_owned(), SpiffeId::to_string);
        line.push_str(&format!(
            "{serial} {who} {}\n",
            crate::rfc3339(crate::ca::now())
        ));
        append(&list_path, line.as_bytes())?;
    }
    Ok(Revoked {
        serial,
        identity,
        already_listed,
        unknown_forced,
        list_path,
    })
}

/// One `write` in append mode, so concurrent revocations cannot interleave within a line.
fn append(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PUBLIC_MODE)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// The certificate in `dir` (by file name) whose serial is `serial`; unreadable or foreign
/// files are skipped.
fn find_by_serial(dir: &Path, serial: &str) -> Result<Option<(String, inspect::CertInfo)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "crt") {
            continue;
        }
        let Ok(der) = inspect::read_certificate(&path) else {
            continue;
        };
        let Ok(info) = inspect::inspect_der(&der) else {
            continue;
        };
        if info.serial == serial {
            let file = entry.file_name().to_string_lossy().into_owned();
            return Ok(Some((file, info)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use underpass_proto::identity::Role;

    #[test]
    fn by_name_then_by_serial_is_noop() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::ca::init(dir.path(), "underpass.local").expect("init");
        let issued = crate::issue::issue(dir.path(), Role::Connector, "dc1", &[]).expect("issue");

        let r = revoke(dir.path(), &RevokeTarget::Name("dc1".into()), false).expect("revoke");
        assert_eq!(r.serial, issued.serial);
        assert!(!r.already_listed);
        let text = std::fs::read_to_string(&r.list_path).expect("read");
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields[0], issued.serial);
        assert_eq!(fields[1], "spiffe://underpass.local/connector/dc1");
        assert_eq!(fields.len(), 3);

        let upper = issued.serial.to_ascii_uppercase();
        let r = revoke(
            dir.path(),
            &RevokeTarget::Serial(format!("00{upper}")),
            false,
        )
        .expect("again");
        assert!(r.already_listed);
        assert_eq!(std::fs::read_to_string(&r.list_path).expect("read"), text);
        assert!(revocation::read_revocation_file(&r.list_path)
            .expect("list")
            .contains(&issued.serial));
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = crate::ca::init(dir.path(), "underpass.local").expect("init");
        let err = revoke(dir.path(), &RevokeTarget::Name("nope".into()), false).expect_err("x");
        assert!(matches!(err, Error::UnknownName { .. }), "{err}");
        let err = revoke(dir.path(), &RevokeTarget::Serial("abcd".into()), false).expect_err("x");
        assert!(matches!(err, Error::UnknownSerial { .. }), "{err}");
        let err = revoke(dir.path(), &RevokeTarget::Serial("zz".into()), false).expect_err("x");
        assert!(
            err.to_string().starts_with("invalid serial number"),
            "{err}"
        );
        let err = revoke(dir.path(), &RevokeTarget::Name("ca".into()), false).expect_err("x");
        assert!(matches!(err, Error::RevokeCa));
        let err = revoke(dir.path(), &RevokeTarget::Serial(ca.serial), false).expect_err("x");
        assert!(matches!(err, Error::RevokeCa));
        assert!(!dir.path().join(REVOCATION_FILE).exists());

        let r = revoke(dir.path(), &RevokeTarget::Serial("AB:CD".into()), true).expect("forced");
        assert!(r.unknown_forced);
        let text = std::fs::read_to_string(&r.list_path).expect("read");
        assert!(text.starts_with("abcd - "), "{text}");
    }
}
