//! `/metrics`: the latest snapshot rendered at scrape time through a
//! prometheus-client [`Collector`], so a scrape costs one pass over the
//! snapshot and nothing is updated per sample.
//!
//! OpenMetrics is the default; scrapers that do not accept it (curl,
//! promtool) get the classic Prometheus text format from the same data.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use std::fmt::Write as _;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tally_schema::catalog::{self, MetricDef, MetricKind, MetricUnit};

use crate::snapshot::{ContainerSnapshot, Shared};
use crate::sources::cgroups::discovery::Runtime;
use crate::sources::cgroups::reader::CgroupStats;
use crate::sources::gpu::{ContainerGpuPoints, GpuPoint, GpuSnapshot};
use crate::sources::host::{DISK_VALUES, DiskIo, Filesystem, INTERFACE_VALUES, Interface};
use crate::sources::pods::workloads::{POD_FACT_SERIES, POD_FACT_VALUES};
use crate::sources::volumes::VOLUME_VALUES;
use crate::telemetry::DURATION_BUCKETS;

/// OpenMetrics content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Classic Prometheus text content type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which text format to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (ends with `# EOF`).
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Prometheus,
}

impl Format {
    /// Picks the format from an `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            Some(_) => Format::Prometheus,
            None => Format::OpenMetrics,
        }
    }

    /// The matching content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Reads one value of a container family from its stats.
pub type ContainerValue = fn(&CgroupStats) -> Option<f64>;

