//! Egress cards, from the bytes every pod sent and received by
//! destination class, priced per provider:
//! - chatty cross-zone pairs: topology-aware routing
//!   (`trafficDistribution: PreferClose`) keeps calls in the caller's zone;
//!   AWS charges both sides, so each side's bytes are priced once, in and
//!   out;
//! - object storage reached through a NAT gateway (class `service`): a
//!   gateway endpoint removes the NAT processing charge;
//! - model servers pulling weights from the internet through NAT: cache
//!   them (node-local or a shared volume) instead of re-downloading;
//! - cross-region traffic: co-locate, or replicate the data once.
//!
//! Private subnets are assumed to reach the internet and object storage
//! through a NAT gateway, as EKS, GKE and AKS defaults do; that charge is
//! what the cards remove.

use std::collections::BTreeMap;

use super::{Context, card};
use crate::HOURS_PER_MONTH;
use crate::input::{Flow, WorkloadKey};
use crate::pricing::EgressClass;
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

const GB: f64 = 1e9;
/// Share of today's cross-zone bytes topology-aware routing keeps in the
/// zone when the callee has endpoints in every zone.
const PREFER_CLOSE_SHARE: f64 = 0.9;
/// Object storage services whose traffic a gateway endpoint carries.
const GATEWAY_SERVICES: &[&str] = &["s3", "dynamodb", "gcs", "storage.googleapis.com"];

/// One group of flows a card is about.
#[derive(Default)]
struct Path {
    sent: f64,
    received: f64,
    node: String,
    /// The workload a pair's card is filed under.
    workload: Option<WorkloadKey>,
}

/// Monthly factor of the window.
fn monthly(context: &Context<'_>) -> f64 {
    HOURS_PER_MONTH / context.snapshot.hours().max(1e-9)
}

/// Egress cost a month of one flow (both directions, each side priced
/// once), for the report's egress bill.
pub fn flow_cost(context: &Context<'_>, flow: &Flow) -> f64 {
    let provider = context.provider(&flow.node);
    let factor = monthly(context);
    let (sent, received) = (
        flow.transmit_bytes * factor / GB,
        flow.receive_bytes * factor / GB,
    );
    let prices = context.prices;
    match flow.class.as_str() {
        // A private address the agent could not place (no subnet map)
        // is priced as cross-zone, the dearer possibility, rather than
        // assumed free in-zone.
        "cross_zone" | "private_unmapped" => {
            prices.egress_cost_of(&provider, EgressClass::CrossZone, sent + received, false)
        }
        "cross_region" => prices.egress_cost_of(&provider, EgressClass::CrossRegion, sent, false),
        "internet" => {
            prices.egress_cost_of(&provider, EgressClass::Internet, sent, false)
                + prices.egress_cost_of(&provider, EgressClass::Nat, sent + received, false)
        }
        "service" => prices.egress_cost_of(&provider, EgressClass::Nat, sent + received, false),
        _ => 0.0,
    }
}

