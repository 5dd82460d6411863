//! OpenTelemetry hardware semantic-convention names for the GPU families
//! that have one (`hw.gpu.*`, and `hw.power`, `hw.energy`, `hw.errors`,
//! `hw.status` with `hw.type` = `gpu`; semantic-conventions
//! `docs/hardware/gpu.md`, status Development).
//!
//! The agent sends these names instead of Tally's when `export.gpu_names`
//! is `semconv`, for OTLP backends whose dashboards follow the conventions.
//! The collector maps them back on ingest, from the agent or from any
//! producer that follows the conventions, so the analyzer, the API and
//! `/metrics` read one name per family whatever the sender chose.
//!
//! Families without a convention (clocks, throttling, PCIe, pages, per-pod
//! GPU use…) keep Tally's name in both modes; the per-pod families ride on
//! the container's resource, whose `k8s.*` attributes are the conventions'
//! own.

use crate::catalog::{self, MetricDef};

/// The OTel instrument a convention names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    /// A gauge.
    Gauge,
    /// A monotonic cumulative sum.
    Counter,
    /// A non-monotonic cumulative sum.
    UpDownCounter,
}

/// One Tally family under its semantic-convention name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemconvName {
    /// The Tally family.
    pub def: &'static MetricDef,
    /// The convention's metric name.
    pub name: &'static str,
    /// The convention's instrument.
    pub instrument: Instrument,
    /// The convention's UCUM unit.
    pub unit: &'static str,
    /// Attributes the agent adds with these values. On ingest a point that
    /// carries one of them with another value is not this family; one that
    /// lacks it still is (the name implies it).
    pub implied: &'static [(&'static str, &'static str)],
    /// Attributes a point must carry with these values to be this family
    /// (`hw.power` is any component's power until `hw.type` says `gpu`).
    pub required: &'static [(&'static str, &'static str)],
}

const GPU_TYPE: &[(&str, &str)] = &[("hw.type", "gpu")];

/// Every mapped family.
pub const GPU_NAMES: &[SemconvName] = &[
    SemconvName {
        def: &catalog::GPU_UTILIZATION,
        name: "hw.gpu.utilization",
        instrument: Instrument::Gauge,
        unit: "1",
        implied: &[("hw.type", "gpu"), ("hw.gpu.task", "general")],
        required: &[],
    },
    SemconvName {
        def: &catalog::GPU_MEMORY_USED,
        name: "hw.gpu.memory.usage",
        instrument: Instrument::UpDownCounter,
        unit: "By",
        implied: GPU_TYPE,
        required: &[],
    },
    SemconvName {
        def: &catalog::GPU_MEMORY_TOTAL,
        name: "hw.gpu.memory.limit",
        instrument: Instrument::UpDownCounter,
        unit: "By",
        implied: GPU_TYPE,
        required: &[],
    },
    SemconvName {
        def: &catalog::GPU_POWER,
        name: "hw.power",
        instrument: Instrument::Gauge,
        unit: "W",
        implied: &[],
        required: GPU_TYPE,
    },
    SemconvName {
        def: &catalog::GPU_ENERGY,
        name: "hw.energy",
        instrument: Instrument::Counter,
        unit: "J",
        implied: &[],
        required: GPU_TYPE,
    },
    SemconvName {
        def: &catalog::GPU_ECC_ERRORS,
        name: "hw.errors",
        instrument: Instrument::Counter,
        unit: "{error}",
        implied: &[],
        required: GPU_TYPE,
    },
    SemconvName {
        def: &catalog::GPU_LOST,
        name: "hw.status",
        instrument: Instrument::UpDownCounter,
        unit: "1",
        implied: &[],
        required: &[("hw.type", "gpu"), ("hw.state", "failed")],
    },
];

/// Tally label ↔ convention attribute, for every mapped family. Labels not
/// listed (`gpu_index`, `mig_profile`, `mig_instance`) keep their names:
/// the conventions allow extra attributes and have none for these.
pub const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("gpu_uuid", "hw.id"),
    ("gpu_model", "hw.model"),
    ("type", "error.type"),
];

/// The convention's name for a Tally family, if it has one.
pub fn for_family(def: &MetricDef) -> Option<&'static SemconvName> {
    GPU_NAMES.iter().find(|n| n.def.base == def.base)
}

/// Whether a metric name may be one of [`GPU_NAMES`] (a cheap test before
/// the per-point [`from_semconv`]).
pub fn is_candidate(metric: &str) -> bool {
    metric.starts_with("hw.") && GPU_NAMES.iter().any(|n| n.name == metric)
}

