//! The kernel's connection tracking over ctnetlink: a dump of the table
//! and the DESTROY events that carry the final counters of connections
//! that end between two dumps.
//!
//! Only CAP_NET_ADMIN in the network namespace is needed, not a
//! privileged container. The wire format is `linux/netfilter/nfnetlink.h`
//! and `nfnetlink_conntrack.h`; parsing is a pure function over received
//! bytes so it is tested (and fuzzed) without a kernel.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

use super::flow::{Counters, Flow, FlowKey, Tuple};

const NLMSG_HEADER: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
/// `NFNLGRP_CONNTRACK_DESTROY` (3) as a bind mask.
const DESTROY_GROUP_MASK: u32 = 1 << (3 - 1);

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_COUNTERS32_PACKETS: u16 = 3;
const CTA_COUNTERS32_BYTES: u16 = 4;
/// Attribute type bits that are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One thing a received datagram said.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A table entry (dump) or a finished one (`destroyed`, an event).
    Flow {
        /// The entry.
        flow: Flow,
        /// From a DESTROY event: its counters are final.
        destroyed: bool,
    },
    /// The table changed under the dump (`NLM_F_DUMP_INTR`): entries
    /// may be missing from it.
    Interrupted,
    /// The dump ended.
    Done,
    /// The kernel refused the request (a negative errno).
    Error(i32),
    /// A message that could not be read, with what was wrong.
    Malformed(&'static str),
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_ne(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Netlink attributes of `bytes`: (type without flags, payload).
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), &'static str>> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = usize::from(u16_ne(bytes));
        let kind = u16_ne(&bytes[2..]) & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            bytes = &[];
            return Some(Err("attribute length"));
        }
        let payload = &bytes[4..len];
        bytes = &bytes[align4(len).min(bytes.len())..];
        Some(Ok((kind, payload)))
    })
}

fn be_u16(b: &[u8]) -> Result<u16, &'static str> {
    b.get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or("short u16")
}

fn be_u64(b: &[u8]) -> Result<u64, &'static str> {
    match b.len() {
        8 => Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ])),
        4 => Ok(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        _ => Err("counter length"),
    }
}

fn address(b: &[u8]) -> Result<IpAddr, &'static str> {
    match b.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => Err("address length"),
    }
}

