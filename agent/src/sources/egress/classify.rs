//! Where a peer address is, as far as the bill cares: the same node, the
//! node's zone, another zone of its region, another region, the internet,
//! or a named service. Built from the node's own placement, the cluster's
//! nodes and pods (zone and region of every node), CIDR maps for subnets
//! and service ranges, and direct overrides.
//!
//! Unlike Kubecost's default, private ranges are never assumed to be in
//! the node's zone: a private address no map places is
//! `private_unmapped`, so a multi-zone cluster's cross-zone bill is not
//! hidden.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use super::hash::{FastMap, FastSet};

/// A destination class (the `destination_class` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A pod or process on this node (loopback and link-local too).
    SameNode,
    /// Another node in this node's zone.
    SameZone,
    /// Another zone of this node's region.
    CrossZone,
    /// Another region.
    CrossRegion,
    /// A public address no map names.
    Internet,
    /// A named service range (object storage, a VPC endpoint, …).
    Service,
    /// A private address that no map places: configure `egress.subnets`.
    PrivateUnmapped,
}

impl Class {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::SameNode => "same_node",
            Class::SameZone => "same_zone",
            Class::CrossZone => "cross_zone",
            Class::CrossRegion => "cross_region",
            Class::Internet => "internet",
            Class::Service => "service",
            Class::PrivateUnmapped => "private_unmapped",
        }
    }

    /// From its label value.
    pub fn parse(text: &str) -> Option<Class> {
        Some(match text.trim() {
            "same_node" => Class::SameNode,
            "same_zone" => Class::SameZone,
            "cross_zone" => Class::CrossZone,
            "cross_region" => Class::CrossRegion,
            "internet" => Class::Internet,
            "service" => Class::Service,
            "private_unmapped" => Class::PrivateUnmapped,
            _ => return None,
        })
    }
}

/// An address range; IPv4 is kept as IPv4-mapped IPv6 so one table holds
/// both families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u128,
    /// Prefix length in the 128-bit space.
    length: u8,
}

fn wide(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(length: u8) -> u128 {
    if length == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(length))
    }
}

impl Cidr {
    /// Whether `address` is inside.
    pub fn contains(&self, address: IpAddr) -> bool {
        wide(address) & mask(self.length) == self.base
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR"))?;
        let (offset, max) = match address {
            IpAddr::V4(_) => (96, 32),
            IpAddr::V6(_) => (0, 128),
        };
        let length: u8 = match length {
            Some(length) => length
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        let length = length + offset;
        Ok(Cidr {
            base: wide(address) & mask(length),
            length,
        })
    }
}

/// CIDRs with a value each; the longest match wins.
#[derive(Debug, Clone)]
pub struct CidrMap<T> {
    entries: Vec<(Cidr, T)>,
}

impl<T> Default for CidrMap<T> {
    fn default() -> Self {
        CidrMap {
            entries: Vec::new(),
        }
    }
}

impl<T> CidrMap<T> {
    /// A map of `entries`.
    pub fn new(mut entries: Vec<(Cidr, T)>) -> Self {
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.0.length));
        CidrMap { entries }
    }

    /// The value of the longest range holding `address`.
    pub fn get(&self, address: IpAddr) -> Option<&T> {
        let address = wide(address);
        self.entries
            .iter()
            .find(|(cidr, _)| address & mask(cidr.length) == cidr.base)
            .map(|(_, value)| value)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Region and zone; either may be unknown (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Place {
    /// Cloud region.
    pub region: Arc<str>,
    /// Availability zone.
    pub zone: Arc<str>,
}

/// A workload in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Its namespace.
    pub namespace: Arc<str>,
    /// Its top-level owner's name (the pod's name for a bare pod).
    pub name: Arc<str>,
}

/// A pod or node elsewhere in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remote {
    /// Where it runs.
    pub place: Place,
    /// The workload, for pods.
    pub workload: Option<Workload>,
}

/// The parsed `egress.direct`, `egress.services` and `egress.subnets`
/// maps.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Class overrides, checked first.
    pub direct: CidrMap<Class>,
    /// Service ranges: the name is the `destination_service` label.
    pub services: CidrMap<Arc<str>>,
    /// Subnets: their zone (and region, when not the node's).
    pub subnets: CidrMap<Place>,
}

/// One `CIDR=VALUE` entry.
fn entry(text: &str) -> Result<(Cidr, &str), String> {
    let (cidr, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not CIDR=VALUE"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{text:?} has no value"));
    }
    Ok((cidr.parse()?, value))
}

