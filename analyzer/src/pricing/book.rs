//! The price book: the catalog with overrides applied, and its lookups of
//! instances, GPU models, storage and commitments.

use std::collections::BTreeMap;

use super::catalog::{Catalog, GpuModelPrice, InstancePrice};
use super::error::PricingError;
use super::gpu::canonical_gpu_model;
use super::node::{ResourceRates, general_purpose_rates};
use super::overrides::{InstanceOverride, PricingOverrides};

/// The catalog shipped in the binary.
const BUILTIN_CATALOG: &str = include_str!("../../data/pricing.json");

/// A parsed catalog plus overrides, ready to price nodes, transfer and
/// storage. Every price it reports is in [`PriceBook::currency`].
#[derive(Debug, Clone)]
pub struct PriceBook {
    /// The catalog as parsed, so that overrides can be replaced rather
    /// than compounded.
    pub(super) base: Catalog,
    /// The catalog in the overrides' currency, with instance and GPU
    /// overrides written in.
    pub(super) effective: Catalog,
    /// Overrides as given, except `gpu_hourly` keyed by canonical model.
    pub(super) overrides: PricingOverrides,
    /// Instance overrides keyed by lower-case type, since clouds and labels
    /// disagree on case (`Standard_D4s_v5` vs `standard_d4s_v5`).
    pub(super) instance_overrides: BTreeMap<String, InstanceOverride>,
    /// Lower-case instance type → position in `effective.instances`.
    pub(super) index: BTreeMap<String, usize>,
    /// Per provider: general-purpose rates, in the book's currency.
    pub(super) rates: BTreeMap<String, ResourceRates>,
}

impl PriceBook {
    /// The catalog shipped in the binary
    /// (`include_str!("../../data/pricing.json")`). Parses on every call;
    /// keep the book rather than calling this per node.
    pub fn builtin() -> Result<PriceBook, PricingError> {
        PriceBook::from_json(BUILTIN_CATALOG)
    }

    /// Parses a catalog file's text (same schema); validates (no negative
    /// prices, discounts in [0, 1), known bucket names, version == 1).
    pub fn from_json(text: &str) -> Result<PriceBook, PricingError> {
        let base = Catalog::parse(text)?;
        PriceBook::build(base, PricingOverrides::default())
    }

    /// Applies config overrides (custom prices, currency, discounts). They
    /// replace any applied before.
    pub fn with_overrides(self, overrides: &PricingOverrides) -> Result<PriceBook, PricingError> {
        overrides.validate()?;
        PriceBook::build(self.base, overrides.clone())
    }

    /// Date (YYYY-MM-DD) the catalog's prices were gathered.
    pub fn as_of(&self) -> &str {
        &self.base.as_of
    }

    /// ISO 4217 code of every price the book reports: "USD" unless
    /// overridden.
    pub fn currency(&self) -> &str {
        &self.effective.currency
    }

