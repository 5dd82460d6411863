//! Storage cards, one volume at a time, priced at the storage class's
//! GiB-month on the provider of the node the volume was seen on:
//! - unclaimed: a persistent volume no pod mounted in the whole window,
//!   seen for at least a day (so a volume waiting for its first pod is
//!   not one): its whole price.
//! - oversized: capacity more than twice what the largest use plus 25 %
//!   needs, on a volume of 50 GiB or more: the price of the capacity
//!   above that need rounded up to 10 GiB. Most CSI drivers grow a volume
//!   online but none shrink one, so the action is a migration.
//! - stale: used bytes unchanged for [`STALE_DAYS`] (old checkpoints,
//!   model versions): the price of the bytes held, which archive or
//!   object storage keeps for a fraction.

use std::collections::BTreeMap;

use super::{Context, card};
use crate::input::{Volume, WorkloadKey};
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};
use crate::rightsizing::bytes_text;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Headroom over the largest use a volume keeps.
const HEADROOM: f64 = 1.25;
/// A volume is oversized beyond this multiple of what it needs.
const OVERSIZE_FACTOR: f64 = 2.0;
/// Smaller volumes are not worth a migration.
const MIN_OVERSIZED_BYTES: f64 = 50.0 * GIB;
/// Proposed sizes are rounded up to this step.
const SIZE_STEP_BYTES: f64 = 10.0 * GIB;
/// Days without a change in used bytes before a volume's data is stale:
/// one default analysis window, and reachable within the collector's
/// default 14-day retention, which bounds how far back a change is seen.
pub const STALE_DAYS: f64 = 7.0;
/// An unmounted volume must be seen this long before it is reported.
const UNCLAIMED_MIN_HOURS: f64 = 24.0;
/// History under which an oversized card is riskier: growth over a week
/// may not show yet.
const WEEK_HOURS: f64 = 7.0 * 24.0;

/// Storage cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let window_hours = context.snapshot.hours().max(1e-9);
    for volume in &context.snapshot.volumes {
        let price = gib_month(context, volume);
        if !volume.mounted {
            out.extend(unclaimed(context, volume, price, window_hours));
            continue;
        }
        out.extend(oversized(context, volume, price, window_hours));
        out.extend(stale(context, volume, price));
    }
}

/// The storage class's price per GiB-month on the provider of the
/// volume's node (AWS when the node's type is unknown).
fn gib_month(context: &Context<'_>, volume: &Volume) -> f64 {
    let provider = context.provider(&volume.node);
    context
        .prices
        .storage_gib_month(&provider, volume.storage_class.as_deref())
}

/// The workload a card is filed under: the mounting pod's, else the
/// volume itself.
fn owner(volume: &Volume) -> WorkloadKey {
    volume.workload.clone().unwrap_or_else(|| WorkloadKey {
        namespace: volume.namespace.clone(),
        kind: "PersistentVolume".to_owned(),
        name: target(volume),
    })
}

fn target(volume: &Volume) -> String {
    volume
        .volume
        .clone()
        .or_else(|| volume.claim.clone())
        .unwrap_or_default()
}

/// `pvc-… (claim ns/data-0, gp3)` for explanations.
fn describe(volume: &Volume) -> String {
    let mut details = Vec::new();
    if let Some(claim) = &volume.claim {
        details.push(format!("claim {}/{claim}", volume.namespace));
    }
    if let Some(class) = &volume.storage_class {
        details.push(class.clone());
    }
    if details.is_empty() {
        format!("volume {}", target(volume))
    } else {
        format!("volume {} ({})", target(volume), details.join(", "))
    }
}

