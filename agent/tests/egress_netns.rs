//! The egress source against the real kernel: network namespaces joined
//! by veth pairs stand for a node, its pods and the rest of the world;
//! real TCP and UDP transfers of known sizes run between them, and the
//! kernel's connection tracking (switched on by an nftables ruleset in
//! the node's namespace, as kube-proxy's rules do on a real node) is what
//! the source reads.
//!
//! Layout (all addresses live only inside namespaces this test makes):
//! - `node`: 10.0.1.10 on `up0`, forwarding, a masquerade rule for
//!   198.51.100.0/24 (the internet leg SNATs to the node, as on a cloud);
//! - pods `pa` (10.244.1.10) and `pb` (10.244.1.11), routed Calico-style
//!   through `node` (a /32 route per pod, proxy ARP);
//! - `world`: 10.0.1.1 plus, on its loopback, a host of each class the
//!   config maps: 10.0.1.20 (same zone), 10.0.2.20 (other zone),
//!   10.50.0.20 (other region), 198.51.100.20 (internet), 203.0.113.20
//!   (service `s3`).
//!
//! Links use AWS's jumbo MTU (9001), so TCP/IP headers stay well under
//! the 2 % the counts are held to even when segments are not coalesced;
//! conntrack counts IP bytes, headers included. Transfers are several
//! megabytes: on a busy two-core machine a 64 KiB segment is now and then
//! retransmitted (real bytes on the wire, counted by the kernel), which
//! must stay under 1 % of what the test compares against.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and python3; without
//! root each test prints a SKIP line. The tests share the kernel's
//! global conntrack limit, so nextest runs them one at a time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tally_agent::sources::egress::classify::{Class, Place, Rules};
use tally_agent::sources::egress::kernel::{Accounting, KernelPaths};
use tally_agent::sources::egress::{self, EgressSettings, Reader, SharedEgress};
use tally_agent::sources::pods::model::{PodInfo, PodStore, SharedPodStore};
use tally_agent::telemetry::SourceHealth;

/// The tests share the kernel's global conntrack limit (one lowers it):
/// one at a time, also under plain `cargo test`.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    match SERIAL.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn which(name: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(name).exists())
}

/// Whether the test can run; prints why not (and fails when CI asks for
/// every peer).
fn ready(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: network namespaces and conntrack need root; run as root (CI does)");
        return false;
    }
    let missing: Vec<&str> = ["ip", "nft", "python3"]
        .into_iter()
        .filter(|tool| !which(tool))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("TALLY_REQUIRE_PEERS").is_none(),
            "{test}: {missing:?} missing; scripts/install-test-peers.sh installs them"
        );
        eprintln!("SKIP {test}: {missing:?} missing; run scripts/install-test-peers.sh");
        return false;
    }
    true
}

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_input(args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Serves TCP (port 9000, counting bytes) and UDP (port 9001, draining)
/// on every address given; prints `ready` once bound.
const SERVER: &str = r#"
import socket, sys, threading
def tcp(addr):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 9000)); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
def drain(c):
    while c.recv(1 << 16):
        pass
    c.close()
