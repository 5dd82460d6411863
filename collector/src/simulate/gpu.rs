//! GPUs of GPU nodes, with the cases the analyzer must tell apart: busy
//! training GPUs, partly used inference GPUs, allocated GPUs left idle,
//! unallocated GPUs, an H100 partitioned into MIG instances and an A10G
//! time-sliced between several pods. Each GPU pod's processes are
//! attributed to its GPU devices, as the agent's NVML source does.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint};
use tally_schema::catalog;
use tally_schema::identity::GpuIdentity;
use tally_schema::otlp;

use super::Rng;
use super::fleet::{Clock, Container, GIB, PodNamer, attributes};
use super::serving::{self, Model, ModelServer};

/// A GPU product, with the figures the simulation needs.
pub(super) struct GpuModel {
    name: &'static str,
    memory: f64,
    idle_watts: f64,
    limit_watts: f64,
    sm_max_hz: f64,
    memory_hz: f64,
    layout: Layout,
}

/// How the GPUs of a node of this model are used.
#[derive(Clone, Copy)]
enum Layout {
    /// GPU 0 in MIG (all-balanced), then serving, an idle notebook and
    /// training.
    MigAndServing,
    /// One model served over four GPUs (tensor parallel), training, a
    /// notebook.
    TensorParallel,
    /// One GPU time-sliced between a model server and notebooks.
    TimeSliced,
}

pub(super) const H100_80GB: GpuModel = GpuModel {
    name: "NVIDIA H100 80GB HBM3",
    memory: 80.0 * GIB,
    idle_watts: 70.0,
    limit_watts: 700.0,
    sm_max_hz: 1.98e9,
    memory_hz: 2.619e9,
    layout: Layout::MigAndServing,
};
pub(super) const A100_40GB: GpuModel = GpuModel {
    name: "NVIDIA A100-SXM4-40GB",
    memory: 40.0 * GIB,
    idle_watts: 52.0,
    limit_watts: 400.0,
    sm_max_hz: 1.41e9,
    memory_hz: 1.215e9,
    layout: Layout::TensorParallel,
};
pub(super) const A10G: GpuModel = GpuModel {
    name: "NVIDIA A10G",
    memory: 24.0 * GIB,
    idle_watts: 16.0,
    limit_watts: 300.0,
    sm_max_hz: 1.71e9,
    memory_hz: 6.251e9,
    layout: Layout::TimeSliced,
};

/// H100 80GB "all-balanced" MIG layout (NVIDIA mig-parted): profile,
/// compute slices of 7, memory, GPU instance id.
const H100_ALL_BALANCED: &[(&str, f64, f64, &str)] = &[
    ("3g.40gb", 3.0, 39.5 * GIB, "1"),
    ("2g.20gb", 2.0, 19.5 * GIB, "5"),
    ("1g.10gb", 1.0, 9.75 * GIB, "13"),
    ("1g.10gb", 1.0, 9.75 * GIB, "14"),
];
const DRIVER_VERSION: &str = "550.127.05";

/// What a container does with its GPU devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Work {
    /// Holds the GPU and its memory, runs nothing (the waste case).
    Idle,
    /// Interactive use with a daily cycle (notebooks).
    Partial,
    /// Training: kernels nearly all the time.
    Busy,
    /// Follows its model server's load.
    Serving,
}

impl Work {
    /// Utilization of each device it uses this step.
    pub fn utilization(
        self,
        rng: &mut Rng,
        clock: &Clock,
        phase: f64,
        serving_load: Option<f64>,
    ) -> f64 {
        let value = match self {
            Work::Idle => rng.unit() * 0.01,
            Work::Partial => 0.25 * clock.cycle(0.8, phase) + rng.unit() * 0.1,
            Work::Busy => 0.88 + rng.unit() * 0.1,
            Work::Serving => {
                0.06 + 0.8 * serving_load.unwrap_or(0.0).min(1.0) * (0.9 + rng.unit() * 0.2)
            }
        };
        value.clamp(0.0, 1.0)
    }
}

