//! Sealing and opening legacy session ids, without I/O.
//!
//! The `Mcp-Session-Id` a client gets for a 2025-11-25 session is not the backend's: it is
//! the edge's sealed id, an AEAD (ChaCha20-Poly1305, random 96-bit nonce) over a small
//! versioned payload that names the service, the principal (a hash of it), the connector that
//! serves the session and the backend's own session id. Any edge holding the key opens it, so
//! any edge with a tunnel to that connector continues the session; nobody without the key can
//! read it, forge it, move it to another service or hand it to another principal.
//!
//! Wire format, then base64url without padding (visible ASCII, as the MCP specification
//! requires of session ids):
//!
//! ```text
//! version (1) | key id (4) | nonce (12) | ciphertext of the payload | tag (16)
//! payload = len (1) service | principal hash (16) | len (1) connector | len (2, BE) backend id
//! ```
//!
//! The version and key id travel in clear (the key id picks the key that opens) and are
//! authenticated as associated data. Key material is derived from each 32-byte secret with
//! HKDF-SHA256: the AEAD key and the key id (so the key id reveals nothing of the secret).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf};

/// Bytes of a session key secret (a `[sessions] keys` file).
pub const SECRET_LEN: usize = 32;
/// Version byte of the current format.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const PRINCIPAL_HASH_LEN: usize = 16;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// Longest backend session id the edge seals (bytes).
pub const MAX_BACKEND_ID: usize = 512;
/// Longest service or connector name sealed (they are validated names, far shorter).
const MAX_NAME: usize = 255;
/// Longest sealed id opened (characters): the longest id [`Sealer::seal`] writes; anything
/// longer is refused before decoding.
pub const MAX_SEALED_LEN: usize = (HEADER_LEN
    + NONCE_LEN
    + 1
    + MAX_NAME
    + PRINCIPAL_HASH_LEN
    + 1
    + MAX_NAME
    + 2
    + MAX_BACKEND_ID
    + TAG_LEN)
    .div_ceil(3)
    * 4;
const HKDF_SALT: &[u8] = b"underpass/sessions/v1";

/// What a sealed id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub service: String,
    /// [`principal_hash`] of the principal that opened the session.
    pub principal_hash: [u8; PRINCIPAL_HASH_LEN],
    /// The connector that serves the session (any of its tunnels).
    pub connector: String,
    /// The backend's own `Mcp-Session-Id`.
    pub backend_id: String,
}

/// The session a valid sealed id names, for the service and principal it was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub connector: String,
    pub backend_id: String,
    /// Index in the key list of the key that opened it (0: the sealing key).
    pub key_index: usize,
}

/// Why a session id was refused. Every reason is the same 404 to the client; the reason goes
/// to the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a sealed session id (wrong length, alphabet or version)")]
    Malformed,
    #[error("sealed with a key this edge does not hold")]
    UnknownKey,
    #[error("fails authentication (tampered, truncated, or sealed with another key)")]
    Tampered,
    #[error("sealed for another service")]
    OtherService,
    #[error("sealed for another principal")]
    OtherPrincipal,
}

/// Why an id could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the backend's session id is longer than {MAX_BACKEND_ID} bytes or not visible ASCII")]
    BackendId,
    #[error("a service or connector name is longer than {MAX_NAME} bytes")]
    Name,
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot derive a key")]
    Derive,
    #[error("no session key")]
    NoKey,
    #[error("the AEAD refused to seal")]
    Aead,
}

/// One key: its id and the AEAD key derived from its secret.
struct Key {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
}

/// The keys in force: the first seals, every one opens.
pub struct Sealer {
    keys: Vec<Key>,
    /// True when the keys come from configuration (shared by the edges), false for a key of
    /// this process only.
    shared: bool,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_ids", &self.key_ids())
            .field("shared", &self.shared)
            .finish()
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl Key {
    fn derive(secret: &[u8; SECRET_LEN]) -> Result<Key, SealError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
        let mut id = [0u8; KEY_ID_LEN];
        prk.expand(&[b"key id"], Len(KEY_ID_LEN))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| SealError::Derive)?;
        let okm = prk
            .expand(&[b"aead"], &CHACHA20_POLY1305)
            .map_err(|_| SealError::Derive)?;
        Ok(Key {
            id,
            aead: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }
}

/// The hash of a principal a sealed id carries: the first 16 bytes of its SHA-256.
pub fn principal_hash(principal: &str) -> [u8; PRINCIPAL_HASH_LEN] {
    let d = digest::digest(&digest::SHA256, principal.as_bytes());
    let mut out = [0u8; PRINCIPAL_HASH_LEN];
    out.copy_from_slice(&d.as_ref()[..PRINCIPAL_HASH_LEN]);
    out
}

impl Sealer {
    /// Keys from configuration (shared by every edge): the first seals, all open.
    pub fn new(secrets: &[[u8; SECRET_LEN]]) -> Result<Sealer, SealError> {
        if secrets.is_empty() {
            return Err(SealError::NoKey);
        }
        Ok(Sealer {
            keys: secrets.iter().map(Key::derive).collect::<Result<_, _>>()?,
            shared: true,
            rng: SystemRandom::new(),
        })
    }

