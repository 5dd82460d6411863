//! The `gpu` source: NVIDIA GPUs through NVML (or a replayed recording),
//! every reading as the catalog's GPU families, and every GPU byte and
//! cycle attributed to a container by its processes' host PIDs.
//!
//! - The backend starts lazily on the first collection. A node without
//!   NVML (`LibloadingError`) or without a loaded driver is a non-GPU
//!   node: logged once, `up` stays 0, no retries.
//! - Per container: memory from NVML's compute processes, SM share from
//!   its process utilization samples (whole and time-sliced GPUs) or the
//!   MIG instance's GPM SM activity split by memory held (MIG).
//! - `sharing`: `mig` on a MIG instance, `time_sliced` when several
//!   containers use one whole GPU, else `exclusive`.

pub mod attribution;
pub mod backend;
pub mod dcgm;
pub mod nvml;
pub mod readings;
pub mod replay;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tally_schema::catalog::{self, MetricDef};
use tally_schema::identity::{ContainerIdentity, GpuIdentity};

use self::attribution::{ContainerRef, PidMap};
use self::backend::{GpuBackend, GpuError};
use self::readings::{Device, Frame};
use crate::sources::pods::model::PodStore;
use crate::telemetry::SourceHealth;

/// NVML's throttle reasons, each reported 1 or 0 (absent reasons are 0).
pub const THROTTLE_REASONS: &[&str] = &[
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
];

/// One point of a GPU family: its attributes (GPU labels and the
/// family's own) and value. The serving source's points take this shape
/// too, so one renderer writes both.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPoint {
    /// The family.
    pub def: &'static MetricDef,
    /// Labels past the node (or the container's labels).
    pub attributes: Vec<(&'static str, String)>,
    /// Value in the family's unit.
    pub value: f64,
}

/// The GPU points of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerGpuPoints {
    /// The container.
    pub identity: ContainerIdentity,
    /// Its points (`tally_container_gpu_*`).
    pub points: Vec<GpuPoint>,
    /// When they were read, if not at export time (a scraped page's
    /// counters carry the scrape's time, so rates are exact).
    pub read_at: Option<std::time::SystemTime>,
}

/// The latest GPU picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSnapshot {
    /// Device families (they ride on the node).
    pub node: Vec<GpuPoint>,
    /// Container families.
    pub containers: Vec<ContainerGpuPoints>,
    /// dcgm-exporter-compatible families (on `/metrics` only), when
    /// enabled.
    pub dcgm: Vec<dcgm::DcgmPoint>,
}

/// Where readings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// NVML, started on the first collection.
    Nvml,
    /// A recording (tests, demos).
    Replay(PathBuf),
    /// The source is off.
    Off,
}

enum State {
    Pending(BackendChoice),
    Running(Box<dyn GpuBackend>),
    /// Not a GPU node, or the backend could not start: final.
    Stopped,
}

/// The GPU source.
pub struct GpuSource {
    state: State,
    health: Arc<SourceHealth>,
    pids: PidMap,
    /// Events counted since start, by (GPU UUID, kind, XID).
    events: BTreeMap<(String, String, String), u64>,
    latest: GpuSnapshot,
    /// The node's host name when dcgm-exporter names are wanted too.
    dcgm_hostname: Option<String>,
    /// The last XID number seen per GPU UUID (DCGM's XID gauge).
    last_xid: BTreeMap<String, u64>,
}

impl GpuSource {
    /// A source reading `choice`, mapping PIDs through `proc_root`.
    pub fn new(choice: BackendChoice, proc_root: PathBuf, health: Arc<SourceHealth>) -> Self {
        let state = match choice {
            BackendChoice::Off => State::Stopped,
            other => State::Pending(other),
        };
        Self {
            state,
            health,
            pids: PidMap::new(&proc_root),
            events: BTreeMap::new(),
            latest: GpuSnapshot::default(),
            dcgm_hostname: None,
            last_xid: BTreeMap::new(),
        }
    }

    /// Also renders dcgm-exporter's names, with `Hostname` = `hostname`.
    pub fn with_dcgm_names(mut self, hostname: String) -> Self {
        self.dcgm_hostname = Some(hostname);
        self
    }

    /// A source over an already built backend (tests).
    pub fn with_backend(
        backend: Box<dyn GpuBackend>,
        proc_root: PathBuf,
        health: Arc<SourceHealth>,
    ) -> Self {
        Self {
            state: State::Running(backend),
            ..Self::new(BackendChoice::Off, proc_root, health)
        }
    }

    /// The latest picture.
    pub fn snapshot(&self) -> &GpuSnapshot {
        &self.latest
    }

