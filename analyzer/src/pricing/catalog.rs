//! The catalog file's schema (`analyzer/data/pricing.json`), its parsing
//! and validation. `scripts/gen-pricing.py` writes the file; the field docs
//! here are the format's reference.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::{PricingError, check_fraction, check_price};

/// The catalog schema version this build reads.
pub const CATALOG_VERSION: u64 = 1;

/// Interruption-frequency buckets of the AWS Spot Instance Advisor, from
/// least to most interrupted.
pub const INTERRUPTION_BUCKETS: [&str; 5] = ["<5%", "5-10%", "10-15%", "15-20%", ">20%"];

/// Commitment kinds a catalog may name.
pub const COMMITMENT_KINDS: [&str; 3] = ["savings_plan", "reserved_instance", "committed_use"];

/// A whole catalog file. Prices are in `currency` (USD in the shipped file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Schema version; must be [`CATALOG_VERSION`].
    pub version: u64,
    /// Date (YYYY-MM-DD) the prices were gathered.
    pub as_of: String,
    /// ISO 4217 code of every price in the file.
    pub currency: String,
    /// Rates for nodes nothing else prices.
    pub defaults: Defaults,
    /// Per provider (`aws`, `gcp`, `azure`): list-price region and the
    /// families its general-purpose rates are solved from.
    pub providers: BTreeMap<String, ProviderInfo>,
    /// Instance types, unique across providers.
    pub instances: Vec<InstancePrice>,
    /// Per canonical GPU model (see [`super::canonical_gpu_model`]).
    pub gpu_models: BTreeMap<String, GpuModelPrice>,
    /// Network transfer prices per provider.
    pub egress: BTreeMap<String, EgressPrices>,
    /// Block and file storage prices per provider.
    pub storage: BTreeMap<String, StoragePrices>,
    /// Commitment discounts per provider, in order of preference.
    pub commitments: BTreeMap<String, Vec<Commitment>>,
}

/// Fallback rates (OpenCost's GCP us-central1 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Price of one vCPU per hour.
    pub cpu_core_hourly: f64,
    /// Price of one GiB of memory per hour.
    pub memory_gib_hourly: f64,
    /// Price of one GPU of unknown model per hour.
    pub gpu_hourly: f64,
    /// Spot discount when neither the instance nor its family has one.
    pub spot_discount: f64,
    /// Storage price per GiB-month for an unknown provider.
    pub storage_gib_month: f64,
    /// Where the figures come from.
    pub source: String,
}

/// What the catalog knows about a provider as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderInfo {
    /// Region whose list prices the catalog holds.
    pub region: String,
    /// CPU-only families with differing memory per vCPU, from which the
    /// per-vCPU and per-GiB rates are solved.
    pub general_purpose_families: Vec<String>,
    /// How the rates are derived.
    pub source: String,
}

/// One instance type's price and shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancePrice {
    /// `aws`, `gcp` or `azure`.
    pub provider: String,
    /// The provider's name for the type, e.g. `p5.48xlarge`.
    pub instance_type: String,
    /// Family, e.g. `p5`, `m6i`, `a3`, `NDH100v5`.
    pub family: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Canonical GPU model, or `None` for CPU-only types.
    pub gpu_model: Option<String>,
    /// GPUs attached.
    pub gpu_count: u32,
    /// On-demand list price per hour in the provider's list region.
    pub on_demand_hourly: f64,
    /// Typical spot discount as a fraction of the on-demand price.
    pub spot_discount: Option<f64>,
    /// Spot interruption-frequency bucket (one of [`INTERRUPTION_BUCKETS`]),
    /// or `None` where the provider publishes none.
    pub interruption_bucket: Option<String>,
    /// Where the figures come from.
    pub source: String,
    /// Date the figures were gathered.
    pub as_of: String,
}

