//! The per-function scaling rate across the cluster (issue 11, part 3): each node
//! starts at most `rate / n` new environments per function per 10 s, `n` being the
//! number of healthy nodes, read from the `nodes` table every [`HEARTBEAT`] and
//! handed to the scheduler (`Scheduler::set_scaling_nodes`; the arithmetic is
//! `stratus_scheduler`'s `TokenBucket::share`). No invocation asks anyone: the
//! bucket stays local, only its size follows the membership. Why this and not
//! leased tokens: docs/decisions.md, "The scaling rate is divided among the
//! healthy nodes".
//!
//! When the table cannot be read the last count stays in force (a node cut off
//! from PostgreSQL keeps its share; it cannot grow it).

use deadpool_postgres::Pool;
use stratus_scheduler::Scheduler;
use tokio::sync::watch;

use super::nodes::{DEAD_AFTER, HEARTBEAT};
use super::ClusterError;

/// The nodes whose heartbeat is younger than [`DEAD_AFTER`] and that did not stop
/// (at least 1: this node, which is running).
pub(crate) async fn healthy_nodes(pool: &Pool) -> Result<u32, ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let dead_ms = DEAD_AFTER.as_millis() as i64;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM nodes WHERE stopped_at IS NULL \
             AND heartbeat_at > now() - $1::int8 * interval '1 millisecond'",
            &[&dead_ms],
        )
        .await
        .map_err(|e| ClusterError::query("count the healthy nodes", e))?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

/// Keeps the scheduler's share of the scaling rate in step with the membership
/// until `stop` turns true.
pub(crate) fn spawn(
    pool: Pool,
    scheduler: Scheduler,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = 1;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match healthy_nodes(&pool).await {
                Ok(n) if n != last => {
                    tracing::info!(
                        nodes = n,
                        "the scaling rate is now shared among {n} healthy node(s)"
                    );
                    scheduler.set_scaling_nodes(n);
                    last = n;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot count the healthy nodes; the scaling share stays")
                }
            }
        }
    })
}
