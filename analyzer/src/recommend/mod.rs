//! Recommendations, one file per analysis, and the report that gathers
//! them with the cost allocation.

pub mod commitments;
pub mod containers;
pub mod egress;
pub mod gpu;
pub mod inference;
pub mod packing;
pub mod schedules;
pub mod spot;
pub mod storage;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::allocation::{self, Allocation, CostLine, Level, RollupError};
use crate::config::AnalyzerConfig;
use crate::input::{Container, FleetSnapshot, WorkloadKey};
use crate::pricing::{NodeFacts, NodePrice, PriceBook, PriceWarning};
use crate::recommendation::{Kind, Recommendation, Risk, stable_id};

/// What every analysis reads.
pub struct Context<'a> {
    /// The fleet.
    pub snapshot: &'a FleetSnapshot,
    /// Settings.
    pub config: &'a AnalyzerConfig,
    /// Prices.
    pub prices: &'a PriceBook,
    /// The cost allocation of the window.
    pub allocation: &'a Allocation,
    node_prices: HashMap<&'a str, NodePrice>,
    providers: HashMap<&'a str, String>,
    gpu_nodes: HashMap<&'a str, bool>,
}

impl<'a> Context<'a> {
    /// Prices every node once.
    pub fn new(
        snapshot: &'a FleetSnapshot,
        config: &'a AnalyzerConfig,
        prices: &'a PriceBook,
        allocation: &'a Allocation,
    ) -> Self {
        let node_prices = snapshot
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), prices.node_price(&allocation::facts(n))))
            .collect();
        let providers = snapshot
            .nodes
            .iter()
            .filter_map(|n| {
                let instance = prices.instance(&n.instance_type)?;
                Some((n.name.as_str(), instance.provider.clone()))
            })
            .collect();
        let mut gpu_nodes = HashMap::new();
        for device in &snapshot.gpu_devices {
            gpu_nodes.insert(device.node.as_str(), true);
        }
        Context {
            snapshot,
            config,
            prices,
            allocation,
            node_prices,
            providers,
            gpu_nodes,
        }
    }

    /// Hourly price of `node`.
    pub fn node_hourly(&self, node: &str) -> Option<f64> {
        self.node_prices.get(node).map(|p| p.hourly)
    }

    /// Per-GPU hourly price on `node`.
    pub fn gpu_hourly(&self, node: &str) -> Option<f64> {
        self.node_prices
            .get(node)
            .map(|p| p.gpu_hourly)
            .filter(|p| *p > 0.0)
    }

    /// Whether NVML reported any device on `node` (so a GPU request with
    /// no process seen means unused, not unobserved).
    pub fn node_has_gpu_telemetry(&self, node: &str) -> bool {
        self.gpu_nodes.contains_key(node)
    }

    /// Mean per-core and per-GiB hourly prices of the nodes running
    /// `containers`, weighted by hours (defaults for unknown nodes).
    pub fn unit_prices(&self, containers: &[&Container]) -> (f64, f64) {
        let (mut cpu, mut memory, mut hours) = (0.0, 0.0, 0.0);
        for c in containers {
            let price = self
                .node_prices
                .get(c.node.as_str())
                .cloned()
                .unwrap_or_else(|| self.prices.node_price(&NodeFacts::default()));
            let h = c.hours.max(1e-9);
            cpu += price.cpu_core_hourly * h;
            memory += price.memory_gib_hourly * h;
            hours += h;
        }
        if hours > 0.0 {
            (cpu / hours, memory / hours)
        } else {
            (0.0, 0.0)
        }
    }

    /// The cloud provider of `node` from its instance type (`aws` when
    /// unknown: the most common, and the catalog's fallback).
    pub fn provider(&self, node: &str) -> String {
        self.providers
            .get(node)
            .cloned()
            .unwrap_or_else(|| "aws".to_owned())
    }

    /// Money in the configured currency.
    pub fn money(&self, amount: f64) -> String {
        format!("{amount:.2} {}", self.prices.currency())
    }
}

