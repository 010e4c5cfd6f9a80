//! The edge's own request id.

/// A fresh request id (128 random bits, hex).
pub(crate) fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
