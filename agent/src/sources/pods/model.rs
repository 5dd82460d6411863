//! What the agent knows about the pods on its node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use tally_schema::identity::NodeIdentity;

/// One container of a pod, from its spec and status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodContainer {
    /// Container name from the spec.
    pub name: String,
    /// Runtime container ID from `status.containerStatuses[].containerID`
    /// with the `containerd://`, `cri-o://` or `docker://` prefix removed;
    /// empty until the container has started.
    pub container_id: String,
    /// Requests by resource name in base units: `cpu` in cores, `memory`
    /// and `ephemeral-storage` in bytes, extended resources (`nvidia.com/gpu`,
    /// `nvidia.com/mig-1g.10gb`) as counts.
    pub requests: BTreeMap<String, f64>,
    /// Limits, in the same units as `requests`.
    pub limits: BTreeMap<String, f64>,
}

/// One pod scheduled on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// `status.qosClass`.
    pub qos_class: String,
    /// Top-level owner kind after resolving ReplicaSet → Deployment and
    /// Job → CronJob; `Pod` for a bare pod.
    pub workload_kind: String,
    /// Top-level owner name.
    pub workload_name: String,
    /// Regular and init containers.
    pub containers: Vec<PodContainer>,
}

/// Pods on this node keyed by UID, plus the node's own identity.
#[derive(Debug, Default)]
pub struct PodStore {
    pods: HashMap<String, PodInfo>,
    node: Option<NodeIdentity>,
    synced: bool,
}

/// The store shared between the watch task and the readers.
pub type SharedPodStore = Arc<RwLock<PodStore>>;

impl PodStore {
    /// Adds or replaces a pod.
    pub fn upsert(&mut self, pod: PodInfo) {
        self.pods.insert(pod.uid.clone(), pod);
    }

    /// Removes a pod by UID.
    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Replaces the whole set (after a list) and marks the store synced.
    pub fn replace_all(&mut self, pods: impl IntoIterator<Item = PodInfo>) {
        self.pods = pods.into_iter().map(|p| (p.uid.clone(), p)).collect();
        self.synced = true;
    }

    /// Whether a full list has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Looks a pod up by UID.
    pub fn get(&self, uid: &str) -> Option<&PodInfo> {
        self.pods.get(uid)
    }

    /// The pod and container a cgroup belongs to. Matches by container ID
    /// first; pod-level cgroups (no container ID) match the pod alone.
    pub fn lookup(
        &self,
        pod_uid: &str,
        container_id: &str,
    ) -> Option<(&PodInfo, Option<&PodContainer>)> {
        let pod = self.pods.get(pod_uid)?;
        let container = (!container_id.is_empty())
            .then(|| {
                pod.containers
                    .iter()
                    .find(|c| c.container_id == container_id)
            })
            .flatten();
        Some((pod, container))
    }

    /// All pods, in no particular order.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.values()
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// True when no pods are known.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The node's identity from its labels, once read.
    pub fn node(&self) -> Option<&NodeIdentity> {
        self.node.as_ref()
    }

    /// Sets the node's identity.
    pub fn set_node(&mut self, node: NodeIdentity) {
        self.node = Some(node);
    }
}
