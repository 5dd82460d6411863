//! What the Kubernetes API says about the controllers, disruption budgets
//! and horizontal autoscalers of this node's pods, and how Kubernetes
//! resolves it into pod counts: the facts a spot-readiness check needs (how
//! many replicas, how many a rollout or an eviction may take down, how long
//! a pod takes to become Ready) and those a right-sizer needs so as not to
//! fight an autoscaler (its utilization targets and replica bounds).
//!
//! The rounding follows Kubernetes' `GetScaledValueFromIntOrPercent`:
//! a Deployment's `maxUnavailable` percent rounds down (`maxSurge` up), a
//! PodDisruptionBudget's percents round up.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::identity::ContainerIdentity;
use tally_schema::otlp::string_attribute;

use crate::exposition::Pair;

/// Default of a Deployment's `maxUnavailable` and `maxSurge`.
pub const DEFAULT_ROLLING_UPDATE: IntOrPercent = IntOrPercent::Percent(25);

/// A Kubernetes `IntOrString` used as a pod count: a number of pods or a
/// percent of a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    /// A number of pods.
    Count(u64),
    /// A percent of the total (`"25%"`).
    Percent(u64),
}

/// An `IntOrString` that is not a count or a percent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {input:?}: expected a non-negative integer or a percent such as \"25%\"")]
pub struct IntOrPercentError {
    /// The field, e.g. `spec.minAvailable`.
    pub field: &'static str,
    /// The value rejected, as written.
    pub input: String,
}

impl IntOrPercent {
    /// Parses a string form: only percents are valid strings, as in
    /// Kubernetes (`"25%"`; `"3"` is rejected).
    pub fn parse_text(field: &'static str, text: &str) -> Result<Self, IntOrPercentError> {
        text.strip_suffix('%')
            .and_then(|digits| digits.parse::<u64>().ok())
            .map(IntOrPercent::Percent)
            .ok_or_else(|| IntOrPercentError {
                field,
                input: text.to_owned(),
            })
    }

    /// The integer form; negative counts are rejected.
    pub fn from_int(field: &'static str, value: i64) -> Result<Self, IntOrPercentError> {
        u64::try_from(value)
            .map(IntOrPercent::Count)
            .map_err(|_| IntOrPercentError {
                field,
                input: value.to_string(),
            })
    }

    /// Pods out of `total`: a count as is, a percent rounded up or down.
    pub fn scaled(self, total: u64, round_up: bool) -> u64 {
        match self {
            IntOrPercent::Count(n) => n,
            IntOrPercent::Percent(percent) => {
                let product = u128::from(percent) * u128::from(total);
                let pods = if round_up {
                    product.div_ceil(100)
                } else {
                    product / 100
                };
                u64::try_from(pods).unwrap_or(u64::MAX)
            }
        }
    }
}

/// How a Deployment replaces its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStrategy {
    /// `RollingUpdate` with its `maxUnavailable` and `maxSurge` (the
    /// defaults when unset).
    RollingUpdate {
        /// `strategy.rollingUpdate.maxUnavailable`.
        max_unavailable: IntOrPercent,
        /// `strategy.rollingUpdate.maxSurge`.
        max_surge: IntOrPercent,
    },
    /// `Recreate`: every pod goes down before the new ones start.
    Recreate,
}

impl RolloutStrategy {
    /// Pods a rollout of `replicas` may take down at once, as the
    /// Deployment controller's `ResolveFenceposts` computes it: surge
    /// rounds up, unavailable rounds down, and when both come to 0 the
    /// controller takes 1 unavailable; `Recreate` takes every replica.
    pub fn max_unavailable(self, replicas: u64) -> u64 {
        match self {
            RolloutStrategy::Recreate => replicas,
            RolloutStrategy::RollingUpdate {
                max_unavailable,
                max_surge,
            } => {
                let surge = max_surge.scaled(replicas, true);
                let unavailable = max_unavailable.scaled(replicas, false);
                if surge == 0 && unavailable == 0 {
                    1
                } else {
                    unavailable
                }
            }
        }
    }
}

/// A controller a pod's workload names, as the cache keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    /// Namespace.
    pub namespace: String,
    /// `Deployment`, `StatefulSet` or `ReplicaSet`.
    pub kind: String,
    /// Name.
    pub name: String,
}