/// One GPU model's price, power and partitioning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuModelPrice {
    /// Device memory in GiB (nominal).
    pub memory_gib: f64,
    /// Price of one GPU per hour, for nodes the catalog has no instance
    /// type for (custom and on-prem clusters).
    pub hourly: f64,
    /// `[min, max]` per-GPU hourly price that is believable; outside it the
    /// sanity check warns.
    pub plausible_hourly: (f64, f64),
    /// Typical draw when idle, in watts.
    pub idle_watts: f64,
    /// Board power limit, in watts.
    pub tdp_watts: f64,
    /// Dense FP16 tensor TFLOPS, to compare models' throughput.
    pub relative_compute: f64,
    /// Compute slices a MIG-capable GPU divides into (7, or 4 for A30);
    /// 0 without MIG.
    pub total_slices: u32,
    /// MIG profiles, empty without MIG.
    pub mig_profiles: Vec<MigProfile>,
    /// Where the figures come from.
    pub source: String,
}

/// One MIG GPU-instance profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigProfile {
    /// Profile name, e.g. `1g.10gb`.
    pub name: String,
    /// Compute slices it takes, out of the model's `total_slices`.
    pub compute_slices: u32,
    /// Memory in GiB (nominal, as in the name).
    pub memory_gib: f64,
    /// How many fit on one GPU.
    pub max_instances: u32,
}

/// A provider's network transfer prices, per GB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPrices {
    /// Between availability zones of a region, per direction charged.
    pub cross_az_per_gb: f64,
    /// Whether both the sending and the receiving side pay `cross_az_per_gb`
    /// (AWS charges out of one zone and into the other).
    pub cross_az_both_directions: bool,
    /// Between regions.
    pub cross_region_per_gb: f64,
    /// GB per month to the internet that are free.
    pub internet_free_gb: f64,
    /// Internet egress tiers by cumulative monthly volume, ascending; the
    /// last is unbounded.
    pub internet_tiers: Vec<EgressTier>,
    /// NAT gateway data processing.
    pub nat_gateway_per_gb: f64,
    /// NAT gateway hourly charge (not volume-based).
    pub nat_gateway_hourly: f64,
    /// Interface (private) endpoint data processing.
    pub vpc_endpoint_per_gb: f64,
    /// Gateway endpoint (S3, DynamoDB) data processing.
    pub gateway_endpoint_per_gb: f64,
    /// Where the figures come from.
    pub source: String,
}

/// One internet egress tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressTier {
    /// Upper end of the tier in GB of monthly volume; `None` is unbounded.
    pub up_to_gb: Option<f64>,
    /// Price per GB inside the tier.
    pub per_gb: f64,
}

/// A provider's storage prices per GiB-month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePrices {
    /// Price per storage class (`gp3`, `pd-balanced`, `standard-ssd`).
    pub classes: BTreeMap<String, f64>,
    /// The class assumed when none is known.
    pub default_class: String,
    /// Other names of a class (Kubernetes StorageClass names, disk SKUs).
    pub aliases: BTreeMap<String, String>,
    /// Where the figures come from.
    pub source: String,
}

/// A commitment offer's typical discount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commitment {
    /// One of [`COMMITMENT_KINDS`].
    pub kind: String,
    /// Families it is specific to; empty means any family.
    pub families: Vec<String>,
    /// Discount of a one-year term, as a fraction of on-demand.
    pub one_year: f64,
    /// Discount of a three-year term.
    pub three_year: f64,
    /// Where the figures come from.
    pub source: String,
}

/// Just the version, read before the full schema so that a newer file is
/// refused for its version rather than for a field this build lacks.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u64>,
}

