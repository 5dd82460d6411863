//! CPU and memory right-sizing from the store's distributions.
//!
//! Where the anchors differ (reference §2.7) and why Tally chooses as it
//! does:
//! - CPU: KRR takes p95, VPA p90 × 1.15. Tally takes the quantile whose
//!   share of time above the request meets a stated target (2 %: p98),
//!   because a request below demand is the time a container depends on
//!   spare node capacity. When the container was throttled, usage above
//!   its limit was never observed, so the proposal never goes below the
//!   limit.
//! - Memory: KRR takes max × 1.15 and VPA p90 of daily peaks × 1.15, both
//!   blind to trend and start-up. Tally fits the daily peaks of the
//!   steady state, sizes to a weekly exceedance risk (1 %), projects a
//!   leak over the review horizon, keeps the start-up peak and never goes
//!   below an observed OOM point (bumped as VPA does: max(+20 %, +100 MiB)).
//! - HPA: the request of a horizontally scaled workload is sized from
//!   per-pod demand divided by the HPA's target utilization, which is a
//!   fixed point of the autoscaler; KRR's spiral (request → lower peak →
//!   lower request) cannot happen.

use crate::distribution::Distribution;

const MIB: f64 = 1024.0 * 1024.0;

/// What the right-sizer reads about one container (or one pod of a
/// workload).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageHistory {
    /// Sampled CPU cores over the window.
    pub cpu: Option<Distribution>,
    /// Sampled working set over the window, start-up excluded.
    pub memory: Option<Distribution>,
    /// Largest working set while starting (first hour after a start).
    pub memory_startup_peak: Option<f64>,
    /// Steady-state daily peaks of the working set, oldest first.
    pub memory_daily_peaks: Vec<f64>,
    /// OOM kills in the window.
    pub oom_kills: u64,
    /// The memory limit in force when the container was OOM-killed.
    pub oom_limit_bytes: Option<f64>,
    /// Share of CFS periods throttled (0..=1), when a limit is set.
    pub cpu_throttled_share: Option<f64>,
    /// CPU limit in cores.
    pub cpu_limit: Option<f64>,
    /// Hours of history.
    pub history_hours: f64,
    /// The HPA's target utilization (0..1) when an HPA scales the
    /// workload on this resource.
    pub hpa_cpu_target: Option<f64>,
}

/// Knobs of the right-sizer, with defaults chosen and measured in
/// docs/benchmarks.md ("Right-sizing quality").
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Target share of time CPU usage may exceed the request.
    pub cpu_share_above: f64,
    /// Throttled share of periods that marks usage as capped by the limit.
    pub cpu_throttle_evidence: f64,
    /// Smallest CPU request, cores.
    pub cpu_floor: f64,
    /// Target probability that memory exceeds the proposal in a week.
    pub memory_risk_week: f64,
    /// Least headroom over the highest steady peak.
    pub memory_min_headroom: f64,
    /// Headroom over the start-up peak (start-up peaks vary from start to
    /// start more than steady peaks from day to day).
    pub memory_startup_headroom: f64,
    /// Headroom when too few daily peaks exist to fit them.
    pub memory_fallback_headroom: f64,
    /// Smallest memory request, bytes.
    pub memory_floor: f64,
    /// Days a leak is projected over (until the next review).
    pub leak_horizon_days: f64,
    /// Least history before recommending, hours.
    pub min_history_hours: f64,
    /// Least samples before recommending.
    pub min_samples: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cpu_share_above: 0.02,
            cpu_throttle_evidence: 0.01,
            cpu_floor: 0.01,
            memory_risk_week: 0.01,
            memory_min_headroom: 0.02,
            memory_startup_headroom: 0.05,
            memory_fallback_headroom: 0.15,
            memory_floor: 32.0 * MIB,
            leak_horizon_days: 7.0,
            min_history_hours: 3.0,
            min_samples: 100,
        }
    }
}

/// A proposed CPU request.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuProposal {
    /// Cores.
    pub cores: f64,
    /// The statistic it came from, e.g. `p98` or `p95 / 0.8 HPA target`.
    pub statistic: String,
    /// Predicted share of time usage exceeds the proposal.
    pub share_above: f64,
    /// Set when throttling hid demand and the limit became the floor.
    pub throttled_share: Option<f64>,
}

