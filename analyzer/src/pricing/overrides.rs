//! Price overrides from the config: negotiated discounts, a currency, and
//! custom prices for what the catalog lacks (on-prem and custom clusters).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::check_currency;
use super::error::{PricingError, check_fraction, check_price};

/// Overrides of the catalog's prices. Prices stated here are in `currency`
/// and are not converted by `exchange_rate`, which converts only the
/// catalog's own (USD) prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingOverrides {
    /// ISO 4217 code every reported price is in.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Units of `currency` per USD; multiplies every catalog price.
    #[serde(default = "default_exchange_rate")]
    pub exchange_rate: f64,
    /// Negotiated discount on compute (an enterprise agreement), a fraction
    /// in [0, 1); applies to every node price, catalog or override.
    #[serde(default = "default_discount")]
    pub discount: f64,
    /// Per instance type: its own on-demand price or spot discount. An
    /// instance type the catalog lacks is priced from the node's shape.
    #[serde(default)]
    pub instances: BTreeMap<String, InstanceOverride>,
    /// Per GPU model (canonical or NVML name): price of one GPU per hour,
    /// for nodes whose instance type the catalog lacks.
    #[serde(default)]
    pub gpu_hourly: BTreeMap<String, f64>,
    /// Price of one vCPU per hour on nodes whose instance type the catalog
    /// lacks (custom and on-prem clusters).
    #[serde(default)]
    pub cpu_core_hourly: Option<f64>,
    /// Price of one GiB of memory per hour on nodes whose instance type the
    /// catalog lacks.
    #[serde(default)]
    pub memory_gib_hourly: Option<f64>,
    /// Per storage class (catalog name or Kubernetes StorageClass name):
    /// price per GiB-month.
    #[serde(default)]
    pub storage_gib_month: BTreeMap<String, f64>,
    /// Negotiated discount on network transfer, a fraction in [0, 1].
    #[serde(default = "default_egress_discount")]
    pub egress_discount: f64,
}

/// One instance type's own figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceOverride {
    /// On-demand price per hour, in the overrides' currency.
    #[serde(default)]
    pub on_demand_hourly: Option<f64>,
    /// Spot discount as a fraction in [0, 1).
    #[serde(default)]
    pub spot_discount: Option<f64>,
}

/// The catalog's currency.
pub fn default_currency() -> String {
    "USD".to_owned()
}

/// No conversion.
pub fn default_exchange_rate() -> f64 {
    1.0
}

/// No negotiated compute discount.
pub fn default_discount() -> f64 {
    0.0
}

/// No negotiated egress discount.
pub fn default_egress_discount() -> f64 {
    0.0
}

impl Default for PricingOverrides {
    fn default() -> PricingOverrides {
        PricingOverrides {
            currency: default_currency(),
            exchange_rate: default_exchange_rate(),
            discount: default_discount(),
            instances: BTreeMap::new(),
            gpu_hourly: BTreeMap::new(),
            cpu_core_hourly: None,
            memory_gib_hourly: None,
            storage_gib_month: BTreeMap::new(),
            egress_discount: default_egress_discount(),
        }
    }
}

impl PricingOverrides {
    /// Checks every figure; errors name the override key.
    pub fn validate(&self) -> Result<(), PricingError> {
        check_currency("override", &self.currency)?;
        if !(self.exchange_rate.is_finite() && self.exchange_rate > 0.0) {
            return Err(PricingError::invalid(
                "override",
                "exchange_rate",
                self.exchange_rate,
                "a finite number > 0",
            ));
        }
        check_fraction("override", "discount", self.discount)?;
        if !(0.0..=1.0).contains(&self.egress_discount) {
            return Err(PricingError::invalid(
                "override",
                "egress_discount",
                self.egress_discount,
                "a fraction in [0, 1]",
            ));
        }
        for (name, instance) in &self.instances {
            let entry = format!("override instances.{name}");
            if let Some(price) = instance.on_demand_hourly {
                check_price(&entry, "on_demand_hourly", price)?;
            }
            if let Some(discount) = instance.spot_discount {
                check_fraction(&entry, "spot_discount", discount)?;
            }
        }
        for (model, price) in &self.gpu_hourly {
            check_price(&format!("override gpu_hourly.{model}"), "hourly", *price)?;
        }
        if let Some(price) = self.cpu_core_hourly {
            check_price("override", "cpu_core_hourly", price)?;
        }
        if let Some(price) = self.memory_gib_hourly {
            check_price("override", "memory_gib_hourly", price)?;
        }
        for (class, price) in &self.storage_gib_month {
            check_price(
                &format!("override storage_gib_month.{class}"),
                "gib_month",
                *price,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let parsed: PricingOverrides = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, PricingOverrides::default());
        assert_eq!(parsed.currency, "USD");
        assert_eq!(parsed.exchange_rate, 1.0);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<PricingOverrides>(r#"{"discuont": 0.1}"#).unwrap_err();
        assert!(error.to_string().contains("discuont"), "{error}");
    }

    #[test]
    fn bad_figures_name_their_key() {
        let mut overrides = PricingOverrides::default();
        overrides.instances.insert(
            "p5.48xlarge".to_owned(),
            InstanceOverride {
                on_demand_hourly: Some(-3.0),
                spot_discount: None,
            },
        );
        let message = overrides.validate().unwrap_err().to_string();
        assert!(message.contains("p5.48xlarge"), "{message}");

        let overrides = PricingOverrides {
            exchange_rate: 0.0,
            ..PricingOverrides::default()
        };
        assert!(overrides.validate().is_err());
        let overrides = PricingOverrides {
            discount: 1.0,
            ..PricingOverrides::default()
        };
        assert!(overrides.validate().is_err());
        let overrides = PricingOverrides {
            currency: "euro".to_owned(),
            ..PricingOverrides::default()
        };
        assert!(overrides.validate().is_err());
    }
}
