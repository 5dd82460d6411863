//! One read-and-classify pass of the egress source over 100,000 tracked
//! connections: the CPU time of the reading thread (user and system, so
//! the kernel's side of a netlink dump counts) and the RSS the pass adds.
//! Target (issue #8): ≤ 50 ms of CPU and ≤ 20 MiB.
//!
//! - Synthetic (anywhere): 100,000 entries encoded as the kernel writes
//!   them, in 32 KiB datagrams, parsed and classified against 110 local
//!   pods, 5,000 pods on other nodes and subnet, service and override
//!   maps.
//! - Kernel (`-- --netns PATH`, root): the real dump of a namespace that
//!   holds the connections; `scripts/bench-egress.sh` makes one with
//!   100,000 UDP flows and runs this.
//!
//! Each case runs a first pass (every connection new) and a second (every
//! connection known, counters grown), as the source does every interval.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};
use tally_agent::sources::egress::classify::{Place, Remote, Rules, Topology, Workload};
use tally_agent::sources::egress::flow::{Counters, Flow, FlowKey, Tuple};
use tally_agent::sources::egress::kernel::{self, KernelPaths};
use tally_agent::sources::egress::ledger::Ledger;
use tally_agent::sources::egress::netlink::{self, Conntrack, Message};
use tally_schema::identity::ContainerIdentity;

const FLOWS: u32 = 100_000;

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// User and system CPU of this thread so far, from
/// `/proc/thread-self/stat` (clock ticks, 10 ms).
fn user_system() -> (Duration, Duration) {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        Duration::from_millis(
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 10,
        )
    };
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    (tick(11), tick(12))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// 110 local pods on 10.244.1.0/24 (the kernel case's sender is
/// 10.244.1.10), 5,000 remote pods in three zones, the maps.
fn setup(ledger: &mut Ledger) -> (Topology, Rules, u32) {
    let rules = Rules::parse(
        &["10.9.0.0/16=same_zone".into()],
        &["52.216.0.0/15=s3".into(), "3.5.0.0/16=dynamodb".into()],
        &[
            "10.0.1.0/24=zone-a".into(),
            "10.0.2.0/24=zone-b".into(),
            "10.0.3.0/24=zone-c".into(),
            "10.50.0.0/16=region-2/zone-x".into(),
        ],
    )
    .expect("rules");
    let node = ledger.owner(&ContainerIdentity {
        workload_kind: "Node".into(),
        workload_name: "bench-node".into(),
        ..Default::default()
    });
    let mut topology = Topology {
        place: Place {
            region: "region-1".into(),
            zone: "zone-a".into(),
        },
        ..Topology::default()
    };
    topology.host_addresses.insert(v4(10, 0, 1, 10));
    topology.local_workloads = vec![Workload::default()];
    for i in 0..110u32 {
        let owner = ledger.owner(&ContainerIdentity {
            namespace: "bench".into(),
            pod: format!("pod-{i}"),
            workload_kind: "Deployment".into(),
            workload_name: format!("app-{}", i % 20),
            pod_uid: format!("uid-{i}"),
            ..Default::default()
        });
        topology
            .local_pods
            .insert(v4(10, 244, 1, i as u8 + 1), owner as usize);
        topology.local_workloads.push(Workload {
            namespace: "bench".into(),
            name: Arc::from(format!("app-{}", i % 20).as_str()),
        });
    }
    let mut remote = tally_agent::sources::egress::hash::FastMap::default();
    for i in 0..5000u32 {
        remote.insert(
            v4(10, 244, 2 + (i / 250) as u8, (i % 250) as u8 + 1),
            Remote {
                place: Place {
                    region: "region-1".into(),
                    zone: ["zone-a", "zone-b", "zone-c"][i as usize % 3].into(),
                },
                workload: Some(Workload {
                    namespace: "bench".into(),
                    name: Arc::from(format!("svc-{}", i % 200).as_str()),
                }),
            },
        );
    }
    topology.remote = remote;
    (topology, rules, node)
}

