//! Target tracking, as Application Auto Scaling runs it for Lambda provisioned
//! concurrency, as pure functions of the metric's per-minute datapoints.
//!
//! A target tracking policy is two CloudWatch alarms on
//! ProvisionedConcurrencyUtilization with a one-minute period:
//! - **AlarmHigh**: the last [`HIGH_DATAPOINTS`] (3) datapoints all above the target
//!   value: scale out at once, proportionally to the metric;
//! - **AlarmLow**: the last [`LOW_DATAPOINTS`] (15) datapoints all below
//!   [`LOW_THRESHOLD`] (90 %) of the target value: scale in, slowly.
//!
//! The new capacity is `ceil(current * metric / target)`, clamped to the target's
//! [min, max]. Cooldowns as AAS applies them: within a scale-out cooldown another
//! scale-out counts the capacity the first one added (it scales only past it);
//! within a scale-in cooldown no scale-in happens, and a scale-out ends that
//! cooldown early. A minute without a datapoint (no provisioned environment alive)
//! is missing data: no alarm fires across it.

use std::collections::VecDeque;
use std::time::Duration;

use time::OffsetDateTime;

/// Consecutive one-minute datapoints above the target that scale out.
pub const HIGH_DATAPOINTS: usize = 3;
/// Consecutive one-minute datapoints below the low threshold that scale in.
pub const LOW_DATAPOINTS: usize = 15;
/// The scale-in alarm's threshold, as a fraction of the target value.
pub const LOW_THRESHOLD: f64 = 0.9;

/// How one minute of samples becomes one datapoint (the alarm's statistic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Statistic {
    /// The mean of the minute's samples (AAS's default for this metric).
    Average,
    /// The largest sample.
    Maximum,
    /// The smallest sample.
    Minimum,
    /// The sum of the samples.
    Sum,
    /// How many samples there were.
    SampleCount,
}

impl Statistic {
    /// Parses the CloudWatch spelling (`Average`, `Maximum`, ...), any case.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "average" => Self::Average,
            "maximum" => Self::Maximum,
            "minimum" => Self::Minimum,
            "sum" => Self::Sum,
            "samplecount" => Self::SampleCount,
            _ => return None,
        })
    }

    /// The CloudWatch spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Maximum => "Maximum",
            Self::Minimum => "Minimum",
            Self::Sum => "Sum",
            Self::SampleCount => "SampleCount",
        }
    }
}

/// Samples of one clock minute.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    minute: OffsetDateTime,
    sum: f64,
    count: u32,
    max: f64,
    min: f64,
}

impl Bucket {
    fn value(&self, stat: Statistic) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match stat {
            Statistic::Average => self.sum / f64::from(self.count),
            Statistic::Maximum => self.max,
            Statistic::Minimum => self.min,
            Statistic::Sum => self.sum,
            Statistic::SampleCount => f64::from(self.count),
        })
    }
}

/// The metric of one scalable target rolled up per clock minute: the minute being
/// filled, and the completed minutes' samples (newest last, missing minutes kept as
/// empty buckets so runs of datapoints are really consecutive).
#[derive(Debug, Clone, Default)]
pub struct MinuteSeries {
    current: Option<Bucket>,
    done: VecDeque<Bucket>,
}

/// The first instant of `t`'s minute.
pub fn minute_of(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0)
        .and_then(|t| t.replace_second(0))
        .unwrap_or(t)
}

impl MinuteSeries {
    /// Records a sample taken at `at` (`None`: nothing to measure, which still
    /// advances the minute). Returns how many minutes were completed by it.
    pub fn add(&mut self, at: OffsetDateTime, sample: Option<f64>) -> usize {
        let minute = minute_of(at);
        let mut completed = 0;
        match self.current {
            Some(b) if b.minute == minute => {}
            Some(b) if b.minute < minute => {
                self.push(b);
                completed += 1;
                // Minutes with no sample at all (the loop was held up) are missing data.
                let mut m = b.minute + time::Duration::MINUTE;
                while m < minute && completed <= LOW_DATAPOINTS {
                    self.push(Bucket {
                        minute: m,
                        sum: 0.0,
                        count: 0,
                        max: 0.0,
                        min: 0.0,
                    });
                    completed += 1;
                    m += time::Duration::MINUTE;
                }
                self.current = None;
            }
            // A clock that went back: the new minute starts over.
            Some(_) => self.current = None,
            None => {}
        }
        let b = self.current.get_or_insert(Bucket {
            minute,
            sum: 0.0,
            count: 0,
            max: f64::MIN,
            min: f64::MAX,
        });
        if let Some(v) = sample {
            b.sum += v;
            b.count += 1;
            b.max = b.max.max(v);
            b.min = b.min.min(v);
        }
        completed
    }

    fn push(&mut self, b: Bucket) {
        self.done.push_back(b);
        while self.done.len() > LOW_DATAPOINTS {
            self.done.pop_front();
        }
    }

