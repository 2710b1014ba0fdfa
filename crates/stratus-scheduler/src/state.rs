//! All scheduling accounting, behind the scheduler's one lock: pools of idle
//! environments, busy counts per function, the unreserved pool and the account limit,
//! scaling-rate buckets, provisioned targets and init-failure back-off.
//! Nothing here awaits or does I/O; callers destroy environments after unlocking.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_runtime_api::ErrorBody;

use crate::env::Env;
use crate::limits::{ConcurrencyLimiter, Gate, LimitPool, ThrottleReason, TokenBucket};
use crate::{FunctionMetrics, FunctionSpec, ProvisionedStatus, Settings};

#[derive(Debug)]
struct FnState {
    busy: u32,
    reserved: Option<u32>,
    bucket: TokenBucket,
    metrics: FunctionMetrics,
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) spec: Arc<FunctionSpec>,
    idle_prov: Vec<Arc<Env>>,
    idle_od: Vec<(Arc<Env>, Instant)>,
    /// Live environments of this pool, starting ones included.
    total: u32,
    pub(crate) prov_target: u32,
    /// The provisioned count asked of the whole cluster (`prov_target` is this
    /// node's share of it, see `placement.rs`); equal to `prov_target` on a single
    /// node.
    pub(crate) prov_requested: u32,
    pub(crate) prov_alive: u32,
    pub(crate) prov_starting: u32,
    pub(crate) prov_failures: u32,
    pub(crate) prov_reason: Option<String>,
    init_failures: u32,
    backoff_until: Option<Instant>,
    last_init_error: Option<ErrorBody>,
    pub(crate) retired: bool,
}

impl Pool {
    fn new(spec: Arc<FunctionSpec>) -> Self {
        Self {
            spec,
            idle_prov: Vec::new(),
            idle_od: Vec::new(),
            total: 0,
            prov_target: 0,
            prov_requested: 0,
            prov_alive: 0,
            prov_starting: 0,
            prov_failures: 0,
            prov_reason: None,
            init_failures: 0,
            backoff_until: None,
            last_init_error: None,
            retired: false,
        }
    }
}

impl Pool {
    /// A provisioned environment is being started.
    pub(crate) fn total_started(&mut self) {
        self.total += 1;
    }

    /// A start failed before any process existed.
    pub(crate) fn total_failed(&mut self) {
        self.total = self.total.saturating_sub(1);
    }

    pub(crate) fn add_idle_provisioned(&mut self, env: Arc<Env>) {
        self.idle_prov.push(env);
    }
}

/// A concurrency slot held by one invocation.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) env: Option<Arc<Env>>,
    /// The environment handed out is a provisioned one.
    pub(crate) provisioned: bool,
    /// The pool has provisioned concurrency, but this lease went on demand.
    pub(crate) spillover: bool,
    counted_unreserved: bool,
    /// The cluster-wide slot this lease holds, when a limiter is installed.
    cluster: Option<LimitPool>,
}

/// Why no slot was given.
#[derive(Debug)]
pub(crate) enum Refusal {
    Throttled(ThrottleReason),
    /// Cold starts of this pool are backing off after repeated init failures.
    BackingOff(ErrorBody),
    /// Asked for a warm environment only, and none is idle.
    NoWarm,
    /// The local limits allow it, but the node's share of the cluster-wide pool is
    /// used up: ask the limiter (off the lock), then acquire again with the slot.
    Ask(ClusterAsk),
}

/// A cluster-wide slot to wait for (see [`Refusal::Ask`]).
#[derive(Debug)]
pub(crate) struct ClusterAsk {
    pub(crate) limiter: Arc<dyn ConcurrencyLimiter>,
    pub(crate) pool: LimitPool,
    pub(crate) limit: u32,
    /// The throttle reason if no slot comes.
    pub(crate) reason: ThrottleReason,
}