def udp(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind((addr, 9001))
    while True:
        s.recv(1 << 16)
for a in sys.argv[1:]:
    threading.Thread(target=tcp, args=(a,), daemon=True).start()
    threading.Thread(target=udp, args=(a,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Sends `proto:addr:bytes` items: TCP as one connection each, UDP as
/// 8000-byte datagrams (few headers per byte) from one socket; prints
/// the payload bytes sent.
const SENDER: &str = r#"
import socket, sys, time
total = 0
for item in sys.argv[1:]:
    proto, addr, size = item.split(":")
    size = int(size)
    if proto == "tcp":
        s = socket.create_connection((addr, 9000))
        s.sendall(b"x" * size)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        while sent < size:
            n = min(8000, size - sent)
            s.sendto(b"u" * n, (addr, 9001))
            sent += n
            time.sleep(0.0005)
        s.close()
    total += size
print(total, flush=True)
"#;

const WORLD_HOSTS: &[&str] = &[
    "10.0.1.20",
    "10.0.2.20",
    "10.50.0.20",
    "198.51.100.20",
    "203.0.113.20",
];

/// The namespaces of one test; removed on drop.
struct Lab {
    prefix: String,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let ns = self.ns(ns);
        let mut all = vec!["ip", "netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run(&all);
    }

    fn new(tag: &str) -> Lab {
        let lab = Lab {
            prefix: format!("tly{}{tag}", std::process::id() % 100_000),
            children: Vec::new(),
        };
        for name in ["node", "pa", "pb", "world"] {
            let ns = lab.ns(name);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            // No IPv6 chatter (router solicitations) on the links.
            lab.exec(name, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            lab.exec(
                name,
                &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            );
        }
        let (node, world) = (lab.ns("node"), lab.ns("world"));
        run(&[
            "ip", "link", "add", "up0", "netns", &node, "type", "veth", "peer", "name", "eth0",
            "netns", &world,
        ]);
        run(&[
            "ip",
            "-n",
            &node,
            "addr",
            "add",
            "10.0.1.10/24",
            "dev",
            "up0",
        ]);
        run(&["ip", "-n", &node, "link", "set", "up0", "mtu", "9001", "up"]);
        run(&[
            "ip",
            "-n",
            &world,
            "addr",
            "add",
            "10.0.1.1/24",
            "dev",
            "eth0",
        ]);
        run(&[
            "ip", "-n", &world, "link", "set", "eth0", "mtu", "9001", "up",
        ]);
        for host in WORLD_HOSTS {
            run(&[
                "ip",
                "-n",
                &world,
                "addr",
                "add",
                &format!("{host}/32"),
                "dev",
                "lo",
            ]);
        }
        run(&[
            "ip",
            "-n",
            &world,
            "route",
            "add",
            "10.244.1.0/24",
            "via",
            "10.0.1.10",
        ]);
        run(&[
            "ip", "-n", &node, "route", "add", "default", "via", "10.0.1.1",
        ]);
        lab.exec("node", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for (pod, address, veth) in [("pa", "10.244.1.10", "vpa"), ("pb", "10.244.1.11", "vpb")] {
            let ns = lab.ns(pod);
            run(&[
                "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", veth,
                "netns", &node,
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/32"),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "mtu", "9001", "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &node, "link", "set", veth, "mtu", "9001", "up"]);
            run(&[
                "ip",
                "-n",
                &node,
                "route",
                "add",
                &format!("{address}/32"),
                "dev",
                veth,
            ]);
            lab.exec(
                "node",
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{veth}.proxy_arp=1"),
                ],
            );
        }
        run_input(
            &["ip", "netns", "exec", &node, "nft", "-f", "-"],
            "table inet tally_test {\n  chain forward { type filter hook forward priority 0; ct state established,related accept; }\n  chain post { type nat hook postrouting priority 100; ip daddr 198.51.100.0/24 oifname \"up0\" masquerade; }\n}\n",
        );
        lab
    }

    fn netns_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.ns(name)))
    }

    /// Starts the servers of `ns` on `addresses` and waits until bound.
    fn serve(&mut self, ns: &str, addresses: &[&str]) {
        let ns = self.ns(ns);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", SERVER])
            .args(addresses)
            .stdout(Stdio::piped())
            .spawn()
            .expect("server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server output");
        assert_eq!(line.trim(), "ready");
        self.children.push(child);
    }

    /// Runs the sender in `ns`; returns the payload bytes it sent.
    fn send(&self, ns: &str, items: &[String]) -> u64 {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "python3", "-c", SENDER])
            .args(items)
            .output()
            .expect("sender");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("sent bytes")
    }

    /// `eth0`'s transmitted bytes in `ns`, from the namespace's own
    /// `/proc/net/dev` (what `/proc/<pid>/net/dev` of a pod process shows).
    fn tx_bytes(&self, ns: &str) -> u64 {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "cat", "/proc/net/dev"])
            .output()
            .expect("net/dev");
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("eth0:"))
            .expect("eth0 line");
        let fields: Vec<&str> = line
            .split(':')
            .nth(1)
            .expect("fields")
            .split_whitespace()
            .collect();
        fields[8].parse().expect("tx bytes")
    }

    fn sysctl(&self, ns: &str, setting: &str) {
        self.exec(ns, &["sysctl", "-qw", setting]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in ["node", "pa", "pb", "world"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(name)])
                .output();
        }
    }
}

