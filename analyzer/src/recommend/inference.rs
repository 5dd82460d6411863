//! Inference: what each model service costs per 1M tokens, and fewer
//! replicas where the latency objective still holds at the observed load.
//!
//! A service's cost is the allocation of its pods (GPU, CPU and memory,
//! sidecars included). Input and output tokens split it by compute time:
//! prefill (time to first token, summed) against decode (inter-token
//! latency, summed), OpenCost's `compute_time` method; without both, by
//! token count. A replica change is proposed only when p95 time to first
//! token and inter-token latency are under 80 % of the objective and the
//! replicas' GPUs stay under 70 % busy at p95 after the change.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::{Context, card};
use crate::input::WorkloadKey;
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

/// GPU busy share (p95) the remaining replicas may reach.
const TARGET_BUSY: f64 = 0.7;
/// Latency at or under this share of the objective leaves room.
const SLO_HEADROOM: f64 = 0.8;

/// One model service's cost and unit prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceCost {
    /// The serving workload.
    pub workload: WorkloadKey,
    /// Served model.
    pub model: String,
    /// Engine.
    pub engine: String,
    /// Replicas (pod-hours over the window).
    pub replicas: f64,
    /// Cost a month.
    pub monthly_cost: f64,
    /// Tokens a month, prompt and generated.
    pub tokens_per_month: f64,
    /// Cost per 1M tokens, all tokens.
    pub per_million_tokens: Option<f64>,
    /// Cost per 1M prompt tokens.
    pub per_million_input: Option<f64>,
    /// Cost per 1M generated tokens.
    pub per_million_output: Option<f64>,
    /// `compute_time` or `tokens`.
    pub split: String,
    /// p95 time to first token, seconds (worst replica).
    pub ttft_p95: Option<f64>,
    /// p95 inter-token latency, seconds (worst replica).
    pub itl_p95: Option<f64>,
    /// Whether both p95s meet the service's objective.
    pub slo_met: bool,
}

/// The service's pods.
struct Service<'a> {
    engine: &'a str,
    pods: HashSet<&'a str>,
    hours: f64,
    prompt: f64,
    generated: f64,
    prefill: Option<f64>,
    decode: Option<f64>,
    ttft: Option<f64>,
    itl: Option<f64>,
}