/// Builds a card with its stable id.
#[allow(clippy::too_many_arguments)]
pub fn card(
    kind: Kind,
    workload: &WorkloadKey,
    target: &str,
    current: BTreeMap<String, f64>,
    proposed: BTreeMap<String, f64>,
    monthly_savings: f64,
    confidence: f64,
    risk: Risk,
    evidence: BTreeMap<String, f64>,
    explanation: String,
) -> Recommendation {
    Recommendation {
        id: stable_id(kind, workload, target),
        kind,
        workload: workload.clone(),
        target: target.to_owned(),
        current,
        proposed,
        monthly_savings: monthly_savings.max(0.0),
        confidence: confidence.clamp(0.0, 1.0),
        risk,
        evidence,
        explanation,
    }
}

/// Savings totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Fleet cost a month.
    pub monthly_cost: f64,
    /// Idle cost a month.
    pub monthly_idle: f64,
    /// Savings of all cards, overlapping cards counted once (the largest
    /// of each overlap group).
    pub monthly_savings: f64,
    /// The plain sum of every card (what Kubecost's headline shows).
    pub monthly_savings_sum: f64,
    /// What the request cards realize on CPU node pools: nodes no longer
    /// needed × their price (see `packing`).
    pub realizable_monthly_savings: f64,
    /// De-duplicated savings by kind.
    pub by_kind: BTreeMap<String, f64>,
}

/// What egress costs a month, by destination class and by workload,
/// priced by [`egress::flow_cost`] (cross-zone on both sides, internet
/// plus NAT processing, services through NAT).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EgressCosts {
    /// Monthly cost by destination class (every class seen, 0 when free).
    pub by_class: BTreeMap<String, f64>,
    /// Monthly cost by sending workload, dearest first (free ones left out).
    pub by_workload: Vec<WorkloadEgressCost>,
    /// The whole bill.
    pub monthly_cost: f64,
}

/// One workload's egress bill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadEgressCost {
    /// The sending workload.
    pub workload: crate::input::WorkloadKey,
    /// Its egress a month.
    pub monthly_cost: f64,
}

/// Prices every flow of the window.
fn egress_costs(context: &Context<'_>) -> EgressCosts {
    let mut by_class: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_workload: BTreeMap<&crate::input::WorkloadKey, f64> = BTreeMap::new();
    for flow in &context.snapshot.flows {
        let cost = egress::flow_cost(context, flow);
        *by_class.entry(flow.class.clone()).or_insert(0.0) += cost;
        *by_workload.entry(&flow.workload).or_insert(0.0) += cost;
    }
    let mut by_workload: Vec<WorkloadEgressCost> = by_workload
        .into_iter()
        .filter(|(_, cost)| *cost > 0.0)
        .map(|(workload, monthly_cost)| WorkloadEgressCost {
            workload: workload.clone(),
            monthly_cost,
        })
        .collect();
    by_workload.sort_by(|a, b| {
        b.monthly_cost
            .total_cmp(&a.monthly_cost)
            .then_with(|| a.workload.cmp(&b.workload))
    });
    EgressCosts {
        monthly_cost: by_class.values().sum(),
        by_class,
        by_workload,
    }
}

/// One analysis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Window start, ns.
    pub from_ns: u64,
    /// Window end, ns.
    pub to_ns: u64,
    /// Currency of every amount.
    pub currency: String,
    /// Date of the price catalog.
    pub prices_as_of: String,
    /// Cost allocation.
    #[serde(skip)]
    pub allocation: Allocation,
    /// Cost by namespace, a month.
    pub namespaces: Vec<CostLine>,
    /// Cost by workload, a month.
    pub workloads: Vec<CostLine>,
    /// Cost by node (allocated and idle lines), a month.
    pub nodes: Vec<CostLine>,
    /// Cost by served model, a month.
    pub models: Vec<CostLine>,
    /// Model services: cost a month and per 1M tokens, latency against
    /// the objective.
    pub inference: Vec<inference::InferenceCost>,
    /// Egress a month, by destination class and workload.
    pub egress: EgressCosts,
    /// The cards, largest saving first.
    pub recommendations: Vec<Recommendation>,
    /// CPU node pools packed again with the proposed requests.
    pub packing: Vec<packing::PoolPacking>,
    /// Totals.
    pub totals: Totals,
    /// Prices outside the plausible range of their GPU model.
    pub price_warnings: Vec<PriceWarning>,
}

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The tabular roll-up failed.
    #[error(transparent)]
    Rollup(#[from] RollupError),
}