    /// The completed minutes' datapoints under `stat`, oldest first.
    pub fn datapoints(&self, stat: Statistic) -> Vec<Option<f64>> {
        self.done.iter().map(|b| b.value(stat)).collect()
    }
}

/// A target tracking policy's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracking {
    /// The utilization to keep (0.75 = 75 %).
    pub target_value: f64,
    /// Time after a scale-out during which another counts the capacity it added.
    pub scale_out_cooldown: Duration,
    /// Time after a scale-in during which no other scale-in happens.
    pub scale_in_cooldown: Duration,
    /// Never remove capacity.
    pub disable_scale_in: bool,
}

/// The last scaling moves of one target (for the cooldowns).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cooldowns {
    /// When the last scale-out happened, and the capacity it started from.
    pub scale_out: Option<(OffsetDateTime, u32)>,
    /// When the last scale-in happened.
    pub scale_in: Option<OffsetDateTime>,
}

/// Which alarm fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// Above the target: scale out.
    High,
    /// Below 90 % of the target: scale in.
    Low,
}

impl Alarm {
    /// `AlarmHigh` / `AlarmLow`, as in the alarms' names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "AlarmHigh",
            Self::Low => "AlarmLow",
        }
    }
}

/// What one policy wants done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The alarm in state ALARM.
    pub alarm: Alarm,
    /// The newest datapoint, which sized the change.
    pub metric: f64,
    /// Capacity before.
    pub from: u32,
    /// Capacity wanted.
    pub to: u32,
}

/// `ceil(capacity * metric / target)`, clamped to [min, max].
pub fn proportional(capacity: u32, metric: f64, target: f64, min: u32, max: u32) -> u32 {
    let raw = if target > 0.0 && metric.is_finite() {
        (f64::from(capacity) * metric / target).ceil()
    } else {
        f64::from(capacity)
    };
    // Float-to-int `as` saturates, and the clamp below bounds it anyway.
    let wanted = if raw <= 0.0 {
        0
    } else {
        raw.min(f64::from(u32::MAX)) as u32
    };
    wanted.clamp(min, max.max(min))
}

/// The last `n` datapoints, when all are present.
fn last_n(points: &[Option<f64>], n: usize) -> Option<Vec<f64>> {
    if points.len() < n {
        return None;
    }
    points[points.len() - n..].iter().copied().collect()
}

