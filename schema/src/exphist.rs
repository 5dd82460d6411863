//! Base-2 exponential histograms (the OpenTelemetry data model).
//!
//! The agent samples CPU and memory every second but exports every 15 s; in
//! between it folds samples into one of these per container, so the
//! collector receives the whole distribution (p95 of 1 s CPU bursts, peaks of
//! working set) instead of one point. Bucket `i` at scale `s` covers
//! `(2^(i·2^-s), 2^((i+1)·2^-s)]`; the histogram starts at the finest scale
//! and halves its resolution whenever the populated range would exceed
//! `max_buckets`, as the OpenTelemetry SDK's aggregator does.

/// The finest scale the OpenTelemetry specification allows.
pub const MAX_SCALE: i32 = 20;
/// The OpenTelemetry SDK's default bucket budget.
pub const DEFAULT_MAX_BUCKETS: usize = 160;

/// A base-2 exponential histogram of non-negative values.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpHistogram {
    scale: i32,
    max_buckets: usize,
    zero_count: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    offset: i32,
    counts: Vec<u64>,
}

impl Default for ExpHistogram {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BUCKETS)
    }
}

impl ExpHistogram {
    /// An empty histogram with the given bucket budget (at least 2).
    pub fn new(max_buckets: usize) -> Self {
        Self {
            scale: MAX_SCALE,
            max_buckets: max_buckets.max(2),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            offset: 0,
            counts: Vec::new(),
        }
    }

    /// An empty histogram that starts at `scale` instead of the finest one:
    /// a coarser start keeps stable series in one or two buckets (the
    /// collector's stored sketches use this to bound their size).
    pub fn with_scale(max_buckets: usize, scale: i32) -> Self {
        Self {
            scale: scale.clamp(-10, MAX_SCALE),
            ..Self::new(max_buckets)
        }
    }

    /// Records one value. Zero and negative values land in the zero bucket
    /// (the quantities sampled here cannot be negative; a negative reading
    /// means a counter reset and is better counted than lost). NaN is
    /// ignored.
    pub fn record(&mut self, value: f64) {
        self.record_n(value, 1);
    }

    /// Records `n` copies of one value (an explicit-histogram bucket).
    pub fn record_n(&mut self, value: f64, n: u64) {
        if value.is_nan() || n == 0 {
            return;
        }
        let value = value.clamp(0.0, f64::MAX);
        self.count = self.count.saturating_add(n);
        self.sum += value * n as f64;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value == 0.0 {
            self.zero_count = self.zero_count.saturating_add(n);
            return;
        }
        let mut index = bucket_index(value, self.scale);
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        let low = self.offset.min(index);
        let high = (self.offset + self.counts.len() as i32 - 1).max(index);
        let change = self.scale_change(low, high);
        if change > 0 {
            self.downscale(change);
            index = bucket_index(value, self.scale);
        }
        self.add_at(index, n);
    }

