//! [`FunctionStore`] over PostgreSQL: functions, versions, aliases, concurrency
//! settings, tags and event-invoke configs. Each write is one transaction with its
//! change notification (kind `function`).
//!
//! Two nodes writing the same function: version numbers are handed out by the
//! database row (`version_counter` only rises; a version number another node
//! already published is refused with [`StoreError::Conflict`], never stored twice),
//! creating a function that another node created, or updating one another node
//! deleted, is a conflict too. Concurrent updates of the same `$LATEST` are last
//! writer wins (the store is not given the RevisionId the change was based on);
//! the change listener keeps that window to the notification delay.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Transaction;

use super::{decode, encode, PgStore};
use crate::cluster::pg::{ChangeKind, PgError};
use crate::model::{AliasConfiguration, EventInvokeConfig};
use crate::store::sealed::{self, latest_aad, version_aad};
use crate::store::{
    FunctionStore, LoadedFunction, StoreError, StoredFunction, StoredProvisioned, StoredVersion,
};

/// Replaces `name`'s tag rows inside `tx`.
async fn write_tags(
    tx: &Transaction<'_>,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute("DELETE FROM tags WHERE name = $1", &[&name])
        .await?;
    for (k, v) in tags {
        tx.execute(
            "INSERT INTO tags (name, key, value) VALUES ($1, $2, $3)",
            &[&name, k, v],
        )
        .await?;
    }
    Ok(tags.len() as u64)
}

