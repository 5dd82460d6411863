//! Scores a proposal on days 8-14: the dollars it saves at OpenCost's
//! default list prices, the OOM kills it would cause and the minutes CPU
//! demand would run past its request.

use super::Proposal;
use super::report::Score;
use super::traces::{TOTAL_MINUTES, TRAIN_MINUTES, Trace};
use crate::HOURS_PER_MONTH;

/// OpenCost's default CPU price (GCP us-central1, reference §2.1).
pub const CPU_USD_PER_CORE_HOUR: f64 = 0.031611;
/// OpenCost's default RAM price (GCP us-central1, reference §2.1).
pub const RAM_USD_PER_GIB_HOUR: f64 = 0.004237;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Monthly list price of a request.
pub fn monthly_usd(cpu_cores: f64, memory_bytes: f64) -> f64 {
    (cpu_cores * CPU_USD_PER_CORE_HOUR + memory_bytes / GIB * RAM_USD_PER_GIB_HOUR)
        * HOURS_PER_MONTH
}

/// Times `series` rises above `limit`; after a crossing the next counts
/// only once usage is back at or below the limit (a kill, not every
/// minute spent above).
pub fn rising_crossings(series: &[f64], limit: f64) -> u64 {
    let mut armed = true;
    let mut crossings = 0;
    for value in series {
        if *value > limit {
            if armed {
                crossings += 1;
                armed = false;
            }
        } else {
            armed = true;
        }
    }
    crossings
}

/// Scores `proposal` on days 8-14 of `trace`. Cost is requests × running
/// pods, so an HPA workload is re-simulated at both requests; CPU has no
/// limit, so demand above the request is the starvation a full node
/// would cause.
pub fn score(trace: &Trace, proposal: &Proposal) -> Score {
    let window = TRAIN_MINUTES..TOTAL_MINUTES;
    let current = trace.current;
    let proposed_series = trace.pod_series(proposal.cpu_cores, window.clone());
    let minutes = proposed_series.cpu.len().max(1) as f64;
    let mean_replicas =
        |replicas: &[u32]| replicas.iter().map(|r| f64::from(*r)).sum::<f64>() / minutes;
    let (current_pods, proposed_pods) = if trace.hpa.is_some() {
        let current_series = trace.pod_series(current.cpu_cores, window);
        (
            mean_replicas(&current_series.replicas),
            mean_replicas(&proposed_series.replicas),
        )
    } else {
        (1.0, 1.0)
    };
    let current_usd = monthly_usd(
        current.cpu_cores * current_pods,
        current.memory_bytes * current_pods,
    );
    let proposed_usd = monthly_usd(
        proposal.cpu_cores * proposed_pods,
        proposal.memory_bytes * proposed_pods,
    );
    let throttled = proposed_series
        .cpu
        .iter()
        .filter(|c| **c > proposal.cpu_cores)
        .count();
    let oom_events = rising_crossings(&proposed_series.memory, proposal.memory_bytes);
    Score {
        containers: 1,
        current_usd_month: current_usd,
        savings_usd_month: current_usd - proposed_usd,
        oom_events,
        oom_containers: u64::from(oom_events > 0),
        throttled_minutes: throttled as u64,
        minutes: proposed_series.cpu.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::traces::{Resources, Shape};

    #[test]
    fn crossings_count_rises_not_minutes_above() {
        let series = [1.0, 3.0, 4.0, 2.5, 2.0, 1.0, 2.1, 2.1, 1.9, 2.0, 5.0];
        // Limit 2: up at 3.0 and above through 2.5 (one kill), back at the
        // limit at 2.0, up at 2.1 (two), back at 1.9, up at 5.0 (three).
        assert_eq!(rising_crossings(&series, 2.0), 3);
        assert_eq!(rising_crossings(&series, 10.0), 0);
        // Already above at the first minute counts.
        assert_eq!(rising_crossings(&[3.0, 3.0, 1.0, 3.0], 2.0), 2);
    }

    #[test]
    fn scores_a_flat_container() {
        let cpu = vec![0.5; TOTAL_MINUTES];
        let mut memory = vec![GIB; TOTAL_MINUTES];
        // Three separate excursions above 1.5 GiB in days 8-14, one in days 1-7.
        for minute in [
            100,
            TRAIN_MINUTES + 10,
            TRAIN_MINUTES + 11,
            TRAIN_MINUTES + 500,
            TOTAL_MINUTES - 1,
        ] {
            memory[minute] = 2.0 * GIB;
        }
        let trace = Trace {
            shape: Shape::Steady,
            name: "flat".into(),
            cpu,
            memory,
            starts: vec![],
            current: Resources {
                cpu_cores: 1.0,
                memory_bytes: 4.0 * GIB,
            },
            hpa: None,
        };
        let proposal = Proposal {
            cpu_cores: 0.4,
            memory_bytes: 1.5 * GIB,
        };
        let score = score(&trace, &proposal);
        assert_eq!(score.oom_events, 3);
        assert_eq!(score.throttled_minutes, TRAIN_MINUTES as u64);
        let expected = (0.6 * CPU_USD_PER_CORE_HOUR + 2.5 * RAM_USD_PER_GIB_HOUR) * 730.0;
        assert!((score.savings_usd_month - expected).abs() < 1e-9);
    }
}
