//! A distribution of sampled values (CPU cores, working-set bytes) as the
//! store keeps it: base-2 exponential buckets merged over a window. The
//! analyzer reads quantiles from it and, for risk, the share of samples
//! above a proposed value, both in O(buckets) without raw points.

use tally_schema::exphist::{ExpHistogram, bucket_index, bucket_upper_bound};

/// Merged exponential buckets: `counts[i]` holds the values of bucket
/// `low + i` at `scale`, `zeros` the values at zero.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Distribution {
    /// Bucket scale (resolution 2^(2^-scale)).
    pub scale: i32,
    /// Index of the first bucket.
    pub low: i32,
    /// Values per bucket.
    pub counts: Vec<u64>,
    /// Values equal to zero.
    pub zeros: u64,
    /// All values.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Distribution {
    /// From one exponential histogram.
    pub fn from_histogram(histogram: &ExpHistogram) -> Distribution {
        Distribution {
            scale: histogram.scale(),
            low: histogram.offset(),
            counts: histogram.bucket_counts().to_vec(),
            zeros: histogram.zero_count(),
            count: histogram.count(),
            sum: histogram.sum(),
            min: histogram.min().unwrap_or(0.0),
            max: histogram.max().unwrap_or(0.0),
        }
    }

    /// From raw values (tests, the replay harness).
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Distribution {
        let mut histogram = ExpHistogram::default();
        for value in values {
            histogram.record(value);
        }
        Distribution::from_histogram(&histogram)
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Mean value.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Quantile `q` in 0..=1, interpolated on a log scale inside the
    /// bucket that holds it (the inverse of [`Self::share_above`]) and
    /// clamped to the observed extremes. The store and VPA answer with the
    /// bucket's upper end, up to one bucket high: a request sized from
    /// that pays for the rounding.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).max(1.0);
        if rank <= self.zeros as f64 {
            return Some(0.0);
        }
        let mut seen = self.zeros as f64;
        for (position, count) in self.counts.iter().enumerate() {
            let count = *count as f64;
            if count > 0.0 && seen + count >= rank {
                let bucket = self.low + position as i32;
                let lower = bucket_upper_bound(bucket - 1, self.scale).ln();
                let upper = bucket_upper_bound(bucket, self.scale).ln();
                let within = ((rank - seen) / count).clamp(0.0, 1.0);
                let value = (lower + within * (upper - lower)).exp();
                return Some(value.clamp(self.min, self.max));
            }
            seen += count;
        }
        Some(self.max)
    }

    /// Share of values above `value` (0..=1). Values in the bucket that
    /// holds `value` are split by their position on a log scale, so the
    /// answer moves smoothly as `value` moves inside a bucket.
    pub fn share_above(&self, value: f64) -> f64 {
        if self.count == 0 || value >= self.max {
            return 0.0;
        }
        if value < self.min || (value <= 0.0 && self.zeros == 0) {
            return 1.0;
        }
        if value <= 0.0 {
            return (self.count - self.zeros) as f64 / self.count as f64;
        }
        let index = bucket_index(value, self.scale);
        let mut above = 0.0;
        for (position, count) in self.counts.iter().enumerate() {
            let bucket = self.low + position as i32;
            if bucket > index {
                above += *count as f64;
            } else if bucket == index && *count > 0 {
                let lower = bucket_upper_bound(bucket - 1, self.scale);
                let upper = bucket_upper_bound(bucket, self.scale);
                let part = ((upper.ln() - value.ln()) / (upper.ln() - lower.ln())).clamp(0.0, 1.0);
                above += *count as f64 * part;
            }
        }
        (above / self.count as f64).clamp(0.0, 1.0)
    }

    /// Adds `other`'s values (coarsening to the lower of the two scales).
    pub fn merge(&mut self, other: &Distribution) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let scale = self.scale.min(other.scale);
        let coarse = |d: &Distribution| -> Vec<(i32, u64)> {
            let shift = d.scale - scale;
            d.counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(p, c)| ((d.low + p as i32) >> shift, *c))
                .collect()
        };
        let mut all = coarse(self);
        all.extend(coarse(other));
        let low = all.iter().map(|(i, _)| *i).min().unwrap_or(0);
        let high = all.iter().map(|(i, _)| *i).max().unwrap_or(0);
        let mut counts = vec![0u64; (high - low + 1).max(0) as usize];
        for (index, count) in all {
            counts[(index - low) as usize] += count;
        }
        self.scale = scale;
        self.low = low;
        self.counts = counts;
        self.zeros += other.zeros;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_bucket_of_the_truth() {
        let values: Vec<f64> = (1..=1000).map(|i| i as f64 / 100.0).collect();
        let d = Distribution::from_values(values.iter().copied());
        let p95 = d.quantile(0.95).expect("p95");
        // True p95 is 9.50; a bucket at the default scale is well under 5 %.
        assert!((9.5..9.5 * 1.05).contains(&p95), "{p95}");
        assert_eq!(d.quantile(1.0), Some(10.0));
        assert_eq!(d.mean().map(|m| (m * 1000.0).round()), Some(5005.0));
    }

    #[test]
    fn share_above_inverts_the_quantile() {
        let d = Distribution::from_values((1..=1000).map(|i| i as f64));
        for (value, expected) in [(100.0, 0.9), (500.0, 0.5), (950.0, 0.05)] {
            let share = d.share_above(value);
            assert!((share - expected).abs() < 0.02, "{value}: {share}");
        }
        assert_eq!(d.share_above(1000.0), 0.0);
        assert_eq!(d.share_above(0.5), 1.0);
    }

    #[test]
    fn zeros_count_as_values_at_zero() {
        let d = Distribution::from_values([0.0, 0.0, 0.0, 1.0]);
        assert_eq!(d.quantile(0.5), Some(0.0));
        assert!((d.share_above(0.0) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn merging_equals_recording_everything_once() {
        let a = Distribution::from_values((1..=500).map(f64::from));
        let mut merged = a.clone();
        merged.merge(&Distribution::from_values((501..=1000).map(f64::from)));
        let whole = Distribution::from_values((1..=1000).map(f64::from));
        assert_eq!(merged.count, 1000);
        let (m, w) = (merged.quantile(0.9).unwrap(), whole.quantile(0.9).unwrap());
        assert!((m / w - 1.0).abs() < 0.01, "{m} vs {w}");
        assert_eq!(merged.max, 1000.0);
    }
}
