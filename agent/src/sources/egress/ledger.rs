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
use std::net::IpAddr;

use tally_schema::identity::ContainerIdentity;

use super::classify::{Destination, Rules, Topology};
use super::flow::Flow;
use super::hash::{FastMap, FlowMap, flow_hash};
use super::owner::SocketKey;

/// No owner on this side.
const NO_SIDE: u32 = u32::MAX;

/// Who on this node each end of a connection is, as indices into the
/// ledger's keys: `[0]` opened it (sends the original direction), `[1]`
/// answered (sends the reply); both for traffic between two local pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route([u32; 2]);

impl Default for Route {
    fn default() -> Self {
        Route([NO_SIDE; 2])
    }
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
    /// Live connections by [`flow_hash`].
    flows: FlowMap<Entry>,
    dump: u32,
    primed: bool,
    topology: u32,
    owners: Vec<ContainerIdentity>,
    addresses: Vec<String>,
    owner_index: HashMap<String, u32>,
    /// (owner, destination id) of each key.
    keys: Vec<(u32, u32)>,
    key_index: FastMap<(u32, u32), u32>,
    destinations: Vec<Destination>,
    destination_index: HashMap<Destination, u32>,
    /// Peer address → destination id, for the current topology.
    peers: FastMap<IpAddr, u32>,
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

    /// The owners that have counted bytes (one per destination they
    /// have), without copying the totals out.
    pub fn counted_owners(&self) -> impl Iterator<Item = &ContainerIdentity> {
        self.keys
            .iter()
            .map(|(owner, _)| &self.owners[*owner as usize])
    }

    /// Owners so far (the index is the owner id).
    pub fn owners(&self) -> usize {
        self.owners.len()
    }

    /// The topology changed: routes are computed again as connections are
    /// next seen.
    pub fn topology_changed(&mut self) {
        self.topology = self.topology.wrapping_add(1);
        self.peers.clear();
    }

    /// Makes room for `connections` (the kernel's table count, read
    /// before the dump): growing a large table mid-dump rehashes it.
    pub fn reserve(&mut self, connections: usize) {
        if connections > self.flows.len() {
            self.flows.reserve(connections - self.flows.len());
        }
    }

