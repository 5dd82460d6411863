//! Resource identity: who a measurement belongs to.
//!
//! The same identity is rendered two ways: as Prometheus labels on the
//! agent's `/metrics` page and as OpenTelemetry semantic-convention resource
//! attributes on OTLP batches. Keeping both renderings here means the agent
//! and the collector cannot drift apart.

/// The Prometheus label names that identify a container series, in the order
/// they are rendered. `pod_uid` and `container_id` are always present so a
/// series stays identifiable when the pod watch is unavailable.
pub const CONTAINER_LABELS: &[&str] = &[
    "node",
    "namespace",
    "pod",
    "container",
    "workload_kind",
    "workload_name",
    "pod_uid",
    "container_id",
];

/// The labels that identify a pod series (network families: a pod shares
/// one network namespace between its containers), in the order of
/// [`CONTAINER_LABELS`] without the container.
pub const POD_LABELS: &[&str] = &[
    "node",
    "namespace",
    "pod",
    "workload_kind",
    "workload_name",
    "pod_uid",
];

/// The labels that identify a physical GPU (dcgm-exporter's `gpu`, `UUID`,
/// `modelName`, under Tally's names).
pub const GPU_LABELS: &[&str] = &["node", "gpu_uuid", "gpu_index", "gpu_model"];

/// [`GPU_LABELS`] plus the MIG instance a series belongs to (dcgm-exporter's
/// `GPU_I_PROFILE` and `GPU_I_ID`); both empty (absent) on whole GPUs.
pub const GPU_DEVICE_LABELS: &[&str] = &[
    "node",
    "gpu_uuid",
    "gpu_index",
    "gpu_model",
    "mig_profile",
    "mig_instance",
];

/// Controller kinds with a semantic-convention workload attribute.
pub const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// One GPU device: a whole GPU, or one MIG instance of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuIdentity {
    /// The physical GPU's UUID (`GPU-…`), also for its MIG instances.
    pub uuid: String,
    /// The physical GPU's NVML index on the node.
    pub index: u32,
    /// Product name as NVML reports it (`NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// MIG profile (`1g.10gb`, `3g.40gb`); empty for a whole GPU.
    pub mig_profile: String,
    /// MIG GPU instance id; empty for a whole GPU.
    pub mig_instance: String,
}

impl GpuIdentity {
    /// OTLP data-point attributes, named as the labels in
    /// [`GPU_DEVICE_LABELS`] (GPU families ride on the node resource, as
    /// filesystems do); empty MIG values are left out.
    pub fn point_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = vec![
            ("gpu_uuid", self.uuid.clone()),
            ("gpu_index", self.index.to_string()),
            ("gpu_model", self.model.clone()),
        ];
        push_nonempty(&mut attributes, "mig_profile", &self.mig_profile);
        push_nonempty(&mut attributes, "mig_instance", &self.mig_instance);
        attributes
    }
}

/// The workload (kind, name) named by the semantic-convention attributes
/// `label` returns, for readers of stored series.
pub fn workload_of<'a>(label: impl Fn(&str) -> Option<&'a str>) -> Option<(&'static str, &'a str)> {
    WORKLOAD_KINDS.iter().find_map(|kind| {
        workload_attribute(kind)
            .and_then(&label)
            .map(|name| (*kind, name))
    })
}

/// Identity of the node the agent runs on, from the node object's labels
/// when the Kubernetes API is reachable, else from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Kubernetes node name, or the host name outside a cluster.
    pub name: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: String,
    /// `topology.kubernetes.io/region`.
    pub region: String,
    /// `node.kubernetes.io/instance-type`.
    pub instance_type: String,
    /// Normalised capacity type: `spot`, `on-demand`, `reserved` or empty.
    pub capacity_type: String,
}

/// Identity of one container (or, for cgroups Tally could not map to a
/// container runtime, of one unknown cgroup).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerIdentity {
    /// Kubernetes namespace; empty outside Kubernetes.
    pub namespace: String,
    /// Pod name; empty outside Kubernetes or when the pod watch is down.
    pub pod: String,
    /// Container name from the pod spec (or the Docker/podman name).
    pub container: String,
    /// Top-level owner kind: Deployment, StatefulSet, DaemonSet, CronJob,
    /// Job, ReplicaSet, Pod (bare) or empty when unknown.
    pub workload_kind: String,
    /// Top-level owner name.
    pub workload_name: String,
    /// Pod UID as the API server writes it (dashes, not underscores).
    pub pod_uid: String,
    /// Runtime container ID (64 hex characters) or, for unknown cgroups,
    /// the cgroup path relative to the hierarchy root.
    pub container_id: String,
}

