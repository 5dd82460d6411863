//! The fleet: nodes of realistic instance types running pods whose CPU and
//! memory follow a daily cycle. GPU nodes get their GPUs, GPU pods and
//! model servers from [`super::gpu`]; every pod's traffic comes from
//! [`super::egress`].

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, Metric, NumberDataPoint,
};
use tally_schema::catalog::{self, MetricDef};
use tally_schema::exphist::ExpHistogram;
use tally_schema::identity::{ContainerIdentity, NodeIdentity};
use tally_schema::otlp;

use super::Rng;
use super::egress::Egress;
use super::gpu::{self, GpuModel, GpuNode, Work};
use super::serving::ModelServer;
use super::volumes::Volumes;
use super::workloads::Workloads;

/// Samples folded into each step's distributions, like the agent's 1 s
/// samples within a 15 s export.
const SAMPLES_PER_STEP: usize = 15;

/// The kernel's default CFS period, seconds.
const CFS_PERIOD_S: f64 = 0.1;

pub(super) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const ZONES: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];
pub(super) const REGION: &str = "us-east-1";
const NAMESPACES: &[&str] = &["ml-training", "inference", "data", "web", "platform"];
const OWNERS: &[&str] = &[
    "Deployment",
    "Deployment",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "DaemonSet",
];

struct InstanceType {
    name: &'static str,
    cpus: f64,
    memory: f64,
    gpus: Option<(&'static GpuModel, u32)>,
}

const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "m6i.2xlarge",
        cpus: 8.0,
        memory: 32.0 * GIB,
        gpus: None,
    },
    InstanceType {
        name: "c6i.4xlarge",
        cpus: 16.0,
        memory: 32.0 * GIB,
        gpus: None,
    },
    InstanceType {
        name: "r6i.2xlarge",
        cpus: 8.0,
        memory: 64.0 * GIB,
        gpus: None,
    },
    InstanceType {
        name: "g5.2xlarge",
        cpus: 8.0,
        memory: 32.0 * GIB,
        gpus: Some((&gpu::A10G, 1)),
    },
    InstanceType {
        name: "p4d.24xlarge",
        cpus: 96.0,
        memory: 1152.0 * GIB,
        gpus: Some((&gpu::A100_40GB, 8)),
    },
    InstanceType {
        name: "p5.48xlarge",
        cpus: 192.0,
        memory: 2048.0 * GIB,
        gpus: Some((&gpu::H100_80GB, 8)),
    },
];
/// Node 1 is a p5 (MIG and an idle GPU) and node 2 a g5 (time-sliced), so
/// even a three-node fleet plants every GPU case the analyzer must find.
const PLANTED: &[(usize, usize)] = &[(1, 5), (2, 3)];

/// One day, ns.
const DAY_NS: u64 = 86_400_000_000_000;

/// Times of one step, shared by every family.
pub(super) struct Clock {
    /// Counter start (the fleet's start).
    pub start_ns: u64,
    /// This step's time.
    pub now_ns: u64,
    /// Start of the delta window of distributions.
    pub window_start_ns: u64,
    /// Step length, seconds.
    pub step_s: f64,
    /// Position in the UTC day, radians.
    pub day_angle: f64,
    /// Hours since the fleet's start.
    pub hours: f64,
}

impl Clock {
    /// A gauge or cumulative point at this step.
    pub fn point(&self, attributes: Vec<KeyValue>, value: f64) -> NumberDataPoint {
        otlp::number_point(attributes, self.start_ns, self.now_ns, value)
    }

    /// A delta distribution over this step's window.
    pub fn window(
        &self,
        attributes: Vec<KeyValue>,
        histogram: &ExpHistogram,
    ) -> ExponentialHistogramDataPoint {
        otlp::exp_histogram_point(attributes, self.window_start_ns, self.now_ns, histogram)
    }

    /// The daily cycle at `phase`: 1 ± `amplitude`.
    pub fn cycle(&self, amplitude: f64, phase: f64) -> f64 {
        1.0 + amplitude * (self.day_angle + phase).sin()
    }
}

/// OTLP attributes from `(key, value)` pairs.
pub(super) fn attributes(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| otlp::string_attribute(k, *v))
        .collect()
}

