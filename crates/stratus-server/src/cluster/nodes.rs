//! The `nodes` table (migration `V20__nodes.sql`) and the heartbeat: every node
//! writes its row every [`HEARTBEAT`] with what it runs; a node whose last
//! heartbeat is older than [`DEAD_AFTER`] is dead. Ages are computed by the
//! database's clock, so the nodes' clocks need not agree.

use std::time::Duration;

use deadpool_postgres::Pool;
use stratus_scheduler::Scheduler;
use tokio::sync::watch;

use super::{ClusterError, Node};

/// How often a node writes its heartbeat.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// A node whose last heartbeat is older than this is dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);

/// What a node reports about itself.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Live execution environments.
    pub environments: u32,
    /// Environments busy with an invocation now.
    pub in_flight: u32,
    /// The machine's one-minute load average.
    pub load: f64,
    /// The Stratus version it runs.
    pub version: String,
    /// Provisioned environments alive.
    #[serde(default)]
    pub provisioned: u32,
    /// Per pool: idle and provisioned environments (placement and routing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<super::placement::PoolInfo>,
}

impl NodeInfo {
    /// This node's figures now.
    pub fn local(scheduler: &Scheduler) -> Self {
        let (mut environments, mut in_flight) = (0, 0);
        for (total, idle) in scheduler.env_counts().values() {
            environments += total;
            in_flight += total.saturating_sub(*idle);
        }
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let pools = super::placement::local_pools(scheduler);
        Self {
            environments,
            in_flight,
            load,
            version: env!("CARGO_PKG_VERSION").to_string(),
            provisioned: pools.iter().map(|p| p.provisioned).sum(),
            pools,
        }
    }
}

/// One row of the `nodes` table, as `stratus cluster status` shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node's id.
    pub id: String,
    /// Where its API is reached.
    pub address: String,
    /// `healthy`, `dead` (no heartbeat for [`DEAD_AFTER`]) or `stopped` (shut down).
    pub health: &'static str,
    /// When it started (epoch ms).
    pub started_ms: i64,
    /// Its last heartbeat (epoch ms).
    pub heartbeat_ms: i64,
    /// How old that heartbeat is, by the database's clock.
    pub heartbeat_age_ms: i64,
    /// What it reported.
    pub info: NodeInfo,
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl NodeStatus {
    pub(super) fn to_json(&self, me: &str) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "address": self.address,
            "health": self.health,
            "self": self.id == me,
            "environments": self.info.environments,
            "inFlight": self.info.in_flight,
            "provisioned": self.info.provisioned,
            "load": self.info.load,
            "version": self.info.version,
            "startedAt": iso(self.started_ms),
            "lastHeartbeat": iso(self.heartbeat_ms),
            "heartbeatAgeMs": self.heartbeat_age_ms,
        })
    }
}

/// Enters `node` into the table (a restart is a new start), after checking that no
/// other live node at another address uses its id.
pub(crate) async fn join(pool: &Pool, node: &Node, info: &NodeInfo) -> Result<(), ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let dead_ms = DEAD_AFTER.as_millis() as i64;
    let row = c
        .query_opt(
            "SELECT advertise, (extract(epoch FROM now() - heartbeat_at) * 1000)::int8 \
             FROM nodes WHERE id = $1 AND stopped_at IS NULL",
            &[&node.id],
        )
        .await
        .map_err(|e| ClusterError::query("read the nodes table", e))?;
    if let Some(row) = row {
        let (address, age_ms): (String, i64) = (row.get(0), row.get(1));
        if address != node.advertise && age_ms < dead_ms {
            return Err(ClusterError::NodeIdInUse {
                id: node.id.clone(),
                address,
                age_ms,
            });
        }
    }
    let info = serde_json::to_string(info).map_err(|e| ClusterError::query("encode", e))?;
    c.execute(
        "INSERT INTO nodes (id, advertise, started_at, heartbeat_at, stopped_at, info) \
         VALUES ($1, $2, now(), now(), NULL, $3::text::jsonb) \
         ON CONFLICT (id) DO UPDATE SET advertise = EXCLUDED.advertise, \
         started_at = now(), heartbeat_at = now(), stopped_at = NULL, info = EXCLUDED.info",
        &[&node.id, &node.advertise, &info],
    )
    .await
    .map_err(|e| ClusterError::query("write the nodes table", e))?;
    Ok(())
}

