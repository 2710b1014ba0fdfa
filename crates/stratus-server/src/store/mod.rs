//! The server's durable state behind three typed boundaries, so a second backend
//! (PostgreSQL, for a cluster) can be added beside the embedded one without touching
//! the API handlers:
//!
//! - [`FunctionStore`]: functions (`$LATEST`), published versions, aliases, reserved
//!   and provisioned concurrency, tags and event-invoke configs. Only the registry
//!   writes it; it keeps the live copy in memory and writes through.
//! - [`DeploymentStore`]: which functions a service stage owns, and its deployment
//!   history (deploy, rollback, remove, info).
//! - [`MappingStore`]: event sources — the events each function declares in
//!   serverless.yml (routes, schedules, queue pollers) and the event source mappings
//!   made through the Lambda API.
//!
//! [`Stores`] bundles one handle of each; [`Stores::sqlite`] opens today's backend
//! ([`sqlite::SqliteStore`], one `state.db` in the data dir), [`Stores::postgres`]
//! a cluster's ([`postgres::PgStore`], shared by every node). Every method is
//! blocking: callers on the async runtime run them on a blocking thread.

pub mod keys;
pub mod postgres;
mod sealed;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::model::{AliasConfiguration, EventInvokeConfig, FunctionConfiguration};

pub use postgres::{PgDatabase, PgKeyStore, PgStore};
pub use sqlite::SqliteStore;

