//! [`Sealer`]: seals and opens values with the data dir's data keys.
//!
//! A sealed value is `version (1) ‖ data-key id (4, big-endian) ‖ nonce (12) ‖
//! ciphertext ‖ tag (16)`. The associated data authenticated with it is the
//! header (version and key id) followed by the caller's `aad`, which names the
//! value's place (e.g. `state/functions/NAME/environment`): a value copied to
//! another row, or a header edited to name another key, fails to open.

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use crate::error::{OpenError, SealError};

/// The format version of sealed values.
pub(crate) const VERSION: u8 = 1;
const HEADER: usize = 1 + 4;
const NONCE: usize = 12;
const TAG: usize = 16;

struct Keys {
    current: u32,
    ciphers: HashMap<u32, Aes256Gcm>,
}

/// Seals and opens values. Cheap to clone (one `Arc`); shared by every store.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current_key", &self.keys.current)
            .field("keys", &self.keys.ciphers.len())
            .finish()
    }
}

impl Sealer {
    /// A sealer over unwrapped data keys; `current` seals new values.
    pub(crate) fn from_keys(current: u32, keys: Vec<(u32, [u8; 32])>) -> Self {
        let ciphers = keys
            .into_iter()
            .map(|(id, k)| (id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k))))
            .collect();
        Self {
            keys: Arc::new(Keys { current, ciphers }),
        }
    }

    /// A sealer with one fresh random data key held only in memory: for tests and
    /// embedders that store nothing across restarts.
    pub fn ephemeral() -> Result<Self, SealError> {
        let mut k = [0u8; 32];
        crate::master::random(&mut k)?;
        Ok(Self::from_keys(1, vec![(1, k)]))
    }

    /// The id of the data key new values are sealed with.
    pub fn current_key_id(&self) -> u32 {
        self.keys.current
    }

    /// Seals `plaintext` for the place named by `aad`, with the current data key
    /// and a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let id = self.keys.current;
        let cipher = self
            .keys
            .ciphers
            .get(&id)
            .ok_or(SealError::CorruptKey { key_id: id })?;
        let mut header = [0u8; HEADER];
        header[0] = VERSION;
        header[1..].copy_from_slice(&id.to_be_bytes());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let full_aad = [&header[..], aad].concat();
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &full_aad,
                },
            )
            .map_err(|_| SealError::Seal {
                len: plaintext.len(),
            })?;
        let mut out = Vec::with_capacity(HEADER + NONCE + ct.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value sealed for the place named by `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < HEADER + NONCE + TAG {
            return Err(OpenError::Truncated { len: sealed.len() });
        }
        let (header, rest) = sealed.split_at(HEADER);
        if header[0] != VERSION {
            return Err(OpenError::Version(header[0]));
        }
        let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let cipher = self
            .keys
            .ciphers
            .get(&id)
            .ok_or(OpenError::UnknownKey(id))?;
        let (nonce, ct) = rest.split_at(NONCE);
        let full_aad = [header, aad].concat();
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &full_aad,
                },
            )
            .map_err(|_| OpenError::Forged)
    }

    /// [`Sealer::seal`] of a string.
    pub fn seal_str(&self, aad: &str, plaintext: &str) -> Result<Vec<u8>, SealError> {
        self.seal(aad.as_bytes(), plaintext.as_bytes())
    }

    /// [`Sealer::open`] of a value that was a string when sealed.
    pub fn open_string(&self, aad: &str, sealed: &[u8]) -> Result<String, OpenError> {
        let bytes = self.open(aad.as_bytes(), sealed)?;
        // Only a forged value could be other than UTF-8 once authenticated.
        String::from_utf8(bytes).map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_at_its_place_and_unaltered() {
        let s = Sealer::ephemeral().unwrap();
        let sealed = s.seal(b"t/1/body", b"secret").unwrap();
        assert_eq!(sealed[0], VERSION);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open(b"t/1/body", &sealed).unwrap(), b"secret");
        // Another row.
        assert_eq!(s.open(b"t/2/body", &sealed), Err(OpenError::Forged));
        // Any flipped bit, anywhere.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(s.open(b"t/1/body", &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            s.open(b"t/1/body", &sealed[..10]),
            Err(OpenError::Truncated { len: 10 })
        );
        // Nonces are fresh: the same value seals differently each time.
        assert_ne!(s.seal(b"t/1/body", b"secret").unwrap(), sealed);
    }

    #[test]
    fn another_sealer_cannot_open_and_old_keys_still_open() {
        let a = Sealer::ephemeral().unwrap();
        let b = Sealer::ephemeral().unwrap();
        let sealed = a.seal(b"x", b"v").unwrap();
        assert_eq!(b.open(b"x", &sealed), Err(OpenError::Forged));
        let k1 = [7u8; 32];
        let k2 = [9u8; 32];
        let old = Sealer::from_keys(1, vec![(1, k1)]);
        let sealed = old.seal(b"x", b"v").unwrap();
        let new = Sealer::from_keys(2, vec![(1, k1), (2, k2)]);
        assert_eq!(new.open(b"x", &sealed).unwrap(), b"v");
        let fresh = new.seal(b"x", b"v").unwrap();
        assert_eq!(&fresh[1..5], &2u32.to_be_bytes());
        assert_eq!(old.open(b"x", &fresh), Err(OpenError::UnknownKey(2)));
    }
}