pub(super) struct Container {
    pub identity: ContainerIdentity,
    cpu_request: f64,
    pub cpu_limit: Option<f64>,
    memory_request: f64,
    pub memory_limit: f64,
    /// Extended resources requested (GPUs, MIG slices), in devices.
    pub devices: Vec<(String, f64)>,
    /// Mean CPU as a share of the request (right-sizing signal).
    cpu_share: f64,
    /// Daily amplitude of the cycle, as a share of the mean.
    diurnal: f64,
    /// Whether short bursts (2 % of samples at 2-5×) come on top.
    bursty: bool,
    /// Used only 08:00-20:00 UTC (a dev workload idle every night).
    office_hours: bool,
    /// Used only Monday to Friday (UTC): batch idle every weekend.
    working_days: bool,
    /// Phase of the daily cycle, radians.
    pub phase: f64,
    /// Baseline working set, bytes.
    pub memory_base: f64,
    /// Growth per simulated hour, bytes.
    pub memory_growth: f64,
    /// Bytes leaked a step: the working set climbs to the limit, the
    /// container is OOM-killed and restarts from its baseline (a crash
    /// loop). 0 for all but a planted scenario.
    pub leak_per_step: f64,
    leaked: f64,
    cpu_seconds: f64,
    /// CFS periods elapsed and throttled, and the time throttled, for a
    /// container with a CPU limit (100 ms periods, as the kernel's default).
    cfs_periods: f64,
    cfs_throttled_periods: f64,
    cfs_throttled_seconds: f64,
    oom_kills: u64,
    memory_now: f64,
    /// What the container does with its GPUs, if it has any.
    pub gpu_work: Option<Work>,
    /// Its GPU utilization this step (per device it uses).
    pub gpu_utilization: f64,
    /// The model server it runs, if any.
    pub server: Option<ModelServer>,
    /// Its own random stream, for containers planted after the fleet was
    /// drawn: they leave the fleet's stream, and so every other series, as
    /// it was.
    pub own_rng: Option<Rng>,
}

impl Container {
    pub fn new(
        rng: &mut Rng,
        identity: ContainerIdentity,
        cpu_request: f64,
        memory_request: f64,
    ) -> Container {
        Container {
            identity,
            cpu_request,
            cpu_limit: (rng.unit() < 0.5).then_some(cpu_request * 2.0),
            memory_request,
            memory_limit: memory_request * 1.5,
            devices: Vec::new(),
            // Most workloads use a fraction of what they ask for.
            cpu_share: 0.05 + rng.unit() * 0.8,
            diurnal: 0.2 + rng.unit() * 0.6,
            bursty: true,
            office_hours: false,
            working_days: false,
            phase: rng.unit() * std::f64::consts::TAU,
            memory_base: memory_request * (0.2 + rng.unit() * 0.7),
            memory_growth: if rng.unit() < 0.1 {
                memory_request * 0.02
            } else {
                0.0
            },
            leak_per_step: 0.0,
            leaked: 0.0,
            cpu_seconds: 0.0,
            cfs_periods: 0.0,
            cfs_throttled_periods: 0.0,
            cfs_throttled_seconds: 0.0,
            oom_kills: 0,
            memory_now: 0.0,
            gpu_work: None,
            gpu_utilization: 0.0,
            server: None,
            own_rng: None,
        }
    }

    /// Advances one step, drawing from its own stream if it has one, else
    /// from the fleet's; returns the container's metrics.
    fn step(&mut self, fleet_rng: &mut Rng, clock: &Clock) -> Vec<Metric> {
        match self.own_rng.take() {
            Some(mut own) => {
                let metrics = self.step_with(&mut own, clock);
                self.own_rng = Some(own);
                metrics
            }
            None => self.step_with(fleet_rng, clock),
        }
    }

