//! Lifetimes given on the command line (`--ttl 2m`, `24h`, `30d`): parsing and the bounds a
//! certificate's lifetime must respect.

use std::time::Duration;

use time::OffsetDateTime;

use crate::Error;

/// Shortest lifetime a certificate may be issued with.
pub const MIN_CERT_TTL: Duration = Duration::from_secs(60);

/// Parses a humantime duration (`90s`, `15m`, `24h`, `30d`, `1h 30m`).
pub fn parse(value: &str) -> Result<Duration, Error> {
    humantime::parse_duration(value.trim()).map_err(|e| Error::BadTtl {
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(ttl: Duration) -> String {
    humantime::format_duration(ttl).to_string()
}

/// Checks a certificate lifetime: at least [`MIN_CERT_TTL`], and `now + ttl` no later than the
/// end of the CA (or issuer) that signs it, `ca_end`. Returns the end it gives.
pub fn check_cert_ttl(
    ttl: Duration,
    now: OffsetDateTime,
    ca_end: OffsetDateTime,
) -> Result<OffsetDateTime, Error> {
    if ttl < MIN_CERT_TTL {
        return Err(Error::TtlTooShort {
            ttl: format(ttl),
            min: format(MIN_CERT_TTL),
        });
    }
    let beyond = || Error::TtlBeyondCa {
        ttl: format(ttl),
        end: time::Duration::try_from(ttl)
            .ok()
            .and_then(|d| now.checked_add(d))
            .map_or_else(|| "the far future".to_owned(), crate::rfc3339),
        ca_end: crate::rfc3339(ca_end),
    };
    let ttl_t = time::Duration::try_from(ttl).map_err(|_| beyond())?;
    let end = now.checked_add(ttl_t).ok_or_else(beyond)?;
    if end > ca_end {
        return Err(beyond());
    }
    Ok(end)
}

#[cfg(test)]
mod tests;
