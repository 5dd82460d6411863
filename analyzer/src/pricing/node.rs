//! A node's hourly price and its split into CPU, memory and GPU rates.
//!
//! # The GPU-aware split
//!
//! Cost allocation needs a price per vCPU, per GiB and per GPU whose sum
//! over the node's shape is the node's price. OpenCost prices every GPU
//! the same and splits a bundled instance price by fixed ratios (a vCPU
//! worth 10 GiB, a GPU worth 100 GiB), so on a p5.48xlarge an H100 comes
//! out near $1/h and the CPUs and memory soak up most of the bill, and an
//! idle GPU looks cheap. Tally uses the instance's real price and lets the
//! GPUs take the remainder: the CPUs and memory of a GPU node are priced at
//! the same provider's general-purpose rates, solved from the catalog's
//! CPU-only families that differ in memory per vCPU (AWS m6i/c6i/r6i, GCP
//! n2-standard/-highcpu/-highmem, Azure Dsv5/Esv5) by least squares of
//! $/vCPU-h against GiB per vCPU, whose intercept is $/vCPU-h and slope
//! $/GiB-h. The ratio split remains only as the fallback, for a remainder
//! that is negative or outside the GPU model's plausible range, or a
//! provider without rates.
//!
//! # Spot
//!
//! A spot node costs on-demand × (1 − spot discount). A type without its
//! own discount takes its family's median, else the catalog default (0.6);
//! the price's `detail` says which. A spot node is never reported at the
//! on-demand price (OpenCost's bug #3725).

use serde::{Deserialize, Serialize};

use super::book::{PriceBook, provider_key};
use super::catalog::{Catalog, InstancePrice};
use super::gpu::canonical_gpu_model;
use super::overrides::InstanceOverride;

/// OpenCost's fallback weights: a vCPU costs as much as 10 GiB of memory,
/// a GPU as much as 100 GiB.
const RATIO_CPU_PER_GIB: f64 = 10.0;
/// See [`RATIO_CPU_PER_GIB`].
const RATIO_GPU_PER_GIB: f64 = 100.0;

/// What Kubernetes tells about a node, enough to price it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    /// `node.kubernetes.io/instance-type`; empty when unknown.
    pub instance_type: String,
    /// `topology.kubernetes.io/region`; empty when unknown.
    pub region: String,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// vCPU capacity; 0 takes the catalog's figure.
    pub vcpus: f64,
    /// Memory capacity in GiB; 0 takes the catalog's figure.
    pub memory_gib: f64,
    /// GPU model, NVML or canonical name.
    pub gpu_model: Option<String>,
    /// GPUs on the node; 0 takes the catalog's figure.
    pub gpu_count: u32,
}

/// How a node is bought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    /// On-demand (also reserved and committed: commitments are priced
    /// apart).
    #[default]
    OnDemand,
    /// Spot, preemptible or low-priority.
    Spot,
}

impl CapacityType {
    /// From a capacity-type label value in any provider's spelling
    /// (`spot`, `SPOT`, `preemptible`, `on-demand`, `ON_DEMAND`, `reserved`).
    /// Anything not recognisably spot is on-demand, the list price.
    pub fn parse(text: &str) -> CapacityType {
        match text.trim().to_ascii_lowercase().as_str() {
            "spot" | "preemptible" | "low-priority" | "lowpriority" | "interruptible" => {
                CapacityType::Spot
            }
            _ => CapacityType::OnDemand,
        }
    }

    /// The normalised name (`on-demand`, `spot`).
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
        }
    }
}

/// Where a node's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// The catalog's price of the instance type.
    Catalog,
    /// The catalog's per-GPU price of the model, plus CPU and memory rates.
    GpuModel,
    /// Per-unit rates: the provider's general-purpose rates or OpenCost's
    /// defaults.
    Default,
    /// A configured override contributed.
    Override,
}

impl PriceSource {
    /// The snake_case name (`catalog`, `gpu_model`, `default`, `override`),
    /// as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Catalog => "catalog",
            PriceSource::GpuModel => "gpu_model",
            PriceSource::Default => "default",
            PriceSource::Override => "override",
        }
    }
}