    fn step_with(&mut self, rng: &mut Rng, clock: &Clock) -> Vec<Metric> {
        let mut cpu = ExpHistogram::default();
        let mut memory = ExpHistogram::default();
        let mean = self.cpu_request * self.cpu_share;
        let sample_s = clock.step_s / SAMPLES_PER_STEP as f64;
        for _ in 0..SAMPLES_PER_STEP {
            let cycle = clock.cycle(self.diurnal, self.phase);
            let burst = if rng.unit() < 0.02 && self.bursty {
                2.0 + rng.unit() * 3.0
            } else {
                1.0
            };
            let noise = 0.8 + rng.unit() * 0.4;
            let hour = clock.day_angle / std::f64::consts::TAU * 24.0;
            let weekend = (clock.now_ns / DAY_NS + 3) % 7 >= 5;
            let present = if (self.office_hours && !(8.0..20.0).contains(&hour))
                || (self.working_days && weekend)
            {
                0.01
            } else {
                1.0
            };
            let mut cores = (mean * cycle * burst * noise * present).max(0.0);
            if let Some(limit) = self.cpu_limit {
                // Demand above the quota waits: the sample's periods are
                // throttled in proportion to the excess.
                let periods = sample_s / CFS_PERIOD_S;
                let throttled = if cores > limit {
                    (1.0 - limit / cores) * periods
                } else {
                    0.0
                };
                self.cfs_periods += periods;
                self.cfs_throttled_periods += throttled;
                self.cfs_throttled_seconds += throttled * CFS_PERIOD_S;
                cores = cores.min(limit);
            }
            cpu.record(cores);
            self.cpu_seconds += cores * sample_s;
            self.leaked += self.leak_per_step / SAMPLES_PER_STEP as f64;
            let working_set = self.memory_base
                + self.memory_growth * (clock.hours % 48.0)
                + self.leaked
                + rng.unit() * self.memory_base * 0.05;
            if working_set >= self.memory_limit {
                // OOM kill: the container restarts from its baseline.
                self.oom_kills += 1;
                if self.leaked > 0.0 {
                    self.leaked = 0.0;
                } else {
                    self.memory_base *= 0.9;
                }
            }
            self.memory_now = working_set.min(self.memory_limit);
            memory.record(self.memory_now);
        }
        let point = |value: f64| vec![clock.point(vec![], value)];
        let mut metrics: Vec<Metric> = vec![
            otlp::cumulative_sum(&catalog::CONTAINER_CPU_USAGE, point(self.cpu_seconds)),
            otlp::gauge(
                &catalog::CONTAINER_MEMORY_WORKING_SET,
                point(self.memory_now),
            ),
            otlp::gauge(
                &catalog::CONTAINER_MEMORY_USAGE,
                point(self.memory_now * 1.1),
            ),
            otlp::gauge(&catalog::CONTAINER_MEMORY_LIMIT, point(self.memory_limit)),
            otlp::cumulative_sum(
                &catalog::CONTAINER_MEMORY_OOM_KILLS,
                point(self.oom_kills as f64),
            ),
            otlp::exp_histogram(
                &catalog::CONTAINER_CPU_USAGE_SAMPLED,
                vec![clock.window(vec![], &cpu)],
            ),
            otlp::exp_histogram(
                &catalog::CONTAINER_MEMORY_WORKING_SET_SAMPLED,
                vec![clock.window(vec![], &memory)],
            ),
        ];
        if let Some(limit) = self.cpu_limit {
            metrics.push(otlp::gauge(&catalog::CONTAINER_CPU_LIMIT, point(limit)));
            metrics.push(otlp::cumulative_sum(
                &catalog::CONTAINER_CPU_PERIODS,
                point(self.cfs_periods.round()),
            ));
            metrics.push(otlp::cumulative_sum(
                &catalog::CONTAINER_CPU_THROTTLED_PERIODS,
                point(self.cfs_throttled_periods.round()),
            ));
            metrics.push(otlp::cumulative_sum(
                &catalog::CONTAINER_CPU_THROTTLED,
                point(self.cfs_throttled_seconds),
            ));
        }
        let resources = |def: &MetricDef, cpu: f64, memory: f64| {
            let mut points = vec![
                clock.point(attributes(&[("resource", "cpu")]), cpu),
                clock.point(attributes(&[("resource", "memory")]), memory),
            ];
            // Extended resources carry no default limit: request = limit.
            for (resource, count) in &self.devices {
                points.push(clock.point(attributes(&[("resource", resource)]), *count));
            }
            otlp::gauge(def, points)
        };
        metrics.push(resources(
            &catalog::CONTAINER_RESOURCE_REQUESTS,
            self.cpu_request,
            self.memory_request,
        ));
        metrics.push(resources(
            &catalog::CONTAINER_RESOURCE_LIMITS,
            self.cpu_limit.unwrap_or(0.0),
            self.memory_limit,
        ));
        let serving_load = match &mut self.server {
            Some(server) => {
                let load = server.step(rng, clock, &mut metrics);
                Some(load)
            }
            None => None,
        };
        if let Some(work) = self.gpu_work {
            self.gpu_utilization = work.utilization(rng, clock, self.phase, serving_load);
        }
        metrics
    }
}

