//! What of `state.db` is sealed (encrypted at rest) and how: a function's
//! environment variables (in `functions.config` and `versions.config`) and the
//! deployment requests of `deployments.request` (they carry each function's
//! environment as serverless.yml gave it).
//!
//! A stored configuration is the JSON of [`FunctionConfiguration`] without its
//! `Environment`, plus `SealedEnvironment`: the base64 of the variables' JSON
//! sealed for that row (`state/functions/NAME/environment`,
//! `state/versions/NAME/N/environment`). Only [`SqliteStore`](super::SqliteStore)
//! calls this module: the registry keeps the opened configuration in memory, so
//! values are opened once per load, never per invocation.
//!
//! [`seal_plaintext_rows`] converts a database written before encryption at rest,
//! in one transaction, then rebuilds the file and empties the WAL so that the old
//! plaintext survives in no page of `state.db*`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rusqlite::{params, Connection};
use serde_json::Value;
use stratus_seal::Sealer;

use super::StoreError;
use crate::model::{Environment, FunctionConfiguration};

const SEALED_FIELD: &str = "SealedEnvironment";

/// The place of `$LATEST`'s environment.
pub(super) fn latest_aad(name: &str) -> String {
    format!("state/functions/{name}/environment")
}

/// The place of a published version's environment.
pub(super) fn version_aad(name: &str, version: &str) -> String {
    format!("state/versions/{name}/{version}/environment")
}

/// The place of a recorded deployment request.
pub(super) fn deployment_aad(service: &str, stage: &str, timestamp: i64) -> String {
    format!("state/deployments/{service}/{stage}/{timestamp}/request")
}

fn sealing(e: stratus_seal::SealError) -> StoreError {
    StoreError::Seal(e.to_string())
}

fn unopened(what: &'static str, place: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unsealed {
        what,
        place: place.to_string(),
        reason: e.to_string(),
    }
}

/// The stored JSON of a configuration, its environment sealed for `aad`.
pub(super) fn encode_config(
    sealer: &Sealer,
    aad: &str,
    config: &FunctionConfiguration,
) -> Result<String, StoreError> {
    let mut v = serde_json::to_value(config).map_err(|source| StoreError::Decode {
        what: "function",
        source,
    })?;
    if let Value::Object(map) = &mut v {
        map.remove("Environment");
        if let Some(env) = config
            .environment
            .as_ref()
            .filter(|e| !e.variables.is_empty())
        {
            let plain =
                serde_json::to_vec(&env.variables).map_err(|source| StoreError::Decode {
                    what: "function",
                    source,
                })?;
            let sealed = sealer.seal(aad.as_bytes(), &plain).map_err(sealing)?;
            map.insert(SEALED_FIELD.into(), Value::String(B64.encode(sealed)));
        }
    }
    Ok(v.to_string())
}

/// Reads a stored configuration, opening its environment. `legacy` accepts a
/// plaintext `Environment` (only the conversion of an old database does).
fn decode_config_with(
    sealer: &Sealer,
    aad: &str,
    json: &str,
    legacy: bool,
) -> Result<FunctionConfiguration, StoreError> {
    let decode = |source| StoreError::Decode {
        what: "function",
        source,
    };
    let mut v: Value = serde_json::from_str(json).map_err(decode)?;
    let sealed = match &mut v {
        Value::Object(map) => {
            if !legacy && map.get("Environment").is_some_and(|e| !e.is_null()) {
                return Err(unopened(
                    "function environment",
                    aad,
                    "stored unsealed in a sealed database",
                ));
            }
            map.remove(SEALED_FIELD)
        }
        _ => None,
    };
    let mut config: FunctionConfiguration = serde_json::from_value(v).map_err(decode)?;
    if let Some(sealed) = sealed {
        let what = "function environment";
        let bytes = sealed
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| unopened(what, aad, "not base64"))?;
        let plain = sealer
            .open(aad.as_bytes(), &bytes)
            .map_err(|e| unopened(what, aad, e))?;
        let variables = serde_json::from_slice(&plain).map_err(|e| unopened(what, aad, e))?;
        config.environment = Some(Environment { variables });
    }
    Ok(config)
}

/// Reads a stored configuration, opening its environment.
pub(super) fn decode_config(
    sealer: &Sealer,
    aad: &str,
    json: &str,
) -> Result<FunctionConfiguration, StoreError> {
    decode_config_with(sealer, aad, json, false)
}

/// A deployment request, sealed for its row.
pub(super) fn seal_request(
    sealer: &Sealer,
    aad: &str,
    request: &str,
) -> Result<Vec<u8>, StoreError> {
    sealer.seal_str(aad, request).map_err(sealing)
}

/// Opens a stored deployment request.
pub(super) fn open_request(
    sealer: &Sealer,
    aad: &str,
    sealed: &[u8],
) -> Result<String, StoreError> {
    sealer
        .open_string(aad, sealed)
        .map_err(|e| unopened("deployment request", aad, e))
}

