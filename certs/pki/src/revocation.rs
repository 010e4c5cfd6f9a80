//! The revocation list shared by `underpass-certs revoke` (writer) and the edge (reader).
//!
//! `revoked.txt` holds one revocation per line:
//!
//! ```text
//! <serial-hex> <identity-or-"-"> <RFC 3339 time>
//! 5f3a0c...  spiffe://underpass.local/connector/dc1 2026-11-23T19:00:00Z
//! ```
//!
//! Only the first field decides anything; the rest is for the humans reading the file. Blank
//! lines and lines starting with `#` are ignored.
//!
//! **Bulk rules** (incident response: "everything issued before T for name N"):
//!
//! ```text
//! before <RFC 3339 time> <spiffe id>
//! before <RFC 3339 time> spiffe://<trust domain>/connector/*
//! before 2026-11-23T19:00:00Z spiffe://underpass.local/connector/dc1
//! ```
//!
//! revoke every certificate of that identity (or of any connector of that trust domain) whose
//! `notBefore` + [`crate::ca::CLOCK_SKEW`] (our certificates start that much early, so that is
//! their issuance time) is before the time. Certificates issued afterwards are not affected.
//!
//! Parsing is strict: an unknown or malformed line fails the whole list, so a reader that does
//! not understand a line (an older edge reading a rule, say) keeps its last good list instead
//! of silently un-revoking something.
//!
//! **Canonical serial form** (what `inspect` prints, what `revoke` writes, and what the sets
//! returned here contain): the serial's value in lowercase hexadecimal, without separators and
//! without leading zeros (`"0"` for zero). DER stores a positive serial with a leading `00` byte
//! when its top bit is set, and people paste serials as `0A:1B:...`; dropping leading zero
//! *digits* (not bytes) makes every spelling of the same number compare equal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use underpass_proto::identity::{validate_trust_domain, Role, SpiffeId};

/// Longest canonical serial accepted: RFC 5280 allows 20 octets; leave room for
/// non-conforming issuers without accepting unbounded input.
const MAX_SERIAL_DIGITS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error(
        "invalid serial number {0:?}: expected hexadecimal digits, optionally separated by ':'"
    )]
    InvalidSerial(String),

    #[error("line {line}: invalid serial number {serial:?}")]
    BadLine { line: usize, serial: String },

    #[error("line {line}: invalid rule: {reason} (expected `before <RFC 3339 time> <spiffe id | spiffe://<trust domain>/connector/*>`)")]
    BadRule { line: usize, reason: String },

    #[error("invalid time {0:?}: expected RFC 3339 in UTC (e.g. 2026-11-23T19:00:00Z) or \"now\"")]
    BadTime(String),

    #[error("could not read {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    BadCertificate(String),
}

/// The canonical form of a serial number given as big-endian bytes (as DER stores it, sign
/// byte and all: x509-parser's `raw_serial`).
pub fn canonical_serial(bytes: &[u8]) -> String {
    strip_leading_zeros(&crate::hex(bytes))
}

/// The canonical form of a serial number typed by a person or read from a file: accepts upper
/// or lower case, `:` separators, an optional `0x` prefix and leading zeros.
pub fn parse_serial(text: &str) -> Result<String, RevocationError> {
    let invalid = || RevocationError::InvalidSerial(text.to_owned());
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let canonical = strip_leading_zeros(&digits.to_ascii_lowercase());
    if canonical.len() > MAX_SERIAL_DIGITS {
        return Err(invalid());
    }
    Ok(canonical)
}

/// The canonical serial of a DER certificate (e.g. a peer's end-entity certificate).
pub fn certificate_serial(der: &[u8]) -> Result<String, RevocationError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| RevocationError::BadCertificate(format!("not a certificate: {e}")))?;
    Ok(canonical_serial(cert.raw_serial()))
}

/// Whom a bulk rule revokes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleSubject {
    /// Every certificate of this identity.
    Identity(SpiffeId),
    /// Every connector certificate of this trust domain (`spiffe://<td>/connector/*`).
    AllConnectors { trust_domain: String },
}

