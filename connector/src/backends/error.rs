//! Why an exchange could not be forwarded to its backend.

use underpass_mcp::jsonrpc::code;

use crate::concurrency::{self, Refused};

/// Why an exchange could not be forwarded. The messages are what the client reads: they never
/// name the backend's URL (that goes to the log, under the reference a client can quote).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("this connector does not serve {0:?}")]
    UnknownService(String),
    #[error("bad request from the edge: {0}")]
    BadRequest(String),
    /// The client's query string repeats a parameter the configured backend URL sets.
    #[error(
        "query parameter {0:?} is fixed by the service's configuration and may not be given \
         by the client"
    )]
    QueryParameter(String),
    #[error("the backend failed (ref {reference})")]
    Unreachable { reference: String },
    #[error("{0}")]
    Refused(#[from] Refused),
}

impl BackendError {
    pub fn status(&self) -> u16 {
        match self {
            BackendError::UnknownService(_) => 404,
            BackendError::BadRequest(_) | BackendError::QueryParameter(_) => 400,
            BackendError::Unreachable { .. } => 502,
            BackendError::Refused(r) => r.status(),
        }
    }

    pub fn rpc_code(&self) -> i64 {
        match self {
            BackendError::UnknownService(_) => code::NOT_FOUND,
            BackendError::BadRequest(_) | BackendError::QueryParameter(_) => code::INVALID_REQUEST,
            BackendError::Unreachable { .. } => code::UPSTREAM_FAILED,
            BackendError::Refused(r) => r.rpc_code(),
        }
    }

    /// Seconds after which a retry may succeed, for `Retry-After` on a capacity refusal.
    pub fn retry_after(&self) -> Option<u64> {
        matches!(self, BackendError::Refused(_)).then_some(concurrency::RETRY_AFTER_SECS)
    }
}
