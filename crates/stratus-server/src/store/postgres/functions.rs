//! [`FunctionStore`] over PostgreSQL: functions, versions, aliases, concurrency
//! settings, tags and event-invoke configs. Each write is one transaction with its
//! change notification (kind `function`).
//!
//! Two nodes writing the same function: version numbers are handed out by the
//! database row (`version_counter` only rises; a version number another node
//! already published is refused with [`StoreError::Conflict`], never stored twice),
//! creating a function that another node created, or updating one another node
//! deleted, is a conflict too. Changes of `$LATEST`, publishing a version and
//! alias updates are conditional on the RevisionId the change was based on
//! (`… WHERE config::jsonb ->> 'RevisionId' = $base`, under the row's lock): the
//! node that writes second gets [`StoreError::RevisionMismatch`] and writes
//! nothing, so no change is silently lost.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Transaction;

use super::{decode, encode, PgStore};
use crate::cluster::pg::{ChangeKind, PgError};
use crate::model::{AliasConfiguration, EventInvokeConfig};
use crate::store::sealed::{self, latest_aad, version_aad};
use crate::store::{
    alias_changed, function_gone, latest_changed, FunctionStore, LoadedFunction, StoreError,
    StoredFunction, StoredProvisioned, StoredVersion,
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
        self.transact(&[(ChangeKind::Function, name)], async |tx| {
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
            write_tags(tx, name, tags)
                .await
                .map_err(PgError::query("write tags"))?;
            Ok(())
        })
    }

    fn put_function(&self, f: &StoredFunction, base: &str) -> Result<(), StoreError> {
        let name = f.config.function_name.as_str();
        let config = self.sealed_latest(f)?;
        self.transact(&[(ChangeKind::Function, name)], async |tx| {
            // The counter never goes back: a node that has not yet heard of a
            // version another node published must not hand its number out again.
            let updated = tx
                .execute(
                    "UPDATE functions SET config = $2, code_hex = $3,
                         version_counter = GREATEST(version_counter, $4), reserved = $5
                     WHERE name = $1 AND config::jsonb ->> 'RevisionId' = $6",
                    &[
                        &name,
                        &config,
                        &f.code_hex,
                        &counter(f.version_counter),
                        &reserved(f.reserved),
                        &base,
                    ],
                )
                .await
                .map_err(PgError::query("update a function"))?;
            if updated == 0 {
                return Err(latest_conflict(tx, name, base).await?);
            }
            Ok(())
        })
    }

    fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        self.transact(
            &[(ChangeKind::Function, name), (ChangeKind::Mappings, name)],
            async |tx| {
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
                Ok(())
            },
        )
    }

    fn put_version(
        &self,
        f: &StoredFunction,
        v: &StoredVersion,
        base: &str,
    ) -> Result<(), StoreError> {
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
        self.transact(&[(ChangeKind::Function, name)], async |tx| {
            // The row hands the number out: only when no node has published it (or
            // a later one) yet, and only of the `$LATEST` this node snapshotted.
            // The row lock orders concurrent publishers and updaters.
            let bumped = tx
                .query_opt(
                    "UPDATE functions SET version_counter = $2
                     WHERE name = $1 AND version_counter < $3
                       AND config::jsonb ->> 'RevisionId' = $4
                     RETURNING version_counter",
                    &[&name, &wanted, &number, &base],
                )
                .await
                .map_err(PgError::query("bump the version counter"))?;
            if bumped.is_none() {
                let row = tx
                    .query_opt(
                        "SELECT version_counter >= $2 FROM functions WHERE name = $1",
                        &[&name, &number],
                    )
                    .await
                    .map_err(PgError::query("read a function"))?;
                let taken: Option<bool> = row
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(PgError::query("read a function"))?;
                return Err(match taken {
                    None => function_gone(name),
                    Some(true) => StoreError::Conflict(format!(
                        "version {number} of {name} was already published through another node; retry to publish the next"
                    )),
                    Some(false) => latest_changed(name, base),
                });
            }
            tx.execute(
                "INSERT INTO versions (name, version, config, code_hex) VALUES ($1, $2, $3, $4)",
                &[&name, &number, &config, &v.code_hex],
            )
            .await
            .map_err(PgError::query("insert a version"))?;
            Ok(())
        })
    }

    fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let number = version.parse::<i64>().unwrap_or(-1);
        self.transact(&[(ChangeKind::Function, name)], async |tx| {
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
            Ok(())
        })
    }

    fn put_alias(
        &self,
        function: &str,
        a: &AliasConfiguration,
        base: Option<&str>,
    ) -> Result<(), StoreError> {
        let config = encode("alias", a)?;
        self.transact(&[(ChangeKind::Function, function)], async |tx| {
            let written = match base {
                None => {
                    tx.execute(
                        "INSERT INTO aliases (name, alias, config) VALUES ($1, $2, $3)
                         ON CONFLICT (name, alias) DO NOTHING",
                        &[&function, &a.name, &config],
                    )
                    .await
                }
                Some(base) => {
                    tx.execute(
                        "UPDATE aliases SET config = $3
                         WHERE name = $1 AND alias = $2 AND config::jsonb ->> 'RevisionId' = $4",
                        &[&function, &a.name, &config, &base],
                    )
                    .await
                }
            };
            let written = match written {
                Ok(n) => n,
                Err(source)
                    if source.code()
                        == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
                {
                    return Err(function_gone(function));
                }
                Err(source) => {
                    return Err(PgError::Query {
                        what: "write an alias",
                        source,
                    }
                    .into())
                }
            };
            if written == 0 {
                return Err(match base {
                    None => StoreError::Conflict(format!(
                        "Alias already exists: {} (created through another node)",
                        a.alias_arn
                    )),
                    Some(base) => match latest_conflict(tx, function, base).await? {
                        StoreError::RevisionMismatch { .. } => {
                            alias_changed(function, &a.name, base)
                        }
                        gone => gone,
                    },
                });
            }
            Ok(())
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

/// Why a conditional write of `name`'s `$LATEST` changed no row: the function is
/// gone, or its RevisionId is no longer `base`.
async fn latest_conflict(
    tx: &Transaction<'_>,
    name: &str,
    base: &str,
) -> Result<StoreError, StoreError> {
    let exists = tx
        .query_opt("SELECT 1 FROM functions WHERE name = $1", &[&name])
        .await
        .map_err(PgError::query("read a function"))?;
    Ok(match exists {
        None => function_gone(name),
        Some(_) => latest_changed(name, base),
    })
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
        self.transact(
            &[(ChangeKind::Function, function)],
            async |tx| match write(tx).await {
                Ok(_) => Ok(()),
                Err(source)
                    if source.code()
                        == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
                {
                    Err(function_gone(function))
                }
                Err(source) => Err(PgError::Query { what, source }.into()),
            },
        )
    }

    /// Runs `body` in one transaction, then sends each `(kind, name)` notification
    /// in it and commits: the change and its notification are one. An error from
    /// `body` rolls everything back (the transaction is dropped uncommitted).
    fn transact<F>(&self, notify: &[(ChangeKind, &str)], body: F) -> Result<(), StoreError>
    where
        F: AsyncFnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send,
    {
        self.db.run(|| async move {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            body(&tx).await?;
            for (kind, name) in notify {
                self.db.notify(&tx, *kind, name).await?;
            }
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }
}