    /// Adds `n` to bucket `index` at the current scale, growing the bucket
    /// vector either way (the caller has made the range fit the budget).
    fn add_at(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        }
        if index < self.offset {
            // In place: a long-lived sketch that moves leaves holes in the
            // heap between younger allocations.
            let grow = (self.offset - index) as usize;
            let len = self.counts.len();
            self.counts.resize(len + grow, 0);
            self.counts.rotate_right(grow);
            self.offset = index;
        }
        let position = (index - self.offset) as usize;
        if position >= self.counts.len() {
            self.counts.resize(position + 1, 0);
        }
        self.counts[position] = self.counts[position].saturating_add(n);
    }

    /// How many halvings make `[low, high]` fit the bucket budget. In i64:
    /// at scale 20 the indices of the smallest and largest doubles are
    /// further apart than `i32::MAX`.
    fn scale_change(&self, low: i32, high: i32) -> i32 {
        let (mut low, mut high) = (i64::from(low), i64::from(high));
        let mut change = 0;
        while (high - low + 1) as u64 > self.max_buckets as u64 {
            low >>= 1;
            high >>= 1;
            change += 1;
        }
        change
    }

    /// Halves the resolution `change` times, in place: consecutive buckets
    /// map to the same or the next coarser bucket, which is never further
    /// right than the first of them.
    fn downscale(&mut self, change: i32) {
        let new_offset = coarser(self.offset, 0, change);
        let mut last_slot = 0;
        for position in 0..self.counts.len() {
            let slot = (coarser(self.offset, position, change) - new_offset) as usize;
            let count = self.counts[position];
            if position == 0 || slot != last_slot {
                self.counts[slot] = count;
            } else {
                self.counts[slot] = self.counts[slot].saturating_add(count);
            }
            last_slot = slot;
        }
        self.counts.truncate(last_slot + 1);
        self.offset = new_offset;
        self.scale -= change;
    }

    /// Empties the histogram at `scale`, keeping its bucket allocation (an
    /// hourly sketch is reused for the next hour rather than reallocated).
    pub fn clear(&mut self, scale: i32) {
        self.scale = scale.clamp(-10, MAX_SCALE);
        self.zero_count = 0;
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
        self.offset = 0;
        self.counts.clear();
    }

    /// Merges another histogram into this one (the collector folds OTLP
    /// exponential-histogram points into hourly sketches this way). The
    /// result has the coarser of the two scales, coarsened further if the
    /// combined range would exceed the bucket budget.
    pub fn merge(&mut self, other: &ExpHistogram) {
        self.merge_parts(&Parts {
            scale: other.scale,
            offset: other.offset,
            counts: &other.counts,
            zero_count: other.zero_count,
            count: other.count,
            sum: other.sum,
            min: other.min(),
            max: other.max(),
        });
    }

    /// Merges raw OTLP parts (positive buckets only; Tally's quantities are
    /// non-negative, and negative buckets are the caller's to reject).
    pub fn merge_parts(&mut self, other: &Parts<'_>) {
        if other.count == 0 {
            return;
        }
        let mut target = self.scale.min(other.scale).clamp(-10, MAX_SCALE);
        if !other.counts.is_empty() {
            let shift = other.scale.saturating_sub(target);
            let mut low = coarser(other.offset, 0, shift);
            let mut high = coarser(other.offset, other.counts.len() - 1, shift);
            if !self.counts.is_empty() {
                let own_shift = self.scale - target;
                low = low.min(coarser(self.offset, 0, own_shift));
                high = high.max(coarser(self.offset, self.counts.len() - 1, own_shift));
            }
            target -= self.scale_change(low, high);
        }
        if self.counts.is_empty() {
            self.scale = target;
        } else if self.scale > target {
            self.downscale(self.scale - target);
        }
        let shift = other.scale.saturating_sub(target);
        for (position, count) in other.counts.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            self.add_at(coarser(other.offset, position, shift), *count);
        }
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        if let Some(min) = other.min {
            self.min = self.min.min(min);
        }
        if let Some(max) = other.max {
            self.max = self.max.max(max);
        }
    }

    /// What was recorded since `earlier`, an older state of the same
    /// cumulative histogram (OTLP cumulative temporality): counts subtract
    /// bucket by bucket at the coarser of the two scales. `None` when
    /// `earlier` holds anything this one does not (the producer restarted).
    /// The difference keeps this histogram's min and max: the new values lie
    /// within them, which is all quantile clamping needs.
    pub fn minus(&self, earlier: &ExpHistogram) -> Option<ExpHistogram> {
        if earlier.count > self.count || earlier.zero_count > self.zero_count {
            return None;
        }
        let scale = self.scale.min(earlier.scale);
        let mut now = self.clone();
        if now.scale > scale {
            now.downscale(now.scale - scale);
        }
        let mut before = earlier.clone();
        if before.scale > scale {
            before.downscale(before.scale - scale);
        }
        let mut out = ExpHistogram {
            scale,
            max_buckets: self.max_buckets,
            zero_count: now.zero_count - before.zero_count,
            count: now.count - before.count,
            sum: (now.sum - before.sum).max(0.0),
            min: self.min,
            max: self.max,
            offset: 0,
            counts: Vec::new(),
        };
        let before_at = |index: i32| -> u64 {
            let position = i64::from(index) - i64::from(before.offset);
            usize::try_from(position)
                .ok()
                .and_then(|p| before.counts.get(p))
                .copied()
                .unwrap_or(0)
        };
        let mut seen = 0;
        for (position, count) in now.counts.iter().enumerate() {
            let index = now.offset + position as i32;
            let was = before_at(index);
            if was > *count {
                return None;
            }
            seen += was;
            if *count > was {
                out.add_at(index, count - was);
            }
        }
        // Every earlier count must lie under one of this one's buckets.
        let earlier_total: u64 = before.counts.iter().sum();
        (seen == earlier_total).then_some(out)
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Sum of recorded values.
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// Smallest recorded value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }
    /// Largest recorded value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
    /// Current scale.
    pub fn scale(&self) -> i32 {
        self.scale
    }
    /// Values recorded as zero.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }
    /// Index of the first positive bucket.
    pub fn offset(&self) -> i32 {
        self.offset
    }
    /// Positive bucket counts from [`Self::offset`].
    pub fn bucket_counts(&self) -> &[u64] {
        &self.counts
    }
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// An estimate of quantile `q` (0..=1): the upper bound of the bucket
    /// holding it, clamped to the observed min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        if rank <= self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for (position, count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                let upper = bucket_upper_bound(self.offset + position as i32, self.scale);
                return Some(upper.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// The parts of an OTLP exponential-histogram point, for merging.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// Scale.
    pub scale: i32,
    /// Index of the first positive bucket.
    pub offset: i32,
    /// Positive bucket counts.
    pub counts: &'a [u64],
    /// Values in the zero bucket.
    pub zero_count: u64,
    /// Total values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value, when known.
    pub min: Option<f64>,
    /// Largest value, when known.
    pub max: Option<f64>,
}

/// Index of bucket `offset + position` at a scale `shift` steps coarser
/// (floor division by `2^shift`), in i64 so that an OTLP point's offset near
/// `i32::MAX` or a shift past 31 cannot overflow; indices past the `i32`
/// range saturate.
fn coarser(offset: i32, position: usize, shift: i32) -> i32 {
    let index = i64::from(offset).saturating_add(i64::try_from(position).unwrap_or(i64::MAX));
    let index = index >> shift.clamp(0, 63);
    index.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Bucket index of a positive, finite value at `scale`.
pub fn bucket_index(value: f64, scale: i32) -> i32 {
    // Exact powers of two sit on bucket boundaries: compute them from the
    // exponent so rounding in log2 cannot push them into the next bucket.
    let bits = value.to_bits();
    let mantissa = bits & ((1u64 << 52) - 1);
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if mantissa == 0 && exponent > -1023 {
        // value == 2^exponent: upper-inclusive bucket ends here.
        return if scale >= 0 {
            (exponent << scale) - 1
        } else {
            (exponent - 1) >> -scale
        };
    }
    let scaled = value.log2() * 2f64.powi(scale);
    (scaled.ceil() as i64 - 1).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Upper bound of bucket `index` at `scale`.
pub fn bucket_upper_bound(index: i32, scale: i32) -> f64 {
    2f64.powf((index as f64 + 1.0) * 2f64.powi(-scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cumulative_histogram_minus_its_earlier_state() {
        let mut earlier = ExpHistogram::default();
        for v in [0.05, 0.05, 0.4] {
            earlier.record(v);
        }
        let mut now = earlier.clone();
        for v in [0.05, 2.0, 0.0] {
            now.record(v);
        }
        let new = now.minus(&earlier).expect("a later state");
        assert_eq!(new.count(), 3);
        assert_eq!(new.zero_count(), 1);
        assert!((new.sum() - 2.05).abs() < 1e-9);
        let mut direct = ExpHistogram::default();
        for v in [0.05, 2.0, 0.0] {
            direct.record(v);
        }
        assert_eq!(new.quantile(0.99), direct.quantile(0.99));
        assert_eq!(new.quantile(0.5), direct.quantile(0.5));
        // A restart: the earlier state holds more than the current one.
        let mut restarted = ExpHistogram::default();
        restarted.record(0.05);
        assert!(restarted.minus(&earlier).is_none());
        // A value the earlier state had in a bucket the later one lacks.
        let mut moved = ExpHistogram::default();
        for v in [0.05, 0.05, 0.05, 0.05] {
            moved.record(v);
        }
        assert!(moved.minus(&earlier).is_none());
    }

    #[test]
    fn bucket_boundaries_are_upper_inclusive() {
        // Scale 0: bucket -1 = (0.5, 1], bucket 0 = (1, 2], bucket 1 = (2, 4].
        assert_eq!(bucket_index(1.0, 0), -1);
        assert_eq!(bucket_index(1.5, 0), 0);
        assert_eq!(bucket_index(2.0, 0), 0);
        assert_eq!(bucket_index(3.0, 0), 1);
        assert_eq!(bucket_index(4.0, 0), 1);
        // Scale 1: base sqrt(2); 2 is the upper bound of bucket 1.
        assert_eq!(bucket_index(2.0, 1), 1);
        assert_eq!(bucket_index(2.1, 1), 2);
        // Scale -1: base 4; bucket 0 = (1, 4].
        assert_eq!(bucket_index(4.0, -1), 0);
        assert_eq!(bucket_index(1.0, -1), -1);
        assert_eq!(bucket_index(5.0, -1), 1);
    }

    #[test]
    fn every_value_is_inside_its_bucket() {
        let mut h = ExpHistogram::new(160);
        let mut values = Vec::new();
        let mut x = 0.001_f64;
        while x < 1e12 {
            values.push(x);
            x *= 1.37;
        }
        for v in &values {
            h.record(*v);
        }
        assert_eq!(h.count(), values.len() as u64);
        assert!(h.bucket_counts().len() <= 160);
        assert_eq!(h.bucket_counts().iter().sum::<u64>(), values.len() as u64);
        for v in &values {
            let i = bucket_index(*v, h.scale());
            let lower = bucket_upper_bound(i - 1, h.scale());
            let upper = bucket_upper_bound(i, h.scale());
            assert!(
                *v > lower * (1.0 - 1e-12) && *v <= upper * (1.0 + 1e-12),
                "{v}"
            );
            assert!(i >= h.offset() && i < h.offset() + h.bucket_counts().len() as i32);
        }
    }

    #[test]
    fn downscaling_keeps_counts_and_budget() {
        let mut h = ExpHistogram::new(4);
        for v in [1.0, 2.0, 4.0, 8.0, 16.0, 1024.0] {
            h.record(v);
        }
        assert!(h.bucket_counts().len() <= 4);
        assert_eq!(h.bucket_counts().iter().sum::<u64>(), 6);
        assert_eq!(h.sum(), 1055.0);
        assert_eq!(h.min(), Some(1.0));
        assert_eq!(h.max(), Some(1024.0));
    }

    /// The in-place downscale against the plain definition: every bucket's
    /// count lands in bucket `index >> change`.
    #[test]
    fn downscaling_in_place_matches_the_definition() {
        let mut seed = 7_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..500 {
            let len = 1 + (next() % 40) as usize;
            let offset = (next() % 400) as i32 - 200;
            let change = 1 + (next() % 5) as i32;
            let counts: Vec<u64> = (0..len).map(|_| next() % 5).collect();
            let mut expected = std::collections::BTreeMap::new();
            for (position, count) in counts.iter().enumerate() {
                *expected
                    .entry((offset + position as i32) >> change)
                    .or_insert(0) += count;
            }
            let mut h = ExpHistogram::with_scale(160, 5);
            h.offset = offset;
            h.counts = counts.clone();
            h.downscale(change);
            assert_eq!(h.scale(), 5 - change);
            assert_eq!(h.offset(), *expected.keys().next().expect("one bucket"));
            assert_eq!(
                h.bucket_counts(),
                expected.values().copied().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn clearing_keeps_the_allocation_and_forgets_the_values() {
        let mut reused = ExpHistogram::with_scale(160, 3);
        for i in 0..300 {
            reused.record(0.5 * 1.1_f64.powi(i));
        }
        reused.record(0.0);
        let capacity = reused.counts.capacity();
        reused.clear(3);
        assert!(reused.is_empty());
        assert_eq!(reused.counts.capacity(), capacity);
        let mut fresh = ExpHistogram::with_scale(160, 3);
        for v in [4.0, 0.25, 1e6, 3.0] {
            reused.record(v);
            fresh.record(v);
        }
        assert_eq!(reused, fresh);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let mut whole = ExpHistogram::new(64);
        let mut left = ExpHistogram::new(64);
        let mut right = ExpHistogram::new(64);
        for i in 0..500 {
            let v = 0.001 * 1.05_f64.powi(i);
            whole.record(v);
            if i % 3 == 0 {
                left.record(v)
            } else {
                right.record(v)
            }
        }
        left.record(0.0);
        whole.record(0.0);
        let mut merged = ExpHistogram::new(64);
        merged.merge(&left);
        merged.merge(&right);
        assert_eq!(merged.count(), whole.count());
        assert_eq!(merged.zero_count(), whole.zero_count());
        assert_eq!(merged.scale(), whole.scale());
        assert_eq!(merged.offset(), whole.offset());
        assert_eq!(merged.bucket_counts(), whole.bucket_counts());
        assert!((merged.sum() - whole.sum()).abs() <= 1e-12 * whole.sum());
        assert_eq!(merged.min(), whole.min());
        assert_eq!(merged.max(), whole.max());
        // Merging into a fine-scale histogram with few values coarsens it.
        let mut fine = ExpHistogram::new(64);
        fine.record(1.0);
        fine.merge(&whole);
        assert!(fine.scale() <= whole.scale());
        assert_eq!(fine.count(), whole.count() + 1);
    }

    #[test]
    fn zeros_and_nan() {
        let mut h = ExpHistogram::default();
        h.record(0.0);
        h.record(-1.0);
        h.record(f64::NAN);
        h.record(0.5);
        assert_eq!(h.count(), 3);
        assert_eq!(h.zero_count(), 2);
        assert_eq!(h.quantile(0.5), Some(0.0));
        assert_eq!(h.quantile(1.0), Some(0.5));
    }

    /// Ranges and counts from hostile OTLP points (found while writing the
    /// collector's fuzz target): each used to overflow, and an offset near
    /// `i32::MAX` made a "capacity overflow" panic even without overflow
    /// checks.
    #[test]
    fn extreme_ranges_and_counts_do_not_overflow() {
        // The smallest and largest doubles are 2.2e9 indices apart at scale 20.
        let mut h = ExpHistogram::default();
        h.record(5e-324);
        h.record(f64::MAX);
        assert_eq!(h.count(), 2);
        assert!(h.bucket_counts().len() <= DEFAULT_MAX_BUCKETS);
        assert_eq!(h.quantile(1.0), Some(f64::MAX));

        let parts = |scale, offset, counts| Parts {
            scale,
            offset,
            counts,
            zero_count: u64::MAX,
            count: u64::MAX,
            sum: 1.0,
            min: None,
            max: None,
        };
        let mut h = ExpHistogram::default();
        for (scale, offset) in [
            (100, 0),
            (0, i32::MAX),
            (20, i32::MIN),
            (i32::MAX, i32::MAX),
        ] {
            h.merge_parts(&parts(scale, offset, &[u64::MAX, 1, 2]));
            assert!(h.bucket_counts().len() <= DEFAULT_MAX_BUCKETS);
        }
        assert_eq!((h.count(), h.zero_count()), (u64::MAX, u64::MAX));
        let mut twice = h.clone();
        twice.merge(&h);
        assert_eq!(twice.count(), u64::MAX);
        assert!(twice.quantile(0.5).is_some());
    }

    #[test]
    fn quantile_is_within_relative_error() {
        let mut h = ExpHistogram::default();
        for i in 1..=1000 {
            h.record(i as f64);
        }
        let p95 = h.quantile(0.95).unwrap_or_default();
        // The estimate is a bucket's upper bound: its relative error is at
        // most base - 1 = 2^(2^-scale) - 1 (9 % at the scale 1..1000 needs).
        let bound = 2f64.powf(2f64.powi(-h.scale())) - 1.0;
        assert!(
            p95 >= 950.0 && (p95 - 950.0) / 950.0 <= bound,
            "{p95} {bound}"
        );
        assert_eq!(h.scale(), 3);
    }
}