impl RuleSubject {
    /// Whether `id` is covered.
    pub fn covers(&self, id: &SpiffeId) -> bool {
        match self {
            RuleSubject::Identity(rule) => rule == id,
            RuleSubject::AllConnectors { trust_domain } => {
                id.role == Role::Connector && &id.trust_domain == trust_domain
            }
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        if let Some(td) = text
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.strip_suffix("/connector/*"))
        {
            validate_trust_domain(td).map_err(|e| e.to_string())?;
            return Ok(RuleSubject::AllConnectors {
                trust_domain: td.to_owned(),
            });
        }
        text.parse::<SpiffeId>()
            .map(RuleSubject::Identity)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for RuleSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleSubject::Identity(id) => id.fmt(f),
            RuleSubject::AllConnectors { trust_domain } => {
                write!(f, "spiffe://{trust_domain}/connector/*")
            }
        }
    }
}

/// `before <T> <subject>`: revokes the subject's certificates issued before `T`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// `T`, in seconds since the Unix epoch.
    pub before: i64,
    pub subject: RuleSubject,
}

impl Rule {
    /// Whether a certificate of identity `id` with this `notBefore` (Unix seconds) is revoked:
    /// its issuance time (`notBefore` + [`crate::ca::CLOCK_SKEW`]) is before `T`.
    pub fn revokes(&self, id: &SpiffeId, not_before: i64) -> bool {
        let issued = not_before.saturating_add(crate::ca::CLOCK_SKEW.whole_seconds());
        issued < self.before && self.subject.covers(id)
    }

    /// The line `revoke` writes for this rule.
    pub fn to_line(&self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(self.before)
            .map_or_else(|_| self.before.to_string(), crate::rfc3339);
        format!("before {t} {}", self.subject)
    }
}

/// A parsed `revoked.txt`: serials and bulk rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// Canonical serials.
    pub serials: HashSet<String>,
    pub rules: Vec<Rule>,
}

impl RevocationList {
    /// Whether the serial (canonical form) is listed.
    pub fn is_revoked_serial(&self, serial: &str) -> bool {
        self.serials.contains(serial)
    }

    /// Whether a rule revokes a certificate of identity `id` with this `notBefore`.
    pub fn rule_revokes(&self, id: &SpiffeId, not_before: i64) -> bool {
        self.rules.iter().any(|r| r.revokes(id, not_before))
    }

    /// Whether the DER certificate is revoked, by serial or by a rule. A certificate that
    /// cannot be parsed counts as revoked (it has failed webpki already anyway); one without
    /// a SPIFFE identity (an intermediate) can only be revoked by serial.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return true;
        };
        if self.is_revoked_serial(&canonical_serial(cert.raw_serial())) {
            return true;
        }
        if self.rules.is_empty() {
            return false;
        }
        let not_before = cert.validity().not_before.timestamp();
        SpiffeId::from_certificate_der(der).is_ok_and(|id| self.rule_revokes(&id, not_before))
    }

    /// Nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.rules.is_empty()
    }

    /// For log lines: `3 serials` or `3 serials, 1 rules`.
    pub fn summary(&self) -> String {
        if self.rules.is_empty() {
            format!("{} serials", self.serials.len())
        } else {
            format!("{} serials, {} rules", self.serials.len(), self.rules.len())
        }
    }
}

/// Parses an RFC 3339 time (`2026-11-23T19:00:00Z`, in UTC, fractions of a second allowed) into Unix
/// seconds (rounded up to a whole second), or `now` (the current time).
pub fn parse_time(text: &str) -> Result<i64, RevocationError> {
    let bad = || RevocationError::BadTime(text.to_owned());
    let t = if text == "now" {
        SystemTime::now()
    } else {
        humantime::parse_rfc3339(text).map_err(|_| bad())?
    };
    let since = t.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
    // Rounded up: certificates carry whole seconds, and "before now" must catch one issued
    // earlier in this very second.
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    i64::try_from(secs).map_err(|_| bad())
}

/// Parses the text of a revocation list.
///
/// A line that is neither a serial line nor a well-formed rule fails the whole list, naming
/// the line: a reader that silently skipped it would un-revoke those certificates.
pub fn read_revocation_list(text: &str) -> Result<RevocationList, RevocationError> {
    let mut list = RevocationList::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first == "before" {
            let rule = parse_rule(fields).map_err(|reason| RevocationError::BadRule {
                line: index + 1,
                reason,
            })?;
            if !list.rules.contains(&rule) {
                list.rules.push(rule);
            }
            continue;
        }
        let serial = parse_serial(first).map_err(|_| RevocationError::BadLine {
            line: index + 1,
            serial: first.to_owned(),
        })?;
        list.serials.insert(serial);
    }
    Ok(list)
}

