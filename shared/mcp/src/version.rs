//! Protocol versions: which ones the edge serves, and the era (modern or legacy) of a
//! request from its `MCP-Protocol-Version` header.

use crate::error::VersionError;
use crate::headers::trim_ows;

/// Protocol versions the edge understands, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// The first protocol version of the modern (stateless, per-request metadata) era.
pub const MODERN_VERSION: &str = "2026-07-28";

/// The version a server may assume when a request carries no `MCP-Protocol-Version`.
pub const LEGACY_DEFAULT_VERSION: &str = "2025-03-26";

/// The two eras of MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28 and later: stateless, per-request `_meta`, metadata headers.
    Modern,
    /// 2025-11-25 and earlier: `initialize` handshake, sessions.
    Legacy,
}

impl Era {
    /// The era of a `YYYY-MM-DD` protocol version (anything else is taken as legacy).
    pub fn of(version: &str) -> Era {
        let b = version.as_bytes();
        let is_date = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if is_date && version >= MODERN_VERSION {
            Era::Modern
        } else {
            Era::Legacy
        }
    }
}

/// Decides the era of a request from its `MCP-Protocol-Version` header value.
///
/// * Absent: legacy, as `2025-03-26` (2025-11-25 transports: **SHOULD** assume it;
///   2026-07-28: **MAY**) — provided `supported` contains `2025-03-26`; otherwise
///   [`VersionError::Missing`] (`-32020`).
/// * Present (optional whitespace trimmed) and in `supported`: its era.
/// * Otherwise [`VersionError::Unsupported`] (`-32022`, `400`, with
///   `data.supported` = `supported` and `data.requested` echoing the value).
///
/// A request whose `_meta` names a version must also match this header: see
/// [`check_meta_version`](crate::check_meta_version) (run as part of
/// [`validate_modern_headers`](crate::validate_modern_headers)).
pub fn check_protocol_version(
    header: Option<&str>,
    supported: &[&str],
) -> Result<Era, VersionError> {
    let Some(raw) = header else {
        return if supported.contains(&LEGACY_DEFAULT_VERSION) {
            Ok(Era::Legacy)
        } else {
            Err(VersionError::Missing)
        };
    };
    let version = trim_ows(raw);
    if supported.contains(&version) {
        Ok(Era::of(version))
    } else {
        Err(VersionError::Unsupported {
            requested: version.to_owned(),
            supported: supported.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

#[cfg(test)]
mod tests;