/// Egress cards.
pub fn recommend(context: &Context<'_>, out: &mut Vec<Recommendation>) {
    let mut cross_zone: BTreeMap<(String, String), Path> = BTreeMap::new();
    let mut storage: BTreeMap<(WorkloadKey, String), Path> = BTreeMap::new();
    let mut downloads: BTreeMap<WorkloadKey, Path> = BTreeMap::new();
    let mut cross_region: BTreeMap<WorkloadKey, Path> = BTreeMap::new();
    let servers: std::collections::HashSet<&WorkloadKey> = context
        .snapshot
        .model_servers
        .iter()
        .map(|m| &m.workload)
        .collect();
    for flow in &context.snapshot.flows {
        let path = match flow.class.as_str() {
            // One card per pair: both sides report their bytes, and
            // both sides' charges are the pair's cost.
            "cross_zone" => match &flow.destination_workload {
                Some(to) => {
                    let from = format!("{}/{}", flow.workload.namespace, flow.workload.name);
                    let pair = if from <= *to {
                        (from, to.clone())
                    } else {
                        (to.clone(), from)
                    };
                    let path = cross_zone.entry(pair).or_default();
                    path.workload.get_or_insert_with(|| flow.workload.clone());
                    path
                }
                None => continue,
            },
            "service" => match &flow.destination_service {
                Some(s) if GATEWAY_SERVICES.contains(&s.as_str()) => storage
                    .entry((flow.workload.clone(), s.clone()))
                    .or_default(),
                _ => continue,
            },
            "internet" if servers.contains(&flow.workload) => {
                downloads.entry(flow.workload.clone()).or_default()
            }
            "cross_region" => cross_region.entry(flow.workload.clone()).or_default(),
            _ => continue,
        };
        path.sent += flow.transmit_bytes;
        path.received += flow.receive_bytes;
        path.node.clone_from(&flow.node);
    }
    let factor = monthly(context);
    let gb = |bytes: f64| bytes * factor / GB;
    for ((a, b), path) in cross_zone {
        let Some(workload) = &path.workload else {
            continue;
        };
        let provider = context.provider(&path.node);
        // Both sides' bytes, in and out: each priced once per side.
        let total = gb(path.sent + path.received);
        let cost = context
            .prices
            .egress_cost_of(&provider, EgressClass::CrossZone, total, false);
        emit(
            context,
            out,
            workload,
            &format!("cross_zone {a}↔{b}"),
            cost,
            cost * PREFER_CLOSE_SHARE,
            total / 2.0,
            RiskLevel::Low,
            format!(
                "{a} and {b} exchange {:.0} GB a month across zones ({} a month at \
                 {provider}'s cross-zone rate, charged on both sides). Set \
                 `trafficDistribution: PreferClose` (or topology-aware routing) on the \
                 callee's Service and run its replicas in every zone: about {:.0} % of that \
                 stays in-zone.",
                total / 2.0,
                context.money(cost),
                PREFER_CLOSE_SHARE * 100.0
            ),
            "calls fall back across zones when a zone has no ready endpoint",
        );
    }
    for ((workload, service), path) in storage {
        let provider = context.provider(&path.node);
        let total = gb(path.sent + path.received);
        let cost = context
            .prices
            .egress_cost_of(&provider, EgressClass::Nat, total, false);
        emit(
            context,
            out,
            &workload,
            &format!("nat→{service}"),
            cost,
            cost,
            total,
            RiskLevel::Low,
            format!(
                "{workload} moves {total:.0} GB a month to and from {service} through a NAT \
                 gateway, which charges its processing ({}). A gateway endpoint for {service} \
                 in the VPC carries the same traffic for free.",
                context.money(cost)
            ),
            "none for the workload; a route-table change",
        );
    }
    for (workload, path) in downloads {
        let provider = context.provider(&path.node);
        let total = gb(path.received);
        let cost = context
            .prices
            .egress_cost_of(&provider, EgressClass::Nat, total, false);
        emit(
            context,
            out,
            &workload,
            "internet→model weights",
            cost,
            cost,
            total,
            RiskLevel::Low,
            format!(
                "{workload} serves a model and downloads {total:.0} GB a month from the \
                 internet through NAT ({}): weights pulled again at every start. Cache them \
                 on a shared volume or a node-local cache, or mirror them to object storage \
                 behind a gateway endpoint.",
                context.money(cost)
            ),
            "the first start after a model change still downloads",
        );
    }
    for (workload, path) in cross_region {
        let provider = context.provider(&path.node);
        let total = gb(path.sent);
        let cost = context
            .prices
            .egress_cost_of(&provider, EgressClass::CrossRegion, total, false);
        emit(
            context,
            out,
            &workload,
            "cross_region",
            cost,
            cost,
            total,
            RiskLevel::Medium,
            format!(
                "{workload} sends {total:.0} GB a month to another region ({}). Run it next \
                 to its data, or replicate the data once instead of reading it across \
                 regions on every run.",
                context.money(cost)
            ),
            "moving data or compute changes latency and where failures land",
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    context: &Context<'_>,
    out: &mut Vec<Recommendation>,
    workload: &WorkloadKey,
    target: &str,
    cost: f64,
    savings: f64,
    gb_per_month: f64,
    level: RiskLevel,
    explanation: String,
    risk: &str,
) {
    if savings < context.config.min_monthly_savings {
        return;
    }
    out.push(card(
        Kind::Egress,
        workload,
        target,
        BTreeMap::from([("monthly_cost".to_owned(), cost)]),
        BTreeMap::from([("monthly_cost".to_owned(), cost - savings)]),
        savings,
        (context.snapshot.hours() / 24.0).min(1.0),
        Risk {
            level,
            description: risk.to_owned(),
        },
        BTreeMap::from([
            ("gb_per_month".to_owned(), gb_per_month),
            ("window_hours".to_owned(), context.snapshot.hours()),
        ]),
        explanation,
    ));
}
