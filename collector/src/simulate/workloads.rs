//! What the agent's pod source reads from the Kubernetes API for spot
//! readiness and right-sizing: each pod's start-up (`PodScheduled` to
//! `Ready`), its controller's desired replicas and how many pods a rollout
//! takes down, the PodDisruptionBudgets covering it, resolved to pod counts
//! as the agent resolves them, and the HorizontalPodAutoscaler scaling its
//! controller.
//!
//! - Start-up: stateless web services 10-40 s, DaemonSets 3-10 s, other
//!   CPU pods 8-60 s, GPU notebooks and training 60-180 s (multi-GB CUDA
//!   images), model servers 120-600 s (weights download and load: about
//!   2 min for a 0.5B model, 9 min for a 70B one).
//! - Replicas: a Deployment's or StatefulSet's pods across the fleet.
//! - Rollouts: Deployments keep the default 25 % (rounded down, so 0
//!   below 4 replicas); model servers roll one pod at a time without a
//!   surge (`maxSurge: 0, maxUnavailable: 1`: no spare GPU for an extra
//!   pod); `dev/jupyter-dev` uses `Recreate` (all its replicas).
//! - Budgets: `web/storefront` keeps 1 available (the spot-ready control),
//!   `web/checkout` keeps every replica (`minAvailable` = replicas, the
//!   case a spot-readiness check must refuse), model servers allow one
//!   down (`maxUnavailable: 1`), about half of the other Deployments with
//!   two or more replicas keep 1 or 50 % (rounded up), StatefulSets with
//!   two or more allow one down; Jobs, CronJobs and DaemonSets have none.
//! - Autoscalers: only `web/checkout` has one (CPU utilization target
//!   0.7, 2 to 10 replicas), so a right-sizer's HPA handling is exercised
//!   against one workload and `web/storefront` stays the plain control;
//!   fixed, so it draws nothing from the generator.
//!
//! Randomness comes from its own generator (seeded from the fleet's
//! seed), so these families shift no other family's values.

use std::collections::{BTreeMap, HashSet};

use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics};
use tally_schema::catalog;
use tally_schema::otlp;

use super::Rng;
use super::fleet::{Clock, Container, Node, attributes};
use super::volumes::pod_resource;

/// Mixed into the fleet's seed for this family's generator ("workload").
const SEED_MIX: u64 = 0x776f_726b_6c6f_6164;

/// What kind of pod, for its start-up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// A model server: its model's load time.
    Serving(f64),
    /// A GPU pod that serves nothing (notebook, training).
    Gpu,
    DaemonSet,
    /// A stateless web service.
    Web,
    Other,
}

impl Class {
    fn of(container: &Container) -> Class {
        let id = &container.identity;
        match (&container.server, container.gpu_work) {
            (Some(server), _) => Class::Serving(server.model().load_s),
            (None, Some(_)) => Class::Gpu,
            _ if id.workload_kind == "DaemonSet" => Class::DaemonSet,
            _ if id.namespace == "web" => Class::Web,
            _ => Class::Other,
        }
    }

    /// A pod's seconds from scheduling to Ready.
    fn startup(self, rng: &mut Rng) -> f64 {
        let seconds = match self {
            Class::Serving(load) => (load * (0.85 + rng.unit() * 0.3)).clamp(120.0, 600.0),
            Class::Gpu => 60.0 + rng.unit() * 120.0,
            Class::DaemonSet => 3.0 + rng.unit() * 7.0,
            Class::Web => 10.0 + rng.unit() * 30.0,
            Class::Other => 8.0 + rng.unit() * 52.0,
        };
        seconds.round()
    }
}

/// A PodDisruptionBudget as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    MinAvailable(u64),
    MinAvailablePercent(u64),
    MaxUnavailable(u64),
}

impl Budget {
    /// Pods kept available out of `replicas`, as the disruption
    /// controller resolves it (percents round up, floored at 0).
    fn min_available(self, replicas: u64) -> u64 {
        match self {
            Budget::MinAvailable(pods) => pods,
            Budget::MinAvailablePercent(percent) => (percent * replicas).div_ceil(100),
            Budget::MaxUnavailable(pods) => replicas.saturating_sub(pods),
        }
    }
}

/// A HorizontalPodAutoscaler as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Autoscaler {
    /// CPU `averageUtilization` / 100.
    cpu_target: f64,
    min_replicas: u64,
    max_replicas: u64,
}

/// `web/checkout`'s autoscaler.
const CHECKOUT_AUTOSCALER: Autoscaler = Autoscaler {
    cpu_target: 0.7,
    min_replicas: 2,
    max_replicas: 10,
};

