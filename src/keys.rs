//! API keys and session tokens: generation and hashing. Keys are high-entropy, so a fast
//! SHA-256 with an indexed lookup is safe (a slow password hash would cap throughput); the
//! admin comparison is constant-time. Used by the API's authentication, the operator use
//! cases that issue keys, and start-up.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh random key with a recognisable prefix (`sk_…` for merchants).
pub fn generate_key(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of a key, hex — what is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The first characters of a key, safe to show and log.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(8).collect()
}

/// Constant-time equality of two stored hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
