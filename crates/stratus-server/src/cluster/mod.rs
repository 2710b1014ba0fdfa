//! Cluster mode: several `stratus server` processes acting as one platform on a
//! shared PostgreSQL database and a shared code store (docs/cluster.md).
//!
//! - [`ClusterFlags`]: `--cluster`, `--blobs`, `--advertise`, `--node-id` as given,
//!   checked by [`ClusterFlags::plan`] before anything is touched (a bad flag is a
//!   clear start-up error; no flag at all is the embedded single node, unchanged).
//! - [`Node`]: who this node is (its id, kept in `{data-dir}/node-id`, and the
//!   address the others reach it at).
//! - [`Membership`]: what `GET /stratus/v1/cluster` answers, single node or cluster.
//! - `nodes`: the `nodes` table and the heartbeat.
//! - `changes`: the change feed (`LISTEN stratus_changes`) that installs what other
//!   nodes wrote.
//! - [`pg`]: the PostgreSQL pool, migrations and change notifications.
//! - [`grants`]: cluster-wide concurrency, slots leased from PostgreSQL in batches.
//! - `pollers`: which node polls which SQS event source mapping (rendezvous
//!   hashing over the healthy nodes).
//! - [`placement`]: provisioned environments split over the live nodes; who has
//!   warm environments. [`forward`]: invocations routed to a node with a warm one.
//! - [`peers`]: signed HTTP calls to the other nodes, for reads of node-local logs
//!   and metrics.
//! - [`leader`]: one leader by a PostgreSQL advisory lock, its work fenced by an
//!   epoch (schedules fire once per period cluster-wide).
//! - `scaling`: the per-function scaling rate shared among the healthy nodes.
//!
//! Only this module knows that other nodes exist; the API handlers do not.

pub(crate) mod changes;
pub mod forward;
pub mod grants;
pub mod leader;
mod nodes;
pub mod peers;
pub mod pg;
pub mod placement;
pub(crate) mod pollers;
mod scaling;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;

use crate::registry::blobs::{BlobsError, BlobsLocation};

pub use nodes::{Forget, NodeInfo, NodeStatus, DEAD_AFTER};

/// Errors of cluster mode: flags, start-up and the cluster database.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A flag is malformed, or given without one it needs.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag, as written on the command line.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `--blobs` is unusable.
    #[error(transparent)]
    Blobs(#[from] BlobsError),
    /// The leader election could not be set up.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    /// The cluster-wide concurrency grants could not be set up.
    #[error(transparent)]
    Grants(#[from] grants::GrantsError),
    /// The node id file could not be read or written.
    #[error("cannot keep the node id in {path}: {source}")]
    NodeIdFile {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The cluster database cannot be reached.
    #[error("cannot connect to the cluster database {url}: {reason}")]
    Connect {
        /// The URL, with any password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// A query of the cluster database failed.
    #[error("cluster database: cannot {what}: {reason}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Another live node already uses this node id.
    #[error("node id {id} is in use by a live node at {address} (last heartbeat {age_ms} ms ago): give each node its own --node-id (or data dir)")]
    NodeIdInUse {
        /// The id.
        id: String,
        /// Where the other node is.
        address: String,
        /// How old its last heartbeat is.
        age_ms: i64,
    },
}

impl ClusterError {
    pub(crate) fn query(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Query {
            what,
            reason: e.to_string(),
        }
    }
}

/// The cluster flags as given (all `None`: the embedded single node).
#[derive(Debug, Clone, Default)]
pub struct ClusterFlags {
    /// `--cluster postgres://…`: shared state in this PostgreSQL database.
    pub url: Option<String>,
    /// `--blobs URL`: where code packages are kept (`file:///dir`, `s3://bucket/prefix`).
    pub blobs: Option<String>,
    /// `--advertise HOST:PORT`: where the other nodes reach this node's API.
    pub advertise: Option<String>,
    /// `--node-id ID`: this node's stable name.
    pub node_id: Option<String>,
}

/// What the flags ask for, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The shared code store (`--blobs`), with the URL as written.
    pub blobs: Option<(BlobsLocation, String)>,
    /// Cluster mode's settings, with `--cluster`.
    pub cluster: Option<ClusterPlan>,
}

/// Cluster mode's settings.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// The PostgreSQL URL.
    pub url: String,
    /// `--advertise`, checked.
    pub advertise: Option<String>,
    /// `--node-id`, checked.
    pub node_id: Option<String>,
}

impl ClusterFlags {
    /// Whether any cluster flag is set.
    pub fn any(&self) -> bool {
        self.url.is_some()
            || self.blobs.is_some()
            || self.advertise.is_some()
            || self.node_id.is_some()
    }

    /// Checks the flags against each other.
    pub fn plan(&self) -> Result<Plan, ClusterError> {
        let flag = |flag: &'static str, reason: String| ClusterError::Flag { flag, reason };
        let blobs = match &self.blobs {
            None => None,
            Some(url) => Some((BlobsLocation::parse(url)?, url.clone())),
        };
        let Some(url) = &self.url else {
            if self.advertise.is_some() {
                return Err(flag("--advertise", "only means something with --cluster postgres://… (the other nodes reach this one there)".into()));
            }
            if self.node_id.is_some() {
                return Err(flag(
                    "--node-id",
                    "only means something with --cluster postgres://…".into(),
                ));
            }
            return Ok(Plan {
                blobs,
                cluster: None,
            });
        };
        check_pg_url(url)?;
        if blobs.is_none() {
            return Err(flag("--cluster", "needs --blobs too: every node must read the same code packages, e.g. --blobs file:///srv/stratus-blobs (a directory all nodes mount)".into()));
        }
        if let Some(a) = &self.advertise {
            check_advertise(a)?;
        }
        if let Some(id) = &self.node_id {
            check_node_id(id).map_err(|r| flag("--node-id", r))?;
        }
        Ok(Plan {
            blobs,
            cluster: Some(ClusterPlan {
                url: url.clone(),
                advertise: self.advertise.clone(),
                node_id: self.node_id.clone(),
            }),
        })
    }
}

fn check_pg_url(url: &str) -> Result<(), ClusterError> {
    let bad = |reason: String| ClusterError::Flag {
        flag: "--cluster",
        reason: format!("{}: {reason}", pg::redact(url)),
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad(
            "expected a PostgreSQL URL, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE".into(),
        ));
    }
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| bad(e.to_string()))?;
    if cfg.get_hosts().is_empty() {
        return Err(bad("no host: postgres://USER@HOST[:PORT]/DATABASE".into()));
    }
    Ok(())
}

