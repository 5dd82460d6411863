//! Per-flow counters turned into per-pod byte counters by destination.
//!
//! Conntrack counters are cumulative per connection. The ledger keeps
//! each live connection's counters from the last read and adds the
//! difference to the owning pod's totals: on every dump, and once more
//! from the DESTROY event that carries a connection's final counters, so
//! a connection that starts and ends between two dumps is still counted.
//! The first dump only sets the baseline (bytes sent before the agent
//! started are not counted again after a restart).

use std::collections::HashMap;

use tally_schema::identity::ContainerIdentity;

use super::classify::{Destination, Rules, Topology};
use super::flow::Flow;

/// One side of a connection that belongs to a local owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Side {
    /// Index into the ledger's keys.
    key: u32,
    /// The owner sent the original direction (it opened the connection).
    sends_original: bool,
}

/// Who on this node each end of a connection is (both ends for traffic
/// between two local pods).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Route {
    sides: [Option<Side>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    original: u64,
    reply: u64,
    /// The dump that last saw it.
    seen: u32,
    /// The topology its route was computed with.
    topology: u32,
    route: Route,
}

/// Figures of the last dump and running totals, for the source's own
/// metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections in the last dump.
    pub tracked: u64,
    /// Connections of the last dump without counters (created while
    /// accounting was off).
    pub uncounted: u64,
    /// Connections of the last dump with no end on this node (forwarded
    /// traffic).
    pub unattributed: u64,
    /// DESTROY events read.
    pub destroyed: u64,
    /// Connections that left the table with no DESTROY event read (their
    /// last bytes are missing).
    pub vanished: u64,
}

/// One owner's bytes to one destination since the agent started.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// The pod (container fields empty), or the node itself
    /// (`workload_kind` `Node`) for traffic of host processes.
    pub owner: ContainerIdentity,
    /// The other end.
    pub destination: Destination,
    /// Bytes the owner sent.
    pub transmit_bytes: u64,
    /// Bytes the owner received.
    pub receive_bytes: u64,
    /// The owner's address (a pod's IP; the node's addresses,
    /// comma-separated), reported so other nodes can place it.
    pub address: String,
}

impl Traffic {
    /// Label values in the order of the `tally_pod_network_*` families.
    pub fn labels<'a>(&'a self, node: &'a str) -> [crate::exposition::Pair<'a>; 10] {
        let o = &self.owner;
        let d = &self.destination;
        [
            ("node", node),
            ("namespace", &o.namespace),
            ("pod", &o.pod),
            ("workload_kind", &o.workload_kind),
            ("workload_name", &o.workload_name),
            ("pod_uid", &o.pod_uid),
            ("destination_class", d.class.as_str()),
            ("destination_namespace", &d.namespace),
            ("destination_workload", &d.workload),
            ("destination_service", &d.service),
        ]
    }

    /// OTLP data-point attributes (the pod is the resource); empty values
    /// are left out.
    pub fn point_attributes(&self) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        let d = &self.destination;
        [
            ("destination_class", d.class.as_str()),
            ("destination_namespace", &*d.namespace),
            ("destination_workload", &*d.workload),
            ("destination_service", &*d.service),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| tally_schema::otlp::string_attribute(key, value))
        .collect()
    }

    /// The resource attributes of the owner: the pod's, or the node's
    /// name with `tally.owner` `node` for host traffic.
    pub fn resource_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = self.owner.resource_attributes();
        if self.owner.workload_kind == "Node" {
            attributes.push(("tally.workload.kind", "Node".to_owned()));
            if !self.address.is_empty() {
                attributes.push(("host.ip", self.address.clone()));
            }
        } else if !self.address.is_empty() {
            attributes.push(("k8s.pod.ip", self.address.clone()));
        }
        attributes
    }
}

/// Dumps a connection may be missing from before it is forgotten: one
/// interrupted or racing dump must not make it count twice.
const MISSED_DUMPS: u32 = 2;

/// The ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    flows: HashMap<super::flow::FlowKey, Entry>,
    dump: u32,
    primed: bool,
    topology: u32,
    owners: Vec<ContainerIdentity>,
    addresses: Vec<String>,
    owner_index: HashMap<String, u32>,
    keys: Vec<(u32, Destination)>,
    key_index: HashMap<(u32, Destination), u32>,
    totals: Vec<[u64; 2]>,
    stats: Stats,
}