#[derive(Debug)]
pub(crate) struct State {
    account: u32,
    unreserved_minimum: u32,
    scaling_rate: u32,
    /// The healthy nodes sharing the scaling rate (1 on a single node).
    scaling_nodes: u32,
    functions: HashMap<Arc<str>, FnState>,
    pools: HashMap<Arc<str>, Pool>,
    unreserved_busy: u32,
    reserved_total: u32,
    /// Cluster-wide limits; `None` on a single node (the default).
    limiter: Option<Arc<dyn ConcurrencyLimiter>>,
}

impl State {
    pub(crate) fn new(s: &Settings) -> Self {
        Self {
            account: s.account_concurrency,
            unreserved_minimum: s.unreserved_minimum,
            scaling_rate: s.scaling_rate_per_10s,
            scaling_nodes: 1,
            functions: HashMap::new(),
            pools: HashMap::new(),
            unreserved_busy: 0,
            reserved_total: 0,
            limiter: None,
        }
    }

    pub(crate) fn set_limiter(&mut self, limiter: Option<Arc<dyn ConcurrencyLimiter>>) {
        self.limiter = limiter;
    }

    /// Shares the scaling rate among `nodes` healthy nodes (see
    /// [`TokenBucket::share`]); every function's bucket takes the new share.
    pub(crate) fn set_scaling_nodes(&mut self, nodes: u32, now: Instant) {
        let nodes = nodes.max(1);
        if nodes == self.scaling_nodes {
            return;
        }
        self.scaling_nodes = nodes;
        for f in self.functions.values_mut() {
            f.bucket.reshare(self.scaling_rate, nodes, now);
        }
    }

    /// Counts a call throttled outside [`State::acquire`] (no cluster slot came).
    pub(crate) fn count_throttle(&mut self, function: &Arc<str>) {
        self.function(function).metrics.throttles += 1;
    }

    fn function(&mut self, name: &Arc<str>) -> &mut FnState {
        let (rate, nodes) = (self.scaling_rate, self.scaling_nodes);
        self.functions
            .entry(name.clone())
            .or_insert_with(|| FnState {
                busy: 0,
                reserved: None,
                bucket: TokenBucket::shared(rate, nodes),
                metrics: FunctionMetrics::default(),
            })
    }

    pub(crate) fn pool(&mut self, spec: &Arc<FunctionSpec>) -> &mut Pool {
        self.pools
            .entry(spec.pool_key.clone())
            .or_insert_with(|| Pool::new(spec.clone()))
    }

    pub(crate) fn pool_by_key(&mut self, key: &str) -> Option<&mut Pool> {
        self.pools.get_mut(key)
    }

    pub(crate) fn set_reserved(&mut self, function: &str, reserved: Option<u32>) {
        let name: Arc<str> = Arc::from(function);
        let f = self.function(&name);
        let old = std::mem::replace(&mut f.reserved, reserved);
        self.reserved_total = self.reserved_total - old.unwrap_or(0) + reserved.unwrap_or(0);
    }

    /// Drops what is kept about a deleted function (its reservation, counters and
    /// scaling bucket), so creating and deleting functions under ever new names leaves
    /// nothing behind. An invocation still running re-creates a blank entry when it
    /// ends; the next deletion of that name removes it.
    pub(crate) fn forget(&mut self, function: &str) {
        self.set_reserved(function, None);
        self.functions.remove(function);
    }

    pub(crate) fn unreserved_available(&self, excluding: &str) -> u32 {
        let others: u32 = self
            .functions
            .iter()
            .filter(|(name, _)| &***name != excluding)
            .filter_map(|(_, f)| f.reserved)
            .sum();
        self.account
            .saturating_sub(self.unreserved_minimum)
            .saturating_sub(others)
    }

    pub(crate) fn metrics(&self, function: &str) -> FunctionMetrics {
        self.functions
            .get(function)
            .map(|f| FunctionMetrics {
                concurrent: f.busy,
                ..f.metrics.clone()
            })
            .unwrap_or_default()
    }

