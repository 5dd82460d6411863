//! One conntrack entry, as both readers (netlink and procfs) deliver it.

use std::net::IpAddr;

/// One direction's addresses and ports (ICMP and other port-less
/// protocols carry 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// What identifies a live entry: the kernel hashes entries on the same
/// fields, so two live entries never share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, …).
    pub protocol: u8,
    /// Conntrack zone (0 unless a CNI separates zones).
    pub zone: u16,
    /// The tuple as the first packet had it.
    pub original: Tuple,
}

/// Packet and byte counters of one direction (IP bytes, headers included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One entry with its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Its identity.
    pub key: FlowKey,
    /// The reply direction's tuple: after NAT, its source is the real
    /// peer of a DNAT'ed connection and its destination the node for a
    /// SNAT'ed one.
    pub reply: Tuple,
    /// Counters of the original direction; `None` when the entry was
    /// created while accounting was off (it never gets counters).
    pub original_counters: Option<Counters>,
    /// Counters of the reply direction.
    pub reply_counters: Option<Counters>,
}
