//! Kubernetes API objects (only the fields Tally reads) and their
//! conversion into the pod model and the node identity.
//!
//! Every field defaults when absent and unknown fields are ignored, so
//! objects from newer API servers decode unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use tally_schema::identity::NodeIdentity;

use super::model::{PodContainer, PodInfo};
use super::workloads::{
    Autoscaler, BudgetRule, ControllerFacts, DEFAULT_ROLLING_UPDATE, DisruptionBudget,
    IntOrPercent, IntOrPercentError, Requirement, RolloutStrategy, Selector, WorkloadRef,
};

/// `metadata` of any object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// `metadata.namespace`.
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
    /// `metadata.uid`.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
    /// `metadata.resourceVersion`.
    #[serde(deserialize_with = "nullable")]
    pub resource_version: String,
    /// `metadata.labels`.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences`.
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
}

impl ObjectMeta {
    /// The controlling owner, else the first owner listed.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| self.owner_references.first())
    }
}

/// One `metadata.ownerReferences[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReference {
    /// `apiVersion` of the owner.
    #[serde(deserialize_with = "nullable")]
    pub api_version: String,
    /// Owner kind (`ReplicaSet`, `Job`, …).
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Owner name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Owner UID.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
    /// Whether this owner is the managing controller.
    pub controller: Option<bool>,
}

/// A `v1/Pod`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// Object metadata.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The pod spec.
    #[serde(deserialize_with = "nullable")]
    pub spec: PodSpec,
    /// The pod status.
    #[serde(deserialize_with = "nullable")]
    pub status: PodStatus,
}

/// `Pod.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod is bound to.
    #[serde(deserialize_with = "nullable")]
    pub node_name: String,
    /// Regular containers.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<ContainerSpec>,
    /// Init containers (sidecars included).
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<ContainerSpec>,
}

/// One container of a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// Container name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Image reference.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Declared ports.
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ContainerPortSpec>,
    /// Requests and limits.
    #[serde(deserialize_with = "nullable")]
    pub resources: Resources,
}

/// One `ports[]` entry of a container spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPortSpec {
    /// The port the container listens on.
    pub container_port: u16,
    /// `TCP` (the default), `UDP` or `SCTP`.
    #[serde(deserialize_with = "nullable")]
    pub protocol: String,
}

/// `resources` of a container.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Requests by resource name.
    #[serde(deserialize_with = "nullable")]
    pub requests: BTreeMap<String, QuantityValue>,
    /// Limits by resource name.
    #[serde(deserialize_with = "nullable")]
    pub limits: BTreeMap<String, QuantityValue>,
}

/// A quantity as serialised: the API server writes strings, hand-written
/// objects sometimes carry bare numbers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum QuantityValue {
    /// `"500m"`, `"1Gi"`, …
    Text(String),
    /// `2`, `0.5`.
    Number(f64),
}

impl QuantityValue {
    /// The value in base units.
    pub fn value(&self) -> Result<f64, QuantityError> {
        match self {
            QuantityValue::Text(text) => parse_quantity(text),
            QuantityValue::Number(n) => Ok(*n),
        }
    }
}

/// `Pod.status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    #[serde(deserialize_with = "nullable")]
    pub phase: String,
    /// `Guaranteed`, `Burstable`, `BestEffort`.
    #[serde(deserialize_with = "nullable")]
    pub qos_class: String,
    /// The pod's IP once it has one.
    #[serde(rename = "podIP")]
    #[serde(deserialize_with = "nullable")]
    pub pod_ip: String,
    /// Regular container statuses.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Init container statuses.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`, …
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<PodCondition>,
}

/// One `status.conditions[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodCondition {
    /// `PodScheduled`, `Ready`, …
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// RFC 3339 time the status last changed.
    #[serde(deserialize_with = "nullable")]
    pub last_transition_time: String,
}

/// One `containerStatuses[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ContainerStatus {
    /// Container name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// `containerd://…`; absent until the container was created.
    #[serde(rename = "containerID")]
    #[serde(deserialize_with = "nullable")]
    pub container_id: String,
}

/// A `v1/PodList`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodList {
    /// List metadata (`resourceVersion` to watch from).
    #[serde(deserialize_with = "nullable")]
    pub metadata: ListMeta,
    /// The pods.
    #[serde(deserialize_with = "nullable")]
    pub items: Vec<Pod>,
}

/// `metadata` of a list or a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    /// Version of the collection at list time.
    #[serde(deserialize_with = "nullable")]
    pub resource_version: String,
}

/// Any object of which only metadata matters (`Node`, `ReplicaSet`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetaOnly {
    /// Object metadata.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
}

/// An `IntOrString` as serialised: `3` or `"25%"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A string (a percent, where Kubernetes accepts one).
    String(String),
}

impl IntOrString {
    /// As a pod count or percent; `field` names it in the error.
    pub fn resolve(&self, field: &'static str) -> Result<IntOrPercent, IntOrPercentError> {
        match self {
            IntOrString::Int(n) => IntOrPercent::from_int(field, *n),
            IntOrString::String(text) => IntOrPercent::parse_text(field, text),
        }
    }
}

/// An `apps/v1` Deployment, ReplicaSet or StatefulSet: only what the
/// desired replicas and the rollout need.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Controller {
    /// Object metadata (a ReplicaSet's owner is its Deployment).
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(deserialize_with = "nullable")]
    pub spec: ControllerSpec,
}

