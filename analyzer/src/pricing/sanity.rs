//! Sanity check of the prices in force: a typo in an override ($0.10 for
//! an H100, $500 for an m6i) would silently skew every report, so the
//! analyzer flags prices outside believable ranges.

use serde::Serialize;

use super::book::PriceBook;

/// Believable $/vCPU-h of a CPU-only instance (USD): Graviton spot-class
/// prices at the bottom, memory-optimised x86 with headroom at the top.
const VCPU_HOURLY_USD: (f64, f64) = (0.002, 1.0);
/// Believable override of the price of one vCPU-hour (USD).
const CPU_CORE_HOURLY_USD: (f64, f64) = (0.001, 0.5);
/// Believable override of the price of one GiB-hour (USD).
const MEMORY_GIB_HOURLY_USD: (f64, f64) = (0.0001, 0.05);

/// A price outside what is believable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceWarning {
    /// What is priced, e.g. `gpu model H100-80GB`, `instance p5.48xlarge`.
    pub subject: String,
    /// What is wrong, for people.
    pub message: String,
    /// The price in question, per hour, in the book's currency.
    pub hourly: f64,
    /// The believable range, in the book's currency.
    pub plausible: (f64, f64),
}

impl PriceBook {
    /// Prices outside the plausible range of their GPU model, and other
    /// suspicious entries: GPU shares of instance prices, per-vCPU prices
    /// of CPU-only instances, and per-unit overrides.
    pub fn sanity_check(&self) -> Vec<PriceWarning> {
        let rate = self.overrides.exchange_rate;
        let scaled = |(low, high): (f64, f64)| (low * rate, high * rate);
        let mut warnings = Vec::new();
        let mut check = |subject: String, what: &str, hourly: f64, plausible: (f64, f64)| {
            if !(plausible.0..=plausible.1).contains(&hourly) {
                warnings.push(PriceWarning {
                    message: format!(
                        "{what} {hourly:.4} {currency}/h is outside the plausible {:.4}..{:.4}",
                        plausible.0,
                        plausible.1,
                        currency = self.currency(),
                    ),
                    subject,
                    hourly,
                    plausible,
                });
            }
        };

        for (name, model) in &self.effective.gpu_models {
            check(
                format!("gpu model {name}"),
                "per-GPU price",
                model.hourly,
                model.plausible_hourly,
            );
        }
        for instance in &self.effective.instances {
            let subject = format!("instance {}", instance.instance_type);
            if instance.gpu_count == 0 {
                let per_vcpu = instance.on_demand_hourly / f64::from(instance.vcpus);
                check(subject, "price per vCPU", per_vcpu, scaled(VCPU_HOURLY_USD));
                continue;
            }
            let Some(rates) = self.rates.get(&instance.provider) else {
                continue;
            };
            let Some(model) = instance
                .gpu_model
                .as_deref()
                .and_then(|m| self.effective.gpu_models.get(m))
            else {
                continue;
            };
            let rest = rates.cpu_core_hourly * f64::from(instance.vcpus)
                + rates.memory_gib_hourly * instance.memory_gib;
            let share = (instance.on_demand_hourly - rest) / f64::from(instance.gpu_count);
            check(
                subject,
                "GPU share of the price",
                share,
                model.plausible_hourly,
            );
        }
        if let Some(price) = self.overrides.cpu_core_hourly {
            check(
                "override cpu_core_hourly".to_owned(),
                "price per vCPU",
                price,
                scaled(CPU_CORE_HOURLY_USD),
            );
        }
        if let Some(price) = self.overrides.memory_gib_hourly {
            check(
                "override memory_gib_hourly".to_owned(),
                "price per GiB",
                price,
                scaled(MEMORY_GIB_HOURLY_USD),
            );
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pricing::overrides::{InstanceOverride, PricingOverrides};

    #[test]
    fn builtin_catalog_has_no_warnings() {
        let warnings = PriceBook::builtin().unwrap().sanity_check();
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    #[test]
    fn implausible_h100_overrides_are_flagged() {
        for price in [0.10, 500.0] {
            let overrides = PricingOverrides {
                gpu_hourly: BTreeMap::from([("H100-80GB".to_owned(), price)]),
                ..PricingOverrides::default()
            };
            let book = PriceBook::builtin()
                .unwrap()
                .with_overrides(&overrides)
                .unwrap();
            let warnings = book.sanity_check();
            assert_eq!(warnings.len(), 1, "{warnings:#?}");
            assert_eq!(warnings[0].subject, "gpu model H100-80GB");
            assert_eq!(warnings[0].hourly, price);
            assert!(warnings[0].message.contains("plausible"));
        }
    }

    #[test]
    fn ranges_follow_the_exchange_rate() {
        let overrides = PricingOverrides {
            currency: "JPY".to_owned(),
            exchange_rate: 150.0,
            ..PricingOverrides::default()
        };
        let book = PriceBook::builtin()
            .unwrap()
            .with_overrides(&overrides)
            .unwrap();
        assert!(book.sanity_check().is_empty());
    }

    #[test]
    fn implausible_instance_and_unit_overrides_are_flagged() {
        let mut overrides = PricingOverrides {
            cpu_core_hourly: Some(3.0),
            ..PricingOverrides::default()
        };
        overrides.instances.insert(
            "m6i.large".to_owned(),
            InstanceOverride {
                on_demand_hourly: Some(500.0),
                spot_discount: None,
            },
        );
        let book = PriceBook::builtin()
            .unwrap()
            .with_overrides(&overrides)
            .unwrap();
        let subjects: Vec<String> = book.sanity_check().into_iter().map(|w| w.subject).collect();
        assert_eq!(
            subjects,
            vec!["instance m6i.large", "override cpu_core_hourly"]
        );
    }
}
