//! The Kubernetes VPA recommender's target (reference §2.4): p90 of
//! decaying histograms (24 h half-life, 5 % exponential buckets, the end
//! of the bucket reached) × 1.15, with one memory peak per 24 h and the
//! OOM bump. Confidence multipliers shape only the bounds, not the target.

use super::Proposal;
use super::traces::{History, MINUTES_PER_DAY};

const MIB: f64 = 1024.0 * 1024.0;
/// `DefaultHistogramBucketSizeGrowth`.
pub const BUCKET_GROWTH: f64 = 0.05;
/// CPU histogram: first bucket and largest value, cores.
pub const CPU_BUCKETS: (f64, f64) = (0.01, 1000.0);
/// Memory histogram: first bucket and largest value, bytes.
pub const MEMORY_BUCKETS: (f64, f64) = (1e7, 1e12);
/// Decay half-life of both histograms, minutes (24 h).
pub const HALF_LIFE_MINUTES: f64 = 24.0 * 60.0;
/// Weight of every CPU sample (`minSampleWeight`).
pub const CPU_SAMPLE_WEIGHT: f64 = 0.1;
/// Target percentile.
pub const TARGET_PERCENTILE: f64 = 0.9;
/// `SafetyMarginFraction`.
pub const SAFETY_MARGIN: f64 = 0.15;
/// `PodMinCPUMillicores`, as cores (single-container pods).
pub const CPU_FLOOR: f64 = 0.025;
/// `PodMinMemoryMb` × 1024² (single-container pods).
pub const MEMORY_FLOOR: f64 = 250.0 * MIB;
/// `OOMMinBumpUp`.
pub const OOM_MIN_BUMP: f64 = 100.0 * MIB;
/// `OOMBumpUpRatio`.
pub const OOM_BUMP_RATIO: f64 = 1.2;

/// VPA's `exponentialHistogramOptions`: bucket 0 is [0, first), bucket
/// n starts at first × (ratio^n − 1) / (ratio − 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpBuckets {
    first: f64,
    ratio: f64,
    count: usize,
}