/// A workload's controller, budget and autoscaler.
#[derive(Debug, Clone, Default, PartialEq)]
struct Plan {
    replicas: Option<u64>,
    rollout_max_unavailable: Option<u64>,
    /// `(budget name, pods kept available)`.
    budget: Option<(String, u64)>,
    autoscaler: Option<Autoscaler>,
}

/// `(namespace, kind, name)`.
type WorkloadKey = (String, String, String);

fn key(container: &Container) -> WorkloadKey {
    let id = &container.identity;
    (
        id.namespace.clone(),
        id.workload_kind.clone(),
        id.workload_name.clone(),
    )
}

/// Plans a workload of `replicas` pods; draws the same number of values
/// whatever the plan, so one workload's plan never shifts another's.
fn plan(rng: &mut Rng, (_, kind, name): &WorkloadKey, replicas: u64, class: Class) -> Plan {
    let (has_budget, which) = (rng.unit(), rng.unit());
    let serving = matches!(class, Class::Serving(_));
    match kind.as_str() {
        "Deployment" => {
            let rollout = if name == "jupyter-dev" {
                replicas
            } else if serving || name == "storefront" || name == "checkout" {
                // The planted web services set `maxUnavailable: 1`, as
                // services meant for spot do (25 % of 3 rounds to 0).
                1
            } else {
                // 25 % rounds down for maxUnavailable and up for maxSurge;
                // with a surge of at least one pod the floor stands.
                replicas / 4
            };
            let budget = match name.as_str() {
                "checkout" => Some(Budget::MinAvailable(replicas)),
                "storefront" => Some(Budget::MinAvailable(1)),
                _ if serving => Some(Budget::MaxUnavailable(1)),
                _ if replicas >= 2 && has_budget < 0.5 => Some(if which < 2.0 / 3.0 {
                    Budget::MinAvailable(1)
                } else {
                    Budget::MinAvailablePercent(50)
                }),
                _ => None,
            };
            Plan {
                replicas: Some(replicas),
                rollout_max_unavailable: Some(rollout),
                budget: budget.map(|b| (name.clone(), b.min_available(replicas))),
                autoscaler: (name == "checkout").then_some(CHECKOUT_AUTOSCALER),
            }
        }
        "StatefulSet" => Plan {
            replicas: Some(replicas),
            rollout_max_unavailable: None,
            autoscaler: None,
            budget: (replicas >= 2).then(|| {
                (
                    name.clone(),
                    Budget::MaxUnavailable(1).min_available(replicas),
                )
            }),
        },
        _ => Plan::default(),
    }
}

/// One pod's facts.
struct Pod {
    /// The pod's resource attributes (node and pod).
    resource: Vec<(&'static str, String)>,
    startup_s: f64,
    plan: Plan,
}

/// Every pod's start-up, controller and budget facts.
pub(super) struct Workloads {
    pods: Vec<Pod>,
}

impl Workloads {
    /// Plans the facts of `nodes`' pods from the fleet's `seed`.
    pub fn new(seed: u64, nodes: &[Node]) -> Workloads {
        let mut rng = Rng::new(seed ^ SEED_MIX);
        let mut pods: Vec<(&Node, &Container)> = Vec::new();
        let mut seen = HashSet::new();
        for node in nodes {
            for container in &node.containers {
                if seen.insert(container.identity.pod_uid.clone()) {
                    pods.push((node, container));
                }
            }
        }
        let mut workloads: BTreeMap<WorkloadKey, (u64, Class)> = BTreeMap::new();
        for (_, container) in &pods {
            workloads
                .entry(key(container))
                .or_insert((0, Class::of(container)))
                .0 += 1;
        }
        let plans: BTreeMap<WorkloadKey, Plan> = workloads
            .into_iter()
            .map(|(key, (replicas, class))| {
                let plan = plan(&mut rng, &key, replicas, class);
                (key, plan)
            })
            .collect();
        let pods = pods
            .into_iter()
            .map(|(node, container)| Pod {
                resource: pod_resource(node, &container.identity),
                startup_s: Class::of(container).startup(&mut rng),
                plan: plans.get(&key(container)).cloned().unwrap_or_default(),
            })
            .collect();
        Workloads { pods }
    }

