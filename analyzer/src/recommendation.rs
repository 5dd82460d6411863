//! The one output type of every analysis: what to change, what it saves
//! a month, how sure and how risky, the numbers behind it and a paragraph
//! a human can act on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::input::WorkloadKey;

/// What a recommendation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Lower or raise a container's CPU request.
    CpuRequest,
    /// Lower or raise a container's memory request and limit.
    MemoryRequest,
    /// A GPU held by a workload that runs nothing on it.
    GpuIdle,
    /// A model replica loaded on a GPU but serving nothing (kept for
    /// latency): reported apart from waste.
    GpuWarmIdle,
    /// GPUs requested but never used by any process.
    GpuUnused,
    /// Move a workload from a whole GPU to a MIG instance.
    GpuMigProfile,
    /// Share a GPU by time-slicing.
    GpuTimeSlice,
    /// Move to a cheaper GPU type that still fits.
    GpuSmallerType,
    /// Egress that costs money and can be avoided.
    Egress,
    /// Fewer model-serving replicas, the latency objective still met.
    InferenceReplicas,
    /// Move a workload to spot capacity.
    Spot,
    /// Commit to the steady baseline (reserved instances, savings plans,
    /// committed use).
    Commitment,
    /// Scale down at the same hours every day.
    Schedule,
    /// A persistent volume no pod mounts.
    VolumeUnclaimed,
    /// A volume far larger than its use.
    VolumeOversized,
    /// A volume whose data has not changed for weeks.
    VolumeStale,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 16] = [
        Kind::CpuRequest,
        Kind::MemoryRequest,
        Kind::GpuIdle,
        Kind::GpuWarmIdle,
        Kind::GpuUnused,
        Kind::GpuMigProfile,
        Kind::GpuTimeSlice,
        Kind::GpuSmallerType,
        Kind::Egress,
        Kind::InferenceReplicas,
        Kind::Spot,
        Kind::Commitment,
        Kind::Schedule,
        Kind::VolumeUnclaimed,
        Kind::VolumeOversized,
        Kind::VolumeStale,
    ];

    /// The snake-case name used in the API, `/metrics` and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CpuRequest => "cpu_request",
            Kind::MemoryRequest => "memory_request",
            Kind::GpuIdle => "gpu_idle",
            Kind::GpuWarmIdle => "gpu_warm_idle",
            Kind::GpuUnused => "gpu_unused",
            Kind::GpuMigProfile => "gpu_mig_profile",
            Kind::GpuTimeSlice => "gpu_time_slice",
            Kind::GpuSmallerType => "gpu_smaller_type",
            Kind::Egress => "egress",
            Kind::InferenceReplicas => "inference_replicas",
            Kind::Spot => "spot",
            Kind::Commitment => "commitment",
            Kind::Schedule => "schedule",
            Kind::VolumeUnclaimed => "volume_unclaimed",
            Kind::VolumeOversized => "volume_oversized",
            Kind::VolumeStale => "volume_stale",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Risk of applying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Nothing measurable changes for the workload.
    Low,
    /// A small, stated chance of throttling, OOM or latency.
    Medium,
    /// Likely to hurt unless the stated condition holds.
    High,
}

/// What applying it risks, in the terms of the resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Level.
    pub level: RiskLevel,
    /// The predicted effect, e.g. "1.8 % of time above the request".
    pub description: String,
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Stable across runs: a hash of the kind and the target.
    pub id: String,
    /// What it changes.
    pub kind: Kind,
    /// The workload it is about.
    pub workload: WorkloadKey,
    /// Container, node or GPU it targets within the workload.
    pub target: String,
    /// Current values, by name.
    pub current: BTreeMap<String, f64>,
    /// Proposed values, by name.
    pub proposed: BTreeMap<String, f64>,
    /// Money saved a month (negative: the change costs money, to remove a
    /// risk).
    pub monthly_savings: f64,
    /// 0..=1.
    pub confidence: f64,
    /// Risk.
    pub risk: Risk,
    /// The numbers it rests on.
    pub evidence: BTreeMap<String, f64>,
    /// One paragraph: what, why, and what to watch.
    pub explanation: String,
}

/// A stable id: FNV-1a over the kind, the workload and the target.
pub fn stable_id(kind: Kind, workload: &WorkloadKey, target: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        kind.as_str(),
        &workload.namespace,
        &workload.kind,
        &workload.name,
        target,
    ] {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let w = WorkloadKey {
            namespace: "web".into(),
            kind: "Deployment".into(),
            name: "api".into(),
        };
        let a = stable_id(Kind::CpuRequest, &w, "main");
        assert_eq!(a, stable_id(Kind::CpuRequest, &w, "main"));
        assert_ne!(a, stable_id(Kind::MemoryRequest, &w, "main"));
        assert_ne!(a, stable_id(Kind::CpuRequest, &w, "sidecar"));
        // Field boundaries count: "ab"+"c" differs from "a"+"bc".
        let shifted = WorkloadKey {
            namespace: "we".into(),
            kind: "bDeployment".into(),
            name: "api".into(),
        };
        assert_ne!(a, stable_id(Kind::CpuRequest, &shifted, "main"));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