impl WorkloadRef {
    /// Controller kinds whose desired replicas are read.
    pub const KINDS: &'static [&'static str] = &["Deployment", "StatefulSet", "ReplicaSet"];

    /// The controller of a pod's top-level workload, when it is of a kind
    /// with replicas.
    pub fn of(namespace: &str, kind: &str, name: &str) -> Option<WorkloadRef> {
        (Self::KINDS.contains(&kind) && !name.is_empty()).then(|| WorkloadRef {
            namespace: namespace.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What a controller's spec says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerFacts {
    /// Desired replicas (`spec.replicas`, 1 when unset as the API server
    /// defaults it).
    pub replicas: u64,
    /// Pods a rollout may take down at once (Deployments only).
    pub rollout_max_unavailable: Option<u64>,
    /// The Deployment a ReplicaSet was followed to (for a pod whose
    /// ReplicaSet the watch could not resolve), so an autoscaler of that
    /// Deployment still finds the pod.
    pub deployment: Option<String>,
}

/// What a `autoscaling/v2` HorizontalPodAutoscaler says about the
/// controller it scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscaler {
    /// `metadata.name`.
    pub name: String,
    /// `spec.scaleTargetRef` kind (`Deployment`, `StatefulSet` or
    /// `ReplicaSet`).
    pub target_kind: String,
    /// `spec.scaleTargetRef.name`.
    pub target_name: String,
    /// `spec.minReplicas` (1 when unset, as the API server defaults it).
    pub min_replicas: u64,
    /// `spec.maxReplicas`.
    pub max_replicas: u64,
    /// `(resource, averageUtilization / 100)` of its `Resource` metrics
    /// with a `Utilization` target, `cpu` before `memory`.
    pub utilization_targets: Vec<(&'static str, f64)>,
}

impl Autoscaler {
    /// Resources whose utilization targets are reported, in order.
    pub const RESOURCES: [&'static str; 2] = ["cpu", "memory"];

    /// Whether it scales the controller `kind`/`name`.
    pub fn scales(&self, kind: &str, name: &str) -> bool {
        self.target_kind == kind && self.target_name == name
    }
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The label is set to one of the values.
    In(String, Vec<String>),
    /// The label is unset or set to none of the values.
    NotIn(String, Vec<String>),
    /// The label is set.
    Exists(String),
    /// The label is unset.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A label selector. Every term must hold; no terms (`{}`) selects every
/// pod, as policy/v1 PodDisruptionBudgets read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`.
    pub expressions: Vec<Requirement>,
}

impl Selector {
    /// Whether a pod with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self.expressions.iter().all(|r| r.matches(labels))
    }
}

/// What a PodDisruptionBudget asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetRule {
    /// `spec.minAvailable`.
    MinAvailable(IntOrPercent),
    /// `spec.maxUnavailable` (the disruption controller reads it first).
    MaxUnavailable(IntOrPercent),
    /// Neither set: nothing is kept available.
    Unset,
}

/// A PodDisruptionBudget of a namespace, as much as applying it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisruptionBudget {
    /// `metadata.name`.
    pub name: String,
    /// `spec.selector`; a budget without one selects no pod and is not kept.
    pub selector: Selector,
    /// `spec.minAvailable` or `spec.maxUnavailable`.
    pub rule: BudgetRule,
}

impl DisruptionBudget {
    /// The pods the budget keeps available for a pod whose controller
    /// wants `replicas`, as the disruption controller resolves it:
    /// `minAvailable` as a count, a percent of the replicas rounded up, or
    /// the replicas less `maxUnavailable` (a percent rounded up), floored at
    /// 0. `None` when a percent or `maxUnavailable` needs replicas that are
    /// not known (a DaemonSet, an unreadable controller).
    ///
    /// Kubernetes scales by the replicas of every controller the budget
    /// selects; this is exact for the usual budget of one controller.
    pub fn min_available(&self, replicas: Option<u64>) -> Option<u64> {
        match self.rule {
            BudgetRule::MinAvailable(IntOrPercent::Count(pods)) => Some(pods),
            BudgetRule::MinAvailable(percent) => Some(percent.scaled(replicas?, true)),
            BudgetRule::MaxUnavailable(unavailable) => {
                let replicas = replicas?;
                Some(replicas.saturating_sub(unavailable.scaled(replicas, true)))
            }
            BudgetRule::Unset => Some(0),
        }
    }
}

