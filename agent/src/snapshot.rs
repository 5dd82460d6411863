//! The latest complete picture of the node, shared between the sampling
//! loop (writer), `/metrics` (reader at scrape time) and the exporter.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tally_schema::identity::{ContainerIdentity, NodeIdentity};

use crate::export::sender::ExportCounts;
use crate::export::spool::SpoolStats;
use crate::sources::cgroups::discovery::Runtime;
use crate::sources::cgroups::reader::CgroupStats;
use crate::sources::gpu::{ContainerGpuPoints, GpuSnapshot};
use crate::sources::host::HostStats;
use crate::sources::pods::model::{PodInfo, PodStore};
use crate::sources::pods::workloads::PodFacts;
use crate::sources::serving::ServingSnapshot;
use crate::sources::volumes::PodVolume;
use crate::telemetry::SourceHealth;

/// One container in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSnapshot {
    /// Who it is (pod fields empty when the pod watch is unavailable).
    pub identity: ContainerIdentity,
    /// Runtime from the cgroup path.
    pub runtime: Runtime,
    /// Cgroup path relative to the hierarchy root.
    pub cgroup: String,
    /// 1 or 2.
    pub cgroup_version: u8,
    /// Latest readings.
    pub stats: CgroupStats,
    /// Requests from the pod spec, base units.
    pub requests: BTreeMap<String, f64>,
    /// Limits from the pod spec, base units.
    pub limits: BTreeMap<String, f64>,
}

/// Export and spool counters, copied in by the runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportTelemetry {
    /// Export outcomes.
    pub counts: ExportCounts,
    /// Spool occupancy and losses.
    pub spool: SpoolStats,
}

/// The whole picture at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: Option<SystemTime>,
    /// The node.
    pub node: NodeIdentity,
    /// Host readings, once the first collection finished.
    pub host: Option<HostStats>,
    /// Containers.
    pub containers: Vec<ContainerSnapshot>,
    /// Pods from the watch (empty outside Kubernetes).
    pub pods: Vec<PodInfo>,
    /// Start-up, controller and disruption-budget facts of the pods with
    /// any, by namespace and pod.
    pub pod_facts: Vec<PodFacts>,
    /// Last discovery's cgroup counts by runtime.
    pub cgroups_by_runtime: BTreeMap<Runtime, u64>,
    /// Pod volumes of the last full collection.
    pub volumes: Vec<PodVolume>,
    /// GPU devices and per-container GPU use of the last full collection.
    pub gpu: GpuSnapshot,
    /// Model servers: scrape health and the latest readings.
    pub serving: ServingSnapshot,
    /// Metrics derived from container logs, per container.
    pub logs: Vec<ContainerGpuPoints>,
    /// Bytes by pod and destination since the agent started.
    pub egress: Vec<crate::sources::egress::ledger::Traffic>,
    /// The egress source's own figures (node points).
    pub egress_status: Vec<crate::sources::gpu::GpuPoint>,
}

/// State shared by every reader of the agent.
#[derive(Debug)]
pub struct Shared {
    /// Node name used in every label set.
    pub node_name: String,
    /// Agent version.
    pub version: &'static str,
    /// Latest snapshot.
    pub snapshot: RwLock<Arc<Snapshot>>,
    /// Health of every source, in rendering order.
    pub sources: Vec<Arc<SourceHealth>>,
    /// Export counters (present when a collector is configured).
    pub export: RwLock<Option<ExportTelemetry>>,
}

impl Shared {
    /// New shared state with an empty snapshot.
    pub fn new(node_name: String, sources: Vec<Arc<SourceHealth>>) -> Self {
        Self {
            node_name,
            version: env!("CARGO_PKG_VERSION"),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            sources,
            export: RwLock::new(None),
        }
    }

    /// The latest snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Publishes a new snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Export counters, if exporting.
    pub fn export_telemetry(&self) -> Option<ExportTelemetry> {
        match self.export.read() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Replaces the export counters.
    pub fn set_export_telemetry(&self, telemetry: ExportTelemetry) {
        match self.export.write() {
            Ok(mut guard) => *guard = Some(telemetry),
            Err(poisoned) => *poisoned.into_inner() = Some(telemetry),
        }
    }
}

/// Identity of a container cgroup from the pod store. Sandbox (pause)
/// containers of a known pod get the container name `POD`, as cAdvisor
/// names them.
pub fn resolve_identity(
    pods: &PodStore,
    pod_uid: &str,
    container_id: &str,
) -> (
    ContainerIdentity,
    BTreeMap<String, f64>,
    BTreeMap<String, f64>,
) {
    let mut identity = ContainerIdentity {
        pod_uid: pod_uid.to_owned(),
        container_id: container_id.to_owned(),
        ..Default::default()
    };
    let Some((pod, container)) = pods.lookup(pod_uid, container_id) else {
        return (identity, BTreeMap::new(), BTreeMap::new());
    };
    identity.namespace = pod.namespace.clone();
    identity.pod = pod.name.clone();
    identity.workload_kind = pod.workload_kind.clone();
    identity.workload_name = pod.workload_name.clone();
    match container {
        Some(container) => {
            identity.container = container.name.clone();
            (
                identity,
                container.requests.clone(),
                container.limits.clone(),
            )
        }
        None => {
            identity.container = "POD".to_owned();
            (identity, BTreeMap::new(), BTreeMap::new())
        }
    }
}
