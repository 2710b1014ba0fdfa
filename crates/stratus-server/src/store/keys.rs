//! Access keys in the state database, in a table of their own (`access_keys`), on a
//! connection of their own (the database is in WAL mode, so it does not contend
//! with the function store's).
//!
//! A SigV4 verifier needs each key's secret itself (it recomputes the signature), so
//! the secret is stored — but only ever sealed (`stratus-seal`, AES-256-GCM under the
//! data dir's keys, bound to its key id), through [`seal_secret`] and [`open_secret`].

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection};

use stratus_seal::Sealer;

use super::StoreError;

/// [`KeyStore`] in a cluster's PostgreSQL database.
pub use super::postgres::PgKeyStore;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret BLOB NOT NULL,
    policies TEXT NOT NULL,
    created TEXT NOT NULL
);
";

/// One stored access key, its secret opened.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// `AKIA…`.
    pub id: String,
    /// The user name it belongs to.
    pub name: String,
    /// The secret access key.
    pub secret: String,
    /// Policy documents (JSON text) by policy name.
    pub policies: BTreeMap<String, String>,
    /// Creation time, ISO 8601.
    pub created: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .field("created", &self.created)
            .finish()
    }
}

/// Where a key's secret lives, as the associated data of its seal: a sealed secret
/// copied to another key's row does not open.
fn secret_place(id: &str) -> String {
    format!("state/access_keys/{id}/secret")
}

/// Turns a secret into what is written to disk: sealed with the data dir's keys.
pub fn seal_secret(sealer: &Sealer, id: &str, secret: &str) -> Result<Vec<u8>, String> {
    sealer
        .seal_str(&secret_place(id), secret)
        .map_err(|e| format!("cannot seal the secret of key {id}: {e}"))
}

/// Turns what [`seal_secret`] wrote back into the secret.
pub fn open_secret(sealer: &Sealer, id: &str, sealed: &[u8]) -> Result<String, String> {
    sealer
        .open_string(&secret_place(id), sealed)
        .map_err(|e| format!("the stored secret of key {id} does not open: {e}"))
}

/// Where keys are stored.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every key.
    fn all_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Inserts or replaces a key.
    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Deletes a key; returns whether it existed.
    fn delete_key(&self, id: &str) -> Result<bool, StoreError>;
}

/// [`KeyStore`] in `state.db`.
#[derive(Debug)]
pub struct SqliteKeyStore {
    conn: Mutex<Connection>,
    sealer: Sealer,
}

impl SqliteKeyStore {
    /// Opens (creating the table if needed) the key table of `state.db` in `dir`.
    pub fn open(dir: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let path = dir.join("state.db");
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // A deleted or replaced key's row (its sealed secret, name and
            // policies) is overwritten, not left in free pages; the setting is per
            // connection, so this one needs it as much as the function store's.
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            sealer,
        })
    }
}

impl KeyStore for SqliteKeyStore {
    fn all_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let conn = self.conn.lock();
        let mut q = conn.prepare(
            "SELECT id, name, secret, policies, created FROM access_keys ORDER BY created, id",
        )?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, sealed, policies, created) = row?;
            let secret =
                open_secret(&self.sealer, &id, &sealed).map_err(|e| StoreError::Decode {
                    what: "access key secret",
                    source: serde::de::Error::custom(e),
                })?;
            let policies =
                serde_json::from_str(&policies).map_err(|source| StoreError::Decode {
                    what: "access key policies",
                    source,
                })?;
            out.push(StoredKey {
                id,
                name,
                secret,
                policies,
                created,
            });
        }
        Ok(out)
    }

    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let policies =
            serde_json::to_string(&key.policies).map_err(|source| StoreError::Decode {
                what: "access key policies",
                source,
            })?;
        let sealed =
            seal_secret(&self.sealer, &key.id, &key.secret).map_err(|e| StoreError::Decode {
                what: "access key secret",
                source: serde::de::Error::custom(e),
            })?;
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO access_keys (id, name, secret, policies, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key.id, key.name, sealed, policies, key.created],
        )?;
        Ok(())
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM access_keys WHERE id = ?1", [id])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::ephemeral().unwrap();
        let store = SqliteKeyStore::open(dir.path(), sealer.clone()).unwrap();
        let mut k = StoredKey {
            id: "AKIAAAAAAAAAAAAAAAAA".into(),
            name: "alice".into(),
            secret: "s3cr3t".into(),
            policies: BTreeMap::from([("p".to_string(), "{}".to_string())]),
            created: "2026-01-01T00:00:00Z".into(),
        };
        store.put_key(&k).unwrap();
        k.policies.clear();
        store.put_key(&k).unwrap();
        // The secret is sealed on disk, bound to its key's row.
        let raw: Vec<u8> = again_conn(dir.path())
            .query_row("SELECT secret FROM access_keys", [], |r| r.get(0))
            .unwrap();
        assert!(!raw.windows(6).any(|w| w == b"s3cr3t"));
        let again = SqliteKeyStore::open(dir.path(), sealer.clone()).unwrap();
        assert_eq!(again.all_keys().unwrap(), vec![k.clone()]);
        // A sealed secret moved to another key's row does not open.
        again_conn(dir.path())
            .execute(
                "INSERT INTO access_keys (id, name, secret, policies, created) VALUES ('AKIABBBBBBBBBBBBBBBB', 'eve', ?1, '{}', 'x')",
                [raw],
            )
            .unwrap();
        assert!(again.all_keys().is_err());
        again_conn(dir.path())
            .execute("DELETE FROM access_keys WHERE name = 'eve'", [])
            .unwrap();
        assert!(!format!("{k:?}").contains("s3cr3t"));
        assert!(again.delete_key(&k.id).unwrap());
        assert!(!again.delete_key(&k.id).unwrap());
        assert!(again.all_keys().unwrap().is_empty());
    }

    #[test]
    fn a_deleted_key_leaves_nothing_in_the_database_files() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::ephemeral().unwrap();
        let store = SqliteKeyStore::open(dir.path(), sealer.clone()).unwrap();
        let planted = format!("planted-{}", rand::random::<u64>());
        let doomed = StoredKey {
            id: "AKIADOOMEDDOOMEDDOOM".into(),
            name: planted.clone(),
            secret: "doomed-secret".into(),
            policies: BTreeMap::from([(planted.clone(), "{}".to_string())]),
            created: "2026-01-01T00:00:00Z".into(),
        };
        store.put_key(&doomed).unwrap();
        // A key that stays keeps the page in use.
        let kept = StoredKey {
            id: "AKIAKEPTKEPTKEPTKEPT".into(),
            name: "kept".into(),
            policies: BTreeMap::new(),
            ..doomed.clone()
        };
        store.put_key(&kept).unwrap();
        let holding = |needle: &str| -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| {
                    let bytes = std::fs::read(e.path()).unwrap();
                    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert!(!holding(&planted).is_empty(), "the search itself is broken");
        assert!(store.delete_key(&doomed.id).unwrap());
        // Closing the last connection checkpoints the WAL into state.db and
        // removes it, as a server's clean stop does.
        drop(store);
        assert!(!dir.path().join("state.db-wal").exists());
        let found = holding(&planted);
        assert!(found.is_empty(), "the deleted key's name is in {found:?}");
        let again = SqliteKeyStore::open(dir.path(), sealer).unwrap();
        assert_eq!(again.all_keys().unwrap(), vec![kept]);
    }

    fn again_conn(dir: &Path) -> Connection {
        Connection::open(dir.join("state.db")).unwrap()
    }
}
