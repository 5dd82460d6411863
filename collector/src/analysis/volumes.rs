//! Volumes from the store into the snapshot: one entry per persistent
//! volume, from the pod volume series (capacity and use, by the agent's
//! `volumes` source) and the cluster's volume list
//! (`tally_persistentvolume_capacity_bytes`), whose volumes without a pod
//! volume series in the window are the unmounted ones. Volumes without a
//! PV (emptyDir on the node's disk) are the node's cost, not storage's.
//!
//! How long the used bytes have not changed is read from the hourly and
//! daily aggregates, newest first: the newest day whose minimum or maximum
//! differs from the latest value holds the last change, and its hours
//! narrow it down where hourly aggregates are still kept (within 48 h;
//! older days answer as a whole, so the change is put at the day's end).
//! The look-back is the series' whole history, not the analysis window:
//! staleness is about since when, and the store's retention bounds it.

use std::collections::BTreeMap;

use tally_analyzer::input::{FleetSnapshot, Volume};
use tally_schema::catalog;

use super::extract::{Span, each, label, presence, workload};
use crate::store::{Series, Stat, Store};

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;

/// A label's value, `None` when absent or empty.
fn non_empty(series: &Series, key: &str) -> Option<String> {
    series
        .label(key)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The series seen last (a PV whose pod was replaced has one per pod).
fn newest<'a>(series: &[&'a Series]) -> Option<&'a Series> {
    series.iter().copied().max_by_key(|s| s.last_ns)
}

/// A PV's pod volume series.
#[derive(Default)]
struct Mounted<'a> {
    capacity: Vec<&'a Series>,
    used: Vec<&'a Series>,
}

/// Fills `snapshot.volumes`.
pub fn extract(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    let mut mounted: BTreeMap<String, Mounted<'_>> = BTreeMap::new();
    for (def, used) in [
        (&catalog::POD_VOLUME_CAPACITY, false),
        (&catalog::POD_VOLUME_USED, true),
    ] {
        for series in each(store, def, span) {
            let Some(pv) = non_empty(series, "persistentvolume") else {
                continue;
            };
            let entry = mounted.entry(pv).or_default();
            if used {
                entry.used.push(series);
            } else {
                entry.capacity.push(series);
            }
        }
    }
    let mut volumes: BTreeMap<String, Volume> = BTreeMap::new();
    for (pv, found) in &mounted {
        let Some(capacity) = newest(&found.capacity) else {
            continue;
        };
        let latest_used = newest(&found.used).and_then(Series::latest);
        let used_max = found
            .used
            .iter()
            .filter_map(|s| store.stat(s, Stat::Max, span.from_ns, span.to_ns))
            .fold(0.0, f64::max);
        let hours = found
            .capacity
            .iter()
            .map(|s| presence(store, s, span).1)
            .fold(0.0, f64::max);
        let has_pod = capacity.label("k8s.pod.name").is_some();
        volumes.insert(
            pv.clone(),
            Volume {
                namespace: label(capacity, "k8s.namespace.name"),
                claim: non_empty(capacity, "persistentvolumeclaim"),
                volume: Some(pv.clone()),
                workload: has_pod.then(|| workload(capacity)),
                pod: non_empty(capacity, "k8s.pod.name"),
                node: label(capacity, "k8s.node.name"),
                storage_class: non_empty(capacity, "storage_class"),
                capacity_bytes: capacity.latest().unwrap_or(0.0),
                used_bytes: latest_used.unwrap_or(0.0),
                used_max_bytes: used_max,
                unchanged_hours: latest_used
                    .and_then(|latest| unchanged_hours(store, &found.used, latest, span.to_ns)),
                mounted: true,
                hours,
            },
        );
    }
    // The cluster's list: what the node cannot know (claim, class) for
    // mounted volumes, and the volumes nobody mounted.
    let mut listed: BTreeMap<String, Vec<&Series>> = BTreeMap::new();
    for series in each(store, &catalog::PERSISTENTVOLUME_CAPACITY, span) {
        if let Some(pv) = non_empty(series, "persistentvolume") {
            listed.entry(pv).or_default().push(series);
        }
    }
    for (pv, series) in &listed {
        let Some(newest) = newest(series) else {
            continue;
        };
        let claim = non_empty(newest, "persistentvolumeclaim");
        let class = non_empty(newest, "storage_class");
        if let Some(volume) = volumes.get_mut(pv) {
            volume.claim = volume.claim.take().or(claim);
            volume.storage_class = volume.storage_class.take().or(class);
            continue;
        }
        let hours = series
            .iter()
            .map(|s| presence(store, s, span).1)
            .fold(0.0, f64::max);
        volumes.insert(
            pv.clone(),
            Volume {
                namespace: label(newest, "claim_namespace"),
                claim,
                volume: Some(pv.clone()),
                node: label(newest, "k8s.node.name"),
                storage_class: class,
                capacity_bytes: newest.latest().unwrap_or(0.0),
                mounted: false,
                hours,
                ..Volume::default()
            },
        );
    }
    snapshot.volumes = volumes.into_values().collect();
}

/// Hours from the last change of the used bytes to `to_ns`, over every
/// series of the volume; since its first point when it never changed.
fn unchanged_hours(store: &Store, series: &[&Series], latest: f64, to_ns: u64) -> Option<f64> {
    let first = series.iter().filter_map(|s| store.first_ns(s)).min()?;
    let since = series
        .iter()
        .filter_map(|s| last_change(store, s, latest, to_ns))
        .max()
        .unwrap_or(first);
    Some(to_ns.saturating_sub(since) as f64 / HOUR_NS as f64)
}