/// One pod's start-up, controller, disruption-budget and autoscaler facts,
/// with the pod's identity (container fields empty), as the snapshot
/// carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFacts {
    /// The pod.
    pub identity: ContainerIdentity,
    /// Seconds from `PodScheduled` to `Ready`.
    pub startup_seconds: Option<f64>,
    /// Desired replicas of its controller.
    pub replicas: Option<u64>,
    /// Pods a rollout of its Deployment may take down.
    pub rollout_max_unavailable: Option<u64>,
    /// `(budget name, pods kept available)` of every budget selecting the
    /// pod, by name.
    pub disruption_budgets: Vec<(String, u64)>,
    /// `(resource, target utilization ratio)` of the autoscaler scaling
    /// its top controller.
    pub hpa_targets: Vec<(&'static str, f64)>,
    /// `(min, max)` replicas of that autoscaler.
    pub hpa_replicas: Option<(u64, u64)>,
}

impl PodFacts {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.startup_seconds.is_none()
            && self.replicas.is_none()
            && self.rollout_max_unavailable.is_none()
            && self.disruption_budgets.is_empty()
            && self.hpa_targets.is_empty()
            && self.hpa_replicas.is_none()
    }

    /// Labels in the order of the pod families
    /// ([`tally_schema::identity::POD_LABELS`]).
    pub fn labels<'a>(&'a self, node: &'a str) -> [Pair<'a>; 6] {
        let id = &self.identity;
        [
            ("node", node),
            ("namespace", &id.namespace),
            ("pod", &id.pod),
            ("workload_kind", &id.workload_kind),
            ("workload_name", &id.workload_name),
            ("pod_uid", &id.pod_uid),
        ]
    }

    /// [`Self::labels`] plus one more label, as the families of
    /// [`POD_FACT_SERIES`] carry it.
    pub fn labels_with<'a>(
        &'a self,
        node: &'a str,
        key: &'static str,
        value: &'a str,
    ) -> [Pair<'a>; 7] {
        let [a, b, c, d, e, f] = self.labels(node);
        [a, b, c, d, e, f, (key, value)]
    }

    /// `(attributes, value)` points of a [`POD_FACT_SERIES`] family over
    /// OTLP (the pod is the resource, the extra label a point attribute).
    pub fn series_points(&self, key: &str, series: PodFactSeries) -> Vec<(Vec<KeyValue>, f64)> {
        series(self)
            .into_iter()
            .map(|(value, v)| (vec![string_attribute(key, value)], v))
            .collect()
    }
}

/// Reads one single-valued pod fact.
pub type PodFactValue = fn(&PodFacts) -> Option<f64>;

/// The single-valued pod fact families and how to read them, shared by
/// `/metrics` and the OTLP exporter; families with one series per value of
/// an extra label are [`POD_FACT_SERIES`].
pub const POD_FACT_VALUES: &[(&MetricDef, PodFactValue)] = &[
    (&catalog::POD_STARTUP, |f| f.startup_seconds),
    (&catalog::WORKLOAD_REPLICAS, |f| {
        f.replicas.map(|r| r as f64)
    }),
    (&catalog::WORKLOAD_ROLLOUT_MAX_UNAVAILABLE, |f| {
        f.rollout_max_unavailable.map(|r| r as f64)
    }),
];

