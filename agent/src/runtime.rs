//! Wires the sources, the snapshot, the admin server and the exporter
//! together.
//!
//! Sampling runs on its own thread: cgroup and procfs reads are blocking
//! file IO, and a dedicated thread keeps the 1 s cadence independent of
//! scrapes and network stalls. Everything network-facing runs on tokio.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use tokio::sync::{Notify, watch};

use crate::config::{AgentConfig, GpuMode, KubernetesConfig, KubernetesMode};
use crate::export::batch::{self, Window, WindowHistograms};
use crate::export::sender::{self, ExportStats, SenderConfig};
use crate::export::spool::{Spool, SpoolError};
use crate::exposition::{self, Format};
use crate::server;
use crate::snapshot::{ContainerSnapshot, ExportTelemetry, Shared, Snapshot, resolve_identity};
use crate::sources::cgroups::CgroupSource;
use crate::sources::egress::{self, EgressSettings, SharedEgress, SharedRemote};
use crate::sources::gpu::{BackendChoice, GpuSource};
use crate::sources::host::HostSource;
use crate::sources::logs::metrics::SharedLogMetrics;
use crate::sources::logs::{self, source::LogsSettings};
use crate::sources::pods::model::{PodStore, SharedPodStore};
use crate::sources::pods::{self, KubeClient, KubeConfig, KubeError};
use crate::sources::serving::{self, SharedServingState};
use crate::sources::volumes::{self, VolumeSource};
use crate::telemetry::SourceHealth;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The admin address could not be bound.
    #[error("{0}")]
    Listen(std::io::Error),
    /// The spool directory is unusable.
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    /// The admin server failed.
    #[error("admin server: {0}")]
    Serve(std::io::Error),
    /// The sampling thread could not start.
    #[error("cannot start the sampling thread: {0}")]
    Thread(std::io::Error),
    /// Rendering failed (a formatting bug).
    #[error("cannot render metrics")]
    Render,
    /// The export token or CA file cannot be read.
    #[error("cannot read {path}: {source}")]
    ExportFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Everything the sampling thread owns.
struct Sampler {
    config: AgentConfig,
    shared: Arc<Shared>,
    pods: SharedPodStore,
    host: HostSource,
    cgroups: Option<CgroupSource>,
    volumes: VolumeSource,
    gpu: GpuSource,
    serving: SharedServingState,
    logs: SharedLogMetrics,
    egress: SharedEgress,
    exporter: Option<Exporter>,
    process_start: SystemTime,
    last_export: SystemTime,
}

struct Exporter {
    spool: Arc<Mutex<Spool>>,
    stats: Arc<ExportStats>,
    wake: Arc<Notify>,
    health: Arc<SourceHealth>,
}

impl Sampler {
    fn new(
        config: AgentConfig,
        shared: Arc<Shared>,
        pods: SharedPodStore,
        health: &Health,
    ) -> Self {
        let host = HostSource::new(&config.host.proc_root, Arc::clone(&health.host));
        let cgroups = match CgroupSource::new(
            &config.cgroups.root,
            config.sampling.discovery_interval,
            Arc::clone(&health.cgroups),
        ) {
            Ok(source) => {
                tracing::info!(layout = ?source.layout(), "cgroup hierarchy detected");
                Some(source)
            }
            Err(error) => {
                health.cgroups.error("layout", &error);
                None
            }
        };
        let volumes = VolumeSource::new(&config.volumes.kubelet_root, Arc::clone(&health.volumes));
        let choice = match (config.gpu.mode, &config.gpu.replay_file) {
            (GpuMode::Off, _) => BackendChoice::Off,
            (GpuMode::Replay, Some(path)) => BackendChoice::Replay(path.clone()),
            // Validation refuses replay without a file.
            (GpuMode::Replay, None) => BackendChoice::Off,
            (GpuMode::Auto, _) => BackendChoice::Nvml,
        };
        let mut gpu = GpuSource::new(
            choice,
            config.host.proc_root.clone(),
            Arc::clone(&health.gpu),
        );
        if config.gpu.dcgm_compatible {
            gpu = gpu.with_dcgm_names(shared.node_name.clone());
        }
        let now = SystemTime::now();
        Self {
            config,
            shared,
            pods,
            host,
            cgroups,
            volumes,
            gpu,
            serving: SharedServingState::default(),
            logs: SharedLogMetrics::default(),
            egress: SharedEgress::default(),
            exporter: None,
            process_start: now,
            last_export: now,
        }
    }

