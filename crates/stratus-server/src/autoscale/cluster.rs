//! ProvisionedConcurrencyUtilization in a cluster: the provisioned environments of
//! a qualifier's pool are split over the live nodes (`cluster/placement.rs`), so
//! the leader's own pool is only its share. [`ClusterSource`] adds this node's
//! (busy, alive) — exact, from its scheduler — to what every other live node
//! published in its last heartbeat (at most about two seconds old): busy
//! provisioned environments over provisioned environments of the pool on all
//! nodes. Nothing here runs on a single node.

use std::sync::Arc;

use stratus_scheduler::Scheduler;

use super::UtilizationSource;
use crate::cluster::placement::Placement;
use crate::registry::Registry;

/// Utilization of a pool across the cluster's live nodes.
#[derive(Debug)]
pub struct ClusterSource {
    registry: Arc<Registry>,
    scheduler: Scheduler,
    placement: Arc<Placement>,
}

impl ClusterSource {
    /// Reads this node's pools from `scheduler` and the others' from `placement`'s
    /// view of the heartbeats, finding a qualifier's pool through `registry`.
    pub fn new(registry: Arc<Registry>, scheduler: Scheduler, placement: Arc<Placement>) -> Self {
        Self {
            registry,
            scheduler,
            placement,
        }
    }
}

impl UtilizationSource for ClusterSource {
    fn utilization(&self, function: &str, qualifier: &str) -> Option<f64> {
        let resolved = self.registry.resolve(function, Some(qualifier)).ok()?;
        let key = &resolved.spec.pool_key;
        let (busy, alive) = self.scheduler.provisioned_usage(key).unwrap_or((0, 0));
        let (busy_elsewhere, alive_elsewhere) = self.placement.provisioned_usage_elsewhere(key);
        let (busy, alive) = (busy + busy_elsewhere, alive + alive_elsewhere);
        (alive > 0).then(|| f64::from(busy.min(alive)) / f64::from(alive))
    }
}

/// The autoscaler of a cluster node: its tables in `db`, its decisions gated by
/// `election`, utilization over every node. An accelerated clock (`speed` > 1,
/// tests and benchmarks) is anchored at the cluster's creation so that every node
/// reads the same simulated time; otherwise `clock` is used. Blocking.
pub fn open(
    db: &crate::store::PgDatabase,
    registry: &Arc<Registry>,
    scheduler: &Scheduler,
    placement: &Arc<Placement>,
    election: &crate::cluster::leader::Election,
    speed: f64,
    clock: Arc<dyn super::Clock>,
) -> Result<super::Autoscaler, crate::store::StoreError> {
    let store = super::postgres::PgAutoscale::new(db.clone());
    let clock: Arc<dyn super::Clock> = if speed > 1.0 {
        let created = store.cluster_created_ms()?;
        let anchor =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(created) * 1_000_000)
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        Arc::new(super::AcceleratedClock::anchored(anchor, speed))
    } else {
        clock
    };
    super::Autoscaler::with_store(
        super::store::AutoscaleStore::Postgres(store),
        registry.clone(),
        Arc::new(ClusterSource::new(
            registry.clone(),
            scheduler.clone(),
            placement.clone(),
        )),
        clock,
        Some(election.leadership().watch()),
    )
}