/// A node's hourly price and its split, in the book's currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePrice {
    /// What the node costs per hour (after spot and negotiated discounts).
    pub hourly: f64,
    /// What it would cost on demand (after the negotiated discount), for
    /// spot savings.
    pub on_demand_hourly: f64,
    /// Per vCPU-hour.
    pub cpu_core_hourly: f64,
    /// Per GiB-hour.
    pub memory_gib_hourly: f64,
    /// Per GPU-hour.
    pub gpu_hourly: f64,
    /// vCPUs the split is over.
    pub vcpus: f64,
    /// GiB the split is over.
    pub memory_gib: f64,
    /// GPUs the split is over.
    pub gpu_count: u32,
    /// Canonical GPU model, when known.
    pub gpu_model: Option<String>,
    /// `aws`, `gcp`, `azure`, or `unknown`.
    pub provider: String,
    /// Instance family, when known.
    pub family: Option<String>,
    /// Where the price came from.
    pub source: PriceSource,
    /// The spot discount applied (spot nodes), or the type's own discount
    /// (on-demand nodes, for what spot would save).
    pub spot_discount: Option<f64>,
    /// Spot interruption-frequency bucket of the type, when published.
    pub interruption_bucket: Option<String>,
    /// How the figures were reached, for people reading a report.
    pub detail: String,
}

/// Prices of one vCPU-hour and one GiB-hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceRates {
    /// Per vCPU-hour.
    pub cpu_core_hourly: f64,
    /// Per GiB-hour.
    pub memory_gib_hourly: f64,
}

/// The amounts a price is split over.
#[derive(Debug, Clone, Copy)]
struct Shape {
    vcpus: f64,
    memory_gib: f64,
    gpus: u32,
}

/// Per-unit prices summing to a node's on-demand price over its shape.
#[derive(Debug, Clone, Copy)]
struct Split {
    cpu: f64,
    memory: f64,
    gpu: f64,
    how: &'static str,
}

impl PriceBook {
    /// Prices a node. Falls back, in order: catalog instance type →
    /// per-GPU-model price × gpus + CPU/RAM rates (overrides, else the
    /// provider's general-purpose rates, else OpenCost's GCP us-central1
    /// defaults: CPU 0.031611 $/vCPU-h, RAM 0.004237 $/GiB-h, GPU 0.95 $/h)
    /// → those defaults; `source` and `detail` say which it used.
    pub fn node_price(&self, node: &NodeFacts) -> NodePrice {
        let own = self.instance_override(&node.instance_type);
        match self.instance(&node.instance_type) {
            Some(instance) => self.price_instance(node, instance, own.is_some()),
            None => self.price_resources(node, own),
        }
    }

    fn price_instance(
        &self,
        node: &NodeFacts,
        instance: &InstancePrice,
        overridden: bool,
    ) -> NodePrice {
        // Kubernetes' capacity is what allocation multiplies by, so split
        // over it; the catalog's shape fills what the node does not report.
        let shape = Shape {
            vcpus: positive_or(node.vcpus, f64::from(instance.vcpus)),
            memory_gib: positive_or(node.memory_gib, instance.memory_gib),
            gpus: if node.gpu_count > 0 {
                node.gpu_count
            } else {
                instance.gpu_count
            },
        };
        let gpu_model = instance.gpu_model.clone().or_else(|| {
            let name = node.gpu_model.as_deref()?;
            Some(canonical_gpu_model(name).unwrap_or(name).to_owned())
        });
        let plausible = gpu_model
            .as_deref()
            .and_then(|m| self.effective.gpu_models.get(m))
            .map(|m| m.plausible_hourly);
        let split = split_price(
            instance.on_demand_hourly,
            shape,
            self.rates.get(&instance.provider).copied(),
            plausible,
        );
        let (source, origin) = if overridden {
            (PriceSource::Override, "override of")
        } else {
            (PriceSource::Catalog, "catalog")
        };
        let mut detail = format!(
            "{origin} {} {} at {:.4}/h",
            instance.provider, instance.instance_type, instance.on_demand_hourly
        );
        self.note_region(&mut detail, &instance.provider, &node.region);
        detail.push_str("; ");
        detail.push_str(split.how);
        self.finish(Finish {
            node,
            on_demand: instance.on_demand_hourly,
            split,
            shape,
            gpu_model,
            provider: instance.provider.clone(),
            family: Some(instance.family.clone()),
            source,
            own_discount: instance.spot_discount,
            bucket: instance.interruption_bucket.clone(),
            detail,
        })
    }