    /// Whether a backend runs (false on a non-GPU node).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running(_))
    }

    /// Reads every GPU and rebuilds the picture; container identities come
    /// from `pods`.
    pub fn collect(&mut self, pods: &PodStore) {
        let began = Instant::now();
        if let State::Pending(choice) = &self.state {
            let started: Result<Box<dyn GpuBackend>, GpuError> = match choice {
                BackendChoice::Nvml => nvml::NvmlBackend::new().map(|b| Box::new(b) as _),
                BackendChoice::Replay(path) => {
                    replay::ReplayBackend::open(path).map(|b| Box::new(b) as _)
                }
                BackendChoice::Off => Err(GpuError::NoGpu("the gpu source is off".to_owned())),
            };
            match started {
                Ok(backend) => {
                    tracing::info!(backend = backend.describe(), "gpu source started");
                    self.state = State::Running(backend);
                }
                Err(GpuError::NoGpu(reason)) => {
                    // A CPU node is not an error: said once, `up` stays 0,
                    // never retried.
                    tracing::info!(%reason, "no NVIDIA GPU on this node; the gpu source stays off");
                    self.health.set_up(false);
                    self.state = State::Stopped;
                    return;
                }
                Err(error) => {
                    self.health
                        .record_failure(began.elapsed(), error.kind(), &error);
                    self.state = State::Stopped;
                    return;
                }
            }
        }
        let State::Running(backend) = &mut self.state else {
            return;
        };
        match backend.read() {
            Ok(frame) => {
                self.latest = self.build(&frame, pods);
                self.health.record_success(began.elapsed());
            }
            Err(error) => {
                // The last picture stays; the failure is counted.
                self.health
                    .record_failure(began.elapsed(), error.kind(), &error);
            }
        }
    }

    fn build(&mut self, frame: &Frame, pods: &PodStore) -> GpuSnapshot {
        let mut snapshot = GpuSnapshot::default();
        for event in &frame.events {
            let xid = if event.kind == "xid" {
                self.last_xid.insert(event.uuid.clone(), event.data);
                event.data.to_string()
            } else {
                String::new()
            };
            // Each event is also a structured log record of its own (XID
            // and double-bit ECC errors are what operators page on).
            let gpu_index = frame
                .devices
                .iter()
                .find(|d| d.uuid == event.uuid)
                .map(|d| d.index);
            match event.kind.as_str() {
                "xid" | "ecc_double_bit" => tracing::warn!(
                    gpu_uuid = %event.uuid,
                    gpu_index,
                    kind = %event.kind,
                    data = event.data,
                    time_ms = event.time_ms,
                    "gpu event"
                ),
                _ => tracing::info!(
                    gpu_uuid = %event.uuid,
                    gpu_index,
                    kind = %event.kind,
                    data = event.data,
                    time_ms = event.time_ms,
                    "gpu event"
                ),
            }
            *self
                .events
                .entry((event.uuid.clone(), event.kind.clone(), xid))
                .or_default() += 1;
        }
        let driver = frame.driver_version.clone().unwrap_or_default();
        let mut alive = HashSet::new();
        // Container points by (container, device key).
        let mut users: BTreeMap<ContainerRef, Vec<GpuPoint>> = BTreeMap::new();
        for device in &frame.devices {
            let gpu = GpuIdentity {
                uuid: device.uuid.clone(),
                index: device.index,
                model: device.name.clone(),
                ..GpuIdentity::default()
            };
            device_points(device, &gpu, &driver, &mut snapshot.node);
            if device.lost {
                continue;
            }
            for process in &device.processes {
                alive.insert(process.pid);
            }
            self.attribute(device, &gpu, &mut users);
        }
        // Events of GPUs by UUID (a lost GPU's too).
        let index_of: BTreeMap<&str, &Device> =
            frame.devices.iter().map(|d| (d.uuid.as_str(), d)).collect();
        for ((uuid, kind, xid), count) in &self.events {
            let (index, model) = index_of
                .get(uuid.as_str())
                .map(|d| (d.index.to_string(), d.name.clone()))
                .unwrap_or_default();
            let mut attributes = vec![
                ("gpu_uuid", uuid.clone()),
                ("gpu_index", index),
                ("gpu_model", model),
                ("kind", kind.clone()),
            ];
            if !xid.is_empty() {
                attributes.push(("xid", xid.clone()));
            }
            snapshot.node.push(GpuPoint {
                def: &catalog::GPU_EVENTS,
                attributes,
                value: *count as f64,
            });
        }
        self.pids.retain(&alive);
        snapshot.containers = users
            .into_iter()
            .map(|(container, points)| {
                let (identity, ..) = crate::snapshot::resolve_identity(
                    pods,
                    &container.pod_uid,
                    &container.container_id,
                );
                ContainerGpuPoints {
                    identity,
                    points,
                    read_at: None,
                }
            })
            .collect();
        if let Some(hostname) = &self.dcgm_hostname {
            snapshot.dcgm = dcgm::translate(&snapshot, hostname, &self.last_xid);
        }
        snapshot
    }

    /// Adds each container's memory and utilization on `device` (or its
    /// MIG instances) to `users`.
    fn attribute(
        &mut self,
        device: &Device,
        gpu: &GpuIdentity,
        users: &mut BTreeMap<ContainerRef, Vec<GpuPoint>>,
    ) {
        // The newest utilization sample of each PID.
        let mut sm: BTreeMap<u32, (u64, f64)> = BTreeMap::new();
        for sample in &device.process_utilization {
            let entry = sm.entry(sample.pid).or_insert((0, 0.0));
            if sample.timestamp_us >= entry.0 {
                *entry = (sample.timestamp_us, f64::from(sample.sm_percent) / 100.0);
            }
        }
        // (MIG instance or none, container) → (memory, SM share).
        type Key = (Option<u32>, ContainerRef);
        let mut per: BTreeMap<Key, (Option<f64>, Option<f64>)> = BTreeMap::new();
        for process in &device.processes {
            let container = match self.pids.container(process.pid) {
                Ok(Some(container)) => container,
                // Host processes (not in a container) are not attributed.
                Ok(None) => continue,
                Err(error) => {
                    self.health
                        .error("pid_lookup", &format!("pid {}: {error}", process.pid));
                    continue;
                }
            };
            let instance = if device.mig_enabled == Some(true) {
                process
                    .gpu_instance_id
                    .filter(|id| *id != nvml::UNKNOWN_INSTANCE_ID)
            } else {
                None
            };
            let entry = per.entry((instance, container)).or_default();
            if let Some(bytes) = process.used_memory_bytes {
                entry.0 = Some(entry.0.unwrap_or(0.0) + bytes as f64);
            }
            if let Some((_, share)) = sm.get(&process.pid) {
                entry.1 = Some(entry.1.unwrap_or(0.0) + share);
            }
        }
        let whole_users = per
            .keys()
            .filter(|(instance, _)| instance.is_none())
            .count();
        for ((instance, container), (memory, share)) in &per {
            let (identity, sharing, share) = match instance {
                Some(gi) => {
                    let mig = device.mig_devices.iter().find(|m| m.gpu_instance_id == *gi);
                    let identity = GpuIdentity {
                        mig_profile: mig.map(|m| m.profile.clone()).unwrap_or_default(),
                        mig_instance: gi.to_string(),
                        ..gpu.clone()
                    };
                    // The instance's SM activity, split by memory held.
                    let held: f64 = per
                        .iter()
                        .filter(|((i, _), _)| i == instance)
                        .filter_map(|(_, (m, _))| *m)
                        .sum();
                    let share = mig.and_then(|m| m.sm_activity).map(|activity| {
                        match (memory, held > 0.0) {
                            (Some(m), true) => activity * m / held,
                            _ => activity,
                        }
                    });
                    (identity, "mig", share)
                }
                None => (
                    gpu.clone(),
                    if whole_users > 1 {
                        "time_sliced"
                    } else {
                        "exclusive"
                    },
                    *share,
                ),
            };
            let mut attributes = identity.point_attributes();
            attributes.push(("sharing", sharing.to_owned()));
            let points = users.entry(container.clone()).or_default();
            if let Some(bytes) = memory {
                points.push(GpuPoint {
                    def: &catalog::CONTAINER_GPU_MEMORY_USED,
                    attributes: attributes.clone(),
                    value: *bytes,
                });
            }
            if let Some(share) = share {
                points.push(GpuPoint {
                    def: &catalog::CONTAINER_GPU_UTILIZATION,
                    attributes,
                    value: share.clamp(0.0, 1.0),
                });
            }
        }
    }
}

