//! `tally simulate`: a deterministic (seeded) fleet that speaks OTLP
//! exactly like real agents: the same metric names, units, resource
//! attributes and batch shape, so it can fill a collector for benchmarks
//! and end-to-end tests. Every resource carries `tally.simulated=true`.
//!
//! Nodes of realistic instance types (CPU and GPU, three zones, spot and
//! on-demand) run pods with owners, requests and limits. Usage follows a
//! diurnal cycle with noise and bursts; memory grows slowly and a container
//! that reaches its limit is OOM-killed and restarts. GPU, model-serving and
//! egress families are not emitted yet: their metric names arrive with
//! their issues (#5, #6, #8).

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::exphist::ExpHistogram;
use tally_schema::identity::{ContainerIdentity, NodeIdentity};
use tally_schema::otlp;

/// Samples folded into each step's distributions, like the agent's 1 s
/// samples within a 15 s export.
const SAMPLES_PER_STEP: usize = 15;

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Collector base URL.
    pub collector: String,
    /// Nodes in the fleet.
    pub nodes: usize,
    /// PRNG seed; the same seed gives the same fleet and the same values.
    pub seed: u64,
    /// Generate this much history up to now as fast as possible, then stop.
    pub backfill: Option<Duration>,
    /// Time between batches (simulated time while backfilling).
    pub step: Duration,
    /// Batches to send in real time before stopping (`None`: until stopped).
    pub ticks: Option<u64>,
    /// Bearer token for the collector.
    pub token: Option<String>,
    /// Write the batches as Prometheus text (with timestamps) to this file
    /// instead of sending them: the same points for a peer's import API.
    pub dump_prometheus: Option<std::path::PathBuf>,
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The collector refused a batch for good.
    #[error("collector at {url} answered {status}: {body}")]
    Rejected {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The response body.
        body: String,
    },
    /// The collector could not be reached.
    #[error("cannot reach the collector at {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// A small deterministic PRNG (xorshift64*): reproducible fleets without
/// a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; 0 is mapped to a fixed non-zero state.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

struct InstanceType {
    name: &'static str,
    cpus: f64,
    memory: f64,
}

const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "m6i.2xlarge",
        cpus: 8.0,
        memory: 32.0 * GIB,
    },
    InstanceType {
        name: "c6i.4xlarge",
        cpus: 16.0,
        memory: 32.0 * GIB,
    },
    InstanceType {
        name: "r6i.2xlarge",
        cpus: 8.0,
        memory: 64.0 * GIB,
    },
    InstanceType {
        name: "g5.2xlarge",
        cpus: 8.0,
        memory: 32.0 * GIB,
    },
    InstanceType {
        name: "p4d.24xlarge",
        cpus: 96.0,
        memory: 1152.0 * GIB,
    },
    InstanceType {
        name: "p5.48xlarge",
        cpus: 192.0,
        memory: 2048.0 * GIB,
    },
];
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const ZONES: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];
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

struct Container {
    identity: ContainerIdentity,
    cpu_request: f64,
    cpu_limit: Option<f64>,
    memory_request: f64,
    memory_limit: f64,
    /// Mean CPU as a share of the request (right-sizing signal).
    cpu_share: f64,
    /// Daily amplitude of the cycle, as a share of the mean.
    diurnal: f64,
    /// Phase of the daily cycle, radians.
    phase: f64,
    /// Baseline working set, bytes.
    memory_base: f64,
    /// Growth per simulated hour, bytes.
    memory_growth: f64,
    cpu_seconds: f64,
    oom_kills: u64,
    memory_now: f64,
}

struct Node {
    identity: NodeIdentity,
    cpus: f64,
    memory: f64,
    containers: Vec<Container>,
}

/// The simulated fleet.
pub struct Fleet {
    nodes: Vec<Node>,
    rng: Rng,
    start_ns: u64,
}

