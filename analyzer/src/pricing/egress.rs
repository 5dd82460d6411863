//! Network transfer cost by traffic class, with internet egress tiers.

use serde::{Deserialize, Serialize};

use super::book::{PriceBook, provider_key};
use super::catalog::{EgressPrices, EgressTier};

/// Rates used for a provider the catalog lacks (on-prem, other clouds):
/// AWS's are the most common reference and the dearest of the three for
/// cross-zone traffic, so unknown traffic is not priced at zero.
const FALLBACK_PROVIDER: &str = "aws";

/// Where traffic goes, as far as pricing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressClass {
    /// Between pods of one node: free.
    SameNode,
    /// Within one availability zone: free.
    SameZone,
    /// Between zones of a region.
    CrossZone,
    /// Between regions.
    CrossRegion,
    /// To the internet, tiered by monthly volume.
    Internet,
    /// Through a NAT gateway (processing only; the internet leg is apart).
    Nat,
    /// Through an interface (private) endpoint.
    VpcEndpoint,
    /// Through a gateway endpoint (S3, DynamoDB).
    GatewayEndpoint,
}

impl EgressClass {
    /// From its name (`same_node`, `same-zone`, `cross_zone`,
    /// `cross_region`, `internet`, `nat`, `vpc_endpoint`,
    /// `gateway_endpoint`); `None` when unknown.
    pub fn parse(text: &str) -> Option<EgressClass> {
        let normal = text.trim().to_ascii_lowercase().replace('-', "_");
        Some(match normal.as_str() {
            "same_node" | "node" | "local" => EgressClass::SameNode,
            "same_zone" | "zone" | "intra_zone" => EgressClass::SameZone,
            "cross_zone" | "cross_az" | "inter_zone" => EgressClass::CrossZone,
            "cross_region" | "inter_region" => EgressClass::CrossRegion,
            "internet" | "public" => EgressClass::Internet,
            "nat" | "nat_gateway" => EgressClass::Nat,
            "vpc_endpoint" | "interface_endpoint" | "private_endpoint" => EgressClass::VpcEndpoint,
            "gateway_endpoint" => EgressClass::GatewayEndpoint,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressClass::SameNode => "same_node",
            EgressClass::SameZone => "same_zone",
            EgressClass::CrossZone => "cross_zone",
            EgressClass::CrossRegion => "cross_region",
            EgressClass::Internet => "internet",
            EgressClass::Nat => "nat",
            EgressClass::VpcEndpoint => "vpc_endpoint",
            EgressClass::GatewayEndpoint => "gateway_endpoint",
        }
    }
}

impl PriceBook {
    /// Monthly cost of `gb_per_month` GB in egress class `class` for
    /// `provider`, in the book's currency (USD unless overridden), after
    /// the negotiated egress discount. `same_node`/`same_zone` are free;
    /// `cross_zone` counts both sides where the provider charges both
    /// directions (AWS: the traffic's whole bill); `internet` applies the
    /// tiers and the free allowance to `gb_per_month` as the monthly total,
    /// so pass the account's total and apportion the result; `nat` is the
    /// gateway's processing charge. An unknown class is priced as internet
    /// egress, the dearest, so unclassified traffic is not hidden; an
    /// unknown provider at AWS's rates.
    pub fn egress_cost(&self, provider: &str, class: &str, gb_per_month: f64) -> f64 {
        let class = EgressClass::parse(class).unwrap_or(EgressClass::Internet);
        self.egress_cost_of(provider, class, gb_per_month, true)
    }

    /// [`PriceBook::egress_cost`] with a parsed class, and with the choice
    /// of counting one side only of cross-zone traffic
    /// (`count_both_sides: false`), for attributing traffic to one endpoint
    /// when the peer's side is attributed on its own.
    pub fn egress_cost_of(
        &self,
        provider: &str,
        class: EgressClass,
        gb_per_month: f64,
        count_both_sides: bool,
    ) -> f64 {
        let Some(rates) = self
            .egress_rates(provider)
            .or_else(|| self.egress_rates(FALLBACK_PROVIDER))
        else {
            return 0.0;
        };
        let gb = if gb_per_month.is_finite() {
            gb_per_month.max(0.0)
        } else {
            0.0
        };
        let list = match class {
            EgressClass::SameNode | EgressClass::SameZone => 0.0,
            EgressClass::CrossZone => {
                let sides = if rates.cross_az_both_directions && count_both_sides {
                    2.0
                } else {
                    1.0
                };
                gb * rates.cross_az_per_gb * sides
            }
            EgressClass::CrossRegion => gb * rates.cross_region_per_gb,
            EgressClass::Internet => tiered(rates.internet_free_gb, &rates.internet_tiers, gb),
            EgressClass::Nat => gb * rates.nat_gateway_per_gb,
            EgressClass::VpcEndpoint => gb * rates.vpc_endpoint_per_gb,
            EgressClass::GatewayEndpoint => gb * rates.gateway_endpoint_per_gb,
        };
        list * (1.0 - self.overrides.egress_discount)
    }

