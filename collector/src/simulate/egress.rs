//! Pod traffic by destination class, as the agent's conntrack source
//! reports it: every pod calls another pod (same node, same zone or
//! across zones, from where the two pods run); web pods are chatty with
//! model servers; data pods send to the internet, object storage and
//! another region; model servers download weights from the internet.

use std::collections::{BTreeMap, HashSet};

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use tally_schema::catalog;
use tally_schema::identity::ContainerIdentity;
use tally_schema::otlp;

use super::Rng;
use super::fleet::{Clock, Node, attributes};

/// Where a flow's bytes go.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// Another pod of the fleet (index into the pods) and the class of
    /// the path to it.
    Pod(usize, &'static str),
    /// Outside the cluster: the class and, for class service, its name.
    Outside(&'static str, &'static str),
}

const INTERNET: Peer = Peer::Outside("internet", "");
const S3: Peer = Peer::Outside("service", "s3");

/// A steady conversation, bytes per second at the daily mean.
struct Flow {
    from: usize,
    to: Peer,
    transmit: f64,
    receive: f64,
    phase: f64,
}

/// What a pod's counters are kept by: the destination labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Destination {
    class: &'static str,
    namespace: String,
    workload: String,
    service: &'static str,
}

struct Pod {
    node: usize,
    namespace: String,
    workload: String,
    serving: bool,
    resource: Vec<(&'static str, String)>,
    /// Cumulative (transmitted, received) bytes per destination.
    counters: BTreeMap<Destination, [f64; 2]>,
}

/// Every pod's traffic.
pub(super) struct Egress {
    pods: Vec<Pod>,
    flows: Vec<Flow>,
}

/// The class of traffic between pods on nodes `a` and `b`.
fn class_between(nodes: &[Node], a: usize, b: usize) -> &'static str {
    match (nodes.get(a), nodes.get(b)) {
        _ if a == b => "same_node",
        (Some(x), Some(y)) if x.identity.zone == y.identity.zone => "same_zone",
        (Some(x), Some(y)) if x.identity.region == y.identity.region => "cross_zone",
        _ => "cross_region",
    }
}

impl Egress {
    /// Plans the flows of every pod of `nodes`.
    pub fn new(rng: &mut Rng, nodes: &[Node]) -> Egress {
        Self::for_pods(rng, nodes, |_| true)
    }

    /// Plans the flows of the pods of `nodes` that `keep` accepts; their
    /// peers are among those pods only.
    pub fn for_pods(
        rng: &mut Rng,
        nodes: &[Node],
        keep: impl Fn(&ContainerIdentity) -> bool,
    ) -> Egress {
        let mut pods = Vec::new();
        let mut seen = HashSet::new();
        for (n, node) in nodes.iter().enumerate() {
            let node_attributes = node.attributes();
            for container in &node.containers {
                let id = &container.identity;
                if !keep(id) || !seen.insert(id.pod_uid.clone()) {
                    continue;
                }
                // The pod's resource: its identity without a container.
                let pod = ContainerIdentity {
                    container: String::new(),
                    container_id: String::new(),
                    ..id.clone()
                };
                let mut resource = node_attributes.clone();
                resource.extend(pod.resource_attributes());
                pods.push(Pod {
                    node: n,
                    namespace: id.namespace.clone(),
                    workload: id.workload_name.clone(),
                    serving: container.server.is_some(),
                    resource,
                    counters: BTreeMap::new(),
                });
            }
        }
        let servers: Vec<usize> = (0..pods.len()).filter(|&i| pods[i].serving).collect();
        let mut flows = Vec::new();
        let mut flow = |rng: &mut Rng, from: usize, to: Peer, transmit: f64, receive: f64| {
            flows.push(Flow {
                from,
                to,
                transmit,
                receive,
                phase: rng.unit() * std::f64::consts::TAU,
            });
        };
        for i in 0..pods.len() {
            let node = pods[i].node;
            // A call to another pod, usually on another node.
            match pick_peer(rng, &pods, i) {
                Some(j) => {
                    let class = class_between(nodes, node, pods[j].node);
                    let transmit = 5e3 + rng.unit() * 2e5;
                    flow(rng, i, Peer::Pod(j, class), transmit, transmit * 2.0);
                }
                None => flow(rng, i, INTERNET, 1e4, 2e4),
            }
            match pods[i].namespace.as_str() {
                // Chatty front ends: prompts out, completions back.
                "web" if !servers.is_empty() => {
                    let j = servers[rng.below(servers.len())];
                    let class = class_between(nodes, node, pods[j].node);
                    let transmit = 2e5 + rng.unit() * 8e5;
                    flow(rng, i, Peer::Pod(j, class), transmit, transmit * 3.0);
                }
                "data" => {
                    if rng.unit() < 0.5 {
                        let transmit = 2e5 + rng.unit() * 2e6;
                        flow(rng, i, INTERNET, transmit, 5e4);
                    }
                    flow(rng, i, S3, 1e6, 4e6);
                    if rng.unit() < 0.3 {
                        // Replication to a bucket in another region.
                        flow(rng, i, Peer::Outside("cross_region", ""), 3e5, 1e4);
                    }
                }
                // Checkpoints to object storage.
                "ml-training" => {
                    flow(rng, i, S3, 5e5, 2e6);
                }
                _ if pods[i].serving => {
                    // Weights pulled from a model hub instead of a cache.
                    flow(rng, i, INTERNET, 2e4, 2e5);
                }
                _ if rng.unit() < 0.15 => {
                    let transmit = 1e4 + rng.unit() * 1e5;
                    flow(rng, i, INTERNET, transmit, 1e4);
                }
                _ => {}
            }
        }
        Egress { pods, flows }
    }