/// Errors from the state database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating the database failed.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// What the database said.
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("state database error: {0}")]
    Query(#[from] rusqlite::Error),
    /// A value could not be sealed.
    #[error("cannot seal a stored value: {0}")]
    Seal(String),
    /// A sealed value does not open: altered on disk, moved from its row, or
    /// sealed under keys this data dir does not have.
    #[error("stored {what} of {place} does not open: {reason}")]
    Unsealed {
        /// What kind of value.
        what: &'static str,
        /// Its place (table, row, column).
        place: String,
        /// Why.
        reason: String,
    },
    /// The cluster database (PostgreSQL) failed or could not be reached.
    #[error(transparent)]
    Postgres(#[from] crate::cluster::pg::PgError),
    /// The cluster's shared data keys could not be opened or created (a node
    /// given another master key than the cluster's is refused here).
    #[error("cluster keys: {0}")]
    ClusterKeys(#[source] stratus_seal::SealError),
    /// The write conflicts with one another node made (a version number already
    /// handed out, a function created or deleted meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// A conditional write found the resource changed since the writer read it:
    /// its stored RevisionId is no longer the one the change was based on (another
    /// node wrote it first). Nothing was written.
    #[error("{what} was changed through another node: its Revision Id is no longer {expected}")]
    RevisionMismatch {
        /// The resource (`function F`, `alias F:A`).
        what: String,
        /// The RevisionId the change was based on.
        expected: String,
    },
    /// A stored row could not be decoded.
    #[error("corrupt stored {what}: {source}")]
    Decode {
        /// What kind of row.
        what: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// One function as stored: its `$LATEST` configuration and code hash.
#[derive(Debug, Clone)]
pub struct StoredFunction {
    /// `$LATEST`'s configuration.
    pub config: FunctionConfiguration,
    /// sha256 (hex) of `$LATEST`'s code package.
    pub code_hex: String,
    /// The last version number handed out (versions are never reused).
    pub version_counter: u64,
    /// Reserved concurrency, if set.
    pub reserved: Option<u32>,
}

/// A published version.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The version's configuration (`Version` is its number).
    pub config: FunctionConfiguration,
    /// sha256 (hex) of its code package.
    pub code_hex: String,
}

/// A provisioned concurrency config as stored: (qualifier, requested, last modified).
pub type StoredProvisioned = (String, u32, String);

/// Everything stored about one function, as [`FunctionStore::load`] returns it.
#[derive(Debug, Clone)]
pub struct LoadedFunction {
    /// `$LATEST` and the function-level settings.
    pub function: StoredFunction,
    /// Published versions, oldest first.
    pub versions: Vec<StoredVersion>,
    /// Aliases, by name.
    pub aliases: Vec<AliasConfiguration>,
    /// Provisioned concurrency configs.
    pub provisioned: Vec<StoredProvisioned>,
}

/// A function's declared event sources: (function, events, created ms).
pub type FunctionEvents = (String, Vec<stratus_manifest::model::Event>, i64);

/// A recorded deployment: (timestamp ms, request JSON, result JSON).
pub type DeploymentRecord = (i64, String, String);

/// Functions and everything keyed by one function. Written only by the registry,
/// which serializes its writes; implementations make each call atomic.
pub trait FunctionStore: Send + Sync + std::fmt::Debug {
    /// Every function with its versions, aliases and provisioned configs.
    fn load(&self) -> Result<Vec<LoadedFunction>, StoreError>;
    /// One function with its versions, aliases and provisioned configs, if it
    /// exists (what a node re-reads when another node changed that function).
    fn load_function(&self, name: &str) -> Result<Option<LoadedFunction>, StoreError> {
        Ok(self
            .load()?
            .into_iter()
            .find(|f| f.function.config.function_name == name))
    }
    /// Every function's tags, by function name.
    fn all_tags(&self) -> Result<HashMap<String, BTreeMap<String, String>>, StoreError>;
    /// One function's tags.
    fn function_tags(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self.all_tags()?.remove(name).unwrap_or_default())
    }
    /// Inserts a new function's `$LATEST` and its tags, atomically.
    fn create_function(
        &self,
        f: &StoredFunction,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;
    /// Replaces a function's `$LATEST` and function-level settings, but only while
    /// the stored `$LATEST` still has RevisionId `base` (the one the change was
    /// made from): else [`StoreError::RevisionMismatch`] and nothing is written, so
    /// two nodes changing one function never silently lose one change.
    fn put_function(&self, f: &StoredFunction, base: &str) -> Result<(), StoreError>;
    /// Deletes a function and everything keyed by it (versions, aliases, configs,
    /// tags, and its event sources), atomically.
    fn delete_function(&self, name: &str) -> Result<(), StoreError>;
    /// Records a published version together with the function's new counter, but
    /// only while the stored `$LATEST` still has RevisionId `base` (the `$LATEST`
    /// the version is a snapshot of): else [`StoreError::RevisionMismatch`].
    fn put_version(
        &self,
        f: &StoredFunction,
        v: &StoredVersion,
        base: &str,
    ) -> Result<(), StoreError>;
    /// Deletes one published version and the provisioned config on it.
    fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError>;
    /// Writes an alias: a new one (`base` = `None`; [`StoreError::Conflict`] if
    /// it exists by now), or a change of the one whose stored RevisionId is `base`
    /// (else [`StoreError::RevisionMismatch`]; a deleted alias is a mismatch too).
    fn put_alias(
        &self,
        function: &str,
        a: &AliasConfiguration,
        base: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deletes an alias and the provisioned config on it.
    fn delete_alias(&self, function: &str, alias: &str) -> Result<(), StoreError>;
    /// Sets (`Some((requested, last_modified))`) or clears a provisioned config.
    fn put_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        requested: Option<(u32, &str)>,
    ) -> Result<(), StoreError>;
    /// Replaces a function's tags.
    fn put_tags(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<(), StoreError>;
    /// The event invoke config of a qualifier.
    fn event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError>;
    /// Every event invoke config of a function, by qualifier.
    fn event_invoke_configs(&self, name: &str) -> Result<Vec<EventInvokeConfig>, StoreError>;
    /// Sets or (with `None`) clears the event invoke config of a qualifier.
    fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
        cfg: Option<&EventInvokeConfig>,
    ) -> Result<(), StoreError>;
}

/// Service stages and their deployment history.
pub trait DeploymentStore: Send + Sync + std::fmt::Debug {
    /// Functions deployed by `service` on `stage`: (key in serverless.yml, function name).
    fn service_functions(
        &self,
        service: &str,
        stage: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// The (service, stage) a function was deployed by.
    fn owner_of(&self, function: &str) -> Result<Option<(String, String)>, StoreError>;
    /// Records that `function` belongs to `service`/`stage` as `key`.
    fn put_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
        function: &str,
    ) -> Result<(), StoreError>;
    /// Forgets one function of a service.
    fn delete_service_function(
        &self,
        service: &str,
        stage: &str,
        key: &str,
    ) -> Result<(), StoreError>;
    /// Forgets a service stage and its deployment history, atomically.
    fn delete_service(&self, service: &str, stage: &str) -> Result<(), StoreError>;
    /// Records a deployment.
    fn add_deployment(
        &self,
        service: &str,
        stage: &str,
        timestamp: i64,
        request: &str,
        result: &str,
    ) -> Result<(), StoreError>;
    /// Deployments of a service stage, oldest first.
    fn deployments(&self, service: &str, stage: &str) -> Result<Vec<DeploymentRecord>, StoreError>;
}

/// Event sources: events declared in serverless.yml and API-made mappings.
pub trait MappingStore: Send + Sync + std::fmt::Debug {
    /// Stores a function's declared event sources; `created_ms` is kept when they did
    /// not change (rates stay anchored at the deployment that created them). Returns
    /// whether they changed.
    fn put_function_events(
        &self,
        name: &str,
        events: &[stratus_manifest::model::Event],
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Every function's declared event sources, by function name.
    fn all_function_events(&self) -> Result<Vec<FunctionEvents>, StoreError>;
    /// Every event source mapping made through the Lambda API (as its JSON).
    fn event_source_mappings(&self) -> Result<Vec<serde_json::Value>, StoreError>;
    /// Inserts, replaces or (with `None`) deletes an event source mapping.
    fn put_event_source_mapping(
        &self,
        uuid: &str,
        function: &str,
        config: Option<&serde_json::Value>,
    ) -> Result<(), StoreError>;
}

/// One handle per store boundary.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Functions, versions, aliases, concurrency, tags, event-invoke configs.
    pub functions: Arc<dyn FunctionStore>,
    /// Service stages and deployments.
    pub deployments: Arc<dyn DeploymentStore>,
    /// Event sources.
    pub mappings: Arc<dyn MappingStore>,
}

impl Stores {
    /// The embedded backend: one SQLite database, `state.db` in `dir`, sealing
    /// what it stores of secrets with `sealer`.
    pub fn sqlite(dir: &Path, sealer: stratus_seal::Sealer) -> Result<Self, StoreError> {
        let db = Arc::new(SqliteStore::open(dir, sealer)?);
        Ok(Self {
            functions: db.clone(),
            deployments: db.clone(),
            mappings: db,
        })
    }
}

/// The error for a write to a function that no longer exists.
pub(crate) fn function_gone(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "function {name} no longer exists (deleted through another node)"
    ))
}

/// The error for a conditional write to `$LATEST` that found another revision.
pub(crate) fn latest_changed(name: &str, base: &str) -> StoreError {
    StoreError::RevisionMismatch {
        what: format!("function {name}"),
        expected: base.to_string(),
    }
}

/// The error for a conditional write to an alias that found another revision
/// (or no alias).
pub(crate) fn alias_changed(function: &str, alias: &str, base: &str) -> StoreError {
    StoreError::RevisionMismatch {
        what: format!("alias {function}:{alias}"),
        expected: base.to_string(),
    }
}
