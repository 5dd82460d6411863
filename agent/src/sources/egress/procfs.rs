//! `/proc/net/nf_conntrack`, the text form of the table, for kernels or
//! namespaces where ctnetlink cannot be opened. It has no events, so
//! connections that start and end between two reads are missed: the
//! netlink reader is preferred whenever it opens.
//!
//! A line (kernel `nf_conntrack_standalone.c`, `ct_seq_show`):
//! `ipv4 2 tcp 6 431999 ESTABLISHED src=10.0.1.5 dst=52.1.2.3 sport=44312
//! dport=443 packets=10 bytes=1234 src=52.1.2.3 dst=10.0.1.5 sport=443
//! dport=44312 packets=8 bytes=5678 [ASSURED] mark=0 zone=0 use=2`;
//! `packets=`/`bytes=` only with accounting on.

use std::io::BufRead;
use std::net::IpAddr;

use super::flow::{Counters, Flow, FlowKey, Tuple};

#[derive(Default)]
struct Side {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    packets: Option<u64>,
    bytes: Option<u64>,
}

impl Side {
    fn tuple(&self) -> Result<Tuple, &'static str> {
        match (self.src, self.dst) {
            (Some(src), Some(dst)) => Ok(Tuple {
                src,
                dst,
                src_port: self.src_port,
                dst_port: self.dst_port,
            }),
            _ => Err("tuple without src or dst"),
        }
    }

    fn counters(&self) -> Option<Counters> {
        match (self.packets, self.bytes) {
            (Some(packets), Some(bytes)) => Some(Counters { packets, bytes }),
            _ => None,
        }
    }
}

/// One line of the file.
pub fn parse_line(line: &str) -> Result<Flow, &'static str> {
    let mut fields = line.split_ascii_whitespace();
    let family = fields.next().ok_or("empty line")?;
    if family != "ipv4" && family != "ipv6" {
        return Err("unknown address family");
    }
    fields.next().ok_or("no family number")?;
    fields.next().ok_or("no protocol name")?;
    let protocol: u8 = fields
        .next()
        .ok_or("no protocol number")?
        .parse()
        .map_err(|_| "protocol number")?;
    fields
        .next()
        .ok_or("no timeout")?
        .parse::<u64>()
        .map_err(|_| "timeout")?;
    let mut sides = [Side::default(), Side::default()];
    let mut side = 0;
    let mut zone = 0;
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            // The TCP state and `[ASSURED]`-style flags.
            continue;
        };
        let number = || value.parse::<u64>().map_err(|_| "number");
        match key {
            "src" => {
                if sides[side].src.is_some() {
                    if side == 1 {
                        return Err("a third tuple");
                    }
                    side = 1;
                }
                sides[side].src = Some(value.parse().map_err(|_| "address")?);
            }
            "dst" => sides[side].dst = Some(value.parse().map_err(|_| "address")?),
            "sport" => sides[side].src_port = value.parse().map_err(|_| "port")?,
            "dport" => sides[side].dst_port = value.parse().map_err(|_| "port")?,
            "packets" => sides[side].packets = Some(number()?),
            "bytes" => sides[side].bytes = Some(number()?),
            "zone" => zone = value.parse().map_err(|_| "zone")?,
            _ => {}
        }
    }
    if side != 1 {
        return Err("no reply tuple");
    }
    Ok(Flow {
        key: FlowKey {
            protocol,
            zone,
            original: sides[0].tuple()?,
        },
        reply: sides[1].tuple()?,
        original_counters: sides[0].counters(),
        reply_counters: sides[1].counters(),
    })
}

