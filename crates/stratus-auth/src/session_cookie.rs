//! Signed session cookies for the web dashboard, which a browser cannot sign with
//! SigV4.
//!
//! A cookie value is `v1:{access key id}:{expires, epoch seconds}:{nonce}:{mac}`,
//! where `mac` is HMAC-SHA256 over everything before it *and the key's secret
//! access key*, under a random key of this server ([`CookieSigner::new`], from the
//! OS RNG, held in memory only). So a value cannot be made or altered without the
//! server's key; it stops verifying when the server restarts (a new key), when it
//! expires, and when its access key is deleted or its secret is no longer the one
//! it was issued for (the caller's `secret_of` lookup answers `None` or another
//! secret). The nonce names one login, so a logout can revoke just that one.
//!
//! Only characters a cookie value may hold without quoting are used (`A-Z2-7` key
//! ids, digits, hex, `:`).

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// What a verified cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieClaims {
    /// The access key the session acts as.
    pub access_key_id: String,
    /// When it stops being accepted, epoch seconds.
    pub expires: i64,
    /// This login's random id (hex).
    pub nonce: String,
}

/// Why a cookie value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Not of the shape this module writes.
    #[error("the session cookie is malformed")]
    Malformed,
    /// Its access key no longer exists (deleted) or is not a long-term key.
    #[error("the session's access key no longer exists")]
    UnknownKey,
    /// The signature does not match: forged, altered, from another server or
    /// another run of this one, or the key's secret changed.
    #[error("the session cookie's signature is not valid")]
    BadSignature,
    /// Past its expiry.
    #[error("the session has expired")]
    Expired,
}

/// Issues and verifies session cookie values with one random key.
pub struct CookieSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSigner").finish_non_exhaustive()
    }
}

impl Default for CookieSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieSigner {
    /// A signer with a fresh key from the OS RNG.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self { key }
    }

    fn mac(&self, signed: &str, secret: &str) -> Option<[u8; 32]> {
        let mut m = HmacSha256::new_from_slice(&self.key).ok()?;
        m.update(signed.as_bytes());
        // A separator no key id or number contains, so the two parts cannot slide.
        m.update(b"\n");
        m.update(secret.as_bytes());
        Some(m.finalize().into_bytes().into())
    }

    /// A cookie value for `access_key_id` (whose secret is `secret`), valid until
    /// `expires` (epoch seconds). `None` only if HMAC cannot be keyed (never with a
    /// 32-byte key).
    pub fn issue(&self, access_key_id: &str, secret: &str, expires: i64) -> Option<String> {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let signed = format!("{VERSION}:{access_key_id}:{expires}:{}", hex::encode(nonce));
        let mac = self.mac(&signed, secret)?;
        Some(format!("{signed}:{}", hex::encode(mac)))
    }

    /// Verifies `value` at `now` (epoch seconds); `secret_of` answers the current
    /// secret of a long-term access key id, `None` when there is no such key.
    pub fn verify(
        &self,
        value: &str,
        now: i64,
        secret_of: impl FnOnce(&str) -> Option<String>,
    ) -> Result<CookieClaims, CookieError> {
        let (signed, mac_hex) = value.rsplit_once(':').ok_or(CookieError::Malformed)?;
        let parts: Vec<&str> = signed.split(':').collect();
        let [version, id, expires, nonce] = parts.as_slice() else {
            return Err(CookieError::Malformed);
        };
        if *version != VERSION || id.is_empty() || nonce.len() != 32 {
            return Err(CookieError::Malformed);
        }
        let expires: i64 = expires.parse().map_err(|_| CookieError::Malformed)?;
        let claimed = hex::decode(mac_hex).map_err(|_| CookieError::Malformed)?;
        let secret = secret_of(id).ok_or(CookieError::UnknownKey)?;
        let expected = self.mac(signed, &secret).ok_or(CookieError::BadSignature)?;
        if claimed.len() != expected.len() || !bool::from(claimed.ct_eq(&expected)) {
            return Err(CookieError::BadSignature);
        }
        // Checked after the signature, so an expired forgery reads as a forgery.
        if now >= expires {
            return Err(CookieError::Expired);
        }
        Ok(CookieClaims {
            access_key_id: (*id).to_string(),
            expires,
            nonce: (*nonce).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIAAAAAAAAAAAAAAAAA";
    const SECRET: &str = "s3cr3t";

    fn secret(id: &str) -> Option<String> {
        (id == ID).then(|| SECRET.to_string())
    }

    #[test]
    fn a_cookie_verifies_until_it_expires() {
        let s = CookieSigner::new();
        let v = s.issue(ID, SECRET, 1_000).unwrap();
        let c = s.verify(&v, 999, secret).unwrap();
        assert_eq!(c.access_key_id, ID);
        assert_eq!(c.expires, 1_000);
        assert_eq!(c.nonce.len(), 32);
        assert_eq!(s.verify(&v, 1_000, secret), Err(CookieError::Expired));
        // Two logins are two sessions.
        let w = s.issue(ID, SECRET, 1_000).unwrap();
        assert_ne!(s.verify(&w, 0, secret).unwrap().nonce, c.nonce);
    }

    #[test]
    fn altered_forged_or_foreign_cookies_are_refused() {
        let s = CookieSigner::new();
        let v = s.issue(ID, SECRET, 1_000).unwrap();
        // A later expiry written in.
        let longer = v.replacen(":1000:", ":9999:", 1);
        assert_eq!(s.verify(&longer, 0, secret), Err(CookieError::BadSignature));
        // Another server's (or an earlier run's) key.
        let other = CookieSigner::new();
        assert_eq!(other.verify(&v, 0, secret), Err(CookieError::BadSignature));
        // Another key's secret (the key was replaced).
        assert_eq!(
            s.verify(&v, 0, |_| Some("other".into())),
            Err(CookieError::BadSignature)
        );
        // The key is gone.
        assert_eq!(s.verify(&v, 0, |_| None), Err(CookieError::UnknownKey));
        for bad in [
            "",
            "v1",
            "v1:x:1:2",
            "v2:AKIA:1:00000000000000000000000000000000:00",
            "v1:AKIA:soon:00000000000000000000000000000000:00",
            "v1:AKIA:1:00000000000000000000000000000000:zz",
        ] {
            assert_eq!(
                s.verify(bad, 0, secret),
                Err(CookieError::Malformed),
                "{bad}"
            );
        }
        // A made-up value of the right shape.
        let forged = format!("v1:{ID}:9999:{}:{}", "0".repeat(32), "ab".repeat(32));
        assert_eq!(s.verify(&forged, 0, secret), Err(CookieError::BadSignature));
    }

    #[test]
    fn values_are_plain_cookie_text() {
        let v = CookieSigner::new().issue(ID, SECRET, 1).unwrap();
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':'));
    }
}