    /// One full collection: discovery, every stat, a published snapshot.
    fn collect_full(&mut self, now: Instant) {
        if let Some(cgroups) = &mut self.cgroups {
            cgroups.discover_if_due(now);
            cgroups.collect_full(now);
        }
        let host = self.host.collect();
        self.volumes.collect();
        {
            let pods = match self.pods.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            self.gpu.collect(&pods);
        }
        self.publish(Some(host));
    }

    /// One cheap sample; the host reading of the last full collection stays.
    fn sample(&mut self, now: Instant) {
        if let Some(cgroups) = &mut self.cgroups {
            cgroups.discover_if_due(now);
            cgroups.sample(now);
        }
        self.publish(None);
    }

    fn publish(&self, host: Option<crate::sources::host::HostStats>) {
        let previous = self.shared.snapshot();
        let pods = match self.pods.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut snapshot = Snapshot {
            taken_at: Some(SystemTime::now()),
            node: pods
                .node()
                .cloned()
                .unwrap_or_else(|| tally_schema::identity::NodeIdentity {
                    name: self.shared.node_name.clone(),
                    ..Default::default()
                }),
            host: host.or_else(|| previous.host.clone()),
            pods: pods.pods().cloned().collect(),
            ..Default::default()
        };
        snapshot
            .pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        snapshot.pod_facts = pods.all_facts();
        snapshot.volumes = volumes::resolve(&pods, self.volumes.volumes());
        snapshot.gpu = self.gpu.snapshot().clone();
        snapshot.serving = serving::lock(&self.serving).snapshot();
        snapshot.logs = logs::metrics::lock(&self.logs).points();
        {
            let egress = egress::lock(&self.egress);
            snapshot.egress = egress.traffic().to_vec();
            snapshot.egress_status = egress.points();
        }
        if let Some(cgroups) = &self.cgroups {
            snapshot.cgroups_by_runtime = cgroups.discovered_by_runtime().clone();
            snapshot.containers = cgroups
                .containers()
                .map(|c| {
                    let (identity, requests, limits) =
                        resolve_identity(&pods, &c.cgroup.pod_uid, &c.cgroup.container_id);
                    ContainerSnapshot {
                        identity,
                        runtime: c.cgroup.runtime,
                        cgroup: c.cgroup.relative.clone(),
                        cgroup_version: c.cgroup_version(),
                        stats: c.stats.clone(),
                        requests,
                        limits,
                    }
                })
                .collect();
        }
        drop(pods);
        self.shared.publish(snapshot);
    }

    /// Builds a batch from the latest snapshot and spools it.
    fn export(&mut self) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let now = SystemTime::now();
        let histograms = self
            .cgroups
            .as_mut()
            .map(|c| c.take_histograms())
            .unwrap_or_default()
            .into_iter()
            .map(|(cgroup, cpu_cores, working_set)| WindowHistograms {
                cgroup,
                cpu_cores,
                working_set,
            })
            .collect();
        let window = Window {
            process_start: self.process_start,
            window_start: self.last_export,
            now,
        };
        self.last_export = now;
        let snapshot = self.shared.snapshot();
        let extras = batch::WindowExtras {
            models: serving::lock(&self.serving).take_windows(),
            log_distributions: logs::metrics::lock(&self.logs).take_distributions(),
        };
        let request = batch::build_request(
            &snapshot,
            &self.shared.node_name,
            histograms,
            extras,
            &window,
            self.shared.version,
            self.config.export.gpu_names,
        );
        let payload = match batch::encode_gzip(&request) {
            Ok(payload) => payload,
            Err(error) => {
                exporter.health.error("encode", &error);
                return;
            }
        };
        let pushed = match exporter.spool.lock() {
            Ok(mut spool) => spool.push(&payload),
            Err(poisoned) => poisoned.into_inner().push(&payload),
        };
        match pushed {
            Ok(_) => exporter.wake.notify_one(),
            Err(error) => exporter.health.error("spool", &error),
        }
        self.update_export_telemetry();
    }

    fn update_export_telemetry(&self) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let spool = match exporter.spool.lock() {
            Ok(spool) => spool.stats(),
            Err(poisoned) => poisoned.into_inner().stats(),
        };
        self.shared.set_export_telemetry(ExportTelemetry {
            counts: exporter.stats.snapshot(),
            spool,
        });
    }
}

