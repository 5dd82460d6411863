//! `tally simulate`: a deterministic (seeded) fleet that speaks OTLP
//! exactly like real agents: the same metric names, units, resource
//! attributes and batch shape, so it can fill a collector for benchmarks
//! and end-to-end tests. Every resource carries `tally.simulated=true`.
//!
//! One file per family, as the agent has one per source:
//! - [`fleet`]: nodes of realistic instance types (CPU and GPU, three
//!   zones, spot and on-demand) running pods with owners, requests and
//!   limits; usage follows a diurnal cycle with noise and bursts, memory
//!   grows slowly and a container that reaches its limit is OOM-killed.
//! - [`gpu`]: per-GPU and per-MIG-instance series and per-pod attribution:
//!   busy, partly used, idle-but-allocated and unallocated GPUs, MIG on
//!   H100 nodes, time-slicing on A10G nodes.
//! - [`serving`]: inference services (vLLM, SGLang, TGI) with a daily
//!   load, tokens, queue depth, KV cache and latency distributions.
//! - [`egress`]: every pod's bytes by destination class.
//! - [`volumes`]: pod volumes (capacity, use) and the cluster's volume
//!   list: gp3 claims of StatefulSets and some Deployments, an unclaimed
//!   volume, a training-checkpoint volume untouched for weeks and an
//!   oversized scratch volume.
//! - [`workloads`]: each pod's start-up, its controller's replicas and
//!   rollout, and the PodDisruptionBudgets covering it (a strict one on
//!   the planted `web/checkout`, a lenient one on `web/storefront`).
//!
//! The metric names are the catalog's, so the GPU, model-serving and
//! egress families look exactly as the agent will send them once its
//! sources land (issues #5, #6, #8).

mod agent_page;
mod egress;
mod fleet;
mod gpu;
mod scenario;
mod serving;
mod volumes;
mod workloads;

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tally_schema::otlp;

pub use fleet::Fleet;
pub use scenario::{SCENARIOS, Scenario};

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Collector base URL.
    pub collector: String,
    /// Nodes in the fleet.
    pub nodes: usize,
    /// PRNG seed; the same seed gives the same fleet and the same values.
    pub seed: u64,
    /// What the fleet is made to show (problems planted or taken out).
    pub scenario: Scenario,
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
    /// In real time, also serve the fleet as its agents' `/metrics` pages
    /// would show it (one page, every node), for a real Prometheus.
    pub listen: Option<std::net::SocketAddr>,
    /// Told `(batches done, batches in all, points so far)` after each
    /// backfill batch (a progress bar on a terminal).
    pub progress: Option<Progress>,
}

/// A backfill progress callback.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(u64, u64, u64) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
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
    /// The `--listen` address could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// What failed.
        reason: String,
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

/// Requests in flight at once when a step is sent node by node.
const AGENTS_IN_FLIGHT: usize = 16;

/// Sends a step as a fleet of agents would: one request per node (its node
/// resource and its containers' resources), up to [`AGENTS_IN_FLIGHT`] at
/// once. Returns the points the collector refused.
async fn send_as_agents(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    request: ExportMetricsServiceRequest,
) -> Result<u64, SimulateError> {
    let mut by_node: Vec<(String, ExportMetricsServiceRequest)> = Vec::new();
    for resource_metrics in request.resource_metrics {
        let node = resource_metrics
            .resource
            .as_ref()
            .and_then(|r| otlp::find_string(&r.attributes, "k8s.node.name"))
            .unwrap_or_default()
            .to_owned();
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, part)) => part.resource_metrics.push(resource_metrics),
            None => by_node.push((
                node,
                ExportMetricsServiceRequest {
                    resource_metrics: vec![resource_metrics],
                },
            )),
        }
    }
    let mut in_flight = tokio::task::JoinSet::new();
    let mut rejected = 0;
    let joined = |result: Result<Result<u64, SimulateError>, tokio::task::JoinError>| {
        result.map_err(|e| SimulateError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })?
    };
    for (_, part) in by_node {
        if in_flight.len() >= AGENTS_IN_FLIGHT
            && let Some(result) = in_flight.join_next().await
        {
            rejected += joined(result)?;
        }
        let (client, url, token) = (client.clone(), url.to_owned(), token.map(str::to_owned));
        in_flight.spawn(async move { send(&client, &url, token.as_deref(), &part).await });
    }
    while let Some(result) = in_flight.join_next().await {
        rejected += joined(result)?;
    }
    Ok(rejected)
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