/// One heartbeat. A row that went missing (deleted by an operator) is written anew.
async fn beat(pool: &Pool, node: &Node, info: &NodeInfo) -> Result<(), ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let text = serde_json::to_string(info).map_err(|e| ClusterError::query("encode", e))?;
    let n = c
        .execute(
            "UPDATE nodes SET heartbeat_at = now(), stopped_at = NULL, info = $2::text::jsonb \
             WHERE id = $1",
            &[&node.id, &text],
        )
        .await
        .map_err(|e| ClusterError::query("write the heartbeat", e))?;
    if n == 0 {
        drop(c);
        join(pool, node, info).await?;
    }
    Ok(())
}

/// Marks `node` stopped (a clean shutdown: it is not dead, it left).
pub(crate) async fn leave(pool: &Pool, node: &Node) -> Result<(), ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    c.execute(
        "UPDATE nodes SET stopped_at = now() WHERE id = $1",
        &[&node.id],
    )
    .await
    .map_err(|e| ClusterError::query("write the nodes table", e))?;
    Ok(())
}

/// Writes a heartbeat every [`HEARTBEAT`] until `stop` turns true. A failed one is
/// logged once per outage and retried at the next tick.
pub(crate) fn spawn_heartbeat(
    pool: Pool,
    node: Node,
    scheduler: Scheduler,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let info = NodeInfo::local(&scheduler);
            match beat(&pool, &node, &info).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(node = %node.id, "cluster heartbeat written again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(node = %node.id, error = %e, "cluster heartbeat failed; other nodes will see this node as dead until it is written again");
                }
                Err(_) => {}
            }
        }
    })
}

/// What [`forget`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// The row is deleted; the node was `stopped` or `dead`.
    Forgotten {
        /// Its health when it was forgotten.
        health: &'static str,
    },
    /// No node has this id.
    Unknown,
    /// The node is healthy (a heartbeat younger than [`DEAD_AFTER`]): refused.
    Live {
        /// Its advertised address.
        address: String,
        /// How old its last heartbeat is.
        age_ms: i64,
    },
}

/// Deletes the row of node `id` (and its expired concurrency grants) unless the
/// node is healthy. The row is locked first, so a heartbeat written meanwhile is
/// seen (its age is then negative: healthy). A forgotten node that comes back
/// writes its row anew at its next heartbeat.
pub(crate) async fn forget(pool: &Pool, id: &str) -> Result<Forget, ClusterError> {
    let mut c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| ClusterError::query("begin", e))?;
    let row = tx
        .query_opt(
            "SELECT advertise, (extract(epoch FROM now() - heartbeat_at) * 1000)::int8, \
             stopped_at IS NOT NULL FROM nodes WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(|e| ClusterError::query("read the nodes table", e))?;
    let Some(row) = row else {
        return Ok(Forget::Unknown);
    };
    let (address, age_ms, stopped): (String, i64, bool) = (row.get(0), row.get(1), row.get(2));
    let health = if stopped {
        "stopped"
    } else if age_ms < DEAD_AFTER.as_millis() as i64 {
        return Ok(Forget::Live { address, age_ms });
    } else {
        "dead"
    };
    tx.execute("DELETE FROM nodes WHERE id = $1", &[&id])
        .await
        .map_err(|e| ClusterError::query("write the nodes table", e))?;
    // Its unexpired grants stay: they count against the limits until they
    // expire, as the node itself may still be admitting under them.
    tx.execute(
        "DELETE FROM concurrency_grants WHERE node = $1 AND expires_at < now()",
        &[&id],
    )
    .await
    .map_err(|e| ClusterError::query("write the grants table", e))?;
    tx.commit()
        .await
        .map_err(|e| ClusterError::query("commit", e))?;
    Ok(Forget::Forgotten { health })
}