impl Fleet {
    /// A fleet of `nodes` nodes from `seed`, counters starting at `start_ns`.
    pub fn new(nodes: usize, seed: u64, start_ns: u64) -> Fleet {
        let mut rng = Rng::new(seed);
        let nodes = (0..nodes)
            .map(|n| {
                let instance = &INSTANCE_TYPES[rng.below(INSTANCE_TYPES.len())];
                let zone = ZONES[n % ZONES.len()];
                let identity = NodeIdentity {
                    name: format!("sim-node-{n:04}"),
                    zone: zone.to_owned(),
                    region: "us-east-1".to_owned(),
                    instance_type: instance.name.to_owned(),
                    capacity_type: if rng.unit() < 0.3 {
                        "spot"
                    } else {
                        "on-demand"
                    }
                    .to_owned(),
                };
                let pods = 4 + rng.below(12);
                let mut containers = Vec::new();
                for p in 0..pods {
                    let namespace = NAMESPACES[rng.below(NAMESPACES.len())];
                    let kind = OWNERS[rng.below(OWNERS.len())];
                    let workload = format!("{namespace}-app-{}", rng.below(40));
                    let pod_uid = format!(
                        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                        n,
                        p,
                        rng.below(4096),
                        rng.below(4096),
                        rng.next_u64() & 0xffff_ffff_ffff
                    );
                    for c in 0..(1 + rng.below(2)) {
                        let cpu_request = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0][rng.below(6)];
                        let memory_request = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0][rng.below(6)] * GIB;
                        containers.push(Container {
                            identity: ContainerIdentity {
                                namespace: namespace.to_owned(),
                                pod: format!("{workload}-{:05x}", rng.below(1 << 20)),
                                container: if c == 0 {
                                    "main".to_owned()
                                } else {
                                    "sidecar".to_owned()
                                },
                                workload_kind: kind.to_owned(),
                                workload_name: workload.clone(),
                                pod_uid: pod_uid.clone(),
                                container_id: format!(
                                    "{:016x}{:016x}{:016x}{:016x}",
                                    rng.next_u64(),
                                    rng.next_u64(),
                                    rng.next_u64(),
                                    rng.next_u64()
                                ),
                            },
                            cpu_request,
                            cpu_limit: (rng.unit() < 0.5).then_some(cpu_request * 2.0),
                            memory_request,
                            memory_limit: memory_request * 1.5,
                            // Most workloads use a fraction of what they ask for.
                            cpu_share: 0.05 + rng.unit() * 0.8,
                            diurnal: 0.2 + rng.unit() * 0.6,
                            phase: rng.unit() * std::f64::consts::TAU,
                            memory_base: memory_request * (0.2 + rng.unit() * 0.7),
                            memory_growth: if rng.unit() < 0.1 {
                                memory_request * 0.02
                            } else {
                                0.0
                            },
                            cpu_seconds: 0.0,
                            oom_kills: 0,
                            memory_now: 0.0,
                        });
                    }
                }
                Node {
                    identity,
                    cpus: instance.cpus,
                    memory: instance.memory,
                    containers,
                }
            })
            .collect();
        Fleet {
            nodes,
            rng,
            start_ns,
        }
    }

    /// Containers in the fleet.
    pub fn containers(&self) -> usize {
        self.nodes.iter().map(|n| n.containers.len()).sum()
    }

    /// Advances to `now_ns` by `step` and returns one batch for every node.
    pub fn step(&mut self, now_ns: u64, step: Duration) -> ExportMetricsServiceRequest {
        let hours = now_ns.saturating_sub(self.start_ns) as f64 / 3.6e12;
        let day_angle = (now_ns % 86_400_000_000_000) as f64 / 86_400e9 * std::f64::consts::TAU;
        let window_start = now_ns.saturating_sub(step.as_nanos() as u64);
        let mut resource_metrics = Vec::new();
        for node in &mut self.nodes {
            let mut node_attributes = node.identity.resource_attributes();
            node_attributes.push(("service.name", "tally-simulate".to_owned()));
            node_attributes.push(("tally.simulated", "true".to_owned()));
            let node_metrics = vec![
                otlp::gauge(
                    &catalog::NODE_MEMORY_TOTAL,
                    vec![otlp::number_point(
                        vec![],
                        self.start_ns,
                        now_ns,
                        node.memory,
                    )],
                ),
                otlp::gauge(
                    &catalog::NODE_CPU_COUNT,
                    vec![otlp::number_point(vec![], self.start_ns, now_ns, node.cpus)],
                ),
            ];
            resource_metrics.push(otlp::resource_metrics(
                otlp::resource(node_attributes.clone()),
                node_metrics,
                "simulated",
            ));
            for container in &mut node.containers {
                let mut cpu = ExpHistogram::default();
                let mut memory = ExpHistogram::default();
                let mean = container.cpu_request * container.cpu_share;
                for _ in 0..SAMPLES_PER_STEP {
                    let cycle = 1.0 + container.diurnal * (day_angle + container.phase).sin();
                    let burst = if self.rng.unit() < 0.02 {
                        2.0 + self.rng.unit() * 3.0
                    } else {
                        1.0
                    };
                    let noise = 0.8 + self.rng.unit() * 0.4;
                    let mut cores = (mean * cycle * burst * noise).max(0.0);
                    if let Some(limit) = container.cpu_limit {
                        cores = cores.min(limit);
                    }
                    cpu.record(cores);
                    container.cpu_seconds += cores * step.as_secs_f64() / SAMPLES_PER_STEP as f64;
                    let working_set = container.memory_base
                        + container.memory_growth * (hours % 48.0)
                        + self.rng.unit() * container.memory_base * 0.05;
                    if working_set >= container.memory_limit {
                        // OOM kill: the container restarts from its baseline.
                        container.oom_kills += 1;
                        container.memory_base *= 0.9;
                    }
                    container.memory_now = working_set.min(container.memory_limit);
                    memory.record(container.memory_now);
                }
                let point =
                    |value: f64| vec![otlp::number_point(vec![], self.start_ns, now_ns, value)];
                let mut metrics: Vec<Metric> = vec![
                    otlp::cumulative_sum(
                        &catalog::CONTAINER_CPU_USAGE,
                        point(container.cpu_seconds),
                    ),
                    otlp::gauge(
                        &catalog::CONTAINER_MEMORY_WORKING_SET,
                        point(container.memory_now),
                    ),
                    otlp::gauge(
                        &catalog::CONTAINER_MEMORY_USAGE,
                        point(container.memory_now * 1.1),
                    ),
                    otlp::gauge(
                        &catalog::CONTAINER_MEMORY_LIMIT,
                        point(container.memory_limit),
                    ),
                    otlp::cumulative_sum(
                        &catalog::CONTAINER_MEMORY_OOM_KILLS,
                        point(container.oom_kills as f64),
                    ),
                    otlp::exp_histogram(
                        &catalog::CONTAINER_CPU_USAGE_SAMPLED,
                        vec![otlp::exp_histogram_point(
                            vec![],
                            window_start,
                            now_ns,
                            &cpu,
                        )],
                    ),
                    otlp::exp_histogram(
                        &catalog::CONTAINER_MEMORY_WORKING_SET_SAMPLED,
                        vec![otlp::exp_histogram_point(
                            vec![],
                            window_start,
                            now_ns,
                            &memory,
                        )],
                    ),
                ];
                if let Some(limit) = container.cpu_limit {
                    metrics.push(otlp::gauge(&catalog::CONTAINER_CPU_LIMIT, point(limit)));
                }
                let resources = |def: &MetricDef, cpu: f64, memory: f64| {
                    let attr = |r: &str| vec![otlp::string_attribute("resource", r)];
                    otlp::gauge(
                        def,
                        vec![
                            otlp::number_point(attr("cpu"), self.start_ns, now_ns, cpu),
                            otlp::number_point(attr("memory"), self.start_ns, now_ns, memory),
                        ],
                    )
                };
                metrics.push(resources(
                    &catalog::CONTAINER_RESOURCE_REQUESTS,
                    container.cpu_request,
                    container.memory_request,
                ));
                metrics.push(resources(
                    &catalog::CONTAINER_RESOURCE_LIMITS,
                    container.cpu_limit.unwrap_or(0.0),
                    container.memory_limit,
                ));
                let mut attributes: Vec<(&str, String)> = node_attributes.clone();
                attributes.extend(container.identity.resource_attributes());
                attributes.push(("container.runtime", "containerd".to_owned()));
                resource_metrics.push(otlp::resource_metrics(
                    otlp::resource(attributes),
                    metrics,
                    "simulated",
                ));
            }
        }
        ExportMetricsServiceRequest { resource_metrics }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Renders a batch's points as Prometheus text with millisecond
/// timestamps (resource and point attributes become labels, `.` → `_`).
/// Exponential histograms become `_count` and `_sum` lines.
pub fn prometheus_text(request: &ExportMetricsServiceRequest, out: &mut String) {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use std::fmt::Write as _;
    let label_text = |attributes: &[(String, String)]| {
        let parts: Vec<String> = attributes
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}=\"{}\"",
                    k.replace(['.', '/', '-'], "_"),
                    v.replace('\\', "\\\\").replace('"', "\\\"")
                )
            })
            .collect();
        parts.join(",")
    };
    let pairs =
        |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Vec<(String, String)> {
            kvs.iter()
                .filter_map(|kv| {
                    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => s.clone(),
                        _ => return None,
                    };
                    Some((kv.key.clone(), value))
                })
                .collect()
        };
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| pairs(&r.attributes))
            .unwrap_or_default();
        for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let mut line =
                |suffix: &str,
                 point_attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
                 value: f64,
                 time_ns: u64| {
                    let mut all = resource.clone();
                    all.extend(pairs(point_attributes));
                    let _ = writeln!(
                        out,
                        "{}{suffix}{{{}}} {value} {}",
                        metric.name,
                        label_text(&all),
                        time_ns / 1_000_000
                    );
                };
            let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p
                .value
            {
                Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v),
                ) => v,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    v,
                )) => v as f64,
                None => 0.0,
            };
            match &metric.data {
                Some(Data::Gauge(g)) => g
                    .data_points
                    .iter()
                    .for_each(|p| line("", &p.attributes, number(p), p.time_unix_nano)),
                Some(Data::Sum(s)) => s
                    .data_points
                    .iter()
                    .for_each(|p| line("", &p.attributes, number(p), p.time_unix_nano)),
                Some(Data::ExponentialHistogram(h)) => h.data_points.iter().for_each(|p| {
                    line("_count", &p.attributes, p.count as f64, p.time_unix_nano);
                    line(
                        "_sum",
                        &p.attributes,
                        p.sum.unwrap_or(0.0),
                        p.time_unix_nano,
                    );
                }),
                _ => {}
            }
        }
    }
}