fn parse_rule<'a>(mut fields: impl Iterator<Item = &'a str>) -> Result<Rule, String> {
    let (Some(time), Some(subject), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("wrong number of fields".to_owned());
    };
    if time == "now" {
        return Err("the time must be explicit, not \"now\"".to_owned());
    }
    let before = parse_time(time).map_err(|e| e.to_string())?;
    let subject = RuleSubject::parse(subject)?;
    Ok(Rule { before, subject })
}

/// Reads and parses a revocation list file. A missing file is an error here: whether "no list"
/// means "nothing revoked" is the caller's policy to decide.
pub fn read_revocation_file(path: &Path) -> Result<RevocationList, RevocationError> {
    let text = std::fs::read_to_string(path).map_err(|source| RevocationError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_revocation_list(&text)
}

/// The fail-closed reading of a configured revocation list file, shared by the edge and the
/// connector (each adds its own logging and hot-swapping around it):
///
/// - at start, a configured but unreadable or malformed list is an error; one that does not
///   exist yet revokes nothing (`revoke` creates it);
/// - once the file has been read, a list that turns unreadable, malformed or missing is never
///   taken as "nothing is revoked": the caller keeps its last good list, and
///   [`ListSource::failure`] says why until a good list is back.
#[derive(Debug)]
pub struct ListSource {
    path: PathBuf,
    /// Whether the file has been read at least once: from then on its absence is a failure.
    seen_file: AtomicBool,
    reload_failures: AtomicU64,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Why the last reload failed (the last good list is in force meanwhile).
    failure: Option<String>,
    /// When the current run of failures began.
    stale_since: Option<Instant>,
}

/// The outcome of [`ListSource::reload`].
#[derive(Debug)]
pub enum Reloaded {
    /// The file was read; `changed` holds the new list if it differs from the one in force,
    /// `recovered` says a failure has just ended.
    Read {
        changed: Option<RevocationList>,
        recovered: bool,
    },
    /// The file could not be used: keep the list in force. `why` is for the log.
    Failed { why: String },
}

/// Counters for monitoring (`/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListStats {
    /// Failed reloads since start.
    pub reload_failures: u64,
    /// How long the list in force has not matched the file (a run of failed reloads), if it
    /// does not.
    pub stale_for: Option<Duration>,
}

impl ListSource {
    /// Reads the list once (see the type's documentation for a missing file).
    pub fn load(path: PathBuf) -> Result<(Self, RevocationList), RevocationError> {
        let exists = path.exists();
        let list = if exists {
            read_revocation_file(&path)?
        } else {
            RevocationList::default()
        };
        let source = ListSource {
            path,
            seen_file: AtomicBool::new(exists),
            reload_failures: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
        };
        Ok((source, list))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file; `current` is the list in force (kept on failure).
    pub fn reload(&self, current: &RevocationList) -> Reloaded {
        let read = if self.path.exists() {
            read_revocation_file(&self.path).map_err(|e| e.to_string())
        } else if self.seen_file.load(Ordering::Relaxed) {
            Err("the file is gone".to_owned())
        } else {
            Ok(RevocationList::default())
        };
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(fresh) => {
                if self.path.exists() {
                    self.seen_file.store(true, Ordering::Relaxed);
                }
                let recovered = health.failure.take().is_some();
                health.stale_since = None;
                let changed = (fresh != *current).then_some(fresh);
                Reloaded::Read { changed, recovered }
            }
            Err(why) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                health.stale_since.get_or_insert_with(Instant::now);
                health.failure = Some(format!(
                    "{} not reloaded ({why}); the last good list ({}) is in force",
                    self.path.display(),
                    current.summary()
                ));
                Reloaded::Failed { why }
            }
        }
    }

    /// Why the list in force is not the file's current content, and for how long, if it is not
    /// (for `/readyz`).
    pub fn failure(&self) -> Option<String> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let failure = health.failure.clone()?;
        let age = health.stale_since.map_or(0, |t| t.elapsed().as_secs());
        Some(format!("{failure} (stale for {age}s)"))
    }

    pub fn stats(&self) -> ListStats {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        ListStats {
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
            stale_for: health.stale_since.map(|t| t.elapsed()),
        }
    }
}