/// Every numeric container family and how to read it, shared by
/// `/metrics` and the OTLP exporter so the two cannot disagree.
pub const CONTAINER_VALUES: &[(&MetricDef, ContainerValue)] = &[
    (&catalog::CONTAINER_CPU_USAGE, |s| s.fast.cpu_usage_seconds),
    (&catalog::CONTAINER_CPU_USER, |s| s.cpu_user_seconds),
    (&catalog::CONTAINER_CPU_SYSTEM, |s| s.cpu_system_seconds),
    (&catalog::CONTAINER_CPU_PERIODS, |s| {
        s.cpu_periods.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_CPU_THROTTLED_PERIODS, |s| {
        s.cpu_throttled_periods.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_CPU_THROTTLED, |s| {
        s.cpu_throttled_seconds
    }),
    (&catalog::CONTAINER_CPU_LIMIT, |s| s.cpu_limit_cores),
    (&catalog::CONTAINER_CPU_WEIGHT, |s| {
        s.cpu_weight.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_USAGE, |s| {
        s.fast.memory_usage_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_WORKING_SET, |s| {
        s.fast.memory_working_set_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_RSS, |s| {
        s.memory_rss_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_CACHE, |s| {
        s.memory_cache_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_PEAK, |s| {
        s.memory_peak_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_LIMIT, |s| {
        s.memory_limit_bytes.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_OOM_EVENTS, |s| {
        s.oom_events.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_MEMORY_OOM_KILLS, |s| {
        s.oom_kills.map(|v| v as f64)
    }),
    (&catalog::CONTAINER_IO_READ, |s| {
        s.io.map(|io| io.read_bytes as f64)
    }),
    (&catalog::CONTAINER_IO_WRITTEN, |s| {
        s.io.map(|io| io.write_bytes as f64)
    }),
    (&catalog::CONTAINER_IO_READS, |s| {
        s.io.map(|io| io.reads as f64)
    }),
    (&catalog::CONTAINER_IO_WRITES, |s| {
        s.io.map(|io| io.writes as f64)
    }),
    (&catalog::CONTAINER_PRESSURE_CPU_WAITING, |s| {
        s.pressure_cpu.map(|p| p.some_us as f64 / 1e6)
    }),
    (&catalog::CONTAINER_PRESSURE_CPU_STALLED, |s| {
        s.pressure_cpu
            .and_then(|p| p.full_us)
            .map(|us| us as f64 / 1e6)
    }),
    (&catalog::CONTAINER_PRESSURE_MEMORY_WAITING, |s| {
        s.pressure_memory.map(|p| p.some_us as f64 / 1e6)
    }),
    (&catalog::CONTAINER_PRESSURE_MEMORY_STALLED, |s| {
        s.pressure_memory
            .and_then(|p| p.full_us)
            .map(|us| us as f64 / 1e6)
    }),
    (&catalog::CONTAINER_PRESSURE_IO_WAITING, |s| {
        s.pressure_io.map(|p| p.some_us as f64 / 1e6)
    }),
    (&catalog::CONTAINER_PRESSURE_IO_STALLED, |s| {
        s.pressure_io
            .and_then(|p| p.full_us)
            .map(|us| us as f64 / 1e6)
    }),
];

/// Renders the snapshot at scrape time.
#[derive(Debug)]
pub struct SnapshotCollector {
    shared: Arc<Shared>,
}

/// A registry holding the snapshot collector.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector { shared }));
    registry
}

/// Renders `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, fmt::Error> {
    render_sized(registry, format, 64 * 1024)
}

/// Renders into a buffer of `capacity` bytes: sized from the previous page,
/// the buffer is allocated once instead of doubling (and copying) its way
/// up to half a megabyte on every scrape.
pub fn render_sized(
    registry: &Registry,
    format: Format,
    capacity: usize,
) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(capacity);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?
        }
    }
    Ok(out)
}

fn unit_of(def: &MetricDef) -> Option<Unit> {
    match def.unit {
        MetricUnit::None => None,
        MetricUnit::Seconds => Some(Unit::Seconds),
        MetricUnit::Bytes => Some(Unit::Bytes),
        MetricUnit::Joules => Some(Unit::Joules),
        MetricUnit::Celsius => Some(Unit::Celsius),
        // prometheus-client's Ratios would render `ratios`; the catalog's
        // suffix is `ratio`, as Prometheus names it.
        MetricUnit::Cores
        | MetricUnit::Watts
        | MetricUnit::Hertz
        | MetricUnit::Ratio
        | MetricUnit::Tokens => def.unit.suffix().map(|s| Unit::Other(s.to_owned())),
    }
}

/// Integers below 2^53 are exact in an f64.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Writes one family; nothing when it has no rows.
fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    def: &MetricDef,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let unit = unit_of(def);
    let metric_type = match def.kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge | MetricKind::Info => MetricType::Gauge,
        MetricKind::Histogram | MetricKind::ExponentialHistogram => return Ok(()),
    };
    let mut metric = encoder.encode_descriptor(def.base, def.help, unit.as_ref(), metric_type)?;
    for (labels, value) in rows {
        let mut series = metric.encode_family(&labels)?;
        // Most values are whole numbers (bytes, counts); integer formatting
        // is several times cheaper than float formatting and prints the same
        // number.
        let integral = value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER;
        match def.kind {
            MetricKind::Counter if integral && value >= 0.0 => {
                series.encode_counter::<NoLabelSet, u64, f64>(&(value as u64), None)?
            }
            MetricKind::Counter => series.encode_counter::<NoLabelSet, f64, f64>(&value, None)?,
            _ if integral => series.encode_gauge(&(value as i64))?,
            _ => series.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// One label.
pub type Pair<'a> = (&'static str, &'a str);

/// A label set rendered to text once per scrape and reused for every
/// family of that container: encoding eight labels one by one through
/// prometheus-client for each of ~30 families was most of the render time.
/// All labels but the last travel as one pre-escaped "key" string and the
/// last value through the normal value encoder, so the output is the same
/// `{k="v",…}` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedLabels {
    head: String,
    last_value: String,
}

impl RenderedLabels {
    /// Renders `pairs`; the last pair's value is kept apart.
    pub fn new(pairs: &[Pair<'_>]) -> Self {
        let mut head = String::with_capacity(256);
        let Some(((last_key, last_value), rest)) = pairs.split_last() else {
            return Self {
                head,
                last_value: String::new(),
            };
        };
        for (key, value) in rest {
            head.push_str(key);
            head.push_str("=\"");
            escape_into(&mut head, value);
            head.push_str("\",");
        }
        head.push_str(last_key);
        Self {
            head,
            last_value: (*last_value).to_owned(),
        }
    }

    /// These labels plus `more` at the end, reusing the rendered text.
    pub fn extended(&self, more: &[Pair<'_>]) -> Self {
        let Some(((last_key, last_value), rest)) = more.split_last() else {
            return self.clone();
        };
        let mut head = String::with_capacity(self.head.len() + self.last_value.len() + 64);
        head.push_str(&self.head);
        head.push_str("=\"");
        escape_into(&mut head, &self.last_value);
        head.push_str("\",");
        for (key, value) in rest {
            head.push_str(key);
            head.push_str("=\"");
            escape_into(&mut head, value);
            head.push_str("\",");
        }
        head.push_str(last_key);
        Self {
            head,
            last_value: (*last_value).to_owned(),
        }
    }
}

fn escape_into(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl EncodeLabelSet for &RenderedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        (*self).encode(encoder)
    }
}

impl EncodeLabelSet for RenderedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(&self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(&self.last_value)?;
        value.finish()
    }
}

fn container_pairs<'a>(node: &'a str, container: &'a ContainerSnapshot) -> [Pair<'a>; 8] {
    let values = container.identity.label_values(node);
    let names = tally_schema::identity::CONTAINER_LABELS;
    std::array::from_fn(|i| (names[i], values[i]))
}

fn container_family(
    encoder: &mut DescriptorEncoder,
    def: &MetricDef,
    labels: &[RenderedLabels],
    containers: &[ContainerSnapshot],
    value: impl Fn(&CgroupStats) -> Option<f64>,
) -> fmt::Result {
    family(
        encoder,
        def,
        labels
            .iter()
            .zip(containers)
            .filter_map(|(labels, c)| value(&c.stats).map(|v| (labels, v))),
    )
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let shared = &self.shared;
        let snapshot = shared.snapshot();
        let node = shared.node_name.as_str();
        let e = &mut encoder;

        // === Agent ===
        family(
            e,
            &catalog::AGENT_BUILD_INFO,
            [([("node", node), ("version", shared.version)], 1.0)],
        )?;
        let health: Vec<_> = shared.sources.iter().map(|s| s.snapshot()).collect();
        family(
            e,
            &catalog::AGENT_SOURCE_UP,
            health.iter().map(|h| {
                (
                    [("node", node), ("source", h.source)],
                    if h.up { 1.0 } else { 0.0 },
                )
            }),
        )?;
        family(
            e,
            &catalog::AGENT_SOURCE_ERRORS,
            health.iter().flat_map(|h| {
                h.errors.iter().map(move |(kind, count)| {
                    (
                        [
                            ("node", node),
                            ("source", h.source),
                            ("kind", kind.as_str()),
                        ],
                        *count as f64,
                    )
                })
            }),
        )?;
        {
            let def = &catalog::AGENT_SOURCE_DURATION;
            let unit = unit_of(def);
            let mut metric =
                e.encode_descriptor(def.base, def.help, unit.as_ref(), MetricType::Histogram)?;
            for h in &health {
                // The encoder wants per-bucket counts; SourceHealth keeps
                // cumulative ones.
                let mut previous = 0;
                let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                    .iter()
                    .zip(&h.bucket_counts)
                    .map(|(bound, cumulative)| {
                        let count = cumulative - previous;
                        previous = *cumulative;
                        (*bound, count)
                    })
                    .collect();
                buckets.push((f64::INFINITY, h.duration_count - previous));
                let labels = [("node", node), ("source", h.source)];
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(
                        h.duration_sum,
                        h.duration_count,
                        &buckets,
                        None,
                    )?;
            }
        }
        family(
            e,
            &catalog::AGENT_CGROUPS,
            Runtime::ALL.iter().map(|runtime| {
                let count = snapshot
                    .cgroups_by_runtime
                    .get(runtime)
                    .copied()
                    .unwrap_or(0);
                (
                    [("node", node), ("runtime", runtime.as_str())],
                    count as f64,
                )
            }),
        )?;
        if let Some(export) = shared.export_telemetry() {
            family(
                e,
                &catalog::AGENT_OTLP_EXPORTS,
                [
                    ("success", export.counts.success),
                    ("partial", export.counts.partial),
                    ("retryable", export.counts.retryable),
                    ("rejected", export.counts.rejected),
                    ("unreachable", export.counts.unreachable),
                ]
                .map(|(outcome, n)| ([("node", node), ("outcome", outcome)], n as f64)),
            )?;
            for (def, value) in [
                (
                    &catalog::AGENT_OTLP_REJECTED_POINTS,
                    export.counts.rejected_points,
                ),
                (&catalog::AGENT_SPOOL_BATCHES, export.spool.batches),
                (&catalog::AGENT_SPOOL_SIZE, export.spool.bytes),
                (&catalog::AGENT_SPOOL_LIMIT, export.spool.limit_bytes),
                (&catalog::AGENT_SPOOL_EVICTED, export.spool.evicted_total),
                (&catalog::AGENT_SPOOL_CORRUPT, export.spool.corrupt_total),
            ] {
                family(e, def, [([("node", node)], value as f64)])?;
            }
        }

        // === Node ===
        let ident = &snapshot.node;
        if let Some(host) = &snapshot.host {
            family(
                e,
                &catalog::NODE_INFO,
                [(
                    [
                        ("node", node),
                        ("zone", ident.zone.as_str()),
                        ("region", ident.region.as_str()),
                        ("instance_type", ident.instance_type.as_str()),
                        ("capacity_type", ident.capacity_type.as_str()),
                        ("boot_id", host.boot_id.as_str()),
                        ("kernel_version", host.kernel_version.as_str()),
                        ("os", host.os.as_str()),
                    ],
                    1.0,
                )],
            )?;
            family(
                e,
                &catalog::NODE_CPU,
                host.cpu_seconds
                    .iter()
                    .map(|(mode, s)| ([("node", node), ("mode", *mode)], *s)),
            )?;
            let node_gauge = |e: &mut DescriptorEncoder, def, value: f64| {
                family(e, def, [([("node", node)], value)])
            };
            node_gauge(e, &catalog::NODE_CPU_COUNT, host.cpu_count as f64)?;
            if let Some([one, five, fifteen]) = host.load {
                node_gauge(e, &catalog::NODE_LOAD1, one)?;
                node_gauge(e, &catalog::NODE_LOAD5, five)?;
                node_gauge(e, &catalog::NODE_LOAD15, fifteen)?;
            }
            node_gauge(e, &catalog::NODE_MEMORY_TOTAL, host.memory_total as f64)?;
            node_gauge(
                e,
                &catalog::NODE_MEMORY_AVAILABLE,
                host.memory_available as f64,
            )?;
            node_gauge(e, &catalog::NODE_MEMORY_FREE, host.memory_free as f64)?;
            node_gauge(e, &catalog::NODE_SWAP_TOTAL, host.swap_total as f64)?;
            node_gauge(e, &catalog::NODE_SWAP_FREE, host.swap_free as f64)?;
            let fs_labels = |f| fs_labels(node, f);
            family(
                e,
                &catalog::NODE_FILESYSTEM_SIZE,
                host.filesystems
                    .iter()
                    .map(|f| (fs_labels(f), f.size_bytes as f64)),
            )?;
            family(
                e,
                &catalog::NODE_FILESYSTEM_AVAIL,
                host.filesystems
                    .iter()
                    .map(|f| (fs_labels(f), f.avail_bytes as f64)),
            )?;
            for (def, field) in DISK_VALUES {
                let rows = host
                    .disks
                    .iter()
                    .map(|d| (disk_labels(node, d), field(d) as f64));
                family(e, def, rows)?;
            }
            for (def, field) in INTERFACE_VALUES {
                let rows = host
                    .interfaces
                    .iter()
                    .map(|i| (interface_labels(node, i), field(i) as f64));
                family(e, def, rows)?;
            }
            if let Some(boot) = host.boot_time {
                node_gauge(e, &catalog::NODE_BOOT_TIME, boot as f64)?;
            }
            if let Some(uptime) = host.uptime {
                node_gauge(e, &catalog::NODE_UPTIME, uptime as f64)?;
            }
        }

        // === Pods ===
        family(
            e,
            &catalog::POD_INFO,
            snapshot.pods.iter().map(|p| {
                (
                    [
                        ("node", node),
                        ("namespace", p.namespace.as_str()),
                        ("pod", p.name.as_str()),
                        ("pod_uid", p.uid.as_str()),
                        ("workload_kind", p.workload_kind.as_str()),
                        ("workload_name", p.workload_name.as_str()),
                        ("qos_class", p.qos_class.as_str()),
                        ("phase", p.phase.as_str()),
                    ],
                    1.0,
                )
            }),
        )?;

        for (def, value) in POD_FACT_VALUES {
            let rows = snapshot
                .pod_facts
                .iter()
                .filter_map(|f| value(f).map(|v| (f.labels(node), v)));
            family(e, def, rows)?;
        }
        for (def, key, series) in POD_FACT_SERIES {
            let rows = snapshot.pod_facts.iter().flat_map(|f| {
                series(f)
                    .into_iter()
                    .map(move |(value, v)| (f.labels_with(node, key, value), v))
            });
            family(e, def, rows)?;
        }

        // === Containers ===
        let containers = &snapshot.containers;
        let pairs: Vec<[Pair<'_>; 8]> = containers
            .iter()
            .map(|c| container_pairs(node, c))
            .collect();
        let labels: Vec<RenderedLabels> = pairs.iter().map(|p| RenderedLabels::new(p)).collect();
        let versions: Vec<String> = containers
            .iter()
            .map(|c| c.cgroup_version.to_string())
            .collect();
        family(
            e,
            &catalog::CONTAINER_INFO,
            labels
                .iter()
                .zip(containers)
                .zip(&versions)
                .map(|((l, c), version)| {
                    let more = [
                        ("runtime", c.runtime.as_str()),
                        ("cgroup", c.cgroup.as_str()),
                        ("cgroup_version", version.as_str()),
                    ];
                    (l.extended(&more), 1.0)
                }),
        )?;
        for (def, value) in CONTAINER_VALUES {
            container_family(e, def, &labels, containers, *value)?;
        }
        for (def, pick) in [
            (&catalog::CONTAINER_RESOURCE_REQUESTS, true),
            (&catalog::CONTAINER_RESOURCE_LIMITS, false),
        ] {
            family(
                e,
                def,
                labels.iter().zip(containers).flat_map(|(l, c)| {
                    let map = if pick { &c.requests } else { &c.limits };
                    map.iter().map(move |(resource, value)| {
                        let more = [
                            ("resource", resource.as_str()),
                            ("unit", resource_unit(resource)),
                        ];
                        (l.extended(&more), *value)
                    })
                }),
            )?;
        }

        // === Volumes ===
        for (def, value) in VOLUME_VALUES {
            let rows = snapshot
                .volumes
                .iter()
                .filter_map(|v| value(v).map(|x| (v.labels(node), x)));
            family(e, def, rows)?;
        }

        // === GPUs ===
        gpu_families(e, node, &snapshot.gpu)?;

        // === Model servers ===
        let (scrapes, models) = snapshot.serving.points();
        point_families(e, node, &scrapes, &models)?;

        // === Container logs ===
        point_families(e, node, &[], &snapshot.logs)?;

        // === Pod network by destination ===
        for (def, transmit) in [
            (&catalog::POD_NETWORK_TRANSMIT, true),
            (&catalog::POD_NETWORK_RECEIVE, false),
        ] {
            let rows = snapshot.egress.iter().map(|t| {
                let value = if transmit {
                    t.transmit_bytes
                } else {
                    t.receive_bytes
                };
                (t.labels(node), value as f64)
            });
            family(e, def, rows)?;
        }
        point_families(e, node, &snapshot.egress_status, &[])
    }
}

/// Families of points: node points under the node, container points under
/// the container's labels; each family written once.
fn point_families(
    e: &mut DescriptorEncoder,
    node: &str,
    node_points: &[GpuPoint],
    containers: &[ContainerGpuPoints],
) -> fmt::Result {
    let mut defs: Vec<&MetricDef> = Vec::new();
    let points = node_points
        .iter()
        .chain(containers.iter().flat_map(|c| &c.points));
    for point in points {
        if !defs.iter().any(|d| d.base == point.def.base) {
            defs.push(point.def);
        }
    }
    for def in defs {
        let device_rows = node_points
            .iter()
            .filter(|p| p.def.base == def.base)
            .map(|p| {
                let mut pairs: Vec<Pair<'_>> = vec![("node", node)];
                pairs.extend(p.attributes.iter().map(|(k, v)| (*k, v.as_str())));
                (RenderedLabels::new(&pairs), p.value)
            });
        let container_rows = containers.iter().flat_map(|c| {
            let values = c.identity.label_values(node);
            c.points
                .iter()
                .filter(|p| p.def.base == def.base)
                .map(move |p| {
                    let mut pairs: Vec<Pair<'_>> = tally_schema::identity::CONTAINER_LABELS
                        .iter()
                        .copied()
                        .zip(values.iter().copied())
                        .collect();
                    pairs.extend(p.attributes.iter().map(|(k, v)| (*k, v.as_str())));
                    (RenderedLabels::new(&pairs), p.value)
                })
        });
        family(e, def, device_rows.chain(container_rows))?;
    }
    Ok(())
}

/// The GPU families: device points under the node, container points
/// under the container's labels; each family written once.
fn gpu_families(e: &mut DescriptorEncoder, node: &str, gpu: &GpuSnapshot) -> fmt::Result {
    point_families(e, node, &gpu.node, &gpu.containers)?;
    // dcgm-exporter's names, when enabled: their own label sets.
    let mut dcgm_defs: Vec<&MetricDef> = Vec::new();
    for point in &gpu.dcgm {
        if !dcgm_defs.iter().any(|d| d.base == point.def.base) {
            dcgm_defs.push(point.def);
        }
    }
    for def in dcgm_defs {
        let rows = gpu.dcgm.iter().filter(|p| p.def.base == def.base).map(|p| {
            let pairs: Vec<Pair<'_>> = p.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            (RenderedLabels::new(&pairs), p.value)
        });
        family(e, def, rows)?;
    }
    Ok(())
}

fn fs_labels<'a>(node: &'a str, f: &'a Filesystem) -> [Pair<'a>; 4] {
    [
        ("node", node),
        ("device", f.device.as_str()),
        ("mountpoint", f.mountpoint.as_str()),
        ("fstype", f.fstype.as_str()),
    ]
}

fn disk_labels<'a>(node: &'a str, d: &'a DiskIo) -> [Pair<'a>; 2] {
    [("node", node), ("device", d.device.as_str())]
}

fn interface_labels<'a>(node: &'a str, i: &'a Interface) -> [Pair<'a>; 2] {
    [("node", node), ("interface", i.name.as_str())]
}

/// The unit label kube-state-metrics uses for a resource.
fn resource_unit(resource: &str) -> &'static str {
    match resource {
        "cpu" => "core",
        "memory" | "ephemeral-storage" => "byte",
        _ => "integer",
    }
}
