//! GPU cards, one per device user at most (the best of them), so cards on
//! one GPU never overlap:
//! - idle: utilization under the threshold AND power near the model's
//!   idle draw AND no tokens served, over the whole idle window. Power is
//!   read too because a spin kernel reads 100 % utilization at idle
//!   power: such a GPU is idle whatever utilization says.
//! - warm idle: the same on a model server that served nothing: a
//!   replica kept loaded for latency, reported apart from waste.
//! - unused: GPUs requested with no process ever seen on one.
//! - fit, for a busy single user of a whole GPU: the smallest MIG profile
//!   holding p99 memory × 1.1 and p95 compute (slices of 7), a
//!   time-slice share where the model has no MIG, or a cheaper GPU type
//!   with the memory and the compute (the MIG profile is preferred: it
//!   keeps the pod on its node pool); a model server is only moved when
//!   its latency has headroom under its objective.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Context, card};
use crate::HOURS_PER_MONTH;
use crate::allocation::device_share;
use crate::input::{GpuDevice, GpuUser, ModelServer};
use crate::pricing::canonical_gpu_model;
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Memory headroom over p99 when fitting.
const MEMORY_HEADROOM: f64 = 1.1;
/// Latency at or under this share of the objective leaves room to move.
const SLO_HEADROOM: f64 = 0.8;

/// GPU cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let snapshot = context.snapshot;
    let servers: HashMap<(&str, &str), &ModelServer> = snapshot
        .model_servers
        .iter()
        .map(|m| ((m.workload.namespace.as_str(), m.pod.as_str()), m))
        .collect();
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::new();
    for device in &snapshot.gpu_devices {
        let Some(gpu_hourly) = context.gpu_hourly(&device.node) else {
            continue;
        };
        let share = device_share(device);
        let users = device.users.len().max(1) as f64;
        for user in &device.users {
            seen.insert((
                user.workload.namespace.as_str(),
                user.pod.as_str(),
                user.container.as_str(),
            ));
            let monthly = gpu_hourly * share / users * HOURS_PER_MONTH;
            let server = servers
                .get(&(user.workload.namespace.as_str(), user.pod.as_str()))
                .copied();
            if let Some(card) = idle(context, device, user, server, monthly) {
                out.push(card);
            } else if device.users.len() == 1
                && device.mig_profile.is_none()
                && let Some(card) = fit(context, device, user, server, gpu_hourly)
            {
                out.push(card);
            }
        }
    }
    unused(context, &seen, out);
}

fn target(device: &GpuDevice) -> String {
    match &device.mig_profile {
        Some(profile) => format!("{}/{}/{profile}", device.node, device.gpu_uuid),
        None => format!("{}/{}", device.node, device.gpu_uuid),
    }
}

fn idle(
    context: &Context<'_>,
    device: &GpuDevice,
    user: &GpuUser,
    server: Option<&ModelServer>,
    monthly: f64,
) -> Option<Recommendation> {
    let config = context.config;
    let utilization = device.recent_utilization_max?;
    let idle_watts = context
        .prices
        .gpu_model(canonical_gpu_model(&device.gpu_model)?)
        .map(|m| m.idle_watts);
    // MIG instances share the GPU's power: utilization alone decides.
    let power_idle = match (
        device.mig_profile.is_none(),
        idle_watts,
        device.recent_power_mean,
    ) {
        (true, Some(watts), Some(power)) => Some(power <= watts * config.gpu_idle_power_factor),
        _ => None,
    };
    let quiet = utilization < config.gpu_idle_utilization;
    let tokens = server.and_then(|s| s.recent_tokens).unwrap_or(0.0);
    let idle = tokens <= 0.0
        && match power_idle {
            Some(power_idle) => power_idle,
            None => quiet,
        };
    if !idle || monthly < config.min_monthly_savings {
        return None;
    }
    let hours = config.gpu_idle_seconds as f64 / 3600.0;
    let spin = !quiet && power_idle == Some(true);
    let mut evidence = BTreeMap::from([
        ("utilization_max".to_owned(), utilization),
        ("idle_window_hours".to_owned(), hours),
        ("tokens".to_owned(), tokens),
        ("memory_held_bytes".to_owned(), user.memory_max),
    ]);
    if let Some(power) = device.recent_power_mean {
        evidence.insert("power_mean_watts".to_owned(), power);
    }
    if let Some(watts) = idle_watts {
        evidence.insert("model_idle_watts".to_owned(), watts);
    }
    let what = if spin {
        format!(
            "reads {:.0} % utilization but draws idle power: a spin kernel, not work",
            utilization * 100.0
        )
    } else {
        format!("peaked at {:.1} % utilization", utilization * 100.0)
    };
    let (kind, risk, advice) = match server {
        Some(s) => (
            Kind::GpuWarmIdle,
            Risk {
                level: RiskLevel::Medium,
                description: "the next request waits for a cold start (model load)".to_owned(),
            },
            format!(
                "It serves {} and holds it loaded, but served no tokens: a warm replica. Scale \
                 it to zero off-hours or fold it into another replica if a cold start is \
                 acceptable.",
                s.model
            ),
        ),
        None => (
            Kind::GpuIdle,
            Risk {
                level: RiskLevel::Low,
                description: "nothing ran on the GPU in the window".to_owned(),
            },
            "Release the GPU (scale the workload down, or cull the notebook after idling)."
                .to_owned(),
        ),
    };
    let explanation = format!(
        "{} of {} holds {} on {} and over the last {hours:.1} h it {what}. {advice} \
         It costs {} a month.",
        user.container,
        user.workload,
        device.mig_profile.as_deref().unwrap_or("a whole GPU"),
        device.gpu_model,
        context.money(monthly),
    );
    Some(card(
        kind,
        &user.workload,
        &target(device),
        BTreeMap::from([("gpus".to_owned(), 1.0)]),
        BTreeMap::from([("gpus".to_owned(), 0.0)]),
        monthly,
        (device.hours / hours).min(1.0),
        risk,
        evidence,
        explanation,
    ))
}