    /// Appends one resource per pod with its facts (constant gauges).
    pub fn step(&self, clock: &Clock, out: &mut Vec<ResourceMetrics>) {
        for pod in &self.pods {
            let point = |value: f64| vec![clock.point(Vec::new(), value)];
            let mut metrics: Vec<Metric> =
                vec![otlp::gauge(&catalog::POD_STARTUP, point(pod.startup_s))];
            if let Some(replicas) = pod.plan.replicas {
                metrics.push(otlp::gauge(
                    &catalog::WORKLOAD_REPLICAS,
                    point(replicas as f64),
                ));
            }
            if let Some(pods) = pod.plan.rollout_max_unavailable {
                metrics.push(otlp::gauge(
                    &catalog::WORKLOAD_ROLLOUT_MAX_UNAVAILABLE,
                    point(pods as f64),
                ));
            }
            if let Some((name, pods)) = &pod.plan.budget {
                metrics.push(otlp::gauge(
                    &catalog::POD_DISRUPTION_BUDGET_MIN_AVAILABLE,
                    vec![clock.point(attributes(&[("pdb", name)]), *pods as f64)],
                ));
            }
            if let Some(hpa) = &pod.plan.autoscaler {
                metrics.push(otlp::gauge(
                    &catalog::WORKLOAD_HPA_TARGET_UTILIZATION,
                    vec![clock.point(attributes(&[("resource", "cpu")]), hpa.cpu_target)],
                ));
                let bound = |name: &str, replicas: u64| {
                    clock.point(attributes(&[("bound", name)]), replicas as f64)
                };
                metrics.push(otlp::gauge(
                    &catalog::WORKLOAD_HPA_REPLICAS,
                    vec![
                        bound("min", hpa.min_replicas),
                        bound("max", hpa.max_replicas),
                    ],
                ));
            }
            out.push(otlp::resource_metrics(
                otlp::resource(pod.resource.clone()),
                metrics,
                "simulated",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::Fleet;
    use super::Budget;

    /// `(labels, value)` of every point of `name`, resource and point
    /// attributes together.
    fn points(
        request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        name: &str,
    ) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
        crate::simulate::tests::numbers(request, name)
    }

    /// `namespace/name`, plus the kind for anything but a Deployment.
    fn workload(labels: &BTreeMap<String, String>) -> String {
        let (kind, name) =
            tally_schema::identity::workload_of(|k| labels.get(k).map(String::as_str))
                .unwrap_or_default();
        let namespace = &labels["k8s.namespace.name"];
        match kind {
            "Deployment" => format!("{namespace}/{name}"),
            _ => format!("{namespace}/{name} ({kind})"),
        }
    }

    #[test]
    fn budgets_resolve_as_the_disruption_controller_does() {
        assert_eq!(Budget::MinAvailable(1).min_available(5), 1);
        assert_eq!(
            Budget::MinAvailablePercent(50).min_available(3),
            2,
            "1.5 rounds up"
        );
        assert_eq!(Budget::MinAvailablePercent(50).min_available(4), 2);
        assert_eq!(Budget::MaxUnavailable(1).min_available(3), 2);
        assert_eq!(Budget::MaxUnavailable(1).min_available(1), 0);
        assert_eq!(
            Budget::MaxUnavailable(1).min_available(0),
            0,
            "floored at 0"
        );
    }

    #[test]
    fn every_pod_has_its_facts_and_the_planted_budgets_and_autoscaler_hold() {
        let step = Duration::from_secs(600);
        let t0 = 1_800_000_000_000_000_000;
        let nodes = 10;
        let mut fleet = Fleet::new(nodes, 7, t0);
        let first = fleet.step(t0 + 600_000_000_000, step);
        let second = fleet.step(t0 + 1_200_000_000_000, step);

        // A start-up for every pod, in its class's range; constant.
        let startup = points(&first, "tally_pod_startup_seconds");
        let pods: std::collections::HashSet<_> =
            points(&first, "tally_container_memory_working_set_bytes")
                .into_iter()
                .map(|(l, _)| l["k8s.pod.uid"].clone())
                .collect();
        assert_eq!(startup.len(), pods.len());
        assert_eq!(startup, points(&second, "tally_pod_startup_seconds"));
        let servers: std::collections::HashSet<_> = points(&first, "tally_model_info")
            .into_iter()
            .map(|(l, _)| l["k8s.pod.uid"].clone())
            .collect();
        assert!(!servers.is_empty());
        for (labels, seconds) in &startup {
            let range = if servers.contains(&labels["k8s.pod.uid"]) {
                120.0..=600.0
            } else if labels.get("k8s.deployment.name").is_some()
                && labels["k8s.namespace.name"] == "web"
            {
                10.0..=40.0
            } else {
                3.0..=180.0
            };
            assert!(range.contains(seconds), "{seconds} s for {labels:?}");
        }

        // Replicas are the pods of the workload in the fleet.
        let replicas = points(&first, "tally_workload_replicas");
        let mut counted: BTreeMap<String, f64> = BTreeMap::new();
        for (labels, _) in &replicas {
            *counted.entry(workload(labels)).or_default() += 1.0;
        }
        for (labels, value) in &replicas {
            assert_eq!(*value, counted[&workload(labels)], "{labels:?}");
            assert!(
                labels.contains_key("k8s.deployment.name")
                    || labels.contains_key("k8s.statefulset.name"),
                "{labels:?}"
            );
        }
        assert_eq!(counted["web/storefront"], nodes as f64);
        assert_eq!(counted["web/checkout"], nodes as f64);

        // Rollouts: default 25 % rounded down, one at a time for model
        // servers and the planted web services, Recreate for the dev
        // notebook.
        let rollout = points(&first, "tally_workload_rollout_max_unavailable");
        for (labels, value) in &rollout {
            let name = workload(labels);
            let want = if name == "dev/jupyter-dev" {
                counted[&name]
            } else if servers.contains(&labels["k8s.pod.uid"])
                || name == "web/storefront"
                || name == "web/checkout"
            {
                1.0
            } else {
                (counted[&name] / 4.0).floor()
            };
            assert_eq!(*value, want, "{name}");
        }
        assert_eq!(
            rollout
                .iter()
                .find(|(l, _)| workload(l) == "web/storefront")
                .map(|(_, v)| *v),
            Some(1.0)
        );

        // Budgets: storefront keeps 1, checkout every replica, model
        // servers all but one; others vary but never exceed the replicas.
        let budgets = points(&first, "tally_pod_disruption_budget_min_available");
        let budget_of = |name: &str| -> Vec<f64> {
            budgets
                .iter()
                .filter(|(l, _)| workload(l) == name)
                .map(|(l, v)| {
                    assert_eq!(l["pdb"], l["k8s.deployment.name"]);
                    *v
                })
                .collect()
        };
        assert_eq!(budget_of("web/storefront"), vec![1.0; nodes]);
        assert_eq!(
            budget_of("web/checkout"),
            vec![nodes as f64; nodes],
            "strict"
        );
        for (labels, value) in &budgets {
            let name = workload(labels);
            assert!(*value <= counted[&name], "{name}: {value}");
            if servers.contains(&labels["k8s.pod.uid"]) {
                assert_eq!(*value, counted[&name] - 1.0, "{name}");
            }
        }
        assert!(
            budgets
                .iter()
                .any(
                    |(l, _)| !["web/storefront", "web/checkout"].contains(&workload(l).as_str())
                        && !servers.contains(&l["k8s.pod.uid"])
                ),
            "some other services have budgets"
        );
        assert!(
            !budgets.iter().any(|(l, _)| l.contains_key("k8s.job.name")
                || l.contains_key("k8s.cronjob.name")
                || l.contains_key("k8s.daemonset.name")),
            "no budgets for batch or DaemonSets"
        );

        // Autoscalers: checkout alone, CPU 0.7 between 2 and 10 replicas,
        // on every pod; storefront (and everything else) has none.
        let targets = points(&first, "tally_workload_hpa_target_utilization_ratio");
        let bounds = points(&first, "tally_workload_hpa_replicas");
        for (labels, _) in targets.iter().chain(&bounds) {
            assert_eq!(workload(labels), "web/checkout", "{labels:?}");
        }
        let checkout_pods = |series: &[(BTreeMap<String, String>, f64)], key: &str, value: &str| {
            series
                .iter()
                .filter(|(l, _)| l[key] == value)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
        };
        assert_eq!(checkout_pods(&targets, "resource", "cpu"), vec![0.7; nodes]);
        assert_eq!(targets.len(), nodes, "cpu only");
        assert_eq!(checkout_pods(&bounds, "bound", "min"), vec![2.0; nodes]);
        assert_eq!(checkout_pods(&bounds, "bound", "max"), vec![10.0; nodes]);
        assert_eq!(bounds.len(), 2 * nodes);
        assert!(
            !targets
                .iter()
                .chain(&bounds)
                .any(|(l, _)| workload(l) == "web/storefront"),
            "storefront has no autoscaler"
        );
        assert_eq!(
            targets,
            points(&second, "tally_workload_hpa_target_utilization_ratio")
        );
        assert_eq!(bounds, points(&second, "tally_workload_hpa_replicas"));

        // Deterministic for a seed.
        let mut again = Fleet::new(nodes, 7, t0);
        assert_eq!(again.step(t0 + 600_000_000_000, step), first);
    }
}
