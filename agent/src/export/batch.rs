//! Building one OTLP batch from a snapshot and the histograms folded since
//! the last export.
//!
//! One resource for the node (host metrics) and one per container with the
//! semantic-convention attributes of both node and container, so the
//! collector can attribute every point without a lookup. Counters go as
//! cumulative sums, gauges as gauges, sampled distributions as delta
//! exponential histograms.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use tally_schema::catalog::{self, MetricDef, MetricKind};
use tally_schema::exphist::ExpHistogram;
use tally_schema::otlp::{self, ExportMetricsServiceRequest, string_attribute};

use tally_schema::semconv;

use crate::config::GpuNames;
use crate::exposition::CONTAINER_VALUES;
use crate::snapshot::Snapshot;
use crate::sources::cgroups::discovery::DiscoveredCgroup;
use crate::sources::gpu::{ContainerGpuPoints, GpuPoint};
use crate::sources::host::{DISK_VALUES, INTERFACE_VALUES};
use crate::sources::logs::metrics::LogDistribution;
use crate::sources::pods::workloads::{POD_FACT_SERIES, POD_FACT_VALUES};
use crate::sources::serving::{ModelHistograms, dist_def};
use crate::sources::volumes::VOLUME_VALUES;
use tally_schema::identity::ContainerIdentity;

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Histograms of one container for one export window.
#[derive(Debug, Clone)]
pub struct WindowHistograms {
    /// The container's cgroup.
    pub cgroup: DiscoveredCgroup,
    /// CPU cores per sample.
    pub cpu_cores: ExpHistogram,
    /// Working set per sample.
    pub working_set: ExpHistogram,
}

/// Timing of one export.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Agent start (start time of cumulative series).
    pub process_start: SystemTime,
    /// Start of this delta window (the previous export).
    pub window_start: SystemTime,
    /// Now.
    pub now: SystemTime,
}

fn number(def: &MetricDef, points: Vec<(Vec<KeyValue>, f64)>, window: &Window) -> Option<Metric> {
    number_at(def, points, window, window.now)
}

/// [`number`] for points read at `read_at` rather than at export time.
fn number_at(
    def: &MetricDef,
    points: Vec<(Vec<KeyValue>, f64)>,
    window: &Window,
    read_at: SystemTime,
) -> Option<Metric> {
    if points.is_empty() {
        return None;
    }
    let start = unix_nanos(window.process_start);
    let now = unix_nanos(read_at);
    let points = points
        .into_iter()
        .map(|(attributes, value)| otlp::number_point(attributes, start, now, value))
        .collect();
    Some(match def.kind {
        MetricKind::Counter => otlp::cumulative_sum(def, points),
        _ => otlp::gauge(def, points),
    })
}

fn one(def: &MetricDef, value: Option<f64>, window: &Window) -> Option<Metric> {
    number(
        def,
        value.map(|v| vec![(Vec::new(), v)]).unwrap_or_default(),
        window,
    )
}

/// Distributions of one export window besides the containers' own.
#[derive(Debug, Default)]
pub struct WindowExtras {
    /// Model servers' latency distributions.
    pub models: Vec<ModelHistograms>,
    /// The latency and token distributions containers' log messages
    /// reported.
    pub log_distributions: Vec<LogDistribution>,
}

/// A delta exponential histogram of one window.
fn delta_histogram(
    def: &MetricDef,
    attributes: Vec<KeyValue>,
    histogram: &ExpHistogram,
    (window_start, now): (u64, u64),
) -> Metric {
    otlp::exp_histogram(
        def,
        vec![otlp::exp_histogram_point(
            attributes,
            window_start,
            now,
            histogram,
        )],
    )
}

