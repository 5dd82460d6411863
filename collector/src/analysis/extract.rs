//! The store → the analyzer's [`FleetSnapshot`]: every figure is a
//! statistic of the store's hourly and daily aggregates over the window
//! (one sketch merge per distribution), never a scan of raw points.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tally_analyzer::input::{
    Container, FleetSnapshot, Flow, GpuDevice, GpuUser, ModelServer, Node, WorkloadKey,
    WorkloadSpec,
};
use tally_analyzer::rightsizing::UsageHistory;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::identity;

use super::volumes;
use crate::store::{Granularity, Series, Stat, Store};

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;
/// A container's first hour is its start-up: its memory peak is kept
/// apart from the steady state.
const STARTUP_NS: u64 = HOUR_NS;

/// The window to extract.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Start, ns.
    pub from_ns: u64,
    /// End, ns.
    pub to_ns: u64,
    /// Start of the recent window idle GPUs are judged over, ns.
    pub idle_from_ns: u64,
}

pub(super) fn label(series: &Series, key: &str) -> String {
    series.label(key).unwrap_or_default().to_owned()
}

pub(super) fn workload(series: &Series) -> WorkloadKey {
    let (kind, name) = identity::workload_of(|key| series.label(key))
        .unwrap_or(("Pod", series.label("k8s.pod.name").unwrap_or_default()));
    WorkloadKey {
        namespace: label(series, "k8s.namespace.name"),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

/// Series of `def` with a point in the window.
pub(super) fn each<'a>(store: &'a Store, def: &MetricDef, span: Span) -> Vec<&'a Series> {
    store
        .family(&def.full_name())
        .filter(|s| s.last_ns >= span.from_ns)
        .collect()
}

/// `[start, end]` of the window the series was present in, and hours.
pub(super) fn presence(store: &Store, series: &Series, span: Span) -> (u64, f64) {
    let start = store
        .first_ns(series)
        .unwrap_or(span.from_ns)
        .max(span.from_ns);
    let end = series.last_ns.min(span.to_ns).max(start);
    // Hour precision: at least the hour it was seen in.
    (start, ((end - start) as f64 / 3.6e12).max(1.0 / 60.0))
}

/// Builds the snapshot.
pub fn extract(store: &Store, span: Span) -> FleetSnapshot {
    extract_phases(store, span).0
}