/// A tuple and its protocol number.
fn tuple(bytes: &[u8]) -> Result<(Tuple, u8), &'static str> {
    let (mut src, mut dst, mut protocol) = (None, None, None);
    let (mut src_port, mut dst_port) = (0, 0);
    for attribute in attributes(bytes) {
        let (kind, payload) = attribute?;
        match kind {
            CTA_TUPLE_IP => {
                for inner in attributes(payload) {
                    let (kind, payload) = inner?;
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(address(payload)?),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(address(payload)?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for inner in attributes(payload) {
                    let (kind, payload) = inner?;
                    match kind {
                        CTA_PROTO_NUM => protocol = payload.first().copied(),
                        CTA_PROTO_SRC_PORT => src_port = be_u16(payload)?,
                        CTA_PROTO_DST_PORT => dst_port = be_u16(payload)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match (src, dst, protocol) {
        (Some(src), Some(dst), Some(protocol)) => Ok((
            Tuple {
                src,
                dst,
                src_port,
                dst_port,
            },
            protocol,
        )),
        _ => Err("tuple without addresses or protocol"),
    }
}

fn counters(bytes: &[u8]) -> Result<Counters, &'static str> {
    let mut out = Counters::default();
    for attribute in attributes(bytes) {
        let (kind, payload) = attribute?;
        match kind {
            CTA_COUNTERS_PACKETS | CTA_COUNTERS32_PACKETS => out.packets = be_u64(payload)?,
            CTA_COUNTERS_BYTES | CTA_COUNTERS32_BYTES => out.bytes = be_u64(payload)?,
            _ => {}
        }
    }
    Ok(out)
}

/// One conntrack message's attributes (after the 4-byte `nfgenmsg`).
pub fn parse_entry(bytes: &[u8]) -> Result<Flow, &'static str> {
    let (mut original, mut reply) = (None, None);
    let (mut original_counters, mut reply_counters) = (None, None);
    let mut zone = 0;
    for attribute in attributes(bytes) {
        let (kind, payload) = attribute?;
        match kind {
            CTA_TUPLE_ORIG => original = Some(tuple(payload)?),
            CTA_TUPLE_REPLY => reply = Some(tuple(payload)?.0),
            CTA_COUNTERS_ORIG => original_counters = Some(counters(payload)?),
            CTA_COUNTERS_REPLY => reply_counters = Some(counters(payload)?),
            CTA_ZONE => zone = be_u16(payload)?,
            _ => {}
        }
    }
    let ((original, protocol), reply) = match (original, reply) {
        (Some(original), Some(reply)) => (original, reply),
        _ => return Err("entry without both tuples"),
    };
    Ok(Flow {
        key: FlowKey {
            protocol,
            zone,
            original,
        },
        reply,
        original_counters,
        reply_counters,
    })
}

/// Every message of one received datagram, in order.
pub fn parse_datagram(mut bytes: &[u8], each: &mut impl FnMut(Message)) {
    while bytes.len() >= NLMSG_HEADER {
        let len = u32_ne(bytes) as usize;
        if len < NLMSG_HEADER || len > bytes.len() {
            each(Message::Malformed("message length"));
            return;
        }
        let kind = u16_ne(&bytes[4..]);
        let flags = u16_ne(&bytes[6..]);
        let body = &bytes[NLMSG_HEADER..len];
        bytes = &bytes[align4(len).min(bytes.len())..];
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                if flags & NLM_F_DUMP_INTR != 0 {
                    each(Message::Interrupted);
                }
                each(Message::Done)
            }
            NLMSG_ERROR => {
                let code = body.get(..4).map(|b| u32_ne(b) as i32).unwrap_or(-1);
                // An error of 0 is an acknowledgement.
                if code != 0 {
                    each(Message::Error(code));
                }
            }
            NLMSG_OVERRUN => each(Message::Malformed("overrun")),
            _ if kind >> 8 == NFNL_SUBSYS_CTNETLINK => {
                let destroyed = match kind & 0xff {
                    IPCTNL_MSG_CT_NEW => false,
                    IPCTNL_MSG_CT_DELETE => true,
                    _ => continue,
                };
                if body.len() < 4 {
                    each(Message::Malformed("short nfgenmsg"));
                    continue;
                }
                match parse_entry(&body[4..]) {
                    Ok(flow) => {
                        if flags & NLM_F_DUMP_INTR != 0 {
                            each(Message::Interrupted);
                        }
                        each(Message::Flow { flow, destroyed })
                    }
                    Err(what) => each(Message::Malformed(what)),
                }
            }
            _ => {}
        }
    }
}

/// The dump request: `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`, every
/// address family.
pub fn dump_request(sequence: u32) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&20u32.to_ne_bytes());
    out[4..6].copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    out[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out[8..12].copy_from_slice(&sequence.to_ne_bytes());
    // pid 0 (the kernel), then nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0.
    out
}

fn put_attribute(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

fn put_nested(out: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    const NLA_F_NESTED: u16 = 0x8000;
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    fill(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
}

fn put_tuple(out: &mut Vec<u8>, kind: u16, tuple: &Tuple, protocol: u8) {
    put_nested(out, kind, |out| {
        put_nested(out, CTA_TUPLE_IP, |out| match (tuple.src, tuple.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                put_attribute(out, CTA_IP_V4_SRC, &src.octets());
                put_attribute(out, CTA_IP_V4_DST, &dst.octets());
            }
            (src, dst) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                put_attribute(out, CTA_IP_V6_SRC, &v6(src));
                put_attribute(out, CTA_IP_V6_DST, &v6(dst));
            }
        });
        put_nested(out, CTA_TUPLE_PROTO, |out| {
            put_attribute(out, CTA_PROTO_NUM, &[protocol]);
            put_attribute(out, CTA_PROTO_SRC_PORT, &tuple.src_port.to_be_bytes());
            put_attribute(out, CTA_PROTO_DST_PORT, &tuple.dst_port.to_be_bytes());
        });
    });
}

/// Appends `flow` as the kernel writes a dump entry (or, `destroyed`, a
/// DESTROY event), for tests and the benchmark.
pub fn encode_entry(flow: &Flow, destroyed: bool, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; NLMSG_HEADER]);
    let kind = (NFNL_SUBSYS_CTNETLINK << 8)
        | if destroyed {
            IPCTNL_MSG_CT_DELETE
        } else {
            IPCTNL_MSG_CT_NEW
        };
    out[start + 4..start + 6].copy_from_slice(&kind.to_ne_bytes());
    // nfgenmsg: AF_INET, version 0, res_id 0.
    out.extend_from_slice(&[2, 0, 0, 0]);
    put_tuple(out, CTA_TUPLE_ORIG, &flow.key.original, flow.key.protocol);
    put_tuple(out, CTA_TUPLE_REPLY, &flow.reply, flow.key.protocol);
    for (kind, counters) in [
        (CTA_COUNTERS_ORIG, flow.original_counters),
        (CTA_COUNTERS_REPLY, flow.reply_counters),
    ] {
        if let Some(counters) = counters {
            put_nested(out, kind, |out| {
                put_attribute(out, CTA_COUNTERS_PACKETS, &counters.packets.to_be_bytes());
                put_attribute(out, CTA_COUNTERS_BYTES, &counters.bytes.to_be_bytes());
            });
        }
    }
    put_attribute(out, CTA_ZONE, &flow.key.zone.to_be_bytes());
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends the dump's end (`NLMSG_DONE`).
pub fn encode_done(out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; NLMSG_HEADER + 4]);
    out[start..start + 4].copy_from_slice(&((NLMSG_HEADER + 4) as u32).to_ne_bytes());
    out[start + 4..start + 6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
}

