//! Helpers shared by the unit tests of several modules.

use serde_json::{json, Value};

use crate::error::McpError;
use crate::message::{parse, Inspected, Message};

/// Parses a body.
pub(crate) fn p(s: &str) -> Result<Inspected, McpError> {
    parse(s.as_bytes())
}

/// Parses a body that must hold exactly one message.
pub(crate) fn one(s: &str) -> Message {
    let i = p(s).expect("parses");
    assert!(!i.batch);
    i.single().expect("single").clone()
}

/// A modern request (`_meta` names 2026-07-28) of `method` with `params`.
pub(crate) fn modern(method: &str, params: Value) -> Message {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc":"2.0","id":100,"method":method,"params":params});
    one(&body.to_string())
}

/// A valid `MCP-Protocol-Version` header for [`modern`] requests.
pub(crate) const V: (&str, &str) = ("MCP-Protocol-Version", "2026-07-28");