/// Builds the snapshot and says how long each part took (the analysis
/// benchmark prints them). The parts read the store only and fill
/// separate fields, so they run side by side.
pub fn extract_phases(store: &Store, span: Span) -> (FleetSnapshot, Vec<(&'static str, Duration)>) {
    let empty = || FleetSnapshot {
        from_ns: span.from_ns,
        to_ns: span.to_ns,
        ..FleetSnapshot::default()
    };
    type Part = fn(&Store, Span, &mut FleetSnapshot);
    let parts: [(&'static str, Part); 7] = [
        ("containers", containers),
        ("flows", flows),
        ("gpus", gpus),
        ("models", models),
        ("volumes", volumes::extract),
        ("workload_specs", workload_specs),
        ("nodes", nodes),
    ];
    let done: Vec<(&'static str, FleetSnapshot, Duration)> = std::thread::scope(|scope| {
        let running: Vec<_> = parts
            .into_iter()
            .map(|(name, part)| {
                scope.spawn(move || {
                    let began = Instant::now();
                    let mut filled = empty();
                    part(store, span, &mut filled);
                    (name, filled, began.elapsed())
                })
            })
            .collect();
        running
            .into_iter()
            .map(|part| match part.join() {
                Ok(done) => done,
                // A part panics only on a bug: pass it on.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut snapshot = empty();
    let mut phases = Vec::with_capacity(done.len());
    for (name, part, took) in done {
        // Every field named: a new one cannot be dropped here unnoticed.
        let FleetSnapshot {
            from_ns,
            to_ns: _,
            nodes,
            containers,
            gpu_devices,
            model_servers,
            flows,
            volumes,
            workload_specs,
        } = part;
        // Only the nodes part moves the start (see `nodes`).
        snapshot.from_ns = snapshot.from_ns.max(from_ns);
        snapshot.nodes.extend(nodes);
        snapshot.containers.extend(containers);
        snapshot.gpu_devices.extend(gpu_devices);
        snapshot.model_servers.extend(model_servers);
        snapshot.flows.extend(flows);
        snapshot.volumes.extend(volumes);
        snapshot.workload_specs.extend(workload_specs);
        phases.push((name, took));
    }
    // The right-sizer divides by the HPA's target where one scales the
    // workload on CPU (the KRR feedback spiral).
    let targets: HashMap<&WorkloadKey, f64> = snapshot
        .workload_specs
        .iter()
        .filter_map(|s| s.hpa_cpu_target.map(|t| (&s.workload, t)))
        .collect();
    if !targets.is_empty() {
        for container in &mut snapshot.containers {
            container.usage.hpa_cpu_target = targets.get(&container.workload).copied();
        }
    }
    (snapshot, phases)
}

/// Controller settings and pod start-up per workload: the newest report of
/// each controller fact, the strictest disruption budget, the slowest
/// pod's start-up (each pod reports a constant).
fn workload_specs(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    /// The spec, and when its replicas and rollout were last reported.
    type Entry = (WorkloadSpec, u64, u64);
    type Key<'a> = (&'a str, &'static str, &'a str);
    fn entry<'m, 'a>(specs: &'m mut HashMap<Key<'a>, Entry>, series: &'a Series) -> &'m mut Entry {
        let namespace = series.label("k8s.namespace.name").unwrap_or_default();
        let (kind, name) = identity::workload_of(|key| series.label(key))
            .unwrap_or(("Pod", series.label("k8s.pod.name").unwrap_or_default()));
        specs.entry((namespace, kind, name)).or_insert_with(|| {
            let spec = WorkloadSpec {
                workload: WorkloadKey {
                    namespace: namespace.to_owned(),
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                },
                ..WorkloadSpec::default()
            };
            (spec, 0, 0)
        })
    }
    let mut specs: HashMap<Key<'_>, Entry> = HashMap::new();
    for series in each(store, &catalog::WORKLOAD_REPLICAS, span) {
        let (spec, newest, _) = entry(&mut specs, series);
        if series.last_ns >= *newest {
            *newest = series.last_ns;
            spec.replicas = series.latest();
        }
    }
    for series in each(store, &catalog::WORKLOAD_ROLLOUT_MAX_UNAVAILABLE, span) {
        let (spec, _, newest) = entry(&mut specs, series);
        if series.last_ns >= *newest {
            *newest = series.last_ns;
            spec.rollout_max_unavailable = series.latest();
        }
    }
    for series in each(store, &catalog::POD_DISRUPTION_BUDGET_MIN_AVAILABLE, span) {
        let (spec, ..) = entry(&mut specs, series);
        if let Some(min_available) = series.latest()
            && spec
                .pdb_min_available
                .as_ref()
                .is_none_or(|(kept, _)| min_available > *kept)
        {
            spec.pdb_min_available = Some((min_available, label(series, "pdb")));
        }
    }
    for series in each(store, &catalog::POD_STARTUP, span) {
        let (spec, ..) = entry(&mut specs, series);
        if let Some(seconds) = series.latest() {
            spec.startup_seconds_max = Some(spec.startup_seconds_max.unwrap_or(0.0).max(seconds));
        }
    }
    for series in each(store, &catalog::WORKLOAD_HPA_TARGET_UTILIZATION, span) {
        if series.label("resource") != Some("cpu") {
            continue;
        }
        let (spec, ..) = entry(&mut specs, series);
        if let Some(target) = series.latest().filter(|t| *t > 0.0) {
            spec.hpa_cpu_target = Some(target);
        }
    }
    for series in each(store, &catalog::WORKLOAD_HPA_REPLICAS, span) {
        let (spec, ..) = entry(&mut specs, series);
        let Some(value) = series.latest() else {
            continue;
        };
        let (min, max) = spec.hpa_replicas.get_or_insert((1.0, value));
        match series.label("bound") {
            Some("min") => *min = value,
            Some("max") => *max = value,
            _ => {}
        }
    }
    let mut specs: Vec<WorkloadSpec> = specs.into_values().map(|(spec, ..)| spec).collect();
    specs.sort_unstable_by(|a, b| a.workload.cmp(&b.workload));
    snapshot.workload_specs = specs;
}

fn nodes(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut first_seen: Option<u64> = None;
    for series in each(store, &catalog::NODE_CPU_COUNT, span) {
        let name = label(series, "k8s.node.name");
        let (start, hours) = presence(store, series, span);
        first_seen = Some(first_seen.map_or(start, |first| first.min(start)));
        nodes.insert(
            name.clone(),
            Node {
                name,
                instance_type: label(series, "host.type"),
                zone: label(series, "cloud.availability_zone"),
                region: label(series, "cloud.region"),
                capacity_type: label(series, "tally.capacity_type"),
                cpus: series.latest().unwrap_or(0.0),
                hours,
                ..Node::default()
            },
        );
    }
    for series in each(store, &catalog::NODE_MEMORY_TOTAL, span) {
        if let Some(node) = nodes.get_mut(series.label("k8s.node.name").unwrap_or_default()) {
            node.memory_bytes = series.latest().unwrap_or(0.0);
        }
    }
    // A store younger than the window: the month is the rate over the
    // hours observed, not over the window (a fresh install would show a
    // fraction of its bill).
    if let Some(first) = first_seen {
        snapshot.from_ns = snapshot.from_ns.max(first);
    }
    // Physical GPUs: memory totals of whole GPUs and of MIG-enabled
    // parents (no MIG instance label).
    for series in each(store, &catalog::GPU_MEMORY_TOTAL, span) {
        if series.label("mig_instance").is_some() {
            continue;
        }
        if let Some(node) = nodes.get_mut(series.label("k8s.node.name").unwrap_or_default()) {
            node.gpu_count += 1;
            node.gpu_model = series.label("gpu_model").map(str::to_owned);
        }
    }
    snapshot.nodes = nodes.into_values().collect();
}

/// A container's series found so far, by container id.
#[derive(Default)]
struct Found<'a> {
    working_set: Option<&'a Series>,
    cpu: Option<&'a Series>,
    cpu_sampled: Option<&'a Series>,
    memory_sampled: Option<&'a Series>,
    oom_kills: Option<&'a Series>,
    memory_limit: Option<&'a Series>,
    periods: Option<&'a Series>,
    throttled: Option<&'a Series>,
    requests: Vec<&'a Series>,
    limits: Vec<&'a Series>,
}

fn containers(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    // Keyed by the id as the store holds it: no copy per series.
    let mut found: HashMap<&str, Found<'_>> = HashMap::new();
    fn id(series: &Series) -> Option<&str> {
        series.label("container.id")
    }
    for series in each(store, &catalog::CONTAINER_MEMORY_WORKING_SET, span) {
        if let Some(id) = id(series) {
            found.entry(id).or_default().working_set = Some(series);
        }
    }
    macro_rules! family {
        ($def:expr, $field:ident) => {
            for series in each(store, &$def, span) {
                if let Some(entry) = id(series).and_then(|id| found.get_mut(id)) {
                    entry.$field = Some(series);
                }
            }
        };
    }
    family!(catalog::CONTAINER_CPU_USAGE, cpu);
    family!(catalog::CONTAINER_CPU_USAGE_SAMPLED, cpu_sampled);
    family!(
        catalog::CONTAINER_MEMORY_WORKING_SET_SAMPLED,
        memory_sampled
    );
    family!(catalog::CONTAINER_MEMORY_OOM_KILLS, oom_kills);
    family!(catalog::CONTAINER_MEMORY_LIMIT, memory_limit);
    family!(catalog::CONTAINER_CPU_PERIODS, periods);
    family!(catalog::CONTAINER_CPU_THROTTLED_PERIODS, throttled);
    for (def, requests) in [
        (&catalog::CONTAINER_RESOURCE_REQUESTS, true),
        (&catalog::CONTAINER_RESOURCE_LIMITS, false),
    ] {
        for series in each(store, def, span) {
            if let Some(entry) = id(series).and_then(|id| found.get_mut(id)) {
                if requests {
                    entry.requests.push(series);
                } else {
                    entry.limits.push(series);
                }
            }
        }
    }
    // In container id order, as before the index was hashed.
    let mut entries: Vec<(&str, Found<'_>)> = found.into_iter().collect();
    entries.sort_unstable_by_key(|(id, _)| *id);
    let entries: Vec<&Found<'_>> = entries.iter().map(|(_, f)| f).collect();
    snapshot.containers =
        crate::parallel::map_on_cores(&entries, 256, |f| container(store, span, f))
            .into_iter()
            .flatten()
            .collect();
}

fn container(store: &Store, span: Span, found: &Found<'_>) -> Option<Container> {
    let working_set = found.working_set?;
    let (start, hours) = presence(store, working_set, span);
    let started_inside = store
        .first_ns(working_set)
        .is_some_and(|first| first >= span.from_ns);
    let steady_from = if started_inside {
        start + STARTUP_NS
    } else {
        start
    };
    let stat = |series: Option<&Series>, stat: Stat, from: u64| {
        series.and_then(|s| store.stat(s, stat, from, span.to_ns))
    };
    let mut c = Container {
        workload: workload(working_set),
        pod: label(working_set, "k8s.pod.name"),
        pod_uid: label(working_set, "k8s.pod.uid"),
        container: label(working_set, "k8s.container.name"),
        node: label(working_set, "k8s.node.name"),
        hours,
        ..Container::default()
    };
    for series in &found.requests {
        let value = series.latest().unwrap_or(0.0);
        match series.label("resource") {
            Some("cpu") => c.cpu_request = value,
            Some("memory") => c.memory_request = value,
            Some(device) => {
                c.devices.insert(device.to_owned(), value);
            }
            None => {}
        }
    }
    for series in &found.limits {
        // The agent reports an unlimited CPU as 0.
        let value = series.latest().filter(|v| *v > 0.0);
        match series.label("resource") {
            Some("cpu") => c.cpu_limit = value,
            Some("memory") => c.memory_limit = value,
            _ => {}
        }
    }
    let seconds = hours * 3600.0;
    if let Some(cpu) = found.cpu {
        // One pass: the total, the last 48 hours hour by hour and whole
        // days (the first and the current day are partial, so left out).
        let hourly_from = span.to_ns.saturating_sub(48 * HOUR_NS);
        let whole_from = start.div_ceil(DAY_NS) * DAY_NS;
        let mut total = 0.0;
        let mut days: BTreeMap<u64, f64> = BTreeMap::new();
        store.visit_summaries(cpu, start, span.to_ns, |granularity, summary| {
            let at = u64::from(summary.start) * HOUR_NS;
            total += summary.sum;
            if granularity == Granularity::Hour && at >= hourly_from / HOUR_NS * HOUR_NS {
                c.cpu_hourly.push((at, summary.sum));
            }
            let day = at / DAY_NS * DAY_NS;
            if day >= whole_from && day + DAY_NS <= span.to_ns {
                *days.entry(day).or_default() += summary.sum;
            }
        });
        c.cpu_mean = total / seconds.max(1.0);
        c.cpu_daily = days.into_iter().collect();
    }
    c.memory_mean = stat(Some(working_set), Stat::Avg, start).unwrap_or(0.0);
    // One read of the sampled memory's history: the steady-state
    // distribution and each day's peak (the day the container started
    // inside the window loses its start-up hour, which lies before
    // `steady_from`; older days are whole days).
    let first_day = span.from_ns / DAY_NS * DAY_NS;
    let mut day_peaks: BTreeMap<u64, f64> = BTreeMap::new();
    let memory = found.memory_sampled.and_then(|s| {
        store.distribution_visiting(s, steady_from, span.to_ns, |_, summary| {
            let day = u64::from(summary.start) * HOUR_NS / DAY_NS * DAY_NS;
            if day >= first_day {
                let peak = day_peaks.entry(day).or_insert(f64::NEG_INFINITY);
                *peak = peak.max(summary.max);
            }
        })
    });
    let peaks: Vec<f64> = day_peaks.into_values().collect();
    let startup_peak = if started_inside {
        found
            .memory_sampled
            .and_then(|s| store.stat(s, Stat::Max, start, steady_from))
    } else {
        None
    };
    // Throttling only matters under a limit.
    let (periods, throttled) = if c.cpu_limit.is_some() {
        (
            stat(found.periods, Stat::Increase, start),
            stat(found.throttled, Stat::Increase, start),
        )
    } else {
        (None, None)
    };
    // A counter whose running total is 0 never moved: no read needed.
    let oom_kills = found
        .oom_kills
        .filter(|s| s.latest().is_some_and(|total| total > 0.0))
        .and_then(|s| store.stat(s, Stat::Increase, start, span.to_ns))
        .unwrap_or(0.0);
    c.usage = UsageHistory {
        cpu: found
            .cpu_sampled
            .and_then(|s| store.distribution(s, start, span.to_ns)),
        memory,
        memory_startup_peak: startup_peak,
        memory_daily_peaks: peaks,
        oom_kills: oom_kills.round().max(0.0) as u64,
        oom_limit_bytes: (oom_kills > 0.0)
            .then(|| stat(found.memory_limit, Stat::Max, start))
            .flatten(),
        cpu_throttled_share: match (periods, throttled) {
            (Some(p), Some(t)) if p > 0.0 => Some((t / p).clamp(0.0, 1.0)),
            _ => None,
        },
        cpu_limit: c.cpu_limit,
        history_hours: hours,
        hpa_cpu_target: None,
    };
    Some(c)
}

/// Node, GPU UUID, MIG instance.
type DeviceKey = (String, String, String);

fn device_key(series: &Series) -> DeviceKey {
    (
        label(series, "k8s.node.name"),
        label(series, "gpu_uuid"),
        label(series, "mig_instance"),
    )
}

fn gpus(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    let mut devices: BTreeMap<DeviceKey, GpuDevice> = BTreeMap::new();
    let mut mig_parents: HashMap<(String, String), bool> = HashMap::new();
    for series in each(store, &catalog::GPU_MEMORY_TOTAL, span) {
        let key = device_key(series);
        if key.2.is_empty() {
            // A MIG-enabled GPU is known by its instances, not itself.
            mig_parents
                .entry((key.0.clone(), key.1.clone()))
                .or_insert(false);
        } else {
            mig_parents.insert((key.0.clone(), key.1.clone()), true);
        }
        let (_, hours) = presence(store, series, span);
        devices.insert(
            key.clone(),
            GpuDevice {
                node: key.0.clone(),
                gpu_uuid: key.1.clone(),
                gpu_model: label(series, "gpu_model"),
                mig_profile: series.label("mig_profile").map(str::to_owned),
                sharing: if key.2.is_empty() { "exclusive" } else { "mig" }.to_owned(),
                memory_total: series.latest().unwrap_or(0.0),
                hours,
                ..GpuDevice::default()
            },
        );
    }
    devices.retain(|key, _| {
        !key.2.is_empty() || mig_parents.get(&(key.0.clone(), key.1.clone())) != Some(&true)
    });
    for series in each(store, &catalog::GPU_UTILIZATION, span) {
        if let Some(device) = devices.get_mut(&device_key(series)) {
            device.utilization_mean = store
                .stat(series, Stat::Avg, span.from_ns, span.to_ns)
                .unwrap_or(0.0);
            device.recent_utilization_max =
                store.stat(series, Stat::Max, span.idle_from_ns, span.to_ns);
        }
    }
    // Power belongs to the physical GPU.
    let mut power: HashMap<(String, String), f64> = HashMap::new();
    for series in each(store, &catalog::GPU_POWER, span) {
        if let Some(p) = store.stat(series, Stat::Avg, span.idle_from_ns, span.to_ns) {
            power.insert(
                (label(series, "k8s.node.name"), label(series, "gpu_uuid")),
                p,
            );
        }
    }
    for device in devices.values_mut() {
        device.recent_power_mean = power
            .get(&(device.node.clone(), device.gpu_uuid.clone()))
            .copied();
    }
    // Users, by (device, container id).
    let mut users: BTreeMap<(DeviceKey, String), GpuUser> = BTreeMap::new();
    for series in each(store, &catalog::CONTAINER_GPU_UTILIZATION, span) {
        let key = device_key(series);
        if let Some(device) = devices.get_mut(&key)
            && let Some(sharing) = series.label("sharing")
        {
            device.sharing = sharing.to_owned();
        }
        let user = users
            .entry((key, label(series, "container.id")))
            .or_insert_with(|| gpu_user(series));
        let [mean, p95] = store.stat_many(
            series,
            [Stat::Avg, Stat::Quantile(0.95)],
            span.from_ns,
            span.to_ns,
        );
        user.utilization_mean = mean.unwrap_or(0.0);
        user.utilization_p95 = p95.unwrap_or(0.0);
    }
    for series in each(store, &catalog::CONTAINER_GPU_MEMORY_USED, span) {
        let user = users
            .entry((device_key(series), label(series, "container.id")))
            .or_insert_with(|| gpu_user(series));
        let [mean, p99, max] = store.stat_many(
            series,
            [Stat::Avg, Stat::Quantile(0.99), Stat::Max],
            span.from_ns,
            span.to_ns,
        );
        user.memory_mean = mean.unwrap_or(0.0);
        user.memory_p99 = p99.unwrap_or(0.0);
        user.memory_max = max.unwrap_or(0.0);
    }
    for ((key, _), user) in users {
        if let Some(device) = devices.get_mut(&key) {
            device.users.push(user);
        }
    }
    snapshot.gpu_devices = devices.into_values().collect();
}

fn gpu_user(series: &Series) -> GpuUser {
    GpuUser {
        workload: workload(series),
        pod: label(series, "k8s.pod.name"),
        container: label(series, "k8s.container.name"),
        ..GpuUser::default()
    }
}

fn models(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    // One server per pod and model.
    let mut servers: BTreeMap<(String, String), ModelServer> = BTreeMap::new();
    let key = |s: &Series| (label(s, "k8s.pod.uid"), label(s, "model"));
    for series in each(store, &catalog::MODEL_INFO, span) {
        let (_, hours) = presence(store, series, span);
        servers.insert(
            key(series),
            ModelServer {
                workload: workload(series),
                pod: label(series, "k8s.pod.name"),
                engine: label(series, "engine"),
                model: label(series, "model"),
                hours,
                ..ModelServer::default()
            },
        );
    }
    let increase = |s: &Series, from: u64| store.stat(s, Stat::Increase, from, span.to_ns);
    for (def, generated) in [
        (&catalog::MODEL_PROMPT_TOKENS, false),
        (&catalog::MODEL_GENERATION_TOKENS, true),
    ] {
        for series in each(store, def, span) {
            if let Some(server) = servers.get_mut(&key(series)) {
                let tokens = increase(series, span.from_ns).unwrap_or(0.0);
                if generated {
                    server.generation_tokens += tokens;
                } else {
                    server.prompt_tokens += tokens;
                }
                let recent = increase(series, span.idle_from_ns).unwrap_or(0.0);
                server.recent_tokens = Some(server.recent_tokens.unwrap_or(0.0) + recent);
            }
        }
    }
    for series in each(store, &catalog::MODEL_REQUESTS, span) {
        if let Some(server) = servers.get_mut(&key(series)) {
            server.requests += increase(series, span.from_ns).unwrap_or(0.0);
        }
    }
    for series in each(store, &catalog::MODEL_TIME_TO_FIRST_TOKEN, span) {
        if let Some(server) = servers.get_mut(&key(series)) {
            [server.ttft_p95, server.prefill_seconds] = store.stat_many(
                series,
                [Stat::Quantile(0.95), Stat::Increase],
                span.from_ns,
                span.to_ns,
            );
        }
    }
    for series in each(store, &catalog::MODEL_INTER_TOKEN_LATENCY, span) {
        if let Some(server) = servers.get_mut(&key(series)) {
            [server.itl_p95, server.decode_seconds] = store.stat_many(
                series,
                [Stat::Quantile(0.95), Stat::Increase],
                span.from_ns,
                span.to_ns,
            );
        }
    }
    for series in each(store, &catalog::MODEL_REQUEST_QUEUE_TIME, span) {
        if let Some(server) = servers.get_mut(&key(series)) {
            server.queue_p95 = store.stat(series, Stat::Quantile(0.95), span.from_ns, span.to_ns);
        }
    }
    snapshot.model_servers = servers.into_values().collect();
}

/// Increase of each counter over `[from, to]` (0 when absent), spread
/// over the cores: a fleet has a series per pod and destination.
fn increases(store: &Store, series: &[&Series], from: u64, to: u64) -> Vec<f64> {
    store
        .stat_all(series, Stat::Increase, from, to)
        .into_iter()
        .map(|v| v.unwrap_or(0.0))
        .collect()
}

fn flows(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    // Keyed by the label values as the store holds them (no copies per
    // series): workload, node, class, destination workload and service.
    type Key<'a> = [&'a str; 8];
    let mut flows: HashMap<Key<'_>, Flow> = HashMap::new();
    for (def, transmit) in [
        (&catalog::POD_NETWORK_TRANSMIT, true),
        (&catalog::POD_NETWORK_RECEIVE, false),
    ] {
        let series_of = each(store, def, span);
        let increases = increases(store, &series_of, span.from_ns, span.to_ns);
        for (series, bytes) in series_of.into_iter().zip(increases) {
            let get = |key: &str| series.label(key).unwrap_or_default();
            // Host processes' traffic is the node's (agent's egress source).
            let (kind, name) = if series.label("tally.workload.kind") == Some("Node") {
                ("Node", get("k8s.node.name"))
            } else {
                identity::workload_of(|key| series.label(key))
                    .unwrap_or(("Pod", get("k8s.pod.name")))
            };
            let destination = match (
                series.label("destination_namespace"),
                series.label("destination_workload"),
            ) {
                (Some(ns), Some(name)) if !name.is_empty() => [ns, name],
                _ => ["", ""],
            };
            let key: Key<'_> = [
                get("k8s.namespace.name"),
                kind,
                name,
                get("k8s.node.name"),
                get("destination_class"),
                destination[0],
                destination[1],
                get("destination_service"),
            ];
            let flow = flows.entry(key).or_insert_with(|| Flow {
                workload: WorkloadKey {
                    namespace: key[0].to_owned(),
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                },
                node: key[3].to_owned(),
                class: key[4].to_owned(),
                destination_workload: (!destination[1].is_empty())
                    .then(|| format!("{}/{}", destination[0], destination[1])),
                destination_service: (!key[7].is_empty()).then(|| key[7].to_owned()),
                ..Flow::default()
            });
            if transmit {
                flow.transmit_bytes += bytes;
            } else {
                flow.receive_bytes += bytes;
            }
        }
    }
    // A stable order for the analyzer and its tests.
    let mut flows: Vec<(Key<'_>, Flow)> = flows.into_iter().collect();
    flows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    snapshot.flows = flows.into_iter().map(|(_, flow)| flow).collect();
}
