//! Throttle reasons, the per-function scaling-rate token bucket, and the hook for
//! limits shared with other nodes ([`ConcurrencyLimiter`]).
//!
//! The scheduler's own counters (reserved, unreserved pool, account) always apply.
//! In a cluster a [`ConcurrencyLimiter`] is an extra gate after them: it answers
//! from the node's share of the cluster-wide pool without waiting, or says that the
//! share is used up and a (bounded, asynchronous) request for more is needed.
//! Without one, admission is exactly what it is on a single node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// Why a call was throttled; the `Reason` field of `TooManyRequestsException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// Over the function's reserved concurrency.
    ReservedFunctionConcurrentInvocationLimitExceeded,
    /// Over the unreserved pool or the account limit.
    ConcurrentInvocationLimitExceeded,
    /// Over the function's scaling rate (new environments per 10 s).
    FunctionInvocationRateLimitExceeded,
}

impl ThrottleReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
            Self::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Self::FunctionInvocationRateLimitExceeded => "FunctionInvocationRateLimitExceeded",
        }
    }
}

/// A concurrency pool shared by the nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitPool {
    /// The account's unreserved concurrency (the account limit minus every
    /// reservation), shared by all functions without reserved concurrency.
    Account,
    /// The reserved concurrency of one function.
    Reserved(Arc<str>),
}

/// What a [`ConcurrencyLimiter`] answers without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// A slot was taken; give it back with [`ConcurrencyLimiter::release`].
    Admitted,
    /// No slot, and none can be had now: throttle.
    Exhausted,
    /// The node's share is used up; [`ConcurrencyLimiter::acquire`] may get more.
    Ask,
}

/// A slot request that may wait: resolves to whether a slot was taken.
pub type SlotFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Concurrency limits that hold across the nodes of a cluster, consulted after the
/// scheduler's own counters on every admission and told of every release.
///
/// [`ConcurrencyLimiter::try_acquire`] and [`ConcurrencyLimiter::release`] run
/// under the scheduler's lock on the invocation path: they must be cheap, must not
/// block, and must not call back into the scheduler.
pub trait ConcurrencyLimiter: Send + Sync + std::fmt::Debug {
    /// Takes a slot of `pool` (whose cluster-wide limit is `limit`) from what the
    /// node already holds, without waiting.
    fn try_acquire(&self, pool: &LimitPool, limit: u32, now: Instant) -> Gate;

    /// Takes a slot of `pool`, asking the cluster for more if needed; waits a
    /// bounded time. Resolves to `false` when no slot could be had (throttle).
    fn acquire(&self, pool: LimitPool, limit: u32) -> SlotFuture;

    /// Gives back a slot taken by either method.
    fn release(&self, pool: &LimitPool);
}

/// A token bucket holding up to `capacity` tokens, refilled continuously at
/// `capacity` per 10 seconds. One token is one new on-demand environment.
///
/// In a cluster of `n` healthy nodes each node holds a share ([`TokenBucket::share`]):
/// it refills at `rate / n` per 10 seconds and holds at most `rate / n` tokens (at
/// least one, so that a rate below the number of nodes still starts environments),
/// so the nodes together start at most about `rate` per 10 seconds without asking
/// each other. One node (`n` = 1) is exactly the single node's bucket.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    /// Tokens added per second.
    refill: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    #[cfg(test)]
    pub(crate) fn new(capacity: u32) -> Self {
        Self::shared(capacity, 1)
    }

    /// A full bucket holding this node's share of `rate` among `nodes` nodes.
    pub(crate) fn shared(rate: u32, nodes: u32) -> Self {
        let (capacity, refill) = Self::share(rate, nodes);
        Self {
            capacity,
            refill,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// One node's share of `rate` new environments per 10 s among `nodes` nodes:
    /// (capacity, refill per second).
    pub(crate) fn share(rate: u32, nodes: u32) -> (f64, f64) {
        let per_node = rate as f64 / nodes.max(1) as f64;
        let capacity = if rate == 0 { 0.0 } else { per_node.max(1.0) };
        (capacity, per_node / 10.0)
    }

    /// Changes the share (the number of nodes changed): what was refilled until
    /// `now` counts at the old share, and the tokens held never exceed the new
    /// capacity.
    pub(crate) fn reshare(&mut self, rate: u32, nodes: u32, now: Instant) {
        self.refill_until(now);
        let (capacity, refill) = Self::share(rate, nodes);
        self.capacity = capacity;
        self.refill = refill;
        self.tokens = self.tokens.min(capacity);
    }

    fn refill_until(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.refill).min(self.capacity);
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill_until(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_empties_and_refills_continuously() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10);
        for _ in 0..10 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0), "empty after capacity");
        // 10 per 10 s = one per second.
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        assert!(b.try_take(t0 + Duration::from_millis(1000)));
        assert!(!b.try_take(t0 + Duration::from_millis(1000)));
        // Never more than capacity, however long it waited.
        let later = t0 + Duration::from_secs(3600);
        let taken = (0..20).filter(|_| b.try_take(later)).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn a_cluster_shares_the_rate_among_its_nodes() {
        // One node: the whole rate, as a single node has it.
        assert_eq!(TokenBucket::share(1000, 1), (1000.0, 100.0));
        assert_eq!(TokenBucket::share(1000, 0), (1000.0, 100.0));
        // Three nodes: a third each, for the burst and the refill.
        let (cap, refill) = TokenBucket::share(30, 3);
        assert_eq!((cap, refill), (10.0, 1.0));
        // Fewer than one per node: each still holds one token, refilled slowly.
        assert_eq!(TokenBucket::share(2, 4), (1.0, 0.05));
        assert_eq!(TokenBucket::share(0, 3), (0.0, 0.0));

        // Three buckets (three nodes) drained at once start `rate` environments
        // between them, then `rate` per 10 s.
        let t0 = Instant::now();
        let mut nodes: Vec<TokenBucket> = (0..3).map(|_| TokenBucket::shared(30, 3)).collect();
        for b in &mut nodes {
            b.last = t0;
        }
        let burst: usize = nodes
            .iter_mut()
            .map(|b| (0..100).filter(|_| b.try_take(t0)).count())
            .sum();
        assert_eq!(burst, 30);
        let t10 = t0 + Duration::from_secs(10);
        let next: usize = nodes
            .iter_mut()
            .map(|b| (0..100).filter(|_| b.try_take(t10)).count())
            .sum();
        assert_eq!(next, 30, "30 more after 10 s, across the three");
    }

    #[test]
    fn a_new_share_keeps_what_was_earned_but_never_more_than_it_holds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(30);
        b.last = t0;
        // A second and a third node join: a full bucket shrinks to a third.
        b.reshare(30, 3, t0);
        let taken = (0..100).filter(|_| b.try_take(t0)).count();
        assert_eq!(taken, 10);
        // Empty; 5 s at a third of the rate (1 a second) is 5 tokens ...
        b.reshare(30, 1, t0 + Duration::from_secs(5));
        // ... then two nodes die: 5 s more at the whole rate (3 a second) is 15.
        let t10 = t0 + Duration::from_secs(10);
        let taken = (0..100).filter(|_| b.try_take(t10)).count();
        assert_eq!(taken, 20);
    }
}
