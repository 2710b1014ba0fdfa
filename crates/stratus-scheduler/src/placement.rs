//! Provisioned concurrency spread over the nodes of a cluster, as the scheduler
//! sees it: a [`Placement`] (installed once, by the cluster wiring) says which
//! share of a pool's requested floor this node keeps and how many provisioned
//! environments of the pool the other nodes have alive. The scheduler stores both
//! numbers per pool (`prov_requested`, the cluster's; `prov_target`, this node's),
//! warms its share, and recomputes every share when the cluster's membership
//! changes ([`Scheduler::rebalance_provisioned`]). Without a placement (a single
//! node) the share is the whole request and nothing here runs.
//!
//! [`Scheduler::pool_loads`] is what a node publishes about itself (its idle and
//! provisioned environments per pool), so the others can route to its warm ones.

use std::sync::Arc;

use crate::{FunctionSpec, Scheduler};

/// Where a cluster's provisioned environments live. Called off the scheduler's
/// lock; must not call back into the scheduler.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// This node's share of `total` provisioned environments of `spec`'s pool.
    fn share(&self, spec: &FunctionSpec, total: u32) -> u32;
    /// Provisioned environments of the pool `pool_key` alive on the other (live)
    /// nodes, as they last reported.
    fn alive_elsewhere(&self, pool_key: &str) -> u32;
}

/// One pool's environments on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLoad {
    /// The pool (`{function}\0{version}\0{revision}`).
    pub pool_key: Arc<str>,
    /// Live environments, starting ones included.
    pub total: u32,
    /// Idle environments (warm, free to take an invocation).
    pub idle: u32,
    /// Provisioned environments alive.
    pub provisioned: u32,
    /// Idle provisioned environments (of `idle`).
    pub idle_provisioned: u32,
}

impl Scheduler {
    /// Installs the cluster's placement (once; later calls are ignored). Floors set
    /// from now on are split by it; call [`Scheduler::rebalance_provisioned`] to
    /// split those set before.
    pub fn set_placement(&self, placement: Arc<dyn Placement>) {
        let _ = self.inner.placement.set(placement);
    }

    pub(crate) fn placement(&self) -> Option<&Arc<dyn Placement>> {
        self.inner.placement.get()
    }

    /// This node's share of `total` environments of `spec`'s pool.
    pub(crate) fn share_of(&self, spec: &FunctionSpec, total: u32) -> u32 {
        match self.placement() {
            Some(p) if total > 0 => p.share(spec, total),
            _ => total,
        }
    }

    /// Recomputes this node's share of every provisioned pool (the cluster's
    /// membership changed), stopping surplus idle environments and starting
    /// missing ones.
    pub fn rebalance_provisioned(&self) {
        let pools = self.inner.state.lock().provisioned_pools();
        for (spec, requested) in pools {
            let share = self.share_of(&spec, requested);
            let surplus = self.inner.state.lock().set_share(&spec.pool_key, share);
            for env in surplus {
                env.destroy("provisioned share moved to another node");
            }
            self.reconcile_provisioned(&spec.pool_key);
        }
    }

    /// Every live pool's environments on this node.
    pub fn pool_loads(&self) -> Vec<PoolLoad> {
        self.inner.state.lock().pool_loads()
    }

    /// The spec of the live pool `pool_key`, if this node has it.
    pub fn pool_spec(&self, pool_key: &str) -> Option<Arc<FunctionSpec>> {
        self.inner.state.lock().pool_spec(pool_key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use super::*;
    use crate::state::{Refusal, State};
    use crate::Settings;

    fn spec() -> Arc<FunctionSpec> {
        Arc::new(FunctionSpec {
            pool_key: Arc::from("f\u{0}1\u{0}r"),
            function_name: Arc::from("f"),
            version: Arc::from("1"),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            program: "/bin/true".into(),
            args: Vec::new(),
            cwd: "/".into(),
            env: Vec::new(),
            log_group: Arc::from("/aws/lambda/f"),
            role_policy: None,
            mounts: Vec::new(),
            tmp_mb: 512,
            network: crate::Network::Egress,
        })
    }

    #[test]
    fn a_warm_only_admission_without_an_idle_environment_counts_nothing() {
        let settings = Settings {
            scaling_rate_per_10s: 1,
            ..Settings::default()
        };
        let mut st = State::new(&settings);
        let s = spec();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                st.acquire_mode(&s, now, None, true),
                Err(Refusal::NoWarm)
            ));
        }
        assert_eq!(st.busy("f"), 0);
        assert_eq!(st.metrics("f").throttles, 0);
        assert!(st.pool_loads().is_empty(), "no environment counted");
        // The scaling rate (one new environment per 10 s) was not spent on them.
        let lease = st.acquire_mode(&s, now, None, false).unwrap();
        assert!(lease.env.is_none(), "room for a cold start");
    }

    #[test]
    fn cluster_figures_add_the_other_nodes_and_the_share_is_kept_apart() {
        let mut st = State::new(&Settings::default());
        let s = spec();
        let pool = st.pool(&s);
        pool.prov_requested = 5;
        pool.prov_target = 2;
        pool.prov_alive = 2;
        let local = st.provisioned_status(&s.pool_key, None).unwrap();
        assert_eq!((local.requested, local.available), (2, 2));
        let cluster = st.provisioned_status(&s.pool_key, Some(2)).unwrap();
        assert_eq!((cluster.requested, cluster.available), (5, 4));
        assert_eq!(cluster.status, "IN_PROGRESS");
        let cluster = st.provisioned_status(&s.pool_key, Some(3)).unwrap();
        assert_eq!((cluster.available, cluster.status), (5, "READY"));
        // A lower share with nothing idle stops nothing now (busy ones go when done).
        assert!(st.set_share(&s.pool_key, 1).is_empty());
        assert_eq!(st.provisioned_pools()[0].1, 5, "the request is unchanged");
    }
}