/// Names pods of one node: unique names and UIDs, deterministic.
pub(super) struct PodNamer {
    node: usize,
    next: usize,
}

impl PodNamer {
    /// A namer for pods of node `node`, numbering from `next` (planted pods
    /// start far above the drawn ones).
    pub fn new(node: usize, next: usize) -> PodNamer {
        PodNamer { node, next }
    }

    /// The identity of the first container of a new pod of `workload`.
    pub fn pod(
        &mut self,
        rng: &mut Rng,
        namespace: &str,
        kind: &str,
        workload: &str,
    ) -> ContainerIdentity {
        let pod_uid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            self.node,
            self.next,
            rng.below(4096),
            rng.below(4096),
            rng.next_u64() & 0xffff_ffff_ffff
        );
        self.next += 1;
        let pod = format!("{workload}-{:05x}", rng.below(1 << 20));
        ContainerIdentity {
            namespace: namespace.to_owned(),
            pod,
            container: "main".to_owned(),
            workload_kind: kind.to_owned(),
            workload_name: workload.to_owned(),
            pod_uid,
            container_id: container_id(rng),
        }
    }
}

/// A runtime container ID (64 hex characters).
pub(super) fn container_id(rng: &mut Rng) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

pub(super) struct Node {
    pub identity: NodeIdentity,
    cpus: f64,
    memory: f64,
    pub containers: Vec<Container>,
    gpus: Option<GpuNode>,
}

impl Node {
    /// Resource attributes of the node (and, extended, of its pods).
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = self.identity.resource_attributes();
        attributes.push(("service.name", "tally-simulate".to_owned()));
        attributes.push(("tally.simulated", "true".to_owned()));
        attributes
    }
}

/// Seed mix of the storefront's own stream.
const STOREFRONT_SEED: u64 = 0x5707_ef20_0000_0001;

/// A healthy control that is also spot-ready: a stateless `storefront`
/// Deployment with a replica on every node, requests sized to its use
/// (no right-sizing card may name it); and `dev/jupyter-dev`, busy in
/// office hours and idle every night. Drawn from their own stream.
fn plant_storefront(seed: u64, nodes: &mut [Node]) {
    let mut rng = Rng::new(seed ^ STOREFRONT_SEED);
    for (n, node) in nodes.iter_mut().enumerate() {
        let mut namer = PodNamer {
            node: n,
            next: 4096,
        };
        let identity = namer.pod(&mut rng, "web", "Deployment", "storefront");
        let mut c = Container::new(&mut rng, identity, 0.5, 0.5 * GIB);
        c.cpu_limit = None;
        c.cpu_share = 0.7;
        c.diurnal = 0.2;
        c.bursty = false;
        c.memory_base = 0.45 * GIB;
        c.memory_growth = 0.0;
        c.memory_limit = 0.5 * GIB;
        node.containers.push(c);
    }
    // A dev workload used in office hours only, on the first node.
    if let Some(node) = nodes.first_mut() {
        let mut namer = PodNamer {
            node: 0,
            next: 8192,
        };
        let identity = namer.pod(&mut rng, "dev", "Deployment", "jupyter-dev");
        let mut c = Container::new(&mut rng, identity, 2.0, 4.0 * GIB);
        c.cpu_share = 0.6;
        c.diurnal = 0.1;
        c.bursty = false;
        c.office_hours = true;
        c.memory_growth = 0.0;
        node.containers.push(c);
    }
}

/// Seed mix of the checkout's own stream.
const CHECKOUT_SEED: u64 = 0xc4ec_0a70_0000_0002;

/// Whether a pod belongs to the workloads planted after the fleet's
/// egress was drawn (`web/checkout`, `batch/report-builder`): their
/// traffic comes from a stream of their own.
fn is_checkout(id: &ContainerIdentity) -> bool {
    (id.namespace == "web" && id.workload_name == "checkout")
        || (id.namespace == "batch" && id.workload_name == "report-builder")
}