fn check_advertise(a: &str) -> Result<(), ClusterError> {
    let bad = |reason: &str| ClusterError::Flag {
        flag: "--advertise",
        reason: format!("{a:?}: {reason}"),
    };
    let Some((host, port)) = a.rsplit_once(':') else {
        return Err(bad("expected HOST:PORT, e.g. 10.0.0.5:9000"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad("the port must be a number from 1 to 65535")),
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("expected HOST:PORT, e.g. 10.0.0.5:9000"));
    }
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(bad(
            "an unspecified address (0.0.0.0, ::) is not one other nodes can reach",
        ));
    }
    Ok(())
}

fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "{id:?}: expected 1 to 64 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Who this node is.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its stable id.
    pub id: String,
    /// Where the other nodes reach its API (`HOST:PORT`).
    pub advertise: String,
}

impl ClusterPlan {
    /// This node's id (`--node-id`, else the one kept in `{dir}/node-id`, made at
    /// the first start) and advertised address (`--advertise`, else the bound API
    /// address, which must then be a specific one).
    pub fn node(&self, dir: &Path, bound: SocketAddr) -> Result<Node, ClusterError> {
        let id = match &self.node_id {
            Some(id) => id.clone(),
            None => stored_node_id(&dir.join("node-id"))?,
        };
        let advertise = match &self.advertise {
            Some(a) => a.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(ClusterError::Flag {
                    flag: "--advertise",
                    reason: format!("the API listens on {bound}, which is no address other nodes can reach: give --advertise HOST:PORT"),
                })
            }
            None => bound.to_string(),
        };
        Ok(Node { id, advertise })
    }
}

fn stored_node_id(path: &PathBuf) -> Result<String, ClusterError> {
    let io = |source| ClusterError::NodeIdFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let id = s.trim().to_string();
            check_node_id(&id).map_err(|r| {
                io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("it holds no valid node id ({r}); fix or delete it"),
                ))
            })?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{:08x}", rand::random::<u32>());
            std::fs::write(path, format!("{id}\n")).map_err(io)?;
            Ok(id)
        }
        Err(e) => Err(io(e)),
    }
}

/// A connection pool to the cluster database.
pub(crate) fn pool(url: &str) -> Result<deadpool_postgres::Pool, ClusterError> {
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| ClusterError::Connect {
        url: pg::redact(url),
        reason: e.to_string(),
    })?;
    let mgr = deadpool_postgres::Manager::from_config(
        cfg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(4)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| ClusterError::Connect {
            url: pg::redact(url),
            reason: e.to_string(),
        })
}

