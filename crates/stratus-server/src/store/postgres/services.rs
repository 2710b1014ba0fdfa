//! [`DeploymentStore`] and [`MappingStore`] over PostgreSQL: service stages, their
//! deployment history (requests sealed), declared event sources and event source
//! mappings. Each write is one transaction with its change notification (kind
//! `service` named `service/stage`, or `mappings` named by the function).

use tokio_postgres::Transaction;

use super::{decode, encode, PgStore};
use crate::cluster::pg::{ChangeKind, PgError};
use crate::store::sealed::{self, deployment_aad};
use crate::store::{DeploymentRecord, DeploymentStore, FunctionEvents, MappingStore, StoreError};

impl PgStore {
    /// One write of a service stage in a transaction with its notification.
    fn write_service<F>(
        &self,
        service: &str,
        stage: &str,
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
            write(&tx)
                .await
                .map_err(|source| PgError::Query { what, source })?;
            let name = format!("{service}/{stage}");
            self.db.notify(&tx, ChangeKind::Service, &name).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }
}

impl DeploymentStore for PgStore {
    fn service_functions(
        &self,
        service: &str,
        stage: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT key, function_name FROM service_functions
                     WHERE service = $1 AND stage = $2 ORDER BY key",
                    &[&service, &stage],
                )
                .await
                .map_err(PgError::query("read a service's functions"))?)
        })?;
        let bad = PgError::query("read a service's functions");
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(&bad)?, r.try_get(1).map_err(&bad)?)))
            .collect()
    }

    fn owner_of(&self, function: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query_opt(
                    "SELECT service, stage FROM service_functions WHERE function_name = $1
                     ORDER BY service, stage LIMIT 1",
                    &[&function],
                )
                .await
                .map_err(PgError::query("read a function's service"))?)
        })?;
        let bad = PgError::query("read a function's service");
        row.map(|r| Ok((r.try_get(0).map_err(&bad)?, r.try_get(1).map_err(&bad)?)))
            .transpose()
    }

    fn put_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        self.write_service(service, stage, "record a service's function", async |tx| {
            tx.execute(
                "INSERT INTO service_functions (service, stage, key, function_name)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (service, stage, key) DO UPDATE SET function_name = EXCLUDED.function_name",
                &[&service, &stage, &key, &function],
            )
            .await
        })
    }

    fn delete_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.write_service(service, stage, "forget a service's function", async |tx| {
            tx.execute(
                "DELETE FROM service_functions WHERE service = $1 AND stage = $2 AND key = $3",
                &[&service, &stage, &key],
            )
            .await
        })
    }

    fn delete_service(&self, service: &str, stage: &str) -> Result<(), StoreError> {
        self.write_service(service, stage, "forget a service", async |tx| {
            tx.execute(
                "DELETE FROM service_functions WHERE service = $1 AND stage = $2",
                &[&service, &stage],
            )
            .await?;
            tx.execute(
                "DELETE FROM deployments WHERE service = $1 AND stage = $2",
                &[&service, &stage],
            )
            .await
        })
    }

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
        self.write_service(service, stage, "record a deployment", async |tx| {
            tx.execute(
                "INSERT INTO deployments (service, stage, timestamp, request, result)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (service, stage, timestamp)
                 DO UPDATE SET request = EXCLUDED.request, result = EXCLUDED.result",
                &[&service, &stage, &timestamp, &request, &result],
            )
            .await
        })
    }

    fn deployments(&self, service: &str, stage: &str) -> Result<Vec<DeploymentRecord>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT timestamp, request, result FROM deployments
                     WHERE service = $1 AND stage = $2 ORDER BY timestamp",
                    &[&service, &stage],
                )
                .await
                .map_err(PgError::query("read deployments"))?)
        })?;
        let bad = PgError::query("read deployments");
        rows.iter()
            .map(|r| {
                let ts: i64 = r.try_get(0).map_err(&bad)?;
                let request: Vec<u8> = r.try_get(1).map_err(&bad)?;
                let aad = deployment_aad(service, stage, ts);
                Ok((
                    ts,
                    sealed::open_request(&self.sealer, &aad, &request)?,
                    r.try_get(2).map_err(&bad)?,
                ))
            })
            .collect()
    }
}

impl MappingStore for PgStore {
    fn put_function_events(
        &self,
        name: &str,
        events: &[stratus_manifest::model::Event],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let json = encode("function events", &events)?;
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            let what = "write a function's event sources";
            // Serializes writers of this function's row, existing or not.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("function_events/{name}")],
            )
            .await
            .map_err(PgError::query(what))?;
            let old: Option<String> = tx
                .query_opt(
                    "SELECT events FROM function_events WHERE function_name = $1",
                    &[&name],
                )
                .await
                .map_err(PgError::query(what))?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(PgError::query(what))?;
            if old.as_deref() == Some(json.as_str()) {
                return Ok(false);
            }
            if events.is_empty() {
                tx.execute(
                    "DELETE FROM function_events WHERE function_name = $1",
                    &[&name],
                )
                .await
                .map_err(PgError::query(what))?;
            } else {
                tx.execute(
                    "INSERT INTO function_events (function_name, events, created_ms)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (function_name)
                     DO UPDATE SET events = EXCLUDED.events, created_ms = EXCLUDED.created_ms",
                    &[&name, &json, &now_ms],
                )
                .await
                .map_err(PgError::query(what))?;
            }
            let changed = old.is_some() || !events.is_empty();
            if changed {
                self.db.notify(&tx, ChangeKind::Mappings, name).await?;
            }
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(changed)
        })
    }

    fn all_function_events(&self) -> Result<Vec<FunctionEvents>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT function_name, events, created_ms FROM function_events
                     ORDER BY function_name",
                    &[],
                )
                .await
                .map_err(PgError::query("read event sources"))?)
        })?;
        let bad = PgError::query("read event sources");
        rows.iter()
            .map(|r| {
                let events: String = r.try_get(1).map_err(&bad)?;
                Ok((
                    r.try_get(0).map_err(&bad)?,
                    decode("function events", &events)?,
                    r.try_get(2).map_err(&bad)?,
                ))
            })
            .collect()
    }

    fn event_source_mappings(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = self.db.run(|| async {
            let client = self.db.client().await?;
            Ok(client
                .query(
                    "SELECT config FROM event_source_mappings ORDER BY uuid",
                    &[],
                )
                .await
                .map_err(PgError::query("read event source mappings"))?)
        })?;
        let bad = PgError::query("read event source mappings");
        rows.iter()
            .map(|r| {
                let raw: String = r.try_get(0).map_err(&bad)?;
                decode("event source mapping", &raw)
            })
            .collect()
    }

    fn put_event_source_mapping(
        &self,
        uuid: &str,
        function: &str,
        config: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let config = config
            .map(|c| encode("event source mapping", c))
            .transpose()?;
        self.db.run(|| async {
            let mut client = self.db.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            let what = "write an event source mapping";
            match &config {
                Some(c) => tx
                    .execute(
                        "INSERT INTO event_source_mappings (uuid, function_name, config)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (uuid) DO UPDATE
                         SET function_name = EXCLUDED.function_name, config = EXCLUDED.config",
                        &[&uuid, &function, c],
                    )
                    .await
                    .map_err(PgError::query(what))?,
                None => tx
                    .execute(
                        "DELETE FROM event_source_mappings WHERE uuid = $1",
                        &[&uuid],
                    )
                    .await
                    .map_err(PgError::query(what))?,
            };
            self.db.notify(&tx, ChangeKind::Mappings, function).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }
}
