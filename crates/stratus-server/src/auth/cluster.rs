//! Keys in a cluster: every node verifies with the same keys (the key store is the
//! cluster's), so a key made or changed through one node is re-read by the others
//! ([`Auth::reload_keys`], driven by the change feed), and each node's
//! `{data-dir}/credentials` holds the one admin key ([`Auth::write_admin_credentials`]),
//! so the CLI works against any node.

use std::collections::HashMap;
use std::path::Path;

use super::{write_credentials_file, Auth, AuthSetupError, ADMIN_POLICY_NAME};
use crate::store::StoreError;

impl Auth {
    /// Re-reads every key from the store (blocking): keys another node created,
    /// changed or deleted take effect here. Cached signing keys of changed or deleted
    /// keys are forgotten.
    pub fn reload_keys(&self) -> Result<(), StoreError> {
        let stored = self.store.all_keys()?;
        let fresh: HashMap<String, super::LiveKey> = stored
            .into_iter()
            .map(|k| (k.id.clone(), self.live(k)))
            .collect();
        let mut keys = self.keys.write();
        for (id, old) in keys.iter() {
            if fresh
                .get(id)
                .is_none_or(|n| n.stored.secret != old.stored.secret)
            {
                self.cache.forget(id);
            }
        }
        *keys = fresh;
        Ok(())
    }

    /// Makes `{data_dir}/credentials` hold the admin key (the oldest key of the user
    /// `admin` with the administrator policy) when this start did not create it, as
    /// a node joining a cluster whose first node did. Nothing is written when there
    /// is no such key, or the file already holds it.
    pub fn write_admin_credentials(&self, data_dir: &Path) -> Result<(), AuthSetupError> {
        if self.created_admin.is_some() {
            return Ok(());
        }
        let Some(admin) = self
            .keys()
            .into_iter()
            .find(|k| k.name == "admin" && k.policies.contains_key(ADMIN_POLICY_NAME))
        else {
            return Ok(());
        };
        let path = data_dir.join("credentials");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let holds = current.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "aws_access_key_id" && v.trim() == admin.id)
        }) && current.contains(&admin.secret);
        if holds {
            return Ok(());
        }
        write_credentials_file(&path, &admin.id, &admin.secret, &self.region).map_err(|source| {
            AuthSetupError::CredentialsFile {
                path: path.display().to_string(),
                source,
            }
        })
    }
}
