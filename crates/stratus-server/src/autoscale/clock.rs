//! The autoscaler's clock: every time decision it makes (which minute a sample
//! belongs to, when an alarm has seen enough datapoints, whether a cooldown is
//! over, when a scheduled action is due) reads [`Clock::now`] and waits with
//! [`Clock::sleep`]. The server runs on [`SystemClock`]; tests and the benchmark
//! run on an [`AcceleratedClock`], where one real second can be a simulated minute,
//! so fifteen-minute scale-in alarms play out in seconds.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Where the autoscaler reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current (possibly simulated) UTC time.
    fn now(&self) -> OffsetDateTime;
    /// Waits `d` of this clock's time.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// Simulated seconds per real second (1 for real time).
    fn speed(&self) -> f64 {
        1.0
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Simulated time running `speed` times faster than real time, from `origin` at the
/// moment it was made.
#[derive(Debug, Clone)]
pub struct AcceleratedClock {
    origin: OffsetDateTime,
    started: Instant,
    speed: f64,
}

impl AcceleratedClock {
    /// Simulated time starting at `origin`, `speed` simulated seconds per real
    /// second (`60.0`: a real second is a simulated minute). A speed below 1 is 1.
    pub fn new(origin: OffsetDateTime, speed: f64) -> Self {
        Self {
            origin,
            started: Instant::now(),
            speed: if speed.is_finite() && speed >= 1.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// Simulated time that ran `speed` times faster than real time since the real
    /// instant `anchor`: every process given the same anchor and speed reads the
    /// same time (the nodes of a cluster anchor at the cluster's creation).
    /// Should the simulated time leave the calendar's range (an anchor decades
    /// back at a high speed), the clock starts at the real time instead.
    pub fn anchored(anchor: OffsetDateTime, speed: f64) -> Self {
        let now = OffsetDateTime::now_utc();
        let clock = Self::new(anchor, speed);
        let since = (now - anchor).max(time::Duration::ZERO);
        let origin = time::Duration::checked_seconds_f64(since.as_seconds_f64() * clock.speed)
            .and_then(|d| anchor.checked_add(d))
            .unwrap_or(now);
        Self { origin, ..clock }
    }
}

impl Clock for AcceleratedClock {
    fn now(&self) -> OffsetDateTime {
        let simulated = self.started.elapsed().as_secs_f64() * self.speed;
        self.origin + Duration::from_secs_f64(simulated)
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d.div_f64(self.speed)))
    }

    fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accelerated_time_runs_faster_than_real_time() {
        let origin = time::macros::datetime!(2026-01-01 00:00 UTC);
        let clock = AcceleratedClock::new(origin, 600.0);
        let real = Instant::now();
        clock.sleep(Duration::from_secs(60)).await;
        // A simulated minute is a tenth of a real second at 600x.
        assert!(real.elapsed() < Duration::from_secs(2));
        assert!(clock.now() - origin >= time::Duration::seconds(60));
    }

    #[test]
    fn clocks_anchored_alike_read_the_same_time_whenever_they_were_made() {
        let anchor = OffsetDateTime::now_utc() - time::Duration::seconds(10);
        let a = AcceleratedClock::anchored(anchor, 60.0);
        std::thread::sleep(Duration::from_millis(300));
        let b = AcceleratedClock::anchored(anchor, 60.0);
        // Ten real seconds since the anchor are ten simulated minutes.
        assert!(a.now() - anchor >= time::Duration::minutes(10));
        let gap = (a.now() - b.now()).abs();
        assert!(gap < time::Duration::seconds(3), "{gap}");
        // Out of the calendar's range: real time, no panic.
        let far = AcceleratedClock::anchored(time::macros::datetime!(1970-01-01 00:00 UTC), 3600.0);
        assert!((far.now() - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(1));
    }
}
