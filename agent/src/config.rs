//! Agent configuration: one YAML file, `TALLY_*` environment overrides,
//! then command-line flags (each layer overrides the one before).
//!
//! Every key of the file can be overridden from the environment: the
//! variable is `TALLY_` plus the key path in upper case joined by `_`
//! (`sampling.interval` → `TALLY_SAMPLING_INTERVAL`). The list of variables
//! is derived from the defaults, so it cannot drift from the struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The only config version this build reads.
pub const CONFIG_VERSION: u32 = 1;

pub use tally_config::{ConfigError, duration_text};

/// The agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Config schema version; must be 1.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Admin address serving `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Collector OTLP/HTTP base URL (`http://collector:4318`); no push
    /// when unset.
    #[serde(default)]
    pub collector: Option<String>,
    /// Node name; defaults to `$NODE_NAME` (downward API) or the host name.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Sampling and export cadence.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// Host source.
    #[serde(default)]
    pub host: HostConfig,
    /// Container (cgroup) source.
    #[serde(default)]
    pub cgroups: CgroupConfig,
    /// Pod identity from the Kubernetes API.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// Pod volume source.
    #[serde(default)]
    pub volumes: VolumesConfig,
    /// GPU source.
    #[serde(default)]
    pub gpu: GpuConfig,
    /// Model-server scraping.
    #[serde(default)]
    pub serving: ServingConfig,
    /// Container log files.
    #[serde(default)]
    pub logs: LogsConfig,
    /// Bytes per pod by destination, from connection tracking.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Disk spool for batches the collector has not acknowledged.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// OTLP export behaviour.
    #[serde(default)]
    pub export: ExportConfig,
    /// The agent's own logs.
    #[serde(default)]
    pub log: LogConfig,
}

/// Sampling and export cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// How often CPU and memory are sampled (short bursts need short
    /// intervals).
    #[serde(default = "default_sampling_interval", with = "duration_text")]
    pub interval: Duration,
    /// How often distributions and full stats are exported.
    #[serde(default = "default_export_interval", with = "duration_text")]
    pub export_interval: Duration,
    /// How often the cgroup tree is walked for new containers.
    #[serde(default = "default_discovery_interval", with = "duration_text")]
    pub discovery_interval: Duration,
}

/// Host source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// procfs mount (the host's is `/host/proc` in a DaemonSet).
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
}

/// Cgroup source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupConfig {
    /// cgroup mount root (v1 controllers or the v2 tree below it).
    #[serde(default = "default_cgroup_root")]
    pub root: PathBuf,
}

/// Pod volume source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumesConfig {
    /// The kubelet's root directory, holding `pods/<uid>/volumes` (the
    /// DaemonSet mounts the host's with `mountPropagation:
    /// HostToContainer`, so volumes mounted later are seen).
    #[serde(default = "default_kubelet_root")]
    pub kubelet_root: PathBuf,
}

/// Where GPU readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// NVML when its library and the driver are present, else off (a
    /// non-GPU node, said once).
    Auto,
    /// A recorded fixture (`gpu.replay_file`): demos and tests.
    Replay,
    /// Never.
    Off,
}

/// GPU source settings. Processes are mapped to containers through
/// `host.proc_root` (NVML reports host PIDs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// `auto`, `replay` or `off`.
    #[serde(default = "default_gpu_mode")]
    pub mode: GpuMode,
    /// The recording served in `replay` mode.
    #[serde(default)]
    pub replay_file: Option<PathBuf>,
    /// Also serve dcgm-exporter's names and labels on `/metrics`
    /// (`DCGM_FI_DEV_GPU_UTIL`, …) so DCGM dashboards and alerts keep
    /// working.
    #[serde(default)]
    pub dcgm_compatible: bool,
}

/// When to use the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesMode {
    /// Use it when running in a cluster (service account present).
    Auto,
    /// Always (fail loudly when unreachable: the source stays down).
    On,
    /// Never.
    Off,
}

