//! The cluster's PostgreSQL: connecting (`tokio-postgres` pooled by
//! `deadpool-postgres`), the schema's migrations (`refinery`, the SQL files under
//! `crates/stratus-server/migrations/postgres/` embedded in the binary), and the
//! change notifications every write sends.
//!
//! Migration files are numbered by part: `V1..V9` shared state (the stores),
//! `V10..V19` concurrency grants, `V20..` later parts. Nodes that start together
//! migrate one at a time (a session advisory lock), so each migration runs once.
//!
//! Change notifications: every write to the shared state commits, in the same
//! transaction, `pg_notify('stratus_changes', payload)` with the payload
//! [`Change`] (`{"node":…,"kind":…,"name":…}`), so a node's listener learns what
//! another node changed exactly when it is committed.

use deadpool_postgres::Pool;

#[allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]
mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The channel every write notifies on.
pub const CHANGES_CHANNEL: &str = "stratus_changes";

/// The table refinery records applied migrations in.
pub const MIGRATIONS_TABLE: &str = "stratus_schema_history";

/// The advisory lock taken while migrating ("STRATUS" and 1).
const MIGRATION_LOCK: i64 = 0x5354_5241_5455_5301;

/// Errors of the cluster database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL URL {url}: {reason}")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the cluster database {url}: {reason}")]
    Connect {
        /// The URL, its password hidden.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// Migrating the schema failed.
    #[error("cannot migrate the cluster database {url}: {reason}")]
    Migrate {
        /// The URL, its password hidden.
        url: String,
        /// What refinery or PostgreSQL said.
        reason: String,
    },
    /// No connection could be had from the pool (the database went away).
    #[error("cluster state store unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("cluster state store: cannot {what}: {}", chain(.source))]
    Query {
        /// What was being done.
        what: &'static str,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The runtime that drives the database connections could not start.
    #[error("cannot start the cluster database's runtime: {0}")]
    Runtime(std::io::Error),
}

impl PgError {
    /// A `map_err` adapter naming what was being done.
    pub fn query(what: &'static str) -> impl Fn(tokio_postgres::Error) -> PgError {
        move |source| PgError::Query { what, source }
    }
}

/// What kind of thing a [`Change`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A function and everything keyed by it (`name`: the function).
    Function,
    /// A service stage's functions and deployments (`name`: `service/stage`).
    Service,
    /// Event sources of a function (`name`: the function).
    Mappings,
    /// An access key (`name`: its id).
    Keys,
    /// Application Auto Scaling's targets, policies or scheduled actions (`name`:
    /// the ResourceId).
    Autoscale,
}

/// The payload of a notification on [`CHANGES_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The node that made the change (a node ignores its own).
    pub node: String,
    /// What changed.
    pub kind: ChangeKind,
    /// Which one.
    pub name: String,
}

pub use stratus_pg::{chain, redact};

/// Why a pool gave no connection, in words.
fn pool_reason(e: deadpool_postgres::PoolError) -> String {
    stratus_pg::pool_reason(e)
}

/// A pool of at most `max_size` connections to `url`, checked by taking one
/// connection now: an unreachable database is an error here, at start-up, not at
/// the first write. Must run inside a Tokio runtime (the pool spawns connections).
pub async fn connect(url: &str, max_size: usize) -> Result<Pool, PgError> {
    let shown = redact(url);
    let cfg = stratus_pg::config(url, "stratus").map_err(|reason| PgError::Url {
        url: shown.clone(),
        reason,
    })?;
    let pool = stratus_pg::pool(cfg, max_size).map_err(|reason| PgError::Connect {
        url: shown.clone(),
        reason,
    })?;
    let checked = pool.get().await.map_err(|e| PgError::Connect {
        url: shown,
        reason: pool_reason(e),
    })?;
    drop(checked);
    Ok(pool)
}

/// A connection from `pool`, or [`PgError::Unavailable`].
pub async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, PgError> {
    pool.get()
        .await
        .map_err(|e| PgError::Unavailable(pool_reason(e)))
}

/// Applies the embedded migrations not yet applied (one node at a time). `url`
/// only names the database in errors.
pub async fn migrate(pool: &Pool, url: &str) -> Result<(), PgError> {
    let report = stratus_pg::migrate(
        pool,
        embedded::migrations::runner(),
        MIGRATIONS_TABLE,
        MIGRATION_LOCK,
    )
    .await
    .map_err(|reason| PgError::Migrate {
        url: redact(url),
        reason,
    })?;
    for m in report.applied_migrations() {
        tracing::info!(
            version = m.version(),
            name = m.name(),
            "applied cluster database migration"
        );
    }
    Ok(())
}

/// Sends a [`Change`] inside `tx` (delivered when, and only if, it commits).
pub async fn notify(
    tx: &tokio_postgres::Transaction<'_>,
    node: &str,
    kind: ChangeKind,
    name: &str,
) -> Result<(), PgError> {
    let payload = serde_json::to_string(&Change {
        node: node.to_string(),
        kind,
        name: name.to_string(),
    })
    .unwrap_or_default();
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &payload])
        .await
        .map_err(PgError::query("send a change notification"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_payloads_have_the_documented_shape() {
        let c = Change {
            node: "n1".into(),
            kind: ChangeKind::Mappings,
            name: "f".into(),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"node":"n1","kind":"mappings","name":"f"}"#);
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), c);
    }
}