    /// The whole catalog in the book's currency, overrides written in.
    pub fn catalog(&self) -> &Catalog {
        &self.effective
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &PricingOverrides {
        &self.overrides
    }

    /// Looks an instance type up across providers (names are unique across
    /// clouds); case-insensitive.
    pub fn instance(&self, instance_type: &str) -> Option<&InstancePrice> {
        let position = *self.index.get(&instance_type.to_ascii_lowercase())?;
        self.effective.instances.get(position)
    }

    /// A GPU model by canonical name, or by any name
    /// [`super::canonical_gpu_model`] understands.
    pub fn gpu_model(&self, canonical: &str) -> Option<&GpuModelPrice> {
        self.effective.gpu_models.get(canonical).or_else(|| {
            self.effective
                .gpu_models
                .get(canonical_gpu_model(canonical)?)
        })
    }

    /// Every GPU model by canonical name, in the book's currency.
    pub fn gpu_models(&self) -> &BTreeMap<String, GpuModelPrice> {
        &self.effective.gpu_models
    }

    /// A provider's general-purpose price of one vCPU-hour and one
    /// GiB-hour, solved from its reference families (see
    /// [`super::node`]); `None` for a provider the catalog cannot solve.
    pub fn general_purpose_rates(&self, provider: &str) -> Option<ResourceRates> {
        self.rates.get(&provider_key(provider)).copied()
    }

    /// Storage price per GiB-month of `storage_class` (a catalog class, a
    /// Kubernetes StorageClass or disk SKU alias) on `provider`; the
    /// provider's default class when the class is unknown or `None`.
    /// Overrides keyed by the given name or the class it resolves to win.
    pub fn storage_gib_month(&self, provider: &str, storage_class: Option<&str>) -> f64 {
        let overridden = |class: &str| self.overrides.storage_gib_month.get(class).copied();
        if let Some(price) = storage_class.and_then(overridden) {
            return price;
        }
        let Some(storage) = self.effective.storage.get(&provider_key(provider)) else {
            return self.effective.defaults.storage_gib_month;
        };
        let resolved = storage_class.and_then(|given| {
            let lower = given.to_ascii_lowercase();
            [given, lower.as_str()].into_iter().find_map(|name| {
                if storage.classes.contains_key(name) {
                    Some(name.to_owned())
                } else {
                    storage.aliases.get(name).cloned()
                }
            })
        });
        let class = resolved.unwrap_or_else(|| storage.default_class.clone());
        overridden(&class)
            .or_else(|| storage.classes.get(&class).copied())
            .unwrap_or(self.effective.defaults.storage_gib_month)
    }

    /// The preferred commitment for `family` on `provider` over `years`
    /// (1 or 3): its kind (`savings_plan`, `reserved_instance`,
    /// `committed_use`) and typical discount. A family-specific offer wins
    /// over a general one.
    pub fn commitment_discount(
        &self,
        provider: &str,
        family: &str,
        years: u32,
    ) -> Option<(String, f64)> {
        self.commitment_options(provider, family, years)
            .into_iter()
            .next()
    }

    /// Every commitment kind open to `family` on `provider` over `years`,
    /// best-fitting first, one entry per kind.
    pub fn commitment_options(
        &self,
        provider: &str,
        family: &str,
        years: u32,
    ) -> Vec<(String, f64)> {
        let Some(offers) = self.effective.commitments.get(&provider_key(provider)) else {
            return Vec::new();
        };
        let specific = offers
            .iter()
            .filter(|offer| offer.families.iter().any(|f| f == family));
        let general = offers.iter().filter(|offer| offer.families.is_empty());
        let mut options: Vec<(String, f64)> = Vec::new();
        for offer in specific.chain(general) {
            let discount = match years {
                1 => offer.one_year,
                3 => offer.three_year,
                _ => return Vec::new(),
            };
            if !options.iter().any(|(kind, _)| *kind == offer.kind) {
                options.push((offer.kind.clone(), discount));
            }
        }
        options
    }

    /// The instance override of `instance_type`, if any.
    pub(super) fn instance_override(&self, instance_type: &str) -> Option<&InstanceOverride> {
        self.instance_overrides
            .get(&instance_type.to_ascii_lowercase())
    }

    fn build(base: Catalog, mut overrides: PricingOverrides) -> Result<PriceBook, PricingError> {
        let rate = overrides.exchange_rate;
        let mut effective = base.clone();
        convert(&mut effective, rate);
        effective.currency = overrides.currency.clone();

        let instance_overrides: BTreeMap<String, InstanceOverride> = overrides
            .instances
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        for instance in &mut effective.instances {
            let Some(own) = instance_overrides.get(&instance.instance_type.to_ascii_lowercase())
            else {
                continue;
            };
            if let Some(price) = own.on_demand_hourly {
                instance.on_demand_hourly = price;
            }
            if let Some(discount) = own.spot_discount {
                instance.spot_discount = Some(discount);
            }
            instance.source = format!("override (pricing.instances); catalog: {}", instance.source);
        }

        let mut gpu_hourly = BTreeMap::new();
        for (name, price) in &overrides.gpu_hourly {
            let key = canonical_gpu_model(name).map_or_else(|| name.clone(), str::to_owned);
            if let Some(earlier) = gpu_hourly.insert(key.clone(), *price)
                && earlier != *price
            {
                return Err(PricingError::Inconsistent {
                    entry: format!("override gpu_hourly.{name}"),
                    problem: format!("names model {key} again with another price"),
                });
            }
        }
        for (name, price) in &gpu_hourly {
            if let Some(model) = effective.gpu_models.get_mut(name) {
                model.hourly = *price;
                model.source = format!("override (pricing.gpu_hourly); catalog: {}", model.source);
            }
        }
        overrides.gpu_hourly = gpu_hourly;

        let mut index = BTreeMap::new();
        for (position, instance) in effective.instances.iter().enumerate() {
            if index
                .insert(instance.instance_type.to_ascii_lowercase(), position)
                .is_some()
            {
                return Err(PricingError::Inconsistent {
                    entry: format!("instance {}", instance.instance_type),
                    problem: "is listed twice (names compare case-insensitively)".to_owned(),
                });
            }
        }
        // Rates come from the catalog's list prices, not from instance
        // overrides, so that one negotiated price does not move every split.
        let rates = base
            .providers
            .iter()
            .filter_map(|(provider, info)| {
                let usd = general_purpose_rates(&base, provider, &info.general_purpose_families)?;
                Some((
                    provider.clone(),
                    ResourceRates {
                        cpu_core_hourly: usd.cpu_core_hourly * rate,
                        memory_gib_hourly: usd.memory_gib_hourly * rate,
                    },
                ))
            })
            .collect();
        Ok(PriceBook {
            base,
            effective,
            overrides,
            instance_overrides,
            index,
            rates,
        })
    }
}

/// Multiplies every price in `catalog` by `rate` (fractions, bounds in GB
/// and watts stay).
fn convert(catalog: &mut Catalog, rate: f64) {
    let defaults = &mut catalog.defaults;
    defaults.cpu_core_hourly *= rate;
    defaults.memory_gib_hourly *= rate;
    defaults.gpu_hourly *= rate;
    defaults.storage_gib_month *= rate;
    for instance in &mut catalog.instances {
        instance.on_demand_hourly *= rate;
    }
    for model in catalog.gpu_models.values_mut() {
        model.hourly *= rate;
        model.plausible_hourly.0 *= rate;
        model.plausible_hourly.1 *= rate;
    }
    for egress in catalog.egress.values_mut() {
        egress.cross_az_per_gb *= rate;
        egress.cross_region_per_gb *= rate;
        egress.nat_gateway_per_gb *= rate;
        egress.nat_gateway_hourly *= rate;
        egress.vpc_endpoint_per_gb *= rate;
        egress.gateway_endpoint_per_gb *= rate;
        for tier in &mut egress.internet_tiers {
            tier.per_gb *= rate;
        }
    }
    for storage in catalog.storage.values_mut() {
        for price in storage.classes.values_mut() {
            *price *= rate;
        }
    }
}

/// The catalog's key for a provider name: lower case, with the names
/// Kubernetes distributions and OpenTelemetry use mapped onto it.
pub(super) fn provider_key(provider: &str) -> String {
    let lower = provider.trim().to_ascii_lowercase();
    match lower.as_str() {
        "amazon" | "eks" | "aws_eks" | "amazon_web_services" => "aws".to_owned(),
        "google" | "gce" | "gke" | "gcp_kubernetes_engine" => "gcp".to_owned(),
        "microsoft" | "aks" | "azure_aks" => "azure".to_owned(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_loads_with_its_date_and_currency() {
        let book = PriceBook::builtin().unwrap();
        assert_eq!(book.as_of(), "2026-11-28");
        assert_eq!(book.currency(), "USD");
        assert!(book.instance("p5.48xlarge").is_some());
        assert!(book.instance("standard_nd96isr_h100_v5").is_some());
        assert!(book.instance("m5.nonexistent").is_none());
    }

    #[test]
    fn every_gpu_instance_names_a_known_model() {
        let book = PriceBook::builtin().unwrap();
        let gpu_instances: Vec<_> = book
            .catalog()
            .instances
            .iter()
            .filter(|i| i.gpu_count > 0)
            .collect();
        assert!(gpu_instances.len() > 30);
        for instance in gpu_instances {
            let model = instance.gpu_model.as_deref().unwrap();
            assert!(
                book.gpu_model(model).is_some(),
                "{} names {model}",
                instance.instance_type
            );
        }
    }

    /// The shapes the brief lists are all present.
    #[test]
    fn required_instance_types_are_present() {
        let book = PriceBook::builtin().unwrap();
        for name in [
            "p5.48xlarge",
            "p5en.48xlarge",
            "p4d.24xlarge",
            "p4de.24xlarge",
            "g6e.xlarge",
            "g6e.48xlarge",
            "g6.12xlarge",
            "g5.xlarge",
            "g4dn.12xlarge",
            "m6i.large",
            "m6i.4xlarge",
            "c6i.4xlarge",
            "r6i.4xlarge",
            "m7i.2xlarge",
            "c7i.2xlarge",
            "m7g.2xlarge",
            "a3-highgpu-8g",
            "a3-ultragpu-8g",
            "a2-highgpu-8g",
            "a2-ultragpu-1g",
            "g2-standard-48",
            "n2-standard-16",
            "e2-standard-8",
            "c3-standard-8",
            "Standard_ND96isr_H100_v5",
            "Standard_ND96isr_H200_v5",
            "Standard_ND96asr_v4",
            "Standard_NC96ads_A100_v4",
            "Standard_NC8as_T4_v3",
            "Standard_D16s_v5",
            "Standard_E8s_v5",
        ] {
            assert!(book.instance(name).is_some(), "{name}");
        }
    }

    /// MIG geometry straight from mig-parted's config-default.yaml.
    #[test]
    fn mig_profiles_match_mig_parted() {
        let book = PriceBook::builtin().unwrap();
        let profiles = |model: &str| -> Vec<(String, u32)> {
            book.gpu_model(model)
                .unwrap()
                .mig_profiles
                .iter()
                .map(|p| (p.name.clone(), p.max_instances))
                .collect()
        };
        let expect = |list: &[(&str, u32)]| -> Vec<(String, u32)> {
            list.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
        };
        assert_eq!(
            profiles("A100-40GB"),
            expect(&[
                ("1g.5gb", 7),
                ("1g.10gb", 4),
                ("2g.10gb", 3),
                ("3g.20gb", 2),
                ("4g.20gb", 1),
                ("7g.40gb", 1)
            ])
        );
        let eighty = expect(&[
            ("1g.10gb", 7),
            ("1g.20gb", 4),
            ("2g.20gb", 3),
            ("3g.40gb", 2),
            ("4g.40gb", 1),
            ("7g.80gb", 1),
        ]);
        assert_eq!(profiles("A100-80GB"), eighty);
        assert_eq!(profiles("H100-80GB"), eighty);
        assert_eq!(
            profiles("H100-NVL-94GB"),
            expect(&[
                ("1g.12gb", 7),
                ("1g.24gb", 4),
                ("2g.24gb", 3),
                ("3g.47gb", 2),
                ("4g.47gb", 1),
                ("7g.94gb", 1)
            ])
        );
        assert_eq!(
            profiles("H200-141GB"),
            expect(&[
                ("1g.18gb", 7),
                ("1g.35gb", 4),
                ("2g.35gb", 3),
                ("3g.71gb", 2),
                ("4g.71gb", 1),
                ("7g.141gb", 1)
            ])
        );
        assert_eq!(
            profiles("A30-24GB"),
            expect(&[("1g.6gb", 4), ("2g.12gb", 2), ("4g.24gb", 1)])
        );
        assert_eq!(book.gpu_model("A30-24GB").unwrap().total_slices, 4);
        assert_eq!(
            book.gpu_model("B200").unwrap().mig_profiles[0].name,
            "1g.23gb"
        );
        for model in ["L40S", "L4", "A10G", "T4"] {
            assert!(profiles(model).is_empty(), "{model}");
        }
    }

    #[test]
    fn storage_resolves_classes_aliases_and_defaults() {
        let book = PriceBook::builtin().unwrap();
        assert_eq!(book.storage_gib_month("aws", Some("gp3")), 0.08);
        assert_eq!(book.storage_gib_month("aws", Some("gp2")), 0.10);
        assert_eq!(book.storage_gib_month("aws", None), 0.08);
        assert_eq!(book.storage_gib_month("aws", Some("no-such-class")), 0.08);
        assert_eq!(book.storage_gib_month("gcp", Some("premium-rwo")), 0.17);
        assert_eq!(book.storage_gib_month("azure", Some("managed-csi")), 0.075);
        assert_eq!(book.storage_gib_month("onprem", None), 0.04);
        let overrides = PricingOverrides {
            storage_gib_month: BTreeMap::from([("standard-rwo".to_owned(), 0.2)]),
            ..PricingOverrides::default()
        };
        let book = book.with_overrides(&overrides).unwrap();
        assert_eq!(book.storage_gib_month("gcp", Some("standard-rwo")), 0.2);
        assert_eq!(book.storage_gib_month("gcp", Some("pd-ssd")), 0.17);
    }

    #[test]
    fn commitments_prefer_family_specific_offers() {
        let book = PriceBook::builtin().unwrap();
        assert_eq!(
            book.commitment_discount("aws", "p5", 1),
            Some(("savings_plan".to_owned(), 0.30))
        );
        assert_eq!(
            book.commitment_discount("aws", "p5", 3),
            Some(("savings_plan".to_owned(), 0.45))
        );
        assert_eq!(
            book.commitment_discount("aws", "m6i", 3),
            Some(("savings_plan".to_owned(), 0.50))
        );
        assert_eq!(
            book.commitment_options("aws", "m6i", 1),
            vec![
                ("savings_plan".to_owned(), 0.28),
                ("reserved_instance".to_owned(), 0.40)
            ]
        );
        assert_eq!(
            book.commitment_discount("gcp", "a3", 3),
            Some(("committed_use".to_owned(), 0.55))
        );
        assert_eq!(
            book.commitment_discount("azure", "Dsv5", 1),
            Some(("reserved_instance".to_owned(), 0.35))
        );
        assert_eq!(book.commitment_discount("aws", "m6i", 2), None);
        assert_eq!(book.commitment_discount("onprem", "x", 1), None);
    }
}
