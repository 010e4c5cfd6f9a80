//! Timestamps of the trail: RFC 3339 UTC with milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// `2025-01-31T12:00:00.123Z`: always UTC, always three fraction digits, so every line's
/// `time` has the same width and sorts as text.
const FORMAT: &[FormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The current time as RFC 3339 UTC with milliseconds, e.g. `2025-01-31T12:00:00.123Z`.
pub fn now() -> String {
    format_time(SystemTime::now())
}

/// Formats `t` as RFC 3339 UTC with milliseconds (times before 1970 are clamped to 1970).
pub fn format_time(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Whole milliseconds: the format shows three digits and must not round up into the next
    // second.
    let millis = std::time::Duration::from_millis(
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
    );
    OffsetDateTime::UNIX_EPOCH
        .checked_add(millis.try_into().unwrap_or(time::Duration::ZERO))
        .and_then(|at| at.format(FORMAT).ok())
        // Beyond year 9999: no RFC 3339 form; never panic in the writer.
        .unwrap_or_else(|| "9999-12-31T23:59:59.999Z".to_owned())
}