/// A container's resource (the node's attributes and its own) holding
/// `metrics`.
fn container_resource(
    node_attributes: &[(&'static str, String)],
    identity: &ContainerIdentity,
    metrics: Vec<Metric>,
    version: &str,
) -> opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
    let mut attributes = node_attributes.to_vec();
    attributes.extend(identity.resource_attributes());
    otlp::resource_metrics(otlp::resource(attributes), metrics, version)
}

/// Builds the request for one export, GPU families named as `gpu_names`
/// says.
pub fn build_request(
    snapshot: &Snapshot,
    node_name: &str,
    histograms: Vec<WindowHistograms>,
    extras: WindowExtras,
    window: &Window,
    version: &str,
    gpu_names: GpuNames,
) -> ExportMetricsServiceRequest {
    let mut node_attributes = snapshot.node.resource_attributes();
    if !node_attributes.iter().any(|(k, _)| *k == "k8s.node.name") {
        node_attributes.push(("k8s.node.name", node_name.to_owned()));
    }
    node_attributes.push(("service.name", "tally-agent".to_owned()));
    let mut resource_metrics = Vec::new();

    if let Some(host) = &snapshot.host {
        let mut metrics = Vec::new();
        let attr = |key: &str, value: &str| vec![string_attribute(key, value)];
        metrics.extend(number(
            &catalog::NODE_CPU,
            host.cpu_seconds
                .iter()
                .map(|(mode, s)| (attr("mode", mode), *s))
                .collect(),
            window,
        ));
        metrics.extend(one(
            &catalog::NODE_CPU_COUNT,
            Some(host.cpu_count as f64),
            window,
        ));
        if let Some([one_min, five, fifteen]) = host.load {
            metrics.extend(one(&catalog::NODE_LOAD1, Some(one_min), window));
            metrics.extend(one(&catalog::NODE_LOAD5, Some(five), window));
            metrics.extend(one(&catalog::NODE_LOAD15, Some(fifteen), window));
        }
        for (def, value) in [
            (&catalog::NODE_MEMORY_TOTAL, host.memory_total),
            (&catalog::NODE_MEMORY_AVAILABLE, host.memory_available),
            (&catalog::NODE_MEMORY_FREE, host.memory_free),
            (&catalog::NODE_SWAP_TOTAL, host.swap_total),
            (&catalog::NODE_SWAP_FREE, host.swap_free),
        ] {
            metrics.extend(one(def, Some(value as f64), window));
        }
        let fs = |f: &crate::sources::host::Filesystem| {
            vec![
                string_attribute("device", f.device.clone()),
                string_attribute("mountpoint", f.mountpoint.clone()),
                string_attribute("fstype", f.fstype.clone()),
            ]
        };
        metrics.extend(number(
            &catalog::NODE_FILESYSTEM_SIZE,
            host.filesystems
                .iter()
                .map(|f| (fs(f), f.size_bytes as f64))
                .collect(),
            window,
        ));
        metrics.extend(number(
            &catalog::NODE_FILESYSTEM_AVAIL,
            host.filesystems
                .iter()
                .map(|f| (fs(f), f.avail_bytes as f64))
                .collect(),
            window,
        ));
        for (def, field) in DISK_VALUES {
            let points = host
                .disks
                .iter()
                .map(|d| (attr("device", &d.device), field(d) as f64));
            metrics.extend(number(def, points.collect(), window));
        }
        for (def, field) in INTERFACE_VALUES {
            let points = host
                .interfaces
                .iter()
                .map(|i| (attr("interface", &i.name), field(i) as f64));
            metrics.extend(number(def, points.collect(), window));
        }
        metrics.extend(one(
            &catalog::NODE_BOOT_TIME,
            host.boot_time.map(|b| b as f64),
            window,
        ));
        metrics.extend(one(
            &catalog::NODE_UPTIME,
            host.uptime.map(|u| u as f64),
            window,
        ));
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(node_attributes.clone()),
            metrics,
            version,
        ));
    }

    let mut by_id: HashMap<&str, &WindowHistograms> = HashMap::new();
    for h in &histograms {
        by_id.insert(h.cgroup.relative.as_str(), h);
    }
    let delta_window = (unix_nanos(window.window_start), unix_nanos(window.now));
    for container in &snapshot.containers {
        let mut metrics = Vec::new();
        for (def, value) in CONTAINER_VALUES {
            metrics.extend(one(def, value(&container.stats), window));
        }
        for (def, map) in [
            (&catalog::CONTAINER_RESOURCE_REQUESTS, &container.requests),
            (&catalog::CONTAINER_RESOURCE_LIMITS, &container.limits),
        ] {
            metrics.extend(number(
                def,
                map.iter()
                    .map(|(resource, value)| {
                        (vec![string_attribute("resource", resource.clone())], *value)
                    })
                    .collect(),
                window,
            ));
        }
        if let Some(h) = by_id.get(container.cgroup.as_str()) {
            if !h.cpu_cores.is_empty() {
                metrics.push(delta_histogram(
                    &catalog::CONTAINER_CPU_USAGE_SAMPLED,
                    Vec::new(),
                    &h.cpu_cores,
                    delta_window,
                ));
            }
            if !h.working_set.is_empty() {
                metrics.push(delta_histogram(
                    &catalog::CONTAINER_MEMORY_WORKING_SET_SAMPLED,
                    Vec::new(),
                    &h.working_set,
                    delta_window,
                ));
            }
        }
        let mut attributes = node_attributes.clone();
        attributes.extend(container.identity.resource_attributes());
        attributes.push(("container.runtime", container.runtime.as_str().to_owned()));
        attributes.push(("tally.cgroup.path", container.cgroup.clone()));
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(attributes),
            metrics,
            version,
        ));
    }
    // One resource per pod with start-up, controller, budget or
    // autoscaler facts.
    for facts in &snapshot.pod_facts {
        let mut metrics: Vec<Metric> = POD_FACT_VALUES
            .iter()
            .filter_map(|(def, value)| {
                let points = value(facts)
                    .map(|v| vec![(Vec::new(), v)])
                    .unwrap_or_default();
                number(def, points, window)
            })
            .collect();
        metrics.extend(POD_FACT_SERIES.iter().filter_map(|(def, key, series)| {
            number(def, facts.series_points(key, *series), window)
        }));
        let mut attributes = node_attributes.clone();
        attributes.extend(facts.identity.resource_attributes());
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(attributes),
            metrics,
            version,
        ));
    }
    // One resource per pod volume: the pod's, as network families have.
    for volume in &snapshot.volumes {
        let metrics = VOLUME_VALUES
            .iter()
            .filter_map(|(def, value)| {
                let points = value(volume)
                    .map(|v| vec![(volume.point_attributes(), v)])
                    .unwrap_or_default();
                number(def, points, window)
            })
            .collect();
        let mut attributes = node_attributes.clone();
        attributes.extend(volume.identity.resource_attributes());
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(attributes),
            metrics,
            version,
        ));
    }
    // One resource per owner of egress traffic (a pod, or the node for
    // host processes), its destinations as point attributes.
    let mut owners: Vec<&crate::sources::egress::ledger::Traffic> = Vec::new();
    for traffic in &snapshot.egress {
        if !owners.iter().any(|o| o.owner == traffic.owner) {
            owners.push(traffic);
        }
    }
    for owner in owners {
        let rows: Vec<_> = snapshot
            .egress
            .iter()
            .filter(|t| t.owner == owner.owner)
            .collect();
        let metrics = [
            (&catalog::POD_NETWORK_TRANSMIT, true),
            (&catalog::POD_NETWORK_RECEIVE, false),
        ]
        .into_iter()
        .filter_map(|(def, transmit)| {
            let points = rows
                .iter()
                .map(|t| {
                    let value = if transmit {
                        t.transmit_bytes
                    } else {
                        t.receive_bytes
                    };
                    (t.point_attributes(), value as f64)
                })
                .collect();
            number(def, points, window)
        })
        .collect();
        let mut attributes = node_attributes.clone();
        attributes.extend(owner.resource_attributes());
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(attributes),
            metrics,
            version,
        ));
    }
    // GPU devices ride on the node resource (as filesystems do); each
    // container's GPU use on the container's.
    let metrics_at = |points: &[GpuPoint], read_at: SystemTime| -> Vec<Metric> {
        let mut defs: Vec<&MetricDef> = Vec::new();
        for point in points {
            if !defs.iter().any(|d| d.base == point.def.base) {
                defs.push(point.def);
            }
        }
        defs.into_iter()
            .filter_map(|def| {
                let rows = points.iter().filter(|p| p.def.base == def.base);
                let semconv = match gpu_names {
                    GpuNames::Semconv => semconv::for_family(def),
                    GpuNames::Tally => None,
                };
                if let Some(name) = semconv {
                    let (start, now) = (unix_nanos(window.process_start), unix_nanos(read_at));
                    let points = rows
                        .map(|p| {
                            let pairs = p.attributes.iter().map(|(k, v)| (*k, v.as_str()));
                            let attributes = name
                                .attributes(pairs)
                                .into_iter()
                                .map(|(k, v)| string_attribute(&k, v))
                                .collect();
                            otlp::number_point(attributes, start, now, p.value)
                        })
                        .collect();
                    return Some(otlp::semconv_metric(name, points));
                }
                let rows = rows
                    .map(|p| {
                        let attributes = p
                            .attributes
                            .iter()
                            .map(|(k, v)| string_attribute(k, v.clone()))
                            .collect();
                        (attributes, p.value)
                    })
                    .collect();
                number_at(def, rows, window, read_at)
            })
            .collect()
    };
    let gpu_metrics = |points: &[GpuPoint]| metrics_at(points, window.now);
    if !snapshot.gpu.node.is_empty() {
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(node_attributes.clone()),
            gpu_metrics(&snapshot.gpu.node),
            version,
        ));
    }
    for container in &snapshot.gpu.containers {
        resource_metrics.push(container_resource(
            &node_attributes,
            &container.identity,
            gpu_metrics(&container.points),
            version,
        ));
    }
    let WindowExtras {
        models,
        log_distributions,
    } = extras;
    // Model servers: scrape health on the node, model families and this
    // window's latency distributions on the serving container.
    let (scrapes, mut servers) = snapshot.serving.points();
    if !scrapes.is_empty() {
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(node_attributes.clone()),
            gpu_metrics(&scrapes),
            version,
        ));
    }
    // The egress source's own figures ride on the node.
    if !snapshot.egress_status.is_empty() {
        resource_metrics.push(otlp::resource_metrics(
            otlp::resource(node_attributes.clone()),
            gpu_metrics(&snapshot.egress_status),
            version,
        ));
    }
    for model in &models {
        if !servers.iter().any(|c| c.identity == model.identity) {
            servers.push(ContainerGpuPoints {
                identity: model.identity.clone(),
                points: Vec::new(),
                read_at: None,
            });
        }
    }
    for container in &servers {
        // A page already sent (no scrape since the last export) is not
        // sent again: a second point at the same time has no rate.
        let mut metrics = match container.read_at {
            Some(read_at) if read_at <= window.window_start => Vec::new(),
            read_at => metrics_at(&container.points, read_at.unwrap_or(window.now)),
        };
        for model in models.iter().filter(|m| m.identity == container.identity) {
            let attributes = || {
                vec![
                    string_attribute("engine", model.engine.as_str()),
                    string_attribute("model", model.model.clone()),
                ]
            };
            for (dist, histogram) in &model.histograms {
                metrics.push(delta_histogram(
                    dist_def(*dist),
                    attributes(),
                    histogram,
                    delta_window,
                ));
            }
        }
        if metrics.is_empty() {
            continue;
        }
        resource_metrics.push(container_resource(
            &node_attributes,
            &container.identity,
            metrics,
            version,
        ));
    }
    // Log-derived metrics on each container's resource.
    for container in &snapshot.logs {
        let mut metrics = gpu_metrics(&container.points);
        for distribution in log_distributions
            .iter()
            .filter(|d| d.identity == container.identity)
        {
            let attributes = distribution
                .attributes
                .iter()
                .map(|(k, v)| string_attribute(k, *v))
                .collect();
            metrics.push(delta_histogram(
                distribution.def,
                attributes,
                &distribution.histogram,
                delta_window,
            ));
        }
        if metrics.is_empty() {
            continue;
        }
        resource_metrics.push(container_resource(
            &node_attributes,
            &container.identity,
            metrics,
            version,
        ));
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// Protobuf-encodes and gzips a request for the spool.
pub fn encode_gzip(request: &ExportMetricsServiceRequest) -> std::io::Result<Vec<u8>> {
    let body = otlp::encode_metrics(request);
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(&body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::gpu::GpuSnapshot;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    fn gpu_snapshot() -> Snapshot {
        let device = |def: &'static MetricDef, extra: &[(&'static str, &str)], value| {
            let mut attributes = vec![
                ("gpu_uuid", "GPU-1".to_owned()),
                ("gpu_index", "0".to_owned()),
                ("gpu_model", "NVIDIA H100 80GB HBM3".to_owned()),
            ];
            attributes.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            GpuPoint {
                def,
                attributes,
                value,
            }
        };
        Snapshot {
            gpu: GpuSnapshot {
                node: vec![
                    device(&catalog::GPU_UTILIZATION, &[], 0.5),
                    device(&catalog::GPU_ENERGY, &[], 1000.0),
                    device(&catalog::GPU_MEMORY_USED, &[], 1024.0),
                    device(&catalog::GPU_ECC_ERRORS, &[("type", "corrected")], 3.0),
                    device(&catalog::GPU_TEMPERATURE, &[], 40.0),
                ],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn metrics(names: GpuNames) -> Vec<Metric> {
        let now = SystemTime::now();
        let window = Window {
            process_start: now,
            window_start: now,
            now,
        };
        let request = build_request(
            &gpu_snapshot(),
            "n",
            Vec::new(),
            WindowExtras::default(),
            &window,
            "test",
            names,
        );
        request
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .collect()
    }

    fn attribute(metric: &Metric, key: &str) -> Option<String> {
        let points = match metric.data.as_ref()? {
            Data::Gauge(g) => &g.data_points,
            Data::Sum(s) => &s.data_points,
            _ => return None,
        };
        otlp::find_string(&points.first()?.attributes, key).map(str::to_owned)
    }

    #[test]
    fn gpu_families_take_the_conventions_names_on_request() {
        let tally = metrics(GpuNames::Tally);
        let names: Vec<&str> = tally.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"tally_gpu_utilization_ratio"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("hw.")), "{names:?}");

        let semconv = metrics(GpuNames::Semconv);
        let find = |name: &str| {
            semconv
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let utilization = find("hw.gpu.utilization");
        assert_eq!(utilization.unit, "1");
        assert_eq!(attribute(utilization, "hw.id").as_deref(), Some("GPU-1"));
        assert_eq!(
            attribute(utilization, "hw.gpu.task").as_deref(),
            Some("general")
        );
        assert_eq!(attribute(utilization, "gpu_uuid"), None);
        let memory = find("hw.gpu.memory.usage");
        assert!(matches!(&memory.data, Some(Data::Sum(s)) if !s.is_monotonic));
        let energy = find("hw.energy");
        assert!(matches!(&energy.data, Some(Data::Sum(s)) if s.is_monotonic));
        assert_eq!(attribute(energy, "hw.type").as_deref(), Some("gpu"));
        let errors = find("hw.errors");
        assert_eq!(
            attribute(errors, "error.type").as_deref(),
            Some("corrected")
        );
        // No convention for temperature on a GPU: Tally's name stays.
        find("tally_gpu_temperature_celsius");
    }
}