/// A container on a device and the share of the device's memory it holds.
struct User {
    container: usize,
    memory_share: f64,
}

/// A whole GPU or one MIG instance.
struct Device {
    identity: GpuIdentity,
    memory: f64,
    /// Share of the GPU's compute (MIG slices of 7; 1 for a whole GPU).
    compute: f64,
    sharing: &'static str,
    users: Vec<User>,
}

struct Gpu {
    identity: GpuIdentity,
    model: &'static GpuModel,
    pci_bus_id: String,
    mig: bool,
    devices: Vec<Device>,
    energy_joules: f64,
}

impl Gpu {
    fn whole(rng: &mut Rng, model: &'static GpuModel, index: u32) -> Gpu {
        let identity = GpuIdentity {
            uuid: format!(
                "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                rng.next_u64() & 0xffff_ffff,
                rng.below(1 << 16),
                rng.below(1 << 16),
                rng.below(1 << 16),
                rng.next_u64() & 0xffff_ffff_ffff
            ),
            index,
            model: model.name.to_owned(),
            ..Default::default()
        };
        Gpu {
            devices: vec![Device {
                identity: identity.clone(),
                memory: model.memory,
                compute: 1.0,
                sharing: "exclusive",
                users: Vec::new(),
            }],
            identity,
            model,
            pci_bus_id: format!("00000000:{:02X}:00.0", 0x10 + index * 0x10),
            mig: false,
            energy_joules: 0.0,
        }
    }

    /// Repartitions into MIG instances (none allocated yet).
    fn partition(&mut self, layout: &[(&str, f64, f64, &str)]) {
        self.mig = true;
        self.devices = layout
            .iter()
            .map(|(profile, slices, memory, instance)| Device {
                identity: GpuIdentity {
                    mig_profile: (*profile).to_owned(),
                    mig_instance: (*instance).to_owned(),
                    ..self.identity.clone()
                },
                memory: *memory,
                compute: slices / 7.0,
                sharing: "mig",
                users: Vec::new(),
            })
            .collect();
    }
}

/// The GPUs of one node.
pub(super) struct GpuNode {
    gpus: Vec<Gpu>,
}

/// Adds GPU pods to a node's containers.
struct Planter<'a> {
    rng: &'a mut Rng,
    namer: &'a mut PodNamer,
    containers: &'a mut Vec<Container>,
    node: usize,
}

impl Planter<'_> {
    /// A one-container GPU pod of `owner` (namespace, kind, name) asking
    /// for `device`; CPU and memory requests follow from the work. Returns
    /// the container's index.
    fn pod(
        &mut self,
        owner: [&str; 3],
        work: Work,
        server: Option<ModelServer>,
        device: (&str, f64),
    ) -> usize {
        let [namespace, kind, workload] = owner;
        let (cpu, memory_gib) = match work {
            Work::Busy => (8.0 * device.1, 64.0 * device.1),
            Work::Serving => (4.0, 32.0),
            Work::Idle | Work::Partial => (2.0, 16.0),
        };
        let identity = self.namer.pod(self.rng, namespace, kind, workload);
        let mut container = Container::new(self.rng, identity, cpu, memory_gib * GIB);
        container.devices.push((device.0.to_owned(), device.1));
        container.gpu_work = Some(work);
        container.server = server;
        self.containers.push(container);
        self.containers.len() - 1
    }

    fn notebook(&mut self, work: Work, device: (&str, f64)) -> usize {
        let workload = format!("notebook-{:04}-{}", self.node, self.rng.below(100));
        self.pod(["research", "StatefulSet", &workload], work, None, device)
    }

    fn training(&mut self, gpus: f64) -> usize {
        let workload = format!("finetune-{:04}", self.node);
        let owner = ["ml-training", "Job", &workload];
        self.pod(owner, Work::Busy, None, ("nvidia.com/gpu", gpus))
    }

    fn server(&mut self, model: &'static Model, device: (&str, f64)) -> usize {
        let server = Some(ModelServer::new(self.rng, model));
        let owner = ["inference", "Deployment", model.workload];
        self.pod(owner, Work::Serving, server, device)
    }
}

