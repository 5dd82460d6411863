//! Spot readiness, from what the fleet shows rather than a static
//! checklist alone. Kubecost's checklist is the floor: a Deployment (a
//! StatefulSet is not spot-ready), more than one replica, no pod-local
//! data, a PodDisruptionBudget keeping at most half the replicas
//! (`minAvailable / replicas <= 0.5`) and a rollout that may take down at
//! least a tenth of them (`(replicas - maxUnavailable) / replicas <= 0.9`).
//! On top of it the expected saving is net of interruption rework: each
//! interruption costs the time a replacement needs to be ready beyond the
//! provider's notice (AWS 2 min, GCP and Azure 30 s): node provisioning plus
//! the workload's measured pod start-up (scheduled to ready: image pull and
//! model load included), and for batch jobs the work since the last
//! checkpoint. The interruption rate comes from the AWS Spot Advisor
//! bucket of the instance type the workload runs on.
//!
//! Verdicts: `spot-safe` (the checklist holds), `spot-with-checkpointing`
//! (Jobs and CronJobs that write to object storage, the evidence of
//! checkpoints), else no card (keep on demand).

use std::collections::{BTreeMap, HashSet};

use super::{Context, card};
use crate::HOURS_PER_MONTH;
use crate::input::{WorkloadKey, WorkloadSpec};
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

/// Hours of a replica lost per interruption for a service whose start-up
/// no source measured: a restart and the load it misses.
const SERVICE_REWORK_HOURS: f64 = 0.25;
/// Seconds to get a replacement node (cluster autoscaler or Karpenter).
const PROVISION_SECONDS: f64 = 90.0;
/// Least capacity lost per interruption (in-flight requests, connection
/// draining), seconds.
const MIN_LOST_SECONDS: f64 = 60.0;
/// Kubecost's checklist: a budget keeping more than this share of the
/// replicas blocks the drain an interruption needs.
const MAX_PDB_SHARE: f64 = 0.5;
/// Kubecost's checklist: a rollout keeping more than this share available
/// is too tight to absorb a lost node.
const MAX_ROLLOUT_AVAILABLE_SHARE: f64 = 0.9;

/// The provider's interruption notice, seconds.
pub fn notice_seconds(provider: &str) -> f64 {
    if provider == "aws" { 120.0 } else { 30.0 }
}

/// Replica-hours lost per interruption of a service: the replacement's
/// node provisioning and pod start-up beyond the notice, at least
/// [`MIN_LOST_SECONDS`]; [`SERVICE_REWORK_HOURS`] when start-up is unknown.
pub fn service_rework_hours(startup_seconds: Option<f64>, notice_seconds: f64) -> f64 {
    match startup_seconds {
        Some(startup) => {
            (PROVISION_SECONDS + startup - notice_seconds).max(MIN_LOST_SECONDS) / 3600.0
        }
        None => SERVICE_REWORK_HOURS,
    }
}