impl Rules {
    /// From the config's lists: `direct` entries `CIDR=CLASS`, `services`
    /// entries `CIDR=NAME`, `subnets` entries `CIDR=ZONE` (a zone of the
    /// node's region) or `CIDR=REGION/ZONE` (`REGION/` for a region
    /// without zones).
    pub fn parse(
        direct: &[String],
        services: &[String],
        subnets: &[String],
    ) -> Result<Rules, String> {
        let direct = direct
            .iter()
            .map(|text| {
                let (cidr, class) = entry(text)?;
                let class = Class::parse(class)
                    .ok_or_else(|| format!("{text:?}: unknown class {class:?}"))?;
                Ok((cidr, class))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let services = services
            .iter()
            .map(|text| entry(text).map(|(cidr, name)| (cidr, Arc::from(name))))
            .collect::<Result<Vec<_>, String>>()?;
        let subnets = subnets
            .iter()
            .map(|text| {
                let (cidr, place) = entry(text)?;
                let place = match place.split_once('/') {
                    Some((region, zone)) => Place {
                        region: Arc::from(region.trim()),
                        zone: Arc::from(zone.trim()),
                    },
                    None => Place {
                        region: Arc::from(""),
                        zone: Arc::from(place),
                    },
                };
                Ok((cidr, place))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Rules {
            direct: CidrMap::new(direct),
            services: CidrMap::new(services),
            subnets: CidrMap::new(subnets),
        })
    }
}

/// What the node knows of the cluster right now.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// This node's placement.
    pub place: Place,
    /// This node's own addresses (its network namespace's local
    /// addresses).
    pub host_addresses: FastSet<IpAddr>,
    /// Pods of this node by IP, with their index in the source's pod list
    /// (host-network pods are not here: they share the node's address).
    pub local_pods: FastMap<IpAddr, usize>,
    /// The workload of each local pod, by the same index.
    pub local_workloads: Vec<Workload>,
    /// Pods and nodes elsewhere in the cluster, by IP.
    pub remote: FastMap<IpAddr, Remote>,
    /// Host-network pods' sockets, read when a pass first needs them.
    pub host_sockets: std::cell::RefCell<super::owner::HostSockets>,
}

/// The other end of a flow, as labelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    /// Its class.
    pub class: Class,
    /// Its namespace, for a pod in the cluster.
    pub namespace: Arc<str>,
    /// Its workload, for a pod in the cluster.
    pub workload: Arc<str>,
    /// Its service name, for class `service`.
    pub service: Arc<str>,
}

fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Loopback, link-local and unspecified addresses: never off the node.
pub fn is_node_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_node_local(IpAddr::V4(v4));
            }
            v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified()
        }
    }
}

impl Topology {
    /// The class of traffic to a peer placed at `peer`, from this node.
    fn relative(&self, peer: &Place) -> Class {
        let node = &self.place;
        let region = if peer.region.is_empty() {
            &node.region
        } else {
            &peer.region
        };
        if !region.is_empty() && !node.region.is_empty() && *region != node.region {
            return Class::CrossRegion;
        }
        if peer.zone.is_empty() || node.zone.is_empty() {
            return Class::PrivateUnmapped;
        }
        if peer.zone == node.zone {
            Class::SameZone
        } else {
            Class::CrossZone
        }
    }

