//! Rates of allow rules: `"120/min"` and friends, parsed into a token-bucket [`Rate`].

use std::fmt;
use std::str::FromStr;

/// Why a rate string such as `"120/min"` does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not of the form `N/unit`.
    #[error("expected \"N/unit\" with unit s, sec, m, min, h or hour (e.g. \"120/min\")")]
    Format,
    /// `N` is not an integer from 1 to 4294967295.
    #[error("the count must be a whole number from 1 to {}", u32::MAX)]
    Count,
    /// The unit is not one of the accepted ones.
    #[error("unknown unit {0:?}: use s, sec, m, min, h or hour")]
    Unit(String),
}

/// A token-bucket rate: `burst` requests at once, refilled at `per_second`.
/// `"120/min"` is `Rate { per_second: 2.0, burst: 120 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Parses `N/s`, `N/sec`, `N/m`, `N/min`, `N/h` or `N/hour` (N ≥ 1; spaces around the
    /// parts are ignored).
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let (count, unit) = text.split_once('/').ok_or(RateError::Format)?;
        let (count, unit) = (count.trim(), unit.trim());
        if count.is_empty() || unit.is_empty() {
            return Err(RateError::Format);
        }
        if !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RateError::Count);
        }
        let burst: u32 = count.parse().map_err(|_| RateError::Count)?;
        if burst == 0 {
            return Err(RateError::Count);
        }
        let seconds = match unit {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" | "hour" => 3600.0,
            other => return Err(RateError::Unit(other.to_owned())),
        };
        Ok(Rate {
            per_second: f64::from(burst) / seconds,
            burst,
        })
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rate::parse(s)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s (burst {})", self.per_second, self.burst)
    }
}