fn attach(device: &mut Device, container: usize, memory_share: f64) {
    device.users.push(User {
        container,
        memory_share,
    });
}

/// Creates the GPUs of a node and the GPU pods that use them.
pub(super) fn plant(
    rng: &mut Rng,
    node: usize,
    model: &'static GpuModel,
    count: u32,
    namer: &mut PodNamer,
    containers: &mut Vec<Container>,
) -> GpuNode {
    let mut gpus: Vec<Gpu> = (0..count).map(|i| Gpu::whole(rng, model, i)).collect();
    let mut p = Planter {
        rng,
        namer,
        containers,
        node,
    };
    let gpu = ("nvidia.com/gpu", 1.0);
    match model.layout {
        Layout::MigAndServing => {
            gpus[0].partition(H100_ALL_BALANCED);
            let c = p.server(&serving::QWEN_7B, ("nvidia.com/mig-3g.40gb", 1.0));
            attach(&mut gpus[0].devices[0], c, 0.85);
            let c = p.notebook(Work::Partial, ("nvidia.com/mig-2g.20gb", 1.0));
            attach(&mut gpus[0].devices[1], c, 0.4);
            // A tiny model on the smallest slice; the fourth slice is free.
            let c = p.server(&serving::QWEN_0_5B, ("nvidia.com/mig-1g.10gb", 1.0));
            attach(&mut gpus[0].devices[2], c, 0.9);
            let c = p.server(&serving::LLAMA_8B, gpu);
            attach(&mut gpus[1].devices[0], c, 0.9);
            // Allocated and left idle: the waste the analyzer must find.
            let c = p.notebook(Work::Idle, gpu);
            attach(&mut gpus[2].devices[0], c, 0.2);
            let training = (2 + p.rng.below(4)).min(gpus.len().saturating_sub(4));
            let c = p.training(training as f64);
            for g in &mut gpus[3..3 + training] {
                attach(&mut g.devices[0], c, 0.92);
            }
            // A small model alone on the last whole GPU: a MIG slice holds
            // its memory and compute.
            if let Some(last) = gpus.last_mut().filter(|_| count > 3 + training as u32) {
                let c = p.server(&serving::QWEN_1_5B, gpu);
                attach(&mut last.devices[0], c, 0.12);
            }
        }
        Layout::TensorParallel => {
            let c = p.server(&serving::LLAMA_70B, ("nvidia.com/gpu", 4.0));
            for g in &mut gpus[..4] {
                attach(&mut g.devices[0], c, 0.9);
            }
            let c = p.training(2.0);
            for g in &mut gpus[4..6] {
                attach(&mut g.devices[0], c, 0.92);
            }
            let work = if p.rng.unit() < 0.5 {
                Work::Idle
            } else {
                Work::Partial
            };
            let c = p.notebook(work, gpu);
            attach(&mut gpus[6].devices[0], c, 0.3);
        }
        Layout::TimeSliced => {
            for device in &mut gpus[0].devices {
                device.sharing = "time_sliced";
            }
            let c = p.server(&serving::PHI_3_MINI, gpu);
            attach(&mut gpus[0].devices[0], c, 0.45);
            let c = p.notebook(Work::Partial, gpu);
            attach(&mut gpus[0].devices[0], c, 0.15);
            let c = p.notebook(Work::Idle, gpu);
            attach(&mut gpus[0].devices[0], c, 0.1);
        }
    }
    GpuNode { gpus }
}

fn labels(identity: &GpuIdentity, extra: &[(&str, &str)]) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = identity
        .point_attributes()
        .into_iter()
        .map(|(k, v)| otlp::string_attribute(k, v))
        .collect();
    out.extend(attributes(extra));
    out
}

