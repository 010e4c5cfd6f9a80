//! Why the bridge could not serve an exchange; each maps to an HTTP status and a JSON-RPC error.

use underpass_mcp::jsonrpc::code;

/// `Retry-After` of a refused `initialize`: sessions end by DELETE or idle timeout, so asking
/// again at once rarely helps.
const SESSION_RETRY_AFTER_SECS: u64 = 5;

/// Why an exchange could not be served; each maps to an HTTP status and a JSON-RPC error.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the request body is not valid JSON: {0}")]
    Parse(String),
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(String),
    #[error("missing Mcp-Session-Id header: open a session with an `initialize` request first")]
    MissingSession,
    #[error(
        "session not found (closed, idle too long, or its server process exited): \
         send a new `initialize` request without Mcp-Session-Id"
    )]
    UnknownSession,
    #[error("request id {0} is already in flight in this session: use a fresh id")]
    DuplicateId(String),
    #[error("this session already has an open GET event stream: only one is allowed at a time")]
    StreamBusy,
    #[error("HTTP method {0} is not supported here: use POST, GET or DELETE")]
    Method(String),
    #[error(
        "service {service:?} already has its limit of {limit} open sessions (each a server \
         process or backend connection): close unused sessions with HTTP DELETE, retry later, \
         or raise `max_processes` of this service in connector.toml"
    )]
    TooManyProcesses { service: String, limit: usize },
    #[error(
        "you already hold {limit} open sessions of service {service:?}, the most one caller \
         may hold: close unused sessions with HTTP DELETE, or retry once one has ended \
         (`max_processes_per_principal` of this service in connector.toml)"
    )]
    PrincipalProcesses { service: String, limit: usize },
    #[error("the connector is shutting down: retry in a moment")]
    ShuttingDown,
    #[error("service {0:?} has no command configured")]
    NoCommand(String),
    /// The details (program, OS error) are in the connector's log under `reference`.
    #[error("the stdio MCP server could not be started (ref {reference})")]
    Spawn { reference: String },
    #[error(
        "the stdio server {0} before answering initialize (its stderr is in the connector log)"
    )]
    InitFailed(String),
    #[error("the MCP server {0} before answering initialize")]
    LinkFailed(String),
    #[error("the stdio server did not answer initialize within {0} s")]
    InitTimeout(u64),
}

impl BridgeError {
    /// HTTP status, per the Streamable HTTP rules where they say one.
    pub fn status(&self) -> u16 {
        match self {
            BridgeError::Parse(_)
            | BridgeError::Invalid(_)
            | BridgeError::MissingSession
            | BridgeError::DuplicateId(_) => 400,
            BridgeError::UnknownSession => 404,
            BridgeError::Method(_) => 405,
            BridgeError::StreamBusy => 409,
            BridgeError::NoCommand(_) => 500,
            BridgeError::Spawn { .. } | BridgeError::InitFailed(_) | BridgeError::LinkFailed(_) => {
                502
            }
            BridgeError::TooManyProcesses { .. } | BridgeError::ShuttingDown => 503,
            BridgeError::PrincipalProcesses { .. } => 429,
            BridgeError::InitTimeout(_) => 504,
        }
    }

    /// Seconds after which a retry may succeed, for `Retry-After` on a capacity refusal.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            BridgeError::TooManyProcesses { .. } | BridgeError::PrincipalProcesses { .. } => {
                Some(SESSION_RETRY_AFTER_SECS)
            }
            BridgeError::ShuttingDown => Some(1),
            _ => None,
        }
    }

    pub fn rpc_code(&self) -> i64 {
        match self {
            BridgeError::Parse(_) => code::PARSE_ERROR,
            BridgeError::Invalid(_) | BridgeError::MissingSession | BridgeError::DuplicateId(_) => {
                code::INVALID_REQUEST
            }
            BridgeError::UnknownSession => code::NOT_FOUND,
            BridgeError::Method(_) | BridgeError::StreamBusy => code::INVALID_REQUEST,
            BridgeError::NoCommand(_) => code::INTERNAL_ERROR,
            BridgeError::Spawn { .. }
            | BridgeError::InitFailed(_)
            | BridgeError::LinkFailed(_)
            | BridgeError::InitTimeout(_) => code::UPSTREAM_FAILED,
            BridgeError::TooManyProcesses { .. } | BridgeError::ShuttingDown => code::UNAVAILABLE,
            BridgeError::PrincipalProcesses { .. } => code::RATE_LIMITED,
        }
    }
}
