//! Schedules: a workload whose CPU use falls to almost nothing at the same
//! hours every day (dev notebooks, office-hours tools, batch with night
//! lows) gets a scale-down schedule for those hours: to zero for a single
//! replica, to one replica for more. Hours come from the store's hourly
//! aggregates of the last 48 hours, so each hour of the day is seen on two
//! days; the risk is measured on the worst day: the busiest of the
//! proposed off-hours, as a share of the workload's peak hour.

use std::collections::BTreeMap;

use super::{Context, card};
use crate::input::{Container, WorkloadKey};
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

const HOUR_NS: u64 = 3_600_000_000_000;
/// An hour is off when every observation of it is at most this share of
/// the workload's peak hour.
const OFF_SHARE: f64 = 0.1;
/// Shortest run of off hours worth a schedule.
const MIN_OFF_HOURS: usize = 4;
/// Least hours of hourly history (each hour of the day seen once and a
/// half).
const MIN_HOURS: usize = 36;

/// The longest run of `true` in a circular day, as (first hour, length).
fn longest_circular_run(off: &[bool; 24]) -> (usize, usize) {
    if off.iter().all(|o| *o) {
        return (0, 24);
    }
    let (mut best, mut current) = ((0, 0), (0, 0));
    for i in 0..48 {
        if off[i % 24] {
            if current.1 == 0 {
                current.0 = i % 24;
            }
            current.1 += 1;
            if current.1 > best.1 {
                best = current;
            }
        } else {
            current = (0, 0);
        }
    }
    (best.0, best.1.min(24))
}

/// Schedule cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let mut workloads: BTreeMap<&WorkloadKey, Vec<&Container>> = BTreeMap::new();
    for c in &context.snapshot.containers {
        if c.workload.kind != "DaemonSet" && !c.cpu_hourly.is_empty() {
            workloads.entry(&c.workload).or_default().push(c);
        }
    }
    let factor = context.allocation.monthly_factor();
    let mut monthly: BTreeMap<&WorkloadKey, f64> = BTreeMap::new();
    for c in &context.allocation.containers {
        *monthly.entry(&c.workload).or_default() += c.total() * factor;
    }
    for (workload, containers) in workloads {
        let mut by_hour: BTreeMap<u64, f64> = BTreeMap::new();
        for c in &containers {
            for (hour, core_seconds) in &c.cpu_hourly {
                *by_hour.entry(*hour).or_default() += core_seconds;
            }
        }
        if by_hour.len() < MIN_HOURS {
            continue;
        }
        let peak = by_hour.values().copied().fold(0.0, f64::max);
        if peak <= 0.0 {
            continue;
        }
        // The busiest observation of each hour of the day.
        let mut worst = [0.0f64; 24];
        let mut seen = [0usize; 24];
        for (hour, value) in &by_hour {
            let of_day = ((hour / HOUR_NS) % 24) as usize;
            worst[of_day] = worst[of_day].max(*value / peak);
            seen[of_day] += 1;
        }
        let off: [bool; 24] = std::array::from_fn(|h| seen[h] > 0 && worst[h] <= OFF_SHARE);
        let (first, length) = longest_circular_run(&off);
        if length < MIN_OFF_HOURS || length == 24 {
            continue;
        }
        let pods: std::collections::HashSet<&str> =
            containers.iter().map(|c| c.pod.as_str()).collect();
        let replicas = pods.len();
        let keep = if replicas > 1 { 1 } else { 0 };
        let cost = monthly.get(workload).copied().unwrap_or(0.0);
        let savings =
            cost * length as f64 / 24.0 * (replicas - keep) as f64 / replicas.max(1) as f64;
        if savings < context.config.min_monthly_savings {
            continue;
        }
        let risk_share = (0..length)
            .map(|i| worst[(first + i) % 24])
            .fold(0.0, f64::max);
        let last = (first + length) % 24;
        out.push(card(
            Kind::Schedule,
            workload,
            &format!("{first:02}:00-{last:02}:00 UTC"),
            BTreeMap::from([("replicas".to_owned(), replicas as f64)]),
            BTreeMap::from([
                ("replicas_off_hours".to_owned(), keep as f64),
                ("off_from_hour_utc".to_owned(), first as f64),
                ("off_hours".to_owned(), length as f64),
            ]),
            savings,
            (by_hour.len() as f64 / 48.0).min(1.0),
            Risk {
                level: if keep == 0 {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                },
                description: format!(
                    "on the worst day the busiest off-hour used {:.1} % of the peak hour",
                    risk_share * 100.0
                ),
            },
            BTreeMap::from([
                ("peak_core_seconds_per_hour".to_owned(), peak),
                ("worst_off_hour_share".to_owned(), risk_share),
                ("hours_observed".to_owned(), by_hour.len() as f64),
                ("monthly_cost".to_owned(), cost),
            ]),
            format!(
                "{workload} uses at most {:.1} % of its peak-hour CPU from {first:02}:00 to \
                 {last:02}:00 UTC on every day observed ({} hours). Scale it to {keep} \
                 {} for those {length} hours (a CronJob or KEDA cron scaler; the node \
                 autoscaler then removes the capacity): {} a month. {}",
                risk_share * 100.0,
                by_hour.len(),
                if keep == 1 { "replica" } else { "replicas" },
                context.money(savings),
                if keep == 0 {
                    "Nobody can use it in those hours unless it is woken first."
                } else {
                    "One replica keeps serving the night's trickle."
                },
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_off_run_wraps_around_midnight() {
        let mut off = [false; 24];
        for h in (20..24).chain(0..8) {
            off[h] = true;
        }
        off[3] = true;
        assert_eq!(longest_circular_run(&off), (20, 12));
        let mut off = [false; 24];
        off[5] = true;
        off[6] = true;
        assert_eq!(longest_circular_run(&off), (5, 2));
        assert_eq!(longest_circular_run(&[false; 24]), (0, 0));
        assert_eq!(longest_circular_run(&[true; 24]), (0, 24));
    }
}