fn pods() -> SharedPodStore {
    let mut store = PodStore::default();
    for (uid, name, address) in [
        ("uid-a", "frontend", "10.244.1.10"),
        ("uid-b", "cache", "10.244.1.11"),
    ] {
        store.upsert(PodInfo {
            uid: uid.into(),
            namespace: "shop".into(),
            name: format!("{name}-0"),
            phase: "Running".into(),
            workload_kind: "StatefulSet".into(),
            workload_name: name.into(),
            pod_ip: address.into(),
            ..Default::default()
        });
    }
    Arc::new(RwLock::new(store))
}

struct Source {
    shared: SharedEgress,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(lab: &Lab, interval: Duration, enable_accounting: bool) -> Source {
    start_with(lab, interval, enable_accounting, pods())
}

fn start_with(
    lab: &Lab,
    interval: Duration,
    enable_accounting: bool,
    pods: SharedPodStore,
) -> Source {
    start_reader(lab, interval, enable_accounting, pods, Reader::Netlink)
}

fn start_reader(
    lab: &Lab,
    interval: Duration,
    enable_accounting: bool,
    pods: SharedPodStore,
    reader: Reader,
) -> Source {
    let rules = Rules::parse(
        &[],
        &["203.0.113.0/24=s3".into()],
        &[
            "10.0.1.0/24=zone-a".into(),
            "10.0.2.0/24=zone-b".into(),
            "10.50.0.0/16=region-2/zone-x".into(),
        ],
    )
    .expect("rules");
    let settings = EgressSettings {
        interval,
        reader,
        netns: Some(lab.netns_path("node")),
        enable_accounting,
        kernel: KernelPaths::under(Path::new("/proc")),
        proc_root: PathBuf::from("/proc"),
        rules,
        node_name: "node-1".into(),
        pods: Some(pods),
        remote: Default::default(),
        place: Place {
            region: "region-1".into(),
            zone: "zone-a".into(),
        },
    };
    let shared = SharedEgress::default();
    let health = SourceHealth::new("egress");
    let stop = Arc::new(AtomicBool::new(false));
    let thread =
        egress::spawn(settings, shared.clone(), health.clone(), stop.clone()).expect("spawn");
    let source = Source {
        shared,
        health,
        stop,
        thread: Some(thread),
    };
    // The first dump is the baseline.
    wait_for("the first table read", Duration::from_secs(10), || {
        source.health.collections() >= 1
    });
    source
}

fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (transmit, receive) bytes of `pod` by class.
fn by_class(source: &Source, pod: &str) -> BTreeMap<Class, (u64, u64)> {
    let mut out = BTreeMap::new();
    for t in egress::lock(&source.shared).traffic() {
        if t.owner.pod == pod {
            let entry = out.entry(t.destination.class).or_insert((0, 0));
            entry.0 += t.transmit_bytes;
            entry.1 += t.receive_bytes;
        }
    }
    out
}

/// The suite's lock and a fresh lab with accounting on or off; `None`
/// (after a SKIP line) when the test cannot run here.
fn lab(test: &str, tag: &str, accounting: bool) -> Option<(MutexGuard<'static, ()>, Lab)> {
    let guard = serial();
    if !ready(test) {
        return None;
    }
    let lab = Lab::new(tag);
    lab.sysctl(
        "node",
        &format!("net.netfilter.nf_conntrack_acct={}", u8::from(accounting)),
    );
    Some((guard, lab))
}

/// The value of the source's own `family` point carrying `label`, if any.
fn own_figure(source: &Source, family: &str, label: Option<(&str, &str)>) -> Option<f64> {
    egress::lock(&source.shared)
        .points()
        .iter()
        .find(|p| {
            p.def.base == family
                && label.is_none_or(|(k, v)| p.attributes.iter().any(|(a, b)| *a == k && b == v))
        })
        .map(|p| p.value)
}

fn within(measured: u64, expected: u64, share: f64) -> bool {
    (measured as f64 - expected as f64).abs() <= expected as f64 * share
}

#[test]
fn bytes_by_class_match_what_was_sent_and_the_interface_counters() {
    let Some((_serial, mut lab)) = lab(
        "bytes_by_class_match_what_was_sent_and_the_interface_counters",
        "a",
        true,
    ) else {
        return;
    };
    lab.serve("world", WORLD_HOSTS);
    lab.serve("pb", &["10.244.1.11"]);
    let source = start(&lab, Duration::from_secs(1), true);
    assert_eq!(
        egress::lock(&source.shared).accounting(),
        Some(Accounting::On)
    );
    let tx_before = lab.tx_bytes("pa");
    let plan: &[(Class, &str, &str, u64)] = &[
        // Large enough that one retransmitted 64 KiB burst (a softnet
        // backlog drop on a busy two-core machine) stays under 1 %.
        (Class::SameZone, "tcp", "10.0.1.20", 7_000_000),
        (Class::CrossZone, "tcp", "10.0.2.20", 12_000_000),
        (Class::CrossRegion, "tcp", "10.50.0.20", 8_000_000),
        (Class::Internet, "tcp", "198.51.100.20", 10_000_000),
        (Class::Service, "udp", "203.0.113.20", 1_600_000),
        (Class::SameNode, "tcp", "10.244.1.11", 7_000_000),
    ];
    let items: Vec<String> = plan
        .iter()
        .map(|(_, proto, address, bytes)| format!("{proto}:{address}:{bytes}"))
        .collect();
    let sent = lab.send("pa", &items);
    assert_eq!(sent, plan.iter().map(|p| p.3).sum::<u64>());
    let cross_zone_sent = plan[1].3;
    wait_for(
        "the transfers to be counted",
        Duration::from_secs(15),
        || {
            by_class(&source, "frontend-0")
                .get(&Class::CrossZone)
                .is_some_and(|(tx, _)| *tx >= cross_zone_sent)
        },
    );
    // One more read so every connection's last bytes are in.
    let reads = source.health.collections();
    wait_for("another read", Duration::from_secs(5), || {
        source.health.collections() > reads + 1
    });
    let tx_after = lab.tx_bytes("pa");
    let classes = by_class(&source, "frontend-0");
    let interface = tx_after - tx_before;
    let counted: u64 = classes.values().map(|(tx, _)| tx).sum();
    eprintln!(
        "frontend-0 sent {sent} payload bytes; counted by class {classes:?}; total counted {counted}, eth0 tx {interface}"
    );
    for (class, _, address, bytes) in plan {
        let (tx, _) = classes.get(class).copied().unwrap_or_default();
        assert!(
            within(tx, *bytes, 0.02),
            "{class:?} ({address}): counted {tx} bytes, sent {bytes} (all: {classes:?})"
        );
    }
    // The pod's total egress against its own interface counter.
    assert!(
        within(counted, interface, 0.02),
        "counted {counted} bytes sent, eth0 says {interface}"
    );
    // The receiving pod on the same node sees the bytes as received,
    // labelled with the sender's workload.
    let cache = by_class(&source, "cache-0");
    let (_, received) = cache.get(&Class::SameNode).copied().unwrap_or_default();
    assert!(
        within(received, plan[5].3, 0.02),
        "cache received {received}"
    );
    let state = egress::lock(&source.shared);
    let to_cache = state
        .traffic()
        .iter()
        .find(|t| t.owner.pod == "frontend-0" && t.destination.class == Class::SameNode)
        .expect("same-node row");
    assert_eq!(
        (
            &*to_cache.destination.namespace,
            &*to_cache.destination.workload
        ),
        ("shop", "cache")
    );
    let s3 = state
        .traffic()
        .iter()
        .find(|t| t.destination.class == Class::Service)
        .expect("service row");
    assert_eq!(&*s3.destination.service, "s3");
    drop(state);
    // The source's own figures.
    let value = |name: &str, label: Option<(&str, &str)>| own_figure(&source, name, label);
    assert_eq!(
        value("tally_agent_conntrack_accounting", Some(("state", "on"))),
        Some(1.0)
    );
    assert!(
        value("tally_agent_conntrack_flows", Some(("state", "tracked"))).is_some_and(|v| v >= 6.0)
    );
    assert!(value("tally_agent_conntrack_entries", None).is_some_and(|v| v >= 6.0));
    assert!(value("tally_agent_conntrack_limit", None).is_some_and(|v| v > 0.0));
    assert!(value("tally_agent_conntrack_read_duration", None).is_some());
    assert_eq!(source.health.error_count("malformed"), 0);
}

/// A connection that opens, sends and closes between two reads never
/// shows in a dump (the kernel skips expired entries and evicts them);
/// only its DESTROY event carries its bytes.
#[test]
fn connections_that_start_and_end_between_two_reads_are_counted() {
    let Some((_serial, mut lab)) = lab(
        "connections_that_start_and_end_between_two_reads_are_counted",
        "b",
        true,
    ) else {
        return;
    };
    // Closed connections expire a second after their last packet, long
    // before the next read.
    for setting in ["time_wait", "close_wait", "last_ack", "fin_wait", "close"] {
        lab.sysctl(
            "node",
            &format!("net.netfilter.nf_conntrack_tcp_timeout_{setting}=1"),
        );
    }
    lab.serve("world", WORLD_HOSTS);
    let source = start(&lab, Duration::from_secs(6), true);
    let items: Vec<String> = (0..5).map(|_| "tcp:10.0.2.20:2000000".to_owned()).collect();
    let sent = lab.send("pa", &items);
    wait_for(
        "DESTROY events of the closed connections",
        Duration::from_secs(90),
        || {
            by_class(&source, "frontend-0")
                .get(&Class::CrossZone)
                .is_some_and(|(tx, _)| *tx >= sent)
        },
    );
    let (tx, _) = by_class(&source, "frontend-0")[&Class::CrossZone];
    assert!(within(tx, sent, 0.02), "counted {tx}, sent {sent}");
    let destroyed = own_figure(
        &source,
        "tally_agent_conntrack_events",
        Some(("outcome", "destroyed")),
    );
    assert!(
        destroyed.is_some_and(|d| d >= 5.0),
        "DESTROY events read: {destroyed:?}"
    );
}

#[test]
fn accounting_off_reports_its_state_and_no_numbers() {
    let Some((_serial, mut lab)) = lab(
        "accounting_off_reports_its_state_and_no_numbers",
        "c",
        false,
    ) else {
        return;
    };
    lab.serve("world", WORLD_HOSTS);
    let source = start(&lab, Duration::from_secs(1), false);
    lab.send("pa", &["tcp:10.0.2.20:300000".to_owned()]);
    let reads = source.health.collections();
    wait_for("a read after the transfer", Duration::from_secs(5), || {
        source.health.collections() > reads + 1
    });
    let state = egress::lock(&source.shared);
    assert_eq!(state.accounting(), Some(Accounting::Off));
    assert!(
        state.traffic().is_empty(),
        "no byte figures without accounting"
    );
    drop(state);
    assert_eq!(
        own_figure(
            &source,
            "tally_agent_conntrack_accounting",
            Some(("state", "off"))
        ),
        Some(1.0)
    );
    assert!(
        own_figure(
            &source,
            "tally_agent_conntrack_flows",
            Some(("state", "uncounted"))
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(source.health.error_count("accounting") >= 1);
    assert!(!source.health.is_up(), "the source says it is degraded");
}

#[test]
fn accounting_is_switched_on_when_allowed() {
    let Some((_serial, mut lab)) = lab("accounting_is_switched_on_when_allowed", "d", false) else {
        return;
    };
    lab.serve("world", WORLD_HOSTS);
    let source = start(&lab, Duration::from_secs(1), true);
    assert_eq!(
        egress::lock(&source.shared).accounting(),
        Some(Accounting::EnabledByAgent)
    );
    let sent = lab.send("pa", &["tcp:198.51.100.20:7000000".to_owned()]);
    wait_for(
        "the transfer to be counted",
        Duration::from_secs(10),
        || {
            by_class(&source, "frontend-0")
                .get(&Class::Internet)
                .is_some_and(|(tx, _)| within(*tx, sent, 0.02))
        },
    );
}

/// The kernel's table limit is global (a namespace cannot lower its own),
/// so this test lowers it for a few seconds and puts it back.
#[test]
fn a_full_table_is_counted_and_reading_goes_on() {
    let Some((_serial, mut lab)) = lab("a_full_table_is_counted_and_reading_goes_on", "e", true)
    else {
        return;
    };
    lab.serve("world", WORLD_HOSTS);
    let source = start(&lab, Duration::from_secs(1), true);
    let max_path = "/proc/sys/net/netfilter/nf_conntrack_max";
    let original = std::fs::read_to_string(max_path).expect("nf_conntrack_max");
    struct Restore<'a>(&'a str, String);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, &self.1);
        }
    }
    let _restore = Restore(max_path, original);
    std::fs::write(max_path, "40\n").expect("lower nf_conntrack_max");
    // Many short UDP flows: one entry per source port.
    let script = "import socket\nfor i in range(300):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'x' * 100, ('10.0.2.20', 9001))\n    s.close()\n";
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.ns("pa"),
        "python3",
        "-c",
        script,
    ]);
    wait_for(
        "the full table to be reported",
        Duration::from_secs(10),
        || source.health.error_count("table_full") >= 1,
    );
    let reads = source.health.collections();
    wait_for("reading to go on", Duration::from_secs(5), || {
        source.health.collections() > reads
    });
    let dropped = own_figure(&source, "tally_agent_conntrack_dropped", None);
    assert!(
        dropped.is_some_and(|d| d > 0.0),
        "kernel drops counted: {dropped:?}"
    );
}