/// Reads every line of `reader`: each flow to `flow`, each malformed
/// line's reason to `malformed`. Lines are bounded (4 KiB) so a corrupt
/// file cannot grow memory.
pub fn read(
    reader: impl BufRead,
    flow: &mut impl FnMut(Flow),
    malformed: &mut impl FnMut(&'static str),
) -> std::io::Result<()> {
    const MAX_LINE: usize = 4096;
    let mut reader = reader;
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let read =
            std::io::Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
            malformed("line too long");
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => match parse_line(text) {
                Ok(parsed) => flow(parsed),
                Err(what) => malformed(what),
            },
            Err(_) => malformed("utf8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_accounted_tcp_line() {
        let flow = parse_line("ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.1.5 dst=52.1.2.3 sport=44312 dport=443 packets=10 bytes=1234 src=52.1.2.3 dst=10.0.1.5 sport=443 dport=44312 packets=8 bytes=5678 [ASSURED] mark=0 zone=3 use=2").unwrap();
        assert_eq!(flow.key.protocol, 6);
        assert_eq!(flow.key.zone, 3);
        assert_eq!(flow.key.original.src, "10.0.1.5".parse::<IpAddr>().unwrap());
        assert_eq!(flow.key.original.dst_port, 443);
        assert_eq!(flow.reply.src, "52.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(flow.reply.dst_port, 44312);
        assert_eq!(
            flow.original_counters,
            Some(Counters {
                packets: 10,
                bytes: 1234
            })
        );
        assert_eq!(
            flow.reply_counters,
            Some(Counters {
                packets: 8,
                bytes: 5678
            })
        );
    }

    #[test]
    fn reads_unaccounted_udp_and_ipv6_lines() {
        let flow = parse_line("ipv4     2 udp      17 28 src=10.0.0.2 dst=10.0.0.3 sport=5000 dport=53 [UNREPLIED] src=10.0.0.3 dst=10.0.0.2 sport=53 dport=5000 mark=0 use=1").unwrap();
        assert_eq!(flow.original_counters, None);
        assert_eq!(flow.reply_counters, None);
        let flow = parse_line("ipv6     10 tcp      6 86399 ESTABLISHED src=fd00::1 dst=fd00::2 sport=1 dport=2 packets=1 bytes=80 src=fd00::2 dst=fd00::1 sport=2 dport=1 packets=1 bytes=80 [ASSURED] mark=0 use=1").unwrap();
        assert!(flow.key.original.src.is_ipv6());
    }

    #[test]
    fn malformed_lines_say_why() {
        for (line, why) in [
            ("ipv4 2 tcp", "no protocol number"),
            ("ipx 2 tcp 6 1 src=1.1.1.1", "unknown address family"),
            (
                "ipv4 2 tcp six 1 src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1",
                "protocol number",
            ),
            ("ipv4 2 tcp 6 1 src=1.1.1.1 dst=2.2.2.2", "no reply tuple"),
            (
                "ipv4 2 tcp 6 1 src=1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1",
                "address",
            ),
            (
                "ipv4 2 tcp 6 1 src=1.1.1.1 dst=2.2.2.2 bytes=x src=2.2.2.2 dst=1.1.1.1",
                "number",
            ),
            (
                "ipv4 2 tcp 6 1 src=1.1.1.1 src=2.2.2.2 dst=1.1.1.1",
                "tuple without src or dst",
            ),
        ] {
            assert_eq!(parse_line(line), Err(why), "{line}");
        }
    }

    #[test]
    fn a_file_with_bad_lines_keeps_the_good_ones() {
        let good = "ipv4 2 udp 17 28 src=10.0.0.2 dst=10.0.0.3 sport=1 dport=2 packets=1 bytes=100 src=10.0.0.3 dst=10.0.0.2 sport=2 dport=1 packets=0 bytes=0 mark=0 use=1\n";
        let mut text = String::new();
        text.push_str(good);
        text.push_str("garbage\n");
        text.push_str(&"x".repeat(10_000));
        text.push('\n');
        text.push_str(good);
        text.push_str("ipv4 2 udp 17 28 src=10.0.0.2 dst=1"); // truncated
        let (mut flows, mut bad) = (0, Vec::new());
        read(text.as_bytes(), &mut |_| flows += 1, &mut |why| {
            bad.push(why)
        })
        .unwrap();
        assert_eq!(flows, 2);
        assert_eq!(
            bad,
            vec!["unknown address family", "line too long", "address"]
        );
    }
}
