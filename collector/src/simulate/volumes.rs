//! Persistent volumes: per pod volume the capacity and use the agent's
//! `volumes` source reports, and the cluster's volume list (capacity,
//! claim, storage class) that a cluster-scoped watch reports. Every
//! StatefulSet pod and about a third of the Deployment pods have a gp3
//! claim, well used and changing (the healthy controls). Planted, on any
//! fleet of one node or more:
//! - a released 500 GiB volume no pod mounts (unclaimed);
//! - a 2 TiB training-checkpoint volume whose 1.4 TiB never change
//!   (stale);
//! - a 1 TiB scratch volume using about 20 GiB (oversized).
//!
//! Randomness comes from its own generator (seeded from the fleet's seed),
//! so adding volumes shifted none of the other families' values.

use std::collections::HashSet;

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use tally_schema::catalog;
use tally_schema::identity::ContainerIdentity;
use tally_schema::otlp;

use super::Rng;
use super::fleet::{Clock, GIB, Node, attributes};

/// Mixed into the fleet's seed for this family's generator ("volumes!").
const SEED_MIX: u64 = 0x766f_6c75_6d65_7321;
const STORAGE_CLASS: &str = "gp3";
const PLUGIN: &str = "kubernetes.io/csi";

/// How a volume's used bytes move.
#[derive(Debug, Clone, Copy)]
enum Usage {
    /// A share of capacity that grows slowly, with noise every step.
    Growing {
        share: f64,
        growth_per_hour: f64,
        noise: f64,
    },
    /// Bytes that never change: data written once and left.
    Frozen(f64),
    /// About this many bytes, with noise every step.
    Around { bytes: f64, noise: f64 },
}

/// A claim mounted by a pod.
struct Claim {
    /// The pod's resource attributes (node and pod).
    resource: Vec<(&'static str, String)>,
    persistentvolume: String,
    claim: String,
    namespace: String,
    capacity: f64,
    usage: Usage,
}

/// A volume of the cluster no pod mounts.
struct Unmounted {
    persistentvolume: String,
    claim: String,
    namespace: String,
    capacity: f64,
}

/// Every simulated volume.
pub(super) struct Volumes {
    rng: Rng,
    claims: Vec<Claim>,
    unmounted: Vec<Unmounted>,
    /// The node reporting the cluster's volume list.
    reporter: Option<Vec<(&'static str, String)>>,
}

/// A PV name as dynamic provisioning makes it: `pvc-<uid of the claim>`.
fn pv_name(rng: &mut Rng) -> String {
    format!(
        "pvc-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.next_u64() & 0xffff_ffff,
        rng.below(1 << 16),
        rng.below(4096),
        rng.below(4096),
        rng.next_u64() & 0xffff_ffff_ffff
    )
}

/// The pod's resource: the node's attributes and the pod's identity
/// without a container.
pub(super) fn pod_resource(node: &Node, id: &ContainerIdentity) -> Vec<(&'static str, String)> {
    let pod = ContainerIdentity {
        container: String::new(),
        container_id: String::new(),
        ..id.clone()
    };
    let mut resource = node.attributes();
    resource.extend(pod.resource_attributes());
    resource
}

impl Volumes {
    /// Plans the volumes of `nodes`' pods from the fleet's `seed`.
    pub fn new(seed: u64, nodes: &[Node]) -> Volumes {
        let mut rng = Rng::new(seed ^ SEED_MIX);
        let mut pods: Vec<(&Node, &ContainerIdentity)> = Vec::new();
        let mut seen = HashSet::new();
        for node in nodes {
            for container in &node.containers {
                if seen.insert(container.identity.pod_uid.clone()) {
                    pods.push((node, &container.identity));
                }
            }
        }
        let mut claims = Vec::new();
        // The planted pods: checkpoints on a training pod (else any
        // ml-training pod, else the first), scratch on another pod.
        let checkpoints = pods
            .iter()
            .position(|(_, id)| id.workload_name.starts_with("finetune-"))
            .or_else(|| {
                pods.iter()
                    .position(|(_, id)| id.namespace == "ml-training")
            })
            .or((!pods.is_empty()).then_some(0));
        let scratch = (0..pods.len())
            .filter(|i| Some(*i) != checkpoints)
            .find(|i| pods[*i].1.workload_kind == "Deployment")
            .or_else(|| (0..pods.len()).find(|i| Some(*i) != checkpoints));
        for (i, (node, id)) in pods.iter().enumerate() {
            let resource = pod_resource(node, id);
            let planted = if Some(i) == checkpoints {
                Some(("checkpoints", 2048.0 * GIB, Usage::Frozen(1434.0 * GIB)))
            } else if Some(i) == scratch {
                Some((
                    "scratch",
                    1024.0 * GIB,
                    Usage::Around {
                        bytes: 20.0 * GIB,
                        noise: 0.5 * GIB,
                    },
                ))
            } else {
                None
            };
            if let Some((purpose, capacity, usage)) = planted {
                claims.push(Claim {
                    resource,
                    persistentvolume: pv_name(&mut rng),
                    claim: format!("{purpose}-{}", id.pod),
                    namespace: id.namespace.clone(),
                    capacity,
                    usage,
                });
                continue;
            }
            let wants = match id.workload_kind.as_str() {
                "StatefulSet" => true,
                "Deployment" => rng.unit() < 0.35,
                _ => false,
            };
            if !wants {
                continue;
            }
            let capacity = [20.0, 50.0, 100.0, 200.0, 500.0][rng.below(5)] * GIB;
            claims.push(Claim {
                resource,
                persistentvolume: pv_name(&mut rng),
                claim: format!("data-{}", id.pod),
                namespace: id.namespace.clone(),
                capacity,
                usage: Usage::Growing {
                    // 50-70 % full, growing up to 0.04 % of capacity an
                    // hour: well used over any two weeks.
                    share: 0.5 + rng.unit() * 0.2,
                    growth_per_hour: rng.unit() * 0.0004,
                    noise: 0.002,
                },
            });
        }
        let unmounted = if nodes.is_empty() {
            Vec::new()
        } else {
            vec![Unmounted {
                persistentvolume: pv_name(&mut rng),
                claim: "results-exp-41".to_owned(),
                namespace: "ml-training".to_owned(),
                capacity: 500.0 * GIB,
            }]
        };
        Volumes {
            rng,
            claims,
            unmounted,
            reporter: nodes.first().map(Node::attributes),
        }
    }