    /// A random key of this process only: sealed ids die with it.
    pub fn ephemeral() -> Result<Sealer, SealError> {
        let rng = SystemRandom::new();
        let mut secret = [0u8; SECRET_LEN];
        rng.fill(&mut secret).map_err(|_| SealError::Random)?;
        Ok(Sealer {
            keys: vec![Key::derive(&secret)?],
            shared: false,
            rng,
        })
    }

    /// Whether the keys come from configuration (other edges may hold them too).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The key ids in hex, sealing key first (for the log; they reveal nothing of the keys).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex::encode(k.id)).collect()
    }

    /// Seals `payload` with the first key and a fresh random nonce.
    pub fn seal(&self, payload: &Payload) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        self.seal_with_nonce(payload, nonce)
    }

    fn seal_with_nonce(&self, p: &Payload, nonce: [u8; NONCE_LEN]) -> Result<String, SealError> {
        let too_long = |s: &str| s.len() > MAX_NAME;
        if too_long(&p.service) || too_long(&p.connector) {
            return Err(SealError::Name);
        }
        if p.backend_id.len() > MAX_BACKEND_ID
            || !p.backend_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SealError::BackendId);
        }
        // The first key seals; `new` and `ephemeral` never build a Sealer without one.
        let key = self.keys.first().ok_or(SealError::NoKey)?;
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + NONCE_LEN
                + 4
                + p.service.len()
                + PRINCIPAL_HASH_LEN
                + p.connector.len()
                + p.backend_id.len()
                + TAG_LEN,
        );
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        // Lengths fit their prefixes: checked above.
        out.push(p.service.len() as u8);
        out.extend_from_slice(p.service.as_bytes());
        out.extend_from_slice(&p.principal_hash);
        out.push(p.connector.len() as u8);
        out.extend_from_slice(p.connector.as_bytes());
        out.extend_from_slice(&(p.backend_id.len() as u16).to_be_bytes());
        out.extend_from_slice(p.backend_id.as_bytes());
        let (header, rest) = out.split_at_mut(start);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..HEADER_LEN]),
                rest,
            )
            .map_err(|_| SealError::Aead)?;
        out.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed id and returns its payload, whatever service and principal it names.
    pub fn open_payload(&self, sealed: &str) -> Result<(Payload, usize), Refused> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(Refused::Malformed);
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Refused::Malformed)?;
        if raw.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(Refused::Malformed);
        }
        let (index, key) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.id[..] == raw[1..HEADER_LEN])
            .ok_or(Refused::UnknownKey)?;
        let (header, rest) = raw.split_at_mut(HEADER_LEN);
        let (nonce, sealed_payload) = rest.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Refused::Malformed)?;
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&header[..]), sealed_payload)
            .map_err(|_| Refused::Tampered)?;
        // Authentic: written by `seal`, so it parses; a failure still refuses, never panics.
        parse_payload(plain)
            .map(|p| (p, index))
            .ok_or(Refused::Tampered)
    }

    /// Opens a sealed id presented for `service` by `principal`.
    pub fn open(&self, sealed: &str, service: &str, principal: &str) -> Result<Opened, Refused> {
        let (p, key_index) = self.open_payload(sealed)?;
        if p.service != service {
            return Err(Refused::OtherService);
        }
        if p.principal_hash != principal_hash(principal) {
            return Err(Refused::OtherPrincipal);
        }
        Ok(Opened {
            connector: p.connector,
            backend_id: p.backend_id,
            key_index,
        })
    }
}

fn parse_payload(b: &[u8]) -> Option<Payload> {
    let (service, b) = take_str(b, usize::from(*b.first()?), 1)?;
    let hash = b.get(..PRINCIPAL_HASH_LEN)?;
    let b = &b[PRINCIPAL_HASH_LEN..];
    let (connector, b) = take_str(b, usize::from(*b.first()?), 1)?;
    let len = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let (backend_id, b) = take_str(b, usize::from(len), 2)?;
    if !b.is_empty() {
        return None;
    }
    let mut principal_hash = [0u8; PRINCIPAL_HASH_LEN];
    principal_hash.copy_from_slice(hash);
    Some(Payload {
        service,
        principal_hash,
        connector,
        backend_id,
    })
}

/// The string of `len` bytes after a `prefix`-byte length, and what follows it.
fn take_str(b: &[u8], len: usize, prefix: usize) -> Option<(String, &[u8])> {
    let s = b.get(prefix..prefix + len)?;
    let s = std::str::from_utf8(s).ok()?.to_owned();
    Some((s, &b[prefix + len..]))
}

#[cfg(test)]
mod tests;
