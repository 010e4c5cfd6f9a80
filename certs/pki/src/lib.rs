//! The Underpass PKI: one CA per deployment and short-lived certificates for edges,
//! connectors and clients, each carrying exactly one SPIFFE-style identity
//! (`spiffe://<trust-domain>/<role>/<name>`) as a URI SAN.
//!
//! The binary `underpass-certs` (crate `certs/`) is a thin shell over this library. The edge
//! uses [`revocation`] to read the revocation list the `revoke` command writes, so the two can
//! never disagree on how a serial number is spelled, without linking the command line.
//!
//! Layout of a PKI directory (`--dir`):
//!
//! | file | what |
//! |---|---|
//! | `ca.crt`, `ca.key` | the CA certificate and its PKCS#8 key (mode 0600) |
//! | `<name>.crt`, `<name>.key` | a leaf certificate and its key (mode 0600) |
//! | `issuer.crt`, `issuer.key` | the connector issuer (intermediate CA) and its key (0600) |
//! | `issuer-<serial>.crt`, `.key` | an issuer archived by `issuer --rotate` |
//! | `revoked.txt` | `<serial-hex> <identity-or-"-"> <RFC 3339 time>`, one line per revocation |

#![forbid(unsafe_code)]

pub mod ca;
pub mod chain;
pub mod csr;
mod error;
pub mod files;
pub mod inspect;
pub mod issue;
pub mod issuer;
pub mod revocation;
pub mod revoke;
pub mod session_key;
pub mod token;
pub mod ttl;

pub use error::Error;
/// The `time` crate this library's signatures use.
pub use time;

/// File name of the CA certificate inside a PKI directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key inside a PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the revocation list inside a PKI directory.
pub const REVOCATION_FILE: &str = "revoked.txt";

/// Formats a time as RFC 3339 in UTC with whole seconds (`2026-11-23T19:00:00Z`), the precision
/// certificates carry. Falls back to `time`'s own format for years RFC 3339 cannot express.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Lowercase hexadecimal without separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_whole_seconds() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_460_400_123_456_789)
            .expect("valid timestamp");
        assert_eq!(rfc3339(t), "2026-11-23T19:00:00Z");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00ab0f");
    }
}