/// `spec` of a Deployment, ReplicaSet or StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ControllerSpec {
    /// Desired replicas; the API server defaults it to 1.
    pub replicas: Option<i64>,
    /// A Deployment's update strategy.
    #[serde(deserialize_with = "nullable")]
    pub strategy: DeploymentStrategy,
}

/// `spec.strategy` of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (the default) or `Recreate`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Settings of `RollingUpdate`.
    #[serde(deserialize_with = "nullable")]
    pub rolling_update: RollingUpdate,
}

/// `spec.strategy.rollingUpdate` of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RollingUpdate {
    /// Pods that may be unavailable during the update (25 % by default).
    pub max_unavailable: Option<IntOrString>,
    /// Pods that may be created above the replicas (25 % by default).
    pub max_surge: Option<IntOrString>,
}

/// A `policy/v1` PodDisruptionBudgetList.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodDisruptionBudgetList {
    /// The budgets.
    #[serde(deserialize_with = "nullable")]
    pub items: Vec<PodDisruptionBudget>,
}

/// A `policy/v1` PodDisruptionBudget.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodDisruptionBudget {
    /// Object metadata.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(deserialize_with = "nullable")]
    pub spec: PodDisruptionBudgetSpec,
}

/// `spec` of a PodDisruptionBudget.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Pods to keep available.
    pub min_available: Option<IntOrString>,
    /// Pods that may be unavailable.
    pub max_unavailable: Option<IntOrString>,
    /// Pods covered; null selects none, `{}` every pod of the namespace.
    pub selector: Option<LabelSelector>,
}

/// A `meta/v1` LabelSelector.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(deserialize_with = "nullable")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(deserialize_with = "nullable")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(deserialize_with = "nullable")]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(deserialize_with = "nullable")]
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(deserialize_with = "nullable")]
    pub values: Vec<String>,
}

/// An `autoscaling/v2` HorizontalPodAutoscalerList.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HorizontalPodAutoscalerList {
    /// The autoscalers.
    #[serde(deserialize_with = "nullable")]
    pub items: Vec<HorizontalPodAutoscaler>,
}

/// An `autoscaling/v2` HorizontalPodAutoscaler: only what its targets and
/// replica bounds need.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HorizontalPodAutoscaler {
    /// Object metadata.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(deserialize_with = "nullable")]
    pub spec: HorizontalPodAutoscalerSpec,
}

/// `spec` of a HorizontalPodAutoscaler.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerSpec {
    /// The controller it scales.
    #[serde(deserialize_with = "nullable")]
    pub scale_target_ref: CrossVersionObjectReference,
    /// Lower replica bound; the API server defaults it to 1.
    pub min_replicas: Option<i64>,
    /// Upper replica bound (required).
    pub max_replicas: Option<i64>,
    /// What it scales on; the API server defaults an empty list to 80 %
    /// CPU utilization.
    #[serde(deserialize_with = "nullable")]
    pub metrics: Vec<MetricSpec>,
}

/// `spec.scaleTargetRef` of a HorizontalPodAutoscaler.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    /// `apps/v1`, …
    #[serde(deserialize_with = "nullable")]
    pub api_version: String,
    /// `Deployment`, `StatefulSet`, …
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Name, in the autoscaler's namespace.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
}

/// One `spec.metrics[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetricSpec {
    /// `Resource`, `ContainerResource`, `Pods`, `Object` or `External`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Set for `type: Resource`.
    pub resource: Option<ResourceMetricSource>,
}

/// `spec.metrics[].resource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ResourceMetricSource {
    /// `cpu`, `memory`, …
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The target.
    #[serde(deserialize_with = "nullable")]
    pub target: MetricTarget,
}

/// A `autoscaling/v2` MetricTarget.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetricTarget {
    /// `Utilization`, `AverageValue` or `Value`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Percent of the pods' requests, for `Utilization`.
    pub average_utilization: Option<i64>,
}

/// A PodDisruptionBudget, controller or autoscaler that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A count or percent field is malformed.
    #[error("{kind} {namespace}/{name}: {source}")]
    Value {
        /// `PodDisruptionBudget`, `Deployment`, …
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The field and value.
        source: IntOrPercentError,
    },
    /// A selector uses an operator Kubernetes does not define.
    #[error(
        "PodDisruptionBudget {namespace}/{name}: unknown selector operator {operator:?} on {key:?}"
    )]
    Operator {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The label key.
        key: String,
        /// The operator.
        operator: String,
    },
    /// An autoscaler's replica bound or utilization target is out of the
    /// range the API server validates.
    #[error("HorizontalPodAutoscaler {namespace}/{name}: invalid {field} {value}")]
    Autoscaler {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The field, e.g. `spec.maxReplicas`.
        field: &'static str,
        /// The value rejected, or `unset`.
        value: String,
    },
}

/// A `meta/v1 Status`, as sent in watch `ERROR` events.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Status {
    /// HTTP-like code; 410 means the resource version is too old.
    pub code: u16,
    /// Machine-readable reason (`Expired`, `Gone`).
    #[serde(deserialize_with = "nullable")]
    pub reason: String,
    /// Human-readable message.
    #[serde(deserialize_with = "nullable")]
    pub message: String,
}

/// One line of a watch stream. `object` stays untyped until `type` says
/// what it is.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The pod, bookmark or `Status`.
    #[serde(default)]
    pub object: serde_json::Value,
}