    fn price_resources(&self, node: &NodeFacts, own: Option<&InstanceOverride>) -> NodePrice {
        let provider = guess_provider(&node.instance_type);
        let family = provider.and_then(|p| guess_family(&node.instance_type, p));
        let shape = Shape {
            vcpus: positive_or(node.vcpus, 0.0),
            memory_gib: positive_or(node.memory_gib, 0.0),
            gpus: node.gpu_count,
        };
        let gpu_model = node
            .gpu_model
            .as_deref()
            .filter(|name| !name.trim().is_empty())
            .map(|name| canonical_gpu_model(name).unwrap_or(name).to_owned());
        let mut used_override = false;
        let mut notes: Vec<String> = Vec::new();

        let provider_rates = provider.and_then(|p| self.rates.get(p));
        let defaults = &self.effective.defaults;
        let cpu = match (self.overrides.cpu_core_hourly, provider_rates) {
            (Some(price), _) => {
                used_override = true;
                price
            }
            (None, Some(rates)) => rates.cpu_core_hourly,
            (None, None) => defaults.cpu_core_hourly,
        };
        let memory = match (self.overrides.memory_gib_hourly, provider_rates) {
            (Some(price), _) => {
                used_override = true;
                price
            }
            (None, Some(rates)) => rates.memory_gib_hourly,
            (None, None) => defaults.memory_gib_hourly,
        };
        notes.push(match (provider, provider_rates) {
            (Some(p), Some(_)) => format!("CPU/RAM at {p} general-purpose rates"),
            _ => "CPU/RAM at OpenCost default rates".to_owned(),
        });
        if self.overrides.cpu_core_hourly.is_some() || self.overrides.memory_gib_hourly.is_some() {
            notes.push("CPU/RAM rates overridden".to_owned());
        }
        let rates = ResourceRates {
            cpu_core_hourly: cpu,
            memory_gib_hourly: memory,
        };
        let plausible = gpu_model
            .as_deref()
            .and_then(|m| self.effective.gpu_models.get(m))
            .map(|m| m.plausible_hourly);

        let (on_demand, split, mut source) =
            if let Some(price) = own.and_then(|o| o.on_demand_hourly) {
                used_override = true;
                notes.insert(0, format!("override price {price:.4}/h"));
                let split = split_price(price, shape, Some(rates), plausible);
                notes.push(split.how.to_owned());
                (price, split, PriceSource::Override)
            } else {
                let (gpu, gpu_source) = self.gpu_rate(gpu_model.as_deref(), shape.gpus, &mut notes);
                if gpu_source == PriceSource::Override {
                    used_override = true;
                }
                let hourly =
                    cpu * shape.vcpus + memory * shape.memory_gib + gpu * f64::from(shape.gpus);
                let split = Split {
                    cpu,
                    memory,
                    gpu,
                    how: "priced per unit",
                };
                (hourly, split, gpu_source)
            };
        if used_override {
            source = PriceSource::Override;
        }
        let shown_type = if node.instance_type.is_empty() {
            "node without instance type"
        } else {
            node.instance_type.as_str()
        };
        let mut detail = format!("{shown_type} not in the catalog; {}", notes.join("; "));
        if shape.vcpus == 0.0 && shape.memory_gib == 0.0 && shape.gpus == 0 {
            detail.push_str("; node shape unknown, nothing to price");
        }
        self.finish(Finish {
            node,
            on_demand,
            split,
            shape,
            gpu_model,
            provider: provider.unwrap_or("unknown").to_owned(),
            family,
            source,
            own_discount: own.and_then(|o| o.spot_discount),
            bucket: None,
            detail,
        })
    }

