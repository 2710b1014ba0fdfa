//! Data keys kept outside a data dir: a cluster's nodes share one set of data keys,
//! stored (by the caller, in the shared database) wrapped by the master key that
//! every node is given, so what one node seals every other node opens.
//!
//! Storage is the caller's; this module only makes a new wrapped key
//! ([`new_shared_key`]) and turns the stored set into a [`Sealer`]
//! ([`open_shared_keys`]), refusing a master key that does not unwrap every key.
//! Shared keys are wrapped for another place than a data dir's keys
//! (`stratus-seal/shared-data-key/{id}`), so neither can be passed off as the other.

use crate::error::SealError;
use crate::keyring::{random_key, unwrap_for, wrap_for};
use crate::master::{KeySource, MasterKey};
use crate::sealer::Sealer;

/// One shared data key as stored: its id and its wrapping by the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key's id (sealed values name it).
    pub id: u32,
    /// The key, wrapped (AES-256-GCM) by the master key, bound to its id.
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("id", &self.id)
            .field("wrapped", &format_args!("{} bytes", self.wrapped.len()))
            .finish()
    }
}

fn shared_aad(id: u32) -> Vec<u8> {
    format!("stratus-seal/shared-data-key/{id}").into_bytes()
}

/// A new random data key with id `id`, wrapped by `master`, for the caller to store.
pub fn new_shared_key(master: &MasterKey, id: u32) -> Result<WrappedKey, SealError> {
    let key = random_key()?;
    Ok(WrappedKey {
        id,
        wrapped: wrap_for(master, &shared_aad(id), &key)?,
    })
}

/// A sealer over the stored shared keys (the highest id seals new values).
/// `source_name` names where `master` came from and `store` where the keys are,
/// for the error when `master` does not unwrap one of them.
pub fn open_shared_keys(
    master: &MasterKey,
    source_name: &str,
    store: &str,
    keys: &[WrappedKey],
) -> Result<Sealer, SealError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        match unwrap_for(master, k.id, &shared_aad(k.id), &k.wrapped)? {
            Some(key) => out.push((k.id, key)),
            None => {
                return Err(SealError::WrongSharedKey {
                    source_name: source_name.to_string(),
                    store: store.to_string(),
                    key_id: k.id,
                })
            }
        }
    }
    let Some(current) = out.iter().map(|(id, _)| *id).max() else {
        return Err(SealError::NoSharedKeys {
            store: store.to_string(),
        });
    };
    Ok(Sealer::from_keys(current, out))
}

impl KeySource {
    /// Reads the master key without creating one: `Ok(None)` when the key file does
    /// not exist. (A data dir's first start creates it: see `Sealer::open_data_dir`.)
    pub fn master_key(&self) -> Result<Option<MasterKey>, SealError> {
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_open_with_the_same_master_key_only() {
        let master = MasterKey::generate().unwrap();
        let k1 = new_shared_key(&master, 1).unwrap();
        let k2 = new_shared_key(&master, 2).unwrap();
        let a = open_shared_keys(&master, "env", "db", std::slice::from_ref(&k1)).unwrap();
        let sealed = a.seal(b"place", b"secret").unwrap();
        // Another node, same master key, same stored keys: opens it.
        let b = open_shared_keys(&master, "env", "db", &[k1.clone(), k2.clone()]).unwrap();
        assert_eq!(b.open(b"place", &sealed).unwrap(), b"secret");
        assert_eq!(b.current_key_id(), 2);
        // Another master key: refused, naming the key and both places.
        let other = MasterKey::generate().unwrap();
        let err = open_shared_keys(
            &other,
            "STRATUS_MASTER_KEY",
            "the db",
            std::slice::from_ref(&k1),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, SealError::WrongSharedKey { key_id: 1, .. }),
            "{text}"
        );
        assert!(
            text.contains("STRATUS_MASTER_KEY") && text.contains("the db"),
            "{text}"
        );
        // A wrapped key moved to another id does not open.
        let moved = WrappedKey {
            id: 3,
            wrapped: k1.wrapped.clone(),
        };
        assert!(open_shared_keys(&master, "env", "db", &[moved]).is_err());
        assert!(matches!(
            open_shared_keys(&master, "env", "db", &[]),
            Err(SealError::NoSharedKeys { .. })
        ));
        assert!(!format!("{k1:?}").contains(&format!("{:?}", k1.wrapped)));
    }
}
