//! Master keys: AES-256-GCM keys that encrypt stored secrets (access-key
//! secrets, token-signing keys). The first key of the ring encrypts; every
//! key in the ring decrypts, so rotation is: put the new key first, keep the
//! old one until start-up has re-encrypted everything under the new one
//! (`docs/authentication.md`), then drop the old one.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("master keys: {0}")]
    Invalid(String),
    #[error("a stored secret is encrypted under master key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("a stored secret could not be decrypted (wrong master key, or corrupted)")]
    Decrypt,
}

#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: HashMap<String, Aes256Gcm>,
    order: Vec<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("Keyring").field("current", &self.current).field("keys", &self.order).finish()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key...]` (or one per line), newest first.
    /// Each key is 32 random bytes, base64-encoded.
    pub fn parse(spec: &str) -> Result<Keyring, KeyringError> {
        let mut keys = HashMap::new();
        let mut order = Vec::new();
        for entry in spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#')) {
            let (id, b64) = entry.split_once(':').ok_or_else(|| {
                KeyringError::Invalid(format!(
                    "expected id:base64key, got an entry without ':' ({} chars)",
                    entry.len()
                ))
            })?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(KeyringError::Invalid(format!("key id {id:?} must be letters, digits, '-' or '_'")));
            }
            let bytes =
                STANDARD.decode(b64.trim()).map_err(|_| KeyringError::Invalid(format!("key {id:?} is not base64")))?;
            if bytes.len() != 32 {
                return Err(KeyringError::Invalid(format!("key {id:?} must be 32 bytes, got {}", bytes.len())));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyringError::Invalid(format!("key {id:?}")))?;
            if keys.insert(id.to_owned(), cipher).is_some() {
                return Err(KeyringError::Invalid(format!("key id {id:?} appears twice")));
            }
            order.push(id.to_owned());
        }
        let current = order.first().cloned().ok_or_else(|| KeyringError::Invalid("no master key given".into()))?;
        Ok(Keyring { current, keys, order })
    }

    /// A new random key in the `id:base64key` form.
    pub fn generate_entry(id: &str) -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{id}:{}", STANDARD.encode(key))
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Encrypts under the current key: (key id, base64(nonce || ciphertext)).
    pub fn encrypt(&self, plaintext: &[u8]) -> (String, String) {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory buffers.
        let ct = self.keys[&self.current].encrypt(&Nonce::from(nonce), plaintext).unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        (self.current.clone(), STANDARD.encode(blob))
    }

    pub fn decrypt(&self, key_id: &str, blob: &str) -> Result<Vec<u8>, KeyringError> {
        let cipher = self.keys.get(key_id).ok_or_else(|| KeyringError::UnknownKey(key_id.to_owned()))?;
        let bytes = STANDARD.decode(blob).map_err(|_| KeyringError::Decrypt)?;
        if bytes.len() < 12 {
            return Err(KeyringError::Decrypt);
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| KeyringError::Decrypt)?;
        cipher.decrypt(&Nonce::from(nonce), ct).map_err(|_| KeyringError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let old_entry = Keyring::generate_entry("k1");
        let old = Keyring::parse(&old_entry).expect("ring");
        let (id, blob) = old.encrypt(b"secret");
        assert_eq!(id, "k1");
        let new_entry = Keyring::generate_entry("k2");
        let both = Keyring::parse(&format!("{new_entry},{old_entry}")).expect("ring");
        assert_eq!(both.current_id(), "k2");
        assert_eq!(both.decrypt("k1", &blob).expect("old key still decrypts"), b"secret");
        let (id2, blob2) = both.encrypt(b"secret");
        assert_eq!(id2, "k2");
        assert_ne!(blob, blob2);
        let only_new = Keyring::parse(&new_entry).expect("ring");
        assert!(matches!(only_new.decrypt("k1", &blob), Err(KeyringError::UnknownKey(_))));
        let mut tampered = STANDARD.decode(&blob2).expect("b64");
        tampered[14] ^= 1;
        assert!(matches!(only_new.decrypt("k2", &STANDARD.encode(tampered)), Err(KeyringError::Decrypt)));
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("k1").is_err());
        assert!(Keyring::parse("k1:bm90MzJieXRlcw==").is_err());
        let e = Keyring::generate_entry("k1");
        assert!(Keyring::parse(&format!("{e},{e}")).is_err());
    }
}
