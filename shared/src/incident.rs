//! Correlation references for failures whose details stay inside.
//!
//! A client that hits a backend or tunnel failure learns that something failed and a short
//! reference (`ref 7f3a…`), never the backend's URL, the stdio command, or connector names: the
//! log line written at the same moment carries the details and the same reference, so an
//! operator can find it from what the client reports.

/// A fresh reference: 16 lowercase hex digits (64 random bits).
pub fn new_ref() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn refs_are_short_hex_and_distinct() {
        let (a, b) = (super::new_ref(), super::new_ref());
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