impl Ledger {
    /// The owner id of `identity`, keyed by pod UID (the node by its
    /// workload name).
    pub fn owner(&mut self, identity: &ContainerIdentity) -> u32 {
        let key = if identity.pod_uid.is_empty() {
            format!("{}/{}", identity.workload_kind, identity.workload_name)
        } else {
            identity.pod_uid.clone()
        };
        if let Some(id) = self.owner_index.get(&key) {
            // Names arrive once the pod watch knows the pod.
            let id = *id;
            if let Some(known) = self.owners.get_mut(id as usize)
                && known != identity
            {
                *known = identity.clone();
            }
            return id;
        }
        let id = self.owners.len() as u32;
        self.owners.push(identity.clone());
        self.addresses.push(String::new());
        self.owner_index.insert(key, id);
        id
    }

    /// Records an owner's address.
    pub fn set_address(&mut self, owner: u32, address: &str) {
        if let Some(known) = self.addresses.get_mut(owner as usize)
            && known != address
        {
            *known = address.to_owned();
        }
    }

    /// Owners so far (the index is the owner id).
    pub fn owners(&self) -> usize {
        self.owners.len()
    }

    /// The topology changed: routes are computed again as connections are
    /// next seen.
    pub fn topology_changed(&mut self) {
        self.topology = self.topology.wrapping_add(1);
    }

    /// Starts a dump.
    pub fn begin_dump(&mut self) {
        self.dump = self.dump.wrapping_add(1);
        self.stats.tracked = 0;
        self.stats.uncounted = 0;
        self.stats.unattributed = 0;
    }

    /// Ends a dump: connections missing from the last dumps are
    /// forgotten, unless this dump was interrupted (they may be there).
    pub fn end_dump(&mut self, interrupted: bool) {
        self.primed = true;
        if interrupted {
            return;
        }
        let dump = self.dump;
        let before = self.flows.len();
        self.flows
            .retain(|_, entry| dump.wrapping_sub(entry.seen) < MISSED_DUMPS);
        self.stats.vanished += (before - self.flows.len()) as u64;
    }

    fn intern(&mut self, owner: u32, destination: Destination) -> u32 {
        let key = (owner, destination);
        if let Some(index) = self.key_index.get(&key) {
            return *index;
        }
        let index = self.keys.len() as u32;
        self.keys.push(key.clone());
        self.key_index.insert(key, index);
        self.totals.push([0; 2]);
        index
    }

    fn route(&mut self, flow: &Flow, topology: &Topology, rules: &Rules, node: u32) -> Route {
        let initiator = flow.key.original.src;
        // After DNAT the reply comes from the real peer.
        let responder = flow.reply.src;
        let owner_of = |address| {
            topology
                .local_pods
                .get(&address)
                .map(|index| *index as u32)
                .or_else(|| topology.host_addresses.contains(&address).then_some(node))
        };
        let first = owner_of(initiator);
        let second = owner_of(responder).or_else(|| {
            topology
                .host_addresses
                .contains(&flow.key.original.dst)
                .then_some(node)
        });
        // The node talking to itself is not network traffic.
        if first == Some(node) && second == Some(node) {
            return Route::default();
        }
        let mut route = Route::default();
        if let Some(owner) = first {
            let destination = topology.classify(rules, responder);
            route.sides[0] = Some(Side {
                key: self.intern(owner, destination),
                sends_original: true,
            });
        }
        if let Some(owner) = second {
            let destination = topology.classify(rules, initiator);
            route.sides[1] = Some(Side {
                key: self.intern(owner, destination),
                sends_original: false,
            });
        }
        route
    }

    /// One connection from a dump or, `destroyed`, from a DESTROY event
    /// (then forgotten). `node` is the owner id of the node itself.
    pub fn observe(
        &mut self,
        flow: &Flow,
        destroyed: bool,
        topology: &Topology,
        rules: &Rules,
        node: u32,
    ) {
        if destroyed {
            self.stats.destroyed += 1;
        } else {
            self.stats.tracked += 1;
        }
        let (Some(original), Some(reply)) = (flow.original_counters, flow.reply_counters) else {
            if !destroyed {
                self.stats.uncounted += 1;
            }
            return;
        };
        let (original, reply) = (original.bytes, reply.bytes);
        let known = self.flows.get(&flow.key).copied();
        let (delta, mut route, fresh) = match known {
            // Counters only grow: lower ones are a new connection that
            // reuses the tuple.
            Some(entry) if original >= entry.original && reply >= entry.reply => (
                [original - entry.original, reply - entry.reply],
                entry.route,
                entry.topology == self.topology,
            ),
            Some(_) => ([original, reply], Route::default(), false),
            // A connection open before the first dump: baseline only.
            None if !self.primed => ([0, 0], Route::default(), false),
            None => ([original, reply], Route::default(), false),
        };
        if !fresh {
            route = self.route(flow, topology, rules, node);
        }
        if route == Route::default() && !destroyed {
            self.stats.unattributed += 1;
        }
        for side in route.sides.into_iter().flatten() {
            let totals = &mut self.totals[side.key as usize];
            let (sent, received) = if side.sends_original {
                (delta[0], delta[1])
            } else {
                (delta[1], delta[0])
            };
            totals[0] += sent;
            totals[1] += received;
        }
        if destroyed {
            self.flows.remove(&flow.key);
        } else {
            self.flows.insert(
                flow.key,
                Entry {
                    original,
                    reply,
                    seen: self.dump,
                    topology: self.topology,
                    route,
                },
            );
        }
    }

