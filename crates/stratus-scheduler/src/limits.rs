//! Throttle reasons and the per-function scaling-rate token bucket.

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
