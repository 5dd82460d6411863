//! Egress source: bytes every pod sends and receives, by destination
//! class, from the kernel's connection tracking (see `netlink.rs`; the
//! procfs reader is the fallback), classified against the node's place
//! in the cluster (`classify.rs`) and turned into per-pod counters
//! (`ledger.rs`).
//!
//! The source runs on a thread of its own because it may enter another
//! network namespace (`egress.netns`: the host's, for an agent that is
//! not on the host network), and a thread's namespace is its own.

pub mod classify;
pub mod flow;
pub mod hash;
pub mod kernel;
pub mod ledger;
pub mod netlink;
pub mod owner;
pub mod procfs;
pub mod topology;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tally_schema::catalog;
use tally_schema::identity::ContainerIdentity;

use self::classify::{Place, Remote, Rules, Topology, Workload};
use self::kernel::{Accounting, KernelPaths};
use self::ledger::{Ledger, Traffic};
use self::netlink::{Conntrack, Message};
use crate::sources::gpu::GpuPoint;
use crate::sources::pods::model::SharedPodStore;
use crate::telemetry::SourceHealth;

/// Which table reader to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reader {
    /// Netlink when it opens, else procfs.
    Auto,
    /// ctnetlink dumps and DESTROY events only.
    Netlink,
    /// `/proc/net/nf_conntrack` only (no events).
    Procfs,
}

impl Reader {
    fn as_str(self) -> &'static str {
        match self {
            Reader::Auto => "auto",
            Reader::Netlink => "netlink",
            Reader::Procfs => "procfs",
        }
    }
}

/// Pods and nodes elsewhere in the cluster, by IP (learnt from the
/// collector).
pub type SharedRemote = Arc<RwLock<hash::FastMap<IpAddr, Remote>>>;

/// What the source needs.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// Time between dumps.
    pub interval: Duration,
    /// Table reader.
    pub reader: Reader,
    /// Network namespace to read (a `/proc/<pid>/ns/net` or
    /// `/run/netns/<name>` path); the agent's own when `None`.
    pub netns: Option<PathBuf>,
    /// Switch `nf_conntrack_acct` on when it is off.
    pub enable_accounting: bool,
    /// Kernel files (a test may point them elsewhere).
    pub kernel: KernelPaths,
    /// The proc mount that shows the node's processes (owners of
    /// host-network sockets).
    pub proc_root: PathBuf,
    /// Destination maps.
    pub rules: Rules,
    /// This node's name (owner of host processes' traffic).
    pub node_name: String,
    /// The node's pods, when the pod watch runs.
    pub pods: Option<SharedPodStore>,
    /// The rest of the cluster.
    pub remote: SharedRemote,
    /// This node's place when the pod watch does not tell it.
    pub place: Place,
}

/// The source's last figures.
#[derive(Debug, Clone, Default)]
pub struct EgressState {
    traffic: Vec<Traffic>,
    accounting: Option<Accounting>,
    reader: &'static str,
    stats: ledger::Stats,
    entries: Option<(u64, u64)>,
    dropped: Option<u64>,
    events_lost: u64,
    read_seconds: f64,
    read_cpu_seconds: f64,
}

/// The state behind its lock.
pub type SharedEgress = Arc<Mutex<EgressState>>;