/// The device families of one GPU and its MIG instances.
fn device_points(device: &Device, gpu: &GpuIdentity, driver: &str, out: &mut Vec<GpuPoint>) {
    let base = gpu.point_attributes();
    let with = |extra: &[(&'static str, &str)]| {
        let mut attributes = base.clone();
        attributes.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        attributes
    };
    let mut push =
        |def: &'static MetricDef, attributes: Vec<(&'static str, String)>, value: Option<f64>| {
            if let Some(value) = value {
                out.push(GpuPoint {
                    def,
                    attributes,
                    value,
                });
            }
        };
    let mig_mode = match device.mig_enabled {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "",
    };
    push(
        &catalog::GPU_INFO,
        with(&[
            ("pci_bus_id", &device.pci_bus_id),
            ("driver_version", driver),
            ("mig_mode", mig_mode),
        ]),
        Some(1.0),
    );
    push(
        &catalog::GPU_LOST,
        base.clone(),
        Some(if device.lost { 1.0 } else { 0.0 }),
    );
    if device.lost {
        return;
    }
    let percent = |v: Option<u32>| v.map(|p| f64::from(p) / 100.0);
    let float = |v: Option<u64>| v.map(|x| x as f64);
    // Utilization of a MIG-enabled GPU itself means nothing (NVML
    // refuses it); its instances report theirs below.
    if device.mig_enabled != Some(true) {
        push(
            &catalog::GPU_UTILIZATION,
            base.clone(),
            percent(device.utilization_gpu_percent),
        );
        push(
            &catalog::GPU_MEMORY_UTILIZATION,
            base.clone(),
            percent(device.utilization_memory_percent),
        );
    }
    push(
        &catalog::GPU_MEMORY_USED,
        base.clone(),
        float(device.memory_used_bytes),
    );
    push(
        &catalog::GPU_MEMORY_TOTAL,
        base.clone(),
        float(device.memory_total_bytes),
    );
    push(
        &catalog::GPU_POWER,
        base.clone(),
        device.power_milliwatts.map(|mw| f64::from(mw) / 1000.0),
    );
    push(
        &catalog::GPU_POWER_LIMIT,
        base.clone(),
        device
            .power_limit_milliwatts
            .map(|mw| f64::from(mw) / 1000.0),
    );
    push(
        &catalog::GPU_ENERGY,
        base.clone(),
        device.energy_millijoules.map(|mj| mj as f64 / 1000.0),
    );
    push(
        &catalog::GPU_TEMPERATURE,
        base.clone(),
        device.temperature_celsius.map(f64::from),
    );
    for (clock, mhz) in [
        ("sm", device.sm_clock_mhz),
        ("memory", device.memory_clock_mhz),
    ] {
        push(
            &catalog::GPU_CLOCK,
            with(&[("clock", clock)]),
            mhz.map(|m| f64::from(m) * 1e6),
        );
    }
    if let Some(active) = &device.throttle_reasons {
        for reason in THROTTLE_REASONS {
            let on = active.iter().any(|a| a == reason);
            push(
                &catalog::GPU_THROTTLED,
                with(&[("reason", reason)]),
                Some(if on { 1.0 } else { 0.0 }),
            );
        }
    }
    for (direction, rate) in [
        ("tx", device.pcie_tx_bytes_per_second),
        ("rx", device.pcie_rx_bytes_per_second),
    ] {
        push(
            &catalog::GPU_PCIE_THROUGHPUT,
            with(&[("direction", direction)]),
            float(rate),
        );
    }
    push(
        &catalog::GPU_PCIE_REPLAYS,
        base.clone(),
        float(device.pcie_replays),
    );
    for (kind, count) in [
        ("corrected", device.ecc_corrected),
        ("uncorrected", device.ecc_uncorrected),
    ] {
        push(
            &catalog::GPU_ECC_ERRORS,
            with(&[("type", kind)]),
            float(count),
        );
    }
    push(
        &catalog::GPU_RETIRED_PAGES,
        base.clone(),
        float(device.retired_pages),
    );
    push(
        &catalog::GPU_REMAPPED_ROWS,
        base.clone(),
        float(device.remapped_rows),
    );
    push(
        &catalog::GPU_REMAP_PENDING,
        base.clone(),
        device.remap_pending.map(|p| if p { 1.0 } else { 0.0 }),
    );
    push(
        &catalog::GPU_PERFORMANCE_STATE,
        base.clone(),
        device.performance_state.map(f64::from),
    );
    // An instance whose id NVML would not give cannot be told apart.
    let known = device
        .mig_devices
        .iter()
        .filter(|m| m.gpu_instance_id != nvml::UNKNOWN_INSTANCE_ID);
    for mig in known {
        let identity = GpuIdentity {
            mig_profile: mig.profile.clone(),
            mig_instance: mig.gpu_instance_id.to_string(),
            ..gpu.clone()
        };
        let attributes = identity.point_attributes();
        push(
            &catalog::GPU_UTILIZATION,
            attributes.clone(),
            mig.sm_activity,
        );
        push(
            &catalog::GPU_MEMORY_UTILIZATION,
            attributes.clone(),
            mig.dram_bandwidth,
        );
        push(
            &catalog::GPU_TENSOR_ACTIVITY,
            attributes.clone(),
            mig.tensor_activity,
        );
        push(
            &catalog::GPU_MEMORY_USED,
            attributes.clone(),
            float(mig.memory_used_bytes),
        );
        push(
            &catalog::GPU_MEMORY_TOTAL,
            attributes,
            float(mig.memory_total_bytes),
        );
    }
}
