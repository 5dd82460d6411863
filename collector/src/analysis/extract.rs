//! The store → the analyzer's [`FleetSnapshot`]: every figure is a
//! statistic of the store's hourly and daily aggregates over the window
//! (one sketch merge per distribution), never a scan of raw points.

use std::collections::{BTreeMap, HashMap};

use tally_analyzer::input::{
    Container, FleetSnapshot, Flow, GpuDevice, GpuUser, ModelServer, Node, WorkloadKey,
};
use tally_analyzer::rightsizing::UsageHistory;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::identity;

use super::volumes;
use crate::store::{Series, Stat, Store};

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
    let mut snapshot = FleetSnapshot {
        from_ns: span.from_ns,
        to_ns: span.to_ns,
        ..FleetSnapshot::default()
    };
    nodes(store, span, &mut snapshot);
    containers(store, span, &mut snapshot);
    gpus(store, span, &mut snapshot);
    models(store, span, &mut snapshot);
    flows(store, span, &mut snapshot);
    volumes::extract(store, span, &mut snapshot);
    snapshot
}

fn nodes(store: &Store, span: Span, snapshot: &mut FleetSnapshot) {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for series in each(store, &catalog::NODE_CPU_COUNT, span) {
        let name = label(series, "k8s.node.name");
        let (_, hours) = presence(store, series, span);
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
    let mut found: BTreeMap<String, Found<'_>> = BTreeMap::new();
    let id = |s: &Series| s.label("container.id").map(str::to_owned);
    for series in each(store, &catalog::CONTAINER_MEMORY_WORKING_SET, span) {
        if let Some(id) = id(series) {
            found.entry(id).or_default().working_set = Some(series);
        }
    }
    macro_rules! family {
        ($def:expr, $field:ident) => {
            for series in each(store, &$def, span) {
                if let Some(entry) = id(series).and_then(|id| found.get_mut(&id)) {
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
            if let Some(entry) = id(series).and_then(|id| found.get_mut(&id)) {
                if requests {
                    entry.requests.push(series);
                } else {
                    entry.limits.push(series);
                }
            }
        }
    }
    let entries: Vec<&Found<'_>> = found.values().collect();
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
        c.cpu_hourly = store.hourly_sums(cpu, span.to_ns.saturating_sub(48 * HOUR_NS), span.to_ns);
    }
    c.cpu_mean = stat(found.cpu, Stat::Increase, start).unwrap_or(0.0) / seconds.max(1.0);
    c.memory_mean = stat(Some(working_set), Stat::Avg, start).unwrap_or(0.0);
    let memory = found
        .memory_sampled
        .and_then(|s| store.distribution(s, steady_from, span.to_ns));
    let startup_peak = if started_inside {
        found
            .memory_sampled
            .and_then(|s| store.stat(s, Stat::Max, start, steady_from))
    } else {
        None
    };
    // Daily peaks in one pass over the days (cold history is read once);
    // the day a container started inside the window loses its start-up
    // hour.
    let mut peaks = Vec::new();
    if let Some(series) = found.memory_sampled {
        let first_day = span.from_ns / DAY_NS * DAY_NS;
        for (day, peak) in store.daily_peaks(series) {
            if day < first_day || day > span.to_ns {
                continue;
            }
            if started_inside && day + DAY_NS > start && day <= start {
                let end = (day + DAY_NS - 1).min(span.to_ns);
                if steady_from < end
                    && let Some(steady) = store.stat(series, Stat::Max, steady_from, end)
                {
                    peaks.push(steady);
                }
            } else {
                peaks.push(peak);
            }
        }
    }
    // Throttling only matters under a limit.
    let (periods, throttled) = if c.cpu_limit.is_some() {
        (
            stat(found.periods, Stat::Increase, start),
            stat(found.throttled, Stat::Increase, start),
        )
    } else {
        (None, None)
    };
    let oom_kills = stat(found.oom_kills, Stat::Increase, start).unwrap_or(0.0);
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
        user.utilization_mean = store
            .stat(series, Stat::Avg, span.from_ns, span.to_ns)
            .unwrap_or(0.0);
        user.utilization_p95 = store
            .stat(series, Stat::Quantile(0.95), span.from_ns, span.to_ns)
            .unwrap_or(0.0);
    }
    for series in each(store, &catalog::CONTAINER_GPU_MEMORY_USED, span) {
        let user = users
            .entry((device_key(series), label(series, "container.id")))
            .or_insert_with(|| gpu_user(series));
        let stat = |stat| {
            store
                .stat(series, stat, span.from_ns, span.to_ns)
                .unwrap_or(0.0)
        };
        user.memory_mean = stat(Stat::Avg);
        user.memory_p99 = stat(Stat::Quantile(0.99));
        user.memory_max = stat(Stat::Max);
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
            server.ttft_p95 = store.stat(series, Stat::Quantile(0.95), span.from_ns, span.to_ns);
            server.prefill_seconds = increase(series, span.from_ns);
        }
    }
    for series in each(store, &catalog::MODEL_INTER_TOKEN_LATENCY, span) {
        if let Some(server) = servers.get_mut(&key(series)) {
            server.itl_p95 = store.stat(series, Stat::Quantile(0.95), span.from_ns, span.to_ns);
            server.decode_seconds = increase(series, span.from_ns);
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
    let mut flows: BTreeMap<Vec<String>, Flow> = BTreeMap::new();
    for (def, transmit) in [
        (&catalog::POD_NETWORK_TRANSMIT, true),
        (&catalog::POD_NETWORK_RECEIVE, false),
    ] {
        let series_of = each(store, def, span);
        let increases = increases(store, &series_of, span.from_ns, span.to_ns);
        for (series, bytes) in series_of.into_iter().zip(increases) {
            let w = workload(series);
            let destination = match (
                series.label("destination_namespace"),
                series.label("destination_workload"),
            ) {
                (Some(ns), Some(name)) if !name.is_empty() => Some(format!("{ns}/{name}")),
                _ => None,
            };
            let key = vec![
                w.to_string(),
                label(series, "k8s.node.name"),
                label(series, "destination_class"),
                destination.clone().unwrap_or_default(),
                label(series, "destination_service"),
            ];
            let flow = flows.entry(key).or_insert_with(|| Flow {
                workload: w,
                node: label(series, "k8s.node.name"),
                class: label(series, "destination_class"),
                destination_workload: destination,
                destination_service: series
                    .label("destination_service")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                ..Flow::default()
            });
            if transmit {
                flow.transmit_bytes += bytes;
            } else {
                flow.receive_bytes += bytes;
            }
        }
    }
    snapshot.flows = flows.into_values().collect();
}