/// Locks the state, recovering from a panicked holder.
pub fn lock(shared: &SharedEgress) -> MutexGuard<'_, EgressState> {
    match shared.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl EgressState {
    /// Bytes by pod and destination since the agent started.
    pub fn traffic(&self) -> &[Traffic] {
        &self.traffic
    }

    /// The accounting state, once known.
    pub fn accounting(&self) -> Option<Accounting> {
        self.accounting
    }

    /// The source's own figures, as node points.
    pub fn points(&self) -> Vec<GpuPoint> {
        let Some(accounting) = self.accounting else {
            return Vec::new();
        };
        let point = |def, attributes: Vec<(&'static str, String)>, value: f64| GpuPoint {
            def,
            attributes,
            value,
        };
        let mut out = vec![
            point(
                &catalog::AGENT_CONNTRACK_ACCOUNTING,
                vec![
                    ("state", accounting.as_str().to_owned()),
                    ("reader", self.reader.to_owned()),
                ],
                1.0,
            ),
            point(
                &catalog::AGENT_CONNTRACK_READ_DURATION,
                Vec::new(),
                self.read_seconds,
            ),
            point(
                &catalog::AGENT_CONNTRACK_READ_CPU,
                Vec::new(),
                self.read_cpu_seconds,
            ),
        ];
        for (state, value) in [
            ("tracked", self.stats.tracked),
            ("uncounted", self.stats.uncounted),
            ("unattributed", self.stats.unattributed),
        ] {
            out.push(point(
                &catalog::AGENT_CONNTRACK_FLOWS,
                vec![("state", state.to_owned())],
                value as f64,
            ));
        }
        for (outcome, value) in [
            ("destroyed", self.stats.destroyed),
            ("lost", self.events_lost),
            ("missed", self.stats.vanished),
        ] {
            out.push(point(
                &catalog::AGENT_CONNTRACK_EVENTS,
                vec![("outcome", outcome.to_owned())],
                value as f64,
            ));
        }
        if let Some((entries, limit)) = self.entries {
            out.push(point(
                &catalog::AGENT_CONNTRACK_ENTRIES,
                Vec::new(),
                entries as f64,
            ));
            out.push(point(
                &catalog::AGENT_CONNTRACK_LIMIT,
                Vec::new(),
                limit as f64,
            ));
        }
        if let Some(dropped) = self.dropped {
            out.push(point(
                &catalog::AGENT_CONNTRACK_DROPPED,
                Vec::new(),
                dropped as f64,
            ));
        }
        out
    }
}

/// Table fill above which the source reports `table_full`: new
/// connections are about to be dropped by the kernel.
const FULL_TABLE: f64 = 0.95;
/// How long an owner may be missing from the pod list before its totals
/// are forgotten (its last connections' events arrive after it is gone).
const OWNER_GRACE: Duration = Duration::from_secs(600);
/// The read interval stretches so a pass costs at most this share of a
/// core: the kernel's side of a dump is a few microseconds per
/// connection, whoever reads it (`conntrack -L` included), and DESTROY
/// events keep short connections counted at any interval.
const CPU_SHARE: f64 = 0.01;
/// The longest the interval stretches to.
const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// Longest wait for events before the stop flag is checked again.
const EVENT_WAIT: Duration = Duration::from_millis(200);

/// Starts the source's thread.
pub fn spawn(
    settings: EgressSettings,
    shared: SharedEgress,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tally-egress".into())
        .spawn(move || run(settings, shared, health, stop))
}

/// CPU time of the calling thread, user and kernel.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The node's own identity as an owner.
fn node_owner(node: &str) -> ContainerIdentity {
    ContainerIdentity {
        workload_kind: "Node".into(),
        workload_name: node.to_owned(),
        ..Default::default()
    }
}

enum Table {
    Netlink(Conntrack),
    Procfs(PathBuf),
}