fn counter(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn reserved(r: Option<u32>) -> Option<i32> {
    r.map(|r| i32::try_from(r).unwrap_or(i32::MAX))
}

impl PgStore {
    /// Every function (`None`) or one, each with its versions, aliases and
    /// provisioned configs, read in one snapshot.
    fn load_where(&self, only: Option<&str>) -> Result<Vec<LoadedFunction>, StoreError> {
        let (fns, versions, aliases, provisioned) = self.db.run(|| async {
            let mut client = self.db.client().await?;
            // One snapshot of every table: no half-written function is seen.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(PgError::query("begin"))?;
            let q = |sql: &'static str| {
                let tx = &tx;
                async move {
                    tx.query(sql, &[&only])
                        .await
                        .map_err(PgError::query("read functions"))
                }
            };
            let fns = q(
                "SELECT name, config, code_hex, version_counter, reserved FROM functions
                         WHERE $1::text IS NULL OR name = $1 ORDER BY name",
            )
            .await?;
            let versions = q("SELECT name, version, config, code_hex FROM versions
                              WHERE $1::text IS NULL OR name = $1 ORDER BY name, version")
            .await?;
            let aliases = q("SELECT name, config FROM aliases
                             WHERE $1::text IS NULL OR name = $1 ORDER BY name, alias")
            .await?;
            let provisioned = q(
                "SELECT name, qualifier, requested, last_modified FROM provisioned
                                 WHERE $1::text IS NULL OR name = $1 ORDER BY name, qualifier",
            )
            .await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok((fns, versions, aliases, provisioned))
        })?;
        let bad = PgError::query("decode a function row");
        let mut by_name: BTreeMap<String, LoadedFunction> = BTreeMap::new();
        for r in fns {
            let name: String = r.try_get(0).map_err(&bad)?;
            let config: String = r.try_get(1).map_err(&bad)?;
            let f = StoredFunction {
                config: sealed::decode_config(&self.sealer, &latest_aad(&name), &config)?,
                code_hex: r.try_get(2).map_err(&bad)?,
                version_counter: u64::try_from(r.try_get::<_, i64>(3).map_err(&bad)?).unwrap_or(0),
                reserved: r
                    .try_get::<_, Option<i32>>(4)
                    .map_err(&bad)?
                    .and_then(|r| u32::try_from(r).ok()),
            };
            by_name.insert(
                name,
                LoadedFunction {
                    function: f,
                    versions: Vec::new(),
                    aliases: Vec::new(),
                    provisioned: Vec::new(),
                },
            );
        }
        for r in versions {
            let name: String = r.try_get(0).map_err(&bad)?;
            let n: i64 = r.try_get(1).map_err(&bad)?;
            let config: String = r.try_get(2).map_err(&bad)?;
            let aad = version_aad(&name, &n.to_string());
            let v = StoredVersion {
                config: sealed::decode_config(&self.sealer, &aad, &config)?,
                code_hex: r.try_get(3).map_err(&bad)?,
            };
            if let Some(f) = by_name.get_mut(&name) {
                f.versions.push(v);
            }
        }
        for r in aliases {
            let name: String = r.try_get(0).map_err(&bad)?;
            let a: AliasConfiguration = decode("alias", r.try_get(1).map_err(&bad)?)?;
            if let Some(f) = by_name.get_mut(&name) {
                f.aliases.push(a);
            }
        }
        for r in provisioned {
            let name: String = r.try_get(0).map_err(&bad)?;
            let p: StoredProvisioned = (
                r.try_get(1).map_err(&bad)?,
                u32::try_from(r.try_get::<_, i32>(2).map_err(&bad)?).unwrap_or(0),
                r.try_get(3).map_err(&bad)?,
            );
            if let Some(f) = by_name.get_mut(&name) {
                f.provisioned.push(p);
            }
        }
        Ok(by_name.into_values().collect())
    }

    /// `$LATEST`'s stored configuration, its environment sealed.
    fn sealed_latest(&self, f: &StoredFunction) -> Result<String, StoreError> {
        let aad = latest_aad(&f.config.function_name);
        sealed::encode_config(&self.sealer, &aad, &f.config)
    }
}

impl FunctionStore for PgStore {
    fn load(&self) -> Result<Vec<LoadedFunction>, StoreError> {
        self.load_where(None)
    }

    fn load_function(&self, name: &str) -> Result<Option<LoadedFunction>, StoreError> {
        Ok(self.load_where(Some(name))?.pop())
    }

    fn all_tags(&self) -> Result<HashMap<String, BTreeMap<String, String>>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query("SELECT name, key, value FROM tags", &[])
                .await
                .map_err(PgError::query("read tags"))?)
        })?;
        let mut out: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for r in rows {
            let bad = PgError::query("decode a tag row");
            let (name, key, value): (String, String, String) = (
                r.try_get(0).map_err(&bad)?,
                r.try_get(1).map_err(&bad)?,
                r.try_get(2).map_err(&bad)?,
            );
            out.entry(name).or_default().insert(key, value);
        }
        Ok(out)
    }

    fn create_function(
        &self,
        f: &StoredFunction,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let name = f.config.function_name.as_str();
        let config = self.sealed_latest(f)?;
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            let inserted = tx
                .execute(
                    "INSERT INTO functions (name, config, code_hex, version_counter, reserved)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    &[
                        &name,
                        &config,
                        &f.code_hex,
                        &counter(f.version_counter),
                        &reserved(f.reserved),
                    ],
                )
                .await
                .map_err(PgError::query("insert a function"))?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "Function already exist: {name} (created through another node)"
                )));
            }
            write_tags(&tx, name, tags)
                .await
                .map_err(PgError::query("write tags"))?;
            self.db.notify(&tx, ChangeKind::Function, name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn put_function(&self, f: &StoredFunction) -> Result<(), StoreError> {
        let name = f.config.function_name.as_str();
        let config = self.sealed_latest(f)?;
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            // The counter never goes back: a node that has not yet heard of a
            // version another node published must not hand its number out again.
            let updated = tx
                .execute(
                    "UPDATE functions SET config = $2, code_hex = $3,
                         version_counter = GREATEST(version_counter, $4), reserved = $5
                     WHERE name = $1",
                    &[
                        &name,
                        &config,
                        &f.code_hex,
                        &counter(f.version_counter),
                        &reserved(f.reserved),
                    ],
                )
                .await
                .map_err(PgError::query("update a function"))?;
            if updated == 0 {
                return Err(gone(name));
            }
            self.db.notify(&tx, ChangeKind::Function, name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            // Versions, aliases, provisioned and event invoke configs and tags go
            // by ON DELETE CASCADE; event sources are keyed by function name only.
            tx.execute("DELETE FROM functions WHERE name = $1", &[&name])
                .await
                .map_err(PgError::query("delete a function"))?;
            for sql in [
                "DELETE FROM function_events WHERE function_name = $1",
                "DELETE FROM event_source_mappings WHERE function_name = $1",
            ] {
                tx.execute(sql, &[&name])
                    .await
                    .map_err(PgError::query("delete a function's event sources"))?;
            }
            self.db.notify(&tx, ChangeKind::Function, name).await?;
            self.db.notify(&tx, ChangeKind::Mappings, name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn put_version(&self, f: &StoredFunction, v: &StoredVersion) -> Result<(), StoreError> {
        let name = v.config.function_name.as_str();
        let number = v.config.version.parse::<i64>().map_err(|_| {
            StoreError::Conflict(format!(
                "version {:?} of {name} is not a version number",
                v.config.version
            ))
        })?;
        let aad = version_aad(name, &number.to_string());
        let config = sealed::encode_config(&self.sealer, &aad, &v.config)?;
        let wanted = counter(f.version_counter).max(number);
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(PgError::query("begin"))?;
            // The row hands the number out: only when no node has published it (or
            // a later one) yet. The row lock orders concurrent publishers.
            let bumped = tx
                .query_opt(
                    "UPDATE functions SET version_counter = $2
                     WHERE name = $1 AND version_counter < $3 RETURNING version_counter",
                    &[&name, &wanted, &number],
                )
                .await
                .map_err(PgError::query("bump the version counter"))?;
            if bumped.is_none() {
                let exists = tx
                    .query_opt("SELECT 1 FROM functions WHERE name = $1", &[&name])
                    .await
                    .map_err(PgError::query("read a function"))?;
                return Err(match exists {
                    None => gone(name),
                    Some(_) => StoreError::Conflict(format!(
                        "version {number} of {name} was already published through another node; retry to publish the next"
                    )),
                });
            }
            tx.execute(
                "INSERT INTO versions (name, version, config, code_hex) VALUES ($1, $2, $3, $4)",
                &[&name, &number, &config, &v.code_hex],
            )
            .await
            .map_err(PgError::query("insert a version"))?;
            self.db.notify(&tx, ChangeKind::Function, name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let number = version.parse::<i64>().unwrap_or(-1);
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            tx.execute(
                "DELETE FROM versions WHERE name = $1 AND version = $2",
                &[&name, &number],
            )
            .await
            .map_err(PgError::query("delete a version"))?;
            tx.execute(
                "DELETE FROM provisioned WHERE name = $1 AND qualifier = $2",
                &[&name, &version],
            )
            .await
            .map_err(PgError::query("delete a provisioned config"))?;
            self.db.notify(&tx, ChangeKind::Function, name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    fn put_alias(&self, function: &str, a: &AliasConfiguration) -> Result<(), StoreError> {
        let config = encode("alias", a)?;
        self.write_function(function, "write an alias", async |tx| {
            tx.execute(
                "INSERT INTO aliases (name, alias, config) VALUES ($1, $2, $3)
                 ON CONFLICT (name, alias) DO UPDATE SET config = EXCLUDED.config",
                &[&function, &a.name, &config],
            )
            .await
        })
    }

    fn delete_alias(&self, function: &str, alias: &str) -> Result<(), StoreError> {
        self.write_function(function, "delete an alias", async |tx| {
            tx.execute(
                "DELETE FROM aliases WHERE name = $1 AND alias = $2",
                &[&function, &alias],
            )
            .await?;
            tx.execute(
                "DELETE FROM provisioned WHERE name = $1 AND qualifier = $2",
                &[&function, &alias],
            )
            .await
        })
    }

    fn put_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        requested: Option<(u32, &str)>,
    ) -> Result<(), StoreError> {
        self.write_function(function, "write a provisioned config", async |tx| {
            match requested {
                Some((n, modified)) => {
                    let n = i32::try_from(n).unwrap_or(i32::MAX);
                    tx.execute(
                        "INSERT INTO provisioned (name, qualifier, requested, last_modified)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (name, qualifier) DO UPDATE
                         SET requested = EXCLUDED.requested, last_modified = EXCLUDED.last_modified",
                        &[&function, &qualifier, &n, &modified],
                    )
                    .await
                }
                None => {
                    tx.execute(
                        "DELETE FROM provisioned WHERE name = $1 AND qualifier = $2",
                        &[&function, &qualifier],
                    )
                    .await
                }
            }
        })
    }

    fn put_tags(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
        self.write_function(name, "write tags", async |tx| {
            write_tags(tx, name, tags).await
        })
    }

    fn event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError> {
        let raw: Option<String> = self.db.run(|| async {
            let client = self.db.client().await?;
            let row = client
                .query_opt(
                    "SELECT config FROM event_invoke_config WHERE name = $1 AND qualifier = $2",
                    &[&name, &qualifier],
                )
                .await
                .map_err(PgError::query("read an event invoke config"))?;
            Ok(row
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(PgError::query("read an event invoke config"))?)
        })?;
        raw.map(|r| decode("event invoke config", &r)).transpose()
    }

    fn event_invoke_configs(&self, name: &str) -> Result<Vec<EventInvokeConfig>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT config FROM event_invoke_config WHERE name = $1 ORDER BY qualifier",
                    &[&name],
                )
                .await
                .map_err(PgError::query("read event invoke configs"))?)
        })?;
        rows.iter()
            .map(|r| {
                let raw: String = r
                    .try_get(0)
                    .map_err(PgError::query("read event invoke configs"))?;
                decode("event invoke config", &raw)
            })
            .collect()
    }

    fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
        cfg: Option<&EventInvokeConfig>,
    ) -> Result<(), StoreError> {
        let config = cfg.map(|c| encode("event invoke config", c)).transpose()?;
        self.write_function(name, "write an event invoke config", async |tx| {
            match config {
                Some(c) => {
                    tx.execute(
                        "INSERT INTO event_invoke_config (name, qualifier, config) VALUES ($1, $2, $3)
                         ON CONFLICT (name, qualifier) DO UPDATE SET config = EXCLUDED.config",
                        &[&name, &qualifier, &c],
                    )
                    .await
                }
                None => {
                    tx.execute(
                        "DELETE FROM event_invoke_config WHERE name = $1 AND qualifier = $2",
                        &[&name, &qualifier],
                    )
                    .await
                }
            }
        })
    }
}

/// The error for a write to a function that no longer exists.
fn gone(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "function {name} no longer exists (deleted through another node)"
    ))
}

impl PgStore {
    /// One write keyed by `function` in a transaction with its notification. A
    /// foreign-key violation (the function is gone) is a [`StoreError::Conflict`].
    fn write_function<F>(
        &self,
        function: &str,
        what: &'static str,
        write: F,
    ) -> Result<(), StoreError>
    where
        F: AsyncFnOnce(&Transaction<'_>) -> Result<u64, tokio_postgres::Error> + Send,
    {
        self.db.run(|| async move {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            if let Err(source) = write(&tx).await {
                if source.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
                    return Err(gone(function));
                }
                return Err(PgError::Query { what, source }.into());
            }
            self.db.notify(&tx, ChangeKind::Function, function).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }
}
