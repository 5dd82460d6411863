//! Commitments from the steady baseline: on-demand nodes present through
//! the whole window, after the other recommendations (a CPU pool counts
//! only the nodes its packing still needs, so no commitment is made to
//! capacity the request cards would remove), per provider and instance
//! family. The 1-year term is proposed (the 3-year figure is in the
//! evidence): it pays off when the capacity is needed for more than
//! 12 × (1 − discount) months of the year.

use std::collections::BTreeMap;

use super::Context;
use super::card;
use super::packing::PoolPacking;
use crate::HOURS_PER_MONTH;
use crate::input::WorkloadKey;
use crate::recommendation::{Kind, Recommendation, Risk, RiskLevel};

/// Share of the window a node must be present to count as steady.
const STEADY: f64 = 0.95;

#[derive(Default)]
struct Family {
    nodes: f64,
    monthly: f64,
}

/// Commitment cards.
pub fn recommend(context: &Context<'_>, packing: &[PoolPacking], out: &mut Vec<Recommendation>) {
    let window = context.snapshot.hours();
    if window <= 0.0 {
        return;
    }
    // Nodes the packing still needs per on-demand CPU pool.
    let mut needed: BTreeMap<&str, usize> = packing
        .iter()
        .filter(|p| p.capacity_type != "spot")
        .map(|p| (p.instance_type.as_str(), p.nodes_needed))
        .collect();
    let mut families: BTreeMap<(String, String), Family> = BTreeMap::new();
    for node in &context.snapshot.nodes {
        if node.capacity_type == "spot" || node.hours < STEADY * window {
            continue;
        }
        if let Some(left) = needed.get_mut(node.instance_type.as_str()) {
            if *left == 0 {
                continue;
            }
            *left -= 1;
        }
        let Some(instance) = context.prices.instance(&node.instance_type) else {
            continue;
        };
        let Some(hourly) = context.node_hourly(&node.name) else {
            continue;
        };
        let family = families
            .entry((instance.provider.clone(), instance.family.clone()))
            .or_default();
        family.nodes += 1.0;
        family.monthly += hourly * HOURS_PER_MONTH;
    }
    for ((provider, family), f) in families {
        let Some((kind, discount)) = context.prices.commitment_discount(&provider, &family, 1)
        else {
            continue;
        };
        let three_year = context
            .prices
            .commitment_discount(&provider, &family, 3)
            .map_or(0.0, |(_, d)| d);
        let savings = f.monthly * discount;
        if savings < context.config.min_monthly_savings {
            continue;
        }
        let break_even_months = 12.0 * (1.0 - discount);
        let workload = WorkloadKey {
            namespace: String::new(),
            kind: "NodeFamily".to_owned(),
            name: format!("{provider}/{family}"),
        };
        out.push(card(
            Kind::Commitment,
            &workload,
            &kind,
            BTreeMap::from([("committed_nodes".to_owned(), 0.0)]),
            BTreeMap::from([
                ("committed_nodes".to_owned(), f.nodes),
                ("term_years".to_owned(), 1.0),
            ]),
            savings,
            (window / 24.0 / 14.0).min(1.0),
            Risk {
                level: RiskLevel::Medium,
                description: format!(
                    "paid for a year even if the fleet shrinks; pays off above {break_even_months:.1} months of use"
                ),
            },
            BTreeMap::from([
                ("steady_nodes".to_owned(), f.nodes),
                ("on_demand_monthly".to_owned(), f.monthly),
                ("discount_1y".to_owned(), discount),
                ("discount_3y".to_owned(), three_year),
                ("monthly_savings_3y".to_owned(), f.monthly * three_year),
                ("break_even_months".to_owned(), break_even_months),
            ]),
            format!(
                "{} on-demand {provider} {family} nodes ran through the whole {:.1}-day window \
                 and stay needed after the other recommendations ({} a month). A 1-year {kind} \
                 covering them saves {:.0} % ({} a month; 3 years: {:.0} %). It pays off if \
                 the capacity is needed for more than {break_even_months:.1} months of the year.",
                f.nodes,
                window / 24.0,
                context.money(f.monthly),
                discount * 100.0,
                context.money(savings),
                three_year * 100.0,
            ),
        ));
    }
}