/// The newest agents' page, `None` before the first step.
type SharedPage = std::sync::Arc<std::sync::RwLock<Option<String>>>;

/// Serves `/metrics` (the newest page), `/healthz` and `/readyz` (ready
/// once the first page is in) on `address` until `shutdown`.
async fn serve_agent_page(
    address: std::net::SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<SharedPage, SimulateError> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let page: SharedPage = SharedPage::default();
    let listener =
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| SimulateError::Listen {
                address,
                reason: e.to_string(),
            })?;
    let read = |page: &SharedPage| {
        page.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    let (metrics_page, ready_page) = (page.clone(), page.clone());
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let text = read(&metrics_page).unwrap_or_default();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = read(&ready_page).is_some();
                async move {
                    if ready {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "no batch yet").into_response()
                    }
                }
            }),
        );
    tracing::info!(%address, "serving the simulated agents' /metrics");
    tokio::spawn(async move {
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "simulated agents' page stopped");
        }
    });
    Ok(page)
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
        scenario::apply(&mut fleet, options.scenario, options.seed);
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
        let total = (now.saturating_sub(start)) / step_ns + 1;
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
                None => {
                    report.rejected_points += send_as_agents(&client, &url, token, request).await?;
                }
            }
            report.batches += 1;
            if let Some(progress) = &options.progress {
                (progress.0)(report.batches, total, report.points);
            }
            t += step_ns;
        }
        return Ok(report);
    }
    let mut fleet = Fleet::new(options.nodes, options.seed, now);
    scenario::apply(&mut fleet, options.scenario, options.seed);
    tracing::info!(
        nodes = options.nodes,
        containers = fleet.containers(),
        "simulating in real time"
    );
    let page = match options.listen {
        Some(address) => Some(serve_agent_page(address, shutdown.clone()).await?),
        None => None,
    };
    let mut tick = tokio::time::interval(options.step);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        let request = fleet.step(now_ns(), options.step);
        if let Some(page) = &page {
            let text = agent_page::render(&request);
            *page
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
        }
        report.points += otlp::count_points(&request) as u64;
        report.rejected_points += send_as_agents(&client, &url, token, request).await?;
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

    /// Every number point of `metric`: resource plus point attributes,
    /// and the value (the other families' tests read theirs with it).
    pub(super) fn numbers(
        request: &ExportMetricsServiceRequest,
        metric: &str,
    ) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
        let text = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
            kvs.iter()
                .filter_map(|kv| {
                    otlp::find_string(std::slice::from_ref(kv), &kv.key)
                        .map(|v| (kv.key.clone(), v.to_owned()))
                })
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        for rm in &request.resource_metrics {
            let resource = text(&rm.resource.as_ref().expect("resource").attributes);
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if m.name != metric {
                    continue;
                }
                let points = match &m.data {
                    Some(Data::Gauge(g)) => &g.data_points,
                    Some(Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for p in points {
                    let mut labels: std::collections::BTreeMap<_, _> =
                        resource.iter().cloned().collect();
                    labels.extend(text(&p.attributes));
                    let value = match p.value {
                        Some(Value::AsDouble(v)) => v,
                        Some(Value::AsInt(v)) => v as f64,
                        None => f64::NAN,
                    };
                    out.push((labels, value));
                }
            }
        }
        out
    }

    #[test]
    fn gpu_serving_and_egress_families_are_planted_and_deterministic() {
        let step = Duration::from_secs(600);
        let t0 = 1_800_000_000_000_000_000;
        let (t1, t2) = (t0 + 600_000_000_000, t0 + 1_200_000_000_000);
        let mut a = Fleet::new(3, 7, t0);
        let first = a.step(t1, step);
        let ra = a.step(t2, step);
        let mut b = Fleet::new(3, 7, t0);
        assert_eq!(first, b.step(t1, step));
        assert_eq!(ra, b.step(t2, step));

        // Every family of the catalog's GPU, model and pod sections is sent
        // (pod start-up, controller and budget families included).
        let names: std::collections::HashSet<String> = ra
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| m.name.clone())
            .collect();
        for def in tally_schema::catalog::CATALOG {
            let name = def.full_name();
            let new_family = [
                "tally_gpu_",
                "tally_model_",
                "tally_pod_network_",
                "tally_pod_startup_",
                "tally_workload_",
                "tally_pod_disruption_budget_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
                || name.starts_with("tally_container_gpu_");
            // What the simulated GPUs cannot show: retired pages are
            // pre-Ampere only (NVML: NotSupported on A10G, A100, H100), and
            // no XID or ECC event happens.
            // Simulated engines report every distribution, none derived,
            // and none is Ollama (the one that reports model memory).
            let not_simulated = [
                "tally_gpu_retired_pages",
                "tally_gpu_events_total",
                "tally_model_derived_info",
                "tally_model_gpu_memory_bytes",
            ];
            if not_simulated.contains(&name.as_str()) {
                continue;
            }
            assert!(!new_family || names.contains(&name), "{name} not sent");
        }
        for rm in &ra.resource_metrics {
            let attrs = &rm.resource.as_ref().expect("resource").attributes;
            assert_eq!(otlp::find_string(attrs, "tally.simulated"), Some("true"));
        }

        // MIG instances with their profiles; no utilization for their GPU.
        let utilization = numbers(&ra, "tally_gpu_utilization_ratio");
        let mig: Vec<_> = utilization
            .iter()
            .filter_map(|(l, _)| l.get("mig_profile"))
            .collect();
        assert!(mig.contains(&&"3g.40gb".to_owned()) && mig.contains(&&"1g.10gb".to_owned()));
        let info = numbers(&ra, "tally_gpu_info");
        let mig_gpu = info
            .iter()
            .find(|(l, _)| l["mig_mode"] == "enabled")
            .map(|(l, _)| l["gpu_uuid"].clone())
            .expect("a MIG-enabled GPU");
        assert!(
            utilization
                .iter()
                .all(|(l, _)| l["gpu_uuid"] != mig_gpu || l.contains_key("mig_instance"))
        );

        // Pods attributed per device: a time-sliced GPU with several pods,
        // and an allocated GPU left idle.
        let attributed = numbers(&ra, "tally_container_gpu_utilization_ratio");
        let mut sliced = std::collections::HashMap::<&str, usize>::new();
        for (l, _) in &attributed {
            if l["sharing"] == "time_sliced" {
                *sliced.entry(l["gpu_uuid"].as_str()).or_default() += 1;
            }
        }
        assert!(sliced.values().any(|pods| *pods >= 3), "{sliced:?}");
        assert!(
            attributed
                .iter()
                .any(|(l, v)| l["sharing"] == "exclusive" && *v < 0.02),
            "an idle allocated GPU"
        );
        assert!(attributed.iter().any(|(_, v)| *v > 0.8), "a busy GPU");
        let power = numbers(&ra, "tally_gpu_power_watts");
        assert!(
            power.iter().all(|(_, w)| (10.0..=700.0).contains(w)),
            "{power:?}"
        );

        // Model servers: requests and tokens grow; queue and KV cache are sane.
        let tokens = |r: &ExportMetricsServiceRequest| -> f64 {
            numbers(r, "tally_model_generation_tokens_total")
                .iter()
                .map(|(_, v)| v)
                .sum()
        };
        assert!(tokens(&ra) > tokens(&first) && tokens(&first) > 0.0);
        let engines: std::collections::BTreeSet<_> = numbers(&ra, "tally_model_info")
            .into_iter()
            .map(|(l, _)| l["engine"].clone())
            .collect();
        assert_eq!(
            engines.into_iter().collect::<Vec<_>>(),
            ["sglang", "tgi", "vllm"]
        );
        for (_, kv) in numbers(&ra, "tally_model_kv_cache_usage_ratio") {
            assert!((0.0..1.0).contains(&kv), "{kv}");
        }

        // Egress: every pod sends, counters only grow, cross-zone traffic.
        let sent = numbers(&ra, "tally_pod_network_transmit_bytes_total");
        let pods: std::collections::HashSet<_> =
            sent.iter().map(|(l, _)| l["k8s.pod.uid"].clone()).collect();
        let all_pods: std::collections::HashSet<_> =
            numbers(&ra, "tally_container_memory_working_set_bytes")
                .into_iter()
                .map(|(l, _)| l["k8s.pod.uid"].clone())
                .collect();
        assert_eq!(pods, all_pods);
        assert!(
            sent.iter()
                .any(|(l, v)| l["destination_class"] == "cross_zone" && *v > 0.0)
        );
        let before = numbers(&first, "tally_pod_network_transmit_bytes_total");
        for (labels, old) in before {
            let new = sent.iter().find(|(l, _)| *l == labels).map(|(_, v)| *v);
            assert!(new.is_some_and(|new| new >= old), "{labels:?}");
        }
    }
}
