//! The body type of every response the edge sends to clients.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Why a response body stopped midway (a tunnel stream failed, a filter gave up).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: streamed from a tunnel, filtered, or complete.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

/// A complete (non-streamed) body.
pub fn full_body(text: impl Into<Bytes>) -> Body {
    UnsyncBoxBody::new(Full::new(text.into()).map_err(|never| match never {}))
}
