//! Label values from a set that may grow (rule names over reloads, connector names from
//! certificates), kept to a bounded number: the first `cap` distinct values are themselves,
//! any later one is `other`. A value once admitted stays admitted, so a series never
//! changes its labels.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value for values beyond the cap.
pub const OTHER: &str = "other";

/// A bounded set of admitted label values.
pub struct Capped {
    cap: usize,
    seen: Mutex<HashSet<String>>,
}

impl Capped {
    pub fn new(cap: usize) -> Self {
        Capped {
            cap,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `value` itself if admitted (now or before), else [`OTHER`].
    pub fn label(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < self.cap {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }
}