/// Decodes `null` as the default: the API server writes `null` for some
/// empty fields (a bookmark's `"spec":{"containers":null}`).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A quantity that does not follow the Kubernetes format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    /// The text rejected.
    pub input: String,
    /// Why.
    pub reason: &'static str,
}

/// Parses a Kubernetes resource quantity into base units: `"500m"` → 0.5,
/// `"1Gi"` → 1073741824, `"1e3"` → 1000, `"2"` → 2.
///
/// Accepts an optional sign, a decimal number and one suffix: binary SI
/// (`Ki Mi Gi Ti Pi Ei`), decimal SI (`n u m k M G T P E`) or a decimal
/// exponent (`e3`, `E-2`).
pub fn parse_quantity(s: &str) -> Result<f64, QuantityError> {
    let err = |reason| QuantityError {
        input: s.to_owned(),
        reason,
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(err("empty"));
    }
    let bytes = text.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end += 1;
    }
    let mut digits = 0;
    let mut dot = false;
    while let Some(&b) = bytes.get(end) {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'.' && !dot {
            dot = true;
        } else {
            break;
        }
        end += 1;
    }
    if digits == 0 {
        return Err(err("no digits"));
    }
    let number = &text[..end];
    // Binary suffixes multiply by a power of two (exact); decimal ones and
    // exponents become a decimal exponent parsed with the number, so
    // `100n` is the f64 nearest 1e-7 rather than 100 × 1e-9.
    let (binary_shift, decimal_exponent): (i32, i64) = match &text[end..] {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        suffix => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| {
                    let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or_else(|| err("unknown suffix"))?;
            let exponent = exponent.parse().map_err(|_| err("exponent out of range"))?;
            (0, exponent)
        }
    };
    let value: f64 = format!("{number}e{decimal_exponent}")
        .parse()
        .map_err(|_| err("malformed number"))?;
    let value = value * 2f64.powi(binary_shift);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(err("out of range"))
    }
}