impl Catalog {
    /// Parses and validates a catalog file's text.
    pub fn parse(text: &str) -> Result<Catalog, PricingError> {
        let probe: VersionProbe = serde_json::from_str(text).map_err(PricingError::Parse)?;
        if let Some(found) = probe.version
            && found != CATALOG_VERSION
        {
            return Err(PricingError::UnsupportedVersion { found });
        }
        let catalog: Catalog = serde_json::from_str(text).map_err(PricingError::Parse)?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Checks every price, discount, bucket and cross-reference.
    pub fn validate(&self) -> Result<(), PricingError> {
        if self.version != CATALOG_VERSION {
            return Err(PricingError::UnsupportedVersion {
                found: self.version,
            });
        }
        check_date("catalog", &self.as_of)?;
        check_currency("catalog", &self.currency)?;
        self.validate_defaults()?;
        for (provider, info) in &self.providers {
            if info.general_purpose_families.is_empty() {
                return Err(inconsistent(
                    format!("provider {provider}"),
                    "general_purpose_families is empty",
                ));
            }
        }
        self.validate_instances()?;
        for (name, model) in &self.gpu_models {
            validate_gpu_model(name, model)?;
        }
        for (provider, egress) in &self.egress {
            validate_egress(provider, egress)?;
        }
        for (provider, storage) in &self.storage {
            validate_storage(provider, storage)?;
        }
        for (provider, offers) in &self.commitments {
            for offer in offers {
                validate_commitment(provider, offer)?;
            }
        }
        Ok(())
    }

    fn validate_defaults(&self) -> Result<(), PricingError> {
        let d = &self.defaults;
        check_price("defaults", "cpu_core_hourly", d.cpu_core_hourly)?;
        check_price("defaults", "memory_gib_hourly", d.memory_gib_hourly)?;
        check_price("defaults", "gpu_hourly", d.gpu_hourly)?;
        check_fraction("defaults", "spot_discount", d.spot_discount)?;
        check_price("defaults", "storage_gib_month", d.storage_gib_month)
    }

    fn validate_instances(&self) -> Result<(), PricingError> {
        let mut seen = BTreeSet::new();
        for instance in &self.instances {
            let entry = format!("instance {}", instance.instance_type);
            // Names compare case-insensitively: labels and price sheets
            // disagree on case.
            if !seen.insert(instance.instance_type.to_ascii_lowercase()) {
                return Err(inconsistent(entry, "is listed twice"));
            }
            if instance.provider.is_empty() || instance.family.is_empty() {
                return Err(inconsistent(entry, "provider and family must not be empty"));
            }
            check_price(&entry, "on_demand_hourly", instance.on_demand_hourly)?;
            if instance.vcpus == 0 {
                return Err(PricingError::invalid(&entry, "vcpus", 0.0, "at least 1"));
            }
            if !(instance.memory_gib.is_finite() && instance.memory_gib > 0.0) {
                return Err(PricingError::invalid(
                    &entry,
                    "memory_gib",
                    instance.memory_gib,
                    "a finite number > 0",
                ));
            }
            if let Some(discount) = instance.spot_discount {
                check_fraction(&entry, "spot_discount", discount)?;
            }
            if let Some(bucket) = &instance.interruption_bucket
                && !INTERRUPTION_BUCKETS.contains(&bucket.as_str())
            {
                return Err(PricingError::Invalid {
                    entry,
                    field: "interruption_bucket",
                    value: format!("{bucket:?}"),
                    expected: "one of \"<5%\", \"5-10%\", \"10-15%\", \"15-20%\", \">20%\" or null",
                });
            }
            match (&instance.gpu_model, instance.gpu_count) {
                (None, 0) => {}
                (Some(model), count) if count > 0 => {
                    if !self.gpu_models.contains_key(model) {
                        return Err(inconsistent(
                            entry,
                            format!("gpu_model {model:?} is not in gpu_models"),
                        ));
                    }
                }
                _ => {
                    return Err(inconsistent(
                        entry,
                        "gpu_model and gpu_count must both be set or both be empty",
                    ));
                }
            }
            check_date(&entry, &instance.as_of)?;
        }
        Ok(())
    }
}

fn validate_gpu_model(name: &str, model: &GpuModelPrice) -> Result<(), PricingError> {
    let entry = format!("gpu model {name}");
    check_price(&entry, "hourly", model.hourly)?;
    let (low, high) = model.plausible_hourly;
    check_price(&entry, "plausible_hourly[0]", low)?;
    check_price(&entry, "plausible_hourly[1]", high)?;
    if low > high {
        return Err(inconsistent(entry, "plausible_hourly has min above max"));
    }
    for (field, value) in [
        ("memory_gib", model.memory_gib),
        ("idle_watts", model.idle_watts),
        ("tdp_watts", model.tdp_watts),
        ("relative_compute", model.relative_compute),
    ] {
        check_price(&entry, field, value)?;
    }
    if model.mig_profiles.is_empty() != (model.total_slices == 0) {
        return Err(inconsistent(
            entry,
            "total_slices must be 0 exactly when mig_profiles is empty",
        ));
    }
    for profile in &model.mig_profiles {
        let fits = profile.compute_slices >= 1
            && profile.compute_slices <= model.total_slices
            && profile.max_instances >= 1
            && profile.compute_slices * profile.max_instances <= model.total_slices
            && profile.memory_gib > 0.0
            && profile.memory_gib <= model.memory_gib;
        if !fits {
            return Err(inconsistent(
                entry,
                format!("MIG profile {} does not fit the GPU", profile.name),
            ));
        }
    }
    Ok(())
}

fn validate_egress(provider: &str, egress: &EgressPrices) -> Result<(), PricingError> {
    let entry = format!("egress {provider}");
    for (field, value) in [
        ("cross_az_per_gb", egress.cross_az_per_gb),
        ("cross_region_per_gb", egress.cross_region_per_gb),
        ("internet_free_gb", egress.internet_free_gb),
        ("nat_gateway_per_gb", egress.nat_gateway_per_gb),
        ("nat_gateway_hourly", egress.nat_gateway_hourly),
        ("vpc_endpoint_per_gb", egress.vpc_endpoint_per_gb),
        ("gateway_endpoint_per_gb", egress.gateway_endpoint_per_gb),
    ] {
        check_price(&entry, field, value)?;
    }
    let Some((last, bounded)) = egress.internet_tiers.split_last() else {
        return Err(inconsistent(entry, "internet_tiers is empty"));
    };
    if last.up_to_gb.is_some() {
        return Err(inconsistent(
            entry,
            "the last internet tier must be unbounded",
        ));
    }
    let mut previous = 0.0;
    for tier in bounded {
        match tier.up_to_gb {
            Some(upper) if upper.is_finite() && upper > previous => previous = upper,
            _ => {
                return Err(inconsistent(
                    entry,
                    "internet tiers must have ascending bounds, only the last unbounded",
                ));
            }
        }
    }
    for tier in &egress.internet_tiers {
        check_price(&entry, "internet_tiers.per_gb", tier.per_gb)?;
    }
    Ok(())
}

fn validate_storage(provider: &str, storage: &StoragePrices) -> Result<(), PricingError> {
    let entry = format!("storage {provider}");
    for (class, price) in &storage.classes {
        check_price(&format!("{entry} class {class}"), "gib_month", *price)?;
    }
    if !storage.classes.contains_key(&storage.default_class) {
        return Err(inconsistent(
            entry,
            format!("default_class {:?} is not a class", storage.default_class),
        ));
    }
    for (alias, class) in &storage.aliases {
        if !storage.classes.contains_key(class) {
            return Err(inconsistent(
                entry,
                format!("alias {alias:?} names unknown class {class:?}"),
            ));
        }
    }
    Ok(())
}

fn validate_commitment(provider: &str, offer: &Commitment) -> Result<(), PricingError> {
    let entry = format!("commitment {provider} {}", offer.kind);
    if !COMMITMENT_KINDS.contains(&offer.kind.as_str()) {
        return Err(PricingError::Invalid {
            entry,
            field: "kind",
            value: format!("{:?}", offer.kind),
            expected: "savings_plan, reserved_instance or committed_use",
        });
    }
    check_fraction(&entry, "one_year", offer.one_year)?;
    check_fraction(&entry, "three_year", offer.three_year)
}

/// Checks `YYYY-MM-DD` by shape; the calendar is not consulted.
fn check_date(entry: &str, date: &str) -> Result<(), PricingError> {
    let bytes = date.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if shaped {
        Ok(())
    } else {
        Err(PricingError::Invalid {
            entry: entry.to_owned(),
            field: "as_of",
            value: format!("{date:?}"),
            expected: "a date as YYYY-MM-DD",
        })
    }
}

/// Checks an ISO 4217-shaped code: three ASCII capitals.
pub(crate) fn check_currency(entry: &str, code: &str) -> Result<(), PricingError> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(PricingError::Invalid {
            entry: entry.to_owned(),
            field: "currency",
            value: format!("{code:?}"),
            expected: "an ISO 4217 code such as \"USD\"",
        })
    }
}

