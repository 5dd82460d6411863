//! Schedules: a workload whose CPU use falls to almost nothing at the same
//! hours every day (dev notebooks, office-hours tools, batch with night
//! lows), or on the same days every week (weekends), gets a scale-down
//! schedule for those hours and days: to zero for a single replica, to one
//! replica for more. Hours come from the store's hourly aggregates of the
//! last 48 hours (each hour of the day seen on two days), days from its
//! daily aggregates over the window (each weekday seen on every week of
//! it). The risk is measured on the worst day: the busiest of the proposed
//! off-hours (off-days) as a share of the peak hour (day).

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
/// Least hours of history on working days when there are off-days (each
/// hour of the day seen once).
const MIN_WORKING_HOURS: usize = 24;
/// Least whole days of history for a weekly cycle (every weekday seen).
const MIN_DAYS: usize = 7;
const DAY_NS: u64 = 24 * HOUR_NS;
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Day of the week of a UTC time, Monday 0 (1970-01-01 was a Thursday).
pub fn weekday(ns: u64) -> usize {
    ((ns / DAY_NS + 3) % 7) as usize
}

/// The longest run of `true` in a circular sequence, as (first, length).
fn longest_circular<const N: usize>(off: &[bool; N]) -> (usize, usize) {
    if off.iter().all(|o| *o) {
        return (0, N);
    }
    let (mut best, mut current) = ((0, 0), (0, 0));
    for i in 0..2 * N {
        if off[i % N] {
            if current.1 == 0 {
                current.0 = i % N;
            }
            current.1 += 1;
            if current.1 > best.1 {
                best = current;
            }
        } else {
            current = (0, 0);
        }
    }
    (best.0, best.1.min(N))
}

/// Off-days of a workload's daily CPU totals: the longest run of weekdays
/// on which every observed day stayed at most [`OFF_SHARE`] of the busiest
/// day, as (first weekday, days, busiest off-day's share); `None` without a
/// week of history or without such days.
fn off_days(daily: &BTreeMap<u64, f64>) -> Option<(usize, usize, f64)> {
    if daily.len() < MIN_DAYS {
        return None;
    }
    let peak = daily.values().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return None;
    }
    let mut worst = [0.0f64; 7];
    let mut seen = [0usize; 7];
    for (day, value) in daily {
        let of_week = weekday(*day);
        worst[of_week] = worst[of_week].max(value / peak);
        seen[of_week] += 1;
    }
    let off: [bool; 7] = std::array::from_fn(|d| seen[d] > 0 && worst[d] <= OFF_SHARE);
    let (first, length) = longest_circular(&off);
    if length == 0 || length == 7 {
        return None;
    }
    let share = (0..length)
        .map(|i| worst[(first + i) % 7])
        .fold(0.0, f64::max);
    Some((first, length, share))
}

/// Off-hours of a workload's hourly CPU on its working days: the longest
/// circular run of hours of the day at most [`OFF_SHARE`] of the peak hour
/// on every day observed, as (first hour, hours, busiest off-hour's share,
/// peak, hours observed); `None` without enough history.
fn off_hours(
    hourly: &BTreeMap<u64, f64>,
    off_days: Option<(usize, usize, f64)>,
) -> Option<(usize, usize, f64, f64, usize)> {
    let is_off_day =
        |ns: u64| off_days.is_some_and(|(first, length, _)| (weekday(ns) + 7 - first) % 7 < length);
    let working: Vec<(u64, f64)> = hourly
        .iter()
        .filter(|(hour, _)| !is_off_day(**hour))
        .map(|(h, v)| (*h, *v))
        .collect();
    let least = if off_days.is_some() {
        MIN_WORKING_HOURS
    } else {
        MIN_HOURS
    };
    if working.len() < least {
        return None;
    }
    let peak = working.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    if peak <= 0.0 {
        return None;
    }
    // The busiest observation of each hour of the day.
    let mut worst = [0.0f64; 24];
    let mut seen = [0usize; 24];
    for (hour, value) in &working {
        let of_day = ((hour / HOUR_NS) % 24) as usize;
        worst[of_day] = worst[of_day].max(value / peak);
        seen[of_day] += 1;
    }
    let off: [bool; 24] = std::array::from_fn(|h| seen[h] > 0 && worst[h] <= OFF_SHARE);
    let (first, length) = longest_circular(&off);
    if length < MIN_OFF_HOURS || length == 24 {
        return None;
    }
    let share = (0..length)
        .map(|i| worst[(first + i) % 24])
        .fold(0.0, f64::max);
    Some((first, length, share, peak, working.len()))
}

