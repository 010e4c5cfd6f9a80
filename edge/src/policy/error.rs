//! Why a policy file could not be loaded.

use std::path::PathBuf;

use crate::policy::rate::RateError;

/// Why a policy could not be loaded. Rule locations read like `allow[2] "eng-tools"`
/// (0-based index within the `[[allow]]` or `[[deny]]` array, then the name if one is given).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("invalid policy file {}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<PolicyError>,
    },
    /// Not TOML, or a key that does not exist, or a value of the wrong type.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A list key is present but empty.
    #[error("{rule}: `{key}` must not be empty{hint}")]
    EmptyList {
        rule: String,
        key: &'static str,
        hint: &'static str,
    },
    /// `name` is empty or reserved.
    #[error("{rule}: invalid name {name:?}: {reason}")]
    BadName {
        rule: String,
        name: String,
        reason: &'static str,
    },
    /// Two rules share a name.
    #[error("duplicate rule name {name:?}: used by {first} and {second}")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    /// `rate` does not parse.
    #[error("{rule}: invalid rate {value:?}: {source}")]
    BadRate {
        rule: String,
        value: String,
        #[source]
        source: RateError,
    },
    /// A rule's `redact`/`block` names no detector.
    #[error("{rule}: `{key}`: {error}")]
    BadDetector {
        rule: String,
        key: &'static str,
        error: underpass_detect::DetectError,
    },
    /// A `[detectors]` entry is not a valid named pattern.
    #[error("[detectors]: {0}")]
    BadNamedDetector(underpass_detect::DetectError),
    /// More named detectors than the edge keeps.
    #[error("[detectors] defines {count} detectors; at most {max} are allowed")]
    TooManyDetectors { count: usize, max: usize },
    /// An `arguments` entry is malformed.
    #[error("{rule}: arguments[{index}]: {reason}")]
    BadConstraint {
        rule: String,
        index: usize,
        reason: String,
    },
}