    /// A provider's transfer list prices in the book's currency (before the
    /// negotiated egress discount).
    pub fn egress_rates(&self, provider: &str) -> Option<&EgressPrices> {
        self.effective.egress.get(&provider_key(provider))
    }
}

/// Cost of `gb` in a month under `tiers`, whose bounds count the month's
/// cumulative volume; the first `free_gb` of it cost nothing (they fall in
/// the first tier, as on the providers' bills).
fn tiered(free_gb: f64, tiers: &[EgressTier], gb: f64) -> f64 {
    let mut cost = 0.0;
    let mut lower = 0.0_f64;
    for tier in tiers {
        let upper = tier.up_to_gb.unwrap_or(f64::INFINITY);
        let start = lower.max(free_gb);
        let end = upper.min(gb);
        if end > start {
            cost += (end - start) * tier.per_gb;
        }
        if gb <= upper {
            break;
        }
        lower = upper;
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::overrides::PricingOverrides;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    /// AWS: first 100 GB free, 0.09 to 10 TB, 0.085 to 50 TB, 0.07 to
    /// 150 TB. 60 TB = 61 440 GB: 10 140 × 0.09 + 40 960 × 0.085 +
    /// 10 240 × 0.07 = 912.6 + 3481.6 + 716.8 = 5111.0.
    #[test]
    fn aws_internet_tiers_with_free_allowance() {
        let book = PriceBook::builtin().unwrap();
        let cost = |gb| book.egress_cost("aws", "internet", gb);
        assert_eq!(cost(0.0), 0.0);
        assert_eq!(cost(50.0), 0.0);
        assert_eq!(cost(100.0), 0.0);
        assert_close(cost(150.0), 4.5);
        assert_close(cost(61_440.0), 5111.0);
        // Past 150 TB the 0.05 tier: 200 TB adds 51 200 × 0.05 over 150 TB.
        let at_150 = 10_140.0 * 0.09 + 40_960.0 * 0.085 + 102_400.0 * 0.07;
        assert_close(cost(153_600.0), at_150);
        assert_close(cost(204_800.0), at_150 + 51_200.0 * 0.05);
    }

    #[test]
    fn gcp_internet_has_no_allowance() {
        let book = PriceBook::builtin().unwrap();
        assert_close(book.egress_cost("gcp", "internet", 100.0), 12.0);
        assert_close(
            book.egress_cost("gcp", "internet", 2048.0),
            1024.0 * 0.12 + 1024.0 * 0.11,
        );
    }

    #[test]
    fn cross_zone_counts_both_sides_where_charged() {
        let book = PriceBook::builtin().unwrap();
        assert_close(book.egress_cost("aws", "cross_zone", 1000.0), 20.0);
        assert_close(
            book.egress_cost_of("aws", EgressClass::CrossZone, 1000.0, false),
            10.0,
        );
        assert_close(book.egress_cost("gcp", "cross_zone", 1000.0), 10.0);
        assert_eq!(book.egress_cost("azure", "cross_zone", 1000.0), 0.0);
        assert_eq!(book.egress_cost("aws", "same_zone", 1000.0), 0.0);
        assert_eq!(book.egress_cost("aws", "same_node", 1000.0), 0.0);
    }

    #[test]
    fn other_classes_and_fallbacks() {
        let book = PriceBook::builtin().unwrap();
        assert_close(book.egress_cost("aws", "cross_region", 100.0), 2.0);
        assert_close(book.egress_cost("aws", "nat", 100.0), 4.5);
        assert_close(book.egress_cost("aws", "vpc_endpoint", 100.0), 1.0);
        assert_eq!(book.egress_cost("aws", "gateway_endpoint", 100.0), 0.0);
        // Unknown class: internet; unknown provider: AWS rates.
        assert_close(book.egress_cost("aws", "mystery", 150.0), 4.5);
        assert_close(book.egress_cost("onprem", "cross_zone", 100.0), 2.0);
        assert_eq!(book.egress_cost("aws", "internet", f64::NAN), 0.0);
        assert_eq!(book.egress_rates("EKS").unwrap().cross_az_per_gb, 0.01);
    }

    #[test]
    fn egress_discount_and_exchange_rate_apply() {
        let overrides = PricingOverrides {
            exchange_rate: 2.0,
            egress_discount: 0.25,
            ..PricingOverrides::default()
        };
        let book = PriceBook::builtin()
            .unwrap()
            .with_overrides(&overrides)
            .unwrap();
        assert_close(book.egress_cost("aws", "internet", 150.0), 4.5 * 2.0 * 0.75);
    }
}
