//! Label values from a set that may grow (rule names over reloads, connector names from
//! certificates), kept to a bounded number: the first `cap` distinct values are themselves,
//! any later one is `other`. A value once admitted stays admitted, so a series never
//! changes its labels.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The label value for values beyond the cap.
pub const OTHER: &str = "other";

/// A bounded set of admitted label values.
pub struct Capped {
    cap: usize,
    seen: Mutex<HashSet<Arc<str>>>,
    other: Arc<str>,
}

impl Capped {
    pub fn new(cap: usize) -> Self {
        Capped {
            cap,
            seen: Mutex::new(HashSet::new()),
            other: Arc::from(OTHER),
        }
    }

    /// `value` itself if admitted (now or before), else [`OTHER`].
    /// An admitted value is shared, not copied.
    pub fn label(&self, value: &str) -> Arc<str> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(admitted) = seen.get(value) {
            return admitted.clone();
        }
        if seen.len() < self.cap {
            let admitted: Arc<str> = Arc::from(value);
            seen.insert(admitted.clone());
            return admitted;
        }
        self.other.clone()
    }
}