    /// Starts a dump.
    pub fn begin_dump(&mut self) {
        self.dump = self.dump.wrapping_add(1);
        let expected = self.stats.tracked as usize;
        self.reserve(expected);
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

    fn intern(&mut self, owner: u32, destination: u32) -> u32 {
        let key = (owner, destination);
        if let Some(index) = self.key_index.get(&key) {
            return *index;
        }
        let index = self.keys.len() as u32;
        self.keys.push(key);
        self.key_index.insert(key, index);
        self.totals.push([0; 2]);
        index
    }

    /// The destination id of `peer`, classified once per topology.
    fn destination(&mut self, topology: &Topology, rules: &Rules, peer: IpAddr) -> u32 {
        if let Some(id) = self.peers.get(&peer) {
            return *id;
        }
        let destination = topology.classify(rules, peer);
        let id = match self.destination_index.get(&destination) {
            Some(id) => *id,
            None => {
                let id = self.destinations.len() as u32;
                self.destinations.push(destination.clone());
                self.destination_index.insert(destination, id);
                id
            }
        };
        self.peers.insert(peer, id);
        id
    }

    fn route(&mut self, flow: &Flow, topology: &Topology, rules: &Rules, node: u32) -> Route {
        let initiator = flow.key.original.src;
        // After DNAT the reply comes from the real peer.
        let responder = flow.reply.src;
        let protocol = flow.key.protocol;
        // The node talking to itself (loopback included) is not network
        // traffic.
        if topology.host_addresses.contains(&initiator)
            && topology.host_addresses.contains(&responder)
        {
            return Route::default();
        }
        // A host address is a host-network pod's when the kernel names
        // the socket's holder, else the node's.
        let owner_of = |address: IpAddr, socket: SocketKey| {
            if let Some(index) = topology.local_pods.get(&address) {
                return Some(*index as u32);
            }
            if !topology.host_addresses.contains(&address) {
                return None;
            }
            let pod = match protocol {
                6 | 17 => topology.host_sockets.borrow_mut().owner(&socket),
                _ => None,
            };
            Some(pod.map_or(node, |owner| owner as u32))
        };
        // The initiator's socket is connected to the address it dialled
        // (before DNAT); the responder's faces the reply tuple.
        let first = owner_of(
            initiator,
            SocketKey {
                protocol,
                local: initiator,
                local_port: flow.key.original.src_port,
                remote: flow.key.original.dst,
                remote_port: flow.key.original.dst_port,
            },
        );
        let responder_socket = SocketKey {
            protocol,
            local: responder,
            local_port: flow.reply.src_port,
            remote: flow.reply.dst,
            remote_port: flow.reply.dst_port,
        };
        let second = owner_of(responder, responder_socket).or_else(|| {
            topology
                .host_addresses
                .contains(&flow.key.original.dst)
                .then_some(node)
        });
        let mut route = Route::default();
        if let Some(owner) = first {
            let destination = self.destination(topology, rules, responder);
            route.0[0] = self.intern(owner, destination);
        }
        if let Some(owner) = second {
            let destination = self.destination(topology, rules, initiator);
            route.0[1] = self.intern(owner, destination);
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
        let hash = flow_hash(&flow.key);
        let (dump, topology_now, primed) = (self.dump, self.topology, self.primed);
        // One probe for a known connection whose route is current (the
        // common case); the table is too large for the cache.
        let (delta, known_route) = match self.flows.get_mut(&hash) {
            // Counters only grow: lower ones are a new connection that
            // reuses the tuple.
            Some(entry) if original >= entry.original && reply >= entry.reply => {
                let delta = [original - entry.original, reply - entry.reply];
                entry.original = original;
                entry.reply = reply;
                entry.seen = dump;
                let route = (entry.topology == topology_now).then_some(entry.route);
                (delta, route)
            }
            Some(_) => ([original, reply], None),
            // A connection open before the first dump: baseline only.
            None if !primed => ([0, 0], None),
            None => ([original, reply], None),
        };
        let route = match known_route {
            Some(route) => route,
            None => {
                let route = self.route(flow, topology, rules, node);
                if !destroyed {
                    self.flows.insert(
                        hash,
                        Entry {
                            original,
                            reply,
                            seen: dump,
                            topology: topology_now,
                            route,
                        },
                    );
                }
                route
            }
        };
        if route == Route::default() && !destroyed {
            self.stats.unattributed += 1;
        }
        if route.0[0] != NO_SIDE {
            let totals = &mut self.totals[route.0[0] as usize];
            totals[0] += delta[0];
            totals[1] += delta[1];
        }
        if route.0[1] != NO_SIDE {
            let totals = &mut self.totals[route.0[1] as usize];
            totals[0] += delta[1];
            totals[1] += delta[0];
        }
        if destroyed {
            self.flows.remove(&hash);
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
                destination: self.destinations[*destination as usize].clone(),
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
        // Owner and destination ids stay (the indices are cheap); routes
        // are rebuilt.
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

    /// One dump holding `flows`.
    fn dump(ledger: &mut Ledger, flows: &[Flow], topology: &Topology, rules: &Rules, node: u32) {
        ledger.begin_dump();
        for flow in flows {
            ledger.observe(flow, false, topology, rules, node);
        }
        ledger.end_dump(false);
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
        dump(
            &mut ledger,
            &[flow(
                "10.244.0.5",
                "93.184.216.34",
                "93.184.216.34",
                1,
                1000,
                50,
            )],
            &topology,
            &rules,
            node,
        );
        assert_eq!(bytes(&ledger, "cart", Class::Internet), (0, 0));
        dump(
            &mut ledger,
            &[flow(
                "10.244.0.5",
                "93.184.216.34",
                "93.184.216.34",
                1,
                1500,
                80,
            )],
            &topology,
            &rules,
            node,
        );
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
        dump(&mut ledger, &[], &topology, &rules, node);
        // cart → a ClusterIP, DNAT'ed to db on this node.
        dump(
            &mut ledger,
            &[flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 400, 9000)],
            &topology,
            &rules,
            node,
        );
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
        dump(&mut ledger, &[], &topology, &rules, node);
        dump(
            &mut ledger,
            &[
                flow("10.0.0.10", "93.184.216.34", "93.184.216.34", 4, 300, 20),
                flow("10.9.0.1", "10.9.0.2", "10.9.0.2", 5, 300, 20),
                flow("10.0.0.10", "10.0.0.10", "10.0.0.10", 6, 300, 20),
            ],
            &topology,
            &rules,
            node,
        );
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
        dump(&mut ledger, &[], &topology, &rules, node);
        let f = |sent| flow("10.244.0.5", "93.184.216.34", "93.184.216.34", 7, sent, 0);
        dump(&mut ledger, &[f(1000)], &topology, &rules, node);
        // Missing from one dump (a race): kept.
        dump(&mut ledger, &[], &topology, &rules, node);
        dump(&mut ledger, &[f(1200)], &topology, &rules, node);
        assert_eq!(bytes(&ledger, "cart", Class::Internet).0, 1200);
        // A new connection on the same tuple starts below the old counters.
        dump(&mut ledger, &[f(100)], &topology, &rules, node);
        assert_eq!(bytes(&ledger, "cart", Class::Internet).0, 1300);
        // Gone from two dumps without an event: forgotten and counted.
        for _ in 0..2 {
            dump(&mut ledger, &[], &topology, &rules, node);
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
        dump(&mut ledger, &[], &topology, &rules, node);
        dump(&mut ledger, &[f], &topology, &rules, node);
        assert!(ledger.traffic().is_empty());
        assert_eq!(ledger.stats().uncounted, 1);
    }

    #[test]
    fn owners_gone_are_forgotten() {
        let (mut ledger, topology, node) = setup();
        let rules = Rules::default();
        dump(&mut ledger, &[], &topology, &rules, node);
        dump(
            &mut ledger,
            &[flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 400, 9000)],
            &topology,
            &rules,
            node,
        );
        ledger.retain_owners(|o| o.pod != "db");
        assert!(ledger.traffic().iter().all(|t| t.owner.pod != "db"));
        assert_eq!(bytes(&ledger, "cart", Class::SameNode), (400, 9000));
        dump(
            &mut ledger,
            &[flow("10.244.0.5", "10.96.0.10", "10.244.0.6", 3, 500, 9000)],
            &topology,
            &rules,
            node,
        );
        assert_eq!(bytes(&ledger, "cart", Class::SameNode), (500, 9000));
    }
}
