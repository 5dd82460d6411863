//! What the agent knows about the pods on its node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use tally_schema::identity::{ContainerIdentity, NodeIdentity};

use super::workloads::{Autoscaler, ControllerFacts, DisruptionBudget, PodFacts, WorkloadRef};

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
    /// Image reference from the spec.
    pub image: String,
    /// Declared TCP ports.
    pub ports: Vec<u16>,
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
    /// `metadata.labels` (PodDisruptionBudgets select by them).
    pub labels: BTreeMap<String, String>,
    /// Seconds from `PodScheduled` to `Ready`, once the pod is Ready.
    pub startup_seconds: Option<f64>,
    /// `status.podIP`; empty until assigned.
    pub pod_ip: String,
    /// The `prometheus.io/*` and `tally.dev/*` annotations (model-serving
    /// discovery).
    pub scrape_annotations: BTreeMap<String, String>,
}

/// Pods on this node keyed by UID, plus the node's own identity and what
/// the API says about the pods' controllers, disruption budgets and
impl PodInfo {
    /// The pod's identity (container fields empty).
    pub fn identity(&self) -> ContainerIdentity {
        ContainerIdentity {
            namespace: self.namespace.clone(),
            pod: self.name.clone(),
            workload_kind: self.workload_kind.clone(),
            workload_name: self.workload_name.clone(),
            pod_uid: self.uid.clone(),
            ..Default::default()
        }
    }
}

/// autoscalers.
#[derive(Debug, Default)]
pub struct PodStore {
    pods: HashMap<String, PodInfo>,
    node: Option<NodeIdentity>,
    synced: bool,
    controllers: HashMap<WorkloadRef, ControllerFacts>,
    budgets: HashMap<String, Vec<DisruptionBudget>>,
    autoscalers: HashMap<String, Vec<Autoscaler>>,
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

    /// Replaces the controller facts (those that could be read).
    pub fn set_controllers(&mut self, controllers: HashMap<WorkloadRef, ControllerFacts>) {
        self.controllers = controllers;
    }

    /// Replaces the disruption budgets by namespace (namespaces whose list
    /// could be read).
    pub fn set_disruption_budgets(&mut self, budgets: HashMap<String, Vec<DisruptionBudget>>) {
        self.budgets = budgets;
    }

    /// Replaces the autoscalers by namespace, each namespace's by name
    /// (namespaces whose list could be read).
    pub fn set_autoscalers(&mut self, autoscalers: HashMap<String, Vec<Autoscaler>>) {
        self.autoscalers = autoscalers;
    }

    /// What is known of `pod`'s start-up, controller, disruption budgets
    /// and autoscaler; empty when nothing is.
    pub fn facts(&self, pod: &PodInfo) -> PodFacts {
        let controller = WorkloadRef::of(&pod.namespace, &pod.workload_kind, &pod.workload_name)
            .and_then(|key| self.controllers.get(&key));
        let replicas = controller.map(|c| c.replicas);
        let mut disruption_budgets: Vec<(String, u64)> = self
            .budgets
            .get(&pod.namespace)
            .into_iter()
            .flatten()
            .filter(|b| b.selector.matches(&pod.labels))
            .filter_map(|b| b.min_available(replicas).map(|pods| (b.name.clone(), pods)))
            .collect();
        disruption_budgets.sort();
        // The first by name when several target one controller (the
        // autoscaler controller then refuses to scale; either bound is as
        // good a guess).
        let autoscaler = scale_target(pod, controller).and_then(|(kind, name)| {
            self.autoscalers
                .get(&pod.namespace)?
                .iter()
                .find(|a| a.scales(kind, name))
        });
        PodFacts {
            identity: pod.identity(),
            startup_seconds: pod.startup_seconds,
            replicas,
            rollout_max_unavailable: controller.and_then(|c| c.rollout_max_unavailable),
            disruption_budgets,
            hpa_targets: autoscaler
                .map(|a| a.utilization_targets.clone())
                .unwrap_or_default(),
            hpa_replicas: autoscaler.map(|a| (a.min_replicas, a.max_replicas)),
        }
    }