/// Seals what a Stratus from before encryption at rest stored in plain text:
/// environments in `functions` and `versions`, and `deployments.request`. When
/// anything changed, `VACUUM` rebuilds the file and the WAL is checkpointed and
/// truncated, so no old page keeps the plaintext. Returns how many rows changed.
pub(super) fn seal_plaintext_rows(
    conn: &mut Connection,
    sealer: &Sealer,
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let mut changed = 0;
    let functions: Vec<(String, String)> = tx
        .prepare("SELECT name, config FROM functions WHERE json_extract(config, '$.Environment') IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, json) in functions {
        let aad = latest_aad(&name);
        let config = decode_config_with(sealer, &aad, &json, true)?;
        tx.execute(
            "UPDATE functions SET config = ?2 WHERE name = ?1",
            params![name, encode_config(sealer, &aad, &config)?],
        )?;
        changed += 1;
    }
    let versions: Vec<(String, i64, String)> = tx
        .prepare("SELECT name, version, config FROM versions WHERE json_extract(config, '$.Environment') IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (name, version, json) in versions {
        let aad = version_aad(&name, &version.to_string());
        let config = decode_config_with(sealer, &aad, &json, true)?;
        tx.execute(
            "UPDATE versions SET config = ?3 WHERE name = ?1 AND version = ?2",
            params![name, version, encode_config(sealer, &aad, &config)?],
        )?;
        changed += 1;
    }
    let requests: Vec<(String, String, i64, String)> = tx
        .prepare("SELECT service, stage, timestamp, request FROM deployments WHERE typeof(request) = 'text'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (service, stage, ts, request) in requests {
        let sealed = seal_request(sealer, &deployment_aad(&service, &stage, ts), &request)?;
        tx.execute(
            "UPDATE deployments SET request = ?4 WHERE service = ?1 AND stage = ?2 AND timestamp = ?3",
            params![service, stage, ts, sealed],
        )?;
        changed += 1;
    }
    tx.commit()?;
    if changed > 0 {
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeploymentStore, FunctionStore, SqliteStore};

    fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .filter(|p| {
                let b = std::fs::read(p).unwrap();
                b.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .map(|p| p.display().to_string())
            .collect()
    }

    fn config(name: &str, version: &str, secret: &str) -> FunctionConfiguration {
        serde_json::from_value(serde_json::json!({
            "FunctionName": name, "FunctionArn": format!("arn:aws:lambda:us-east-1:1:function:{name}"),
            "Runtime": "nodejs20.x", "Role": "r", "Handler": "h.h", "CodeSize": 1,
            "Description": "", "Timeout": 3, "MemorySize": 128, "LastModified": "x",
            "CodeSha256": "x", "Version": version,
            "Environment": { "Variables": { "SECRET": secret } },
            "TracingConfig": { "Mode": "PassThrough" }, "RevisionId": "r", "State": "Active",
            "LastUpdateStatus": "Successful", "PackageType": "Zip",
            "Architectures": ["x86_64"], "EphemeralStorage": { "Size": 512 }
        }))
        .unwrap()
    }

    #[test]
    fn an_older_state_db_is_sealed_in_place_leaving_no_plaintext_behind() {
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("legacy-{}", stratus_rules::uuid_v4());
        {
            // state.db as a Stratus from before encryption at rest wrote it: the
            // store's schema, plain JSON, and a WAL that was never checkpointed.
            let plain = SqliteStore::open(dir.path(), Sealer::ephemeral().unwrap()).unwrap();
            drop(plain);
            let conn = Connection::open(dir.path().join("state.db")).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            let latest = serde_json::to_string(&config("f", "$LATEST", &secret)).unwrap();
            let v1 = serde_json::to_string(&config("f", "1", &secret)).unwrap();
            conn.execute(
                "INSERT INTO functions (name, config, code_hex) VALUES ('f', ?1, 'c')",
                [latest],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO versions (name, version, config, code_hex) VALUES ('f', 1, ?1, 'c')",
                [v1],
            )
            .unwrap();
            let request = format!(r#"{{"functions":[{{"environment":{{"SECRET":"{secret}"}}}}]}}"#);
            conn.execute(
                "INSERT INTO deployments (service, stage, timestamp, request, result) VALUES ('s', 'dev', 7, ?1, '{}')",
                [request],
            )
            .unwrap();
            // A deleted row's text stays in a free page unless scrubbed.
            let gone = serde_json::to_string(&config("g", "$LATEST", &secret)).unwrap();
            conn.execute(
                "INSERT INTO functions (name, config, code_hex) VALUES ('g', ?1, 'c')",
                [gone],
            )
            .unwrap();
            conn.execute("DELETE FROM functions WHERE name = 'g'", [])
                .unwrap();
            std::mem::forget(conn); // as a crash leaves it: the WAL stays
        }
        assert!(!files_holding(dir.path(), &secret).is_empty());

        let sealer = Sealer::ephemeral().unwrap();
        let store = SqliteStore::open(dir.path(), sealer.clone()).unwrap();
        let left = files_holding(dir.path(), &secret);
        assert!(left.is_empty(), "plaintext left in {left:?}");
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 1);
        let env =
            |c: &FunctionConfiguration| c.environment.as_ref().unwrap().variables["SECRET"].clone();
        assert_eq!(env(&loaded[0].function.config), secret);
        assert_eq!(env(&loaded[0].versions[0].config), secret);
        let d = store.deployments("s", "dev").unwrap();
        assert!(d[0].1.contains(&secret));
        drop(store);

        // Sealed for its row: $LATEST's environment copied onto version 1 fails.
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute(
            "UPDATE versions SET config = (SELECT config FROM functions WHERE name = 'f') WHERE name = 'f'",
            [],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path(), sealer).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(&err, StoreError::Unsealed { place, .. } if place == "state/versions/f/1/environment"),
            "{err}"
        );
    }
}
