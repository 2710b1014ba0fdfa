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
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            capacity: capacity as f64,
            tokens: capacity as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.capacity / 10.0).min(self.capacity);
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
}