fn worst(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// Costs per service, and replica cards into `out`.
pub fn analyze(context: &Context<'_>, out: &mut Vec<Recommendation>) -> Vec<InferenceCost> {
    let snapshot = context.snapshot;
    let mut services: BTreeMap<(&WorkloadKey, &str), Service<'_>> = BTreeMap::new();
    for m in &snapshot.model_servers {
        let s = services
            .entry((&m.workload, m.model.as_str()))
            .or_insert_with(|| Service {
                engine: &m.engine,
                pods: HashSet::new(),
                hours: 0.0,
                prompt: 0.0,
                generated: 0.0,
                prefill: None,
                decode: None,
                ttft: None,
                itl: None,
            });
        s.pods.insert(&m.pod);
        s.hours += m.hours;
        s.prompt += m.prompt_tokens;
        s.generated += m.generation_tokens;
        s.prefill = sum(s.prefill, m.prefill_seconds);
        s.decode = sum(s.decode, m.decode_seconds);
        s.ttft = worst(s.ttft, m.ttft_p95);
        s.itl = worst(s.itl, m.itl_p95);
    }
    let allocation = context.allocation;
    let factor = allocation.monthly_factor();
    let window_hours = snapshot.hours().max(1e-9);
    let mut costs = Vec::new();
    for ((workload, model), s) in services {
        let monthly_cost: f64 = allocation
            .containers
            .iter()
            .filter(|c| c.workload == *workload && s.pods.contains(c.pod.as_str()))
            .map(|c| c.total())
            .sum::<f64>()
            * factor;
        let prompt = s.prompt * factor;
        let generated = s.generated * factor;
        let tokens = prompt + generated;
        let per_million = |cost: f64, tokens: f64| (tokens > 0.0).then(|| cost / tokens * 1e6);
        let (input_share, split) = match (s.prefill, s.decode) {
            (Some(p), Some(d)) if p + d > 0.0 => (p / (p + d), "compute_time"),
            _ if tokens > 0.0 => (prompt / tokens, "tokens"),
            _ => (0.5, "tokens"),
        };
        let slo = context
            .config
            .slo_for(&format!("{}/{}", workload.namespace, workload.name));
        let slo_met = s.ttft.is_none_or(|t| t <= slo.ttft_p95_seconds)
            && s.itl.is_none_or(|t| t <= slo.itl_p95_seconds);
        let replicas = s.hours / window_hours;
        costs.push(InferenceCost {
            workload: workload.clone(),
            model: model.to_owned(),
            engine: s.engine.to_owned(),
            replicas,
            monthly_cost,
            tokens_per_month: tokens,
            per_million_tokens: per_million(monthly_cost, tokens),
            per_million_input: per_million(monthly_cost * input_share, prompt),
            per_million_output: per_million(monthly_cost * (1.0 - input_share), generated),
            split: split.to_owned(),
            ttft_p95: s.ttft,
            itl_p95: s.itl,
            slo_met,
        });
        replicas_card(context, workload, model, &s, replicas, monthly_cost, out);
    }
    costs
}

fn replicas_card(
    context: &Context<'_>,
    workload: &WorkloadKey,
    model: &str,
    s: &Service<'_>,
    replicas: f64,
    monthly_cost: f64,
    out: &mut Vec<Recommendation>,
) {
    let pods = s.pods.len();
    if pods < 2 || monthly_cost <= 0.0 {
        return;
    }
    let slo = context
        .config
        .slo_for(&format!("{}/{}", workload.namespace, workload.name));
    let (Some(ttft), Some(itl)) = (s.ttft, s.itl) else {
        return;
    };
    if ttft > slo.ttft_p95_seconds * SLO_HEADROOM || itl > slo.itl_p95_seconds * SLO_HEADROOM {
        return;
    }
    // The busiest replica's GPU at p95: load moves to fewer replicas.
    let busy = context
        .snapshot
        .gpu_devices
        .iter()
        .flat_map(|d| &d.users)
        .filter(|u| u.workload == *workload && s.pods.contains(u.pod.as_str()))
        .map(|u| u.utilization_p95)
        .fold(None, |top: Option<f64>, u| {
            Some(top.map_or(u, |t| t.max(u)))
        });
    let Some(busy) = busy else {
        return;
    };
    let needed = ((pods as f64 * busy / TARGET_BUSY).ceil() as usize).max(1);
    if needed >= pods {
        return;
    }
    let per_replica = monthly_cost / pods as f64;
    let savings = per_replica * (pods - needed) as f64;
    if savings < context.config.min_monthly_savings {
        return;
    }
    out.push(card(
        Kind::InferenceReplicas,
        workload,
        model,
        BTreeMap::from([("replicas".to_owned(), pods as f64)]),
        BTreeMap::from([("replicas".to_owned(), needed as f64)]),
        savings,
        (context.snapshot.hours() / 24.0 / 7.0).min(1.0),
        Risk {
            level: RiskLevel::Medium,
            description: format!(
                "p95 GPU busy rises to about {:.0} % on each replica; latency grows with it",
                busy * pods as f64 / needed as f64 * 100.0
            ),
        },
        BTreeMap::from([
            ("gpu_busy_p95".to_owned(), busy),
            ("ttft_p95_seconds".to_owned(), ttft),
            ("itl_p95_seconds".to_owned(), itl),
            ("slo_ttft_p95_seconds".to_owned(), slo.ttft_p95_seconds),
            ("slo_itl_p95_seconds".to_owned(), slo.itl_p95_seconds),
            ("average_replicas".to_owned(), replicas),
        ]),
        format!(
            "{workload} serves {model} on {pods} replicas whose busiest GPU is {:.0} % busy \
             at p95, with p95 time to first token {:.0} ms and inter-token latency {:.0} ms \
             (objective {:.0} ms and {:.0} ms). {needed} replicas carry the same load at \
             under {:.0} % busy each: {} a month less. Lower the replica count (or the \
             autoscaler's minimum) and watch the latency objective.",
            busy * 100.0,
            ttft * 1000.0,
            itl * 1000.0,
            slo.ttft_p95_seconds * 1000.0,
            slo.itl_p95_seconds * 1000.0,
            TARGET_BUSY * 100.0,
            context.money(savings),
        ),
    ));
}
