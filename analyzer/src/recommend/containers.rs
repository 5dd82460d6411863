//! CPU and memory request cards: one per container of a workload (its
//! pods are replicas of one spec), from the pooled history of its pods.

use std::collections::BTreeMap;

use super::{Context, card};
use crate::HOURS_PER_MONTH;
use crate::distribution::Distribution;
use crate::input::{Container, WorkloadKey};
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};
use crate::rightsizing::{self, UsageHistory, bytes_text};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The pods of one container of a workload.
struct Group<'a> {
    containers: Vec<&'a Container>,
}

/// Pools the pods' histories: samples of every pod in one distribution
/// (KRR's max over pods grows with the pod count), daily peaks aligned
/// from the newest day and the highest kept, OOMs summed.
fn pooled(group: &Group<'_>) -> UsageHistory {
    let mut usage = UsageHistory::default();
    let mut cpu = Distribution::default();
    let mut memory = Distribution::default();
    let longest = group
        .containers
        .iter()
        .map(|c| c.usage.memory_daily_peaks.len())
        .max()
        .unwrap_or(0);
    let mut peaks = vec![0.0f64; longest];
    for c in &group.containers {
        let u = &c.usage;
        if let Some(d) = &u.cpu {
            cpu.merge(d);
        }
        if let Some(d) = &u.memory {
            memory.merge(d);
        }
        let offset = longest - u.memory_daily_peaks.len();
        for (i, peak) in u.memory_daily_peaks.iter().enumerate() {
            peaks[offset + i] = peaks[offset + i].max(*peak);
        }
        usage.memory_startup_peak = max_option(usage.memory_startup_peak, u.memory_startup_peak);
        usage.oom_kills += u.oom_kills;
        usage.oom_limit_bytes = max_option(usage.oom_limit_bytes, u.oom_limit_bytes);
        usage.cpu_throttled_share = max_option(usage.cpu_throttled_share, u.cpu_throttled_share);
        usage.cpu_limit = usage.cpu_limit.or(u.cpu_limit);
        usage.history_hours = usage.history_hours.max(u.history_hours);
        usage.hpa_cpu_target = usage.hpa_cpu_target.or(u.hpa_cpu_target);
    }
    usage.cpu = (!cpu.is_empty()).then_some(cpu);
    usage.memory = (!memory.is_empty()).then_some(memory);
    usage.memory_daily_peaks = peaks;
    usage
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Cards for every workload's containers.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let mut groups: BTreeMap<(&WorkloadKey, &str), Group<'_>> = BTreeMap::new();
    for c in &context.snapshot.containers {
        groups
            .entry((&c.workload, c.container.as_str()))
            .or_insert_with(|| Group {
                containers: Vec::new(),
            })
            .containers
            .push(c);
    }
    let window_hours = context.snapshot.hours().max(1e-9);
    let policy = context.config.policy();
    for ((workload, container), group) in groups {
        let usage = pooled(&group);
        // Replicas: pod-hours over the window.
        let replicas = group.containers.iter().map(|c| c.hours).sum::<f64>() / window_hours;
        let (cpu_price, memory_price) = context.unit_prices(&group.containers);
        let confidence = rightsizing::confidence(&usage).score;
        let current_cpu = group.containers[0].cpu_request;
        let current_memory = group.containers[0].memory_request;
        if let Some(proposal) = rightsizing::recommend_cpu(&usage, &policy) {
            let change = (current_cpu - proposal.cores) * cpu_price * HOURS_PER_MONTH * replicas;
            let current_share = usage
                .cpu
                .as_ref()
                .map_or(0.0, |d| d.share_above(current_cpu));
            // Lower when it saves money; raise when today's request leaves
            // the container above it far more often than the target.
            let raise =
                current_share > 5.0 * policy.cpu_share_above && proposal.cores > current_cpu;
            let material =
                current_cpu - proposal.cores >= context.config.min_change_ratio * current_cpu;
            if (change >= context.config.min_monthly_savings && material) || raise {
                let level = match proposal.share_above {
                    s if s <= policy.cpu_share_above + 1e-9 => RiskLevel::Low,
                    s if s <= 0.05 => RiskLevel::Medium,
                    _ => RiskLevel::High,
                };
                let mut evidence = BTreeMap::from([
                    ("replicas".to_owned(), replicas),
                    (
                        "samples".to_owned(),
                        usage.cpu.as_ref().map_or(0.0, |d| d.count as f64),
                    ),
                    ("history_hours".to_owned(), usage.history_hours),
                    ("share_above_current".to_owned(), current_share),
                    ("share_above_proposed".to_owned(), proposal.share_above),
                    ("usage_p50_cores".to_owned(), quantile(&usage.cpu, 0.5)),
                    ("usage_p95_cores".to_owned(), quantile(&usage.cpu, 0.95)),
                    (
                        "usage_max_cores".to_owned(),
                        usage.cpu.as_ref().map_or(0.0, |d| d.max),
                    ),
                    ("core_hourly_price".to_owned(), cpu_price),
                ]);
                if change < 0.0 {
                    evidence.insert("monthly_cost_increase".to_owned(), -change);
                }
                if let Some(share) = proposal.throttled_share {
                    evidence.insert("throttled_share".to_owned(), share);
                }
                let explanation = format!(
                    "{container} of {workload} requests {current_cpu} cores; over {:.1} days its \
                     usage was above {} cores {:.1} % of the time ({}). Setting the request to {} \
                     cores leaves it above the request {:.1} % of the time{}{}.",
                    usage.history_hours / 24.0,
                    proposal.cores,
                    proposal.share_above * 100.0,
                    proposal.statistic,
                    proposal.cores,
                    proposal.share_above * 100.0,
                    if replicas > 1.05 {
                        format!(" across {replicas:.1} replicas")
                    } else {
                        String::new()
                    },
                    if change > 0.0 {
                        format!(", saving {:.2} a month", change)
                    } else {
                        format!(
                            "; today it is above its request {:.1} % of the time, so this raise costs {:.2} a month",
                            current_share * 100.0,
                            -change
                        )
                    },
                );
                out.push(card(
                    Kind::CpuRequest,
                    workload,
                    container,
                    BTreeMap::from([("cpu_request_cores".to_owned(), current_cpu)]),
                    BTreeMap::from([("cpu_request_cores".to_owned(), proposal.cores)]),
                    change.max(0.0),
                    confidence,
                    Risk {
                        level,
                        description: format!(
                            "{:.1} % of time above the request",
                            proposal.share_above * 100.0
                        ),
                    },
                    evidence,
                    explanation,
                ));
            }
        }
        if let Some(proposal) = rightsizing::recommend_memory(&usage, &policy) {
            let change =
                (current_memory - proposal.bytes) / GIB * memory_price * HOURS_PER_MONTH * replicas;
            let raise = usage.oom_kills > 0 && proposal.bytes > current_memory;
            let material =
                current_memory - proposal.bytes >= context.config.min_change_ratio * current_memory;
            if (change >= context.config.min_monthly_savings && material) || raise {
                let level = match proposal.risk_week {
                    r if r <= policy.memory_risk_week + 1e-9 => RiskLevel::Low,
                    r if r <= 0.05 => RiskLevel::Medium,
                    _ => RiskLevel::High,
                };
                let mut evidence = BTreeMap::from([
                    ("replicas".to_owned(), replicas),
                    ("history_hours".to_owned(), usage.history_hours),
                    (
                        "steady_peak_bytes".to_owned(),
                        usage.memory.as_ref().map_or(0.0, |d| d.max),
                    ),
                    (
                        "daily_peaks".to_owned(),
                        usage.memory_daily_peaks.len() as f64,
                    ),
                    ("oom_kills".to_owned(), usage.oom_kills as f64),
                    ("risk_week".to_owned(), proposal.risk_week),
                    ("gib_hourly_price".to_owned(), memory_price),
                ]);
                for (name, value) in [
                    ("leak_bytes_per_day", proposal.leak_bytes_per_day),
                    ("oom_floor_bytes", proposal.oom_floor),
                    ("startup_peak_bytes", proposal.startup_peak),
                ] {
                    if let Some(value) = value {
                        evidence.insert(name.to_owned(), value);
                    }
                }
                if change < 0.0 {
                    evidence.insert("monthly_cost_increase".to_owned(), -change);
                }
                let explanation = format!(
                    "{container} of {workload} requests {} of memory; set request and limit to {} \
                     ({}). Predicted chance the working set passes it within a week: {:.2} %{}{}.",
                    bytes_text(current_memory),
                    bytes_text(proposal.bytes),
                    proposal.statistic,
                    proposal.risk_week * 100.0,
                    if usage.oom_kills > 0 {
                        format!(
                            "; it was OOM-killed {} times, so the proposal stays above that point",
                            usage.oom_kills
                        )
                    } else {
                        String::new()
                    },
                    if change > 0.0 {
                        format!(", saving {:.2} a month", change)
                    } else {
                        format!("; the raise costs {:.2} a month", -change)
                    },
                );
                out.push(card(
                    Kind::MemoryRequest,
                    workload,
                    container,
                    BTreeMap::from([("memory_request_bytes".to_owned(), current_memory)]),
                    BTreeMap::from([("memory_request_bytes".to_owned(), proposal.bytes)]),
                    change.max(0.0),
                    confidence,
                    Risk {
                        level,
                        description: format!(
                            "{:.2} % chance a week of passing the limit",
                            proposal.risk_week * 100.0
                        ),
                    },
                    evidence,
                    explanation,
                ));
            }
        }
    }
}

fn quantile(distribution: &Option<Distribution>, q: f64) -> f64 {
    distribution
        .as_ref()
        .and_then(|d| d.quantile(q))
        .unwrap_or(0.0)
}
