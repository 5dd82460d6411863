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
}