/// One candidate placement: label, monthly cost, risk.
struct Candidate {
    kind: Kind,
    label: String,
    monthly: f64,
    fraction: f64,
}

fn fit(
    context: &Context<'_>,
    device: &GpuDevice,
    user: &GpuUser,
    server: Option<&ModelServer>,
    gpu_hourly: f64,
) -> Option<Recommendation> {
    let canonical = canonical_gpu_model(&device.gpu_model)?;
    let model = context.prices.gpu_model(canonical)?;
    if let Some(s) = server {
        let slo = context
            .config
            .slo_for(&format!("{}/{}", s.workload.namespace, s.workload.name));
        let ttft_ok = s
            .ttft_p95
            .is_none_or(|t| t <= slo.ttft_p95_seconds * SLO_HEADROOM);
        let itl_ok = s
            .itl_p95
            .is_none_or(|t| t <= slo.itl_p95_seconds * SLO_HEADROOM);
        if !(ttft_ok && itl_ok) {
            return None;
        }
    }
    let memory_needed = user.memory_p99 * MEMORY_HEADROOM;
    let compute = user.utilization_p95;
    let current_monthly = gpu_hourly * HOURS_PER_MONTH;
    let mut candidates = Vec::new();
    // The smallest MIG profile that holds memory and compute.
    let total_slices = f64::from(model.total_slices.max(1));
    if let Some(profile) = model
        .mig_profiles
        .iter()
        .filter(|p| p.memory_gib * GIB >= memory_needed)
        .filter(|p| f64::from(p.compute_slices) / total_slices >= compute)
        .filter(|p| f64::from(p.compute_slices) < total_slices)
        .min_by(|a, b| {
            a.compute_slices
                .cmp(&b.compute_slices)
                .then(a.memory_gib.total_cmp(&b.memory_gib))
        })
    {
        let fraction = f64::from(profile.compute_slices) / total_slices;
        candidates.push(Candidate {
            kind: Kind::GpuMigProfile,
            label: format!("MIG {}", profile.name),
            monthly: current_monthly * fraction,
            fraction,
        });
    }
    // Time-slicing where the model has no MIG: a quarter or a half.
    if model.mig_profiles.is_empty() {
        for share in [4.0, 2.0] {
            if compute <= 1.0 / share && memory_needed <= device.memory_total / share {
                candidates.push(Candidate {
                    kind: Kind::GpuTimeSlice,
                    label: format!("1/{share} of a time-sliced {canonical}"),
                    monthly: current_monthly / share,
                    fraction: 1.0 / share,
                });
                break;
            }
        }
    }
    // A cheaper GPU type with the memory and, scaled by relative compute,
    // p95 compute under 80 %.
    for (name, other) in context.prices.gpu_models() {
        if name == canonical || other.hourly >= gpu_hourly.min(model.hourly) {
            continue;
        }
        let scaled = compute * model.relative_compute / other.relative_compute.max(1e-9);
        if other.memory_gib * GIB >= memory_needed && scaled <= 0.8 {
            candidates.push(Candidate {
                kind: Kind::GpuSmallerType,
                label: name.to_owned(),
                monthly: other.hourly * HOURS_PER_MONTH,
                fraction: other.hourly / model.hourly.max(1e-9),
            });
        }
    }
    // A MIG profile keeps the pod on its node and pool; another GPU type
    // means another node pool. The cheapest of each is kept in the
    // evidence, the MIG one proposed when it exists.
    let cheapest_other = candidates
        .iter()
        .filter(|c| c.kind == Kind::GpuSmallerType)
        .map(|c| c.monthly)
        .fold(None, |low: Option<f64>, m| {
            Some(low.map_or(m, |l| l.min(m)))
        });
    let best = match candidates
        .iter()
        .position(|c| c.kind == Kind::GpuMigProfile)
    {
        Some(mig) => candidates.swap_remove(mig),
        None => candidates
            .into_iter()
            .min_by(|a, b| a.monthly.total_cmp(&b.monthly))?,
    };
    let savings = current_monthly - best.monthly;
    if savings < context.config.min_monthly_savings {
        return None;
    }
    let mut evidence = BTreeMap::from([
        ("memory_p99_bytes".to_owned(), user.memory_p99),
        ("utilization_p95".to_owned(), user.utilization_p95),
        ("utilization_mean".to_owned(), user.utilization_mean),
        ("device_memory_bytes".to_owned(), device.memory_total),
        ("gpu_hourly_price".to_owned(), gpu_hourly),
        ("proposed_fraction".to_owned(), best.fraction),
    ]);
    if let Some(other) = cheapest_other {
        evidence.insert("cheapest_other_gpu_monthly".to_owned(), other);
    }
    let latency = server
        .map(|s| {
            format!(
                " Its p95 time to first token is {:.0} ms and inter-token latency {:.0} ms, under 80 % of the objective.",
                s.ttft_p95.unwrap_or(0.0) * 1000.0,
                s.itl_p95.unwrap_or(0.0) * 1000.0
            )
        })
        .unwrap_or_default();
    let explanation = format!(
        "{} of {} uses a whole {} at p95 {:.0} % compute and p99 {:.1} GiB of {:.0} GiB memory. \
         {} holds p99 memory × 1.1 and the compute, for {} instead of {} a month.{latency}",
        user.container,
        user.workload,
        canonical,
        compute * 100.0,
        user.memory_p99 / GIB,
        device.memory_total / GIB,
        best.label,
        context.money(best.monthly),
        context.money(current_monthly),
    );
    Some(card(
        best.kind,
        &user.workload,
        &target(device),
        BTreeMap::from([("gpu_fraction".to_owned(), 1.0)]),
        BTreeMap::from([("gpu_fraction".to_owned(), best.fraction)]),
        savings,
        (device.hours / 24.0 / 7.0).min(1.0),
        Risk {
            level: if server.is_some() {
                RiskLevel::Medium
            } else {
                RiskLevel::Low
            },
            description: format!(
                "p95 compute {:.0} % of the new share",
                compute / best.fraction.max(1e-9) * 100.0
            ),
        },
        evidence,
        explanation,
    ))
}