/// Why Kubecost's checklist fails for a service, if it does.
fn checklist_failure(spec: Option<&WorkloadSpec>, replicas: f64) -> Option<String> {
    let spec = spec?;
    if let Some((min_available, name)) = &spec.pdb_min_available
        && replicas > 0.0
        && min_available / replicas > MAX_PDB_SHARE
    {
        return Some(format!(
            "PodDisruptionBudget {name} keeps {min_available:.0} of {replicas:.0} replicas"
        ));
    }
    if let Some(max_unavailable) = spec.rollout_max_unavailable
        && replicas > 0.0
        && (replicas - max_unavailable.floor()) / replicas > MAX_ROLLOUT_AVAILABLE_SHARE
    {
        return Some(format!(
            "its rollout keeps {:.0} of {replicas:.0} replicas available",
            replicas - max_unavailable.floor()
        ));
    }
    None
}
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
    let specs: std::collections::HashMap<&WorkloadKey, &WorkloadSpec> = snapshot
        .workload_specs
        .iter()
        .map(|s| (&s.workload, s))
        .collect();
    for (workload, c) in candidates {
        let spec = specs.get(workload).copied();
        // The controller's desired count when known: pods seen over the
        // window include the ones a rollout replaced.
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(c.pods.len() as f64);
        let service = workload.kind == "Deployment"
            && replicas >= 2.0
            && !c.local_data
            && checklist_failure(spec, replicas).is_none();
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
        let notice = notice_seconds(&instance.provider);
        let startup = spec.and_then(|s| s.startup_seconds_max);
        let rework_hours = if service {
            service_rework_hours(startup, notice)
        } else {
            JOB_REWORK_HOURS
        };
        // Each replica's node is interrupted `rate` times a month and each
        // interruption loses `rework_hours` of that replica.
        let per_replica_hourly = spot_monthly / replicas.max(1.0) / HOURS_PER_MONTH;
        let rework = rate * replicas.max(1.0) * rework_hours * per_replica_hourly;
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
        let slow_start = startup.is_some_and(|s| s + PROVISION_SECONDS > notice);
        let notice_text = if notice >= 120.0 { "2 min" } else { "30 s" };
        let mut evidence = BTreeMap::from([
            ("replicas".to_owned(), replicas),
            ("on_demand_monthly".to_owned(), c.on_demand_monthly),
            ("spot_discount".to_owned(), discount),
            ("interruptions_per_month".to_owned(), rate),
            ("rework_hours_per_interruption".to_owned(), rework_hours),
            ("rework_monthly".to_owned(), rework),
            ("notice_seconds".to_owned(), notice),
        ]);
        let mut checked = Vec::new();
        if let Some(spec) = spec {
            if let Some(startup) = spec.startup_seconds_max {
                evidence.insert("pod_startup_seconds_max".to_owned(), startup);
                checked.push(format!(
                    "its slowest pod took {startup:.0} s from scheduling to ready{}",
                    if slow_start {
                        format!(
                            ", so with {PROVISION_SECONDS:.0} s for a new node a replacement \
                             is ready {:.0} s after the {notice_text} notice runs out",
                            startup + PROVISION_SECONDS - notice
                        )
                    } else {
                        format!(", inside the {notice_text} notice")
                    }
                ));
            }
            if let Some((min_available, name)) = &spec.pdb_min_available {
                evidence.insert("pdb_min_available".to_owned(), *min_available);
                checked.push(format!(
                    "PodDisruptionBudget {name} keeps {min_available:.0} of {replicas:.0}"
                ));
            }
            if let Some(max_unavailable) = spec.rollout_max_unavailable {
                evidence.insert("rollout_max_unavailable".to_owned(), max_unavailable);
                checked.push(format!(
                    "its rollout may take {max_unavailable:.0} down at once"
                ));
            }
        }
        let unchecked: Vec<&str> = [
            (
                spec.and_then(|s| s.startup_seconds_max).is_none(),
                "pod start-up",
            ),
            (
                spec.is_none_or(|s| s.pdb_min_available.is_none()),
                "a disruption budget",
            ),
            (
                service && spec.and_then(|s| s.rollout_max_unavailable).is_none(),
                "rollout settings",
            ),
        ]
        .into_iter()
        .filter(|(missing, _)| *missing)
        .map(|(_, what)| what)
        .collect();
        out.push(card(
            Kind::Spot,
            workload,
            verdict,
            BTreeMap::from([("spot".to_owned(), 0.0)]),
            BTreeMap::from([("spot".to_owned(), 1.0)]),
            savings,
            (context.snapshot.hours() / 24.0 / 7.0).min(1.0),
            Risk {
                level: if rate > 0.15 || slow_start {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                },
                description: format!(
                    "{bucket} of {} instances interrupted a month ({notice_text} notice){}",
                    instance.instance_type,
                    match startup {
                        Some(s) if slow_start => format!("; pods need {s:.0} s to be ready"),
                        _ => String::new(),
                    }
                ),
            },
            evidence,
            format!(
                "{workload} runs {} on on-demand {} ({} a month). {} Spot {} is {:.0} % \
                 cheaper and {bucket} of its capacity is interrupted a month; after rework \
                 ({} a month) it saves {}.{}{}",
                if replicas > 1.0 {
                    format!("{replicas:.0} replicas")
                } else {
                    "its pods".to_owned()
                },
                instance.instance_type,
                context.money(c.on_demand_monthly),
                if service {
                    "It is a Deployment with two or more replicas and no pod-local data, so an interruption costs one replica until its replacement is ready."
                } else {
                    "It is a batch job that writes to object storage (checkpoints), so an interruption costs the work since the last one."
                },
                instance.instance_type,
                discount * 100.0,
                context.money(rework),
                context.money(savings),
                if checked.is_empty() {
                    String::new()
                } else {
                    format!(" Checked: {}.", checked.join("; "))
                },
                if unchecked.is_empty() {
                    String::new()
                } else {
                    format!(" Not reported by any source: {}.", unchecked.join(", "))
                },
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rework_is_the_start_up_beyond_the_notice() {
        // 300 s to be ready + 90 s for a node − 120 s of notice = 270 s.
        assert!((service_rework_hours(Some(300.0), 120.0) - 270.0 / 3600.0).abs() < 1e-12);
        // Ready inside the notice: the floor.
        assert!((service_rework_hours(Some(10.0), 120.0) - 60.0 / 3600.0).abs() < 1e-12);
        // GCP's 30 s notice.
        assert!((service_rework_hours(Some(300.0), 30.0) - 360.0 / 3600.0).abs() < 1e-12);
        assert_eq!(service_rework_hours(None, 120.0), SERVICE_REWORK_HOURS);
        assert_eq!(notice_seconds("aws"), 120.0);
        assert_eq!(notice_seconds("gcp"), 30.0);
    }

    #[test]
    fn kubecost_checklist_floor() {
        let spec = |pdb: Option<f64>, max_unavailable: Option<f64>| WorkloadSpec {
            pdb_min_available: pdb.map(|m| (m, "web-pdb".to_owned())),
            rollout_max_unavailable: max_unavailable,
            ..WorkloadSpec::default()
        };
        // No spec: nothing fails (the other checks still apply).
        assert_eq!(checklist_failure(None, 4.0), None);
        // minAvailable 2 of 4 is a ratio of 0.5: allowed; 3 of 4 is not.
        assert_eq!(checklist_failure(Some(&spec(Some(2.0), None)), 4.0), None);
        assert!(
            checklist_failure(Some(&spec(Some(3.0), None)), 4.0)
                .is_some_and(|why| why.contains("web-pdb keeps 3 of 4"))
        );
        // 25 % of 4 = 1 down: 3 of 4 = 0.75 available, allowed; 25 % of 3
        // rounds down to 0: 3 of 3 available, too tight.
        assert_eq!(checklist_failure(Some(&spec(None, Some(1.0))), 4.0), None);
        assert!(checklist_failure(Some(&spec(None, Some(0.0))), 3.0).is_some());
        // 1 down of 10 keeps exactly 0.9: allowed.
        assert_eq!(checklist_failure(Some(&spec(None, Some(1.0))), 10.0), None);
    }

    #[test]
    fn buckets_map_to_monthly_rates() {
        assert_eq!(bucket_rate("<5%"), Some(0.025));
        assert_eq!(bucket_rate(">20%"), Some(0.25));
        assert_eq!(bucket_rate("often"), None);
    }
}
