//! [`KeyStore`] over PostgreSQL (table `access_keys`): access keys, their sealed
//! secrets (sealed with the cluster's shared data keys, bound to the key id, as in
//! `state.db`) and their policies. Each write notifies kind `keys` named by the id.

use super::PgDatabase;
use crate::cluster::pg::{ChangeKind, PgError};
use crate::store::keys::{open_secret, seal_secret, KeyStore, StoredKey};
use crate::store::StoreError;
use stratus_seal::Sealer;

/// Access keys in the cluster database.
#[derive(Debug)]
pub struct PgKeyStore {
    db: PgDatabase,
    sealer: Sealer,
}

fn secret_error(e: String) -> StoreError {
    StoreError::Decode {
        what: "access key secret",
        source: serde::de::Error::custom(e),
    }
}

impl PgKeyStore {
    /// The key store of `db`, sealing with `sealer` (the cluster's shared sealer).
    pub fn new(db: PgDatabase, sealer: Sealer) -> Self {
        Self { db, sealer }
    }

    /// The database it is in.
    pub fn database(&self) -> &PgDatabase {
        &self.db
    }
}

impl KeyStore for PgKeyStore {
    fn all_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT id, name, secret, policies, created FROM access_keys ORDER BY created, id",
                    &[],
                )
                .await
                .map_err(PgError::query("read access keys"))?)
        })?;
        let bad = PgError::query("read access keys");
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(&bad)?;
                let sealed: Vec<u8> = r.try_get(2).map_err(&bad)?;
                let policies: String = r.try_get(3).map_err(&bad)?;
                Ok(StoredKey {
                    secret: open_secret(&self.sealer, &id, &sealed).map_err(secret_error)?,
                    policies: serde_json::from_str(&policies).map_err(|source| {
                        StoreError::Decode {
                            what: "access key policies",
                            source,
                        }
                    })?,
                    name: r.try_get(1).map_err(&bad)?,
                    created: r.try_get(4).map_err(&bad)?,
                    id,
                })
            })
            .collect()
    }

    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let policies =
            serde_json::to_string(&key.policies).map_err(|source| StoreError::Decode {
                what: "access key policies",
                source,
            })?;
        let sealed = seal_secret(&self.sealer, &key.id, &key.secret).map_err(secret_error)?;
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            tx.execute(
                "INSERT INTO access_keys (id, name, secret, policies, created)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, secret = EXCLUDED.secret,
                     policies = EXCLUDED.policies, created = EXCLUDED.created",
                &[&key.id, &key.name, &sealed, &policies, &key.created],
            )
            .await
            .map_err(PgError::query("write an access key"))?;
            self.db.notify(&tx, ChangeKind::Keys, &key.id).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            let n = tx
                .execute("DELETE FROM access_keys WHERE id = $1", &[&id])
                .await
                .map_err(PgError::query("delete an access key"))?;
            if n > 0 {
                self.db.notify(&tx, ChangeKind::Keys, id).await?;
            }
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(n > 0)
        })
    }
}