impl ExpBuckets {
    /// Buckets up to `max` with the first `first` wide, each `growth`
    /// wider than the last.
    pub fn new(max: f64, first: f64, growth: f64) -> ExpBuckets {
        let ratio = 1.0 + growth;
        let count = ((max * (ratio - 1.0) / first + 1.0).ln() / ratio.ln()).ceil() as usize + 1;
        ExpBuckets {
            first,
            ratio,
            count,
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none (never, for valid options).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `FindBucket`.
    pub fn find(&self, value: f64) -> usize {
        if value < self.first {
            return 0;
        }
        let bucket =
            ((value * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ratio.ln()) as usize;
        bucket.min(self.count - 1)
    }

    /// `GetBucketStart`.
    pub fn start(&self, bucket: usize) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        self.first * (self.ratio.powi(bucket as i32) - 1.0) / (self.ratio - 1.0)
    }
}

/// VPA's `decayingHistogram`, reference time at minute 0 (a week at a
/// 24 h half-life stays far from the 2^100 shift).
#[derive(Debug, Clone, PartialEq)]
pub struct DecayingHistogram {
    buckets: ExpBuckets,
    weights: Vec<f64>,
    total: f64,
}

impl DecayingHistogram {
    /// Empty, over `buckets`.
    pub fn new(buckets: ExpBuckets) -> DecayingHistogram {
        DecayingHistogram {
            buckets,
            weights: vec![0.0; buckets.len()],
            total: 0.0,
        }
    }

    /// Adds `value` with `weight` × 2^(minute / half-life).
    pub fn add(&mut self, value: f64, weight: f64, minute: f64) {
        let weight = weight * (minute / HALF_LIFE_MINUTES).exp2();
        self.weights[self.buckets.find(value)] += weight;
        self.total += weight;
    }

    /// `Percentile`: the end of the first bucket where the cumulative
    /// weight reaches `p` of the total (the start of the last bucket,
    /// which has no end).
    pub fn percentile(&self, p: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let threshold = p * self.total;
        let mut partial = 0.0;
        let last = self.weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
        let mut bucket = 0;
        while bucket < last {
            partial += self.weights[bucket];
            if partial >= threshold {
                break;
            }
            bucket += 1;
        }
        if bucket + 1 < self.buckets.len() {
            self.buckets.start(bucket + 1)
        } else {
            self.buckets.start(bucket)
        }
    }
}

/// Days 1-7's memory as VPA aggregates it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPeaks {
    /// One (peak, minute) per 24 h interval, stamped at the interval's
    /// end; an OOM raises its interval's peak to the bumped value.
    pub peaks: Vec<(f64, f64)>,
    /// The largest bumped value of any OOM: max(used + 100 MiB,
    /// used × 1.2) with used = max(request, peak so far).
    pub oom_needed: Option<f64>,
}

/// Aggregates `history`'s working set into daily peaks, OOMs included.
pub fn memory_peaks(history: &History) -> MemoryPeaks {
    let limit = history.current.memory_bytes;
    let mut peaks = Vec::new();
    let mut oom_needed: Option<f64> = None;
    let mut armed = true;
    for (day, samples) in history.memory.chunks(MINUTES_PER_DAY).enumerate() {
        let mut peak = 0.0_f64;
        for value in samples {
            peak = peak.max(*value);
            // An OOM kill under today's limit (the same rising crossing
            // the scorer counts).
            if *value > limit && armed {
                let used = limit.max(peak);
                let needed = (used + OOM_MIN_BUMP).max(used * OOM_BUMP_RATIO);
                peak = peak.max(needed);
                oom_needed = Some(oom_needed.map_or(needed, |n| n.max(needed)));
            }
            armed = *value <= limit;
        }
        peaks.push((peak, ((day + 1) * MINUTES_PER_DAY) as f64));
    }
    MemoryPeaks { peaks, oom_needed }
}

/// VPA's target for one single-container pod. Resource amounts are
/// integers (millicores, bytes), truncated as `resourceAmountFromFloat`
/// does, before and after the margin.
pub fn propose(history: &History) -> Proposal {
    let (first, max) = CPU_BUCKETS;
    let mut cpu = DecayingHistogram::new(ExpBuckets::new(max, first, BUCKET_GROWTH));
    for (minute, value) in history.cpu.iter().enumerate() {
        cpu.add(*value, CPU_SAMPLE_WEIGHT, minute as f64);
    }
    let (first, max) = MEMORY_BUCKETS;
    let mut memory = DecayingHistogram::new(ExpBuckets::new(max, first, BUCKET_GROWTH));
    let aggregate = memory_peaks(history);
    for (peak, minute) in &aggregate.peaks {
        memory.add(*peak, 1.0, *minute);
    }
    let millicores = (cpu.percentile(TARGET_PERCENTILE) * 1000.0).floor();
    let millicores = (millicores * (1.0 + SAFETY_MARGIN)).floor();
    let bytes = memory.percentile(TARGET_PERCENTILE).floor();
    let bytes = (bytes * (1.0 + SAFETY_MARGIN)).floor();
    Proposal {
        cpu_cores: (millicores / 1000.0).max(CPU_FLOOR),
        // The recommender records an OOM as a peak sample; a live VPA
        // would see the kill repeat until its target passed the bump,
        // which a fixed trace cannot show, so the bump is also a floor.
        memory_bytes: bytes
            .max(MEMORY_FLOOR)
            .max(aggregate.oom_needed.unwrap_or(0.0).floor()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::traces::{Resources, TRAIN_MINUTES};

    fn history(cpu: f64, memory: f64, limit: f64) -> History {
        History {
            cpu: vec![cpu; TRAIN_MINUTES],
            memory: vec![memory; TRAIN_MINUTES],
            starts: vec![],
            current: Resources {
                cpu_cores: 2.0,
                memory_bytes: limit,
            },
            hpa_target: None,
        }
    }

    #[test]
    fn buckets_match_the_recommender() {
        let b = ExpBuckets::new(1e12, 1e7, 0.05);
        // ceil(ln(1e12 × 0.05 / 1e7 + 1) / ln 1.05) + 1 = ceil(174.6) + 1.
        assert_eq!(b.len(), 176);
        assert_eq!(b.find(5e6), 0);
        assert_eq!(b.find(1e7), 1);
        assert!((b.start(2) - 2.05e7).abs() < 1e-3);
    }

    #[test]
    fn memory_of_a_constant_trace_is_the_bucket_end_plus_margin() {
        // 1 GiB: ln(1073741824 × 0.05 / 1e7 + 1) / ln 1.05 = 37.95 →
        // bucket 37, which ends where bucket 38 starts:
        // 1e7 × (1.05^38 − 1) / 0.05 = 1,077,096,... bytes.
        let gib = 1024.0 * MIB;
        let buckets = ExpBuckets::new(1e12, 1e7, 0.05);
        assert_eq!(buckets.find(gib), 37);
        let end = 1e7 * (1.05_f64.powi(38) - 1.0) / 0.05;
        assert!((end / 1.0771e9 - 1.0).abs() < 1e-4, "{end}");
        let proposal = propose(&history(0.5, gib, 4.0 * gib));
        assert_eq!(proposal.memory_bytes, (end.floor() * 1.15).floor());
        // CPU 0.5: bucket end above 0.5, truncated to millicores, × 1.15.
        let cpu = ExpBuckets::new(1000.0, 0.01, 0.05);
        let end = cpu.start(cpu.find(0.5) + 1);
        assert_eq!(
            proposal.cpu_cores,
            ((end * 1000.0).floor() * 1.15).floor() / 1000.0
        );
    }

    #[test]
    fn an_oom_bumps_the_peak() {
        let gib = 1024.0 * MIB;
        let mut h = history(0.5, gib, 4.0 * gib);
        h.current.memory_bytes = 0.9 * gib;
        // Usage stays above the limit: one kill, at minute 0, lifts day 1's
        // peak to used × 1.2 = max(0.9, 1.0) GiB × 1.2 (over +100 MiB).
        let aggregate = memory_peaks(&h);
        let peaks = &aggregate.peaks;
        assert!((peaks[0].0 - 1.2 * gib).abs() < 1.0, "{peaks:?}");
        assert!(peaks[1..].iter().all(|(p, _)| *p == gib));
        assert_eq!(aggregate.oom_needed, Some(1.2 * gib));
        // Day 1 weighs 2 of 254: p90 stays in 1 GiB's bucket, so the
        // floor decides.
        assert_eq!(propose(&h).memory_bytes, (1.2 * gib).floor());
    }

    #[test]
    fn recent_days_weigh_more() {
        let mut h = history(0.5, 0.0, 1e12);
        // Six days at 1 GiB then one at 2 GiB: weight 128 of 254 on the
        // last day, so p90 lands in 2 GiB's bucket.
        for (minute, value) in h.memory.iter_mut().enumerate() {
            *value = if minute >= 6 * MINUTES_PER_DAY {
                2048.0 * MIB
            } else {
                1024.0 * MIB
            };
        }
        assert!(propose(&h).memory_bytes > 2048.0 * MIB * 1.15);
    }
}