    /// The per-GPU rate of a node the catalog lacks, and its source.
    fn gpu_rate(
        &self,
        model: Option<&str>,
        gpus: u32,
        notes: &mut Vec<String>,
    ) -> (f64, PriceSource) {
        if gpus == 0 {
            return (0.0, PriceSource::Default);
        }
        if let Some(name) = model {
            if let Some(price) = self.overrides.gpu_hourly.get(name) {
                notes.push(format!("{name} at the overridden {price:.4}/h per GPU"));
                return (*price, PriceSource::Override);
            }
            if let Some(catalog) = self.effective.gpu_models.get(name) {
                notes.push(format!(
                    "{name} at the catalog's {:.4}/h per GPU",
                    catalog.hourly
                ));
                return (catalog.hourly, PriceSource::GpuModel);
            }
        }
        let price = self.effective.defaults.gpu_hourly;
        notes.push(format!(
            "GPU model {} unknown, default {price:.4}/h per GPU",
            model.unwrap_or("not reported")
        ));
        (price, PriceSource::Default)
    }

    fn note_region(&self, detail: &mut String, provider: &str, region: &str) {
        if let Some(info) = self.effective.providers.get(provider)
            && !region.is_empty()
            && region != info.region
        {
            detail.push_str(&format!(" ({} list price; node in {region})", info.region));
        }
    }

    /// Applies spot and the negotiated discount to an on-demand split.
    fn finish(&self, f: Finish<'_>) -> NodePrice {
        let mut detail = f.detail;
        let spot = f.node.capacity_type == CapacityType::Spot;
        let spot_discount = if spot {
            let (discount, why) =
                self.spot_discount(&f.provider, f.family.as_deref(), f.own_discount);
            detail.push_str(&format!("; spot at {discount:.2} off ({why})"));
            Some(discount)
        } else {
            f.own_discount
        };
        let negotiated = self.overrides.discount;
        if negotiated > 0.0 {
            detail.push_str(&format!("; negotiated discount {negotiated:.2}"));
        }
        let list = 1.0 - negotiated;
        let factor = list
            * (1.0
                - if spot {
                    spot_discount.unwrap_or(0.0)
                } else {
                    0.0
                });
        NodePrice {
            hourly: f.on_demand * factor,
            on_demand_hourly: f.on_demand * list,
            cpu_core_hourly: f.split.cpu * factor,
            memory_gib_hourly: f.split.memory * factor,
            gpu_hourly: f.split.gpu * factor,
            vcpus: f.shape.vcpus,
            memory_gib: f.shape.memory_gib,
            gpu_count: f.shape.gpus,
            gpu_model: f.gpu_model,
            provider: f.provider,
            family: f.family,
            source: f.source,
            spot_discount,
            interruption_bucket: f.bucket,
            detail,
        }
    }

    /// The spot discount of a type: its own, else its family's median,
    /// else the catalog default; with the reason.
    fn spot_discount(
        &self,
        provider: &str,
        family: Option<&str>,
        own: Option<f64>,
    ) -> (f64, String) {
        if let Some(discount) = own {
            return (discount, "the instance type's own discount".to_owned());
        }
        if let Some(family) = family {
            let mut discounts: Vec<f64> = self
                .effective
                .instances
                .iter()
                .filter(|i| i.provider == provider && i.family == family)
                .filter_map(|i| i.spot_discount)
                .collect();
            if let Some(median) = median(&mut discounts) {
                return (median, format!("median of the {provider} {family} family"));
            }
        }
        (
            self.effective.defaults.spot_discount,
            "default: no discount known for the type or its family".to_owned(),
        )
    }
}

/// The parts [`PriceBook::finish`] assembles.
struct Finish<'a> {
    node: &'a NodeFacts,
    on_demand: f64,
    split: Split,
    shape: Shape,
    gpu_model: Option<String>,
    provider: String,
    family: Option<String>,
    source: PriceSource,
    own_discount: Option<f64>,
    bucket: Option<String>,
    detail: String,
}