/// The end of the newest hour (or, past the hourly tier, day) of `series`
/// whose values were not all `latest`; `None` when none was.
fn last_change(store: &Store, series: &Series, latest: f64, to_ns: u64) -> Option<u64> {
    let first = store.first_ns(series)?;
    // A stretch without points changed nothing.
    let steady = |from: u64, to: u64| match (
        store.stat(series, Stat::Min, from, to),
        store.stat(series, Stat::Max, from, to),
    ) {
        (Some(min), Some(max)) => min == latest && max == latest,
        _ => true,
    };
    let mut day = to_ns / DAY_NS * DAY_NS;
    loop {
        let day_end = (day + DAY_NS - 1).min(to_ns);
        if !steady(day, day_end) {
            let mut hour = day_end / HOUR_NS * HOUR_NS;
            while hour > day && steady(hour, (hour + HOUR_NS - 1).min(day_end)) {
                hour -= HOUR_NS;
            }
            return Some((hour + HOUR_NS).min(to_ns));
        }
        if day <= first {
            return None;
        }
        day -= DAY_NS;
    }
}

#[cfg(test)]
mod tests {

    use tally_analyzer::config::AnalyzerConfig;
    use tally_analyzer::pricing::PriceBook;
    use tally_analyzer::recommend;
    use tally_analyzer::recommendation::Kind;

    use super::*;
    use crate::analysis::extract;

    /// 16 days of a three-node simulated fleet (seed 7) at 1-hour steps,
    /// so the checkpoint volume has weeks without a change; and the end.
    fn sixteen_days() -> (Store, u64) {
        crate::analysis::tests::simulated_store_with(3, 16 * 24, 3600, 21)
    }

    #[test]
    fn planted_volume_problems_get_their_cards_and_healthy_volumes_none() {
        let (store, to) = sixteen_days();
        let config = AnalyzerConfig::default();
        let span = extract::Span {
            from_ns: to - config.window_seconds * 1_000_000_000,
            to_ns: to,
            idle_from_ns: to - HOUR_NS,
        };
        let snapshot = extract::extract(&store, span);
        let claim = |prefix: &str| -> Vec<&Volume> {
            snapshot
                .volumes
                .iter()
                .filter(|v| v.claim.as_deref().is_some_and(|c| c.starts_with(prefix)))
                .collect()
        };
        let (checkpoints, scratch, orphan, healthy) = (
            claim("checkpoints-"),
            claim("scratch-"),
            claim("results-exp-41"),
            claim("data-"),
        );
        assert_eq!((checkpoints.len(), scratch.len(), orphan.len()), (1, 1, 1));
        assert!(healthy.len() >= 3, "{:?}", snapshot.volumes);
        assert_eq!(
            snapshot.volumes.len(),
            healthy.len() + 3,
            "every volume is one of the four kinds"
        );
        let gib = 1024.0 * 1024.0 * 1024.0;

        // What the store says about each.
        let ckpt = checkpoints[0];
        assert!(ckpt.mounted && ckpt.workload.is_some());
        assert_eq!(ckpt.storage_class.as_deref(), Some("gp3"));
        assert_eq!(ckpt.used_bytes, 1434.0 * gib);
        assert!(
            ckpt.unchanged_hours.is_some_and(|h| h >= 15.0 * 24.0),
            "{ckpt:?}"
        );
        assert!(!orphan[0].mounted);
        assert_eq!(orphan[0].capacity_bytes, 500.0 * gib);
        assert_eq!(orphan[0].namespace, "ml-training");
        assert!((20.0 * gib..21.0 * gib).contains(&scratch[0].used_max_bytes));
        for v in &healthy {
            assert!(v.mounted, "{v:?}");
            assert!(v.unchanged_hours.is_some_and(|h| h <= 2.0), "{v:?}");
            assert!(v.used_max_bytes >= 0.45 * v.capacity_bytes, "{v:?}");
        }

        let prices = PriceBook::builtin().expect("prices");
        let report = recommend::analyze(&snapshot, &config, &prices).expect("report");
        let volume_cards: Vec<_> = report
            .recommendations
            .iter()
            .filter(|c| {
                matches!(
                    c.kind,
                    Kind::VolumeUnclaimed | Kind::VolumeOversized | Kind::VolumeStale
                )
            })
            .collect();
        for card in &volume_cards {
            println!(
                "{:?} {} {} {:.2} {}",
                card.kind, card.workload, card.target, card.monthly_savings, card.explanation
            );
        }
        let kinds_of = |v: &Volume| -> Vec<Kind> {
            volume_cards
                .iter()
                .filter(|c| Some(&c.target) == v.volume.as_ref())
                .map(|c| c.kind)
                .collect()
        };
        assert_eq!(kinds_of(orphan[0]), [Kind::VolumeUnclaimed]);
        assert_eq!(kinds_of(ckpt), [Kind::VolumeStale]);
        assert_eq!(kinds_of(scratch[0]), [Kind::VolumeOversized]);
        for v in &healthy {
            assert_eq!(kinds_of(v), [], "{v:?}");
        }
        assert_eq!(volume_cards.len(), 3);
        // gp3 at 0.08 a GiB-month: 500 GiB; 1434 GiB; 1024 − 30 GiB.
        let savings = |kind| {
            volume_cards
                .iter()
                .find(|c| c.kind == kind)
                .map_or(0.0, |c| c.monthly_savings)
        };
        assert!((savings(Kind::VolumeUnclaimed) - 40.0).abs() < 1e-6);
        assert!((savings(Kind::VolumeStale) - 114.72).abs() < 1e-6);
        assert!((savings(Kind::VolumeOversized) - 79.52).abs() < 1e-6);
    }
}