/// Schedule cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let mut workloads: BTreeMap<&WorkloadKey, Vec<&Container>> = BTreeMap::new();
    for c in &context.snapshot.containers {
        if c.workload.kind != "DaemonSet" && !(c.cpu_hourly.is_empty() && c.cpu_daily.is_empty()) {
            workloads.entry(&c.workload).or_default().push(c);
        }
    }
    let factor = context.allocation.monthly_factor();
    let mut monthly: BTreeMap<&WorkloadKey, f64> = BTreeMap::new();
    for c in &context.allocation.containers {
        *monthly.entry(&c.workload).or_default() += c.total() * factor;
    }
    for (workload, containers) in workloads {
        let (mut hourly, mut daily): (BTreeMap<u64, f64>, BTreeMap<u64, f64>) = Default::default();
        for c in &containers {
            for (hour, core_seconds) in &c.cpu_hourly {
                *hourly.entry(*hour).or_default() += core_seconds;
            }
            for (day, core_seconds) in &c.cpu_daily {
                *daily.entry(*day).or_default() += core_seconds;
            }
        }
        let days = off_days(&daily);
        let hours = off_hours(&hourly, days);
        if days.is_none() && hours.is_none() {
            continue;
        }
        let (day_count, hour_count) = (days.map_or(0, |d| d.1), hours.map_or(0, |h| h.1));
        // Share of the week off: the off-days whole, then the off-hours of
        // the other days.
        let off_share =
            day_count as f64 / 7.0 + (7 - day_count) as f64 / 7.0 * hour_count as f64 / 24.0;
        let pods: std::collections::HashSet<&str> =
            containers.iter().map(|c| c.pod.as_str()).collect();
        let replicas = pods.len();
        let keep = if replicas > 1 { 1 } else { 0 };
        let cost = monthly.get(workload).copied().unwrap_or(0.0);
        let savings = cost * off_share * (replicas - keep) as f64 / replicas.max(1) as f64;
        if savings < context.config.min_monthly_savings {
            continue;
        }
        let risk_share = days.map_or(0.0, |d| d.2).max(hours.map_or(0.0, |h| h.2));
        let day_text = days.map(|(first, length, _)| {
            let last = (first + length - 1) % 7;
            if length == 1 {
                WEEKDAYS[first].to_owned()
            } else {
                format!("{}-{}", WEEKDAYS[first], WEEKDAYS[last])
            }
        });
        let hour_text = hours.map(|(first, length, ..)| {
            format!("{first:02}:00-{:02}:00 UTC", (first + length) % 24)
        });
        let target = match (&day_text, &hour_text) {
            (Some(d), Some(h)) => format!("{d} and {h} on other days"),
            (Some(d), None) => format!("{d} (UTC)"),
            (None, Some(h)) => h.clone(),
            (None, None) => continue,
        };
        let mut proposed = BTreeMap::from([("replicas_off_hours".to_owned(), keep as f64)]);
        let mut evidence = BTreeMap::from([
            ("worst_off_share".to_owned(), risk_share),
            ("monthly_cost".to_owned(), cost),
            ("off_share_of_week".to_owned(), off_share),
        ]);
        let mut observed = Vec::new();
        if let Some((first, length, share, peak, seen)) = hours {
            proposed.insert("off_from_hour_utc".to_owned(), first as f64);
            proposed.insert("off_hours".to_owned(), length as f64);
            evidence.insert("peak_core_seconds_per_hour".to_owned(), peak);
            evidence.insert("worst_off_hour_share".to_owned(), share);
            evidence.insert("hours_observed".to_owned(), seen as f64);
            observed.push(format!(
                "at most {:.1} % of its peak-hour CPU from {} on every working day observed ({seen} hours)",
                share * 100.0,
                hour_text.clone().unwrap_or_default().replace('-', " to "),
            ));
        }
        if let Some((first, length, share)) = days {
            proposed.insert("off_from_weekday".to_owned(), first as f64);
            proposed.insert("off_days".to_owned(), length as f64);
            evidence.insert("worst_off_day_share".to_owned(), share);
            evidence.insert("days_observed".to_owned(), daily.len() as f64);
            observed.push(format!(
                "at most {:.1} % of its busiest day's CPU on {} of every week observed ({} days)",
                share * 100.0,
                day_text.clone().unwrap_or_default(),
                daily.len()
            ));
        }
        let confidence = match (days, hours) {
            (Some(_), _) => (daily.len() as f64 / 14.0).min(1.0),
            (None, Some(h)) => (h.4 as f64 / 48.0).min(1.0),
            (None, None) => 0.0,
        };
        out.push(card(
            Kind::Schedule,
            workload,
            &target,
            BTreeMap::from([("replicas".to_owned(), replicas as f64)]),
            proposed,
            savings,
            confidence,
            Risk {
                level: if keep == 0 {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                },
                description: format!(
                    "on the worst day the busiest off-period used {:.1} % of the peak",
                    risk_share * 100.0
                ),
            },
            evidence,
            format!(
                "{workload} uses {}. Scale it to {keep} {} then (a CronJob or KEDA cron \
                 scaler; the node autoscaler then removes the capacity), {:.0} % of the \
                 week: {} a month. {}",
                observed.join(", and "),
                if keep == 1 { "replica" } else { "replicas" },
                off_share * 100.0,
                context.money(savings),
                if keep == 0 {
                    "Nobody can use it in those hours unless it is woken first."
                } else {
                    "One replica keeps serving the trickle."
                },
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_count_from_monday() {
        // 2026-11-28 was a Saturday, 1970-01-01 a Thursday.
        assert_eq!(weekday(1_795_824_000 * 1_000_000_000), 5);
        assert_eq!(weekday(0), 3);
        assert_eq!(
            WEEKDAYS[weekday(1_795_824_000 * 1_000_000_000 + DAY_NS)],
            "Sun"
        );
    }

    /// Two weeks of daily totals, busy on working days, `weekend` on
    /// Saturday and Sunday.
    fn two_weeks(weekend: f64) -> BTreeMap<u64, f64> {
        let monday = 1_795_996_800 * 1_000_000_000; // 2026-11-30
        (0..14)
            .map(|d| {
                let day = monday + d * DAY_NS;
                (
                    day,
                    if weekday(day) >= 5 {
                        weekend
                    } else {
                        1000.0 + d as f64
                    },
                )
            })
            .collect()
    }

    #[test]
    fn weekends_off_are_found_and_busy_weekends_are_not() {
        assert_eq!(weekday(1_795_996_800 * 1_000_000_000), 0);
        let (first, length, share) = off_days(&two_weeks(50.0)).expect("weekend off");
        assert_eq!((first, length), (5, 2));
        // The busiest day is the second Friday (1000 + 11).
        assert!((share - 50.0 / 1011.0).abs() < 1e-12);
        assert_eq!(off_days(&two_weeks(500.0)), None);
        // Under a week of history: no verdict.
        let short: BTreeMap<u64, f64> = two_weeks(0.0).into_iter().take(6).collect();
        assert_eq!(off_days(&short), None);
    }

    #[test]
    fn off_hours_skip_the_off_days() {
        // 48 hours: Saturday (off all day) then Monday... use Sunday and
        // Monday: Sunday idle, Monday busy 08-18 only.
        let sunday = 1_795_910_400 * 1_000_000_000; // 2026-11-29
        let hourly: BTreeMap<u64, f64> = (0..48u64)
            .map(|h| {
                let at = sunday + h * HOUR_NS;
                let of_day = h % 24;
                let busy = h >= 24 && (8..18).contains(&of_day);
                (at, if busy { 3600.0 } else { 10.0 })
            })
            .collect();
        // Without off-days both days count: the idle Sunday does not hide
        // Monday's nights.
        let (first, length, _, _, seen) = off_hours(&hourly, None).expect("nights off");
        assert_eq!((first, length, seen), (18, 14, 48));
        // With Sunday off, Monday's 24 hours alone decide; fewer are too few.
        let monday_morning: BTreeMap<u64, f64> =
            hourly.iter().take(40).map(|(h, v)| (*h, *v)).collect();
        assert_eq!(off_hours(&monday_morning, Some((5, 2, 0.01))), None);
        let (first, length, share, peak, seen) =
            off_hours(&hourly, Some((5, 2, 0.01))).expect("nights off");
        assert_eq!((first, length, seen), (18, 14, 24));
        assert_eq!(peak, 3600.0);
        assert!((share - 10.0 / 3600.0).abs() < 1e-12);
    }

    #[test]
    fn the_longest_off_run_wraps_around_midnight() {
        let mut off = [false; 24];
        for h in (20..24).chain(0..8) {
            off[h] = true;
        }
        off[3] = true;
        assert_eq!(longest_circular(&off), (20, 12));
        let mut off = [false; 24];
        off[5] = true;
        off[6] = true;
        assert_eq!(longest_circular(&off), (5, 2));
        assert_eq!(longest_circular(&[false; 24]), (0, 0));
        assert_eq!(longest_circular(&[true; 24]), (0, 24));
    }
}