/// Model servers (vLLM, SGLang, TGI, Triton) scraped for requests,
/// tokens and latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Pages to scrape besides the discovered pods (`--scrape URL`,
    /// repeatable; in the environment a comma-separated list).
    #[serde(default, deserialize_with = "text_list")]
    pub scrape: Vec<String>,
    /// Discover model servers among the pods on this node.
    #[serde(default = "default_true")]
    pub discover_pods: bool,
    /// How often each server is scraped.
    #[serde(default = "default_scrape_interval", with = "duration_text")]
    pub interval: Duration,
    /// A scrape that takes longer is cut and counted (`timeout`).
    #[serde(default = "default_scrape_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// Pages larger than this are refused (`body_too_large`).
    #[serde(default = "default_scrape_max_bytes")]
    pub max_bytes: u64,
}
pub(crate) use tally_config::text_list;

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            scrape: Vec::new(),
            discover_pods: default_true(),
            interval: default_scrape_interval(),
            timeout: default_scrape_timeout(),
            max_bytes: default_scrape_max_bytes(),
        }
    }
}

/// Egress measurement from the kernel's connection tracking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Measure bytes per pod by destination.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between table reads (ended connections are counted from
    /// DESTROY events in between).
    #[serde(default = "default_egress_interval", with = "duration_text")]
    pub interval: Duration,
    /// `auto` (netlink, else procfs), `netlink` or `procfs`.
    #[serde(default = "default_egress_reader")]
    pub reader: crate::sources::egress::Reader,
    /// Network namespace whose table is read (`/proc/1/ns/net` for the
    /// host's when the agent is not on the host network); the agent's own
    /// when unset.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Switch `net.netfilter.nf_conntrack_acct` on when it is off.
    #[serde(default = "default_true")]
    pub enable_accounting: bool,
    /// This node's zone when the pod watch does not give it.
    #[serde(default)]
    pub zone: String,
    /// This node's region when the pod watch does not give it.
    #[serde(default)]
    pub region: String,
    /// Subnets and their zones: `CIDR=ZONE` (a zone of the node's region)
    /// or `CIDR=REGION/ZONE`.
    #[serde(default, deserialize_with = "text_list")]
    pub subnets: Vec<String>,
    /// Named service ranges: `CIDR=NAME` (class `service`).
    #[serde(default, deserialize_with = "text_list")]
    pub services: Vec<String>,
    /// Class overrides, checked first: `CIDR=CLASS`.
    #[serde(default, deserialize_with = "text_list")]
    pub direct: Vec<String>,
    /// How often the cluster's pods and nodes are fetched from the
    /// collector (`/api/v1/topology`).
    #[serde(default = "default_egress_topology_interval", with = "duration_text")]
    pub topology_interval: Duration,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            interval: default_egress_interval(),
            reader: default_egress_reader(),
            netns: None,
            enable_accounting: default_true(),
            zone: String::new(),
            region: String::new(),
            subnets: Vec::new(),
            services: Vec::new(),
            direct: Vec::new(),
            topology_interval: default_egress_topology_interval(),
        }
    }
}

impl EgressConfig {
    /// The destination maps.
    pub fn rules(&self) -> Result<crate::sources::egress::classify::Rules, String> {
        crate::sources::egress::classify::Rules::parse(&self.direct, &self.services, &self.subnets)
    }
}

fn default_egress_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_egress_reader() -> crate::sources::egress::Reader {
    crate::sources::egress::Reader::Auto
}
fn default_egress_topology_interval() -> Duration {
    Duration::from_secs(60)
}

/// Container log files followed and shipped over OTLP (`/v1/logs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Follow the node's container logs (needs a collector to ship to).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The pod log root (kubelet's `/var/log/pods`).
    #[serde(default = "default_logs_root")]
    pub root: PathBuf,
    /// Where delivered offsets are kept.
    #[serde(default = "default_logs_checkpoint_file")]
    pub checkpoint_file: PathBuf,
    /// The longest message kept; longer ones are cut and counted.
    #[serde(default = "default_logs_max_message_bytes")]
    pub max_message_bytes: u64,
    /// A batch is sent once it holds this many bytes.
    #[serde(default = "default_logs_batch_bytes")]
    pub batch_bytes: u64,
    /// How often files are read when nothing was new.
    #[serde(default = "default_logs_poll_interval", with = "duration_text")]
    pub poll_interval: Duration,
    /// How often the root is scanned for new files.
    #[serde(default = "default_logs_rescan_interval", with = "duration_text")]
    pub rescan_interval: Duration,
    /// Globs of other log files to follow (Docker json-file logs, files
    /// of services outside Kubernetes).
    #[serde(default, deserialize_with = "text_list")]
    pub paths: Vec<String>,
    /// Wake on filesystem events (inotify) as well as the rescan.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Most lines a second kept per container (0: no limit); the rest are
    /// dropped and counted.
    #[serde(default)]
    pub rate_limit_lines: u64,
    /// The JSON keys of the fields Tally reads from each message.
    #[serde(default)]
    pub fields: crate::sources::logs::record::FieldNames,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            root: default_logs_root(),
            checkpoint_file: default_logs_checkpoint_file(),
            max_message_bytes: default_logs_max_message_bytes(),
            batch_bytes: default_logs_batch_bytes(),
            poll_interval: default_logs_poll_interval(),
            rescan_interval: default_logs_rescan_interval(),
            paths: Vec::new(),
            watch: default_true(),
            rate_limit_lines: 0,
            fields: Default::default(),
        }
    }
}