/// Reads a pod fact with one series per value of an extra label:
/// `(label value, value)` pairs.
pub type PodFactSeries = for<'a> fn(&'a PodFacts) -> Vec<(&'a str, f64)>;

/// The pod fact families with one extra label (last in the catalog's
/// labels, a point attribute over OTLP), the label and how to read them,
/// shared by `/metrics` and the OTLP exporter.
pub const POD_FACT_SERIES: &[(&MetricDef, &str, PodFactSeries)] = &[
    (
        &catalog::POD_DISRUPTION_BUDGET_MIN_AVAILABLE,
        "pdb",
        budget_series,
    ),
    (
        &catalog::WORKLOAD_HPA_TARGET_UTILIZATION,
        "resource",
        hpa_target_series,
    ),
    (&catalog::WORKLOAD_HPA_REPLICAS, "bound", hpa_replica_series),
];

fn budget_series(facts: &PodFacts) -> Vec<(&str, f64)> {
    facts
        .disruption_budgets
        .iter()
        .map(|(name, pods)| (name.as_str(), *pods as f64))
        .collect()
}

fn hpa_target_series(facts: &PodFacts) -> Vec<(&str, f64)> {
    facts.hpa_targets.clone()
}

fn hpa_replica_series(facts: &PodFacts) -> Vec<(&str, f64)> {
    facts
        .hpa_replicas
        .map(|(min, max)| vec![("min", min as f64), ("max", max as f64)])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn percents_round_up_or_down_as_asked() {
        let p = IntOrPercent::Percent;
        assert_eq!(p(25).scaled(3, false), 0, "0.75 rounds down");
        assert_eq!(p(25).scaled(3, true), 1, "0.75 rounds up");
        assert_eq!(p(25).scaled(4, false), 1, "exact");
        assert_eq!(p(25).scaled(4, true), 1, "exact stays");
        assert_eq!(p(30).scaled(6, true), 2, "1.8 rounds up");
        assert_eq!(p(30).scaled(6, false), 1, "1.8 rounds down");
        assert_eq!(p(50).scaled(5, true), 3);
        assert_eq!(p(100).scaled(7, false), 7);
        assert_eq!(p(0).scaled(7, true), 0);
        assert_eq!(p(10).scaled(0, true), 0);
        assert_eq!(IntOrPercent::Count(2).scaled(100, false), 2, "counts as is");
        assert_eq!(p(u64::MAX).scaled(u64::MAX, true), u64::MAX, "saturates");
    }

    #[test]
    fn int_or_string_values_parse_as_kubernetes_reads_them() {
        let field = "spec.maxUnavailable";
        assert_eq!(
            IntOrPercent::parse_text(field, "25%"),
            Ok(IntOrPercent::Percent(25))
        );
        assert_eq!(IntOrPercent::from_int(field, 3), Ok(IntOrPercent::Count(3)));
        for bad in ["3", "25 %", "%", "-5%", "x%", ""] {
            let err = IntOrPercent::parse_text(field, bad).expect_err(bad);
            assert!(err.to_string().contains(field), "{err}");
        }
        assert!(IntOrPercent::from_int(field, -1).is_err());
    }

    #[test]
    fn rollouts_resolve_like_the_deployment_controller() {
        let rolling = |max_unavailable, max_surge| RolloutStrategy::RollingUpdate {
            max_unavailable,
            max_surge,
        };
        let default = rolling(DEFAULT_ROLLING_UPDATE, DEFAULT_ROLLING_UPDATE);
        assert_eq!(default.max_unavailable(3), 0, "25 % of 3 rounds down");
        assert_eq!(default.max_unavailable(4), 1);
        assert_eq!(default.max_unavailable(10), 2, "2.5 rounds down");
        let count = rolling(IntOrPercent::Count(2), DEFAULT_ROLLING_UPDATE);
        assert_eq!(count.max_unavailable(10), 2);
        // maxSurge 0 and maxUnavailable rounding to 0: the controller
        // takes one pod down rather than none.
        let stuck = rolling(IntOrPercent::Percent(10), IntOrPercent::Count(0));
        assert_eq!(stuck.max_unavailable(3), 1);
        assert_eq!(stuck.max_unavailable(20), 2);
        assert_eq!(RolloutStrategy::Recreate.max_unavailable(5), 5);
    }

    #[test]
    fn budgets_resolve_like_the_disruption_controller() {
        let budget = |rule| DisruptionBudget {
            name: "b".to_owned(),
            selector: Selector::default(),
            rule,
        };
        let min = |v| budget(BudgetRule::MinAvailable(v));
        let max = |v| budget(BudgetRule::MaxUnavailable(v));
        assert_eq!(min(IntOrPercent::Count(2)).min_available(None), Some(2));
        assert_eq!(
            min(IntOrPercent::Percent(30)).min_available(Some(6)),
            Some(2),
            "1.8 rounds up"
        );
        assert_eq!(min(IntOrPercent::Percent(30)).min_available(None), None);
        assert_eq!(max(IntOrPercent::Count(1)).min_available(Some(3)), Some(2));
        assert_eq!(
            max(IntOrPercent::Percent(40)).min_available(Some(2)),
            Some(1),
            "0.8 unavailable rounds up to 1"
        );
        assert_eq!(
            max(IntOrPercent::Count(5)).min_available(Some(3)),
            Some(0),
            "floored at 0"
        );
        assert_eq!(max(IntOrPercent::Count(1)).min_available(None), None);
        assert_eq!(budget(BudgetRule::Unset).min_available(Some(4)), Some(0));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let pod = labels(&[("app", "web"), ("tier", "frontend")]);
        assert!(Selector::default().matches(&pod), "{{}} selects every pod");
        assert!(Selector::default().matches(&BTreeMap::new()));
        let by_labels = Selector {
            match_labels: labels(&[("app", "web")]),
            expressions: Vec::new(),
        };
        assert!(by_labels.matches(&pod));
        assert!(!by_labels.matches(&labels(&[("app", "api")])));
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases = [
            (
                Requirement::In("tier".into(), strings(&["frontend", "edge"])),
                true,
            ),
            (Requirement::In("tier".into(), strings(&["backend"])), false),
            (Requirement::In("zone".into(), strings(&["a"])), false),
            (
                Requirement::NotIn("tier".into(), strings(&["backend"])),
                true,
            ),
            (
                Requirement::NotIn("tier".into(), strings(&["frontend"])),
                false,
            ),
            (Requirement::NotIn("zone".into(), strings(&["a"])), true),
            (Requirement::Exists("app".into()), true),
            (Requirement::Exists("zone".into()), false),
            (Requirement::DoesNotExist("zone".into()), true),
            (Requirement::DoesNotExist("app".into()), false),
        ];
        for (requirement, want) in cases {
            let selector = Selector {
                match_labels: labels(&[("app", "web")]),
                expressions: vec![requirement.clone()],
            };
            assert_eq!(selector.matches(&pod), want, "{requirement:?}");
        }
    }

    #[test]
    fn fact_labels_follow_the_catalog() {
        let facts = PodFacts {
            identity: ContainerIdentity {
                namespace: "web".into(),
                pod: "storefront-abc".into(),
                workload_kind: "Deployment".into(),
                workload_name: "storefront".into(),
                pod_uid: "u".into(),
                ..Default::default()
            },
            disruption_budgets: vec![("storefront".into(), 2)],
            hpa_targets: vec![("cpu", 0.7), ("memory", 0.8)],
            hpa_replicas: Some((2, 10)),
            ..Default::default()
        };
        for (def, _) in POD_FACT_VALUES {
            assert_eq!(
                facts.labels("n").map(|(k, _)| k),
                def.labels,
                "{}",
                def.base
            );
        }
        let mut series = Vec::new();
        for (def, key, read) in POD_FACT_SERIES {
            assert_eq!(
                facts.labels_with("n", key, "v").map(|(k, _)| k),
                def.labels,
                "{}",
                def.base
            );
            let points = facts.series_points(key, *read);
            assert!(
                points
                    .iter()
                    .all(|(attributes, _)| attributes.len() == 1 && attributes[0].key == *key),
                "{}",
                def.base
            );
            series.push((def.base, read(&facts)));
        }
        assert_eq!(
            series,
            [
                (
                    "tally_pod_disruption_budget_min_available",
                    vec![("storefront", 2.0)]
                ),
                (
                    "tally_workload_hpa_target_utilization",
                    vec![("cpu", 0.7), ("memory", 0.8)]
                ),
                (
                    "tally_workload_hpa_replicas",
                    vec![("min", 2.0), ("max", 10.0)]
                ),
            ]
        );
        assert!(!facts.is_empty());
        assert!(PodFacts::default().is_empty());
        let hpa_only = PodFacts {
            hpa_replicas: Some((1, 3)),
            ..Default::default()
        };
        assert!(!hpa_only.is_empty());
        for (_, _, read) in POD_FACT_SERIES {
            assert!(read(&PodFacts::default()).is_empty());
        }
    }

    #[test]
    fn autoscalers_match_their_scale_target_only() {
        let hpa = Autoscaler {
            name: "checkout".into(),
            target_kind: "Deployment".into(),
            target_name: "checkout".into(),
            min_replicas: 1,
            max_replicas: 4,
            utilization_targets: Vec::new(),
        };
        assert!(hpa.scales("Deployment", "checkout"));
        assert!(!hpa.scales("Deployment", "cart"));
        assert!(!hpa.scales("StatefulSet", "checkout"));
    }
}