/// Per-source health handles.
struct Health {
    host: Arc<SourceHealth>,
    cgroups: Arc<SourceHealth>,
    pods: Arc<SourceHealth>,
    volumes: Arc<SourceHealth>,
    gpu: Arc<SourceHealth>,
    serving: Arc<SourceHealth>,
    logs: Arc<SourceHealth>,
    egress: Arc<SourceHealth>,
    otlp: Arc<SourceHealth>,
}

impl Health {
    fn new() -> Self {
        Self {
            host: SourceHealth::new("host"),
            cgroups: SourceHealth::new("cgroups"),
            pods: SourceHealth::new("pods"),
            volumes: SourceHealth::new("volumes"),
            gpu: SourceHealth::new("gpu"),
            serving: SourceHealth::new("serving"),
            logs: SourceHealth::new("logs"),
            egress: SourceHealth::new("egress"),
            otlp: SourceHealth::new("otlp"),
        }
    }
}

/// The API client when pod identity is wanted and possible: an explicit
/// `api_url`, else the in-cluster service account; `None` outside a cluster.
fn pod_client(config: &KubernetesConfig) -> Result<Option<KubeClient>, KubeError> {
    if config.mode == KubernetesMode::Off {
        return Ok(None);
    }
    let mut kube = match &config.api_url {
        Some(url) => KubeConfig {
            api_url: url.clone(),
            token_path: None,
            ca_path: None,
            insecure_skip_tls_verify: false,
        },
        None => match KubeConfig::in_cluster() {
            Some(kube) => kube,
            None => return Ok(None),
        },
    };
    if config.token_path.is_some() {
        kube.token_path = config.token_path.clone();
    }
    if config.ca_path.is_some() {
        kube.ca_path = config.ca_path.clone();
    }
    KubeClient::new(&kube).map(Some)
}