/// Kubernetes API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// `auto`, `on` or `off`.
    #[serde(default = "default_kubernetes_mode")]
    pub mode: KubernetesMode,
    /// API server URL; in-cluster discovery when unset.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Bearer token file; the service account's when unset.
    #[serde(default)]
    pub token_path: Option<PathBuf>,
    /// CA bundle; the service account's when unset.
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// How often each controller (Deployment, StatefulSet, ReplicaSet) of
    /// the node's pods and each namespace's PodDisruptionBudgets and
    /// HorizontalPodAutoscalers are read again; new ones are read as their
    /// pods arrive.
    #[serde(
        default = "default_controller_refresh_interval",
        with = "duration_text"
    )]
    pub controller_refresh_interval: Duration,
    /// Read the controllers, budgets and autoscalers at all (spot
    /// readiness and HPA-aware right-sizing); off, the agent needs only
    /// pods, replicasets and nodes from the API.
    #[serde(default = "default_workload_facts")]
    pub workload_facts: bool,
}

/// Disk spool settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of spooled batches.
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    /// Size bound; the oldest batches are evicted (and counted) beyond it.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

/// OTLP export settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Per-request timeout.
    #[serde(default = "default_export_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// Longest backoff between retries.
    #[serde(default = "default_max_backoff", with = "duration_text")]
    pub max_backoff: Duration,
    /// File holding the collector's ingest bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle trusted for an `https://` collector, in addition to
    /// the built-in web PKI roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// OTLP names of the GPU families that have an OpenTelemetry
    /// semantic convention: `tally` (`tally_gpu_utilization_ratio`, one
    /// name end to end) or `semconv` (`hw.gpu.utilization`, `hw.power`…
    /// with `hw.id`, for OTLP backends built on the conventions). Tally's
    /// collector reads both.
    #[serde(default = "default_gpu_names")]
    pub gpu_names: GpuNames,
}

/// How GPU families are named over OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuNames {
    /// The catalog's names, as on `/metrics`.
    Tally,
    /// OpenTelemetry hardware semantic conventions where one exists
    /// (`tally_schema::semconv`), the catalog's names elsewhere.
    Semconv,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise (containers).
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `auto`, `json` or `pretty`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A tracing filter (`info`, `tally_agent=debug`); `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_version() -> u32 {
    CONFIG_VERSION
}
fn default_listen() -> String {
    "0.0.0.0:9470".to_owned()
}
fn default_sampling_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_export_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_discovery_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_cgroup_root() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
}
fn default_kubelet_root() -> PathBuf {
    PathBuf::from("/var/lib/kubelet")
}
fn default_gpu_mode() -> GpuMode {
    GpuMode::Auto
}
fn default_kubernetes_mode() -> KubernetesMode {
    KubernetesMode::Auto
}
fn default_workload_facts() -> bool {
    true
}
fn default_controller_refresh_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/lib/tally/spool")
}
fn default_spool_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_logs_root() -> PathBuf {
    PathBuf::from("/var/log/pods")
}
fn default_logs_checkpoint_file() -> PathBuf {
    PathBuf::from("/var/lib/tally/logs/checkpoints.json")
}
fn default_logs_max_message_bytes() -> u64 {
    1024 * 1024
}
fn default_logs_batch_bytes() -> u64 {
    1024 * 1024
}
fn default_logs_poll_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_logs_rescan_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_true() -> bool {
    true
}
fn default_scrape_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_scrape_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_scrape_max_bytes() -> u64 {
    32 * 1024 * 1024
}
fn default_gpu_names() -> GpuNames {
    GpuNames::Tally
}
fn default_log_format() -> LogFormat {
    LogFormat::Auto
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            version: default_version(),
            listen: default_listen(),
            collector: None,
            node_name: None,
            sampling: SamplingConfig::default(),
            host: HostConfig::default(),
            cgroups: CgroupConfig::default(),
            kubernetes: KubernetesConfig::default(),
            volumes: VolumesConfig::default(),
            gpu: GpuConfig::default(),
            serving: ServingConfig::default(),
            logs: LogsConfig::default(),
            egress: EgressConfig::default(),
            spool: SpoolConfig::default(),
            export: ExportConfig::default(),
            log: LogConfig::default(),
        }
    }
}
impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            interval: default_sampling_interval(),
            export_interval: default_export_interval(),
            discovery_interval: default_discovery_interval(),
        }
    }
}
impl Default for HostConfig {
    fn default() -> Self {
        Self {
            proc_root: default_proc_root(),
        }
    }
}
impl Default for CgroupConfig {
    fn default() -> Self {
        Self {
            root: default_cgroup_root(),
        }
    }
}
impl Default for VolumesConfig {
    fn default() -> Self {
        Self {
            kubelet_root: default_kubelet_root(),
        }
    }
}
impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            mode: default_gpu_mode(),
            replay_file: None,
            dcgm_compatible: false,
        }
    }
}
impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            mode: default_kubernetes_mode(),
            api_url: None,
            token_path: None,
            ca_path: None,
            controller_refresh_interval: default_controller_refresh_interval(),
            workload_facts: default_workload_facts(),
        }
    }
}
impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: default_spool_dir(),
            max_bytes: default_spool_max_bytes(),
        }
    }
}
impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            timeout: default_export_timeout(),
            max_backoff: default_max_backoff(),
            token_file: None,
            ca_file: None,
            gpu_names: default_gpu_names(),
        }
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

/// Command-line overrides (the top layer).
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--collector`.
    pub collector: Option<String>,
    /// `--scrape`, repeatable; replaces `serving.scrape` when given.
    pub scrape: Vec<String>,
}

