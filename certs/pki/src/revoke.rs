//! `underpass-certs revoke`: appending to `revoked.txt` (format in [`crate::revocation`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use underpass_proto::identity::{validate_name, Role, SpiffeId};

use crate::files::PUBLIC_MODE;
use crate::revocation::{Rule, RuleSubject};
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

/// Whose certificates a bulk rule revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// The connector with this name.
    Connector(String),
    /// Every connector of the CA's trust domain.
    AllConnectors,
}

/// What [`revoke_before`] did.
#[derive(Debug, Clone)]
pub struct RuleAdded {
    pub rule: Rule,
    /// True if the list already held this exact rule (nothing was written).
    pub already_listed: bool,
    pub list_path: PathBuf,
}

/// Appends the bulk rule `before <T> <subject>` to `dir/revoked.txt`: every certificate of the
/// target issued before `before` (Unix seconds) is revoked, later ones are not (see
/// [`crate::revocation`]). The trust domain is the CA's (`dir/ca.crt`).
pub fn revoke_before(dir: &Path, target: &RuleTarget, before: i64) -> Result<RuleAdded, Error> {
    let ca_path = dir.join(CA_CERT_FILE);
    let ca = inspect::read_certificate(&ca_path)?;
    let trust_domain = crate::ca::ca_trust_domain(&ca).map_err(|e| Error::BadCertificate {
        path: ca_path.clone(),
        reason: e.to_string(),
    })?;
    let subject = match target {
        RuleTarget::Connector(name) => {
            RuleSubject::Identity(SpiffeId::new(&trust_domain, Role::Connector, name)?)
        }
        RuleTarget::AllConnectors => RuleSubject::AllConnectors { trust_domain },
    };
    let rule = Rule { before, subject };
    let list_path = dir.join(REVOCATION_FILE);
    let (existing, listed) = read_existing(&list_path)?;
    let already_listed = listed.rules.contains(&rule);
    if !already_listed {
        append_line(&list_path, &existing, &rule.to_line())?;
    }
    Ok(RuleAdded {
        rule,
        already_listed,
        list_path,
    })
}

/// Adds a certificate to `dir/revoked.txt` (created with mode 0644 if missing).
///
/// A serial is looked up among the `*.crt` files of `dir` so the line can name the identity;
/// a serial found nowhere is refused unless `force` is set (a typo would otherwise revoke
/// nothing while looking like it worked). The self-signed root cannot be revoked this way
/// (nothing would verify any more); the connector issuer (`--name issuer`) can: the edge then
/// refuses every chain it presents.
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
            if is_root(&info) {
                return Err(Error::RevokeCa);
            }
            (info.serial, info.identity, false)
        }
        RevokeTarget::Serial(text) => {
            let serial = revocation::parse_serial(text)?;
            match find_by_serial(dir, &serial)? {
                Some((file, _)) if file == CA_CERT_FILE => return Err(Error::RevokeCa),
                Some((_, info)) if is_root(&info) => return Err(Error::RevokeCa),
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
    let (existing, listed) = read_existing(&list_path)?;
    let already_listed = listed.is_revoked_serial(&serial);
    if !already_listed {
        let who = identity
            .as_ref()
            .map_or_else(|| "-".to_owned(), SpiffeId::to_string);
        let line = format!("{serial} {who} {}", crate::rfc3339(crate::ca::now()));
        append_line(&list_path, &existing, &line)?;
    }
    Ok(Revoked {
        serial,
        identity,
        already_listed,
        unknown_forced,
        list_path,
    })
}

/// A self-signed CA certificate (the root): subject and issuer are the same name.
fn is_root(info: &inspect::CertInfo) -> bool {
    info.ca_trust_domain.is_some() && info.subject == info.issuer
}

/// The list's text (empty if the file does not exist yet) and its parse; a list that does not
/// parse is refused rather than appended to.
fn read_existing(list_path: &Path) -> Result<(String, revocation::RevocationList), Error> {
    let existing = match std::fs::read_to_string(list_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(list_path, e)),
    };
    let listed =
        revocation::read_revocation_list(&existing).map_err(|e| Error::BadCertificate {
            path: list_path.to_path_buf(),
            reason: format!("unreadable revocation list: {e}"),
        })?;
    Ok((existing, listed))
}

/// Appends `line` (plus a newline, and one before it if the file lacks its last).
fn append_line(list_path: &Path, existing: &str, line: &str) -> Result<(), Error> {
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    append(list_path, text.as_bytes())
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
            .is_revoked_serial(&issued.serial));
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

    #[test]
    fn rules_are_appended_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::ca::init(dir.path(), "underpass.local").expect("init");
        let before = 1_795_460_400;
        let target = RuleTarget::Connector("dc1".into());
        let r = revoke_before(dir.path(), &target, before).expect("rule");
        assert!(!r.already_listed);
        let r = revoke_before(dir.path(), &target, before).expect("again");
        assert!(r.already_listed);
        let r = revoke_before(dir.path(), &RuleTarget::AllConnectors, before).expect("all");
        assert!(!r.already_listed);
        let text = std::fs::read_to_string(&r.list_path).expect("read");
        assert_eq!(
            text,
            "before 2026-11-23T19:00:00Z spiffe://underpass.local/connector/dc1\n\
             before 2026-11-23T19:00:00Z spiffe://underpass.local/connector/*\n"
        );
        let err = revoke_before(
            dir.path(),
            &RuleTarget::Connector("Bad Name".into()),
            before,
        )
        .expect_err("bad name");
        assert!(matches!(err, Error::Identity(_)), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(
            revoke_before(empty.path(), &target, before).is_err(),
            "no CA"
        );
    }

    #[test]
    fn the_issuer_can_be_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::ca::init(dir.path(), "underpass.local").expect("init");
        let issuer = crate::issuer::create(
            dir.path(),
            std::time::Duration::from_secs(30 * 86_400),
            false,
        )
        .expect("issuer");
        let r = revoke(dir.path(), &RevokeTarget::Name("issuer".into()), false).expect("revoke");
        assert_eq!(r.serial, issuer.serial);
        let list = revocation::read_revocation_file(&r.list_path).expect("list");
        let der = inspect::read_certificate(&issuer.cert_path).expect("read");
        assert!(list.is_revoked(&der));
    }
}
