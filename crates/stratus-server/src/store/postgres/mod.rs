//! The PostgreSQL backend of every store boundary, for a cluster: the same tables
//! as `state.db` (`migrations/postgres/V1__state.sql`), shared by every node.
//!
//! - [`PgDatabase`] opens the database (pool, migrations) on a runtime of its own
//!   and hands out the stores: [`PgDatabase::stores`] (functions, deployments,
//!   mappings) and [`PgDatabase::key_store`] (access keys and their policies).
//! - [`PgDatabase::cluster_sealer`] opens the cluster's shared data keys (table
//!   `cluster_keys`, wrapped by the master key; the first node creates them), so
//!   what one node seals every node with the same `STRATUS_MASTER_KEY` opens.
//! - Every write is one transaction that also sends `pg_notify('stratus_changes',
//!   …)` ([`crate::cluster::pg::notify`]), so other nodes learn of it on commit.
//!
//! The store traits are blocking. Their methods wait on the database through
//! [`PgDatabase::run`], which works from any thread: a plain or blocking thread
//! waits directly, a worker of a multi-threaded runtime steps aside with
//! `block_in_place`, and a current-thread runtime (tests) waits on a helper
//! thread. The connections are driven by the database's own one-thread runtime, so
//! a blocked caller never starves them.

mod functions;
mod keys;
mod services;

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::Pool;
use stratus_seal::{MasterKey, Sealer, WrappedKey};

use super::{StoreError, Stores};
use crate::cluster::pg::{self, ChangeKind, PgError};

pub use keys::PgKeyStore;

/// How many connections one node keeps to the database for its stores (writes
/// are serialized by the registry; reads are few and off the hot path).
const POOL_SIZE: usize = 4;

/// The runtime driving the connections, stopped without waiting when the last
/// handle goes (dropping a runtime inside another runtime's task would panic).
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Debug)]
struct Inner {
    // Field order: the pool (and its connections) go before their runtime.
    pool: Pool,
    node: String,
    url: String,
    handle: tokio::runtime::Handle,
    _runtime: OwnRuntime,
}

/// A node's connection to the cluster database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    inner: Arc<Inner>,
}

impl PgDatabase {
    /// Connects to `url` (an error names an unreachable database at once) and
    /// migrates its schema. `node_id` is this node's name in change notifications.
    /// Blocking; callable from any thread.
    pub fn open(url: &str, node_id: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stratus-pg")
            .enable_all()
            .build()
            .map_err(PgError::Runtime)?;
        let handle = runtime.handle().clone();
        let runtime = OwnRuntime(Some(runtime));
        let pool = wait(&handle, || async {
            let pool = pg::connect(url, POOL_SIZE).await?;
            pg::migrate(&pool, url).await?;
            Ok::<_, StoreError>(pool)
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                node: node_id.to_string(),
                url: pg::redact(url),
                handle,
                _runtime: runtime,
            }),
        })
    }

    /// The connection pool (for other cluster parts that use the same database).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// This node's id, as its change notifications carry it.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Runs the future `make` returns on the database's runtime and waits for it.
    /// Blocking; callable from any thread (see the module docs).
    pub fn run<T, F, Fut>(&self, make: F) -> Result<T, StoreError>
    where
        T: Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        wait(&self.inner.handle, make)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(pg::client(&self.inner.pool).await?)
    }

    /// Sends a change notification inside `tx`.
    async fn notify(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        kind: ChangeKind,
        name: &str,
    ) -> Result<(), StoreError> {
        Ok(pg::notify(tx, &self.inner.node, kind, name).await?)
    }

    /// The sealer of the cluster's shared data keys: opens them with `master`
    /// (`source_name` says where it came from), creating the first key when the
    /// database has none. A master key that does not open them is refused with
    /// [`StoreError::ClusterKeys`]: every node must be given the same one.
    pub fn cluster_sealer(
        &self,
        master: &MasterKey,
        source_name: &str,
    ) -> Result<Sealer, StoreError> {
        let store = format!("the cluster database {}", self.inner.url);
        let keys = self.run(|| async {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::query("begin"))?;
            // One creator: nodes starting together wait here for the first.
            tx.execute("LOCK TABLE cluster_keys IN EXCLUSIVE MODE", &[])
                .await
                .map_err(PgError::query("lock the shared data keys"))?;
            let rows = tx
                .query("SELECT id, wrapped FROM cluster_keys ORDER BY id", &[])
                .await
                .map_err(PgError::query("read the shared data keys"))?;
            let mut keys = rows
                .iter()
                .map(|r| {
                    Ok(WrappedKey {
                        id: u32::try_from(r.try_get::<_, i32>(0)?).unwrap_or(0),
                        wrapped: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(PgError::query("read the shared data keys"))?;
            if keys.is_empty() {
                let key =
                    stratus_seal::new_shared_key(master, 1).map_err(StoreError::ClusterKeys)?;
                tx.execute(
                    "INSERT INTO cluster_keys (id, wrapped, created_ms) VALUES ($1, $2, $3)",
                    &[&1i32, &key.wrapped, &crate::logs::now_ms()],
                )
                .await
                .map_err(PgError::query("store the first shared data key"))?;
                keys.push(key);
            }
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(keys)
        })?;
        stratus_seal::open_shared_keys(master, source_name, &store, &keys)
            .map_err(StoreError::ClusterKeys)
    }

    /// The function, deployment and mapping stores, sealing with `sealer` (the
    /// [`PgDatabase::cluster_sealer`]).
    pub fn stores(&self, sealer: Sealer) -> Stores {
        let store = Arc::new(PgStore {
            db: self.clone(),
            sealer,
        });
        Stores {
            functions: store.clone(),
            deployments: store.clone(),
            mappings: store,
        }
    }

    /// The access key store, sealing secrets with `sealer` (the
    /// [`PgDatabase::cluster_sealer`]).
    pub fn key_store(&self, sealer: Sealer) -> PgKeyStore {
        PgKeyStore::new(self.clone(), sealer)
    }
}

/// Runs `make()` on `handle`'s runtime from whatever thread this is.
fn wait<T, F, Fut>(handle: &tokio::runtime::Handle, make: F) -> Result<T, StoreError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, StoreError>>,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        // A plain thread.
        Err(_) => handle.block_on(make()),
        // A worker (steps aside so its other tasks move) or a blocking thread of a
        // multi-threaded runtime (block_in_place just runs the closure).
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| handle.block_on(make())),
        // A current-thread runtime cannot block in place: wait on a helper thread.
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| handle.block_on(make()))
                .join()
                .unwrap_or_else(|_| {
                    Err(PgError::Unavailable("the waiting thread panicked".into()).into())
                })
        }),
    }
}

/// Functions, deployments and mappings in the cluster database.
#[derive(Debug)]
pub struct PgStore {
    db: PgDatabase,
    sealer: Sealer,
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Decode { what, source })
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::Decode { what, source })
}

impl Stores {
    /// The cluster backend: the PostgreSQL database at `url`, migrated, sealing
    /// with `sealer` — which must be the cluster's shared sealer
    /// ([`PgDatabase::cluster_sealer`]) so that every node opens what any node
    /// sealed. `node_id` names this node in change notifications. Blocking.
    pub fn postgres(url: &str, sealer: Sealer, node_id: &str) -> Result<Self, StoreError> {
        Ok(PgDatabase::open(url, node_id)?.stores(sealer))
    }
}