impl AgentConfig {
    /// Loads file → env → flags and validates.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &FlagOverrides,
    ) -> Result<Self, ConfigError> {
        let mut config: AgentConfig = tally_config::load_layers(file, env, ENV_PREFIX)?;
        if let Some(listen) = &flags.listen {
            config.listen = listen.clone();
        }
        if let Some(collector) = &flags.collector {
            config.collector = Some(collector.clone());
        }
        if !flags.scrape.is_empty() {
            config.serving.scrape = flags.scrape.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Value {
                key: "version",
                value: self.version.to_string(),
                reason: "this build reads config version 1",
            });
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::Value {
                key: "listen",
                value: self.listen.clone(),
                reason: "expected HOST:PORT with a numeric IP, e.g. 0.0.0.0:9470",
            });
        }
        if let Some(url) = &self.collector
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Value {
                key: "collector",
                value: url.clone(),
                reason: "expected an http:// or https:// URL",
            });
        }
        if let Some(url) = self
            .serving
            .scrape
            .iter()
            .find(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(ConfigError::Value {
                key: "serving.scrape",
                value: url.clone(),
                reason: "expected http:// or https:// URLs of /metrics pages",
            });
        }
        if self.serving.timeout.is_zero() || self.serving.timeout > self.serving.interval {
            return Err(ConfigError::Value {
                key: "serving.timeout",
                value: duration_text::format(self.serving.timeout),
                reason: "must be above zero and at most serving.interval",
            });
        }
        if self.gpu.mode == GpuMode::Replay && self.gpu.replay_file.is_none() {
            return Err(ConfigError::Value {
                key: "gpu.replay_file",
                value: String::new(),
                reason: "gpu.mode replay needs a recording to serve",
            });
        }
        if self.sampling.interval < Duration::from_millis(100) {
            return Err(ConfigError::Value {
                key: "sampling.interval",
                value: duration_text::format(self.sampling.interval),
                reason: "must be at least 100ms",
            });
        }
        if self.sampling.export_interval < self.sampling.interval {
            return Err(ConfigError::Value {
                key: "sampling.export_interval",
                value: duration_text::format(self.sampling.export_interval),
                reason: "must be at least sampling.interval",
            });
        }
        if self.kubernetes.controller_refresh_interval < Duration::from_secs(10) {
            return Err(ConfigError::Value {
                key: "kubernetes.controller_refresh_interval",
                value: duration_text::format(self.kubernetes.controller_refresh_interval),
                reason: "must be at least 10s",
            });
        }
        if self.egress.interval < Duration::from_secs(1) {
            return Err(ConfigError::Value {
                key: "egress.interval",
                value: duration_text::format(self.egress.interval),
                reason: "must be at least 1s",
            });
        }
        if let Err(value) = self.egress.rules() {
            return Err(ConfigError::Value {
                key: "egress.subnets/services/direct",
                value,
                reason: "expected CIDR=ZONE or CIDR=REGION/ZONE (subnets), CIDR=NAME (services), CIDR=CLASS (direct)",
            });
        }
        if self.spool.max_bytes < 1024 * 1024 {
            return Err(ConfigError::Value {
                key: "spool.max_bytes",
                value: self.spool.max_bytes.to_string(),
                reason: "must be at least 1 MiB",
            });
        }
        Ok(())
    }

    /// The effective config as YAML (`--print-config`).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The node name: config, then `$NODE_NAME`, then the host name.
    pub fn resolved_node_name(&self, env: &[(String, String)]) -> String {
        if let Some(name) = self.node_name.as_ref().filter(|n| !n.is_empty()) {
            return name.clone();
        }
        if let Some((_, name)) = env.iter().find(|(k, v)| k == "NODE_NAME" && !v.is_empty()) {
            return name.clone();
        }
        sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_owned())
    }
}