/// The advisory lock held while a node opens the shared key store ("STRATUS" 2):
/// nodes starting together on an empty database create one admin key, not one each.
const ADMIN_KEY_LOCK: i64 = 0x5354_5241_5455_5302;

/// Opens authentication over the cluster's key store, one node at a time: the
/// first creates the admin key (and writes its credentials file), the others find
/// it. Blocking.
pub(crate) fn open_shared_auth(
    db: &crate::store::PgDatabase,
    keys: Arc<crate::store::PgKeyStore>,
    dir: &Path,
    region: &str,
    account_id: &str,
    enabled: bool,
) -> Result<crate::auth::Auth, crate::StartError> {
    let locked = db.run(|| async {
        let c = pg::client(db.pool()).await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&ADMIN_KEY_LOCK])
            .await
            .map_err(pg::PgError::query("lock the key store"))?;
        Ok(c)
    })?;
    let auth = tokio::task::block_in_place(|| {
        crate::auth::Auth::with_store(keys, dir, region, account_id, enabled)
    });
    // Unlocked whatever happened (dropping the connection would return it to the
    // pool still holding the lock).
    let unlocked = db.run(|| async {
        locked
            .execute("SELECT pg_advisory_unlock($1)", &[&ADMIN_KEY_LOCK])
            .await
            .map_err(pg::PgError::query("unlock the key store"))?;
        Ok(())
    });
    let auth = auth?;
    unlocked?;
    Ok(auth)
}

/// Enters this node into the `nodes` table (refusing an id a live node at another
/// address uses).
pub(crate) async fn join_cluster(
    pool: &deadpool_postgres::Pool,
    node: &Node,
    scheduler: &stratus_scheduler::Scheduler,
) -> Result<(), ClusterError> {
    nodes::join(pool, node, &NodeInfo::local(scheduler)).await
}

/// Marks this node stopped (a clean shutdown).
pub(crate) async fn leave_cluster(
    pool: &deadpool_postgres::Pool,
    node: &Node,
) -> Result<(), ClusterError> {
    nodes::leave(pool, node).await
}

/// Starts this node's cluster duties until `stop` turns true: the heartbeat and the
/// change feed.
pub(crate) fn run_node(
    pool: deadpool_postgres::Pool,
    node: Node,
    url: String,
    applier: changes::Applier,
    scheduler: stratus_scheduler::Scheduler,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    changes::spawn_listener(url, node.id.clone(), applier, stop.clone());
    scaling::spawn(pool.clone(), scheduler.clone(), stop.clone());
    nodes::spawn_heartbeat(pool, node, scheduler, stop);
}

/// What `GET /stratus/v1/cluster` reports on: the single node, or the cluster.
#[derive(Debug, Clone)]
pub struct Membership {
    inner: Arc<MembershipInner>,
}

#[derive(Debug)]
struct MembershipInner {
    id: String,
    address: String,
    started_ms: i64,
    cluster: Option<deadpool_postgres::Pool>,
}