/// A proposed memory request (and limit).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryProposal {
    /// Bytes.
    pub bytes: f64,
    /// How it was reached, e.g. `max steady peak 1.2 GiB + 5 %`.
    pub statistic: String,
    /// Predicted probability the working set exceeds it within a week.
    pub risk_week: f64,
    /// Leak rate, bytes per day, when the daily peaks trend upward.
    pub leak_bytes_per_day: Option<f64>,
    /// The OOM floor applied, bytes.
    pub oom_floor: Option<f64>,
    /// The start-up peak kept, bytes.
    pub startup_peak: Option<f64>,
}

/// How much the history supports a proposal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// 0..=1: days of history and days' worth of samples, capped at a
    /// week (VPA's `min(lifespan, samples / 1440)` in days, over 7).
    pub score: f64,
    /// Days of history.
    pub history_days: f64,
    /// Samples behind the distributions.
    pub samples: u64,
}

impl Confidence {
    /// `low` below a day, `medium` below a week, else `high`.
    pub fn level(&self) -> &'static str {
        match self.score {
            s if s >= 1.0 => "high",
            s if s >= 1.0 / 7.0 => "medium",
            _ => "low",
        }
    }
}

/// Confidence of a history; samples are counted at one a minute like
/// VPA's 1440 a day, whatever their real rate.
pub fn confidence(usage: &UsageHistory) -> Confidence {
    let samples = usage
        .cpu
        .as_ref()
        .map_or(0, |d| d.count)
        .max(usage.memory.as_ref().map_or(0, |d| d.count));
    let history_days = usage.history_hours / 24.0;
    let sample_days = samples as f64 / 1440.0;
    Confidence {
        score: (history_days.min(sample_days) / 7.0).clamp(0.0, 1.0),
        history_days,
        samples,
    }
}

fn enough(usage: &UsageHistory, distribution: &Distribution, policy: &Policy) -> bool {
    usage.history_hours >= policy.min_history_hours && distribution.count >= policy.min_samples
}

/// Rounds cores up to a millicore.
fn millicores_up(cores: f64) -> f64 {
    (cores * 1000.0 - 1e-9).ceil() / 1000.0
}

/// Rounds bytes up to a MiB.
fn mib_up(bytes: f64) -> f64 {
    (bytes / MIB - 1e-9).ceil() * MIB
}

/// The CPU request for `usage`, or `None` without enough data.
pub fn recommend_cpu(usage: &UsageHistory, policy: &Policy) -> Option<CpuProposal> {
    let cpu = usage.cpu.as_ref()?;
    if !enough(usage, cpu, policy) {
        return None;
    }
    let q = 1.0 - policy.cpu_share_above;
    let percentile = format!("p{}", trim(q * 100.0));
    let (mut cores, mut statistic) = match usage.hpa_cpu_target.filter(|t| *t > 0.0 && *t <= 1.0) {
        // The HPA holds per-pod usage near target × request: dividing by
        // the target keeps today's request when the HPA is in control and
        // lowers it only where pods idle below the target.
        Some(target) => (
            cpu.quantile(q)? / target,
            format!("{percentile} / {} HPA target", trim(target)),
        ),
        None => (cpu.quantile(q)?, percentile),
    };
    let mut throttled_share = None;
    if let (Some(limit), Some(share)) = (usage.cpu_limit, usage.cpu_throttled_share)
        && share >= policy.cpu_throttle_evidence
        && limit > cores
    {
        cores = limit;
        statistic = format!("limit {} (throttled {:.1} %)", trim(limit), share * 100.0);
        throttled_share = Some(share);
    }
    let cores = millicores_up(cores.max(policy.cpu_floor));
    Some(CpuProposal {
        cores,
        statistic,
        share_above: cpu.share_above(cores),
        throttled_share,
    })
}

/// Mean and standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, variance.sqrt())
}