/// Entering a namespace that does not exist is reported, not a crash.
#[test]
fn a_missing_namespace_is_an_error_not_a_crash() {
    let shared = SharedEgress::default();
    let health = SourceHealth::new("egress");
    let settings = EgressSettings {
        interval: Duration::from_secs(1),
        reader: Reader::Auto,
        netns: Some(PathBuf::from("/run/netns/tally-no-such-namespace")),
        enable_accounting: false,
        kernel: KernelPaths::under(Path::new("/proc")),
        proc_root: PathBuf::from("/proc"),
        rules: Rules::default(),
        node_name: "n".into(),
        pods: None,
        remote: Default::default(),
        place: Place::default(),
    };
    let thread = egress::spawn(
        settings,
        shared,
        health.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .expect("spawn");
    thread.join().expect("the thread ends cleanly");
    assert_eq!(health.error_count("netns"), 1);
    assert!(!health.is_up());
}

/// A writable cgroup hierarchy (v2, else a v1 controller).
fn cgroup_parent() -> Option<PathBuf> {
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/memory",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("cgroup.procs").exists())
}

/// A host-network pod's connection is its own, not the node's: the
/// kernel names the socket's holder (`/proc/net/tcp`, `/proc/<pid>/fd`)
/// and the holder's cgroup names the pod, as kubelet lays cgroups out.
#[test]
fn host_network_pods_are_attributed_by_socket_owner() {
    let _serial = serial();
    if !ready("host_network_pods_are_attributed_by_socket_owner") {
        return;
    }
    let Some(parent) = cgroup_parent() else {
        eprintln!(
            "SKIP host_network_pods_are_attributed_by_socket_owner: no cgroup hierarchy to place the pod's process in"
        );
        return;
    };
    let uid = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
    let cgroup = parent.join(format!("tally-test-{}-pod{uid}", std::process::id()));
    std::fs::create_dir_all(&cgroup).expect("cgroup");
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cgroup = RemoveDir(cgroup.clone());
    let mut lab = Lab::new("f");
    lab.sysctl("node", "net.netfilter.nf_conntrack_acct=1");
    lab.serve("world", WORLD_HOSTS);
    let store = pods();
    store.write().expect("pods").upsert(PodInfo {
        uid: uid.into(),
        namespace: "monitoring".into(),
        name: "node-exporter-x7k2p".into(),
        phase: "Running".into(),
        workload_kind: "DaemonSet".into(),
        workload_name: "node-exporter".into(),
        pod_ip: "10.0.1.10".into(),
        ..Default::default()
    });
    let source = start_with(&lab, Duration::from_secs(1), true, store);
    // The pod's process: in its cgroup, on the node's network, holding
    // its connection open across a read.
    let client = "import socket, sys, time\ns = socket.create_connection(('10.0.2.20', 9000))\ns.sendall(b'h' * int(sys.argv[1]))\ntime.sleep(3)\ns.close()\n";
    let node_ns = lab.ns("node");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {node_ns} python3 -c \"$0\" 8000000",
            cgroup.display()
        ))
        .arg(client)
        .status()
        .expect("pod process");
    assert!(status.success());
    // A process of the node itself, outside any pod.
    let status = Command::new("ip")
        .args([
            "netns", "exec", &node_ns, "python3", "-c", client, "7000000",
        ])
        .status()
        .expect("node process");
    assert!(status.success());
    wait_for(
        "the host connections to be counted",
        Duration::from_secs(20),
        || {
            let state = egress::lock(&source.shared);
            let sent = |kind: &str| -> u64 {
                state
                    .traffic()
                    .iter()
                    .filter(|t| {
                        t.owner.workload_kind == kind && t.destination.class == Class::CrossZone
                    })
                    .map(|t| t.transmit_bytes)
                    .sum()
            };
            sent("DaemonSet") >= 8_000_000 && sent("Node") >= 7_000_000
        },
    );
    let state = egress::lock(&source.shared);
    for (kind, expected) in [("DaemonSet", 8_000_000), ("Node", 7_000_000)] {
        let sent: u64 = state
            .traffic()
            .iter()
            .filter(|t| t.owner.workload_kind == kind && t.destination.class == Class::CrossZone)
            .map(|t| t.transmit_bytes)
            .sum();
        assert!(
            within(sent, expected, 0.02),
            "{kind}: counted {sent}, sent {expected}"
        );
    }
    let pod = state
        .traffic()
        .iter()
        .find(|t| t.owner.workload_kind == "DaemonSet")
        .expect("pod row");
    assert_eq!(
        (pod.owner.namespace.as_str(), pod.owner.pod.as_str()),
        ("monitoring", "node-exporter-x7k2p")
    );
}

/// The text reader (`/proc/net/nf_conntrack` of the namespace) counts a
/// connection that lives across reads just as the netlink reader does.
#[test]
fn the_procfs_reader_counts_long_lived_connections() {
    let Some((_serial, mut lab)) =
        lab("the_procfs_reader_counts_long_lived_connections", "g", true)
    else {
        return;
    };
    lab.serve("world", WORLD_HOSTS);
    let source = start_reader(&lab, Duration::from_secs(1), true, pods(), Reader::Procfs);
    let client = "import socket, time\ns = socket.create_connection(('10.50.0.20', 9000))\ns.sendall(b'p' * 7000000)\ntime.sleep(3)\ns.close()\n";
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.ns("pa"),
        "python3",
        "-c",
        client,
    ]);
    let (tx, _) = by_class(&source, "frontend-0")
        .get(&Class::CrossRegion)
        .copied()
        .unwrap_or_default();
    assert!(within(tx, 7_000_000, 0.02), "counted {tx}");
    assert_eq!(
        own_figure(
            &source,
            "tally_agent_conntrack_accounting",
            Some(("reader", "procfs"))
        ),
        Some(1.0)
    );
    assert_eq!(source.health.error_count("malformed"), 0);
}