/// Containers that request GPUs but were never seen on one.
fn unused(
    context: &Context<'_>,
    seen: &HashSet<(&str, &str, &str)>,
    out: &mut Vec<Recommendation>,
) {
    for c in &context.snapshot.containers {
        let gpus = c.devices.get("nvidia.com/gpu").copied().unwrap_or(0.0);
        if gpus <= 0.0
            || seen.contains(&(
                c.workload.namespace.as_str(),
                c.pod.as_str(),
                c.container.as_str(),
            ))
            || !context.node_has_gpu_telemetry(&c.node)
        {
            continue;
        }
        let Some(gpu_hourly) = context.gpu_hourly(&c.node) else {
            continue;
        };
        let monthly =
            gpus * gpu_hourly * HOURS_PER_MONTH * (c.hours / context.snapshot.hours().max(1e-9));
        if monthly < context.config.min_monthly_savings {
            continue;
        }
        out.push(card(
            Kind::GpuUnused,
            &c.workload,
            &format!("{}/{}", c.pod, c.container),
            BTreeMap::from([("gpus".to_owned(), gpus)]),
            BTreeMap::from([("gpus".to_owned(), 0.0)]),
            monthly,
            (c.hours / 24.0).min(1.0),
            Risk {
                level: RiskLevel::Low,
                description: "no process of the container ever held GPU memory".to_owned(),
            },
            BTreeMap::from([
                ("requested_gpus".to_owned(), gpus),
                ("hours".to_owned(), c.hours),
            ]),
            format!(
                "{} of {} requests {gpus} GPU(s) on {} but no process of it ever appeared on a GPU \
                 while the node's GPUs were watched. Remove the request: {} a month.",
                c.container,
                c.workload,
                c.node,
                context.money(monthly)
            ),
        ));
    }
}