/// Splits `hourly` over `shape` (see the module docs).
fn split_price(
    hourly: f64,
    shape: Shape,
    rates: Option<ResourceRates>,
    plausible_gpu: Option<(f64, f64)>,
) -> Split {
    if let Some(rates) = rates {
        let base = rates.cpu_core_hourly * shape.vcpus + rates.memory_gib_hourly * shape.memory_gib;
        if shape.gpus == 0 {
            if base > 0.0 {
                // Keep the provider's CPU:memory price ratio, scaled to
                // this type's price.
                let scale = hourly / base;
                return Split {
                    cpu: rates.cpu_core_hourly * scale,
                    memory: rates.memory_gib_hourly * scale,
                    gpu: 0.0,
                    how: "split at the provider's CPU:memory rate ratio",
                };
            }
        } else {
            let per_gpu = (hourly - base) / f64::from(shape.gpus);
            let believable = per_gpu > 0.0
                && plausible_gpu.is_none_or(|(low, high)| (low..=high).contains(&per_gpu));
            if believable {
                return Split {
                    cpu: rates.cpu_core_hourly,
                    memory: rates.memory_gib_hourly,
                    gpu: per_gpu,
                    how: "CPU/RAM at general-purpose rates, GPUs take the remainder",
                };
            }
        }
    }
    ratio_split(hourly, shape)
}

/// OpenCost's fixed-ratio split, the fallback.
fn ratio_split(hourly: f64, shape: Shape) -> Split {
    let weight = RATIO_CPU_PER_GIB * shape.vcpus
        + shape.memory_gib
        + RATIO_GPU_PER_GIB * f64::from(shape.gpus);
    if weight <= 0.0 {
        return Split {
            cpu: 0.0,
            memory: 0.0,
            gpu: 0.0,
            how: "no shape to split over",
        };
    }
    let per_gib = hourly / weight;
    Split {
        cpu: RATIO_CPU_PER_GIB * per_gib,
        memory: per_gib,
        gpu: RATIO_GPU_PER_GIB * per_gib,
        how: "split by fixed ratios (vCPU = 10 GiB, GPU = 100 GiB): no believable GPU remainder",
    }
}

