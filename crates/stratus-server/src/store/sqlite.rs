//! The embedded backend of every store boundary: one SQLite database (WAL),
//! `state.db` in the data dir, holding functions, versions, aliases, concurrency
//! settings, tags, event-invoke configs, event sources and deployments. Function
//! environments and deployment requests are stored sealed ([`super::sealed`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use stratus_seal::Sealer;

use super::sealed::{self, deployment_aad, latest_aad, version_aad};
use super::{
    alias_changed, function_gone, latest_changed, DeploymentRecord, DeploymentStore,
    FunctionEvents, FunctionStore, LoadedFunction, MappingStore, StoreError, StoredFunction,
    StoredVersion,
};
use crate::model::{AliasConfiguration, EventInvokeConfig};

/// The embedded state database: one SQLite file (WAL), one connection behind a mutex.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    sealer: Sealer,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    code_hex TEXT NOT NULL,
    version_counter INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    config TEXT NOT NULL,
    code_hex TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS service_functions (
    service TEXT NOT NULL,
    stage TEXT NOT NULL,
    key TEXT NOT NULL,
    function_name TEXT NOT NULL,
    PRIMARY KEY (service, stage, key)
);
CREATE TABLE IF NOT EXISTS deployments (
    service TEXT NOT NULL,
    stage TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (service, stage, timestamp)
);
CREATE TABLE IF NOT EXISTS event_invoke_config (
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);
CREATE TABLE IF NOT EXISTS function_events (
    function_name TEXT PRIMARY KEY,
    events TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_source_mappings (
    uuid TEXT PRIMARY KEY,
    function_name TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE IF NOT EXISTS provisioned (
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    requested INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);
";

fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Why a conditional write of `name`'s `$LATEST` changed no row: the function is
/// gone, or its RevisionId is no longer `base`.
fn latest_conflict(conn: &Connection, name: &str, base: &str) -> Result<StoreError, StoreError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM functions WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?;
    Ok(match exists {
        None => function_gone(name),
        Some(()) => latest_changed(name, base),
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::Decode { what, source })
}

/// Replaces `name`'s tag rows inside a transaction.
fn write_tags(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM tags WHERE name = ?1", [name])?;
    let mut insert = tx.prepare("INSERT INTO tags (name, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in tags {
        insert.execute(params![name, k, v])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `state.db` in `dir`; `sealer` seals function
    /// environments and deployment requests, and rows an older Stratus stored in
    /// plain text are sealed in place here.
    pub fn open(dir: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let path = dir.join("state.db");
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Replaced and deleted rows are overwritten, not left in free pages.
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let mut conn = open().map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let converted = sealed::seal_plaintext_rows(&mut conn, &sealer)?;
        if converted > 0 {
            tracing::info!(rows = converted, "sealed environments and deployment requests stored in plain text by an older Stratus");
        }
        Ok(Self {
            conn: Mutex::new(conn),
            sealer,
        })
    }

    /// `$LATEST`'s stored configuration, its environment sealed.
    fn sealed_latest(&self, f: &StoredFunction) -> Result<String, StoreError> {
        let aad = latest_aad(&f.config.function_name);
        sealed::encode_config(&self.sealer, &aad, &f.config)
    }

    /// Returns whether a function exists in the database (used by tests and checks).
    pub fn has_function(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT 1 FROM functions WHERE name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl FunctionStore for SqliteStore {
    /// Every function with its versions, aliases and provisioned configs.
    fn load(&self) -> Result<Vec<LoadedFunction>, StoreError> {
        let conn = self.conn.lock();
        let mut out = Vec::new();
        let mut fns = conn.prepare(
            "SELECT name, config, code_hex, version_counter, reserved FROM functions ORDER BY name",
        )?;
        let rows = fns.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        for row in rows {
            let (name, config, code_hex, counter, reserved) = row?;
            let f = StoredFunction {
                config: sealed::decode_config(&self.sealer, &latest_aad(&name), &config)?,
                code_hex,
                version_counter: counter as u64,
                reserved: reserved.map(|r| r as u32),
            };
            let mut vs = conn.prepare(
                "SELECT config, code_hex, version FROM versions WHERE name = ?1 ORDER BY version",
            )?;
            let versions = vs
                .query_map([&name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .map(|row| {
                    let (c, h, n) = row?;
                    let aad = version_aad(&name, &n.to_string());
                    Ok(StoredVersion {
                        config: sealed::decode_config(&self.sealer, &aad, &c)?,
                        code_hex: h,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut als =
                conn.prepare("SELECT config FROM aliases WHERE name = ?1 ORDER BY alias")?;
            let aliases = als
                .query_map([&name], |r| r.get::<_, String>(0))?
                .map(|row| decode("alias", &row?))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut ps = conn.prepare(
                "SELECT qualifier, requested, last_modified FROM provisioned WHERE name = ?1",
            )?;
            let provisioned = ps
                .query_map([&name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u32,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(LoadedFunction {
                function: f,
                versions,
                aliases,
                provisioned,
            });
        }
        Ok(out)
    }

    /// Every function's tags, by function name.
    fn all_tags(&self) -> Result<HashMap<String, BTreeMap<String, String>>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT name, key, value FROM tags")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for row in rows {
            let (name, key, value) = row?;
            out.entry(name).or_default().insert(key, value);
        }
        Ok(out)
    }

    /// Inserts a new function's `$LATEST` row and its tags, in one transaction.
    fn create_function(
        &self,
        f: &StoredFunction,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO functions (name, config, code_hex, version_counter, reserved) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET config = ?2, code_hex = ?3, version_counter = ?4, reserved = ?5",
            params![f.config.function_name, self.sealed_latest(f)?, f.code_hex, f.version_counter as i64, f.reserved.map(|r| r as i64)],
        )?;
        write_tags(&tx, &f.config.function_name, tags)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces a function's `$LATEST` row while its stored RevisionId is `base`.
    fn put_function(&self, f: &StoredFunction, base: &str) -> Result<(), StoreError> {
        let name = &f.config.function_name;
        let conn = self.conn.lock();
        let updated = conn.execute(
            "UPDATE functions SET config = ?2, code_hex = ?3, version_counter = ?4, reserved = ?5
             WHERE name = ?1 AND json_extract(config, '$.RevisionId') = ?6",
            params![
                name,
                self.sealed_latest(f)?,
                f.code_hex,
                f.version_counter as i64,
                f.reserved.map(|r| r as i64),
                base
            ],
        )?;
        if updated == 0 {
            return Err(latest_conflict(&conn, name, base)?);
        }
        Ok(())
    }

    /// Deletes a function and everything it owns, in one transaction.
    fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for table in [
            "functions",
            "versions",
            "aliases",
            "provisioned",
            "event_invoke_config",
            "tags",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?;
        }
        // Its event sources go with it (schedules, routes, queue pollers).
        for table in ["function_events", "event_source_mappings"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE function_name = ?1"),
                [name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a published version together with the function's new counter,
    /// while `$LATEST`'s stored RevisionId is `base`.
    fn put_version(
        &self,
        f: &StoredFunction,
        v: &StoredVersion,
        base: &str,
    ) -> Result<(), StoreError> {
        let number = v.config.version.parse::<i64>().unwrap_or(0);
        let aad = version_aad(&v.config.function_name, &number.to_string());
        let config = sealed::encode_config(&self.sealer, &aad, &v.config)?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let updated = tx.execute(
            "UPDATE functions SET version_counter = ?2
             WHERE name = ?1 AND json_extract(config, '$.RevisionId') = ?3",
            params![f.config.function_name, f.version_counter as i64, base],
        )?;
        if updated == 0 {
            return Err(latest_conflict(&tx, &f.config.function_name, base)?);
        }
        tx.execute(
            "INSERT OR REPLACE INTO versions (name, version, config, code_hex) VALUES (?1, ?2, ?3, ?4)",
            params![v.config.function_name, number, config, v.code_hex],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes one published version (and provisioned config on it).
    fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "DELETE FROM versions WHERE name = ?1 AND version = ?2",
            params![name, version.parse::<i64>().unwrap_or(-1)],
        )?;
        conn.execute(
            "DELETE FROM provisioned WHERE name = ?1 AND qualifier = ?2",
            params![name, version],
        )?;
        Ok(())
    }

    /// Inserts a new alias (`base` = `None`) or replaces the one whose stored
    /// RevisionId is `base`.
    fn put_alias(
        &self,
        function: &str,
        a: &AliasConfiguration,
        base: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        match base {
            None => {
                let inserted = conn.execute(
                    "INSERT INTO aliases (name, alias, config) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name, alias) DO NOTHING",
                    params![function, a.name, encode(a)],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Conflict(format!(
                        "Alias already exists: {}",
                        a.alias_arn
                    )));
                }
            }
            Some(base) => {
                let updated = conn.execute(
                    "UPDATE aliases SET config = ?3
                     WHERE name = ?1 AND alias = ?2 AND json_extract(config, '$.RevisionId') = ?4",
                    params![function, a.name, encode(a), base],
                )?;
                if updated == 0 {
                    return Err(alias_changed(function, &a.name, base));
                }
            }
        }
        Ok(())
    }

    /// Deletes an alias (and provisioned config on it).
    fn delete_alias(&self, function: &str, alias: &str) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "DELETE FROM aliases WHERE name = ?1 AND alias = ?2",
            params![function, alias],
        )?;
        conn.execute(
            "DELETE FROM provisioned WHERE name = ?1 AND qualifier = ?2",
            params![function, alias],
        )?;
        Ok(())
    }

    /// Sets or clears a provisioned config.
    fn put_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        requested: Option<(u32, &str)>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        match requested {
            Some((n, modified)) => conn.execute(
                "INSERT OR REPLACE INTO provisioned (name, qualifier, requested, last_modified) VALUES (?1, ?2, ?3, ?4)",
                params![function, qualifier, n as i64, modified],
            )?,
            None => conn.execute("DELETE FROM provisioned WHERE name = ?1 AND qualifier = ?2", params![function, qualifier])?,
        };
        Ok(())
    }

    /// Replaces a function's tags with `tags`.
    fn put_tags(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        write_tags(&tx, name, tags)?;
        tx.commit()?;
        Ok(())
    }

    /// The event invoke config of a qualifier.
    fn event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError> {
        let conn = self.conn.lock();
        let raw: Option<String> = conn
            .query_row(
                "SELECT config FROM event_invoke_config WHERE name = ?1 AND qualifier = ?2",
                params![name, qualifier],
                |r| r.get(0),
            )
            .optional()?;
        raw.map(|r| decode("event invoke config", &r)).transpose()
    }

    /// Every event invoke config of a function.
    fn event_invoke_configs(&self, name: &str) -> Result<Vec<EventInvokeConfig>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT config FROM event_invoke_config WHERE name = ?1 ORDER BY qualifier")?;
        let rows = stmt.query_map([name], |r| r.get::<_, String>(0))?;
        rows.map(|r| decode("event invoke config", &r?)).collect()
    }

    /// Sets or clears the event invoke config of a qualifier.
    fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
        cfg: Option<&EventInvokeConfig>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        match cfg {
            Some(c) => conn.execute(
                "INSERT OR REPLACE INTO event_invoke_config (name, qualifier, config) VALUES (?1, ?2, ?3)",
                params![name, qualifier, encode(c)],
            )?,
            None => conn.execute("DELETE FROM event_invoke_config WHERE name = ?1 AND qualifier = ?2", params![name, qualifier])?,
        };
        Ok(())
    }
}

impl DeploymentStore for SqliteStore {
    /// Functions deployed by `service` on `stage`: (key in serverless.yml, function name).
    fn service_functions(
        &self,
        service: &str,
        stage: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT key, function_name FROM service_functions WHERE service = ?1 AND stage = ?2 ORDER BY key")?;
        let rows = stmt.query_map(params![service, stage], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The (service, stage) a function was deployed by.
    fn owner_of(&self, function: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT service, stage FROM service_functions WHERE function_name = ?1",
                [function],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Records that `function` belongs to `service`/`stage` as `key`.
    fn put_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO service_functions (service, stage, key, function_name) VALUES (?1, ?2, ?3, ?4)",
            params![service, stage, key, function],
        )?;
        Ok(())
    }

    /// Forgets one function of a service.
    fn delete_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "DELETE FROM service_functions WHERE service = ?1 AND stage = ?2 AND key = ?3",
            params![service, stage, key],
        )?;
        Ok(())
    }

    /// Forgets a service stage and its deployment history.
    fn delete_service(&self, service: &str, stage: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM service_functions WHERE service = ?1 AND stage = ?2",
            params![service, stage],
        )?;
        tx.execute(
            "DELETE FROM deployments WHERE service = ?1 AND stage = ?2",
            params![service, stage],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a deployment.
    fn add_deployment(
        &self,
        service: &str,
        stage: &str,
        timestamp: i64,
        request: &str,
        result: &str,
    ) -> Result<(), StoreError> {
        let request = sealed::seal_request(
            &self.sealer,
            &deployment_aad(service, stage, timestamp),
            request,
        )?;
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO deployments (service, stage, timestamp, request, result) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![service, stage, timestamp, request, result],
        )?;
        Ok(())
    }

    /// Deployments of a service stage, oldest first: (timestamp ms, request, result).
    fn deployments(&self, service: &str, stage: &str) -> Result<Vec<DeploymentRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT timestamp, request, result FROM deployments WHERE service = ?1 AND stage = ?2 ORDER BY timestamp",
        )?;
        let rows = stmt.query_map(params![service, stage], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?))
        })?;
        rows.map(|row| {
            let (ts, request, result) = row?;
            let aad = deployment_aad(service, stage, ts);
            Ok((
                ts,
                sealed::open_request(&self.sealer, &aad, &request)?,
                result,
            ))
        })
        .collect()
    }
}

impl MappingStore for SqliteStore {
    /// Stores a function's event sources; `created_ms` is kept when they did not change
    /// (rates stay anchored at the deployment that created them). Returns whether they
    /// changed.
    fn put_function_events(
        &self,
        name: &str,
        events: &[stratus_manifest::model::Event],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.conn.lock();
        let json = encode(&events);
        let old: Option<String> = conn
            .query_row(
                "SELECT events FROM function_events WHERE function_name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if old.as_deref() == Some(json.as_str()) {
            return Ok(false);
        }
        if events.is_empty() {
            conn.execute(
                "DELETE FROM function_events WHERE function_name = ?1",
                [name],
            )?;
        } else {
            conn.execute(
                "INSERT OR REPLACE INTO function_events (function_name, events, created_ms) VALUES (?1, ?2, ?3)",
                params![name, json, now_ms],
            )?;
        }
        Ok(old.is_some() || !events.is_empty())
    }

    /// Every function's event sources: (function, events, created ms).
    fn all_function_events(&self) -> Result<Vec<FunctionEvents>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT function_name, events, created_ms FROM function_events ORDER BY function_name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, events, created) = row?;
            out.push((name, decode("function events", &events)?, created));
        }
        Ok(out)
    }

    /// Every event source mapping made through the Lambda API (as JSON).
    fn event_source_mappings(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT config FROM event_source_mappings ORDER BY uuid")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| decode("event source mapping", &r?)).collect()
    }

    /// Inserts, replaces or (with `None`) deletes an event source mapping.
    fn put_event_source_mapping(
        &self,
        uuid: &str,
        function: &str,
        config: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        match config {
            Some(c) => conn.execute(
                "INSERT OR REPLACE INTO event_source_mappings (uuid, function_name, config) VALUES (?1, ?2, ?3)",
                params![uuid, function, encode(c)],
            )?,
            None => conn.execute("DELETE FROM event_source_mappings WHERE uuid = ?1", [uuid])?,
        };
        Ok(())
    }
}