    /// Connections held.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The counters of the last dump and the running totals.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Every owner's bytes by destination, where any were counted.
    pub fn traffic(&self) -> Vec<Traffic> {
        self.keys
            .iter()
            .zip(&self.totals)
            .filter(|(_, totals)| totals[0] > 0 || totals[1] > 0)
            .map(|((owner, destination), totals)| Traffic {
                owner: self.owners[*owner as usize].clone(),
                destination: destination.clone(),
                transmit_bytes: totals[0],
                receive_bytes: totals[1],
                address: self.addresses[*owner as usize].clone(),
            })
            .collect()
    }

    /// Forgets the totals of owners `keep` refuses (pods gone from the
    /// node); routes are computed again.
    pub fn retain_owners(&mut self, keep: impl Fn(&ContainerIdentity) -> bool) {
        let dropped: Vec<bool> = self.owners.iter().map(|o| !keep(o)).collect();
        if !dropped.iter().any(|d| *d) {
            return;
        }
        let old_keys = std::mem::take(&mut self.keys);
        let old_totals = std::mem::take(&mut self.totals);
        self.key_index.clear();
        for ((owner, destination), totals) in old_keys.into_iter().zip(old_totals) {
            if dropped[owner as usize] {
                continue;
            }
            let index = self.intern(owner, destination);
            self.totals[index as usize] = totals;
        }
        // Owner ids stay (the index is cheap); their routes are rebuilt.
        for entry in self.flows.values_mut() {
            entry.route = Route::default();
        }
        self.topology_changed();
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::classify::{Class, Workload};
    use super::super::flow::{Counters, FlowKey, Tuple};
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn flow(src: &str, dst: &str, reply_src: &str, port: u16, sent: u64, got: u64) -> Flow {
        Flow {
            key: FlowKey {
                protocol: 6,
                zone: 0,
                original: Tuple {
                    src: ip(src),
                    dst: ip(dst),
                    src_port: port,
                    dst_port: 80,
                },
            },
            reply: Tuple {
                src: ip(reply_src),
                dst: ip(src),
                src_port: 80,
                dst_port: port,
            },
            original_counters: Some(Counters {
                packets: 1,
                bytes: sent,
            }),
            reply_counters: Some(Counters {
                packets: 1,
                bytes: got,
            }),
        }
    }

    fn pod(uid: &str, name: &str) -> ContainerIdentity {
        ContainerIdentity {
            namespace: "shop".into(),
            pod: name.into(),
            workload_kind: "Deployment".into(),
            workload_name: name.into(),
            pod_uid: uid.into(),
            ..Default::default()
        }
    }

    fn setup() -> (Ledger, Topology, u32) {
        let mut ledger = Ledger::default();
        let node = ledger.owner(&ContainerIdentity {
            workload_kind: "Node".into(),
            workload_name: "n1".into(),
            ..Default::default()
        });
        let mut topology = Topology::default();
        topology.local_workloads.push(Workload::default());
        for (uid, name, address) in [("u1", "cart", "10.244.0.5"), ("u2", "db", "10.244.0.6")] {
            let id = ledger.owner(&pod(uid, name));
            topology.local_pods.insert(ip(address), id as usize);
            topology.local_workloads.push(Workload {
                namespace: "shop".into(),
                name: name.into(),
            });
        }
        topology.host_addresses.insert(ip("10.0.0.10"));
        (ledger, topology, node)
    }

    fn bytes(ledger: &Ledger, pod: &str, class: Class) -> (u64, u64) {
        ledger
            .traffic()
            .iter()
            .filter(|t| t.owner.pod == pod && t.destination.class == class)
            .fold((0, 0), |(s, r), t| {
                (s + t.transmit_bytes, r + t.receive_bytes)
            })
    }

    #[test]
    fn deltas_between_dumps_and_final_counters_from_events() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        // Open before the agent: baseline only.
        ledger.begin_dump();
        ledger.observe(
            &flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 1, 1000, 50),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::Internet), (0, 0));
        ledger.begin_dump();
        ledger.observe(
            &flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 1, 1500, 80),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::Internet), (500, 30));
        // Started and ended between two dumps: only the event sees it.
        ledger.observe(
            &flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 2, 7000, 100),
            true,
            &topology,
            &rules,
            node,
        );
        // The first connection's last bytes come with its event.
        ledger.observe(
            &flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 1, 1600, 90),
            true,
            &topology,
            &rules,
            node,
        );
        assert_eq!(
            bytes(&ledger, "cart", Class::Internet),
            (500 + 7000 + 100, 30 + 100 + 10)
        );
        assert_eq!(ledger.flows(), 0);
        assert_eq!(ledger.stats().destroyed, 2);
    }

    #[test]
    fn both_local_ends_are_counted_and_dnat_is_followed() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        ledger.begin_dump();
        ledger.end_dump(false);
        // cart → a ClusterIP, DNAT'ed to db on this node.
        ledger.begin_dump();
        ledger.observe(
            &flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 400, 9000),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::SameNode), (400, 9000));
        assert_eq!(bytes(&ledger, "db", Class::SameNode), (9000, 400));
        let cart = ledger
            .traffic()
            .into_iter()
            .find(|t| t.owner.pod == "cart")
            .unwrap();
        assert_eq!(&*cart.destination.workload, "db");
    }

    #[test]
    fn host_traffic_goes_to_the_node_and_forwarded_traffic_to_no_one() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        ledger.begin_dump();
        ledger.end_dump(false);
        ledger.begin_dump();
        ledger.observe(
            &flow("10.0.0.10", "93.184.216.34", "93.184.216.34", 4, 300, 20),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.observe(
            &flow("10.9.0.1", "10.9.0.2", "10.9.0.2", 5, 300, 20),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.observe(
            &flow("10.0.0.10", "10.0.0.10", "10.0.0.10", 6, 300, 20),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        let node_traffic: Vec<_> = ledger
            .traffic()
            .into_iter()
            .filter(|t| t.owner.workload_kind == "Node")
            .collect();
        assert_eq!(node_traffic.len(), 1);
        assert_eq!(node_traffic[0].transmit_bytes, 300);
        assert_eq!(ledger.stats().unattributed, 2);
    }

    #[test]
    fn a_reused_tuple_and_a_missed_dump_do_not_double_count() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        ledger.begin_dump();
        ledger.end_dump(false);
        let f = |sent| flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 7, sent, 0);
        ledger.begin_dump();
        ledger.observe(&f(1000), false, &topology, &rules, node);
        ledger.end_dump(false);
        // Missing from one dump (a race): kept.
        ledger.begin_dump();
        ledger.end_dump(false);
        ledger.begin_dump();
        ledger.observe(&f(1200), false, &topology, &rules, node);
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::Internet).0, 1200);
        // A new connection on the same tuple starts below the old counters.
        ledger.begin_dump();
        ledger.observe(&f(100), false, &topology, &rules, node);
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::Internet).0, 1300);
        // Gone from two dumps without an event: forgotten and counted.
        for _ in 0..2 {
            ledger.begin_dump();
            ledger.end_dump(false);
        }
        assert_eq!(ledger.flows(), 0);
        assert_eq!(ledger.stats().vanished, 1);
    }

    #[test]
    fn uncounted_connections_give_no_numbers() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        let mut f = flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 8, 0, 0);
        f.original_counters = None;
        f.reply_counters = None;
        ledger.begin_dump();
        ledger.end_dump(false);
        ledger.begin_dump();
        ledger.observe(&f, false, &topology, &rules, node);
        ledger.end_dump(false);
        assert!(ledger.traffic().is_empty());
        assert_eq!(ledger.stats().uncounted, 1);
    }

    #[test]
    fn owners_gone_are_forgotten() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        ledger.begin_dump();
        ledger.end_dump(false);
        ledger.begin_dump();
        ledger.observe(
            &flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 400, 9000),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        ledger.retain_owners(|o| o.pod != "db");
        assert!(ledger.traffic().iter().all(|t| t.owner.pod != "db"));
        assert_eq!(bytes(&ledger, "cart", Class::SameNode), (400, 9000));
        ledger.begin_dump();
        ledger.observe(
            &flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 500, 9000),
            false,
            &topology,
            &rules,
            node,
        );
        ledger.end_dump(false);
        assert_eq!(bytes(&ledger, "cart", Class::SameNode), (500, 9000));
    }
}