/// Runs one full collection and returns the OpenMetrics page
/// (`tally agent --once`).
pub fn collect_once(config: &AgentConfig, node_name: String) -> Result<String, AgentError> {
    let health = Health::new();
    let shared = Arc::new(Shared::new(
        node_name,
        vec![
            Arc::clone(&health.host),
            Arc::clone(&health.cgroups),
            Arc::clone(&health.volumes),
            Arc::clone(&health.gpu),
        ],
    ));
    let pods: SharedPodStore = Arc::new(RwLock::new(PodStore::default()));
    let mut sampler = Sampler::new(config.clone(), Arc::clone(&shared), pods, &health);
    sampler.collect_full(Instant::now());
    let registry = exposition::registry(shared);
    exposition::render(&registry, Format::OpenMetrics).map_err(|_| AgentError::Render)
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(
    config: AgentConfig,
    node_name: String,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let started = Instant::now();
    let health = Health::new();
    let pods: SharedPodStore = Arc::new(RwLock::new(PodStore::default()));
    let mut sources = vec![
        Arc::clone(&health.host),
        Arc::clone(&health.cgroups),
        Arc::clone(&health.volumes),
        Arc::clone(&health.gpu),
        Arc::clone(&health.serving),
    ];

    let pod_watch = pod_client(&config.kubernetes)
        .map_err(|error| health.pods.error("config", &error))
        .ok()
        .flatten();
    match (&pod_watch, config.kubernetes.mode) {
        (Some(_), _) => sources.push(Arc::clone(&health.pods)),
        (None, KubernetesMode::Off) => {
            tracing::info!("pod identity disabled (kubernetes.mode: off)")
        }
        (None, _) => {
            tracing::warn!(
                "pod identity unavailable: no Kubernetes service account or api_url; series carry pod_uid and container_id only"
            );
            if config.kubernetes.mode == KubernetesMode::On {
                sources.push(Arc::clone(&health.pods));
            }
        }
    }
    if config.egress.enabled {
        sources.push(Arc::clone(&health.egress));
    }
    if config.collector.is_some() {
        sources.push(Arc::clone(&health.otlp));
        if config.logs.enabled {
            sources.push(Arc::clone(&health.logs));
        }
    }
    let shared = Arc::new(Shared::new(node_name.clone(), sources));
    let registry = Arc::new(exposition::registry(Arc::clone(&shared)));
    let ready = Arc::new(AtomicBool::new(false));

    let listener = server::bind(&config.listen)
        .await
        .map_err(AgentError::Listen)?;
    tracing::info!(listen = %config.listen, "admin server listening");
    let router = server::router(server::AdminState::new(
        Arc::clone(&registry),
        Arc::clone(&ready),
    ));
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });

    let has_pods = pod_watch.is_some();
    if let Some(client) = pod_watch {
        if config.kubernetes.workload_facts {
            let store = Arc::clone(&pods);
            let source = Arc::clone(&health.pods);
            let refresh = config.kubernetes.controller_refresh_interval;
            let stop = shutdown.clone();
            tokio::spawn(pods::run_controller_refresh(
                client.clone(),
                store,
                source,
                refresh,
                stop,
            ));
        }
        let store = Arc::clone(&pods);
        let source = Arc::clone(&health.pods);
        let node = node_name.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { pods::run_pod_watch(client, node, store, source, stop).await });
    }

    let mut sampler = Sampler::new(
        config.clone(),
        Arc::clone(&shared),
        Arc::clone(&pods),
        &health,
    );
    tokio::spawn(serving::run(
        config.serving.clone(),
        Arc::clone(&sampler.serving),
        has_pods.then(|| Arc::clone(&pods)),
        Arc::clone(&health.serving),
        shutdown.clone(),
    ));
    let egress_stop = Arc::new(AtomicBool::new(false));
    let mut egress_thread = None;
    let remote = SharedRemote::default();
    if config.egress.enabled {
        let rules = config.egress.rules().unwrap_or_default();
        let settings = EgressSettings {
            interval: config.egress.interval,
            reader: config.egress.reader,
            netns: config.egress.netns.clone(),
            enable_accounting: config.egress.enable_accounting,
            kernel: egress::kernel::KernelPaths::under(std::path::Path::new("/proc")),
            proc_root: config.host.proc_root.clone(),
            rules,
            node_name: node_name.clone(),
            pods: has_pods.then(|| Arc::clone(&pods)),
            remote: Arc::clone(&remote),
            place: egress::classify::Place {
                region: Arc::from(config.egress.region.as_str()),
                zone: Arc::from(config.egress.zone.as_str()),
            },
        };
        match egress::spawn(
            settings,
            Arc::clone(&sampler.egress),
            Arc::clone(&health.egress),
            Arc::clone(&egress_stop),
        ) {
            Ok(handle) => egress_thread = Some(handle),
            Err(error) => health.egress.error("thread", &error),
        }
    }
    let mut sender_task = None;
    if let Some(collector) = &config.collector {
        let spool = Arc::new(Mutex::new(Spool::open(
            &config.spool.dir,
            config.spool.max_bytes,
        )?));
        let stats = Arc::new(ExportStats::default());
        let wake = Arc::new(Notify::new());
        let read = |path: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, AgentError> {
            path.as_ref()
                .map(|path| {
                    std::fs::read(path).map_err(|source| AgentError::ExportFile {
                        path: path.clone(),
                        source,
                    })
                })
                .transpose()
        };
        let token = read(&config.export.token_file)?
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .filter(|token| !token.is_empty());
        let sender_config = SenderConfig {
            timeout: config.export.timeout,
            max_backoff: config.export.max_backoff,
            token,
            ca_pem: read(&config.export.ca_file)?,
            ..SenderConfig::new(collector.clone())
        };
        tracing::info!(collector = %collector, spool = %config.spool.dir.display(), "exporting OTLP");
        if config.egress.enabled {
            match sender_config.client() {
                Ok(client) => {
                    tokio::spawn(egress::topology::run(
                        client,
                        format!("{}/api/v1/topology", collector.trim_end_matches('/')),
                        config.egress.topology_interval,
                        Arc::clone(&remote),
                        Arc::clone(&health.egress),
                        shutdown.clone(),
                    ));
                }
                Err(error) => health.egress.error("client", &error),
            }
        }
        if config.logs.enabled {
            match sender_config.client() {
                Ok(client) => {
                    let settings = LogsSettings {
                        root: config.logs.root.clone(),
                        max_message_bytes: config.logs.max_message_bytes as usize,
                        batch_bytes: config.logs.batch_bytes as usize,
                        poll_interval: config.logs.poll_interval,
                        rescan_interval: config.logs.rescan_interval,
                        checkpoint_file: config.logs.checkpoint_file.clone(),
                        fields: config.logs.fields.clone(),
                        url: format!("{}/v1/logs", collector.trim_end_matches('/')),
                        client,
                        node_attributes: vec![
                            ("k8s.node.name", node_name.clone()),
                            ("service.name", "tally-agent".to_owned()),
                        ],
                        max_backoff: config.export.max_backoff,
                        metrics: Arc::clone(&sampler.logs),
                        pods: has_pods.then(|| Arc::clone(&pods)),
                        paths: config.logs.paths.clone(),
                        watch: config.logs.watch,
                        rate_limit_lines: config.logs.rate_limit_lines,
                    };
                    tokio::spawn(logs::source::run(
                        settings,
                        Arc::clone(&health.logs),
                        shutdown.clone(),
                    ));
                }
                Err(error) => health.logs.error("client", &error),
            }
        }
        sender_task = Some(tokio::spawn(sender::run_sender(
            Arc::clone(&spool),
            sender_config,
            Arc::clone(&stats),
            Arc::clone(&health.otlp),
            Arc::clone(&wake),
            shutdown.clone(),
        )));
        sampler.exporter = Some(Exporter {
            spool,
            stats,
            wake,
            health: Arc::clone(&health.otlp),
        });
    }

    let (stop_sampler, sampler_stop) = mpsc::channel::<()>();
    let sampler_ready = Arc::clone(&ready);
    let sampling = std::thread::Builder::new()
        .name("tally-sampler".to_owned())
        .spawn(move || sampling_loop(sampler, sampler_stop, sampler_ready, started))
        .map_err(AgentError::Thread)?;

    let _ = shutdown.wait_for(|stop| *stop).await;
    tracing::info!("shutting down");
    let _ = stop_sampler.send(());
    let _ = tokio::task::spawn_blocking(move || sampling.join()).await;
    egress_stop.store(true, Ordering::Relaxed);
    if let Some(thread) = egress_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    if let Some(task) = sender_task {
        let _ = task.await;
    }
    match server.await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(error)) => Err(AgentError::Serve(error)),
    }
}

fn sampling_loop(
    mut sampler: Sampler,
    stop: mpsc::Receiver<()>,
    ready: Arc<AtomicBool>,
    started: Instant,
) {
    let interval = sampler.config.sampling.interval;
    let export_interval = sampler.config.sampling.export_interval;
    sampler.collect_full(Instant::now());
    // Ship the first picture at once rather than an export interval later,
    // so a fresh collector (`tally up`) has data immediately.
    sampler.export();
    ready.store(true, Ordering::Release);
    tracing::info!(
        ready_after_ms = started.elapsed().as_millis() as u64,
        "first collection complete"
    );
    let mut next_tick = Instant::now() + interval;
    let mut next_export = Instant::now() + export_interval;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        // Skip ticks missed while the machine was suspended or overloaded
        // rather than sampling in a burst.
        next_tick += interval;
        if next_tick < now {
            next_tick = now + interval;
        }
        if now >= next_export {
            sampler.collect_full(now);
            sampler.export();
            next_export += export_interval;
            if next_export < now {
                next_export = now + export_interval;
            }
        } else {
            sampler.sample(now);
            sampler.update_export_telemetry();
        }
    }
}