/// One line of documentation per key, for the generated reference
/// (`docs/configuration.md`). A test fails when a key lacks one.
pub const KEY_DOCS: &[(&str, &str)] = &[
    ("version", "Config schema version; must be 1."),
    (
        "listen",
        "Admin address serving /metrics, /healthz and /readyz.",
    ),
    (
        "collector",
        "Collector OTLP/HTTP base URL (http://collector:4318); no push when unset.",
    ),
    (
        "node_name",
        "Node name; defaults to $NODE_NAME (downward API), then the host name.",
    ),
    (
        "sampling.interval",
        "How often CPU and memory are sampled into per-container distributions.",
    ),
    (
        "sampling.export_interval",
        "How often full stats and distributions are exported (and the spool written).",
    ),
    (
        "sampling.discovery_interval",
        "How often the cgroup tree is walked for new and gone containers.",
    ),
    (
        "host.proc_root",
        "procfs mount; the host's /proc is mounted at /host/proc in the DaemonSet.",
    ),
    (
        "cgroups.root",
        "cgroup mount root holding the v1 controllers or the v2 tree.",
    ),
    (
        "kubernetes.mode",
        "auto (use the service account when present), on, or off.",
    ),
    (
        "kubernetes.api_url",
        "API server URL; in-cluster discovery when unset.",
    ),
    (
        "kubernetes.token_path",
        "Bearer token file; the service account's when unset.",
    ),
    (
        "kubernetes.ca_path",
        "CA bundle for the API server; the service account's when unset.",
    ),
    (
        "kubernetes.controller_refresh_interval",
        "How often the pods' controllers (Deployment, StatefulSet, ReplicaSet: replicas, rollout) and each namespace's PodDisruptionBudgets and HorizontalPodAutoscalers are read again; new ones are read as their pods arrive. Needs get on apps deployments, replicasets and statefulsets, list on policy poddisruptionbudgets and list on autoscaling horizontalpodautoscalers.",
    ),
    (
        "kubernetes.workload_facts",
        "Read the pods' controllers, PodDisruptionBudgets and HorizontalPodAutoscalers (spot readiness, autoscaler-aware right-sizing); false needs only get/list/watch on pods and replicasets and get/list on nodes.",
    ),
    (
        "gpu.mode",
        "auto (NVML when its library and the driver are present; a node without them is a non-GPU node, said once), replay (serve gpu.replay_file) or off.",
    ),
    (
        "gpu.replay_file",
        "A GPU recording (the JSON tally gpu-check writes) served in replay mode.",
    ),
    (
        "gpu.dcgm_compatible",
        "Also serve dcgm-exporter's names and labels on /metrics (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED, DCGM_FI_PROF_GR_ENGINE_ACTIVE, …; gpu, UUID, device, modelName, Hostname, namespace, pod, container) so DCGM dashboards and alerts keep working.",
    ),
    (
        "serving.scrape",
        "Model-server pages to scrape besides the discovered pods (--scrape URL, repeatable; a comma-separated list in the environment), e.g. a vLLM on this workstation; the engine is read from the page.",
    ),
    (
        "serving.discover_pods",
        "Scrape model servers among this node's pods: annotated (tally.dev/engine, prometheus.io/scrape, …), running a known engine's image, or declaring SGLang's or Triton's port.",
    ),
    (
        "serving.interval",
        "How often each model server is scraped.",
    ),
    (
        "serving.timeout",
        "A scrape that takes longer is cut and counted as a timeout; other targets are not held up.",
    ),
    (
        "serving.max_bytes",
        "Pages larger than this are refused and counted (body_too_large).",
    ),
    (
        "egress.enabled",
        "Measure bytes per pod by destination class from the kernel's connection tracking (needs CAP_NET_ADMIN in the network namespace read; no privileged container).",
    ),
    (
        "egress.interval",
        "Time between table reads; connections that end in between are counted from their DESTROY events (netlink reader).",
    ),
    (
        "egress.reader",
        "auto (ctnetlink dumps and DESTROY events, else /proc/net/nf_conntrack), netlink or procfs (no events: connections shorter than the interval are missed).",
    ),
    (
        "egress.netns",
        "Network namespace whose table is read, e.g. /proc/1/ns/net for the host's when the agent is not on the host network (needs CAP_SYS_ADMIN to enter); the agent's own when unset.",
    ),
    (
        "egress.enable_accounting",
        "Switch net.netfilter.nf_conntrack_acct on when it is off (connections opened before have no counters and are reported as uncounted); when off and not allowed, no byte figures are reported.",
    ),
    (
        "egress.zone",
        "This node's zone when the pod watch does not give it (topology.kubernetes.io/zone).",
    ),
    (
        "egress.region",
        "This node's region when the pod watch does not give it (topology.kubernetes.io/region).",
    ),
    (
        "egress.subnets",
        "Subnets and their zones, CIDR=ZONE (a zone of the node's region) or CIDR=REGION/ZONE, comma-separated in the environment; a private address no map places is private_unmapped, never assumed in-zone.",
    ),
    (
        "egress.services",
        "Named service ranges, CIDR=NAME (e.g. an S3 prefix =s3, a VPC endpoint's addresses), class service with destination_service NAME.",
    ),
    (
        "egress.direct",
        "Class overrides checked before anything else, CIDR=CLASS (same_node, same_zone, cross_zone, cross_region, internet, service, private_unmapped).",
    ),
    (
        "egress.topology_interval",
        "How often the cluster's pods and nodes (address, zone, region, workload) are fetched from the collector's /api/v1/topology to place in-cluster destinations.",
    ),
    (
        "logs.enabled",
        "Follow the node's container log files and ship them to the collector over OTLP (/v1/logs); needs collector.",
    ),
    (
        "logs.root",
        "The pod log root (kubelet's /var/log/pods: <namespace>_<pod>_<uid>/<container>/<n>.log); mount the host's.",
    ),
    (
        "logs.checkpoint_file",
        "Delivered offsets per file, committed only after the collector acknowledged; keep it on a host path so restarts resume.",
    ),
    (
        "logs.max_message_bytes",
        "The longest message kept (partial lines joined); longer ones are cut and counted.",
    ),
    (
        "logs.batch_bytes",
        "A batch is sent once it holds this many bytes.",
    ),
    (
        "logs.poll_interval",
        "How often files are read when nothing was new.",
    ),
    (
        "logs.rescan_interval",
        "How often the pod log root is scanned for new files.",
    ),
    (
        "logs.paths",
        "Globs of other log files to follow, e.g. Docker's /var/lib/docker/containers/*/*-json.log (comma-separated in the environment); CRI and json-file lines are told apart by their first byte.",
    ),
    (
        "logs.watch",
        "Wake on filesystem events (inotify: new files, writes) as well as the rescan, so new files are read within milliseconds.",
    ),
    (
        "logs.rate_limit_lines",
        "Most lines a second kept per container (0: no limit; bursts of one second pass); lines over it are dropped and counted in tally_container_log_rate_limited_lines_total.",
    ),
    (
        "logs.fields.level",
        "JSON keys holding severity (text, or pino's numbers), the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.message",
        "JSON keys holding the message, the record's body, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.latency_ms",
        "JSON keys holding request latency in milliseconds, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.latency_seconds",
        "JSON keys holding request latency in seconds, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.model",
        "JSON keys holding the model served or called, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.prompt_tokens",
        "JSON keys holding prompt tokens, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.completion_tokens",
        "JSON keys holding generated tokens, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.status",
        "JSON keys holding outcome (an HTTP status of 500 or more counts as an error without a level), the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.trace_id",
        "JSON keys holding W3C trace id, 32 hex digits, the first present wins (comma-separated in the environment).",
    ),
    (
        "logs.fields.span_id",
        "JSON keys holding W3C span id, 16 hex digits, the first present wins (comma-separated in the environment).",
    ),
    (
        "volumes.kubelet_root",
        "The kubelet's root directory holding pods/<uid>/volumes; mount the host's with mountPropagation HostToContainer.",
    ),
    (
        "spool.dir",
        "Directory of batches not yet acknowledged by the collector.",
    ),
    (
        "spool.max_bytes",
        "Spool size bound; the oldest batches are evicted (and counted) beyond it.",
    ),
    ("export.timeout", "Timeout of one OTLP request."),
    (
        "export.max_backoff",
        "Longest wait between retries when the collector is unreachable.",
    ),
    (
        "export.token_file",
        "File holding the collector's ingest bearer token (sent as Authorization: Bearer).",
    ),
    (
        "export.ca_file",
        "PEM CA bundle trusted for an https:// collector, besides the built-in web PKI roots (for a cluster CA or a self-signed collector).",
    ),
    (
        "export.gpu_names",
        "OTLP names of the GPU families with an OpenTelemetry hardware convention: tally (tally_gpu_utilization_ratio, as on /metrics) or semconv (hw.gpu.utilization, hw.power, hw.energy… with hw.id, for OTLP backends built on the conventions). The collector reads both.",
    ),
    (
        "log.format",
        "auto (pretty on a terminal, JSON otherwise), json or pretty.",
    ),
    (
        "log.level",
        "tracing filter such as info or tally_agent=debug; RUST_LOG wins.",
    ),
];