    /// Classifies `peer`.
    pub fn classify(&self, rules: &Rules, peer: IpAddr) -> Destination {
        let empty: Arc<str> = Arc::from("");
        let workload = |w: Option<&Workload>| match w {
            Some(w) => (w.namespace.clone(), w.name.clone()),
            None => (empty.clone(), empty.clone()),
        };
        let local = self
            .local_pods
            .get(&peer)
            .and_then(|index| self.local_workloads.get(*index));
        let remote = self.remote.get(&peer);
        let (namespace, workload_name) = match (local, remote) {
            (Some(w), _) => workload(Some(w)),
            (None, Some(r)) => workload(r.workload.as_ref()),
            _ => workload(None),
        };
        let make = |class: Class, service: Arc<str>| Destination {
            class,
            namespace: namespace.clone(),
            workload: workload_name.clone(),
            service,
        };
        if let Some(class) = rules.direct.get(peer) {
            return make(*class, empty.clone());
        }
        if local.is_some() || self.host_addresses.contains(&peer) || is_node_local(peer) {
            return make(Class::SameNode, empty.clone());
        }
        if let Some(remote) = remote {
            let mut place = remote.place.clone();
            if place.zone.is_empty()
                && let Some(subnet) = rules.subnets.get(peer)
            {
                place = subnet.clone();
            }
            return make(self.relative(&place), empty.clone());
        }
        if let Some(name) = rules.services.get(peer) {
            return make(Class::Service, name.clone());
        }
        if let Some(place) = rules.subnets.get(peer) {
            return make(self.relative(place), empty.clone());
        }
        if is_private(peer) {
            return make(Class::PrivateUnmapped, empty.clone());
        }
        make(Class::Internet, empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn place(region: &str, zone: &str) -> Place {
        Place {
            region: region.into(),
            zone: zone.into(),
        }
    }

    #[test]
    fn cidrs_match_by_longest_prefix_across_families() {
        let map = CidrMap::new(vec![
            ("10.0.0.0/8".parse().unwrap(), "wide"),
            ("10.0.1.0/24".parse().unwrap(), "narrow"),
            ("fd00::/8".parse().unwrap(), "ula"),
            ("0.0.0.0/0".parse().unwrap(), "any v4"),
        ]);
        assert_eq!(map.get(ip("10.0.1.7")), Some(&"narrow"));
        assert_eq!(map.get(ip("10.9.1.7")), Some(&"wide"));
        assert_eq!(map.get(ip("8.8.8.8")), Some(&"any v4"));
        assert_eq!(map.get(ip("fd12::1")), Some(&"ula"));
        assert_eq!(map.get(ip("2001:db8::1")), None, "0.0.0.0/0 is IPv4 only");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
        assert!("10.1.2.3".parse::<Cidr>().unwrap().contains(ip("10.1.2.3")));
    }

    #[test]
    fn rules_parse_and_refuse_bad_entries() {
        let rules = Rules::parse(
            &["10.9.0.0/16=same_zone".into()],
            &["52.216.0.0/15=s3".into()],
            &[
                "10.0.1.0/24=us-east-1a".into(),
                "10.20.0.0/16=us-west-2/us-west-2b".into(),
            ],
        )
        .unwrap();
        assert_eq!(rules.subnets.len(), 2);
        assert!(Rules::parse(&["10.0.0.0/8=nearby".into()], &[], &[]).is_err());
        assert!(Rules::parse(&[], &["52.0.0.0/8".into()], &[]).is_err());
        assert!(Rules::parse(&[], &[], &["10.0.0.0/8=".into()]).is_err());
    }

    #[test]
    fn classes_follow_the_nodes_place_and_never_assume_private_is_in_zone() {
        let rules = Rules::parse(
            &["10.0.9.9=internet".into()],
            &["52.216.0.0/15=s3".into()],
            &[
                "10.0.1.0/24=us-east-1a".into(),
                "10.0.2.0/24=us-east-1b".into(),
                "10.50.0.0/16=us-west-2/us-west-2a".into(),
            ],
        )
        .unwrap();
        let mut topology = Topology {
            place: place("us-east-1", "us-east-1a"),
            ..Topology::default()
        };
        topology.host_addresses.insert(ip("10.0.1.10"));
        topology.local_pods.insert(ip("10.244.1.5"), 0);
        topology.local_workloads.push(Workload {
            namespace: "shop".into(),
            name: "cart".into(),
        });
        topology.remote.insert(
            ip("10.244.7.3"),
            Remote {
                place: place("us-east-1", "us-east-1b"),
                workload: Some(Workload {
                    namespace: "shop".into(),
                    name: "db".into(),
                }),
            },
        );
        let class = |peer: &str| topology.classify(&rules, ip(peer)).class;
        assert_eq!(class("10.244.1.5"), Class::SameNode);
        assert_eq!(class("10.0.1.10"), Class::SameNode);
        assert_eq!(class("169.254.169.254"), Class::SameNode);
        assert_eq!(class("127.0.0.1"), Class::SameNode);
        assert_eq!(class("10.0.1.99"), Class::SameZone);
        assert_eq!(class("10.0.2.99"), Class::CrossZone);
        assert_eq!(class("10.50.3.3"), Class::CrossRegion);
        assert_eq!(class("10.0.9.9"), Class::Internet, "direct wins");
        assert_eq!(class("172.20.0.1"), Class::PrivateUnmapped);
        assert_eq!(class("100.64.0.1"), Class::PrivateUnmapped);
        assert_eq!(class("fd00::1"), Class::PrivateUnmapped);
        assert_eq!(class("93.184.216.34"), Class::Internet);
        let s3 = topology.classify(&rules, ip("52.217.1.1"));
        assert_eq!((s3.class, &*s3.service), (Class::Service, "s3"));
        let db = topology.classify(&rules, ip("10.244.7.3"));
        assert_eq!(
            (db.class, &*db.namespace, &*db.workload),
            (Class::CrossZone, "shop", "db")
        );
        let cart = topology.classify(&rules, ip("10.244.1.5"));
        assert_eq!(&*cart.workload, "cart");
    }

    #[test]
    fn an_unplaced_node_cannot_tell_zones_apart() {
        let rules = Rules::parse(&[], &[], &["10.0.2.0/24=zone-b".into()]).unwrap();
        let topology = Topology::default();
        assert_eq!(
            topology.classify(&rules, ip("10.0.2.4")).class,
            Class::PrivateUnmapped
        );
    }
}