/// A provider's general-purpose rates from `families` in `catalog`: least
/// squares of $/vCPU-h against GiB per vCPU over its CPU-only instances of
/// those families. `None` when the fit is singular or not positive.
/// scripts/gen-pricing.py mirrors this to derive GPU model prices.
pub(super) fn general_purpose_rates(
    catalog: &Catalog,
    provider: &str,
    families: &[String],
) -> Option<ResourceRates> {
    let points: Vec<(f64, f64)> = catalog
        .instances
        .iter()
        .filter(|i| i.provider == provider && i.gpu_count == 0 && families.contains(&i.family))
        .map(|i| {
            let vcpus = f64::from(i.vcpus);
            (i.memory_gib / vcpus, i.on_demand_hourly / vcpus)
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let memory = sxy / sxx;
    let cpu = mean_y - memory * mean_x;
    (cpu > 0.0 && memory > 0.0).then_some(ResourceRates {
        cpu_core_hourly: cpu,
        memory_gib_hourly: memory,
    })
}

/// The provider an instance-type name belongs to, from its shape:
/// `family.size` is AWS, `Standard_*` Azure, `series-kind-size` GCP.
pub(super) fn guess_provider(instance_type: &str) -> Option<&'static str> {
    let name = instance_type.trim();
    if name.is_empty() {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("standard_") || lower.starts_with("basic_") {
        return Some("azure");
    }
    if let Some((family, size)) = lower.split_once('.')
        && !family.is_empty()
        && !size.is_empty()
        && family.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Some("aws");
    }
    let mut parts = lower.split('-');
    let series = parts.next().unwrap_or_default();
    let kind = parts.next().unwrap_or_default();
    let gcp_kinds = [
        "standard", "highmem", "highcpu", "highgpu", "ultragpu", "megagpu", "edgegpu", "custom",
        "micro", "small", "medium", "ultramem", "megamem", "hypermem", "node",
    ];
    (!series.is_empty() && !lower.contains('.') && gcp_kinds.contains(&kind)).then_some("gcp")
}

/// An instance type's family where the naming scheme shows it.
pub(super) fn guess_family(instance_type: &str, provider: &str) -> Option<String> {
    let name = instance_type.trim();
    let family = match provider_key(provider).as_str() {
        "aws" => name.split_once('.')?.0,
        "gcp" => name.split_once('-')?.0,
        _ => return None,
    };
    (!family.is_empty()).then(|| family.to_owned())
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pricing::overrides::PricingOverrides;

    fn book() -> PriceBook {
        PriceBook::builtin().unwrap()
    }

    fn facts(instance_type: &str) -> NodeFacts {
        NodeFacts {
            instance_type: instance_type.to_owned(),
            ..NodeFacts::default()
        }
    }

    fn split_sum(price: &NodePrice) -> f64 {
        price.cpu_core_hourly * price.vcpus
            + price.memory_gib_hourly * price.memory_gib
            + price.gpu_hourly * f64::from(price.gpu_count)
    }

    fn assert_close(actual: f64, expected: f64) {
        let tolerance = 1e-9 * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} != {expected}"
        );
    }

    /// Hand-computed: m6i $0.048/vCPU-h at 4 GiB, c6i 0.0425 at 2, r6i
    /// 0.063 at 8 → slope 0.0646667/18.6667 = 0.00346429 $/GiB-h,
    /// intercept 0.0511667 − 4.6667 × 0.00346429 = 0.035 $/vCPU-h.
    #[test]
    fn aws_general_purpose_rates_are_solved_from_m6i_c6i_r6i() {
        let rates = book().general_purpose_rates("aws").unwrap();
        assert!((rates.cpu_core_hourly - 0.035).abs() < 1e-9);
        assert!((rates.memory_gib_hourly - 0.0646667 / 18.66667).abs() < 1e-7);
        // GCP's fit reproduces the N2 SKU rates the prices are made of.
        let gcp = book().general_purpose_rates("gcp").unwrap();
        assert!((gcp.cpu_core_hourly - 0.031611).abs() < 1e-9);
        assert!((gcp.memory_gib_hourly - 0.004237).abs() < 1e-9);
    }

    #[test]
    fn split_sums_to_the_node_price() {
        let book = book();
        for instance in &book.catalog().instances {
            for capacity_type in [CapacityType::OnDemand, CapacityType::Spot] {
                let node = NodeFacts {
                    capacity_type,
                    ..facts(&instance.instance_type)
                };
                let price = book.node_price(&node);
                assert_eq!(price.source, PriceSource::Catalog);
                assert_close(split_sum(&price), price.hourly);
            }
        }
        // Also over Kubernetes' slightly smaller reported capacity.
        let node = NodeFacts {
            vcpus: 191.5,
            memory_gib: 2003.0,
            gpu_count: 8,
            ..facts("p5.48xlarge")
        };
        let price = book.node_price(&node);
        assert_eq!(price.memory_gib, 2003.0);
        assert_close(split_sum(&price), 55.04);
    }

    /// p5.48xlarge: 55.04 − 192 × 0.035 − 2048 × 0.00346429 = 41.2252 over
    /// 8 GPUs = 5.1531 $/h per H100, inside H100's plausible range.
    #[test]
    fn p5_gpu_share_is_a_plausible_h100_price() {
        let book = book();
        let price = book.node_price(&facts("p5.48xlarge"));
        assert_eq!(price.gpu_model.as_deref(), Some("H100-80GB"));
        assert!(
            (price.gpu_hourly - 5.1531).abs() < 1e-3,
            "{}",
            price.gpu_hourly
        );
        let (low, high) = book.gpu_model("H100-80GB").unwrap().plausible_hourly;
        assert!((low..=high).contains(&price.gpu_hourly));
        assert_eq!(
            price.cpu_core_hourly,
            book.general_purpose_rates("aws").unwrap().cpu_core_hourly
        );
        // OpenCost's ratios would give 55.04 / 4768 × 100 = 1.154 per GPU.
        assert!(price.gpu_hourly > 4.0 * 1.154);
    }

    #[test]
    fn cpu_only_split_keeps_the_provider_ratio() {
        let book = book();
        let price = book.node_price(&facts("m6i.2xlarge"));
        let rates = book.general_purpose_rates("aws").unwrap();
        assert_eq!(price.gpu_hourly, 0.0);
        assert_close(
            price.cpu_core_hourly / price.memory_gib_hourly,
            rates.cpu_core_hourly / rates.memory_gib_hourly,
        );
        assert_close(split_sum(&price), 0.384);
    }

    /// The catalog's per-GPU prices are the cheapest remainder share, as
    /// scripts/gen-pricing.py derives them (rounded to 4 decimals).
    #[test]
    fn gpu_model_prices_match_the_cheapest_remainder() {
        let book = book();
        let mut cheapest: BTreeMap<String, f64> = BTreeMap::new();
        for instance in book.catalog().instances.iter().filter(|i| i.gpu_count > 0) {
            let price = book.node_price(&facts(&instance.instance_type));
            let model = instance.gpu_model.clone().unwrap();
            let entry = cheapest.entry(model).or_insert(f64::INFINITY);
            *entry = entry.min(price.gpu_hourly);
        }
        for (model, share) in cheapest {
            let stated = book.gpu_model(&model).unwrap().hourly;
            assert!(
                (stated - share).abs() < 1e-4,
                "{model}: {stated} vs {share}"
            );
        }
    }

    /// g5.xlarge: the advisor snapshot says 59 % savings in us-east-1.
    #[test]
    fn spot_price_uses_the_advisor_discount() {
        let book = book();
        let instance = book.instance("g5.xlarge").unwrap();
        assert_eq!(instance.spot_discount, Some(0.59));
        assert_eq!(instance.interruption_bucket.as_deref(), Some(">20%"));
        let node = NodeFacts {
            capacity_type: CapacityType::parse("SPOT"),
            ..facts("g5.xlarge")
        };
        let price = book.node_price(&node);
        assert_close(price.hourly, 1.006 * (1.0 - 0.59));
        assert_close(price.on_demand_hourly, 1.006);
        assert_eq!(price.spot_discount, Some(0.59));
        assert_close(split_sum(&price), price.hourly);
    }

    #[test]
    fn spot_without_own_discount_takes_family_median_or_default() {
        let book = book();
        // g5.4xlarge is not in the catalog; g5 discounts are 0.59, 0.58,
        // 0.58, 0.71 → median 0.585.
        let node = NodeFacts {
            capacity_type: CapacityType::Spot,
            vcpus: 16.0,
            memory_gib: 64.0,
            gpu_model: Some("NVIDIA A10G".to_owned()),
            gpu_count: 1,
            ..facts("g5.4xlarge")
        };
        let price = book.node_price(&node);
        assert_eq!(price.source, PriceSource::GpuModel);
        assert_eq!(price.spot_discount, Some(0.585));
        assert!(
            price.detail.contains("median of the aws g5 family"),
            "{}",
            price.detail
        );
        assert_close(price.hourly, price.on_demand_hourly * (1.0 - 0.585));
        // An on-prem node has no family: the default discount, said so.
        let node = NodeFacts {
            capacity_type: CapacityType::Spot,
            vcpus: 4.0,
            memory_gib: 16.0,
            ..facts("")
        };
        let price = book.node_price(&node);
        assert_eq!(price.spot_discount, Some(0.6));
        assert!(price.detail.contains("default"), "{}", price.detail);
        assert!(price.hourly < price.on_demand_hourly);
    }

    #[test]
    fn capacity_types_parse() {
        for spot in ["spot", "SPOT", "Spot", "preemptible", "low-priority"] {
            assert_eq!(CapacityType::parse(spot), CapacityType::Spot, "{spot}");
        }
        for on_demand in ["on-demand", "ON_DEMAND", "reserved", "", "weird"] {
            assert_eq!(CapacityType::parse(on_demand), CapacityType::OnDemand);
        }
    }

    /// OpenCost defaults for a node nothing else prices: 4 × 0.031611 +
    /// 16 × 0.004237 + 1 × 0.95.
    #[test]
    fn unknown_node_gets_default_rates() {
        let book = book();
        let node = NodeFacts {
            vcpus: 4.0,
            memory_gib: 16.0,
            gpu_model: Some("NVIDIA GeForce RTX 4090".to_owned()),
            gpu_count: 1,
            ..facts("")
        };
        let price = book.node_price(&node);
        assert_eq!(price.source, PriceSource::Default);
        assert_eq!(price.provider, "unknown");
        assert_close(price.hourly, 4.0 * 0.031611 + 16.0 * 0.004237 + 0.95);
        assert_close(split_sum(&price), price.hourly);
    }

    #[test]
    fn custom_gpu_price_prices_an_unknown_instance_type() {
        let overrides = PricingOverrides {
            gpu_hourly: BTreeMap::from([("NVIDIA H100 80GB HBM3".to_owned(), 2.5)]),
            cpu_core_hourly: Some(0.02),
            memory_gib_hourly: Some(0.002),
            ..PricingOverrides::default()
        };
        let book = book().with_overrides(&overrides).unwrap();
        let node = NodeFacts {
            vcpus: 224.0,
            memory_gib: 2000.0,
            gpu_model: Some("NVIDIA H100 80GB HBM3".to_owned()),
            gpu_count: 8,
            ..facts("dgx-h100")
        };
        let price = book.node_price(&node);
        assert_eq!(price.source, PriceSource::Override);
        assert_eq!(price.gpu_hourly, 2.5);
        assert_close(price.hourly, 8.0 * 2.5 + 224.0 * 0.02 + 2000.0 * 0.002);
        assert_eq!(book.gpu_model("H100-80GB").unwrap().hourly, 2.5);
    }

    #[test]
    fn instance_override_replaces_the_catalog_price() {
        let mut overrides = PricingOverrides::default();
        overrides.instances.insert(
            "P5.48XLARGE".to_owned(),
            InstanceOverride {
                on_demand_hourly: Some(40.0),
                spot_discount: Some(0.5),
            },
        );
        let book = book().with_overrides(&overrides).unwrap();
        let node = NodeFacts {
            capacity_type: CapacityType::Spot,
            ..facts("p5.48xlarge")
        };
        let price = book.node_price(&node);
        assert_eq!(price.source, PriceSource::Override);
        assert_close(price.hourly, 20.0);
        assert_close(split_sum(&price), 20.0);
    }

    #[test]
    fn exchange_rate_and_negotiated_discount_scale_prices() {
        let overrides = PricingOverrides {
            currency: "EUR".to_owned(),
            exchange_rate: 0.9,
            discount: 0.2,
            ..PricingOverrides::default()
        };
        let book = book().with_overrides(&overrides).unwrap();
        assert_eq!(book.currency(), "EUR");
        let price = book.node_price(&facts("g5.xlarge"));
        assert_close(price.on_demand_hourly, 1.006 * 0.9 * 0.8);
        assert_close(price.hourly, 1.006 * 0.9 * 0.8);
        assert_close(split_sum(&price), price.hourly);
        // The split's shape does not change with the currency.
        let usd = PriceBook::builtin()
            .unwrap()
            .node_price(&facts("g5.xlarge"));
        assert_close(price.gpu_hourly, usd.gpu_hourly * 0.9 * 0.8);
        // Overrides replace, they do not compound.
        let again = book.with_overrides(&overrides).unwrap();
        assert_close(again.node_price(&facts("g5.xlarge")).hourly, 1.006 * 0.72);
    }

    #[test]
    fn implausible_remainder_falls_back_to_ratios() {
        let mut overrides = PricingOverrides::default();
        overrides.instances.insert(
            "g4dn.xlarge".to_owned(),
            InstanceOverride {
                on_demand_hourly: Some(0.1),
                spot_discount: None,
            },
        );
        let book = book().with_overrides(&overrides).unwrap();
        let price = book.node_price(&facts("g4dn.xlarge"));
        // 10 × 4 + 16 + 100 × 1 = 156 GiB-equivalents.
        assert_close(price.memory_gib_hourly, 0.1 / 156.0);
        assert_close(price.gpu_hourly, 100.0 * 0.1 / 156.0);
        assert!(price.detail.contains("fixed ratios"), "{}", price.detail);
    }

    #[test]
    fn providers_and_families_are_guessed_from_names() {
        assert_eq!(guess_provider("m5.large"), Some("aws"));
        assert_eq!(guess_provider("p6-b200.48xlarge"), Some("aws"));
        assert_eq!(guess_provider("n2d-standard-8"), Some("gcp"));
        assert_eq!(guess_provider("Standard_NC40ads_H100_v5"), Some("azure"));
        assert_eq!(guess_provider("dgx-h100"), None);
        assert_eq!(guess_provider(""), None);
        assert_eq!(guess_family("g5.4xlarge", "aws").as_deref(), Some("g5"));
        assert_eq!(
            guess_family("n2d-standard-8", "gcp").as_deref(),
            Some("n2d")
        );
    }
}
