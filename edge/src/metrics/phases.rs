//! The split of a request's time to its response head into phases (see
//! `underpass_request_phase_seconds`): plain arithmetic on what the edge measured and what
//! the connector reported, which it must not be able to push below zero.

use std::time::Duration;

/// A request's phases; `None`: the phase did not happen (no tunnel crossed, or no backend
/// time reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// From the request's arrival until it went down a tunnel (or, when it never did, until
    /// the edge's answer was sent in full).
    pub edge: Duration,
    /// From the request going down a tunnel until the response head came back, less the
    /// backend's time.
    pub tunnel: Option<Duration>,
    /// The connector's account of its backend's time to the response head, at most the
    /// whole exchange.
    pub backend: Option<Duration>,
}

impl Phases {
    /// A request the edge answered itself (refused, not found, …).
    pub fn edge_only(took: Duration) -> Self {
        Phases {
            edge: took,
            tunnel: None,
            backend: None,
        }
    }

    /// A request sent down a tunnel `before` after its arrival, whose response head came
    /// back `exchange` later; the connector reported `backend`. A connector reporting more
    /// than the whole exchange (a clock glitch, or a lie) gets the whole exchange and the
    /// tunnel nothing.
    pub fn split(before: Duration, exchange: Duration, backend: Option<Duration>) -> Self {
        let backend = backend.map(|b| b.min(exchange));
        Phases {
            edge: before,
            tunnel: Some(exchange.saturating_sub(backend.unwrap_or_default())),
            backend,
        }
    }

    /// The phases that happened, with their label values.
    pub fn observed(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("edge", Some(self.edge)),
            ("tunnel", self.tunnel),
            ("backend", self.backend),
        ]
        .into_iter()
        .filter_map(|(phase, d)| Some((phase, d?)))
    }
}