/// The group of cards whose savings overlap: cards on one container's
/// resource, or on one GPU device, share their money.
fn overlap_group(card: &Recommendation) -> String {
    let resource = match card.kind {
        Kind::CpuRequest => "cpu",
        Kind::MemoryRequest => "memory",
        Kind::Egress => "egress",
        Kind::InferenceReplicas => "replicas",
        Kind::Spot => "capacity",
        Kind::Commitment => "commitment",
        Kind::Schedule => "schedule",
        Kind::VolumeUnclaimed | Kind::VolumeOversized | Kind::VolumeStale => "volume",
        _ => "gpu",
    };
    format!("{resource}|{}|{}", card.workload, card.target)
}

/// The savings of `cards` with overlapping cards counted once (the
/// largest of each overlap group), in total and by kind. Any selection of
/// cards (a namespace, a kind) gets its own de-duplicated total.
pub fn deduplicated<'a>(
    cards: impl IntoIterator<Item = &'a Recommendation>,
) -> (f64, BTreeMap<String, f64>) {
    let mut best: BTreeMap<String, (Kind, f64)> = BTreeMap::new();
    for card in cards {
        let entry = best.entry(overlap_group(card)).or_insert((card.kind, 0.0));
        if card.monthly_savings > entry.1 {
            *entry = (card.kind, card.monthly_savings);
        }
    }
    let mut by_kind = BTreeMap::new();
    for (kind, savings) in best.values() {
        *by_kind.entry(kind.as_str().to_owned()).or_insert(0.0) += savings;
    }
    (best.values().map(|(_, s)| s).sum(), by_kind)
}

/// Runs every analysis over `snapshot`.
pub fn analyze(
    snapshot: &FleetSnapshot,
    config: &AnalyzerConfig,
    prices: &PriceBook,
) -> Result<Report, AnalyzeError> {
    let allocation = allocation::allocate(snapshot, prices);
    let context = Context::new(snapshot, config, prices, &allocation);
    let mut recommendations = Vec::new();
    let inference = inference::analyze(&context, &mut recommendations);
    let egress = egress_costs(&context);
    containers::recommend(&context, &mut recommendations);
    gpu::recommend(&context, &mut recommendations);
    storage::recommend(&context, &mut recommendations);
    egress::recommend(&context, &mut recommendations);
    spot::recommend(&context, &mut recommendations);
    schedules::recommend(&context, &mut recommendations);
    recommendations.sort_by(|a, b| {
        b.monthly_savings
            .total_cmp(&a.monthly_savings)
            .then_with(|| a.id.cmp(&b.id))
    });
    let packing = packing::pack(&context, &recommendations);
    commitments::recommend(&context, &packing, &mut recommendations);
    recommendations.sort_by(|a, b| {
        b.monthly_savings
            .total_cmp(&a.monthly_savings)
            .then_with(|| a.id.cmp(&b.id))
    });
    let (monthly_savings, by_kind) = deduplicated(&recommendations);
    let factor = allocation.monthly_factor();
    let totals = Totals {
        monthly_cost: allocation.total() * factor,
        monthly_idle: allocation.nodes.iter().map(|n| n.idle()).sum::<f64>() * factor,
        monthly_savings,
        monthly_savings_sum: recommendations.iter().map(|r| r.monthly_savings).sum(),
        realizable_monthly_savings: packing.iter().map(|p| p.monthly_savings).sum(),
        by_kind,
    };
    let frame = allocation.frame()?;
    Ok(Report {
        from_ns: snapshot.from_ns,
        to_ns: snapshot.to_ns,
        currency: prices.currency().to_owned(),
        prices_as_of: prices.as_of().to_owned(),
        namespaces: allocation.rollup_frame(&frame, Level::Namespace)?,
        workloads: allocation.rollup_frame(&frame, Level::Workload)?,
        nodes: allocation.rollup_frame(&frame, Level::Node)?,
        models: allocation.rollup_frame(&frame, Level::Model)?,
        inference,
        egress,
        allocation,
        recommendations,
        packing,
        totals,
        price_warnings: prices.sanity_check(),
    })
}