/// Synthetic connections: local pods to remote pods, subnets, services,
/// the internet and each other.
fn synthetic(round: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FLOWS as usize * 260);
    for i in 0..FLOWS {
        let src = v4(10, 244, 1, (i % 110) as u8 + 1);
        let dst = match i % 10 {
            0..=3 => v4(10, 244, 2 + ((i / 10) % 20) as u8, (i % 250) as u8 + 1),
            4 | 5 => v4(10, 0, 2 + (i % 2) as u8, (i % 200) as u8 + 1),
            6 => v4(52, 216, (i % 256) as u8, 9),
            7 | 8 => v4(93, (i % 200) as u8, 34, 7),
            _ => v4(10, 244, 1, ((i + 1) % 110) as u8 + 1),
        };
        let port = 1024 + (i % 60000) as u16;
        let flow = Flow {
            key: FlowKey {
                protocol: if i % 4 == 0 { 17 } else { 6 },
                zone: 0,
                original: Tuple {
                    src,
                    dst,
                    src_port: port,
                    dst_port: 443 + (i / 60000) as u16,
                },
            },
            reply: Tuple {
                src: dst,
                dst: src,
                src_port: 443 + (i / 60000) as u16,
                dst_port: port,
            },
            original_counters: Some(Counters {
                packets: 10 * round,
                bytes: 15_000 * round,
            }),
            reply_counters: Some(Counters {
                packets: 8 * round,
                bytes: 900 * round,
            }),
        };
        netlink::encode_entry(&flow, false, &mut out);
    }
    netlink::encode_done(&mut out);
    out
}

/// Feeds `bytes` in 32 KiB datagram-sized pieces (whole messages).
fn feed(bytes: &[u8], each: &mut impl FnMut(Message)) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut cut = 0;
        while cut < rest.len() && cut < 32 * 1024 {
            let len = u32::from_ne_bytes([rest[cut], rest[cut + 1], rest[cut + 2], rest[cut + 3]])
                as usize;
            cut += (len + 3) & !3;
        }
        let cut = cut.min(rest.len());
        netlink::parse_datagram(&rest[..cut], each);
        rest = &rest[cut..];
    }
}

struct Mark {
    cpu: Duration,
    split: (Duration, Duration),
}

fn mark() -> Mark {
    Mark {
        cpu: thread_cpu(),
        split: user_system(),
    }
}

fn report(case: &str, pass: &str, flows: u64, since: Mark, rss_before: u64, rss_after: u64) {
    let now = mark();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{case:9} {pass:6} {flows:>7} connections  {:>6.1} ms CPU (user {:>4.0} ms, kernel {:>4.0} ms)  {:>+6.1} MiB RSS",
        ms(now.cpu - since.cpu),
        ms(now.split.0 - since.split.0),
        ms(now.split.1 - since.split.1),
        (rss_after as f64 - rss_before as f64) / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let netns = args
        .iter()
        .position(|a| a == "--netns")
        .and_then(|i| args.get(i + 1))
        .cloned();
    println!("egress pass over {FLOWS} connections (target: <= 50 ms CPU, <= 20 MiB added RSS)");
    // Synthetic.
    let rounds = [synthetic(1), synthetic(2)];
    let rss_start = rss_kib();
    let mut ledger = Ledger::default();
    let (topology, rules, node) = setup(&mut ledger);
    for (pass, bytes) in ["first", "second"].iter().zip(&rounds) {
        let cpu = mark();
        ledger.reserve(FLOWS as usize);
        ledger.begin_dump();
        let mut seen = 0u64;
        feed(bytes, &mut |message| {
            if let Message::Flow { flow, destroyed } = message {
                seen += 1;
                ledger.observe(&flow, destroyed, &topology, &rules, node);
            }
        });
        ledger.end_dump(false);
        report("synthetic", pass, seen, cpu, rss_start, rss_kib());
    }
    assert_eq!(ledger.flows(), FLOWS as usize, "every connection tracked");
    drop(rounds);
    // The real kernel.
    let Some(path) = netns else {
        println!("kernel    (skipped: run scripts/bench-egress.sh, as root, for the real dump)");
        return;
    };
    let handle = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns (root)");
        let mut conntrack = Conntrack::open(false).expect("ctnetlink (root)");
        let rss_start = rss_kib();
        let mut ledger = Ledger::default();
        let (topology, rules, node) = setup(&mut ledger);
        let paths = KernelPaths::under(std::path::Path::new("/proc"));
        for pass in ["first", "second"] {
            let cpu = mark();
            // As the source does: the table's count first, room for it.
            if let Ok((count, _)) = kernel::table_fill(&paths) {
                ledger.reserve(count as usize);
            }
            ledger.begin_dump();
            let mut seen = 0u64;
            conntrack
                .dump(&mut |message| {
                    if let Message::Flow { flow, destroyed } = message {
                        seen += 1;
                        ledger.observe(&flow, destroyed, &topology, &rules, node);
                    }
                })
                .expect("dump");
            ledger.end_dump(false);
            report("kernel", pass, seen, cpu, rss_start, rss_kib());
        }
        println!(
            "kernel    {} connections tracked, {} with no end on this node",
            ledger.flows(),
            ledger.stats().unattributed
        );
    });
    handle.join().expect("kernel pass");
}