/// Largest datagram the kernel sends (a dump part is at most a page or
/// two; events are single messages).
const RECEIVE_BUFFER: usize = 256 * 1024;
/// Socket buffer asked for on the event socket, so bursts of short
/// connections do not overflow it.
const EVENT_SOCKET_BUFFER: usize = 16 * 1024 * 1024;

fn open(groups: u32) -> io::Result<OwnedFd> {
    let socket = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::NETFILTER),
    )?;
    rustix::net::bind(&socket, &SocketAddrNetlink::new(0, groups))?;
    Ok(socket)
}

/// ctnetlink sockets of the calling thread's network namespace.
#[derive(Debug)]
pub struct Conntrack {
    dump: OwnedFd,
    events: Option<OwnedFd>,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Conntrack {
    /// Opens the dump socket and, when `events`, the DESTROY event
    /// socket. Fails without CAP_NET_ADMIN (EPERM on the dump).
    pub fn open(events: bool) -> io::Result<Conntrack> {
        let dump = open(0)?;
        let events = if events {
            let socket = open(DESTROY_GROUP_MASK)?;
            // FORCE needs CAP_NET_ADMIN; the plain size is capped by
            // net.core.rmem_max.
            if sockopt::set_socket_recv_buffer_size_force(&socket, EVENT_SOCKET_BUFFER).is_err() {
                let _ = sockopt::set_socket_recv_buffer_size(&socket, EVENT_SOCKET_BUFFER);
            }
            Some(socket)
        } else {
            None
        };
        Ok(Conntrack {
            dump,
            events,
            sequence: 1,
            buffer: vec![0; RECEIVE_BUFFER],
        })
    }

    /// Dumps the table, handing each message to `each`, until the dump's
    /// end or an error.
    pub fn dump(&mut self, each: &mut impl FnMut(Message)) -> io::Result<()> {
        self.sequence = self.sequence.wrapping_add(1);
        rustix::net::send(&self.dump, &dump_request(self.sequence), SendFlags::empty())?;
        loop {
            let (received, _) =
                rustix::net::recv(&self.dump, &mut self.buffer[..], RecvFlags::empty())?;
            let mut finished = false;
            parse_datagram(&self.buffer[..received], &mut |message| {
                if matches!(message, Message::Done | Message::Error(_)) {
                    finished = true;
                }
                each(message)
            });
            if finished || received == 0 {
                return Ok(());
            }
        }
    }

    /// Waits up to `timeout` for DESTROY events and hands over those that
    /// came; `Ok(false)` when none came. ENOBUFS (events were lost to a
    /// full socket buffer) is returned as an error for the caller to
    /// count.
    pub fn events(
        &mut self,
        timeout: Duration,
        each: &mut impl FnMut(Message),
    ) -> io::Result<bool> {
        let Some(socket) = &self.events else {
            std::thread::sleep(timeout);
            return Ok(false);
        };
        sockopt::set_socket_timeout(
            socket,
            Timeout::Recv,
            Some(timeout.max(Duration::from_millis(1))),
        )?;
        let mut any = false;
        let mut flags = RecvFlags::empty();
        loop {
            match rustix::net::recv(socket.as_fd(), &mut self.buffer[..], flags) {
                Ok((received, _)) => {
                    any = true;
                    parse_datagram(&self.buffer[..received], each);
                    flags = RecvFlags::DONTWAIT;
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(any),
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, dst: &str, counters: bool) -> Flow {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Flow {
            key: FlowKey {
                protocol: 6,
                zone: 7,
                original: Tuple {
                    src,
                    dst,
                    src_port: 40000,
                    dst_port: 443,
                },
            },
            reply: Tuple {
                src: dst,
                dst: src,
                src_port: 443,
                dst_port: 40000,
            },
            original_counters: counters.then_some(Counters {
                packets: 12,
                bytes: 1_234_567_890_123,
            }),
            reply_counters: counters.then_some(Counters {
                packets: 9,
                bytes: 4567,
            }),
        }
    }

    fn parse(bytes: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        parse_datagram(bytes, &mut |m| out.push(m));
        out
    }

    #[test]
    fn entries_round_trip_in_both_families_with_and_without_counters() {
        let flows = [
            flow("10.244.1.5", "52.1.2.3", true),
            flow("fd00::5", "2001:db8::1", true),
            flow("10.244.1.5", "10.0.0.1", false),
        ];
        let mut bytes = Vec::new();
        encode_entry(&flows[0], false, &mut bytes);
        encode_entry(&flows[1], false, &mut bytes);
        encode_entry(&flows[2], true, &mut bytes);
        encode_done(&mut bytes);
        assert_eq!(
            parse(&bytes),
            vec![
                Message::Flow {
                    flow: flows[0],
                    destroyed: false
                },
                Message::Flow {
                    flow: flows[1],
                    destroyed: false
                },
                Message::Flow {
                    flow: flows[2],
                    destroyed: true
                },
                Message::Done,
            ]
        );
    }

    #[test]
    fn truncated_and_corrupt_messages_are_malformed_never_a_panic() {
        let mut bytes = Vec::new();
        encode_entry(&flow("10.244.1.5", "52.1.2.3", true), false, &mut bytes);
        for cut in 0..bytes.len() {
            for message in parse(&bytes[..cut]) {
                assert!(
                    matches!(message, Message::Malformed(_)),
                    "cut {cut}: {message:?}"
                );
            }
        }
        // A nested attribute claiming more than its parent holds.
        let mut corrupt = bytes.clone();
        corrupt[NLMSG_HEADER + 4] = 0xff;
        assert!(matches!(parse(&corrupt)[0], Message::Malformed(_)));
        // An entry without its reply tuple.
        let mut short = Vec::new();
        short.extend_from_slice(&[0; NLMSG_HEADER]);
        short[4..6].copy_from_slice(&(NFNL_SUBSYS_CTNETLINK << 8).to_ne_bytes());
        short.extend_from_slice(&[2, 0, 0, 0]);
        put_tuple(
            &mut short,
            CTA_TUPLE_ORIG,
            &flow("10.0.0.1", "10.0.0.2", false).key.original,
            6,
        );
        let len = short.len() as u32;
        short[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse(&short),
            vec![Message::Malformed("entry without both tuples")]
        );
    }

    #[test]
    fn errors_and_interrupted_dumps_are_reported() {
        let mut bytes = vec![0u8; NLMSG_HEADER + 4];
        bytes[..4].copy_from_slice(&((NLMSG_HEADER + 4) as u32).to_ne_bytes());
        bytes[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        bytes[NLMSG_HEADER..].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse(&bytes), vec![Message::Error(-1)]);
        let mut done = Vec::new();
        encode_done(&mut done);
        done[6..8].copy_from_slice(&NLM_F_DUMP_INTR.to_ne_bytes());
        assert_eq!(parse(&done), vec![Message::Interrupted, Message::Done]);
    }
}