/// Evaluates one policy's two alarms on `points` (completed minutes, oldest first)
/// for a target at `current` within [min, max], at `now`.
pub fn evaluate(
    t: &Tracking,
    points: &[Option<f64>],
    current: u32,
    (min, max): (u32, u32),
    now: OffsetDateTime,
    cd: &Cooldowns,
) -> Option<Decision> {
    if current == 0 {
        // Utilization of nothing: the metric does not exist, so neither alarm fires.
        return None;
    }
    if let Some(high) = last_n(points, HIGH_DATAPOINTS) {
        if high.iter().all(|v| *v > t.target_value) {
            let metric = *high.last()?;
            let in_cooldown = cd
                .scale_out
                .filter(|(at, _)| now < *at + t.scale_out_cooldown)
                .map(|(_, base)| base);
            // Within the cooldown, the capacity the last scale-out added is part of
            // what this one computes: it is sized from the capacity before it.
            let base = in_cooldown.unwrap_or(current);
            let to = proportional(base, metric, t.target_value, min, max);
            if to > current {
                return Some(Decision {
                    alarm: Alarm::High,
                    metric,
                    from: current,
                    to,
                });
            }
            return None;
        }
    }
    if t.disable_scale_in {
        return None;
    }
    let low = last_n(points, LOW_DATAPOINTS)?;
    if !low.iter().all(|v| *v < t.target_value * LOW_THRESHOLD) {
        return None;
    }
    if cd.scale_in.is_some_and(|at| now < at + t.scale_in_cooldown) {
        return None;
    }
    let metric = *low.last()?;
    let to = proportional(current, metric, t.target_value, min, max);
    (to < current).then_some(Decision {
        alarm: Alarm::Low,
        metric,
        from: current,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    fn tracking() -> Tracking {
        Tracking {
            target_value: 0.75,
            scale_out_cooldown: Duration::ZERO,
            scale_in_cooldown: Duration::from_secs(120),
            disable_scale_in: false,
        }
    }

    fn pts(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn new_capacity_is_proportional_rounded_up_and_clamped() {
        assert_eq!(proportional(4, 1.0, 0.75, 1, 10), 6); // 5.33 -> 6
        assert_eq!(proportional(3, 0.75, 0.75, 1, 10), 3);
        assert_eq!(proportional(10, 1.0, 0.5, 1, 12), 12); // 20 clamped
        assert_eq!(proportional(10, 0.0, 0.75, 2, 12), 2); // 0 clamped up
        assert_eq!(proportional(8, 0.3, 0.75, 1, 10), 4); // 3.2 -> 4
    }

    #[test]
    fn three_minutes_above_target_scale_out_and_two_do_not() {
        let t = tracking();
        let cd = Cooldowns::default();
        assert_eq!(
            evaluate(&t, &pts(&[0.5, 0.9, 1.0]), 2, (1, 10), T0, &cd),
            None
        );
        let d = evaluate(&t, &pts(&[0.9, 0.9, 1.0]), 2, (1, 10), T0, &cd);
        assert_eq!(
            d,
            Some(Decision {
                alarm: Alarm::High,
                metric: 1.0,
                from: 2,
                to: 3
            })
        );
        // A missing minute in the run breaks it.
        let mut gap = pts(&[0.9, 0.9, 1.0]);
        gap[1] = None;
        assert_eq!(evaluate(&t, &gap, 2, (1, 10), T0, &cd), None);
    }

    #[test]
    fn at_max_nothing_happens() {
        let t = tracking();
        let d = evaluate(
            &t,
            &pts(&[1.0, 1.0, 1.0]),
            5,
            (1, 5),
            T0,
            &Cooldowns::default(),
        );
        assert_eq!(d, None);
    }

    #[test]
    fn scale_in_needs_fifteen_low_minutes_and_respects_its_cooldown() {
        let t = tracking();
        let cd = Cooldowns::default();
        let fourteen = pts(&[0.1; 14]);
        assert_eq!(evaluate(&t, &fourteen, 8, (1, 10), T0, &cd), None);
        let fifteen = pts(&[0.1; 15]);
        let d = evaluate(&t, &fifteen, 8, (1, 10), T0, &cd);
        assert_eq!(d.map(|d| (d.alarm, d.to)), Some((Alarm::Low, 2))); // 8*0.1/0.75 = 1.07
                                                                       // Just below target but above 90 % of it: inside the dead band, no scale-in.
        assert_eq!(evaluate(&t, &pts(&[0.7; 15]), 8, (1, 10), T0, &cd), None);
        let recent = Cooldowns {
            scale_in: Some(T0 - time::Duration::seconds(60)),
            ..Default::default()
        };
        assert_eq!(evaluate(&t, &fifteen, 8, (1, 10), T0, &recent), None);
        let old = Cooldowns {
            scale_in: Some(T0 - time::Duration::seconds(121)),
            ..Default::default()
        };
        assert!(evaluate(&t, &fifteen, 8, (1, 10), T0, &old).is_some());
        let disabled = Tracking {
            disable_scale_in: true,
            ..t
        };
        assert_eq!(evaluate(&disabled, &fifteen, 8, (1, 10), T0, &cd), None);
    }

    #[test]
    fn within_scale_out_cooldown_the_added_capacity_counts() {
        let t = Tracking {
            scale_out_cooldown: Duration::from_secs(300),
            ..tracking()
        };
        // Scaled 4 -> 6 a minute ago; the metric still says 1.0: sized from 4 that is
        // 6 again, so nothing more.
        let cd = Cooldowns {
            scale_out: Some((T0 - time::Duration::seconds(60), 4)),
            scale_in: None,
        };
        assert_eq!(evaluate(&t, &pts(&[1.0; 3]), 6, (1, 20), T0, &cd), None);
        // A higher reading (2.0 over 4 -> 11) goes past it.
        let d = evaluate(&t, &pts(&[1.0, 1.0, 2.0]), 6, (1, 20), T0, &cd);
        assert_eq!(d.map(|d| d.to), Some(11));
        // After the cooldown, sized from the current capacity.
        let later = T0 + time::Duration::seconds(300);
        let d = evaluate(&t, &pts(&[1.0; 3]), 6, (1, 20), later, &cd);
        assert_eq!(d.map(|d| d.to), Some(8));
    }

    #[test]
    fn minutes_roll_up_by_statistic_and_gaps_are_missing() {
        let mut s = MinuteSeries::default();
        let t = T0 + time::Duration::seconds(5);
        assert_eq!(s.add(t, Some(0.5)), 0);
        assert_eq!(s.add(t + time::Duration::seconds(20), Some(1.0)), 0);
        // The next minute completes the first.
        assert_eq!(s.add(t + time::Duration::seconds(60), Some(0.0)), 1);
        assert_eq!(s.datapoints(Statistic::Average), vec![Some(0.75)]);
        assert_eq!(s.datapoints(Statistic::Maximum), vec![Some(1.0)]);
        // Three minutes later: the one with samples and two empty ones complete.
        assert_eq!(s.add(t + time::Duration::seconds(240), Some(0.2)), 3);
        assert_eq!(
            s.datapoints(Statistic::Average),
            vec![Some(0.75), Some(0.0), None, None]
        );
        assert_eq!(Statistic::parse("maximum"), Some(Statistic::Maximum));
        assert_eq!(Statistic::parse("p99"), None);
    }
}
