//! Static API keys: stored as SHA-256 digests, matched in constant time.

use subtle::ConstantTimeEq;

/// One configured key: its name and the SHA-256 of the key.
pub(super) struct ApiKey {
    pub(super) name: String,
    pub(super) digest: [u8; 32],
}

/// The 32 bytes of a 64-hex-digit SHA-256 (surrounding whitespace ignored).
pub(super) fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex.trim(), &mut out).ok()?;
    Some(out)
}

/// The key whose digest `token` has, if any: compared with every key, without stopping
/// early, in constant time per key.
pub(super) fn matching<'k>(keys: &'k [ApiKey], token: &str) -> Option<&'k ApiKey> {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut matched: Option<&ApiKey> = None;
    for key in keys {
        let equal: bool = key.digest.ct_eq(digest.as_ref()).into();
        if equal && matched.is_none() {
            matched = Some(key);
        }
    }
    matched
}
