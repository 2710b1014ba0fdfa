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
