//! Provisioned concurrency: keep `target` environments of a version initialized
//! ahead of traffic (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`),
//! replace them when they die, never reap them, and back off when init keeps failing
//! (status `FAILED` with the reason after three failures in a row, retried later).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::env::{self, StartFailure};
use crate::{FunctionSpec, ProvisionedStatus, Scheduler};

impl Scheduler {
    /// Sets the provisioned target of `spec`'s pool and starts or stops environments
    /// to meet it. `0` removes the floor. With a [`crate::Placement`] installed (a
    /// cluster), `target` is the cluster's and this node keeps its share of it.
    pub fn set_provisioned(&self, spec: &Arc<FunctionSpec>, target: u32) {
        let share = self.share_of(spec, target);
        let surplus = {
            let mut st = self.inner.state.lock();
            let pool = st.pool(spec);
            pool.prov_requested = target;
            pool.prov_target = share;
            pool.prov_failures = 0;
            pool.prov_reason = None;
            st.take_surplus_provisioned(&spec.pool_key)
        };
        for env in surplus {
            env.destroy("provisioned concurrency lowered");
        }
        self.reconcile_provisioned(&spec.pool_key);
    }

    /// The provisioned state of the pool `pool_key`, if it exists.
    /// In a cluster, the figures are the cluster's: this node's environments plus
    /// those the other nodes report ([`crate::Placement::alive_elsewhere`]).
    pub fn provisioned_status(&self, pool_key: &str) -> Option<ProvisionedStatus> {
        let elsewhere = self.placement().map(|p| p.alive_elsewhere(pool_key));
        self.inner
            .state
            .lock()
            .provisioned_status(pool_key, elsewhere)
    }

    /// Provisioned environments of the pool `pool_key` that are busy now, and how
    /// many it has initialized: the two halves of ProvisionedConcurrencyUtilization
    /// (`None` when the pool has no provisioned environment alive).
    pub fn provisioned_usage(&self, pool_key: &str) -> Option<(u32, u32)> {
        self.inner.state.lock().provisioned_usage(pool_key)
    }

    /// Starts as many provisioned environments as the pool is missing.
    pub(crate) fn reconcile_provisioned(&self, pool_key: &str) {
        let (spec, missing) = {
            let mut st = self.inner.state.lock();
            let Some(pool) = st.pool_by_key(pool_key) else {
                return;
            };
            if pool.retired {
                return;
            }
            let have = pool.prov_alive + pool.prov_starting;
            let missing = pool.prov_target.saturating_sub(have);
            pool.prov_starting += missing;
            (pool.spec.clone(), missing)
        };
        for _ in 0..missing {
            let this = self.clone();
            let spec = spec.clone();
            tokio::spawn(async move { this.start_provisioned(spec).await });
        }
    }

    async fn start_provisioned(self, spec: Arc<FunctionSpec>) {
        if let Some(pool) = self.inner.state.lock().pool_by_key(&spec.pool_key) {
            pool.total_started();
        }
        let result = env::start(&self.inner, &spec, true).await;
        let backoff = match result {
            Ok((env, _)) => {
                if let Some(unneeded) = self.adopt_provisioned(&spec, env) {
                    unneeded.destroy("provisioned concurrency not needed");
                }
                return;
            }
            Err(failure) => self.provisioned_failed(&spec, failure),
        };
        if let Some(backoff) = backoff {
            tokio::time::sleep(backoff).await;
            if !self.inner.shutdown.is_set() {
                self.reconcile_provisioned(&spec.pool_key);
            }
        }
    }

    /// Puts a freshly initialized environment into the provisioned floor, or gives it
    /// back when the floor is already full.
    fn adopt_provisioned(
        &self,
        spec: &FunctionSpec,
        env: Arc<crate::env::Env>,
    ) -> Option<Arc<crate::env::Env>> {
        let mut st = self.inner.state.lock();
        let Some(pool) = st.pool_by_key(&spec.pool_key) else {
            return Some(env);
        };
        pool.prov_starting = pool.prov_starting.saturating_sub(1);
        pool.prov_failures = 0;
        pool.prov_reason = None;
        if pool.retired || pool.prov_alive >= pool.prov_target || self.inner.shutdown.is_set() {
            return Some(env);
        }
        pool.prov_alive += 1;
        env.prov_counted.store(true, Ordering::Relaxed);
        pool.add_idle_provisioned(env);
        None
    }

    /// Records an init failure and returns how long to wait before retrying.
    fn provisioned_failed(&self, spec: &FunctionSpec, failure: StartFailure) -> Option<Duration> {
        let mut st = self.inner.state.lock();
        let pool = st.pool_by_key(&spec.pool_key)?;
        pool.prov_starting = pool.prov_starting.saturating_sub(1);
        if matches!(failure, StartFailure::Spawn(_)) {
            pool.total_failed();
        }
        pool.prov_failures += 1;
        pool.prov_reason = Some(match failure {
            StartFailure::Spawn(m) => m,
            StartFailure::Init(body) => format!("{}: {}", body.error_type, body.error_message),
        });
        let exp = pool.prov_failures.min(7);
        Some(Duration::from_millis(250 << exp).min(Duration::from_secs(30)))
    }
}
