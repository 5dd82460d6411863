//! Spot readiness, from what the fleet shows rather than a static
//! checklist alone. Kubecost's checklist (controller kind, more than one
//! replica, no local storage) is the floor; on top of it the expected
//! saving is net of interruption rework: each interruption costs the
//! workload's restart (the provider's notice — AWS 2 min, GCP and Azure
//! 30 s — is too short for most model loads, so the replica's whole
//! start-up is lost capacity) and, for batch jobs, the work since the last
//! checkpoint. The interruption rate comes from the AWS Spot Advisor
//! bucket of the instance type the workload runs on.
//!
//! Verdicts: `spot-safe` (a Deployment with two or more replicas and no
//! pod-local data), `spot-with-checkpointing` (Jobs and CronJobs that write
//! to object storage, the evidence of checkpoints), else no card
//! (keep on demand). PodDisruptionBudgets and rollout settings are not
//! reported by any source yet; the card says so.

use std::collections::{BTreeMap, HashSet};

use super::{Context, card};
use crate::HOURS_PER_MONTH;
use crate::input::WorkloadKey;
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

/// Monthly interruption probability of an advisor bucket: the middle of
/// its range (">20%" is taken at 25 %).
pub fn bucket_rate(bucket: &str) -> Option<f64> {
    match bucket {
        "<5%" => Some(0.025),
        "5-10%" => Some(0.075),
        "10-15%" => Some(0.125),
        "15-20%" => Some(0.175),
        ">20%" => Some(0.25),
        _ => None,
    }
}

/// Hours of a replica lost per interruption for a service: a restart
/// and the load it misses (start-up is not measured yet).
const SERVICE_REWORK_HOURS: f64 = 0.25;
/// Hours of work lost per interruption for a checkpointing job: half a
/// checkpoint interval, taken as an hour.
const JOB_REWORK_HOURS: f64 = 0.5;

#[derive(Default)]
struct Candidate<'a> {
    pods: HashSet<&'a str>,
    on_demand_monthly: f64,
    instance_type: Option<&'a str>,
    node: &'a str,
    local_data: bool,
}

/// Spot cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let snapshot = context.snapshot;
    let on_demand: HashSet<&str> = snapshot
        .nodes
        .iter()
        .filter(|n| n.capacity_type != "spot")
        .map(|n| n.name.as_str())
        .collect();
    let types: std::collections::HashMap<&str, &str> = snapshot
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.instance_type.as_str()))
        .collect();
    let instance_of = |node: &str| types.get(node).copied();
    let factor = context.allocation.monthly_factor();
    let mut candidates: BTreeMap<&WorkloadKey, Candidate<'_>> = BTreeMap::new();
    for c in &context.allocation.containers {
        if !on_demand.contains(c.node.as_str()) {
            continue;
        }
        let entry = candidates.entry(&c.workload).or_default();
        entry.pods.insert(&c.pod);
        entry.on_demand_monthly += c.total() * factor;
        if entry.instance_type.is_none() {
            entry.instance_type = instance_of(&c.node);
            entry.node = &c.node;
        }
    }
    // Pod-local data: a mounted volume without a claim (emptyDir with its
    // own filesystem, hostPath).
    for v in &snapshot.volumes {
        if let (Some(w), None) = (&v.workload, &v.claim)
            && let Some(candidate) = candidates.get_mut(w)
        {
            candidate.local_data = true;
        }
    }
    let checkpointing: HashSet<&WorkloadKey> = snapshot
        .flows
        .iter()
        .filter(|f| f.class == "service" && f.transmit_bytes > 0.0)
        .map(|f| &f.workload)
        .collect();
    for (workload, c) in candidates {
        let service = workload.kind == "Deployment" && c.pods.len() >= 2 && !c.local_data;
        let batch = matches!(workload.kind.as_str(), "Job" | "CronJob")
            && checkpointing.contains(workload)
            && !c.local_data;
        if !(service || batch) {
            continue;
        }
        let Some(instance) = c.instance_type.and_then(|t| context.prices.instance(t)) else {
            continue;
        };
        let (Some(discount), Some(rate)) = (
            instance.spot_discount,
            instance
                .interruption_bucket
                .as_deref()
                .and_then(bucket_rate),
        ) else {
            continue;
        };
        // Interruptions a month across the workload's nodes' share, and
        // what each costs: lost replica-hours at the spot price.
        let spot_monthly = c.on_demand_monthly * (1.0 - discount);
        let replicas = c.pods.len() as f64;
        let rework_hours = if service {
            SERVICE_REWORK_HOURS
        } else {
            JOB_REWORK_HOURS
        };
        let rework = rate * replicas * rework_hours * spot_monthly / replicas / HOURS_PER_MONTH;
        let savings = c.on_demand_monthly - spot_monthly - rework;
        if savings < context.config.min_monthly_savings {
            continue;
        }
        let verdict = if service {
            "spot-safe"
        } else {
            "spot-with-checkpointing"
        };
        let bucket = instance.interruption_bucket.clone().unwrap_or_default();
        out.push(card(
            Kind::Spot,
            workload,
            verdict,
            BTreeMap::from([("spot".to_owned(), 0.0)]),
            BTreeMap::from([("spot".to_owned(), 1.0)]),
            savings,
            (context.snapshot.hours() / 24.0 / 7.0).min(1.0),
            Risk {
                level: if rate > 0.15 {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                },
                description: format!(
                    "{bucket} of {} instances interrupted a month ({} notice)",
                    instance.instance_type,
                    if instance.provider == "aws" { "2 min" } else { "30 s" }
                ),
            },
            BTreeMap::from([
                ("replicas".to_owned(), replicas),
                ("on_demand_monthly".to_owned(), c.on_demand_monthly),
                ("spot_discount".to_owned(), discount),
                ("interruptions_per_month".to_owned(), rate),
                ("rework_monthly".to_owned(), rework),
            ]),
            format!(
                "{workload} runs {} on on-demand {} ({} a month). {} Spot {} is {:.0} % \
                 cheaper and {bucket} of its capacity is interrupted a month; after rework \
                 ({} a month) it saves {}. Not checked yet: PodDisruptionBudgets and \
                 rollout settings (no source reports them).",
                if replicas > 1.0 {
                    format!("{replicas:.0} replicas")
                } else {
                    "its pods".to_owned()
                },
                instance.instance_type,
                context.money(c.on_demand_monthly),
                if service {
                    "It is a Deployment with two or more replicas and no pod-local data, so an interruption costs one replica's restart."
                } else {
                    "It is a batch job that writes to object storage (checkpoints), so an interruption costs the work since the last one."
                },
                instance.instance_type,
                discount * 100.0,
                context.money(rework),
                context.money(savings),
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_map_to_monthly_rates() {
        assert_eq!(bucket_rate("<5%"), Some(0.025));
        assert_eq!(bucket_rate(">20%"), Some(0.25));
        assert_eq!(bucket_rate("often"), None);
    }
}