/// What a run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulateReport {
    /// Batches acknowledged.
    pub batches: u64,
    /// Data points sent.
    pub points: u64,
    /// Points the collector refused inside partial successes.
    pub rejected_points: u64,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    request: &ExportMetricsServiceRequest,
) -> Result<u64, SimulateError> {
    let body = otlp::encode_metrics(request);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(&body);
    let body = encoder.finish().unwrap_or(body);
    let mut attempt = 0;
    loop {
        let mut builder = client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "gzip")
            .body(body.clone());
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| SimulateError::Unreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            });
        let response = match response {
            Ok(response) => response,
            Err(error) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        match status {
            200..=299 => {
                let rejected = otlp::decode_metrics_response(&bytes)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| p.rejected_data_points.max(0) as u64)
                    .unwrap_or(0);
                return Ok(rejected);
            }
            429 | 502 | 503 | 504 if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            _ => {
                return Err(SimulateError::Rejected {
                    url: url.to_owned(),
                    status,
                    body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                });
            }
        }
    }
}

/// Runs the simulation until done or `shutdown` turns true.
pub async fn run(
    options: SimulateOptions,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<SimulateReport, SimulateError> {
    let url = format!("{}/v1/metrics", options.collector.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SimulateError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let step_ns = options.step.as_nanos().max(1) as u64;
    let now = now_ns();
    let mut report = SimulateReport::default();
    let token = options.token.as_deref();
    if let Some(backfill) = options.backfill {
        // Start one step inside the window so the oldest batch is not
        // already past the collector's retention when it arrives.
        let start = now.saturating_sub(backfill.as_nanos() as u64) + step_ns;
        let mut fleet = Fleet::new(options.nodes, options.seed, start);
        tracing::info!(
            nodes = options.nodes,
            containers = fleet.containers(),
            from_ns = start,
            "backfilling"
        );
        let mut dump = match &options.dump_prometheus {
            Some(path) => {
                Some(
                    std::fs::File::create(path).map_err(|e| SimulateError::Unreachable {
                        url: path.display().to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let mut text = String::new();
        let mut t = start;
        while t <= now {
            if *shutdown.borrow() {
                break;
            }
            let request = fleet.step(t, options.step);
            report.points += otlp::count_points(&request) as u64;
            match &mut dump {
                Some(file) => {
                    text.clear();
                    prometheus_text(&request, &mut text);
                    file.write_all(text.as_bytes())
                        .map_err(|e| SimulateError::Unreachable {
                            url: "dump file".to_owned(),
                            reason: e.to_string(),
                        })?;
                }
                None => report.rejected_points += send(&client, &url, token, &request).await?,
            }
            report.batches += 1;
            t += step_ns;
        }
        return Ok(report);
    }
    let mut fleet = Fleet::new(options.nodes, options.seed, now);
    tracing::info!(
        nodes = options.nodes,
        containers = fleet.containers(),
        "simulating in real time"
    );
    let mut tick = tokio::time::interval(options.step);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        let request = fleet.step(now_ns(), options.step);
        report.points += otlp::count_points(&request) as u64;
        report.rejected_points += send(&client, &url, token, &request).await?;
        report.batches += 1;
        if options.ticks.is_some_and(|ticks| report.batches >= ticks) {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_values() {
        let step = Duration::from_secs(15);
        let mut a = Fleet::new(5, 42, 1_000);
        let mut b = Fleet::new(5, 42, 1_000);
        let mut c = Fleet::new(5, 43, 1_000);
        let t = 1_000 + 15_000_000_000;
        let (ra, rb, rc) = (a.step(t, step), b.step(t, step), c.step(t, step));
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        assert!(a.containers() >= 5 * 4);
        // Every resource is marked simulated.
        for rm in &ra.resource_metrics {
            let attrs = &rm.resource.as_ref().expect("resource").attributes;
            assert_eq!(otlp::find_string(attrs, "tally.simulated"), Some("true"));
        }
    }
}