/// Points of every GPU family of one node, in catalog order.
#[derive(Default)]
struct Families {
    info: Vec<NumberDataPoint>,
    utilization: Vec<NumberDataPoint>,
    memory_utilization: Vec<NumberDataPoint>,
    memory_used: Vec<NumberDataPoint>,
    memory_total: Vec<NumberDataPoint>,
    power: Vec<NumberDataPoint>,
    power_limit: Vec<NumberDataPoint>,
    energy: Vec<NumberDataPoint>,
    temperature: Vec<NumberDataPoint>,
    clock: Vec<NumberDataPoint>,
    throttled: Vec<NumberDataPoint>,
    tensor_activity: Vec<NumberDataPoint>,
    pcie: Vec<NumberDataPoint>,
    pcie_replays: Vec<NumberDataPoint>,
    ecc: Vec<NumberDataPoint>,
    remapped_rows: Vec<NumberDataPoint>,
    remap_pending: Vec<NumberDataPoint>,
    performance_state: Vec<NumberDataPoint>,
    lost: Vec<NumberDataPoint>,
}

impl GpuNode {
    /// One step: GPU families go to the node's metrics, each GPU pod's
    /// attribution to its container's.
    pub fn step(
        &mut self,
        rng: &mut Rng,
        clock: &Clock,
        containers: &[Container],
        node_metrics: &mut Vec<Metric>,
        container_metrics: &mut [Vec<Metric>],
    ) {
        let mut f = Families::default();
        let mut attributed: BTreeMap<usize, (Vec<NumberDataPoint>, Vec<NumberDataPoint>)> =
            BTreeMap::new();
        for gpu in &mut self.gpus {
            let (mut activity, mut used_total) = (0.0, 0.0);
            for device in &gpu.devices {
                let (mut utilization, mut used) = (0.0_f64, 0.0);
                for user in &device.users {
                    let Some(container) = containers.get(user.container) else {
                        continue;
                    };
                    let u = (container.gpu_utilization * (0.95 + rng.unit() * 0.1)).min(1.0);
                    let m = user.memory_share * device.memory * (0.97 + rng.unit() * 0.03);
                    utilization += u;
                    used += m;
                    let at = labels(&device.identity, &[("sharing", device.sharing)]);
                    let entry = attributed.entry(user.container).or_default();
                    entry.0.push(clock.point(at.clone(), u));
                    entry.1.push(clock.point(at, m));
                }
                let utilization = utilization.min(1.0);
                let at = labels(&device.identity, &[]);
                f.utilization.push(clock.point(at.clone(), utilization));
                f.memory_utilization
                    .push(clock.point(at.clone(), utilization * (0.4 + rng.unit() * 0.3)));
                f.memory_used.push(clock.point(at.clone(), used));
                if device.sharing == "mig" {
                    // GPM's tensor pipes: a share of the SM activity (no
                    // draw, so no other series moves).
                    f.tensor_activity
                        .push(clock.point(at.clone(), utilization * 0.6));
                }
                f.memory_total.push(clock.point(at, device.memory));
                activity += utilization * device.compute;
                used_total += used;
            }
            let model = gpu.model;
            let at = labels(&gpu.identity, &[]);
            if gpu.mig {
                // NVML has memory but no utilization for a MIG-enabled GPU.
                f.memory_used.push(clock.point(at.clone(), used_total));
                f.memory_total.push(clock.point(at.clone(), model.memory));
            }
            let power = (model.idle_watts
                + (model.limit_watts - model.idle_watts) * activity * (0.9 + rng.unit() * 0.15))
                .min(model.limit_watts);
            let capped = power >= model.limit_watts * 0.97;
            let idle = activity < 0.01;
            gpu.energy_joules += power * clock.step_s;
            let sm_hz = if idle {
                // Idle clocks.
                345e6
            } else if capped {
                model.sm_max_hz * 0.8
            } else {
                model.sm_max_hz * (0.95 + rng.unit() * 0.05)
            };
            f.info.push(clock.point(
                labels(
                    &gpu.identity,
                    &[
                        ("pci_bus_id", &gpu.pci_bus_id),
                        ("driver_version", DRIVER_VERSION),
                        ("mig_mode", if gpu.mig { "enabled" } else { "disabled" }),
                    ],
                ),
                1.0,
            ));
            f.power.push(clock.point(at.clone(), power));
            f.power_limit
                .push(clock.point(at.clone(), model.limit_watts));
            f.energy.push(clock.point(at.clone(), gpu.energy_joules));
            f.temperature
                .push(clock.point(at.clone(), 30.0 + 50.0 * activity + rng.unit() * 3.0));
            f.clock
                .push(clock.point(labels(&gpu.identity, &[("clock", "sm")]), sm_hz));
            f.clock.push(clock.point(
                labels(&gpu.identity, &[("clock", "memory")]),
                model.memory_hz,
            ));
            for (reason, on) in [("gpu_idle", idle), ("sw_power_cap", capped)] {
                f.throttled.push(clock.point(
                    labels(&gpu.identity, &[("reason", reason)]),
                    if on { 1.0 } else { 0.0 },
                ));
            }
            // Derived from the activity, without draws: PCIe traffic, a
            // healthy error record, P0 when busy and P8 when idle.
            for (direction, peak) in [("rx", 2e9), ("tx", 5e8)] {
                f.pcie.push(clock.point(
                    labels(&gpu.identity, &[("direction", direction)]),
                    peak * activity,
                ));
            }
            f.pcie_replays.push(clock.point(at.clone(), 0.0));
            for kind in ["corrected", "uncorrected"] {
                f.ecc
                    .push(clock.point(labels(&gpu.identity, &[("type", kind)]), 0.0));
            }
            f.remapped_rows.push(clock.point(at.clone(), 0.0));
            f.remap_pending.push(clock.point(at.clone(), 0.0));
            f.performance_state
                .push(clock.point(at.clone(), if idle { 8.0 } else { 0.0 }));
            f.lost.push(clock.point(at.clone(), 0.0));
        }
        node_metrics.extend([
            otlp::gauge(&catalog::GPU_INFO, f.info),
            otlp::gauge(&catalog::GPU_UTILIZATION, f.utilization),
            otlp::gauge(&catalog::GPU_MEMORY_UTILIZATION, f.memory_utilization),
            otlp::gauge(&catalog::GPU_MEMORY_USED, f.memory_used),
            otlp::gauge(&catalog::GPU_MEMORY_TOTAL, f.memory_total),
            otlp::gauge(&catalog::GPU_POWER, f.power),
            otlp::gauge(&catalog::GPU_POWER_LIMIT, f.power_limit),
            otlp::cumulative_sum(&catalog::GPU_ENERGY, f.energy),
            otlp::gauge(&catalog::GPU_TEMPERATURE, f.temperature),
            otlp::gauge(&catalog::GPU_CLOCK, f.clock),
            otlp::gauge(&catalog::GPU_THROTTLED, f.throttled),
            otlp::gauge(&catalog::GPU_TENSOR_ACTIVITY, f.tensor_activity),
            otlp::gauge(&catalog::GPU_PCIE_THROUGHPUT, f.pcie),
            otlp::cumulative_sum(&catalog::GPU_PCIE_REPLAYS, f.pcie_replays),
            otlp::cumulative_sum(&catalog::GPU_ECC_ERRORS, f.ecc),
            otlp::gauge(&catalog::GPU_REMAPPED_ROWS, f.remapped_rows),
            otlp::gauge(&catalog::GPU_REMAP_PENDING, f.remap_pending),
            otlp::gauge(&catalog::GPU_PERFORMANCE_STATE, f.performance_state),
            otlp::gauge(&catalog::GPU_LOST, f.lost),
        ]);
        for (container, (utilization, memory)) in attributed {
            if let Some(metrics) = container_metrics.get_mut(container) {
                metrics.push(otlp::gauge(
                    &catalog::CONTAINER_GPU_UTILIZATION,
                    utilization,
                ));
                metrics.push(otlp::gauge(&catalog::CONTAINER_GPU_MEMORY_USED, memory));
            }
        }
    }
}