impl ContainerIdentity {
    /// Label values in the order of [`CONTAINER_LABELS`].
    pub fn label_values<'a>(&'a self, node: &'a str) -> [&'a str; 8] {
        [
            node,
            &self.namespace,
            &self.pod,
            &self.container,
            &self.workload_kind,
            &self.workload_name,
            &self.pod_uid,
            &self.container_id,
        ]
    }

    /// OpenTelemetry semantic-convention resource attributes for this
    /// container. Empty values are left out, as the conventions ask.
    pub fn resource_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = Vec::with_capacity(8);
        push_nonempty(&mut attributes, "k8s.namespace.name", &self.namespace);
        push_nonempty(&mut attributes, "k8s.pod.name", &self.pod);
        push_nonempty(&mut attributes, "k8s.pod.uid", &self.pod_uid);
        push_nonempty(&mut attributes, "k8s.container.name", &self.container);
        push_nonempty(&mut attributes, "container.id", &self.container_id);
        if let Some(key) = workload_attribute(&self.workload_kind) {
            push_nonempty(&mut attributes, key, &self.workload_name);
        }
        attributes
    }
}

impl NodeIdentity {
    /// OpenTelemetry resource attributes describing the node.
    pub fn resource_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = Vec::with_capacity(5);
        push_nonempty(&mut attributes, "k8s.node.name", &self.name);
        push_nonempty(&mut attributes, "host.name", &self.name);
        push_nonempty(&mut attributes, "cloud.availability_zone", &self.zone);
        push_nonempty(&mut attributes, "cloud.region", &self.region);
        push_nonempty(&mut attributes, "host.type", &self.instance_type);
        push_nonempty(&mut attributes, "tally.capacity_type", &self.capacity_type);
        attributes
    }
}

/// The semantic-convention attribute naming a workload of this kind.
pub fn workload_attribute(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" => Some("k8s.deployment.name"),
        "StatefulSet" => Some("k8s.statefulset.name"),
        "DaemonSet" => Some("k8s.daemonset.name"),
        "ReplicaSet" => Some("k8s.replicaset.name"),
        "Job" => Some("k8s.job.name"),
        "CronJob" => Some("k8s.cronjob.name"),
        _ => None,
    }
}

fn push_nonempty(out: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    if !value.is_empty() {
        out.push((key, value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_label_names() {
        let id = ContainerIdentity {
            namespace: "ml".into(),
            pod: "train-0".into(),
            container: "trainer".into(),
            workload_kind: "StatefulSet".into(),
            workload_name: "train".into(),
            pod_uid: "u".into(),
            container_id: "c".into(),
        };
        let values = id.label_values("n1");
        assert_eq!(values.len(), CONTAINER_LABELS.len());
        assert_eq!(values[0], "n1");
        assert_eq!(values[CONTAINER_LABELS.len() - 1], "c");
        let attrs = id.resource_attributes();
        assert!(attrs.contains(&("k8s.statefulset.name", "train".to_owned())));
        assert!(attrs.contains(&("container.id", "c".to_owned())));
    }

    #[test]
    fn empty_values_are_left_out_of_attributes() {
        let id = ContainerIdentity {
            container_id: "abc".into(),
            ..Default::default()
        };
        assert_eq!(
            id.resource_attributes(),
            vec![("container.id", "abc".to_owned())]
        );
    }

    #[test]
    fn gpu_attributes_and_workloads_round_trip() {
        let gpu = GpuIdentity {
            uuid: "GPU-1".into(),
            index: 3,
            model: "NVIDIA H100 80GB HBM3".into(),
            ..Default::default()
        };
        let attrs = gpu.point_attributes();
        let keys: Vec<_> = attrs.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, GPU_LABELS[1..]);
        let mig = GpuIdentity {
            mig_profile: "1g.10gb".into(),
            mig_instance: "9".into(),
            ..gpu
        };
        let keys: Vec<_> = mig.point_attributes().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, GPU_DEVICE_LABELS[1..]);

        let id = ContainerIdentity {
            workload_kind: "CronJob".into(),
            workload_name: "nightly".into(),
            ..Default::default()
        };
        let attrs = id.resource_attributes();
        let found = workload_of(|k| attrs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.as_str()));
        assert_eq!(found, Some(("CronJob", "nightly")));
        assert_eq!(workload_of(|_| None), None);
    }
}