fn inconsistent(entry: impl Into<String>, problem: impl Into<String>) -> PricingError {
    PricingError::Inconsistent {
        entry: entry.into(),
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const BUILTIN: &str = include_str!("../../data/pricing.json");

    /// The builtin catalog with `edit` applied to its JSON.
    fn edited(edit: impl FnOnce(&mut Value)) -> String {
        let mut value: Value = serde_json::from_str(BUILTIN).unwrap();
        edit(&mut value);
        value.to_string()
    }

    fn instance<'a>(value: &'a mut Value, name: &str) -> &'a mut Value {
        value["instances"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|i| i["instance_type"] == name)
            .unwrap()
    }

    fn error_of(text: &str) -> String {
        Catalog::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn builtin_parses() {
        let catalog = Catalog::parse(BUILTIN).unwrap();
        assert_eq!(catalog.version, 1);
        assert_eq!(catalog.currency, "USD");
        assert_eq!(catalog.providers.len(), 3);
    }

    #[test]
    fn rejects_version_2() {
        let message = error_of(&edited(|v| v["version"] = json!(2)));
        assert!(message.contains("version 2"), "{message}");
        // Even when the rest of the schema changed under it.
        let message = error_of(r#"{"version": 2, "prices": []}"#);
        assert!(message.contains("version 2"), "{message}");
    }

    #[test]
    fn rejects_a_negative_price() {
        let message = error_of(&edited(|v| {
            instance(v, "g5.xlarge")["on_demand_hourly"] = json!(-1.0);
        }));
        assert!(message.contains("instance g5.xlarge"), "{message}");
        assert!(message.contains("on_demand_hourly"), "{message}");
    }

    #[test]
    fn rejects_a_discount_of_1_5() {
        let message = error_of(&edited(|v| {
            instance(v, "m6i.large")["spot_discount"] = json!(1.5);
        }));
        assert!(message.contains("instance m6i.large"), "{message}");
        assert!(message.contains("spot_discount is 1.5"), "{message}");
        let message = error_of(&edited(|v| {
            v["commitments"]["aws"][0]["three_year"] = json!(1.5);
        }));
        assert!(message.contains("commitment aws savings_plan"), "{message}");
    }

    #[test]
    fn rejects_an_unknown_bucket() {
        let message = error_of(&edited(|v| {
            instance(v, "p5.48xlarge")["interruption_bucket"] = json!("rare");
        }));
        assert!(message.contains("instance p5.48xlarge"), "{message}");
        assert!(message.contains("\"rare\""), "{message}");
    }

    #[test]
    fn rejects_dangling_and_duplicate_entries() {
        let message = error_of(&edited(|v| {
            instance(v, "g6.xlarge")["gpu_model"] = json!("RTX-4090");
        }));
        assert!(message.contains("instance g6.xlarge"), "{message}");
        assert!(message.contains("RTX-4090"), "{message}");
        let message = error_of(&edited(|v| {
            let copy = instance(v, "g6.xlarge").clone();
            v["instances"].as_array_mut().unwrap().push(copy);
        }));
        assert!(message.contains("g6.xlarge: is listed twice"), "{message}");
        let message = error_of(&edited(|v| {
            v["egress"]["gcp"]["internet_tiers"][0]["per_gb"] = json!(-0.1);
        }));
        assert!(message.contains("egress gcp"), "{message}");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_json() {
        let message = error_of(&edited(|v| v["typo"] = json!(1)));
        assert!(message.contains("typo"), "{message}");
        assert!(error_of("{").contains("does not parse"));
    }
}