fn strip_leading_zeros(hex: &str) -> String {
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_agree() {
        assert_eq!(canonical_serial(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(canonical_serial(&[0x05, 0xa0]), "5a0");
        assert_eq!(canonical_serial(&[]), "0");
        assert_eq!(canonical_serial(&[0, 0]), "0");
        for spelling in ["8f01", "8F01", "00:8F:01", "0x008f01", " 8f:01 "] {
            assert_eq!(parse_serial(spelling).expect(spelling), "8f01");
        }
        assert_eq!(
            parse_serial("05:A0").expect("valid"),
            canonical_serial(&[5, 0xa0])
        );
        assert_eq!(parse_serial("000").expect("valid"), "0");
    }

    #[test]
    fn rejects_bad_serials() {
        for bad in ["", ":", "0x", "xyz", "12 34", "-1", &"f".repeat(65)] {
            assert!(parse_serial(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reads_list() {
        let text =
            "# revoked\n\n5f3a spiffe://underpass.local/connector/dc1 2026-11-23T19:00:00Z\n\
                    00:AB - 2026-11-23T19:00:00Z\n  0C\n";
        let list = read_revocation_list(text).expect("valid list");
        let expected: HashSet<String> = ["5f3a", "ab", "c"].map(String::from).into();
        assert_eq!(list.serials, expected);
        assert!(list.rules.is_empty());
    }

    #[test]
    fn bad_line_fails_whole_list() {
        let err = read_revocation_list("ab\nnot-a-serial x y\n").expect_err("rejected");
        assert_eq!(
            err.to_string(),
            "line 2: invalid serial number \"not-a-serial\""
        );
    }

    #[test]
    fn certificate_serial_rejects_garbage() {
        assert!(certificate_serial(b"garbage").is_err());
    }

    const T: &str = "2026-11-23T19:00:00Z";
    const T_UNIX: i64 = 1_795_460_400;

    fn id(name: &str) -> SpiffeId {
        SpiffeId::new("underpass.local", Role::Connector, name).expect("id")
    }

    #[test]
    fn reads_rules() {
        let text = format!(
            "ab - -\nbefore {T} spiffe://underpass.local/connector/dc1\n\
             before 2026-11-23T19:00:00.5Z spiffe://underpass.local/connector/*\n\
             before {T} spiffe://underpass.local/connector/dc1\n"
        );
        let list = read_revocation_list(&text).expect("valid");
        assert!(list.is_revoked_serial("ab"));
        assert_eq!(list.rules.len(), 2, "duplicates collapse");
        assert_eq!(list.rules[0].before, T_UNIX);
        assert_eq!(list.rules[0].subject, RuleSubject::Identity(id("dc1")));
        assert_eq!(
            list.rules[1].subject,
            RuleSubject::AllConnectors {
                trust_domain: "underpass.local".into()
            }
        );
        assert_eq!(
            list.rules[0].to_line(),
            format!("before {T} spiffe://underpass.local/connector/dc1")
        );
        assert_eq!(list.summary(), "1 serials, 2 rules");
        let again = read_revocation_list(&list.rules[1].to_line()).expect("round trip");
        assert_eq!(again.rules[0].subject, list.rules[1].subject);
    }

    #[test]
    fn rule_matching() {
        let skew = crate::ca::CLOCK_SKEW.whole_seconds();
        let one = Rule {
            before: T_UNIX,
            subject: RuleSubject::Identity(id("dc1")),
        };
        let all = Rule {
            before: T_UNIX,
            subject: RuleSubject::AllConnectors {
                trust_domain: "underpass.local".into(),
            },
        };
        // Issued (notBefore + skew) one second before T: revoked; at T or later: not.
        let before = T_UNIX - skew - 1;
        let at = T_UNIX - skew;
        assert!(one.revokes(&id("dc1"), before));
        assert!(!one.revokes(&id("dc1"), at));
        assert!(!one.revokes(&id("dc2"), before));
        assert!(all.revokes(&id("dc2"), before));
        assert!(!all.revokes(&id("dc2"), at));
        let client = SpiffeId::new("underpass.local", Role::Client, "dc1").expect("id");
        assert!(!one.revokes(&client, before));
        assert!(!all.revokes(&client, before));
        let foreign = SpiffeId::new("other.test", Role::Connector, "dc1").expect("id");
        assert!(!one.revokes(&foreign, before));
        assert!(!all.revokes(&foreign, before));
    }

    #[test]
    fn bad_rules_fail_whole_list() {
        for bad in [
            "before".to_owned(),
            format!("before {T}"),
            format!("before {T} spiffe://underpass.local/connector/dc1 extra"),
            "before now spiffe://underpass.local/connector/dc1".to_owned(),
            "before 2026-11-23 spiffe://underpass.local/connector/dc1".to_owned(),
            "before 2026-11-23T19:00:00+01:00 spiffe://underpass.local/connector/dc1".to_owned(),
            format!("before {T} spiffe://underpass.local/connector/*x"),
            format!("before {T} spiffe://underpass.local/client/*"),
            format!("before {T} spiffe://Bad_TD/connector/*"),
            format!("before {T} dc1"),
            format!("after {T} spiffe://underpass.local/connector/dc1"),
        ] {
            let text = format!("ab\n{bad}\n");
            let err = read_revocation_list(&text).expect_err(&bad);
            assert!(err.to_string().starts_with("line 2: "), "{bad}: {err}");
        }
    }

    #[test]
    fn certificates_by_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::ca::init(dir.path(), "underpass.local").expect("init");
        let issued = crate::issue::issue(dir.path(), Role::Connector, "dc1", &[]).expect("issue");
        let der = crate::inspect::read_certificate(&issued.cert_path).expect("read");
        let now = parse_time("now").expect("now");
        let list = |before: i64, subject: &str| {
            read_revocation_list(&format!(
                "before {} {subject}\n",
                crate::rfc3339(time::OffsetDateTime::from_unix_timestamp(before).expect("time"))
            ))
            .expect("list")
        };
        let dc1 = "spiffe://underpass.local/connector/dc1";
        assert!(list(now + 60, dc1).is_revoked(&der));
        assert!(list(now + 60, "spiffe://underpass.local/connector/*").is_revoked(&der));
        assert!(!list(now + 60, "spiffe://underpass.local/connector/dc2").is_revoked(&der));
        assert!(!list(now - 60, dc1).is_revoked(&der), "issued after T");
        assert!(!RevocationList::default().is_revoked(&der));
        assert!(RevocationList::default().is_revoked(b"garbage"));
        // The CA has no SPIFFE leaf identity: only its serial can revoke it.
        let ca =
            crate::inspect::read_certificate(&dir.path().join(crate::CA_CERT_FILE)).expect("ca");
        assert!(!list(now + 60, "spiffe://underpass.local/connector/*").is_revoked(&ca));
    }

    #[test]
    fn list_source_fails_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked.txt");
        let (source, mut list) = ListSource::load(path.clone()).expect("absent is fine");
        assert!(list.is_empty());
        assert!(matches!(
            source.reload(&list),
            Reloaded::Read {
                changed: None,
                recovered: false
            }
        ));
        std::fs::write(&path, "ab - -\n").expect("write");
        match source.reload(&list) {
            Reloaded::Read {
                changed: Some(fresh),
                ..
            } => list = fresh,
            other => panic!("{other:?}"),
        }
        for broken in ["gone", "garbage"] {
            let _ = std::fs::remove_file(&path);
            if broken == "garbage" {
                std::fs::write(&path, "before x\n").expect("write");
            }
            assert!(matches!(source.reload(&list), Reloaded::Failed { .. }));
            let failure = source.failure().expect("reported");
            assert!(failure.contains("last good list (1 serials)"), "{failure}");
            assert!(failure.contains("stale for"), "{failure}");
        }
        assert_eq!(source.stats().reload_failures, 2);
        assert!(source.stats().stale_for.is_some());
        std::fs::write(&path, "ab\n").expect("write");
        assert!(matches!(
            source.reload(&list),
            Reloaded::Read {
                changed: None,
                recovered: true
            }
        ));
        assert_eq!(source.failure(), None);
        assert_eq!(source.stats().stale_for, None);

        std::fs::write(&path, "garbage\n").expect("write");
        assert!(ListSource::load(path).is_err(), "unreadable at start");
    }
}