/// Prefix of the agent's environment variables.
pub const ENV_PREFIX: &str = "TALLY_";

/// The configuration reference page, generated from the defaults and
/// [`KEY_DOCS`] (`tally agent --config-reference`).
pub fn reference_markdown() -> String {
    tally_config::reference_markdown::<AgentConfig>(
        "Agent configuration reference",
        "tally agent --config-reference",
        ENV_PREFIX,
        "`--listen`, `--collector`",
        KEY_DOCS,
    )
}

/// Every overridable key path, from the defaults' shape.
pub fn env_key_paths() -> Vec<Vec<String>> {
    tally_config::env_key_paths::<AgentConfig>()
}

/// The variable overriding `path`.
pub fn env_name(path: &[String]) -> String {
    tally_config::env_name(ENV_PREFIX, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn defaults_without_file() {
        let config = AgentConfig::load(None, &[], &FlagOverrides::default()).expect("loads");
        assert_eq!(config, AgentConfig::default());
        assert_eq!(config.sampling.interval, Duration::from_secs(1));
        assert_eq!(config.sampling.export_interval, Duration::from_secs(15));
        assert_eq!(config.spool.max_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let file = write(
            "version: 1\nlisten: 127.0.0.1:1000\nsampling:\n  interval: 2s\ncollector: http://file:4318\n",
        );
        let env = env(&[
            ("TALLY_LISTEN", "127.0.0.1:2000"),
            ("TALLY_SAMPLING_INTERVAL", "500ms"),
            ("TALLY_SPOOL_MAX_BYTES", "2097152"),
        ]);
        let flags = FlagOverrides {
            listen: Some("127.0.0.1:3000".into()),
            collector: None,
            scrape: Vec::new(),
        };
        let config = AgentConfig::load(Some(file.path()), &env, &flags).expect("loads");
        assert_eq!(config.listen, "127.0.0.1:3000");
        assert_eq!(config.sampling.interval, Duration::from_millis(500));
        assert_eq!(config.spool.max_bytes, 2 * 1024 * 1024);
        assert_eq!(config.collector.as_deref(), Some("http://file:4318"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let file = write("version: 1\nsampling:\n  intervall: 1s\n");
        let error = AgentConfig::load(Some(file.path()), &[], &FlagOverrides::default())
            .expect_err("unknown key");
        assert!(error.to_string().contains("intervall"), "{error}");

        let file = write("sampling:\n  interval: fast\n");
        let error = AgentConfig::load(Some(file.path()), &[], &FlagOverrides::default())
            .expect_err("bad duration");
        assert!(error.to_string().contains("\"fast\""), "{error}");

        let error = AgentConfig::load(
            None,
            &env(&[("TALLY_LISTEN", "nowhere")]),
            &FlagOverrides::default(),
        )
        .expect_err("bad listen");
        assert!(
            error.to_string().contains("listen = \"nowhere\""),
            "{error}"
        );

        let file = write("version: 2\n");
        let error = AgentConfig::load(Some(file.path()), &[], &FlagOverrides::default())
            .expect_err("bad version");
        assert!(error.to_string().contains("version"), "{error}");

        let error = AgentConfig::load(
            None,
            &env(&[("TALLY_SPOOL_MAX_BYTES", "lots")]),
            &FlagOverrides::default(),
        )
        .expect_err("bad number");
        assert!(
            error.to_string().contains("TALLY_SPOOL_MAX_BYTES"),
            "{error}"
        );
    }

    #[test]
    fn replay_mode_needs_a_recording() {
        let no_file = [("TALLY_GPU_MODE".to_owned(), "replay".to_owned())];
        let error = AgentConfig::load(None, &no_file, &FlagOverrides::default())
            .expect_err("replay without a file");
        assert!(error.to_string().contains("gpu.replay_file"), "{error}");
        let with_file = [
            ("TALLY_GPU_MODE".to_owned(), "replay".to_owned()),
            (
                "TALLY_GPU_REPLAY_FILE".to_owned(),
                "/tmp/h100.json".to_owned(),
            ),
        ];
        let config =
            AgentConfig::load(None, &with_file, &FlagOverrides::default()).expect("replay");
        assert_eq!(config.gpu.mode, GpuMode::Replay);
        assert_eq!(
            config.gpu.replay_file,
            Some(PathBuf::from("/tmp/h100.json"))
        );
        assert_eq!(AgentConfig::default().gpu.mode, GpuMode::Auto);
    }

    #[test]
    fn the_controller_refresh_interval_is_bounded() {
        let config = AgentConfig::load(None, &[], &FlagOverrides::default()).expect("loads");
        assert_eq!(
            config.kubernetes.controller_refresh_interval,
            Duration::from_secs(300)
        );
        let env_set = env(&[("TALLY_KUBERNETES_CONTROLLER_REFRESH_INTERVAL", "2m")]);
        let config = AgentConfig::load(None, &env_set, &FlagOverrides::default()).expect("loads");
        assert_eq!(
            config.kubernetes.controller_refresh_interval,
            Duration::from_secs(120)
        );
        let file = write("kubernetes:\n  controller_refresh_interval: 1s\n");
        let error = AgentConfig::load(Some(file.path()), &[], &FlagOverrides::default())
            .expect_err("too short");
        assert!(
            error
                .to_string()
                .contains("kubernetes.controller_refresh_interval"),
            "{error}"
        );
    }

    #[test]
    fn every_key_has_an_env_name() {
        let names: Vec<String> = env_key_paths().iter().map(|p| env_name(p)).collect();
        for expected in [
            "TALLY_VERSION",
            "TALLY_LISTEN",
            "TALLY_COLLECTOR",
            "TALLY_SAMPLING_EXPORT_INTERVAL",
            "TALLY_CGROUPS_ROOT",
            "TALLY_KUBERNETES_MODE",
            "TALLY_SPOOL_DIR",
            "TALLY_LOG_FORMAT",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
    }

    #[test]
    fn log_field_keys_come_from_the_file_or_the_environment() {
        let file = write("version: 1\nlogs:\n  fields:\n    message: [text, msg]\n");
        let env = env(&[("TALLY_LOGS_FIELDS_LEVEL", "sev, lvl")]);
        let config =
            AgentConfig::load(Some(file.path()), &env, &FlagOverrides::default()).expect("loads");
        assert_eq!(config.logs.fields.message, ["text", "msg"]);
        assert_eq!(config.logs.fields.level, ["sev", "lvl"]);
        assert_eq!(
            config.logs.fields.model,
            crate::sources::logs::record::FieldNames::default().model,
            "the others keep their defaults"
        );
    }

    #[test]
    fn every_key_is_documented() {
        for path in env_key_paths() {
            let key = path.join(".");
            assert!(
                KEY_DOCS.iter().any(|(k, _)| *k == key),
                "{key} has no entry in KEY_DOCS"
            );
        }
        assert_eq!(
            KEY_DOCS.len(),
            env_key_paths().len(),
            "KEY_DOCS lists a key that no longer exists"
        );
    }

    #[test]
    fn printed_config_loads_back() {
        let config = AgentConfig {
            collector: Some("http://c:4318".into()),
            ..Default::default()
        };
        let file = write(&config.to_yaml());
        let loaded =
            AgentConfig::load(Some(file.path()), &[], &FlagOverrides::default()).expect("loads");
        assert_eq!(loaded, config);
    }
}
