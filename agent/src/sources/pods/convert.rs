//! Kubernetes API objects (only the fields Tally reads) and their
//! conversion into the pod model and the node identity.
//!
//! Every field defaults when absent and unknown fields are ignored, so
//! objects from newer API servers decode unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use tally_schema::identity::NodeIdentity;

use super::model::{PodContainer, PodInfo};

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
    /// Requests and limits.
    #[serde(deserialize_with = "nullable")]
    pub resources: Resources,
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
    /// Regular container statuses.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Init container statuses.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
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
    };
    (info, errors)
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
}