fn enter_namespace(path: &std::path::Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

fn open_table(settings: &EgressSettings, health: &SourceHealth) -> Option<Table> {
    let procfs = settings.kernel.net.join("nf_conntrack");
    if settings.reader != Reader::Procfs {
        match Conntrack::open(true) {
            Ok(conntrack) => return Some(Table::Netlink(conntrack)),
            Err(error) => {
                health.error(
                    "netlink",
                    &format!("cannot open ctnetlink (needs CAP_NET_ADMIN): {error}"),
                );
                if settings.reader == Reader::Netlink {
                    return None;
                }
            }
        }
    }
    if procfs.exists() {
        Some(Table::Procfs(procfs))
    } else {
        health.error("procfs", &format!("{} is absent", procfs.display()));
        None
    }
}

/// This pass's view of the node: its addresses, its pods and the rest of
/// the cluster.
fn topology(settings: &EgressSettings, ledger: &mut Ledger, health: &SourceHealth) -> Topology {
    let mut topology = Topology {
        place: settings.place.clone(),
        ..Topology::default()
    };
    let mut host_pods = Vec::new();
    match kernel::local_addresses(&settings.kernel) {
        Ok(addresses) => topology.host_addresses = addresses,
        Err(error) => health.error("addresses", &error),
    }
    let node = ledger.owner(&node_owner(&settings.node_name));
    let mut own: Vec<String> = topology
        .host_addresses
        .iter()
        .filter(|a| !classify::is_node_local(**a))
        .map(|a| a.to_string())
        .collect();
    own.sort();
    ledger.set_address(node, &own.join(","));
    let mut workloads: Vec<Workload> =
        vec![Workload::default(); ledger.owners().max(node as usize + 1)];
    if let Some(pods) = &settings.pods {
        let pods = match pods.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(identity) = pods.node() {
            if !identity.zone.is_empty() {
                topology.place.zone = Arc::from(identity.zone.as_str());
            }
            if !identity.region.is_empty() {
                topology.place.region = Arc::from(identity.region.as_str());
            }
        }
        for pod in pods.pods() {
            let Ok(address) = pod.pod_ip.parse::<IpAddr>() else {
                continue;
            };
            let owner = ledger.owner(&pod.identity()) as usize;
            // Host-network pods share the node's address: their
            // connections are found by socket owner.
            if topology.host_addresses.contains(&address) {
                host_pods.push((pod.uid.clone(), owner));
                if workloads.len() <= owner {
                    workloads.resize(owner + 1, Workload::default());
                }
                continue;
            }
            ledger.set_address(owner as u32, &pod.pod_ip);
            if workloads.len() <= owner {
                workloads.resize(owner + 1, Workload::default());
            }
            workloads[owner] = Workload {
                namespace: Arc::from(pod.namespace.as_str()),
                name: Arc::from(if pod.workload_name.is_empty() {
                    pod.name.as_str()
                } else {
                    pod.workload_name.as_str()
                }),
            };
            topology.local_pods.insert(address, owner);
        }
    }
    topology.local_workloads = workloads;
    host_pods.sort();
    topology.host_sockets = std::cell::RefCell::new(owner::HostSockets::new(
        settings.kernel.net.clone(),
        settings.proc_root.clone(),
        host_pods,
    ));
    topology.remote = match settings.remote.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    topology
}

fn same_topology(a: &Topology, b: &Topology) -> bool {
    a.place == b.place
        && a.host_addresses == b.host_addresses
        && a.local_pods == b.local_pods
        && a.local_workloads == b.local_workloads
        && a.remote == b.remote
        && a.host_sockets.borrow().pods == b.host_sockets.borrow().pods
}

fn run(
    settings: EgressSettings,
    shared: SharedEgress,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) {
    if let Some(path) = &settings.netns
        && let Err(error) = enter_namespace(path)
    {
        health.error(
            "netns",
            &format!("cannot enter {}: {error}", path.display()),
        );
        health.set_up(false);
        return;
    }
    let (mut accounting, why) = kernel::accounting(&settings.kernel, settings.enable_accounting);
    if let Some(error) = why {
        health.error(
            "accounting",
            &format!("connection accounting is off, no byte figures: {error}"),
        );
    }
    let Some(mut table) = open_table(&settings, &health) else {
        health.set_up(false);
        lock(&shared).accounting = Some(accounting);
        return;
    };
    let reader = match &table {
        Table::Netlink(_) => Reader::Netlink,
        Table::Procfs(_) => Reader::Procfs,
    };
    tracing::info!(reader = reader.as_str(), accounting = accounting.as_str(), netns = ?settings.netns, "egress source started");
    let mut ledger = Ledger::default();
    let node = ledger.owner(&node_owner(&settings.node_name));
    let mut current = Topology::default();
    let mut events_lost = 0u64;
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    let mut interval = settings.interval;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let cpu_started = thread_cpu();
        let next = topology(&settings, &mut ledger, &health);
        if !same_topology(&next, &current) {
            current = next;
            ledger.topology_changed();
        }
        current.host_sockets.borrow_mut().forget();
        if accounting == Accounting::Off {
            accounting = kernel::accounting(&settings.kernel, false).0;
        }
        let entries = match kernel::table_fill(&settings.kernel) {
            Ok((count, max)) => {
                if max > 0 && count as f64 >= max as f64 * FULL_TABLE {
                    health.error("table_full", &format!("{count} of {max} conntrack entries used: the kernel drops new connections"));
                }
                Some((count, max))
            }
            Err(error) => {
                health.error("table_fill", &error);
                None
            }
        };
        if let Some((count, _)) = entries {
            ledger.reserve(count as usize);
        }
        let mut interrupted = false;
        let mut failed = false;
        ledger.begin_dump();
        let rules = &settings.rules;
        let result = match &mut table {
            Table::Netlink(conntrack) => conntrack.dump(&mut |message| match message {
                Message::Flow { flow, destroyed } => {
                    ledger.observe(&flow, destroyed, &current, rules, node)
                }
                Message::Interrupted => interrupted = true,
                Message::Done => {}
                Message::Error(code) => {
                    failed = true;
                    health.error(
                        "netlink",
                        &format!("conntrack dump refused: errno {}", -code),
                    );
                }
                Message::Malformed(what) => health.error("malformed", &what),
            }),
            Table::Procfs(path) => std::fs::File::open(&*path).and_then(|file| {
                procfs::read(
                    io::BufReader::with_capacity(256 * 1024, file),
                    &mut |flow| ledger.observe(&flow, false, &current, rules, node),
                    &mut |what| health.error("malformed", &what),
                )
            }),
        };
        if let Err(error) = result {
            failed = true;
            health.error("read", &error);
        }
        // A failed dump saw only part of the table.
        ledger.end_dump(interrupted || failed);
        let dropped = kernel::dropped(&settings.kernel).ok();
        // Forget pods gone for a while.
        if let Some(pods) = &settings.pods {
            let live: HashSet<String> = match pods.read() {
                Ok(guard) => guard.pods().map(|p| p.uid.clone()).collect(),
                Err(poisoned) => poisoned
                    .into_inner()
                    .pods()
                    .map(|p| p.uid.clone())
                    .collect(),
            };
            let now = Instant::now();
            let mut expired = HashSet::new();
            for owner in ledger.counted_owners() {
                let uid = &owner.pod_uid;
                if uid.is_empty() || live.contains(uid) {
                    missing_since.remove(uid);
                    continue;
                }
                let since = *missing_since.entry(uid.clone()).or_insert(now);
                if now.duration_since(since) > OWNER_GRACE {
                    expired.insert(uid.clone());
                }
            }
            if !expired.is_empty() {
                ledger.retain_owners(|o| !expired.contains(&o.pod_uid));
                for uid in &expired {
                    missing_since.remove(uid);
                }
            }
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu_started);
        let wanted = cpu
            .div_f64(CPU_SHARE)
            .clamp(settings.interval, MAX_INTERVAL.max(settings.interval));
        if wanted > interval + interval / 4 || wanted < interval {
            if wanted > settings.interval {
                tracing::info!(
                    pass_cpu_ms = cpu.as_millis() as u64,
                    interval_s = wanted.as_secs(),
                    "egress: conntrack reads spaced out to stay under 1% of a core"
                );
            }
            interval = wanted;
        }
        {
            let mut state = lock(&shared);
            state.traffic = if accounting == Accounting::Off {
                Vec::new()
            } else {
                ledger.traffic()
            };
            state.accounting = Some(accounting);
            state.reader = reader.as_str();
            state.stats = ledger.stats();
            state.entries = entries;
            state.dropped = dropped;
            state.events_lost = events_lost;
            state.read_seconds = elapsed.as_secs_f64();
            state.read_cpu_seconds = cpu.as_secs_f64();
        }
        if failed || accounting == Accounting::Off {
            health.record_degraded(elapsed);
        } else {
            health.record_success(elapsed);
        }
        // Between dumps, DESTROY events carry the final counters.
        let deadline = started + interval;
        loop {
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Relaxed) {
                break;
            }
            let wait = (deadline - now).min(EVENT_WAIT);
            let Table::Netlink(conntrack) = &mut table else {
                std::thread::sleep(wait);
                continue;
            };
            let received = conntrack.events(wait, &mut |message| match message {
                Message::Flow {
                    flow,
                    destroyed: true,
                } => ledger.observe(&flow, true, &current, rules, node),
                Message::Malformed(what) => health.error("malformed", &what),
                _ => {}
            });
            match received {
                Ok(_) => {}
                Err(error)
                    if error.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) =>
                {
                    events_lost += 1;
                    health.error("events_lost", &"the event socket overflowed: connections that ended since are counted from the next dump only");
                }
                Err(error) => {
                    health.error("events", &error);
                    std::thread::sleep(wait);
                }
            }
        }
    }
}