/// A stateless `web/checkout` Deployment with a replica on every node,
/// shaped like the storefront (requests fit its use, busy around the
/// clock) but under a PodDisruptionBudget that keeps every replica
/// available ([`super::workloads`]): the case a spot-readiness check must
/// refuse. Planted after the fleet's draws, egress and volumes, each
/// container with its own stream, so no other series changes.
fn plant_checkout(seed: u64, nodes: &mut [Node]) {
    let mut rng = Rng::new(seed ^ CHECKOUT_SEED);
    for (n, node) in nodes.iter_mut().enumerate() {
        let mut namer = PodNamer {
            node: n,
            next: 12_288,
        };
        let identity = namer.pod(&mut rng, "web", "Deployment", "checkout");
        let mut c = Container::new(&mut rng, identity, 0.25, 0.25 * GIB);
        c.cpu_limit = None;
        c.cpu_share = 0.7;
        c.diurnal = 0.2;
        c.bursty = false;
        c.memory_base = 0.225 * GIB;
        c.memory_growth = 0.0;
        c.memory_limit = 0.25 * GIB;
        c.own_rng = Some(Rng::new(seed ^ CHECKOUT_SEED ^ (n as u64 + 1)));
        node.containers.push(c);
    }
}

/// Seed mix of the weekday batch's own stream.
const WEEKDAY_BATCH_SEED: u64 = 0xba7c_0000_0000_0003;

/// `batch/report-builder`, busy around the clock Monday to Friday and idle
/// every weekend (UTC), on the first node: the weekly cycle a schedule
/// should catch. Planted with the checkout, from its own stream.
fn plant_weekday_batch(seed: u64, nodes: &mut [Node]) {
    let Some(node) = nodes.first_mut() else {
        return;
    };
    let mut rng = Rng::new(seed ^ WEEKDAY_BATCH_SEED);
    let mut namer = PodNamer {
        node: 0,
        next: 16_384,
    };
    let identity = namer.pod(&mut rng, "batch", "Deployment", "report-builder");
    let mut c = Container::new(&mut rng, identity, 4.0, 8.0 * GIB);
    c.cpu_share = 0.6;
    c.diurnal = 0.1;
    c.bursty = false;
    c.working_days = true;
    c.memory_growth = 0.0;
    c.own_rng = Some(Rng::new(seed ^ WEEKDAY_BATCH_SEED ^ 1));
    node.containers.push(c);
}

/// The simulated fleet.
pub struct Fleet {
    nodes: Vec<Node>,
    egress: Egress,
    volumes: Volumes,
    rng: Rng,
    start_ns: u64,
    /// The planted checkout's traffic, and the stream it draws from.
    checkout_egress: Egress,
    checkout_rng: Rng,
    workloads: Workloads,
}

