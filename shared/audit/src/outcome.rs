//! How a request ended, typed: what audit records, and what metrics will count.
//!
//! The strings written to the log are the ones older versions wrote, so `audit verify` and
//! anything reading old trails see the same values.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of one client request (or, for the writer's own lines, of the trail).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered with success (2xx/3xx) and sent in full.
    #[default]
    Ok,
    /// The backend answered with a 4xx of its own.
    Error,
    /// The gateway's policy refused the request.
    Denied,
    /// Over a rate limit or a per-caller cap (429).
    RateLimited,
    /// No valid credentials, or a revoked client certificate (401).
    Unauthenticated,
    /// Refused for its Host or Origin, or a 403 of another kind.
    Forbidden,
    /// Malformed: JSON-RPC, protocol version, media types, headers (400, 406, 415).
    BadRequest,
    /// No such service, endpoint or session (404).
    NotFound,
    /// A method the endpoint does not take (405).
    MethodNotAllowed,
    /// The request body was too large (413).
    TooLarge,
    /// An endpoint this build does not serve (501).
    NotImplemented,
    /// The backend failed (5xx from it, or an unreadable answer).
    BackendError,
    /// The exchange with the connector failed.
    TunnelError,
    /// No connector online, or the edge over a capacity limit (503).
    Unavailable,
    /// Refused because the audit log could not be written (`on_failure = "refuse"`).
    AuditUnavailable,
    /// The response stream failed midway.
    StreamError,
    /// The client went away before the response was sent in full.
    ClientGone,
    /// Written ahead (`[audit] write_ahead`): the request is about to go down a tunnel to a
    /// backend. Not an outcome: the line with the outcome follows, with the same
    /// `request_id`, unless the edge died first.
    Dispatched,
    /// Writer's line: records were lost.
    AuditGap,
    /// Writer's line: the log file was removed or replaced and reopened.
    AuditReopened,
    /// Writer's line: retention deleted the oldest files.
    AuditRetention,
}

impl Outcome {
    /// The string written to the log (and the label metrics will use).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::TooLarge => "too_large",
            Outcome::NotImplemented => "not_implemented",
            Outcome::BackendError => "backend_error",
            Outcome::TunnelError => "tunnel_error",
            Outcome::Unavailable => "unavailable",
            Outcome::AuditUnavailable => "audit_unavailable",
            Outcome::StreamError => "stream_error",
            Outcome::ClientGone => "client_gone",
            Outcome::Dispatched => "dispatched",
            Outcome::AuditGap => "audit_gap",
            Outcome::AuditReopened => "audit_reopened",
            Outcome::AuditRetention => "audit_retention",
        }
    }

    /// The outcome of an answer whose handler said nothing more specific than [`Outcome::Ok`]:
    /// `None` for a success status, else the class of the refusal. A refusal never reads
    /// `ok`.
    pub fn of_status(status: u16) -> Option<Outcome> {
        if !(400..600).contains(&status) {
            return None;
        }
        Some(match status {
            400 | 406 | 415 => Outcome::BadRequest,
            401 => Outcome::Unauthenticated,
            403 => Outcome::Forbidden,
            404 => Outcome::NotFound,
            405 => Outcome::MethodNotAllowed,
            413 | 431 => Outcome::TooLarge,
            429 => Outcome::RateLimited,
            501 => Outcome::NotImplemented,
            502 => Outcome::BackendError,
            503 => Outcome::Unavailable,
            _ => Outcome::Error,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; 21] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Denied,
        Outcome::RateLimited,
        Outcome::Unauthenticated,
        Outcome::Forbidden,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::TooLarge,
        Outcome::NotImplemented,
        Outcome::BackendError,
        Outcome::TunnelError,
        Outcome::Unavailable,
        Outcome::AuditUnavailable,
        Outcome::StreamError,
        Outcome::ClientGone,
        Outcome::Dispatched,
        Outcome::AuditGap,
        Outcome::AuditReopened,
        Outcome::AuditRetention,
    ];

    #[test]
    fn the_log_keeps_its_strings() {
        for o in ALL {
            let json = serde_json::to_string(&o).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", o.as_str()), "{o:?}");
            let back: Outcome = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(back, o);
        }
        assert_eq!(Outcome::RateLimited.to_string(), "rate_limited");
    }

    #[test]
    fn refusals_never_read_ok() {
        for status in [
            400u16, 401, 403, 404, 405, 406, 408, 413, 415, 429, 500, 501, 502, 503,
        ] {
            assert!(
                Outcome::of_status(status).is_some_and(|o| o != Outcome::Ok),
                "{status}"
            );
        }
        for status in [200u16, 202, 204, 304] {
            assert_eq!(Outcome::of_status(status), None, "{status}");
        }
        assert_eq!(Outcome::of_status(431), Some(Outcome::TooLarge));
    }
}