fn unclaimed(
    context: &Context<'_>,
    volume: &Volume,
    price: f64,
    window_hours: f64,
) -> Option<Recommendation> {
    let monthly = volume.capacity_bytes / GIB * price;
    if volume.hours < UNCLAIMED_MIN_HOURS || monthly < context.config.min_monthly_savings {
        return None;
    }
    let evidence = BTreeMap::from([
        ("capacity_bytes".to_owned(), volume.capacity_bytes),
        ("hours_seen".to_owned(), volume.hours),
        ("hours_mounted".to_owned(), 0.0),
        ("price_gib_month".to_owned(), price),
    ]);
    let explanation = format!(
        "The {} provisions {} and no pod mounted it in the {:.0} h it was seen (window \
         {:.0} h). An unclaimed volume is billed in full: {} a month at {} per GiB-month. \
         Snapshot it (or confirm nobody needs it) and delete it, or set the claim's reclaim \
         policy so released volumes do not linger.",
        describe(volume),
        bytes_text(volume.capacity_bytes),
        volume.hours,
        window_hours,
        context.money(monthly),
        context.money(price),
    );
    Some(card(
        Kind::VolumeUnclaimed,
        &owner(volume),
        &target(volume),
        BTreeMap::from([("capacity_bytes".to_owned(), volume.capacity_bytes)]),
        BTreeMap::from([("capacity_bytes".to_owned(), 0.0)]),
        monthly,
        volume.hours / window_hours,
        Risk {
            level: RiskLevel::Medium,
            description: "data is lost if deleted; snapshot first".to_owned(),
        },
        evidence,
        explanation,
    ))
}

/// What the volume needs: its largest use plus headroom, at least 1 GiB.
fn needed_bytes(volume: &Volume) -> f64 {
    (volume.used_max_bytes * HEADROOM).max(GIB)
}

fn oversized(
    context: &Context<'_>,
    volume: &Volume,
    price: f64,
    window_hours: f64,
) -> Option<Recommendation> {
    // A filesystem always uses some bytes for itself: no use at all means
    // the use was not measured, not an empty volume.
    if volume.used_max_bytes <= 0.0 {
        return None;
    }
    let need = needed_bytes(volume);
    let capacity = volume.capacity_bytes;
    if capacity < MIN_OVERSIZED_BYTES || capacity <= OVERSIZE_FACTOR * need {
        return None;
    }
    let proposed = (need / SIZE_STEP_BYTES).ceil() * SIZE_STEP_BYTES;
    let monthly = (capacity - proposed) / GIB * price;
    if monthly < context.config.min_monthly_savings {
        return None;
    }
    let short_history = volume.hours < WEEK_HOURS;
    let evidence = BTreeMap::from([
        ("capacity_bytes".to_owned(), capacity),
        ("used_bytes".to_owned(), volume.used_bytes),
        ("used_max_bytes".to_owned(), volume.used_max_bytes),
        ("needed_bytes".to_owned(), need),
        ("hours_seen".to_owned(), volume.hours),
        ("price_gib_month".to_owned(), price),
    ]);
    let explanation = format!(
        "The {} mounted by {} has {} but used at most {} over {:.0} h ({:.1} %). {} with 25 % \
         headroom is enough and saves {} a month. Most CSI drivers can grow a volume online \
         but not shrink it: create a {} volume, copy the data (or restore a snapshot into it) \
         and switch the claim.",
        describe(volume),
        volume.pod.as_deref().unwrap_or("a pod"),
        bytes_text(capacity),
        bytes_text(volume.used_max_bytes),
        volume.hours,
        volume.used_max_bytes / capacity * 100.0,
        bytes_text(proposed),
        context.money(monthly),
        bytes_text(proposed),
    );
    Some(card(
        Kind::VolumeOversized,
        &owner(volume),
        &target(volume),
        BTreeMap::from([("capacity_bytes".to_owned(), capacity)]),
        BTreeMap::from([("capacity_bytes".to_owned(), proposed)]),
        monthly,
        volume.hours / window_hours,
        Risk {
            level: if short_history {
                RiskLevel::Medium
            } else {
                RiskLevel::Low
            },
            description: if short_history {
                format!(
                    "only {:.0} h of history: growth may not show yet; the migration needs \
                     a copy and a restart",
                    volume.hours
                )
            } else {
                "the migration needs a copy and a restart of the pod".to_owned()
            },
        },
        evidence,
        explanation,
    ))
}