impl Fleet {
    /// A fleet of `nodes` nodes from `seed`, counters starting at `start_ns`.
    pub fn new(nodes: usize, seed: u64, start_ns: u64) -> Fleet {
        let mut rng = Rng::new(seed);
        let mut nodes: Vec<Node> = (0..nodes)
            .map(|n| {
                let drawn = rng.below(INSTANCE_TYPES.len());
                let planted = PLANTED.iter().find(|(node, _)| *node == n);
                let instance = &INSTANCE_TYPES[planted.map_or(drawn, |(_, t)| *t)];
                let zone = ZONES[n % ZONES.len()];
                let identity = NodeIdentity {
                    name: format!("sim-node-{n:04}"),
                    zone: zone.to_owned(),
                    region: REGION.to_owned(),
                    instance_type: instance.name.to_owned(),
                    capacity_type: if rng.unit() < 0.3 {
                        "spot"
                    } else {
                        "on-demand"
                    }
                    .to_owned(),
                };
                let mut namer = PodNamer { node: n, next: 0 };
                let mut containers = Vec::new();
                for _ in 0..(4 + rng.below(12)) {
                    let namespace = NAMESPACES[rng.below(NAMESPACES.len())];
                    let kind = OWNERS[rng.below(OWNERS.len())];
                    let workload = format!("{namespace}-app-{}", rng.below(40));
                    let main = namer.pod(&mut rng, namespace, kind, &workload);
                    for c in 0..(1 + rng.below(2)) {
                        let identity = if c == 0 {
                            main.clone()
                        } else {
                            ContainerIdentity {
                                container: "sidecar".to_owned(),
                                container_id: container_id(&mut rng),
                                ..main.clone()
                            }
                        };
                        let cpu_request = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0][rng.below(6)];
                        let memory_request = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0][rng.below(6)] * GIB;
                        containers.push(Container::new(
                            &mut rng,
                            identity,
                            cpu_request,
                            memory_request,
                        ));
                    }
                }
                let gpus = instance.gpus.map(|(model, count)| {
                    gpu::plant(&mut rng, n, model, count, &mut namer, &mut containers)
                });
                Node {
                    identity,
                    cpus: instance.cpus,
                    memory: instance.memory,
                    containers,
                    gpus,
                }
            })
            .collect();
        plant_storefront(seed, &mut nodes);
        let egress = Egress::new(&mut rng, &nodes);
        // Its own generator: the draws above stay as they were.
        let volumes = Volumes::new(seed, &nodes);
        plant_checkout(seed, &mut nodes);
        plant_weekday_batch(seed, &mut nodes);
        let mut checkout_rng = Rng::new(seed ^ CHECKOUT_SEED ^ 0xe9);
        let checkout_egress = Egress::for_pods(&mut checkout_rng, &nodes, is_checkout);
        let workloads = Workloads::new(seed, &nodes);
        Fleet {
            nodes,
            egress,
            volumes,
            rng,
            start_ns,
            checkout_egress,
            checkout_rng,
            workloads,
        }
    }

    /// The nodes, for a scenario to reshape after the draws.
    pub(super) fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// Containers in the fleet.
    pub fn containers(&self) -> usize {
        self.nodes.iter().map(|n| n.containers.len()).sum()
    }

    /// Advances to `now_ns` by `step` and returns one batch for every node.
    pub fn step(&mut self, now_ns: u64, step: Duration) -> ExportMetricsServiceRequest {
        let clock = Clock {
            start_ns: self.start_ns,
            now_ns,
            window_start_ns: now_ns.saturating_sub(step.as_nanos() as u64),
            step_s: step.as_secs_f64(),
            day_angle: (now_ns % 86_400_000_000_000) as f64 / 86_400e9 * std::f64::consts::TAU,
            hours: now_ns.saturating_sub(self.start_ns) as f64 / 3.6e12,
        };
        let mut resource_metrics = Vec::new();
        for node in &mut self.nodes {
            let node_attributes = node.attributes();
            let mut container_metrics: Vec<Vec<Metric>> = node
                .containers
                .iter_mut()
                .map(|c| c.step(&mut self.rng, &clock))
                .collect();
            let mut node_metrics = vec![
                otlp::gauge(
                    &catalog::NODE_MEMORY_TOTAL,
                    vec![clock.point(vec![], node.memory)],
                ),
                otlp::gauge(
                    &catalog::NODE_CPU_COUNT,
                    vec![clock.point(vec![], node.cpus)],
                ),
            ];
            if let Some(gpus) = &mut node.gpus {
                gpus.step(
                    &mut self.rng,
                    &clock,
                    &node.containers,
                    &mut node_metrics,
                    &mut container_metrics,
                );
            }
            resource_metrics.push(otlp::resource_metrics(
                otlp::resource(node_attributes.clone()),
                node_metrics,
                "simulated",
            ));
            for (container, metrics) in node.containers.iter().zip(container_metrics) {
                let mut attributes = node_attributes.clone();
                attributes.extend(container.identity.resource_attributes());
                attributes.push(("container.runtime", "containerd".to_owned()));
                resource_metrics.push(otlp::resource_metrics(
                    otlp::resource(attributes),
                    metrics,
                    "simulated",
                ));
            }
        }
        self.egress
            .step(&mut self.rng, &clock, &mut resource_metrics);
        self.checkout_egress
            .step(&mut self.checkout_rng, &clock, &mut resource_metrics);
        self.volumes.step(&clock, &mut resource_metrics);
        self.workloads.step(&clock, &mut resource_metrics);
        ExportMetricsServiceRequest { resource_metrics }
    }
}
