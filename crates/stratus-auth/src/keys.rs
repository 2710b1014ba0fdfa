//! Access keys and temporary session credentials.
//!
//! Long-term keys look like AWS's: `AKIA` + 16 characters of `A-Z2-7` and a
//! 40-character secret, both from the operating system's RNG. Session credentials
//! (`ASIA…` + secret + session token) live only in memory, carry an owner name and
//! the policy documents they are allowed, may expire, and can be revoked at once
//! (the server hands one to each execution environment and revokes it when the
//! environment ends).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::sign::Credentials;

const KEY_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` characters drawn uniformly from `alphabet` (32 or 64 symbols, so a random
/// byte masked to the alphabet's size carries no bias).
fn random_text(alphabet: &[u8], n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    let mask = (alphabet.len() - 1) as u8;
    bytes
        .iter()
        .map(|b| alphabet[(b & mask) as usize] as char)
        .collect()
}

/// A new long-term access key id, `AKIA` + 16 characters.
pub fn new_access_key_id() -> String {
    format!("AKIA{}", random_text(KEY_ALPHABET, 16))
}

/// A new temporary access key id, `ASIA` + 16 characters.
pub fn new_session_key_id() -> String {
    format!("ASIA{}", random_text(KEY_ALPHABET, 16))
}

/// A new 40-character secret access key (240 bits).
pub fn new_secret() -> String {
    random_text(SECRET_ALPHABET, 40)
}

/// Whether `s` looks like an access key id this module makes.
pub fn is_access_key_id(s: &str) -> bool {
    s.len() == 20
        && (s.starts_with("AKIA") || s.starts_with("ASIA"))
        && s.bytes().skip(4).all(|b| KEY_ALPHABET.contains(&b))
}

/// Temporary credentials issued by [`Sessions::issue`].
#[derive(Debug)]
pub struct Session {
    /// The key id, secret and token.
    pub credentials: Credentials,
    /// Who the credentials act for (a function's name, say).
    pub owner: String,
    /// The policy documents (JSON text) the credentials are allowed.
    pub policies: Vec<String>,
    /// When they stop working, if ever.
    pub expires_at: Option<OffsetDateTime>,
}

impl Session {
    /// Whether `token` is this session's token (constant-time).
    pub fn token_matches(&self, token: Option<&str>) -> bool {
        match (&self.credentials.session_token, token) {
            (Some(mine), Some(given)) => bool::from(mine.as_bytes().ct_eq(given.as_bytes())),
            _ => false,
        }
    }
}

/// Session credentials in memory, by key id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues new credentials for `owner` with `policies`, valid for `ttl` (or until
    /// revoked).
    pub fn issue(
        &self,
        owner: &str,
        policies: Vec<String>,
        ttl: Option<std::time::Duration>,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            credentials: Credentials {
                access_key_id: new_session_key_id(),
                secret_access_key: new_secret(),
                session_token: Some(random_text(SECRET_ALPHABET, 128)),
            },
            owner: owner.to_string(),
            policies,
            expires_at: ttl.and_then(|t| {
                time::Duration::try_from(t)
                    .ok()
                    .map(|t| OffsetDateTime::now_utc() + t)
            }),
        });
        self.by_id
            .write()
            .insert(session.credentials.access_key_id.clone(), session.clone());
        session
    }

    /// The live session of `access_key_id` (an expired one is dropped).
    pub fn get(&self, access_key_id: &str) -> Option<Arc<Session>> {
        let s = self.by_id.read().get(access_key_id).cloned()?;
        if s.expires_at.is_some_and(|t| t <= OffsetDateTime::now_utc()) {
            self.revoke(access_key_id);
            return None;
        }
        Some(s)
    }

    /// Revokes a session; returns whether it existed.
    pub fn revoke(&self, access_key_id: &str) -> bool {
        self.by_id.write().remove(access_key_id).is_some()
    }

    /// How many sessions are live (or expired and not yet looked up).
    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_aws_keys() {
        let id = new_access_key_id();
        assert!(is_access_key_id(&id), "{id}");
        assert!(id.starts_with("AKIA"));
        assert!(is_access_key_id(&new_session_key_id()));
        let s = new_secret();
        assert_eq!(s.len(), 40);
        assert_ne!(s, new_secret());
        assert!(!is_access_key_id("AKIA0000000000000000"));
    }

    #[test]
    fn sessions_issue_expire_and_revoke() {
        let sessions = Sessions::new();
        let s = sessions.issue("fn", vec!["{}".into()], None);
        let id = s.credentials.access_key_id.clone();
        assert!(id.starts_with("ASIA"));
        let got = sessions.get(&id).unwrap();
        assert!(got.token_matches(s.credentials.session_token.as_deref()));
        assert!(!got.token_matches(Some("nope")));
        assert!(!got.token_matches(None));
        assert!(sessions.revoke(&id));
        assert!(sessions.get(&id).is_none());
        let short = sessions.issue("fn", vec![], Some(std::time::Duration::ZERO));
        assert!(sessions.get(&short.credentials.access_key_id).is_none());
        assert!(sessions.is_empty());
    }
}
