//! The hash chain, pure: sealing a serialized record into a line, and checking a line's own
//! hash. No I/O here.

use ring::digest;
use serde::Deserialize;
use serde_json::Value;

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Every record line starts with `{"hash":"`, then 64 hex digits, then `",`.
pub(crate) const LINE_PREFIX: &[u8] = b"{\"hash\":\"";
const HASH_HEX_LEN: usize = 64;
pub(crate) const PREFIX_LEN: usize = LINE_PREFIX.len() + HASH_HEX_LEN + 2;

/// SHA-256 of `prev || "{" || rest`, hex.
pub(crate) fn chain_hash(prev: &str, rest: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"{");
    ctx.update(rest);
    hex::encode(ctx.finish().as_ref())
}

/// Builds a sealed line (with trailing newline) from a serialized body `{"seq":…}`.
pub(crate) fn seal(prev: &str, body: &str) -> (String, String) {
    let rest = body.get(1..).unwrap_or_default();
    let hash = chain_hash(prev, rest.as_bytes());
    let line = format!("{{\"hash\":\"{hash}\",{rest}\n");
    (line, hash)
}

/// The chain fields of a line, and what the writer said about the trail (the rest is
/// ignored here).
#[derive(Deserialize)]
pub(crate) struct LineHead {
    pub(crate) hash: String,
    pub(crate) seq: u64,
    pub(crate) prev: String,
    #[serde(default)]
    pub(crate) trail: Option<Value>,
}

/// Why a line does not check out on its own.
pub(crate) enum LineError {
    Malformed(String),
    BadHash,
}

/// Parses one line (without its newline) and checks its own hash.
pub(crate) fn parse_line(line: &[u8]) -> Result<LineHead, LineError> {
    if line.len() <= PREFIX_LEN
        || !line.starts_with(LINE_PREFIX)
        || &line[PREFIX_LEN - 2..PREFIX_LEN] != b"\","
    {
        return Err(LineError::Malformed(
            "does not start with {\"hash\":\"<64 hex>\",".into(),
        ));
    }
    let stored = &line[LINE_PREFIX.len()..PREFIX_LEN - 2];
    if !stored
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(LineError::Malformed(
            "hash is not 64 lowercase hex digits".into(),
        ));
    }
    let head: LineHead = serde_json::from_slice(line)
        .map_err(|e| LineError::Malformed(format!("not a valid record: {e}")))?;
    if chain_hash(&head.prev, &line[PREFIX_LEN..]) != head.hash {
        return Err(LineError::BadHash);
    }
    Ok(head)
}
