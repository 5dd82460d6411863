//! Tally's right-sizer as the harness calls it: days 1-7 turned into a
//! [`UsageHistory`] the way the collector's store would present them, then
//! [`recommend_cpu`] and [`recommend_memory`] with the default policy.

use super::Proposal;
use super::score::rising_crossings;
use super::traces::{History, MINUTES_PER_DAY};
use crate::distribution::Distribution;
use crate::rightsizing::{Policy, UsageHistory, recommend_cpu, recommend_memory};

/// Minutes after a (re)start that count as start-up, not steady state.
pub const STARTUP_MINUTES: usize = 60;

/// The right-sizer's input for `history`.
pub fn usage_history(history: &History) -> UsageHistory {
    let mut starting = vec![false; history.memory.len()];
    for start in &history.starts {
        let end = (start + STARTUP_MINUTES).min(starting.len());
        for slot in starting.iter_mut().take(end).skip(*start) {
            *slot = true;
        }
    }
    let steady: Vec<f64> = history
        .memory
        .iter()
        .zip(&starting)
        .filter(|(_, s)| !**s)
        .map(|(m, _)| *m)
        .collect();
    let startup_peak = history
        .memory
        .iter()
        .zip(&starting)
        .filter(|(_, s)| **s)
        .map(|(m, _)| *m)
        .reduce(f64::max);
    let daily_peaks = history
        .memory
        .chunks(MINUTES_PER_DAY)
        .zip(starting.chunks(MINUTES_PER_DAY))
        .filter_map(|(memory, starting)| {
            memory
                .iter()
                .zip(starting)
                .filter(|(_, s)| !**s)
                .map(|(m, _)| *m)
                .reduce(f64::max)
        })
        .collect();
    let limit = history.current.memory_bytes;
    let oom_kills = rising_crossings(&history.memory, limit);
    UsageHistory {
        cpu: (!history.cpu.is_empty())
            .then(|| Distribution::from_values(history.cpu.iter().copied())),
        memory: (!steady.is_empty()).then(|| Distribution::from_values(steady)),
        memory_startup_peak: startup_peak,
        memory_daily_peaks: daily_peaks,
        oom_kills,
        oom_limit_bytes: (oom_kills > 0).then_some(limit),
        // No CPU limit in these traces, so nothing is throttled by one.
        cpu_throttled_share: None,
        cpu_limit: None,
        history_hours: history.cpu.len() as f64 / 60.0,
        hpa_cpu_target: history.hpa_target,
    }
}

/// Tally's proposal; a resource without enough data keeps today's value.
pub fn propose(history: &History) -> Proposal {
    let usage = usage_history(history);
    let policy = Policy::default();
    Proposal {
        cpu_cores: recommend_cpu(&usage, &policy).map_or(history.current.cpu_cores, |p| p.cores),
        memory_bytes: recommend_memory(&usage, &policy)
            .map_or(history.current.memory_bytes, |p| p.bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::traces::{Shape, TRAIN_MINUTES, Trace};

    #[test]
    fn start_up_is_kept_apart_from_the_steady_state() {
        let trace = Trace::generate(Shape::StartupSpike, 5, 0);
        let history = trace.history();
        let usage = usage_history(&history);
        assert_eq!(usage.history_hours, 168.0);
        assert_eq!(usage.memory_daily_peaks.len(), 7);
        let steady_max = usage.memory.as_ref().unwrap().max;
        assert!(usage.memory_startup_peak.unwrap() > 1.8 * steady_max);
        assert_eq!(usage.cpu.as_ref().unwrap().count, TRAIN_MINUTES as u64);
        assert_eq!(usage.oom_kills, 0);
    }
}