/// The host name, as a single node's id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Membership {
    /// The embedded single node at `addr`.
    pub fn single(addr: SocketAddr) -> Self {
        Self {
            inner: Arc::new(MembershipInner {
                id: host_name(),
                address: addr.to_string(),
                started_ms: now_ms(),
                cluster: None,
            }),
        }
    }

    /// Node `node` of the cluster whose database `pool` reaches.
    pub(crate) fn cluster(node: &Node, pool: deadpool_postgres::Pool) -> Self {
        Self {
            inner: Arc::new(MembershipInner {
                id: node.id.clone(),
                address: node.advertise.clone(),
                started_ms: now_ms(),
                cluster: Some(pool),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.id
    }

    /// `DELETE /stratus/v1/cluster/nodes/{id}`: forgets a stopped or dead node's
    /// row. `None` on a single node (there are no rows).
    pub async fn forget(&self, id: &str) -> Result<Option<Forget>, ClusterError> {
        match &self.inner.cluster {
            None => Ok(None),
            Some(pool) => nodes::forget(pool, id).await.map(Some),
        }
    }

    /// The answer of `GET /stratus/v1/cluster`: the mode, this node's id, and every
    /// node (a single node: this one, from `local`).
    pub async fn status(&self, local: NodeInfo) -> Result<serde_json::Value, ClusterError> {
        let me = &self.inner;
        let (mode, nodes, leader) = match &me.cluster {
            None => {
                let now = now_ms();
                let n = NodeStatus {
                    id: me.id.clone(),
                    address: me.address.clone(),
                    health: "healthy",
                    started_ms: me.started_ms,
                    heartbeat_ms: now,
                    heartbeat_age_ms: 0,
                    info: local,
                };
                // A single node fires its own schedules.
                let leader = serde_json::json!({ "node": me.id });
                ("single", vec![n], leader)
            }
            Some(pool) => {
                let leader = match leader::current(pool).await? {
                    Some((node, epoch, since)) => {
                        serde_json::json!({ "node": node, "epoch": epoch, "since": since })
                    }
                    None => serde_json::Value::Null,
                };
                ("cluster", nodes::list(pool).await?, leader)
            }
        };
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                let mut v = n.to_json(&me.id);
                v["leader"] = (leader["node"].as_str() == Some(n.id.as_str())).into();
                v
            })
            .collect();
        Ok(serde_json::json!({
            "mode": mode,
            "node": me.id,
            "deadAfterMs": DEAD_AFTER.as_millis() as u64,
            "leader": leader,
            "nodes": nodes,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn flags(
        url: Option<&str>,
        blobs: Option<&str>,
        adv: Option<&str>,
        id: Option<&str>,
    ) -> ClusterFlags {
        ClusterFlags {
            url: url.map(Into::into),
            blobs: blobs.map(Into::into),
            advertise: adv.map(Into::into),
            node_id: id.map(Into::into),
        }
    }

    #[test]
    fn no_flags_is_the_single_node() {
        let f = ClusterFlags::default();
        assert!(!f.any());
        let p = f.plan().unwrap();
        assert!(p.blobs.is_none() && p.cluster.is_none());
        // --blobs alone: a shared code store for a single node.
        let p = flags(None, Some("file:///srv/b"), None, None)
            .plan()
            .unwrap();
        assert!(p.blobs.is_some() && p.cluster.is_none());
    }

    #[test]
    fn bad_flags_say_what_and_why() {
        let pg = Some("postgres://stratus:hunter2@db.internal:5432/stratus");
        let cases = [
            (flags(pg, None, None, None), "--cluster: needs --blobs"),
            (
                flags(Some("mysql://x@y/z"), Some("file:///b"), None, None),
                "expected a PostgreSQL URL",
            ),
            (
                flags(None, None, Some("10.0.0.1:9000"), None),
                "--advertise: only means something with --cluster",
            ),
            (
                flags(None, None, None, Some("n1")),
                "--node-id: only means something with --cluster",
            ),
            (
                flags(pg, Some("file:///b"), Some("10.0.0.1"), None),
                "expected HOST:PORT",
            ),
            (
                flags(pg, Some("file:///b"), Some("0.0.0.0:9000"), None),
                "unspecified address",
            ),
            (
                flags(pg, Some("file:///b"), Some("h:0"), None),
                "1 to 65535",
            ),
            (
                flags(pg, Some("file:///b"), None, Some("a b")),
                "--node-id: \"a b\"",
            ),
            (flags(pg, Some("s3://B"), None, None), "not a bucket name"),
        ];
        for (f, says) in cases {
            let e = f.plan().unwrap_err().to_string();
            assert!(e.contains(says), "{f:?}: {e}");
            assert!(!e.contains("hunter2"), "the password leaked: {e}");
        }
        let ok = flags(
            pg,
            Some("file:///b"),
            Some("[::1]:9000"),
            Some("node-1.a_b"),
        );
        assert!(ok.plan().unwrap().cluster.is_some());
    }

    #[test]
    fn node_id_is_kept_and_advertise_defaults_to_the_bound_address() {
        let tmp = tempfile::tempdir().unwrap();
        let plan = flags(Some("postgres://u@h/d"), Some("file:///b"), None, None)
            .plan()
            .unwrap()
            .cluster
            .unwrap();
        let bound: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let a = plan.node(tmp.path(), bound).unwrap();
        let b = plan.node(tmp.path(), bound).unwrap();
        assert_eq!(a.id, b.id, "the generated id is kept");
        assert!(a.id.starts_with("node-"));
        assert_eq!(a.advertise, "127.0.0.1:4567");
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        let e = plan.node(tmp.path(), any).unwrap_err().to_string();
        assert!(e.contains("--advertise"), "{e}");
        std::fs::write(tmp.path().join("node-id"), "bad id!\n").unwrap();
        let e = plan.node(tmp.path(), bound).unwrap_err().to_string();
        assert!(
            e.contains("node-id") && e.contains("no valid node id"),
            "{e}"
        );
    }
}