    /// Advances one step; appends one resource per pod.
    pub fn step(&mut self, rng: &mut Rng, clock: &Clock, out: &mut Vec<ResourceMetrics>) {
        for flow in &self.flows {
            let seconds = clock.cycle(0.5, flow.phase) * (0.8 + rng.unit() * 0.4) * clock.step_s;
            let (transmit, receive) = (flow.transmit * seconds, flow.receive * seconds);
            let (namespace, workload) = match &self.pods.get(flow.from) {
                Some(pod) => (pod.namespace.clone(), pod.workload.clone()),
                None => continue,
            };
            let destination = match flow.to {
                Peer::Pod(j, class) => {
                    let Some(peer) = self.pods.get_mut(j) else {
                        continue;
                    };
                    // The peer sees the same bytes the other way round.
                    let back = Destination {
                        class,
                        namespace,
                        workload,
                        service: "",
                    };
                    add(&mut peer.counters, back, receive, transmit);
                    Destination {
                        class,
                        namespace: peer.namespace.clone(),
                        workload: peer.workload.clone(),
                        service: "",
                    }
                }
                Peer::Outside(class, service) => Destination {
                    class,
                    namespace: String::new(),
                    workload: String::new(),
                    service,
                },
            };
            if let Some(pod) = self.pods.get_mut(flow.from) {
                add(&mut pod.counters, destination, transmit, receive);
            }
        }
        for pod in &self.pods {
            if pod.counters.is_empty() {
                continue;
            }
            let points = |direction: usize| {
                pod.counters
                    .iter()
                    .map(|(d, bytes)| {
                        let mut labels = vec![("destination_class", d.class)];
                        for (key, value) in [
                            ("destination_namespace", d.namespace.as_str()),
                            ("destination_workload", d.workload.as_str()),
                            ("destination_service", d.service),
                        ] {
                            if !value.is_empty() {
                                labels.push((key, value));
                            }
                        }
                        clock.point(attributes(&labels), bytes[direction].round())
                    })
                    .collect()
            };
            out.push(otlp::resource_metrics(
                otlp::resource(pod.resource.clone()),
                vec![
                    otlp::cumulative_sum(&catalog::POD_NETWORK_TRANSMIT, points(0)),
                    otlp::cumulative_sum(&catalog::POD_NETWORK_RECEIVE, points(1)),
                ],
                "simulated",
            ));
        }
    }
}

/// Another pod for pod `i` to call: on another node seven times in ten
/// (when one is found in a few draws), else any other pod.
fn pick_peer(rng: &mut Rng, pods: &[Pod], i: usize) -> Option<usize> {
    if pods.len() < 2 {
        return None;
    }
    let remote = rng.unit() < 0.7;
    let mut any = i;
    for _ in 0..16 {
        let j = rng.below(pods.len());
        if j == i {
            continue;
        }
        any = j;
        if (pods[j].node != pods[i].node) == remote {
            return Some(j);
        }
    }
    Some(if any != i { any } else { (i + 1) % pods.len() })
}

fn add(
    counters: &mut BTreeMap<Destination, [f64; 2]>,
    destination: Destination,
    transmit: f64,
    receive: f64,
) {
    let entry = counters.entry(destination).or_insert([0.0; 2]);
    entry[0] += transmit;
    entry[1] += receive;
}
