//! Robusta KRR's `simple` strategy (reference §2.3): CPU = p95 of the raw
//! samples, memory = max × 1.15, floors 10 m and 100 MiB, rounded up to
//! 1 m and 1 MiB, no OOM data (`use_oomkill_data=False`).

use super::Proposal;
use super::traces::History;

const MIB: f64 = 1024.0 * 1024.0;
/// CPU percentile.
pub const CPU_PERCENTILE: f64 = 0.95;
/// Memory headroom over the maximum.
pub const MEMORY_BUFFER: f64 = 0.15;
/// `cpu_min_value`, cores.
pub const CPU_FLOOR: f64 = 0.010;
/// `memory_min_value`, bytes.
pub const MEMORY_FLOOR: f64 = 100.0 * MIB;

/// Prometheus's `quantile_over_time`: linear interpolation between the
/// closest ranks of the sorted samples (rank = q × (n − 1)).
pub fn prometheus_quantile(q: f64, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let weight = rank - rank.floor();
    Some(sorted[lower] * (1.0 - weight) + sorted[upper] * weight)
}

/// KRR's `_round_value`: up to the next millicore.
fn millicores_up(cores: f64) -> f64 {
    (cores * 1000.0 - 1e-9).ceil() / 1000.0
}

/// KRR's `_round_value`: up to the next MiB.
fn mib_up(bytes: f64) -> f64 {
    (bytes / MIB - 1e-9).ceil() * MIB
}

/// KRR-simple's proposal. With identical pods, the max over pods of each
/// pod's p95 is one pod's p95.
pub fn propose(history: &History) -> Proposal {
    let cpu =
        prometheus_quantile(CPU_PERCENTILE, &history.cpu).unwrap_or(history.current.cpu_cores);
    let max = history.memory.iter().copied().fold(f64::NAN, f64::max);
    let memory = if max.is_nan() {
        history.current.memory_bytes
    } else {
        max * (1.0 + MEMORY_BUFFER)
    };
    Proposal {
        cpu_cores: millicores_up(cpu.max(CPU_FLOOR)),
        memory_bytes: mib_up(memory.max(MEMORY_FLOOR)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::traces::Resources;

    fn history(cpu: Vec<f64>, memory: Vec<f64>) -> History {
        History {
            cpu,
            memory,
            starts: vec![],
            current: Resources {
                cpu_cores: 4.0,
                memory_bytes: 8192.0 * MIB,
            },
            hpa_target: None,
        }
    }

    #[test]
    fn cpu_is_the_exact_p95_of_a_ramp() {
        // 0.01..=1.00 cores, shuffled: rank 0.95 × 99 = 94.05, between
        // 0.95 and 0.96 → 0.9505, rounded up to 0.951.
        let mut ramp: Vec<f64> = (1..=100).map(|i| f64::from(i) / 100.0).collect();
        ramp.reverse();
        ramp.swap(3, 70);
        let p95 = prometheus_quantile(0.95, &ramp).unwrap();
        assert!((p95 - 0.9505).abs() < 1e-12, "{p95}");
        let proposal = propose(&history(ramp, vec![1000.0 * MIB; 100]));
        assert_eq!(proposal.cpu_cores, 0.951);
        // Memory: 1000 MiB × 1.15 = 1150 MiB exactly.
        assert_eq!(proposal.memory_bytes, 1150.0 * MIB);
    }

    #[test]
    fn floors_apply() {
        let proposal = propose(&history(vec![0.001; 200], vec![10.0 * MIB; 200]));
        assert_eq!(proposal.cpu_cores, 0.01);
        assert_eq!(proposal.memory_bytes, 100.0 * MIB);
    }
}
