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
//! **Canonical serial form** (what `inspect` prints, what `revoke` writes, and what the sets
//! returned here contain): the serial's value in lowercase hexadecimal, without separators and
//! without leading zeros (`"0"` for zero). DER stores a positive serial with a leading `00` byte
//! when its top bit is set, and people paste serials as `0A:1B:...`; dropping leading zero
//! *digits* (not bytes) makes every spelling of the same number compare equal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

/// Parses the text of a revocation list into the set of canonical serials it revokes.
///
/// A line whose first field is not a serial number fails the whole list, naming the line:
/// a reader that silently skipped it would un-revoke that certificate.
pub fn read_revocation_list(text: &str) -> Result<HashSet<String>, RevocationError> {
    let mut serials = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        let serial = parse_serial(first).map_err(|_| RevocationError::BadLine {
            line: index + 1,
            serial: first.to_owned(),
        })?;
        serials.insert(serial);
    }
    Ok(serials)
}

/// Reads and parses a revocation list file. A missing file is an error here: whether "no list"
/// means "nothing revoked" is the caller's policy to decide.
pub fn read_revocation_file(path: &Path) -> Result<HashSet<String>, RevocationError> {
    let text = std::fs::read_to_string(path).map_err(|source| RevocationError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_revocation_list(&text)
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
        let set = read_revocation_list(text).expect("valid list");
        let expected: HashSet<String> = ["5f3a", "ab", "c"].map(String::from).into();
        assert_eq!(set, expected);
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
}
