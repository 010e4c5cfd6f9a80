//! Entry points for the fuzz targets in `fuzz/` (not part of the API): the pure line parser
//! and the sealing of lines, so a target can build chains whose hashes hold and reach the
//! verifier's later checks.

use crate::chain::{parse_line, seal, LineError};
use crate::keys::checkpoint_message;

/// The chain fields of one line (`seq`, `prev`, `hash`) if it checks out on its own, or why not.
pub fn check_line(line: &[u8]) -> Result<(u64, String, String), String> {
    match parse_line(line) {
        Ok(head) => Ok((head.seq, head.prev, head.hash)),
        Err(LineError::Malformed(reason)) => Err(reason),
        Err(LineError::BadHash) => Err("bad hash".to_owned()),
    }
}

/// Seals a serialized record body `{"seq":…}` after `prev`: the line (with its newline) and
/// its hash, as the writer does.
pub fn seal_line(prev: &str, body: &str) -> (String, String) {
    seal(prev, body)
}

/// The text a checkpoint signature covers.
pub fn checkpoint_text(seq: u64, hash: &str, file: &str, time: &str) -> String {
    checkpoint_message(seq, hash, file, time)
}