impl SemconvName {
    /// A Tally point's attributes under the convention: renamed, plus the
    /// implied and required attributes.
    pub fn attributes<'a>(
        &self,
        tally: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = tally
            .into_iter()
            .map(|(key, value)| {
                let key = ATTRIBUTE_NAMES
                    .iter()
                    .find(|(t, _)| *t == key)
                    .map_or(key, |(_, s)| *s);
                (key.to_owned(), value.to_owned())
            })
            .collect();
        for (key, value) in self.implied.iter().chain(self.required) {
            out.push(((*key).to_owned(), (*value).to_owned()));
        }
        out
    }

    /// Whether a point's labels make it this family.
    fn matches<'a>(&self, labels: &[(&'a str, &'a str)]) -> bool {
        let value = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        self.implied
            .iter()
            .all(|(k, v)| value(k).is_none_or(|found| found == *v))
            && self.required.iter().all(|(k, v)| value(k) == Some(*v))
    }
}

/// A point named `metric` with `labels` (resource and point attributes
/// together) as Tally's family and labels, or `None` when it is not a
/// mapped GPU family (another component's `hw.power`, an encoder's
/// `hw.gpu.utilization`, an `ok` `hw.status`…). Labels of the convention
/// that the family implies are dropped; the rest are renamed.
pub fn from_semconv<'a>(
    metric: &str,
    labels: &[(&'a str, &'a str)],
) -> Option<(&'static SemconvName, Vec<(String, String)>)> {
    let name = GPU_NAMES
        .iter()
        .find(|n| n.name == metric && n.matches(labels))?;
    let dropped = |key: &str| {
        name.implied
            .iter()
            .chain(name.required)
            .any(|(k, _)| *k == key)
    };
    let pairs = labels
        .iter()
        .filter(|(k, _)| !dropped(k))
        .map(|(key, value)| {
            let key = ATTRIBUTE_NAMES
                .iter()
                .find(|(_, s)| s == key)
                .map_or(*key, |(t, _)| *t);
            (key.to_owned(), (*value).to_owned())
        })
        .collect();
    Some((name, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MetricKind;

    #[test]
    fn each_name_matches_its_family() {
        for name in GPU_NAMES {
            assert_eq!(
                name.def.unit.ucum(),
                if name.unit == "{error}" {
                    "1"
                } else {
                    name.unit
                },
                "{}",
                name.name
            );
            let counter = name.def.kind == MetricKind::Counter;
            assert_eq!(
                counter,
                name.instrument == Instrument::Counter,
                "{}",
                name.name
            );
            assert!(name.def.full_name().starts_with("tally_gpu_"));
        }
    }

    #[test]
    fn attributes_round_trip() {
        let ecc = for_family(&catalog::GPU_ECC_ERRORS).expect("mapped");
        let tally = [
            ("gpu_uuid", "GPU-1"),
            ("gpu_index", "0"),
            ("gpu_model", "NVIDIA H100 80GB HBM3"),
            ("type", "corrected"),
        ];
        let sent = ecc.attributes(tally.iter().copied());
        let has = |k: &str, v: &str| sent.iter().any(|(sk, sv)| sk == k && sv == v);
        assert!(has("hw.id", "GPU-1"));
        assert!(has("error.type", "corrected"));
        assert!(has("hw.type", "gpu"));
        // The conventions have no index attribute: it keeps its name.
        assert!(has("gpu_index", "0"));
        let mut received: Vec<(&str, &str)> =
            sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        received.push(("k8s.node.name", "gpu-node-1"));
        let (back, pairs) = from_semconv("hw.errors", &received).expect("maps back");
        assert_eq!(back.def.base, catalog::GPU_ECC_ERRORS.base);
        let mut pairs = pairs;
        pairs.sort();
        let expected: Vec<(String, String)> = [
            ("gpu_index", "0"),
            ("gpu_model", "NVIDIA H100 80GB HBM3"),
            ("gpu_uuid", "GPU-1"),
            ("k8s.node.name", "gpu-node-1"),
            ("type", "corrected"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn other_components_and_states_are_not_gpu_families() {
        assert!(
            from_semconv(
                "hw.power",
                &[("hw.id", "psu0"), ("hw.type", "power_supply")]
            )
            .is_none()
        );
        assert!(from_semconv("hw.power", &[("hw.id", "psu0")]).is_none());
        assert!(
            from_semconv(
                "hw.gpu.utilization",
                &[("hw.id", "GPU-1"), ("hw.gpu.task", "encoder")]
            )
            .is_none()
        );
        assert!(
            from_semconv(
                "hw.status",
                &[("hw.id", "GPU-1"), ("hw.type", "gpu"), ("hw.state", "ok")]
            )
            .is_none()
        );
        // hw.gpu.* implies the GPU: a producer may leave hw.type out.
        let (util, _) = from_semconv("hw.gpu.utilization", &[("hw.id", "GPU-1")]).expect("gpu");
        assert_eq!(util.def.base, catalog::GPU_UTILIZATION.base);
        assert!(is_candidate("hw.gpu.memory.usage"));
        assert!(!is_candidate("hw.fan.speed"));
        assert!(!is_candidate("tally_gpu_power_watts"));
    }
}
