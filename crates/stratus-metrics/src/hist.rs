//! A mergeable log-bucket histogram for durations: bucket `i` holds values in
//! `(γ^(i-1), γ^i]` with γ = 1.02, so any percentile read from it is within 1% of
//! the true value (relative error), whatever the range — the same idea as DDSketch.
//! Buckets are sparse; a minute of a busy function uses a few dozen of them. It is
//! stored as text (`index:count` pairs) in the rollup rows, so periods longer than a
//! minute merge their minutes' histograms and still get exact-enough percentiles.

use std::collections::BTreeMap;

/// Growth factor between buckets (relative accuracy ±1%).
const GAMMA: f64 = 1.02;
/// Values at or below this (milliseconds) share bucket `MIN_INDEX`.
const FLOOR: f64 = 1e-3;
const MIN_INDEX: i32 = -350; // ln(1e-3)/ln(1.02) ≈ -348.8

/// Counts per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<i32, u64>,
}

impl Histogram {
    /// Adds one value (milliseconds).
    pub fn record(&mut self, v: f64) {
        *self.buckets.entry(index(v)).or_insert(0) += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_insert(0) += n;
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The `p`-th percentile (0 < p ≤ 100) as the representative value of the bucket
    /// holding the value of rank ⌈p·n/100⌉; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(value(*i));
            }
        }
        self.buckets.keys().next_back().map(|i| value(*i))
    }

    /// `index:count` pairs separated by `,`.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.buckets.len() * 8);
        for (i, (b, n)) in self.buckets.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("{b}:{n}"));
        }
        s
    }

    /// Reads [`Histogram::encode`]'s text; malformed pairs are skipped (a row written
    /// by this code is never malformed).
    pub fn decode(s: &str) -> Self {
        let buckets = s
            .split(',')
            .filter_map(|pair| {
                let (b, n) = pair.split_once(':')?;
                Some((b.parse().ok()?, n.parse().ok()?))
            })
            .collect();
        Self { buckets }
    }
}

fn index(v: f64) -> i32 {
    // NaN lands here too.
    if v.is_nan() || v <= FLOOR {
        return MIN_INDEX;
    }
    ((v.ln() / GAMMA.ln()).ceil() as i32).max(MIN_INDEX + 1)
}

/// The value reported for bucket `i`: the point of least relative error within
/// `(γ^(i-1), γ^i]`.
fn value(i: i32) -> f64 {
    if i <= MIN_INDEX {
        return 0.0;
    }
    GAMMA.powi(i) * 2.0 / (1.0 + GAMMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v as f64);
        }
        for (p, want) in [(50.0, 500.0), (90.0, 900.0), (99.0, 990.0), (100.0, 1000.0)] {
            let got = h.percentile(p).unwrap();
            assert!((got - want).abs() / want < 0.01, "p{p}: {got} vs {want}");
        }
    }

    #[test]
    fn merges_and_round_trips() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in 0..100 {
            a.record(v as f64 * 0.5);
            b.record(1000.0 + v as f64);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        let back = Histogram::decode(&a.encode());
        assert_eq!(back, a);
        let p99 = back.percentile(99.0).unwrap();
        assert!((p99 - 1098.0).abs() / 1098.0 < 0.01, "{p99}");
        assert_eq!(Histogram::default().percentile(50.0), None);
        assert_eq!(back.percentile(0.1), Some(0.0));
    }
}