/// Deletes the rows of nodes whose last heartbeat is older than `retention`
/// (stopped or dead that long); the leader calls it now and then. Returns the
/// ids forgotten.
pub(crate) async fn forget_older_than(
    client: &tokio_postgres::Client,
    retention: Duration,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "DELETE FROM nodes WHERE heartbeat_at < now() - $1::int8 * interval '1 millisecond' \
             RETURNING id",
            &[&ms],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every node, by id.
pub(crate) async fn list(pool: &Pool) -> Result<Vec<NodeStatus>, ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let rows = c
        .query(
            "SELECT id, advertise, \
             (extract(epoch FROM started_at) * 1000)::int8, \
             (extract(epoch FROM heartbeat_at) * 1000)::int8, \
             (extract(epoch FROM now() - heartbeat_at) * 1000)::int8, \
             stopped_at IS NOT NULL, info::text \
             FROM nodes ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| ClusterError::query("read the nodes table", e))?;
    let dead_ms = DEAD_AFTER.as_millis() as i64;
    Ok(rows
        .iter()
        .map(|r| {
            let age: i64 = r.get(4);
            let stopped: bool = r.get(5);
            let info: String = r.get(6);
            NodeStatus {
                id: r.get(0),
                address: r.get(1),
                health: if stopped {
                    "stopped"
                } else if age < dead_ms {
                    "healthy"
                } else {
                    "dead"
                },
                started_ms: r.get(2),
                heartbeat_ms: r.get(3),
                heartbeat_age_ms: age,
                // A row another version wrote with other fields still lists.
                info: serde_json::from_str(&info).unwrap_or_default(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! Forgetting nodes against a real PostgreSQL (`stratus_testkit`).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cluster::pg;

    async fn pool() -> Pool {
        let url = stratus_testkit::Postgres::shared().database();
        let pool = pg::connect(&url, 2).await.unwrap();
        pg::migrate(&pool, &url).await.unwrap();
        pool
    }

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            advertise: format!("127.0.0.1:{}", 9000 + id.len()),
        }
    }

    /// Makes node `id`'s last heartbeat `secs` seconds old.
    async fn age(pool: &Pool, id: &str, secs: i64) {
        pool.get()
            .await
            .unwrap()
            .execute(
                "UPDATE nodes SET heartbeat_at = now() - $2::int8 * interval '1 second' WHERE id = $1",
                &[&id, &secs],
            )
            .await
            .unwrap();
    }

    async fn ids(pool: &Pool) -> Vec<String> {
        list(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect()
    }

    #[tokio::test]
    async fn only_stopped_or_dead_nodes_are_forgotten() {
        let pool = pool().await;
        let info = NodeInfo::default();
        for id in ["live", "gone", "retired"] {
            join(&pool, &node(id), &info).await.unwrap();
        }
        leave(&pool, &node("retired")).await.unwrap();
        age(&pool, "gone", 6).await;
        // A healthy node is refused, with its address and heartbeat age.
        match forget(&pool, "live").await.unwrap() {
            Forget::Live { address, age_ms } => {
                assert_eq!(address, node("live").advertise);
                assert!(age_ms < DEAD_AFTER.as_millis() as i64, "{age_ms}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(forget(&pool, "nobody").await.unwrap(), Forget::Unknown);
        // A dead node's expired grant goes with it; an unexpired one stays.
        let c = pool.get().await.unwrap();
        c.batch_execute(
            "INSERT INTO concurrency_pools (pool, slot_limit) VALUES ('account', 10) ON CONFLICT DO NOTHING;
             INSERT INTO concurrency_grants (pool, node, slots, wanted, expires_at)
               VALUES ('account', 'gone', 2, 2, now() - interval '1 second');
             INSERT INTO concurrency_grants (pool, node, slots, wanted, expires_at)
               VALUES ('account', 'retired', 3, 3, now() + interval '1 minute');",
        )
        .await
        .unwrap();
        assert_eq!(
            forget(&pool, "gone").await.unwrap(),
            Forget::Forgotten { health: "dead" }
        );
        assert_eq!(
            forget(&pool, "retired").await.unwrap(),
            Forget::Forgotten { health: "stopped" }
        );
        assert_eq!(ids(&pool).await, ["live"]);
        let grants: Vec<String> = c
            .query("SELECT node FROM concurrency_grants ORDER BY node", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(grants, ["retired"]);
        // A forgotten node that comes back writes its row again.
        beat(&pool, &node("gone"), &info).await.unwrap();
        assert_eq!(ids(&pool).await, ["gone", "live"]);
    }

    #[tokio::test]
    async fn the_leader_forgets_nodes_silent_longer_than_the_retention() {
        let pool = pool().await;
        let info = NodeInfo::default();
        for id in ["fresh", "old-dead", "old-stopped", "recent-dead"] {
            join(&pool, &node(id), &info).await.unwrap();
        }
        leave(&pool, &node("old-stopped")).await.unwrap();
        age(&pool, "old-dead", 3 * 3600).await;
        age(&pool, "old-stopped", 3 * 3600).await;
        age(&pool, "recent-dead", 30 * 60).await;
        let c = pool.get().await.unwrap();
        let mut gone = forget_older_than(&c, Duration::from_secs(3600))
            .await
            .unwrap();
        gone.sort();
        assert_eq!(gone, ["old-dead", "old-stopped"]);
        assert_eq!(ids(&pool).await, ["fresh", "recent-dead"]);
    }
}