    pub(crate) fn gauges(&self) -> crate::Gauges {
        crate::Gauges {
            unreserved_busy: self.unreserved_busy,
            busy: self
                .functions
                .iter()
                .map(|(name, f)| (name.clone(), f.busy))
                .collect(),
            provisioned: self
                .pools
                .values()
                .filter(|p| p.prov_target > 0 && !p.retired)
                .map(|p| {
                    // Alive provisioned environments that are not idle are busy.
                    let busy = p.prov_alive.saturating_sub(p.idle_prov.len() as u32);
                    let s = &p.spec;
                    (
                        s.function_name.clone(),
                        s.version.clone(),
                        p.prov_target,
                        busy,
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn busy(&self, function: &str) -> u32 {
        self.functions.get(function).map(|f| f.busy).unwrap_or(0)
    }

    /// Takes a concurrency slot and, when there is one, an idle environment
    /// (provisioned first, then the most recently used on-demand one).
    ///
    /// `held` is a cluster-wide slot the caller already took (after
    /// [`Refusal::Ask`]); the lease keeps it, or it is given back on refusal.
    #[cfg(test)]
    pub(crate) fn acquire(
        &mut self,
        spec: &Arc<FunctionSpec>,
        now: Instant,
        held: Option<LimitPool>,
    ) -> Result<Lease, Refusal> {
        self.acquire_mode(spec, now, held, false)
    }

    /// [`State::acquire`]; with `warm_only`, refuses with [`Refusal::NoWarm`]
    /// rather than make room for a cold start.
    pub(crate) fn acquire_mode(
        &mut self,
        spec: &Arc<FunctionSpec>,
        now: Instant,
        held: Option<LimitPool>,
        warm_only: bool,
    ) -> Result<Lease, Refusal> {
        let r = self.try_acquire(spec, now, held, warm_only);
        if let Err(Refusal::Throttled(_)) = r {
            self.function(&spec.function_name).metrics.throttles += 1;
        }
        r
    }

    fn try_acquire(
        &mut self,
        spec: &Arc<FunctionSpec>,
        now: Instant,
        held: Option<LimitPool>,
        warm_only: bool,
    ) -> Result<Lease, Refusal> {
        let unreserved_cap = self.account.saturating_sub(self.reserved_total);
        let unreserved_busy = self.unreserved_busy;
        let f = self.function(&spec.function_name);
        let reserved = f.reserved;
        let local = match reserved {
            Some(r) if f.busy >= r => {
                Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            }
            Some(_) => Ok(false),
            None if unreserved_busy >= unreserved_cap => {
                Err(ThrottleReason::ConcurrentInvocationLimitExceeded)
            }
            None => Ok(true),
        };
        let counted_unreserved = match local {
            Ok(counted) => counted,
            Err(reason) => {
                if let (Some(limiter), Some(slot)) = (&self.limiter, &held) {
                    limiter.release(slot);
                }
                return Err(Refusal::Throttled(reason));
            }
        };
        // The cluster-wide gate, after the local limits (single node: `None`).
        let cluster = match (&self.limiter, held) {
            (_, Some(slot)) => Some(slot),
            (None, None) => None,
            (Some(limiter), None) => {
                let (slot, limit, reason) = match reserved {
                    Some(r) => (
                        LimitPool::Reserved(spec.function_name.clone()),
                        r,
                        ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
                    ),
                    None => (
                        LimitPool::Account,
                        unreserved_cap,
                        ThrottleReason::ConcurrentInvocationLimitExceeded,
                    ),
                };
                match limiter.try_acquire(&slot, limit, now) {
                    Gate::Admitted => Some(slot),
                    Gate::Exhausted => return Err(Refusal::Throttled(reason)),
                    Gate::Ask => {
                        return Err(Refusal::Ask(ClusterAsk {
                            limiter: limiter.clone(),
                            pool: slot,
                            limit,
                            reason,
                        }))
                    }
                }
            }
        };
        let r = self.take_env(spec, now, warm_only);
        if r.is_err() {
            if let (Some(limiter), Some(slot)) = (&self.limiter, &cluster) {
                limiter.release(slot);
            }
        }
        let (env, provisioned, spillover) = r?;
        let f = self.function(&spec.function_name);
        f.busy += 1;
        if counted_unreserved {
            self.unreserved_busy += 1;
        }
        Ok(Lease {
            env,
            provisioned,
            spillover,
            counted_unreserved,
            cluster,
        })
    }

    /// An idle environment of `spec` (provisioned first), or room to start one:
    /// (environment, provisioned, spillover).
    fn take_env(
        &mut self,
        spec: &Arc<FunctionSpec>,
        now: Instant,
        warm_only: bool,
    ) -> Result<(Option<Arc<Env>>, bool, bool), Refusal> {
        let pool = self.pool(spec);
        let prov_env = pool.idle_prov.pop();
        let provisioned = prov_env.is_some();
        let spillover = !provisioned && pool.prov_target > 0;
        let env = prov_env.or_else(|| pool.idle_od.pop().map(|(env, _)| env));
        if env.is_none() && warm_only {
            return Err(Refusal::NoWarm);
        }
        if env.is_none() {
            if let (Some(until), Some(err)) = (pool.backoff_until, &pool.last_init_error) {
                if now < until {
                    return Err(Refusal::BackingOff(err.clone()));
                }
            }
            let f = self.function(&spec.function_name);
            if !f.bucket.try_take(now) {
                return Err(Refusal::Throttled(
                    ThrottleReason::FunctionInvocationRateLimitExceeded,
                ));
            }
            self.pool(spec).total += 1;
        }
        Ok((env, provisioned, spillover))
    }

    /// Finds `lease` a new environment after its own died before its runtime fetched
    /// the event (see `invoke.rs`): the slot (busy counts, cluster slot) stays as it
    /// is. An idle one when `idle_ok` (provisioned first), else room to start one; no
    /// rate token is taken, the invocation was admitted already. Refuses with the
    /// last init error while cold starts back off.
    pub(crate) fn retake_env(
        &mut self,
        spec: &Arc<FunctionSpec>,
        lease: &mut Lease,
        now: Instant,
        idle_ok: bool,
    ) -> Result<(), ErrorBody> {
        let pool = self.pool(spec);
        let (env, provisioned) = if !idle_ok {
            (None, false)
        } else if let Some(env) = pool.idle_prov.pop() {
            (Some(env), true)
        } else {
            (pool.idle_od.pop().map(|(env, _)| env), false)
        };
        if env.is_none() {
            if let (Some(until), Some(err)) = (pool.backoff_until, &pool.last_init_error) {
                if now < until {
                    return Err(err.clone());
                }
            }
            pool.total += 1;
        }
        lease.spillover = !provisioned && pool.prov_target > 0;
        lease.provisioned = provisioned;
        lease.env = env;
        Ok(())
    }

    /// Gives the slot back. A live `env` goes back to its pool unless the pool is
    /// retired or has more provisioned environments than asked for; then it is
    /// returned to the caller to destroy.
    pub(crate) fn release(
        &mut self,
        spec: &Arc<FunctionSpec>,
        lease: Lease,
        env: Option<Arc<Env>>,
        now: Instant,
        outcome: Option<(bool, std::time::Duration)>,
    ) -> Option<Arc<Env>> {
        let f = self.function(&spec.function_name);
        f.busy = f.busy.saturating_sub(1);
        f.metrics.invocations += 1;
        match outcome {
            Some((error, duration)) => {
                f.metrics.errors += u64::from(error);
                f.metrics.duration_ms_total += duration.as_secs_f64() * 1000.0;
            }
            None => f.metrics.errors += 1,
        }
        if lease.counted_unreserved {
            self.unreserved_busy = self.unreserved_busy.saturating_sub(1);
        }
        if let (Some(limiter), Some(slot)) = (&self.limiter, &lease.cluster) {
            limiter.release(slot);
        }
        let env = env?;
        if env.link.is_dead() {
            return None; // env_exited accounts for it
        }
        let Some(pool) = self.pools.get_mut(&spec.pool_key) else {
            return Some(env);
        };
        if pool.retired {
            return Some(env);
        }
        if env.prov_counted.load(Ordering::Relaxed) {
            if pool.prov_alive > pool.prov_target {
                return Some(env);
            }
            pool.idle_prov.push(env);
        } else {
            pool.idle_od.push((env, now));
        }
        None
    }

    /// A cold start of `spec` failed before its environment existed (spawn error).
    pub(crate) fn start_failed(&mut self, key: &str) {
        if let Some(pool) = self.pools.get_mut(key) {
            pool.total = pool.total.saturating_sub(1);
        }
    }

    /// Records the result of an on-demand init, driving the back-off.
    pub(crate) fn record_init(&mut self, key: &str, result: Result<(), &ErrorBody>, now: Instant) {
        let Some(pool) = self.pools.get_mut(key) else {
            return;
        };
        match result {
            Ok(()) => {
                pool.init_failures = 0;
                pool.backoff_until = None;
                pool.last_init_error = None;
            }
            Err(e) => {
                pool.init_failures += 1;
                pool.last_init_error = Some(e.clone());
                // Two failures in a row are not spinning yet; from the third on,
                // cold starts wait 1 s, 2 s, 4 s ... up to 30 s between attempts.
                if pool.init_failures >= 3 {
                    let exp = (pool.init_failures - 3).min(5);
                    pool.backoff_until =
                        Some(now + Duration::from_secs(1 << exp).min(Duration::from_secs(30)));
                }
            }
        }
    }

    /// The environment's process is gone: forget it. Returns whether the pool needs
    /// a provisioned replacement.
    pub(crate) fn env_exited(&mut self, env: &Env) -> bool {
        let Some(pool) = self.pools.get_mut(&env.pool_key) else {
            return false;
        };
        pool.total = pool.total.saturating_sub(1);
        pool.idle_prov.retain(|e| e.id != env.id);
        pool.idle_od.retain(|(e, _)| e.id != env.id);
        let mut replace = false;
        if env.prov_counted.swap(false, Ordering::Relaxed) {
            pool.prov_alive = pool.prov_alive.saturating_sub(1);
            replace = !pool.retired && pool.prov_alive + pool.prov_starting < pool.prov_target;
        }
        if pool.retired && pool.total == 0 {
            self.pools.remove(&env.pool_key);
        }
        replace
    }

    /// Marks pools retired and returns their idle environments to destroy.
    pub(crate) fn retire(&mut self, prefix: &str) -> Vec<Arc<Env>> {
        let mut out = Vec::new();
        for (key, pool) in self.pools.iter_mut() {
            if key.starts_with(prefix) {
                pool.retired = true;
                pool.prov_target = 0;
                pool.prov_requested = 0;
                out.append(&mut pool.idle_prov);
                out.extend(pool.idle_od.drain(..).map(|(e, _)| e));
            }
        }
        self.pools.retain(|_, p| !(p.retired && p.total == 0));
        out
    }

    /// Every idle environment, for shutdown (busy ones die with their processes).
    pub(crate) fn drain_all(&mut self) -> Vec<Arc<Env>> {
        let mut out = Vec::new();
        for pool in self.pools.values_mut() {
            pool.retired = true;
            pool.prov_target = 0;
            pool.prov_requested = 0;
            out.append(&mut pool.idle_prov);
            out.extend(pool.idle_od.drain(..).map(|(e, _)| e));
        }
        out
    }

    /// On-demand environments idle for longer than `keep_alive`.
    pub(crate) fn take_expired(&mut self, keep_alive: Duration) -> Vec<Arc<Env>> {
        let now = Instant::now();
        let mut out = Vec::new();
        for pool in self.pools.values_mut() {
            let (old, fresh): (Vec<_>, Vec<_>) = pool
                .idle_od
                .drain(..)
                .partition(|(_, since)| now.duration_since(*since) >= keep_alive);
            pool.idle_od = fresh;
            out.extend(old.into_iter().map(|(e, _)| e));
        }
        out
    }

    /// Destroys surplus idle provisioned environments after the target went down.
    pub(crate) fn take_surplus_provisioned(&mut self, key: &str) -> Vec<Arc<Env>> {
        let Some(pool) = self.pools.get_mut(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while pool.prov_alive > pool.prov_target {
            let Some(env) = pool.idle_prov.pop() else {
                break;
            };
            env.prov_counted.store(false, Ordering::Relaxed);
            pool.prov_alive -= 1;
            out.push(env);
        }
        out
    }

    /// (busy, alive) provisioned environments of a pool; idle ones wait in
    /// `idle_prov`, so the rest of the alive ones are running an invocation.
    pub(crate) fn provisioned_usage(&self, key: &str) -> Option<(u32, u32)> {
        let pool = self.pools.get(key)?;
        let alive = pool.prov_alive;
        if alive == 0 {
            return None;
        }
        let idle = u32::try_from(pool.idle_prov.len()).unwrap_or(u32::MAX);
        Some((alive.saturating_sub(idle), alive))
    }

    /// `elsewhere`: provisioned environments of this pool alive on the other nodes
    /// of a cluster (`None` on a single node), so the figures are the cluster's.
    pub(crate) fn provisioned_status(
        &self,
        key: &str,
        elsewhere: Option<u32>,
    ) -> Option<ProvisionedStatus> {
        let pool = self.pools.get(key)?;
        if let Some(others) = elsewhere {
            let alive = pool.prov_alive.saturating_add(others);
            let requested = pool.prov_requested;
            let status = if alive >= requested {
                "READY"
            } else if pool.prov_failures >= 3 {
                "FAILED"
            } else {
                "IN_PROGRESS"
            };
            return Some(ProvisionedStatus {
                requested,
                available: alive.min(requested),
                status,
                reason: (status == "FAILED")
                    .then(|| pool.prov_reason.clone())
                    .flatten(),
            });
        }
        let status = if pool.prov_alive >= pool.prov_target {
            "READY"
        } else if pool.prov_failures >= 3 {
            "FAILED"
        } else {
            "IN_PROGRESS"
        };
        Some(ProvisionedStatus {
            requested: pool.prov_target,
            available: pool.prov_alive.min(pool.prov_target),
            status,
            reason: (status == "FAILED")
                .then(|| pool.prov_reason.clone())
                .flatten(),
        })
    }

    /// Pools with a provisioned floor asked of them (live ones): spec, requested.
    pub(crate) fn provisioned_pools(&self) -> Vec<(Arc<FunctionSpec>, u32)> {
        self.pools
            .values()
            .filter(|p| !p.retired && (p.prov_requested > 0 || p.prov_target > 0))
            .map(|p| (p.spec.clone(), p.prov_requested))
            .collect()
    }

    pub(crate) fn pool_spec(&self, key: &str) -> Option<Arc<FunctionSpec>> {
        self.pools
            .get(key)
            .filter(|p| !p.retired)
            .map(|p| p.spec.clone())
    }

    /// What each live pool has: environments, idle ones, provisioned ones alive.
    pub(crate) fn pool_loads(&self) -> Vec<crate::PoolLoad> {
        self.pools
            .values()
            .filter(|p| !p.retired && p.total > 0)
            .map(|p| crate::PoolLoad {
                pool_key: p.spec.pool_key.clone(),
                total: p.total,
                idle: (p.idle_prov.len() + p.idle_od.len()) as u32,
                provisioned: p.prov_alive,
                idle_provisioned: p.idle_prov.len() as u32,
            })
            .collect()
    }

    /// Sets a pool's provisioned target (this node's share) without touching what
    /// was requested; returns the idle provisioned environments now surplus.
    pub(crate) fn set_share(&mut self, key: &str, share: u32) -> Vec<Arc<Env>> {
        match self.pools.get_mut(key) {
            Some(pool) if !pool.retired && pool.prov_target != share => {
                pool.prov_target = share;
                self.take_surplus_provisioned(key)
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn env_counts(&self) -> HashMap<String, (u32, u32)> {
        self.pools
            .iter()
            .map(|(k, p)| {
                (
                    k.to_string(),
                    (p.total, (p.idle_prov.len() + p.idle_od.len()) as u32),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> Arc<FunctionSpec> {
        Arc::new(FunctionSpec {
            pool_key: Arc::from(format!("{name}@1")),
            function_name: Arc::from(name),
            version: Arc::from("1"),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            program: "/bin/true".into(),
            args: Vec::new(),
            cwd: "/".into(),
            env: Vec::new(),
            log_group: Arc::from(format!("/aws/lambda/{name}")),
            role_policy: None,
            mounts: Vec::new(),
            tmp_mb: 512,
            network: crate::Network::Egress,
        })
    }

    /// A limiter that answers a fixed gate and records what it was asked.
    #[derive(Debug, Default)]
    struct Recording {
        answer: parking_lot::Mutex<Option<Gate>>,
        asked: parking_lot::Mutex<Vec<(LimitPool, u32)>>,
        held: std::sync::atomic::AtomicI32,
    }

    impl ConcurrencyLimiter for Recording {
        fn try_acquire(&self, pool: &LimitPool, limit: u32, _now: Instant) -> Gate {
            self.asked.lock().push((pool.clone(), limit));
            let gate = self.answer.lock().unwrap_or(Gate::Admitted);
            if gate == Gate::Admitted {
                self.held.fetch_add(1, Ordering::SeqCst);
            }
            gate
        }
        fn acquire(&self, _pool: LimitPool, _limit: u32) -> crate::SlotFuture {
            Box::pin(async { false })
        }
        fn release(&self, _pool: &LimitPool) {
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn three_nodes_each_start_a_third_of_the_scaling_rate() {
        let settings = Settings {
            scaling_rate_per_10s: 6,
            ..Settings::default()
        };
        let now = Instant::now();
        let cold_starts = |state: &mut State, f: &Arc<FunctionSpec>| {
            (0..10)
                .map(|_| state.acquire(f, now, None))
                .filter(|r| r.is_ok())
                .count()
        };
        let mut single = State::new(&settings);
        assert_eq!(cold_starts(&mut single, &spec("f")), 6);
        let mut node = State::new(&settings);
        // A function used before the share was known is reshared too.
        assert_eq!(cold_starts(&mut node, &spec("old")), 6);
        node.set_scaling_nodes(3, now);
        assert_eq!(cold_starts(&mut node, &spec("new")), 2);
        assert!(matches!(
            node.acquire(&spec("new"), now, None),
            Err(Refusal::Throttled(
                ThrottleReason::FunctionInvocationRateLimitExceeded
            ))
        ));
        // The function used before the share was known holds a third now too.
        let t10 = now + Duration::from_secs(10);
        let old = (0..10)
            .filter(|_| node.acquire(&spec("old"), t10, None).is_ok())
            .count();
        assert_eq!(old, 2);
        // Back to one node: the whole rate again.
        node.set_scaling_nodes(1, t10);
        let t20 = now + Duration::from_secs(20);
        let more = (0..10)
            .filter(|_| node.acquire(&spec("new"), t20, None).is_ok())
            .count();
        assert_eq!(more, 6);
    }

    #[test]
    fn the_cluster_gate_comes_after_the_local_limits_and_gets_every_slot_back() {
        let settings = Settings {
            account_concurrency: 50,
            unreserved_minimum: 10,
            scaling_rate_per_10s: 2,
            ..Settings::default()
        };
        let mut state = State::new(&settings);
        let limiter = Arc::new(Recording::default());
        state.set_limiter(Some(limiter.clone()));
        state.set_reserved("r", Some(2));
        let (r, u) = (spec("r"), spec("u"));
        let now = Instant::now();

        // Pools and limits: the reservation, and the account minus reservations.
        let a = state.acquire(&r, now, None).unwrap();
        let b = state.acquire(&u, now, None).unwrap();
        assert_eq!(
            *limiter.asked.lock(),
            vec![
                (LimitPool::Reserved(Arc::from("r")), 2),
                (LimitPool::Account, 48)
            ]
        );
        assert_eq!(limiter.held.load(Ordering::SeqCst), 2);

        // The local limits refuse first: the gate is not asked.
        let _c = state.acquire(&r, now, None).unwrap();
        assert!(matches!(
            state.acquire(&r, now, None),
            Err(Refusal::Throttled(
                ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
            ))
        ));
        assert_eq!(limiter.asked.lock().len(), 3);

        // A slot taken from the gate goes back when a later check refuses (here the
        // scaling rate: two new environments per 10 s, both taken).
        let _d = state.acquire(&u, now, None).unwrap();
        let held = limiter.held.load(Ordering::SeqCst);
        assert!(matches!(
            state.acquire(&u, now, None),
            Err(Refusal::Throttled(
                ThrottleReason::FunctionInvocationRateLimitExceeded
            ))
        ));
        assert_eq!(limiter.held.load(Ordering::SeqCst), held);

        // The gate's answers map to refusals with the pool's reason.
        *limiter.answer.lock() = Some(Gate::Exhausted);
        assert!(matches!(
            state.acquire(&u, now, None),
            Err(Refusal::Throttled(
                ThrottleReason::ConcurrentInvocationLimitExceeded
            ))
        ));
        *limiter.answer.lock() = Some(Gate::Ask);
        let Err(Refusal::Ask(ask)) = state.acquire(&u, now, None) else {
            panic!("expected Ask");
        };
        assert_eq!(ask.pool, LimitPool::Account);
        assert_eq!(
            ask.reason,
            ThrottleReason::ConcurrentInvocationLimitExceeded
        );
        assert_eq!(
            state.metrics("u").throttles,
            2,
            "an Ask is not a throttle yet"
        );

        // Releases give the slots back.
        state.release(&r, a, None, now, None);
        state.release(&u, b, None, now, None);
        assert_eq!(
            limiter.held.load(Ordering::SeqCst),
            2,
            "the leases not released"
        );
    }

    #[test]
    fn without_a_limiter_a_lease_holds_no_cluster_slot() {
        let mut state = State::new(&Settings::default());
        let lease = state.acquire(&spec("f"), Instant::now(), None).unwrap();
        assert!(lease.cluster.is_none());
    }

    #[test]
    fn deleted_functions_leave_no_state() {
        let mut state = State::new(&Settings::default());
        for i in 0..100 {
            let name = format!("f{i}");
            state.set_reserved(&name, Some(3));
            state.forget(&name);
        }
        assert!(state.functions.is_empty());
        assert_eq!(state.reserved_total, 0);
        assert_eq!(state.unreserved_available("x"), 900);
    }

    #[test]
    fn a_lease_dispatched_again_keeps_its_slot_and_counts_nothing_twice() {
        let mut state = State::new(&Settings::default());
        state.set_reserved("f", Some(2));
        let f = spec("f");
        let now = Instant::now();
        let mut lease = state.acquire(&f, now, None).unwrap();
        assert!(lease.env.is_none(), "a cold start");
        assert_eq!(state.busy("f"), 1);
        assert_eq!(state.pool(&f).total, 1);
        // Its environment died before fetching the event: the watcher forgets it...
        state.pool(&f).total -= 1;
        // ...and the event gets room for a new one, in the same slot.
        state.retake_env(&f, &mut lease, now, true).unwrap();
        assert!(lease.env.is_none());
        assert_eq!(state.busy("f"), 1, "the slot is not taken twice");
        assert_eq!(state.pool(&f).total, 1);
        // A second caller still fits the reservation of 2, a third does not.
        let other = state.acquire(&f, now, None).unwrap();
        assert!(matches!(
            state.acquire(&f, now, None),
            Err(Refusal::Throttled(_))
        ));
        state.release(&f, other, None, now, Some((false, Duration::ZERO)));
        state.release(&f, lease, None, now, Some((false, Duration::ZERO)));
        assert_eq!(state.busy("f"), 0, "every slot back");
        assert_eq!(state.metrics("f").invocations, 2, "each invocation once");
    }

    #[test]
    fn a_lease_dispatched_again_during_init_back_off_gets_the_init_error() {
        let mut state = State::new(&Settings::default());
        let f = spec("f");
        let now = Instant::now();
        let mut lease = state.acquire(&f, now, None).unwrap();
        let err = ErrorBody::new(
            "Runtime.ExitError",
            "Error: Runtime exited with error: exit status 3",
        );
        for _ in 0..3 {
            state.record_init(&f.pool_key, Err(&err), now);
        }
        let refused = state.retake_env(&f, &mut lease, now, true).unwrap_err();
        assert_eq!(refused.error_message, err.error_message);
        state.release(&f, lease, None, now, None);
        assert_eq!(state.busy("f"), 0);
    }
}