    /// Advances one step; appends one resource per mounted volume and the
    /// cluster's volume list on the reporting node.
    pub fn step(&mut self, clock: &Clock, out: &mut Vec<ResourceMetrics>) {
        let mut listed = Vec::new();
        for claim in &self.claims {
            let used = match claim.usage {
                Usage::Growing {
                    share,
                    growth_per_hour,
                    noise,
                } => {
                    (share + growth_per_hour * clock.hours + self.rng.unit() * noise).min(0.95)
                        * claim.capacity
                }
                Usage::Frozen(bytes) => bytes,
                Usage::Around { bytes, noise } => bytes + self.rng.unit() * noise,
            };
            let point = attributes(&[
                ("volume", &claim.persistentvolume),
                ("persistentvolume", &claim.persistentvolume),
                ("persistentvolumeclaim", &claim.claim),
                ("storage_class", STORAGE_CLASS),
                ("plugin", PLUGIN),
            ]);
            let metrics = vec![
                otlp::gauge(
                    &catalog::POD_VOLUME_CAPACITY,
                    vec![clock.point(point.clone(), claim.capacity)],
                ),
                otlp::gauge(
                    &catalog::POD_VOLUME_USED,
                    vec![clock.point(point, used.round())],
                ),
            ];
            out.push(otlp::resource_metrics(
                otlp::resource(claim.resource.clone()),
                metrics,
                "simulated",
            ));
            listed.push((
                &claim.persistentvolume,
                &claim.claim,
                &claim.namespace,
                claim.capacity,
            ));
        }
        for volume in &self.unmounted {
            listed.push((
                &volume.persistentvolume,
                &volume.claim,
                &volume.namespace,
                volume.capacity,
            ));
        }
        let Some(reporter) = &self.reporter else {
            return;
        };
        let points = listed
            .into_iter()
            .map(|(pv, claim, namespace, capacity)| {
                clock.point(
                    attributes(&[
                        ("persistentvolume", pv),
                        ("persistentvolumeclaim", claim),
                        ("claim_namespace", namespace),
                        ("storage_class", STORAGE_CLASS),
                    ]),
                    capacity,
                )
            })
            .collect();
        out.push(otlp::resource_metrics(
            otlp::resource(reporter.clone()),
            vec![otlp::gauge(&catalog::PERSISTENTVOLUME_CAPACITY, points)],
            "simulated",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Fleet;
    use std::time::Duration;

    /// `(labels, value)` of every point of `name`, resource and point
    /// attributes together.
    fn points(
        request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        name: &str,
    ) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
        crate::simulate::tests::numbers(request, name)
    }

    #[test]
    fn volumes_are_planted_and_move_as_planned() {
        let step = Duration::from_secs(600);
        let t0 = 1_800_000_000_000_000_000;
        let mut fleet = Fleet::new(3, 7, t0);
        let first = fleet.step(t0 + 600_000_000_000, step);
        let second = fleet.step(t0 + 1_200_000_000_000, step);
        let used = |r| points(r, "tally_pod_volume_used_bytes");
        let (a, b) = (used(&first), used(&second));
        assert!(a.len() >= 4, "{a:?}");
        assert_eq!(a.len(), b.len());
        let gib = 1024.0 * 1024.0 * 1024.0;
        for ((labels, before), (_, after)) in a.iter().zip(&b) {
            let claim = &labels["persistentvolumeclaim"];
            assert_eq!(labels["storage_class"], "gp3");
            assert!(labels.contains_key("k8s.pod.uid"), "{labels:?}");
            if claim.starts_with("checkpoints-") {
                assert_eq!((*before, *after), (1434.0 * gib, 1434.0 * gib));
            } else {
                assert_ne!(before, after, "{claim} changes every step");
            }
        }
        assert!(
            a.iter()
                .any(|(l, _)| l["persistentvolumeclaim"].starts_with("scratch-"))
        );

        // The cluster's list holds every mounted volume and one more.
        let listed = points(&second, "tally_persistentvolume_capacity_bytes");
        assert_eq!(listed.len(), b.len() + 1);
        let unmounted: Vec<_> = listed
            .iter()
            .filter(|(l, _)| {
                !b.iter()
                    .any(|(m, _)| m["persistentvolume"] == l["persistentvolume"])
            })
            .collect();
        assert_eq!(unmounted.len(), 1);
        assert_eq!(unmounted[0].1, 500.0 * gib);

        // The same seed gives the same volumes.
        let mut again = Fleet::new(3, 7, t0);
        assert_eq!(again.step(t0 + 600_000_000_000, step), first);
    }
}