fn stale(context: &Context<'_>, volume: &Volume, price: f64) -> Option<Recommendation> {
    let unchanged = volume.unchanged_hours?;
    let threshold = STALE_DAYS * 24.0;
    if unchanged < threshold || volume.used_bytes <= 0.0 {
        return None;
    }
    let monthly = volume.used_bytes / GIB * price;
    if monthly < context.config.min_monthly_savings {
        return None;
    }
    let evidence = BTreeMap::from([
        ("used_bytes".to_owned(), volume.used_bytes),
        ("capacity_bytes".to_owned(), volume.capacity_bytes),
        ("unchanged_hours".to_owned(), unchanged),
        ("stale_after_hours".to_owned(), threshold),
        ("price_gib_month".to_owned(), price),
    ]);
    let explanation = format!(
        "The {} mounted by {} holds {} that has not changed for {:.1} days (old checkpoints \
         or model versions, typically). Move what is no longer needed to object storage or \
         an archive tier and shrink or delete the volume: the bytes cost {} a month here at \
         {} per GiB-month, before the far lower object-storage price. Data that is read but \
         never written (served model weights) also looks unchanged: check before moving it.",
        describe(volume),
        volume.pod.as_deref().unwrap_or("a pod"),
        bytes_text(volume.used_bytes),
        unchanged / 24.0,
        context.money(monthly),
        context.money(price),
    );
    Some(card(
        Kind::VolumeStale,
        &owner(volume),
        &target(volume),
        BTreeMap::from([("used_bytes".to_owned(), volume.used_bytes)]),
        BTreeMap::from([("used_bytes".to_owned(), 0.0)]),
        monthly,
        // Twice the threshold unchanged is as sure as this signal gets.
        (unchanged / (2.0 * threshold)).clamp(0.5, 1.0),
        Risk {
            level: RiskLevel::Medium,
            description: "unchanged is not unread: confirm nothing reads the data before \
                          archiving it"
                .to_owned(),
        },
        evidence,
        explanation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalyzerConfig;
    use crate::input::{FleetSnapshot, Node};
    use crate::pricing::PriceBook;

    const HOUR_NS: u64 = 3_600_000_000_000;

    fn volume(name: &str, capacity_gib: f64, used_gib: f64) -> Volume {
        Volume {
            namespace: "ml-training".to_owned(),
            claim: Some(format!("data-{name}")),
            volume: Some(name.to_owned()),
            workload: Some(WorkloadKey {
                namespace: "ml-training".to_owned(),
                kind: "StatefulSet".to_owned(),
                name: "trainer".to_owned(),
            }),
            pod: Some("trainer-0".to_owned()),
            node: "node-a".to_owned(),
            storage_class: Some("gp3".to_owned()),
            capacity_bytes: capacity_gib * GIB,
            used_bytes: used_gib * GIB,
            used_max_bytes: used_gib * GIB,
            unchanged_hours: Some(1.0),
            mounted: true,
            hours: 14.0 * 24.0,
        }
    }

    fn cards(nodes: Vec<Node>, volumes: Vec<Volume>) -> Vec<Recommendation> {
        let snapshot = FleetSnapshot {
            from_ns: 0,
            to_ns: 14 * 24 * HOUR_NS,
            nodes,
            volumes,
            ..FleetSnapshot::default()
        };
        let config = AnalyzerConfig::default();
        let prices = PriceBook::builtin().expect("prices");
        let allocation = crate::allocation::allocate(&snapshot, &prices);
        let context = Context::new(&snapshot, &config, &prices, &allocation);
        let mut out = Vec::new();
        recommend(&context, &mut out);
        out
    }

    fn aws_node() -> Node {
        Node {
            name: "node-a".to_owned(),
            instance_type: "m6i.2xlarge".to_owned(),
            ..Node::default()
        }
    }

    #[test]
    fn an_unclaimed_volume_costs_its_whole_capacity() {
        let mut pv = volume("pvc-orphan", 500.0, 0.0);
        pv.mounted = false;
        pv.workload = None;
        pv.pod = None;
        pv.claim = None;
        pv.namespace = String::new();
        pv.unchanged_hours = None;
        let out = cards(vec![aws_node()], vec![pv.clone()]);
        assert_eq!(out.len(), 1, "{out:?}");
        let card = &out[0];
        assert_eq!(card.kind, Kind::VolumeUnclaimed);
        // 500 GiB × 0.08 (gp3).
        assert!(
            (card.monthly_savings - 40.0).abs() < 1e-9,
            "{}",
            card.monthly_savings
        );
        assert_eq!(card.risk.level, RiskLevel::Medium);
        assert_eq!(card.workload.kind, "PersistentVolume");
        assert_eq!(card.target, "pvc-orphan");
        assert_eq!(card.evidence["price_gib_month"], 0.08);
        assert!(card.explanation.contains("40.00"), "{}", card.explanation);
        // Seen for less than a day: a volume waiting for its pod.
        pv.hours = 3.0;
        assert!(cards(vec![aws_node()], vec![pv]).is_empty());
    }

    #[test]
    fn an_oversized_volume_is_sized_to_its_peak_plus_headroom() {
        // Need 20 × 1.25 = 25 GiB → 30 GiB; (1024 − 30) × 0.08 = 79.52.
        let out = cards(vec![aws_node()], vec![volume("pvc-big", 1024.0, 20.0)]);
        assert_eq!(out.len(), 1, "{out:?}");
        let card = &out[0];
        assert_eq!(card.kind, Kind::VolumeOversized);
        assert_eq!(card.proposed["capacity_bytes"], 30.0 * GIB);
        assert!(
            (card.monthly_savings - 79.52).abs() < 1e-9,
            "{}",
            card.monthly_savings
        );
        assert_eq!(card.risk.level, RiskLevel::Low);
        assert_eq!(card.evidence["needed_bytes"], 25.0 * GIB);
        assert!(card.explanation.contains("shrink"), "{}", card.explanation);
    }

    #[test]
    fn well_used_and_small_volumes_get_no_card() {
        let out = cards(
            vec![aws_node()],
            vec![
                // 100 GiB at 45 %: needs 56.25 GiB, 2× that is above 100.
                volume("pvc-healthy", 100.0, 45.0),
                // Mostly empty but under 50 GiB: not worth a migration.
                volume("pvc-small", 20.0, 1.0),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn stale_data_costs_the_bytes_it_holds() {
        let mut pv = volume("pvc-ckpt", 2048.0, 1434.0);
        pv.unchanged_hours = Some(16.0 * 24.0);
        let out = cards(vec![aws_node()], vec![pv.clone()]);
        assert_eq!(out.len(), 1, "{out:?}");
        let card = &out[0];
        assert_eq!(card.kind, Kind::VolumeStale);
        // 1434 GiB × 0.08.
        assert!(
            (card.monthly_savings - 114.72).abs() < 1e-9,
            "{}",
            card.monthly_savings
        );
        // 16 days is past twice the 7-day threshold: full confidence.
        assert_eq!(card.confidence, 1.0);
        assert_eq!(card.evidence["unchanged_hours"], 384.0);
        // Six days unchanged is not stale yet.
        pv.unchanged_hours = Some(6.0 * 24.0);
        assert!(cards(vec![aws_node()], vec![pv]).is_empty());
    }

    #[test]
    fn the_price_follows_the_nodes_provider_and_class() {
        // A GCP node: premium-rwo is pd-ssd at 0.17; 500 GiB unclaimed.
        let node = Node {
            name: "node-a".to_owned(),
            instance_type: "a2-highgpu-1g".to_owned(),
            ..Node::default()
        };
        let mut pv = volume("pvc-gcp", 500.0, 0.0);
        pv.mounted = false;
        pv.storage_class = Some("premium-rwo".to_owned());
        let out = cards(vec![node], vec![pv.clone()]);
        assert!((out[0].monthly_savings - 85.0).abs() < 1e-9, "{out:?}");
        // An unknown node prices at AWS's gp3.
        let out = cards(Vec::new(), vec![volume("pvc-x", 1024.0, 20.0)]);
        assert!((out[0].monthly_savings - 79.52).abs() < 1e-9, "{out:?}");
    }
}