    /// [`Self::facts`] of every pod with any, by namespace and name.
    pub fn all_facts(&self) -> Vec<PodFacts> {
        let mut facts: Vec<PodFacts> = self
            .pods
            .values()
            .map(|pod| self.facts(pod))
            .filter(|f| !f.is_empty())
            .collect();
        facts.sort_by(|a, b| {
            (&a.identity.namespace, &a.identity.pod).cmp(&(&b.identity.namespace, &b.identity.pod))
        });
        facts
    }
}

/// The controller an autoscaler of `pod`'s replicas names: its top
/// controller, a ReplicaSet's Deployment when the refresh found one the
/// watch could not.
fn scale_target<'a>(
    pod: &'a PodInfo,
    controller: Option<&'a ControllerFacts>,
) -> Option<(&'a str, &'a str)> {
    let name = pod.workload_name.as_str();
    match pod.workload_kind.as_str() {
        kind @ ("Deployment" | "StatefulSet") => Some((kind, name)),
        "ReplicaSet" => Some(match controller.and_then(|c| c.deployment.as_deref()) {
            Some(deployment) => ("Deployment", deployment),
            None => ("ReplicaSet", name),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, name: &str, kind: &str, workload: &str) -> PodInfo {
        PodInfo {
            uid: format!("uid-{name}"),
            namespace: namespace.into(),
            name: name.into(),
            workload_kind: kind.into(),
            workload_name: workload.into(),
            ..Default::default()
        }
    }

    fn hpa(name: &str, kind: &str, target: &str, min: u64, cpu: f64) -> Autoscaler {
        Autoscaler {
            name: name.into(),
            target_kind: kind.into(),
            target_name: target.into(),
            min_replicas: min,
            max_replicas: 10,
            utilization_targets: vec![("cpu", cpu)],
        }
    }

    fn controller(replicas: u64, deployment: Option<&str>) -> ControllerFacts {
        ControllerFacts {
            replicas,
            rollout_max_unavailable: None,
            deployment: deployment.map(str::to_owned),
        }
    }

    #[test]
    fn autoscalers_reach_the_pods_of_their_target() {
        let mut store = PodStore::default();
        let pods = [
            pod("shop", "checkout-1", "Deployment", "checkout"),
            // The watch could not read its ReplicaSet; the refresh did.
            pod("shop", "cart-1", "ReplicaSet", "cart-7d9"),
            pod("shop", "legacy-1", "ReplicaSet", "legacy-5f6"),
            pod("shop", "db-0", "StatefulSet", "db"),
            pod("shop", "agent-x", "DaemonSet", "agent"),
            pod("other", "checkout-1", "Deployment", "checkout"),
        ];
        for p in &pods {
            store.upsert(p.clone());
        }
        let key = |kind: &str, name: &str| WorkloadRef::of("shop", kind, name).expect("kind");
        store.set_controllers(HashMap::from([
            (key("ReplicaSet", "cart-7d9"), controller(3, Some("cart"))),
            (key("ReplicaSet", "legacy-5f6"), controller(2, None)),
        ]));
        store.set_autoscalers(HashMap::from([(
            "shop".to_owned(),
            vec![
                hpa("a-checkout", "Deployment", "checkout", 2, 0.6),
                hpa("b-checkout", "Deployment", "checkout", 3, 0.9),
                hpa("cart", "Deployment", "cart", 1, 0.5),
                hpa("legacy", "ReplicaSet", "legacy-5f6", 1, 0.4),
                hpa("db", "StatefulSet", "db", 1, 0.75),
                hpa("agent", "DaemonSet", "agent", 1, 0.1),
            ],
        )]));
        let facts = |i: usize| {
            let f = store.facts(&pods[i]);
            (f.hpa_targets, f.hpa_replicas)
        };
        assert_eq!(
            facts(0),
            (vec![("cpu", 0.6)], Some((2, 10))),
            "first by name"
        );
        assert_eq!(
            facts(1),
            (vec![("cpu", 0.5)], Some((1, 10))),
            "through the Deployment the refresh followed its ReplicaSet to"
        );
        assert_eq!(facts(2), (vec![("cpu", 0.4)], Some((1, 10))), "bare");
        assert_eq!(facts(3), (vec![("cpu", 0.75)], Some((1, 10))));
        assert_eq!(facts(4), (Vec::new(), None), "DaemonSets do not scale");
        assert_eq!(facts(5), (Vec::new(), None), "another namespace");
        assert!(store.facts(&pods[4]).is_empty());
    }
}