/// Least-squares slope per day of the daily peaks, its standard error
/// and the residual standard deviation.
fn trend(peaks: &[f64]) -> (f64, f64, f64) {
    let n = peaks.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = peaks.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in peaks.iter().enumerate() {
        let dx = x as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let residual = peaks
        .iter()
        .enumerate()
        .map(|(x, y)| (y - (mean_y + slope * (x as f64 - mean_x))).powi(2))
        .sum::<f64>()
        / (n - 2.0).max(1.0);
    let standard_error = if sxx > 0.0 {
        (residual / sxx).sqrt()
    } else {
        0.0
    };
    (slope, standard_error, residual.sqrt())
}

/// Standard normal upper tail P(Z > z) (Abramowitz-Stegun 7.1.26 erfc,
/// error below 1.5e-7).
pub fn normal_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Probability that a week's daily peaks (normal, `mean`, `sd`) pass
/// `value` at least once.
fn weekly_risk(value: f64, mean: f64, sd: f64) -> f64 {
    if sd <= 0.0 {
        return if value >= mean { 0.0 } else { 1.0 };
    }
    let daily = normal_tail((value - mean) / sd);
    1.0 - (1.0 - daily).powi(7)
}

/// The memory request (= limit) for `usage`, or `None` without enough
/// data.
pub fn recommend_memory(usage: &UsageHistory, policy: &Policy) -> Option<MemoryProposal> {
    let memory = usage.memory.as_ref()?;
    if !enough(usage, memory, policy) {
        return None;
    }
    let steady_peak = memory.max;
    let peaks = &usage.memory_daily_peaks;
    let mut statistic;
    let mut bytes;
    let mut leak_bytes_per_day = None;
    let risk_model: Option<(f64, f64)>;
    if peaks.len() >= 3 {
        let (slope, slope_error, residual_sd) = trend(peaks);
        let (mean, sd) = mean_sd(peaks);
        // A leak: a slope three standard errors above zero (day-to-day
        // swings of a batch input do not pass) that adds over 2 % of the
        // mean across the window.
        let rise = slope * (peaks.len() as f64 - 1.0);
        let leaking = slope > 3.0 * slope_error && rise > 0.02 * mean;
        // Smallest z meeting the weekly risk: P(day) = 1 − (1 − r)^(1/7).
        let daily = 1.0 - (1.0 - policy.memory_risk_week).powf(1.0 / 7.0);
        let z = inverse_tail(daily);
        bytes = steady_peak * (1.0 + policy.memory_min_headroom);
        statistic = format!(
            "max steady peak {} + {} %",
            bytes_text(steady_peak),
            trim(policy.memory_min_headroom * 100.0)
        );
        if leaking {
            let last = peaks.last().copied().unwrap_or(steady_peak);
            // A leak is a bug to fix, not a size: the projection covers
            // the review horizon but never more than twice the peak.
            // The slope's own error (two standard errors) is projected
            // too: a fit on a week misses by that much on the next.
            let projected =
                (last + (slope + 2.0 * slope_error) * policy.leak_horizon_days + z * residual_sd)
                    .min(2.0 * steady_peak.max(last));
            if projected > bytes {
                bytes = projected;
                statistic = format!(
                    "leak of {}/day projected {} days past the last peak (at most 2 × peak)",
                    bytes_text(slope),
                    trim(policy.leak_horizon_days)
                );
            }
            leak_bytes_per_day = Some(slope);
            risk_model = Some((last + slope * policy.leak_horizon_days, residual_sd));
        } else {
            let fitted = mean + z * sd;
            if fitted > bytes {
                bytes = fitted;
                statistic = format!(
                    "daily peaks mean {} + {} sd for {} %/week risk",
                    bytes_text(mean),
                    trim((z * 100.0).round() / 100.0),
                    trim(policy.memory_risk_week * 100.0)
                );
            }
            risk_model = Some((mean, sd));
        }
    } else {
        bytes = steady_peak * (1.0 + policy.memory_fallback_headroom);
        statistic = format!(
            "max {} + {} % (under 3 daily peaks)",
            bytes_text(steady_peak),
            trim(policy.memory_fallback_headroom * 100.0)
        );
        risk_model = None;
    }
    let startup_headroom = policy.memory_startup_headroom;
    let startup_peak = usage
        .memory_startup_peak
        .filter(|p| p * (1.0 + startup_headroom) > bytes);
    if let Some(peak) = startup_peak {
        bytes = peak * (1.0 + startup_headroom);
        statistic = format!(
            "start-up peak {} + {} %",
            bytes_text(peak),
            trim(startup_headroom * 100.0)
        );
    }
    let mut oom_floor = None;
    if usage.oom_kills > 0 {
        let point = usage
            .oom_limit_bytes
            .unwrap_or(steady_peak)
            .max(steady_peak);
        let floor = (point * 1.2).max(point + 100.0 * MIB);
        if floor > bytes {
            bytes = floor;
            statistic = format!("OOM-killed at {}: max(+20 %, +100 MiB)", bytes_text(point));
        }
        oom_floor = Some(floor);
    }
    let bytes = mib_up(bytes.max(policy.memory_floor));
    let risk_week = match risk_model {
        Some((mean, sd)) => weekly_risk(bytes, mean, sd),
        // Too few peaks to fit: the sampled share above, over a week.
        None => 1.0 - (1.0 - memory.share_above(bytes)).powi(7 * 1440),
    };
    Some(MemoryProposal {
        bytes,
        statistic,
        risk_week,
        leak_bytes_per_day,
        oom_floor,
        startup_peak,
    })
}

/// z with P(Z > z) = `p`, by bisection on [`normal_tail`].
fn inverse_tail(p: f64) -> f64 {
    let (mut low, mut high) = (-10.0, 10.0);
    for _ in 0..80 {
        let mid = (low + high) / 2.0;
        if normal_tail(mid) > p {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

/// A number without trailing zeros (`0.8`, `98`).
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Bytes as MiB or GiB text.
pub fn bytes_text(bytes: f64) -> String {
    if bytes.abs() >= 1024.0 * MIB {
        format!(
            "{} GiB",
            trim((bytes / 1024.0 / MIB * 100.0).round() / 100.0)
        )
    } else {
        format!("{} MiB", trim((bytes / MIB).round()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * MIB;

    fn history(cpu: Vec<f64>, memory: Vec<f64>, peaks: Vec<f64>) -> UsageHistory {
        UsageHistory {
            cpu: Some(Distribution::from_values(cpu)),
            memory: Some(Distribution::from_values(memory)),
            memory_daily_peaks: peaks,
            history_hours: 24.0 * 7.0,
            ..UsageHistory::default()
        }
    }

    #[test]
    fn cpu_takes_p98_and_states_its_risk() {
        // 1..=1000 millicores: p98 is 0.98 cores, rounded up to the end
        // of its bucket (a 160-bucket sketch over three decades).
        let usage = history(
            (1..=1000).map(|m| m as f64 / 1000.0).collect(),
            vec![GIB; 200],
            vec![],
        );
        let proposal = recommend_cpu(&usage, &Policy::default()).expect("proposal");
        assert!((0.98..=1.0).contains(&proposal.cores), "{proposal:?}");
        assert_eq!(proposal.statistic, "p98");
        assert!(proposal.share_above <= 0.02 + 1e-9, "{proposal:?}");
    }

    #[test]
    fn throttling_keeps_the_limit() {
        let mut usage = history(vec![0.5; 500], vec![GIB; 500], vec![]);
        usage.cpu_limit = Some(0.5);
        usage.cpu_throttled_share = Some(0.2);
        // Usage sits at the limit: demand above it is unseen.
        let proposal = recommend_cpu(&usage, &Policy::default()).expect("proposal");
        assert_eq!(proposal.cores, 0.5);
        usage.cpu = Some(Distribution::from_values(vec![0.3; 500]));
        let proposal = recommend_cpu(&usage, &Policy::default()).expect("proposal");
        assert_eq!(proposal.cores, 0.5, "{proposal:?}");
        assert_eq!(proposal.throttled_share, Some(0.2));
    }

    #[test]
    fn hpa_target_is_a_fixed_point() {
        // Pods held at 0.8 cores by an HPA targeting 80 % of a 1-core
        // request: the request stays at 1 core instead of shrinking.
        let mut usage = history(vec![0.8; 500], vec![GIB; 500], vec![]);
        usage.hpa_cpu_target = Some(0.8);
        let proposal = recommend_cpu(&usage, &Policy::default()).expect("proposal");
        assert!((1.0..1.01).contains(&proposal.cores), "{proposal:?}");
    }

    #[test]
    fn too_little_history_gives_nothing() {
        let mut usage = history(vec![0.5; 50], vec![GIB; 50], vec![]);
        assert_eq!(recommend_cpu(&usage, &Policy::default()), None);
        usage.cpu = Some(Distribution::from_values(vec![0.5; 500]));
        usage.history_hours = 2.0;
        assert_eq!(recommend_cpu(&usage, &Policy::default()), None);
    }

    #[test]
    fn steady_memory_gets_two_percent_over_its_peak() {
        let peaks = vec![GIB; 7];
        let usage = history(vec![0.1; 500], vec![GIB; 500], peaks);
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        // 1 GiB × 1.02 = 1044.48 MiB → 1045 MiB.
        assert_eq!(proposal.bytes, 1045.0 * MIB);
        assert_eq!(proposal.risk_week, 0.0);
        assert_eq!(proposal.leak_bytes_per_day, None);
    }

    #[test]
    fn noisy_peaks_are_sized_to_the_weekly_risk() {
        let peaks: Vec<f64> = [1.0, 1.3, 0.9, 1.2, 1.0, 1.4, 1.1]
            .iter()
            .map(|g| g * GIB)
            .collect();
        let usage = history(vec![0.1; 500], vec![1.4 * GIB; 500], peaks.clone());
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        let (mean, sd) = mean_sd(&peaks);
        // 1 %/week → daily 0.1435 % → z ≈ 2.98.
        let expected = mean + 2.98 * sd;
        assert!(
            (proposal.bytes / expected - 1.0).abs() < 0.01,
            "{} vs {expected}",
            proposal.bytes
        );
        assert!(
            (proposal.risk_week - 0.01).abs() < 0.002,
            "{}",
            proposal.risk_week
        );
    }

    #[test]
    fn a_leak_is_projected_over_the_horizon() {
        // +100 MiB a day from 1 GiB.
        let peaks: Vec<f64> = (0..7).map(|d| GIB + d as f64 * 100.0 * MIB).collect();
        let usage = history(vec![0.1; 500], vec![GIB + 600.0 * MIB; 500], peaks);
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        let leak = proposal.leak_bytes_per_day.expect("leak");
        assert!((leak / (100.0 * MIB) - 1.0).abs() < 1e-6, "{leak}");
        // Last peak 1.6 GiB + 7 days × 100 MiB = 2324 MiB (under 2 × peak).
        assert_eq!(proposal.bytes, (1024.0 + 600.0 + 700.0) * MIB);
        // A steep leak (100 MiB → 3100 MiB, projected 6600 MiB) is capped
        // at twice the peak.
        let peaks: Vec<f64> = (0..7).map(|d| (100.0 + d as f64 * 500.0) * MIB).collect();
        let usage = history(vec![0.1; 500], vec![3100.0 * MIB; 500], peaks);
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        assert_eq!(proposal.bytes, 6200.0 * MIB);
    }

    #[test]
    fn never_below_an_observed_oom_point() {
        let mut usage = history(vec![0.1; 500], vec![900.0 * MIB; 500], vec![900.0 * MIB; 7]);
        usage.oom_kills = 2;
        usage.oom_limit_bytes = Some(GIB);
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        // max(1 GiB × 1.2, 1 GiB + 100 MiB) = 1228.8 MiB → 1229 MiB.
        assert_eq!(proposal.bytes, 1229.0 * MIB);
        assert!(proposal.bytes > GIB);
    }

    #[test]
    fn the_start_up_peak_is_kept() {
        let mut usage = history(vec![0.1; 500], vec![GIB; 500], vec![GIB; 7]);
        usage.memory_startup_peak = Some(3.0 * GIB);
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        assert_eq!(proposal.bytes, (3.0 * 1.05 * 1024.0_f64).ceil() * MIB);
        assert_eq!(proposal.startup_peak, Some(3.0 * GIB));
    }

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((inverse_tail(0.05) - 1.644_85).abs() < 1e-3);
    }

    #[test]
    fn confidence_grows_to_a_week() {
        let mut usage = history(vec![0.1; 10_080], vec![GIB; 10_080], vec![]);
        assert_eq!(confidence(&usage).level(), "high");
        usage.history_hours = 36.0;
        assert_eq!(confidence(&usage).level(), "medium");
        usage.history_hours = 5.0;
        assert_eq!(confidence(&usage).level(), "low");
    }
}