/// Removes the runtime scheme from a status container ID:
/// `containerd://abc` → `abc` (also `cri-o://`, `docker://`, any
/// `scheme://`).
pub fn strip_container_id_prefix(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// Converts a pod into the model with the given top-level owner. Regular
/// containers come first, then init containers. Quantities that fail to
/// parse are left out and returned so the caller can count them.
pub fn pod_info(
    pod: &Pod,
    workload_kind: String,
    workload_name: String,
) -> (PodInfo, Vec<QuantityError>) {
    let mut errors = Vec::new();
    let mut containers =
        Vec::with_capacity(pod.spec.containers.len() + pod.spec.init_containers.len());
    for (specs, statuses) in [
        (&pod.spec.containers, &pod.status.container_statuses),
        (
            &pod.spec.init_containers,
            &pod.status.init_container_statuses,
        ),
    ] {
        for spec in specs {
            let container_id = statuses
                .iter()
                .find(|s| s.name == spec.name)
                .map(|s| strip_container_id_prefix(&s.container_id).to_owned())
                .unwrap_or_default();
            containers.push(PodContainer {
                name: spec.name.clone(),
                container_id,
                image: spec.image.clone(),
                ports: spec
                    .ports
                    .iter()
                    .filter(|p| p.protocol.is_empty() || p.protocol == "TCP")
                    .map(|p| p.container_port)
                    .collect(),
                requests: quantities(&spec.resources.requests, &mut errors),
                limits: quantities(&spec.resources.limits, &mut errors),
            });
        }
    }
    let info = PodInfo {
        uid: pod.metadata.uid.clone(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        phase: pod.status.phase.clone(),
        qos_class: pod.status.qos_class.clone(),
        workload_kind,
        workload_name,
        containers,
        labels: pod.metadata.labels.clone(),
        startup_seconds: startup_seconds(&pod.status.conditions),
        pod_ip: pod.status.pod_ip.clone(),
        // Only the scrape annotations: others can be large
        // (last-applied-configuration) and nothing else reads them.
        scrape_annotations: pod
            .metadata
            .annotations
            .iter()
            .filter(|(key, _)| is_scrape_annotation(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    (info, errors)
}

/// Annotations the model-serving discovery reads (`prometheus.io/*`,
/// `tally.dev/*`).
pub fn is_scrape_annotation(key: &str) -> bool {
    key.starts_with("prometheus.io/") || key.starts_with("tally.dev/")
}

/// Seconds from the `PodScheduled` condition's last transition to the
/// `Ready` condition's: image pulls, init containers, container start,
/// model loading and readiness probes. `None` unless both are present and
/// `Ready` is `True`. A pod that lost and regained readiness counts up to
/// its latest Ready transition, as the condition keeps only that one.
pub fn startup_seconds(conditions: &[PodCondition]) -> Option<f64> {
    let transition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| (c.status.as_str(), c.last_transition_time.as_str()))
    };
    let (ready, ready_at) = transition("Ready")?;
    let (_, scheduled_at) = transition("PodScheduled")?;
    if ready != "True" {
        return None;
    }
    let seconds = parse_rfc3339(ready_at)? - parse_rfc3339(scheduled_at)?;
    (seconds >= 0.0).then_some(seconds)
}

/// Seconds since the Unix epoch of an RFC 3339 time as the API server
/// writes it (`2025-06-02T08:14:40Z`; fractions and numeric offsets are
/// accepted too); `None` when malformed.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // A leap second (60) is allowed by RFC 3339.
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The desired replicas of a Deployment, ReplicaSet or StatefulSet
/// (`kind`) and, for a Deployment, the pods a rollout may take down.
pub fn controller_facts(
    kind: &'static str,
    controller: &Controller,
) -> Result<ControllerFacts, PolicyError> {
    let replicas = u64::try_from(controller.spec.replicas.unwrap_or(1)).unwrap_or(0);
    let rollout_max_unavailable = if kind == "Deployment" {
        let strategy = &controller.spec.strategy;
        let resolved = if strategy.kind == "Recreate" {
            RolloutStrategy::Recreate
        } else {
            let field = |value: &Option<IntOrString>, name| {
                value
                    .as_ref()
                    .map_or(Ok(DEFAULT_ROLLING_UPDATE), |v| v.resolve(name))
                    .map_err(|source| PolicyError::Value {
                        kind,
                        namespace: controller.metadata.namespace.clone(),
                        name: controller.metadata.name.clone(),
                        source,
                    })
            };
            RolloutStrategy::RollingUpdate {
                max_unavailable: field(
                    &strategy.rolling_update.max_unavailable,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                )?,
                max_surge: field(
                    &strategy.rolling_update.max_surge,
                    "spec.strategy.rollingUpdate.maxSurge",
                )?,
            }
        };
        Some(resolved.max_unavailable(replicas))
    } else {
        None
    };
    Ok(ControllerFacts {
        replicas,
        rollout_max_unavailable,
        deployment: None,
    })
}

/// A PodDisruptionBudget as the model applies it; `Ok(None)` for a budget
/// without a selector, which selects no pod.
pub fn disruption_budget(
    budget: &PodDisruptionBudget,
) -> Result<Option<DisruptionBudget>, PolicyError> {
    let meta = &budget.metadata;
    let Some(selector) = &budget.spec.selector else {
        return Ok(None);
    };
    let value = |value: &IntOrString, field| {
        value.resolve(field).map_err(|source| PolicyError::Value {
            kind: "PodDisruptionBudget",
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source,
        })
    };
    // The disruption controller reads maxUnavailable first; validation
    // forbids setting both.
    let rule = match (&budget.spec.max_unavailable, &budget.spec.min_available) {
        (Some(max), _) => BudgetRule::MaxUnavailable(value(max, "spec.maxUnavailable")?),
        (None, Some(min)) => BudgetRule::MinAvailable(value(min, "spec.minAvailable")?),
        (None, None) => BudgetRule::Unset,
    };
    let mut expressions = Vec::with_capacity(selector.match_expressions.len());
    for e in &selector.match_expressions {
        let key = e.key.clone();
        expressions.push(match e.operator.as_str() {
            "In" => Requirement::In(key, e.values.clone()),
            "NotIn" => Requirement::NotIn(key, e.values.clone()),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::DoesNotExist(key),
            other => {
                return Err(PolicyError::Operator {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    key,
                    operator: other.to_owned(),
                });
            }
        });
    }
    Ok(Some(DisruptionBudget {
        name: meta.name.clone(),
        selector: Selector {
            match_labels: selector.match_labels.clone(),
            expressions,
        },
        rule,
    }))
}

/// CPU utilization percent the API server fills in for an autoscaler that
/// lists no metrics (`autoscaling.DefaultCPUUtilization`).
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// A HorizontalPodAutoscaler as the model applies it, with the defaults
/// the API server applies; `Ok(None)` for one that scales something other
/// than an `apps` Deployment, StatefulSet or ReplicaSet (a custom resource
/// such as an Argo Rollout), which no pod's top controller can be.
///
/// Only `Resource` metrics with a `Utilization` target on `cpu` or
/// `memory` become targets; `ContainerResource`, `Pods`, `Object` and
/// `External` metrics and `AverageValue` targets have no utilization of
/// the pods' requests to report. Of two targets on one resource the lower
/// is kept: the autoscaler follows whichever asks for more replicas.
pub fn autoscaler(hpa: &HorizontalPodAutoscaler) -> Result<Option<Autoscaler>, PolicyError> {
    let meta = &hpa.metadata;
    let spec = &hpa.spec;
    let target = &spec.scale_target_ref;
    // The autoscaler finds its target by group and kind; any version of
    // `apps` names the same object.
    let group = target.api_version.split_once('/').map_or("", |(g, _)| g);
    if group != "apps"
        || !WorkloadRef::KINDS.contains(&target.kind.as_str())
        || target.name.is_empty()
    {
        return Ok(None);
    }
    let invalid = |field, value: String| PolicyError::Autoscaler {
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        field,
        value,
    };
    let min_replicas = match spec.min_replicas {
        None => 1,
        Some(n) => u64::try_from(n).map_err(|_| invalid("spec.minReplicas", n.to_string()))?,
    };
    let max_replicas = match spec.max_replicas {
        Some(n) if n >= 1 => n.unsigned_abs(),
        Some(n) => return Err(invalid("spec.maxReplicas", n.to_string())),
        None => return Err(invalid("spec.maxReplicas", "unset".to_owned())),
    };
    // The lowest percent per resource of `Autoscaler::RESOURCES`, `cpu`
    // first.
    let mut lowest = [None; Autoscaler::RESOURCES.len()];
    if spec.metrics.is_empty() {
        lowest[0] = Some(DEFAULT_CPU_UTILIZATION);
    }
    for metric in &spec.metrics {
        let Some(resource) = metric
            .resource
            .as_ref()
            .filter(|_| metric.kind == "Resource")
        else {
            continue;
        };
        if resource.target.kind != "Utilization" {
            continue;
        }
        let Some(index) = Autoscaler::RESOURCES
            .iter()
            .position(|r| *r == resource.name)
        else {
            continue;
        };
        let percent = match resource.target.average_utilization {
            Some(p) if p > 0 => p,
            other => {
                let value = other.map_or_else(|| "unset".to_owned(), |p| p.to_string());
                return Err(invalid(
                    "spec.metrics[].resource.target.averageUtilization",
                    value,
                ));
            }
        };
        lowest[index] = Some(lowest[index].map_or(percent, |p| p.min(percent)));
    }
    let utilization_targets = Autoscaler::RESOURCES
        .iter()
        .zip(lowest)
        .filter_map(|(resource, percent)| percent.map(|p| (*resource, p as f64 / 100.0)))
        .collect();
    Ok(Some(Autoscaler {
        name: meta.name.clone(),
        target_kind: target.kind.clone(),
        target_name: target.name.clone(),
        min_replicas,
        max_replicas,
        utilization_targets,
    }))
}

fn quantities(
    raw: &BTreeMap<String, QuantityValue>,
    errors: &mut Vec<QuantityError>,
) -> BTreeMap<String, f64> {
    raw.iter()
        .filter_map(|(name, value)| match value.value() {
            Ok(v) => Some((name.clone(), v)),
            Err(e) => {
                errors.push(e);
                None
            }
        })
        .collect()
}

/// The node's identity from its name and labels.
pub fn node_identity(name: &str, labels: &BTreeMap<String, String>) -> NodeIdentity {
    let first = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
            .cloned()
            .unwrap_or_default()
    };
    NodeIdentity {
        name: name.to_owned(),
        zone: first(&[
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
        ]),
        region: first(&[
            "topology.kubernetes.io/region",
            "failure-domain.beta.kubernetes.io/region",
        ]),
        instance_type: first(&[
            "node.kubernetes.io/instance-type",
            "beta.kubernetes.io/instance-type",
        ]),
        capacity_type: capacity_type(labels).to_owned(),
    }
}

/// The normalised capacity type (`spot`, `on-demand`, `reserved`) from the
/// labels Karpenter, EKS managed node groups, GKE and AKS set; empty when
/// none says.
pub fn capacity_type(labels: &BTreeMap<String, String>) -> &'static str {
    let label = |key: &str| labels.get(key).map(|v| v.trim().to_ascii_lowercase());
    if let Some(value) = label("karpenter.sh/capacity-type") {
        match value.as_str() {
            "spot" => return "spot",
            "on-demand" => return "on-demand",
            "reserved" => return "reserved",
            _ => {}
        }
    }
    if let Some(value) = label("eks.amazonaws.com/capacityType") {
        match value.as_str() {
            "spot" => return "spot",
            "on_demand" => return "on-demand",
            "capacity_block" => return "reserved",
            _ => {}
        }
    }
    if label("cloud.google.com/gke-spot").as_deref() == Some("true")
        || label("cloud.google.com/gke-preemptible").as_deref() == Some("true")
    {
        return "spot";
    }
    if label("kubernetes.azure.com/scalesetpriority").as_deref() == Some("spot") {
        return "spot";
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> f64 {
        parse_quantity(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn quantities_parse_to_base_units() {
        assert_eq!(q("500m"), 0.5);
        assert_eq!(q("250m"), 0.25);
        assert_eq!(q("2"), 2.0);
        assert_eq!(q("1.5"), 1.5);
        assert_eq!(q("0.1"), 0.1);
        assert_eq!(q(".5"), 0.5);
        assert_eq!(q("100n"), 100e-9);
        assert_eq!(q("10u"), 10e-6);
        assert_eq!(q("1k"), 1000.0);
        assert_eq!(q("128M"), 128e6);
        assert_eq!(q("1G"), 1e9);
        assert_eq!(q("2T"), 2e12);
        assert_eq!(q("1P"), 1e15);
        assert_eq!(q("1E"), 1e18);
        assert_eq!(q("1Ki"), 1024.0);
        assert_eq!(q("512Mi"), 536_870_912.0);
        assert_eq!(q("1Gi"), 1_073_741_824.0);
        assert_eq!(q("1Ti"), 1_099_511_627_776.0);
        assert_eq!(q("1Pi"), 1024f64.powi(5));
        assert_eq!(q("1Ei"), 1024f64.powi(6));
        assert_eq!(q("1e3"), 1000.0);
        assert_eq!(q("1E3"), 1000.0);
        assert_eq!(q("12e-3"), 0.012);
        assert_eq!(q("5e+2"), 500.0);
        assert_eq!(q("+1"), 1.0);
        assert_eq!(q("-1"), -1.0);
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for bad in [
            "", "m", "Gi", "1X", "1gi", "1 Gi", "1..5", "1e", "1e+", "e3", "1.2.3", "1Kii", "--1",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} should be rejected");
        }
        let err = parse_quantity("12Q").expect_err("bad suffix");
        assert_eq!(err.to_string(), "invalid quantity \"12Q\": unknown suffix");
        assert!(parse_quantity("1e400").is_err(), "overflow");
    }

    #[test]
    fn container_id_prefixes_are_stripped() {
        assert_eq!(strip_container_id_prefix("containerd://abc123"), "abc123");
        assert_eq!(strip_container_id_prefix("cri-o://def"), "def");
        assert_eq!(strip_container_id_prefix("docker://0f0f"), "0f0f");
        assert_eq!(strip_container_id_prefix("something-new://x"), "x");
        assert_eq!(strip_container_id_prefix("bare"), "bare");
        assert_eq!(strip_container_id_prefix(""), "");
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn capacity_types_are_normalised() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("karpenter.sh/capacity-type", "spot")], "spot"),
            (&[("karpenter.sh/capacity-type", "on-demand")], "on-demand"),
            (&[("karpenter.sh/capacity-type", "reserved")], "reserved"),
            (&[("eks.amazonaws.com/capacityType", "SPOT")], "spot"),
            (
                &[("eks.amazonaws.com/capacityType", "ON_DEMAND")],
                "on-demand",
            ),
            (
                &[("eks.amazonaws.com/capacityType", "CAPACITY_BLOCK")],
                "reserved",
            ),
            (&[("cloud.google.com/gke-spot", "true")], "spot"),
            (&[("cloud.google.com/gke-preemptible", "true")], "spot"),
            (&[("cloud.google.com/gke-spot", "false")], ""),
            (&[("kubernetes.azure.com/scalesetpriority", "spot")], "spot"),
            (&[("kubernetes.azure.com/scalesetpriority", "regular")], ""),
            (
                &[
                    ("karpenter.sh/capacity-type", "weird"),
                    ("eks.amazonaws.com/capacityType", "SPOT"),
                ],
                "spot",
            ),
            (&[], ""),
        ];
        for (pairs, want) in cases {
            assert_eq!(capacity_type(&labels(pairs)), *want, "{pairs:?}");
        }
    }

    #[test]
    fn node_identity_prefers_ga_labels_and_falls_back_to_beta() {
        let id = node_identity(
            "n1",
            &labels(&[
                ("topology.kubernetes.io/zone", "us-east-1a"),
                ("failure-domain.beta.kubernetes.io/zone", "old"),
                ("failure-domain.beta.kubernetes.io/region", "us-east-1"),
                ("beta.kubernetes.io/instance-type", "p4d.24xlarge"),
            ]),
        );
        assert_eq!(
            id,
            NodeIdentity {
                name: "n1".into(),
                zone: "us-east-1a".into(),
                region: "us-east-1".into(),
                instance_type: "p4d.24xlarge".into(),
                capacity_type: String::new(),
            }
        );
    }

    #[test]
    fn pods_decode_leniently_and_convert() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"p","namespace":"ns","uid":"u","futureField":1},
                "spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"100m","memory":2048,"bad":"x1"}}},
                                      {"name":"b"}],
                        "initContainers":[{"name":"init"}]},
                "status":{"phase":"Running","containerStatuses":[{"name":"a","containerID":"containerd://aaa"}],
                          "initContainerStatuses":[{"name":"init","containerID":"cri-o://iii"}]}}"#,
        )
        .expect("decode");
        let (info, errors) = pod_info(&pod, "Pod".into(), "p".into());
        assert_eq!(errors.len(), 1, "{errors:?}");
        let names: Vec<_> = info.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "init"]);
        assert_eq!(info.containers[0].container_id, "aaa");
        assert_eq!(info.containers[0].requests.get("cpu"), Some(&0.1));
        assert_eq!(info.containers[0].requests.get("memory"), Some(&2048.0));
        assert_eq!(info.containers[1].container_id, "");
        assert_eq!(info.containers[2].container_id, "iii");
    }

    #[test]
    fn rfc3339_times_parse_to_epoch_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2025-06-02T08:14:40Z"), Some(1_748_852_080.0));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Some(1_709_251_199.0));
        assert_eq!(
            parse_rfc3339("2025-06-02T08:14:40.25Z"),
            Some(1_748_852_080.25)
        );
        assert_eq!(
            parse_rfc3339("2025-06-02T10:14:40+02:00"),
            Some(1_748_852_080.0)
        );
        assert_eq!(
            parse_rfc3339("2025-06-02T03:14:40-05:00"),
            Some(1_748_852_080.0)
        );
        for bad in [
            "",
            "2025-06-02",
            "2025-06-02T08:14:40",
            "2025-13-02T08:14:40Z",
            "2025-06-02T24:00:00Z",
            "2025-06-02T08:14:40.Z",
            "2025-06-02T08:14:40+2:00",
            "2025-06-02T08:14:40+é:00",
            "2025-06-02X08:14:40Z",
            "20a5-06-02T08:14:40Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    fn condition(kind: &str, status: &str, at: &str) -> PodCondition {
        PodCondition {
            kind: kind.to_owned(),
            status: status.to_owned(),
            last_transition_time: at.to_owned(),
        }
    }

    #[test]
    fn startup_runs_from_scheduled_to_ready() {
        let scheduled = condition("PodScheduled", "True", "2025-06-02T08:13:00Z");
        let ready = condition("Ready", "True", "2025-06-02T08:16:05Z");
        assert_eq!(
            startup_seconds(&[scheduled.clone(), ready.clone()]),
            Some(185.0)
        );
        let not_ready = condition("Ready", "False", "2025-06-02T08:16:05Z");
        assert_eq!(startup_seconds(&[scheduled.clone(), not_ready]), None);
        assert_eq!(
            startup_seconds(std::slice::from_ref(&ready)),
            None,
            "never scheduled"
        );
        assert_eq!(
            startup_seconds(std::slice::from_ref(&scheduled)),
            None,
            "no Ready"
        );
        let garbled = condition("Ready", "True", "yesterday");
        assert_eq!(startup_seconds(&[scheduled.clone(), garbled]), None);
        let before = condition("Ready", "True", "2025-06-02T08:12:00Z");
        assert_eq!(startup_seconds(&[scheduled, before]), None, "clock skew");
    }

    #[test]
    fn controllers_resolve_replicas_and_rollouts() {
        let decode = |json: &str| -> Controller { serde_json::from_str(json).expect("decode") };
        let facts = |kind, json: &str| controller_facts(kind, &decode(json)).expect("facts");
        let deployment = facts(
            "Deployment",
            r#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"replicas":6,
                "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}}}"#,
        );
        assert_eq!(deployment.replicas, 6);
        assert_eq!(
            deployment.rollout_max_unavailable,
            Some(1),
            "1.5 rounds down"
        );
        let counted = facts(
            "Deployment",
            r#"{"spec":{"replicas":6,"strategy":{"rollingUpdate":{"maxUnavailable":2}}}}"#,
        );
        assert_eq!(counted.rollout_max_unavailable, Some(2));
        let defaults = facts("Deployment", r#"{"spec":{"replicas":8,"strategy":null}}"#);
        assert_eq!(defaults.rollout_max_unavailable, Some(2), "25 % by default");
        let recreate = facts(
            "Deployment",
            r#"{"spec":{"replicas":3,"strategy":{"type":"Recreate"}}}"#,
        );
        assert_eq!(recreate.rollout_max_unavailable, Some(3));
        let unset = facts("Deployment", r#"{"spec":{}}"#);
        assert_eq!(
            (unset.replicas, unset.rollout_max_unavailable),
            (1, Some(0))
        );
        let statefulset = facts(
            "StatefulSet",
            r#"{"spec":{"replicas":2,"updateStrategy":{"type":"RollingUpdate"}}}"#,
        );
        assert_eq!(
            (statefulset.replicas, statefulset.rollout_max_unavailable),
            (2, None)
        );

        let bad = decode(
            r#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":"two"}}}}"#,
        );
        let err = controller_facts("Deployment", &bad).expect_err("not a percent");
        let message = err.to_string();
        assert!(message.contains("shop/web"), "{message}");
        assert!(message.contains("maxUnavailable"), "{message}");
    }

    #[test]
    fn disruption_budgets_decode_and_keep_their_rule() {
        let list: PodDisruptionBudgetList = serde_json::from_str(
            r#"{"kind":"PodDisruptionBudgetList","apiVersion":"policy/v1","metadata":{"resourceVersion":"1"},"items":[
                {"metadata":{"name":"min","namespace":"web"},"spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}}},
                {"metadata":{"name":"pct","namespace":"web"},"spec":{"minAvailable":"30%","selector":{}}},
                {"metadata":{"name":"max","namespace":"web"},"spec":{"maxUnavailable":1,
                  "selector":{"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},{"key":"canary","operator":"DoesNotExist"}]}}},
                {"metadata":{"name":"none","namespace":"web"},"spec":{"minAvailable":1,"selector":null}},
                {"metadata":{"name":"odd","namespace":"web"},"spec":{"minAvailable":1,"selector":{"matchExpressions":[{"key":"x","operator":"Gt","values":["1"]}]}}},
                {"metadata":{"name":"bad","namespace":"web"},"spec":{"minAvailable":"half","selector":{}}}]}"#,
        )
        .expect("decode");
        let converted: Vec<_> = list.items.iter().map(disruption_budget).collect();
        let min = converted[0].clone().expect("ok").expect("selector");
        assert_eq!(min.rule, BudgetRule::MinAvailable(IntOrPercent::Count(2)));
        assert_eq!(
            min.selector.match_labels.get("app").map(String::as_str),
            Some("web")
        );
        let pct = converted[1].clone().expect("ok").expect("selector");
        assert_eq!(
            pct.rule,
            BudgetRule::MinAvailable(IntOrPercent::Percent(30))
        );
        assert_eq!(pct.selector, Selector::default(), "{{}} kept: selects all");
        let max = converted[2].clone().expect("ok").expect("selector");
        assert_eq!(max.rule, BudgetRule::MaxUnavailable(IntOrPercent::Count(1)));
        assert_eq!(
            max.selector.expressions,
            [
                Requirement::In("tier".into(), vec!["a".into(), "b".into()]),
                Requirement::DoesNotExist("canary".into())
            ]
        );
        assert_eq!(converted[3], Ok(None), "a null selector selects nothing");
        let odd = converted[4].clone().expect_err("unknown operator");
        assert!(odd.to_string().contains("\"Gt\""), "{odd}");
        let bad = converted[5].clone().expect_err("not a percent");
        assert!(bad.to_string().contains("web/bad"), "{bad}");
    }

    #[test]
    fn autoscalers_keep_their_utilization_targets_and_bounds() {
        let list: HorizontalPodAutoscalerList = serde_json::from_str(
            r#"{"kind":"HorizontalPodAutoscalerList","apiVersion":"autoscaling/v2","metadata":{"resourceVersion":"1"},"items":[
                {"metadata":{"name":"web","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"minReplicas":2,"maxReplicas":10,
                  "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":70}}}]}},
                {"metadata":{"name":"mixed","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db"},"maxReplicas":5,
                  "metrics":[
                    {"type":"Resource","resource":{"name":"memory","target":{"type":"Utilization","averageUtilization":80}}},
                    {"type":"Resource","resource":{"name":"cpu","target":{"type":"AverageValue","averageValue":"500m"}}},
                    {"type":"ContainerResource","containerResource":{"name":"cpu","container":"app","target":{"type":"Utilization","averageUtilization":50}}},
                    {"type":"Pods","pods":{"metric":{"name":"requests_per_second"},"target":{"type":"AverageValue","averageValue":"100"}}},
                    {"type":"Object","object":{"describedObject":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"main"},
                      "metric":{"name":"requests"},"target":{"type":"Value","value":"2k"}}},
                    {"type":"External","external":{"metric":{"name":"queue_depth"},"target":{"type":"AverageValue","averageValue":"30"}}},
                    {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":90}}},
                    {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}},
                    {"type":"Resource","resource":{"name":"ephemeral-storage","target":{"type":"Utilization","averageUtilization":50}}}]}},
                {"metadata":{"name":"queue","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"queue"},"minReplicas":1,"maxReplicas":20,
                  "metrics":[{"type":"External","external":{"metric":{"name":"queue_depth"},"target":{"type":"AverageValue","averageValue":"30"}}}]}},
                {"metadata":{"name":"bare","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"bare"},"maxReplicas":3,"metrics":null}},
                {"metadata":{"name":"rollout","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","name":"web"},"maxReplicas":3}},
                {"metadata":{"name":"old-group","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"extensions/v1beta1","kind":"Deployment","name":"web"},"maxReplicas":3}},
                {"metadata":{"name":"beta","namespace":"shop"},"spec":{
                  "scaleTargetRef":{"apiVersion":"apps/v1beta2","kind":"Deployment","name":"web"},"maxReplicas":3}}]}"#,
        )
        .expect("decode");
        let converted: Vec<_> = list
            .items
            .iter()
            .map(|item| autoscaler(item).expect("valid"))
            .collect();

        let web = converted[0].clone().expect("apps target");
        assert_eq!(
            (
                web.name.as_str(),
                web.target_kind.as_str(),
                web.target_name.as_str()
            ),
            ("web", "Deployment", "web")
        );
        assert_eq!((web.min_replicas, web.max_replicas), (2, 10));
        assert_eq!(web.utilization_targets, [("cpu", 0.7)]);

        // minReplicas unset is 1; memory kept; AverageValue, container,
        // Pods, Object, External and other resources left out; of two CPU
        // utilizations the lower, which asks for more replicas.
        let mixed = converted[1].clone().expect("apps target");
        assert_eq!((mixed.min_replicas, mixed.max_replicas), (1, 5));
        assert_eq!(mixed.utilization_targets, [("cpu", 0.6), ("memory", 0.8)]);

        let queue = converted[2].clone().expect("apps target");
        assert!(queue.utilization_targets.is_empty(), "no utilization");
        assert_eq!((queue.min_replicas, queue.max_replicas), (1, 20));

        // No metrics: 80 % CPU, as the API server fills in.
        let bare = converted[3].clone().expect("apps target");
        assert_eq!(bare.utilization_targets, [("cpu", 0.8)]);
        assert_eq!((bare.min_replicas, bare.max_replicas), (1, 3));

        assert_eq!(
            converted[4], None,
            "a custom resource is no pod's controller"
        );
        assert_eq!(converted[5], None, "not the apps group");
        let beta = converted[6].clone().expect("any apps version");
        assert_eq!(beta.target_name, "web");
    }

    #[test]
    fn autoscalers_out_of_range_are_rejected() {
        let check = |spec: &str, field: &str| {
            let hpa: HorizontalPodAutoscaler = serde_json::from_str(&format!(
                r#"{{"metadata":{{"name":"web","namespace":"shop"}},"spec":{{"scaleTargetRef":{{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}},{spec}}}}}"#
            ))
            .expect("decode");
            let err = autoscaler(&hpa).expect_err(spec);
            let message = err.to_string();
            assert!(message.contains("shop/web"), "{message}");
            assert!(message.contains(field), "{message}");
        };
        check(r#""minReplicas":1"#, "spec.maxReplicas");
        check(r#""maxReplicas":0"#, "spec.maxReplicas");
        check(r#""minReplicas":-1,"maxReplicas":3"#, "spec.minReplicas");
        check(
            r#""maxReplicas":3,"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization"}}}]"#,
            "averageUtilization unset",
        );
        check(
            r#""maxReplicas":3,"metrics":[{"type":"Resource","resource":{"name":"memory","target":{"type":"Utilization","averageUtilization":0}}}]"#,
            "averageUtilization 0",
        );
        // Scale to zero (a feature gate) is a valid lower bound.
        let zero: HorizontalPodAutoscaler = serde_json::from_str(
            r#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},
                "minReplicas":0,"maxReplicas":3,"metrics":[{"type":"External","external":{"metric":{"name":"q"},"target":{"type":"Value","value":"1"}}}]}}"#,
        )
        .expect("decode");
        assert_eq!(
            autoscaler(&zero).expect("valid").map(|a| a.min_replicas),
            Some(0)
        );
    }

    #[test]
    fn pod_labels_and_startup_reach_the_model() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"p","namespace":"ns","uid":"u","labels":{"app":"web"}},
                "status":{"phase":"Running","conditions":[
                  {"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2025-06-02T08:13:00Z"},
                  {"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2025-06-02T08:13:27Z"}]}}"#,
        )
        .expect("decode");
        let (info, _) = pod_info(&pod, "Pod".into(), "p".into());
        assert_eq!(info.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(info.startup_seconds, Some(27.0));
    }
}
