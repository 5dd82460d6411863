//! Collector configuration: a YAML file, `TALLY_COLLECTOR_*` environment
//! overrides, then flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use tally_config::ConfigError;
use tally_config::duration_text;

use crate::server::CollectorOptions;

/// Prefix of the collector's environment variables.
pub const ENV_PREFIX: &str = "TALLY_COLLECTOR_";

/// The collector's configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Config schema version; must be 1.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Address for OTLP ingest, the API and `/metrics`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Data directory (write-ahead log).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Largest request body, compressed or decompressed.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long hourly aggregates are kept.
    #[serde(default = "default_retention", with = "duration_text")]
    pub retention: Duration,
    /// How long raw points are kept for sparklines.
    #[serde(default = "default_raw_window", with = "duration_text")]
    pub raw_window: Duration,
    /// Most bytes of log segment files kept under `<data_dir>/logs` (the
    /// oldest segments go first).
    #[serde(default = "default_logs_max_bytes")]
    pub logs_max_bytes: u64,
    /// How long log records are kept.
    #[serde(default = "default_logs_retention", with = "duration_text")]
    pub logs_retention: Duration,
    /// OTLP/HTTP endpoint every accepted log request is forwarded to
    /// (`/v1/logs` appended when the URL has no path); unset: none.
    #[serde(default = "default_logs_forward_endpoint")]
    pub logs_forward_endpoint: Option<String>,
    /// Extra headers on forwarded requests, `Name: value` each (in the
    /// environment a comma-separated list).
    #[serde(
        default = "default_logs_forward_headers",
        deserialize_with = "tally_config::text_list"
    )]
    pub logs_forward_headers: Vec<String>,
    /// File holding a bearer token sent to the forward endpoint.
    #[serde(default = "default_logs_forward_token_file")]
    pub logs_forward_token_file: Option<PathBuf>,
    /// Timeout of one forwarded request.
    #[serde(default = "default_logs_forward_timeout", with = "duration_text")]
    pub logs_forward_timeout: Duration,
    /// Most bytes of log requests waiting to be forwarded; past it the
    /// oldest are dropped.
    #[serde(default = "default_logs_forward_queue_bytes")]
    pub logs_forward_queue_bytes: usize,
    /// File holding the ingest bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// File holding the read-API bearer token.
    #[serde(default)]
    pub read_token_file: Option<PathBuf>,
    /// Allow a non-loopback address without a token.
    #[serde(default)]
    pub insecure: bool,
    /// Time between store snapshots (one is also written on shutdown).
    #[serde(default = "default_snapshot_interval", with = "duration_text")]
    pub snapshot_interval: Duration,
    /// History sealed since the last snapshot that starts the next one
    /// early (bounds a backfill's memory); at least an eighth of the last
    /// snapshot.
    #[serde(default = "default_snapshot_hot_bytes")]
    pub snapshot_hot_bytes: usize,
    /// Decompressed request bytes in flight before requests get 429.
    #[serde(default = "default_max_inflight_bytes")]
    pub max_inflight_bytes: usize,
    /// Most series the store holds.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// PEM certificate chain for HTTPS (with `tls_key_file`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS (with `tls_cert_file`).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// The analyzer: window, schedule, thresholds, objectives, prices.
    #[serde(default)]
    pub analyzer: tally_analyzer::config::AnalyzerConfig,
}

fn default_version() -> u32 {
    1
}
fn default_listen() -> String {
    "127.0.0.1:4318".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/tally/collector")
}
fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_retention() -> Duration {
    Duration::from_secs(14 * 86_400)
}
fn default_logs_max_bytes() -> u64 {
    1 << 30
}
fn default_logs_retention() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_logs_forward_endpoint() -> Option<String> {
    None
}
fn default_logs_forward_headers() -> Vec<String> {
    Vec::new()
}
fn default_logs_forward_token_file() -> Option<PathBuf> {
    None
}
fn default_logs_forward_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_logs_forward_queue_bytes() -> usize {
    64 << 20
}

fn default_raw_window() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_snapshot_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_snapshot_hot_bytes() -> usize {
    32 << 20
}
fn default_max_inflight_bytes() -> usize {
    256 << 20
}
fn default_max_series() -> usize {
    5_000_000
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            version: default_version(),
            listen: default_listen(),
            data_dir: default_data_dir(),
            max_body_bytes: default_max_body_bytes(),
            retention: default_retention(),
            logs_max_bytes: default_logs_max_bytes(),
            logs_retention: default_logs_retention(),
            logs_forward_endpoint: default_logs_forward_endpoint(),
            logs_forward_headers: default_logs_forward_headers(),
            logs_forward_token_file: default_logs_forward_token_file(),
            logs_forward_timeout: default_logs_forward_timeout(),
            logs_forward_queue_bytes: default_logs_forward_queue_bytes(),
            raw_window: default_raw_window(),
            token_file: None,
            read_token_file: None,
            insecure: false,
            snapshot_interval: default_snapshot_interval(),
            snapshot_hot_bytes: default_snapshot_hot_bytes(),
            max_inflight_bytes: default_max_inflight_bytes(),
            max_series: default_max_series(),
            tls_cert_file: None,
            tls_key_file: None,
            analyzer: tally_analyzer::config::AnalyzerConfig::default(),
        }
    }
}

/// One line per key for the generated reference.
pub const KEY_DOCS: &[(&str, &str)] = &[
    ("version", "Config schema version; must be 1."),
    (
        "listen",
        "Address for OTLP/HTTP ingest, the JSON API and /metrics.",
    ),
    ("data_dir", "Data directory holding the write-ahead log."),
    (
        "max_body_bytes",
        "Largest request body accepted, compressed or decompressed (413 above).",
    ),
    ("retention", "How long hourly aggregates are kept."),
    ("raw_window", "How long raw points are kept for sparklines."),
    (
        "logs_max_bytes",
        "Most bytes of log segment files kept on disk under `<data_dir>/logs` (the oldest 16 MiB segments go first: tally_collector_log_bytes). Memory does not grow with it: /api/v1/logs reads the segments.",
    ),
    (
        "logs_retention",
        "How long log records are kept: a segment goes once its newest record is older.",
    ),
    (
        "logs_forward_endpoint",
        "OTLP/HTTP URL every accepted log request is re-sent to as protobuf (another collector, an OpenTelemetry Collector, Loki's OTLP endpoint); /v1/logs is appended when the URL has no path. Unset: no forwarding; this collector's own address is refused (a loop). Ingest never waits for it: retries (connection errors, 429, 5xx) back off exponentially, honouring Retry-After.",
    ),
    (
        "logs_forward_headers",
        "Extra headers on forwarded requests, `Name: value` each (a tenant header, an API key); a comma-separated list in the environment.",
    ),
    (
        "logs_forward_token_file",
        "File with a bearer token sent to logs_forward_endpoint (Authorization: Bearer); the token may also come from TALLY_COLLECTOR_LOGS_FORWARD_TOKEN.",
    ),
    (
        "logs_forward_timeout",
        "Timeout of one forwarded request (connecting included); a timeout is retried.",
    ),
    (
        "logs_forward_queue_bytes",
        "Most bytes of accepted log requests waiting to be forwarded (in memory; lost on restart); past it the oldest are dropped and counted in tally_collector_log_forward_dropped_records_total.",
    ),
    (
        "token_file",
        "File with the bearer token required to push (and to read without a read token).",
    ),
    (
        "read_token_file",
        "File with the bearer token required by the read API.",
    ),
    (
        "insecure",
        "Allow a non-loopback listen address without a token.",
    ),
    (
        "snapshot_interval",
        "Time between store snapshots; a restart loads the newest one and replays only the write-ahead log written since. One is also written on shutdown. 5m keeps a 1,000-node restart under 10 s. Each snapshot holds ingest while it writes the file (about 1 s at 200 nodes: tally_collector_snapshot_lock_seconds); history it wrote is then read from it instead of kept in memory.",
    ),
    (
        "snapshot_hot_bytes",
        "History sealed since the last snapshot (tally_collector_store_hot_bytes) that starts the next snapshot before snapshot_interval: a backfill seals hours of history a second, and until a snapshot makes it cold it is held in memory. The budget is this or an eighth of the last snapshot's size, whichever is larger, so a large store (whose snapshots take longer) is not snapshotted back to back. At least 1 MiB.",
    ),
    (
        "max_inflight_bytes",
        "Decompressed request bytes being decoded, logged and applied at once; beyond it requests get 429 with Retry-After (backpressure). At least max_body_bytes.",
    ),
    (
        "max_series",
        "Most series the store holds; points of new series beyond it are refused in a partial success and counted, so a label-cardinality explosion cannot exhaust memory.",
    ),
    (
        "tls_cert_file",
        "PEM certificate chain; with tls_key_file the collector serves HTTPS (rustls) instead of HTTP.",
    ),
    ("tls_key_file", "PEM private key matching tls_cert_file."),
    (
        "analyzer.window_seconds",
        "History the analyzer reads for costs and recommendations, seconds (default 7 days; at least 3600). Costs a month are the window's rate × 730 h; while the store holds less than the window (a new install), the rate is over the hours it holds.",
    ),
    (
        "analyzer.interval_seconds",
        "Time between scheduled analyses; POST /api/v1/analyze runs one at once.",
    ),
    (
        "analyzer.gpu_idle_seconds",
        "How long a GPU must stay idle (utilization, power and tokens) before it is reported.",
    ),
    (
        "analyzer.gpu_idle_utilization",
        "Highest utilization over the idle window that still counts as idle (0..1).",
    ),
    (
        "analyzer.gpu_idle_power_factor",
        "Mean power, as a multiple of the GPU model's idle draw, at or below which a GPU is idle whatever its utilization reads (a spin kernel reads busy at idle power).",
    ),
    (
        "analyzer.min_monthly_savings",
        "Smallest saving a month a recommendation must bring (raises that remove a risk are shown anyway).",
    ),
    (
        "analyzer.min_change_ratio",
        "Smallest change of a request, as a share of it, that gets a card (0.1): smaller ones are churn, since each change restarts pods.",
    ),
    (
        "analyzer.cpu_share_above",
        "Target share of time CPU usage may exceed the proposed request (0.02: p98).",
    ),
    (
        "analyzer.memory_risk_week",
        "Target probability that the working set passes the proposed memory within a week (0.01).",
    ),
    (
        "analyzer.default_slo.ttft_p95_seconds",
        "p95 time to first token a model service must keep for GPU changes to be proposed (per service under analyzer.slo.<namespace>/<workload>).",
    ),
    (
        "analyzer.default_slo.itl_p95_seconds",
        "p95 inter-token latency a model service must keep for GPU changes to be proposed.",
    ),
    (
        "analyzer.opencost_metrics",
        "Also export OpenCost's metric names (node_total_hourly_cost, container_cpu_allocation, …) on /metrics.",
    ),
    (
        "analyzer.pricing.currency",
        "Currency every amount is shown in; catalog prices are converted with exchange_rate.",
    ),
    (
        "analyzer.pricing.exchange_rate",
        "Multiplies every catalog price (USD) into the currency; override prices are taken as already in it.",
    ),
    (
        "analyzer.pricing.discount",
        "Negotiated discount on every node price (0..1).",
    ),
    (
        "analyzer.pricing.cpu_core_hourly",
        "Price of a vCPU-hour for nodes the catalog does not know (custom and on-prem clusters).",
    ),
    (
        "analyzer.pricing.memory_gib_hourly",
        "Price of a GiB-hour of memory for nodes the catalog does not know.",
    ),
    (
        "analyzer.pricing.egress_discount",
        "Discount on network transfer prices (0..1).",
    ),
];

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--read-token-file`.
    pub read_token_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
}

impl CollectorConfig {
    /// Loads file → env → flags and validates.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &CollectorFlags,
    ) -> Result<Self, ConfigError> {
        let mut config: CollectorConfig = tally_config::load_layers(file, env, ENV_PREFIX)?;
        if let Some(listen) = &flags.listen {
            config.listen = listen.clone();
        }
        if let Some(dir) = &flags.data_dir {
            config.data_dir = dir.clone();
        }
        if flags.token_file.is_some() {
            config.token_file = flags.token_file.clone();
        }
        if flags.read_token_file.is_some() {
            config.read_token_file = flags.read_token_file.clone();
        }
        config.insecure |= flags.insecure;
        if flags.tls_cert_file.is_some() {
            config.tls_cert_file = flags.tls_cert_file.clone();
        }
        if flags.tls_key_file.is_some() {
            config.tls_key_file = flags.tls_key_file.clone();
        }
        if config.version != 1 {
            return Err(ConfigError::Value {
                key: "version",
                value: config.version.to_string(),
                reason: "this build reads config version 1",
            });
        }
        if config.max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                key: "max_body_bytes",
                value: config.max_body_bytes.to_string(),
                reason: "must be at least 1024",
            });
        }
        if config.max_inflight_bytes < config.max_body_bytes {
            return Err(ConfigError::Value {
                key: "max_inflight_bytes",
                value: config.max_inflight_bytes.to_string(),
                reason: "must be at least max_body_bytes, or a large request could never be admitted",
            });
        }
        if config.tls_cert_file.is_some() != config.tls_key_file.is_some() {
            return Err(ConfigError::Value {
                key: "tls_cert_file",
                value: format!(
                    "{:?} / tls_key_file {:?}",
                    config.tls_cert_file, config.tls_key_file
                ),
                reason: "set both the certificate and the key, or neither",
            });
        }
        if config.snapshot_hot_bytes < 1 << 20 {
            return Err(ConfigError::Value {
                key: "snapshot_hot_bytes",
                value: config.snapshot_hot_bytes.to_string(),
                reason: "must be at least 1048576 (1 MiB)",
            });
        }
        if config.max_series == 0 {
            return Err(ConfigError::Value {
                key: "max_series",
                value: "0".to_owned(),
                reason: "must be at least 1",
            });
        }
        if config.logs_max_bytes < 1 << 20 {
            return Err(ConfigError::Value {
                key: "logs_max_bytes",
                value: config.logs_max_bytes.to_string(),
                reason: "must be at least 1048576 (1 MiB)",
            });
        }
        if let Some(endpoint) = &config.logs_forward_endpoint
            && crate::forward::endpoint_url(endpoint).is_err()
        {
            return Err(ConfigError::Value {
                key: "logs_forward_endpoint",
                value: endpoint.clone(),
                reason: "must be an http:// or https:// URL with a host",
            });
        }
        if let Some(bad) = config
            .logs_forward_headers
            .iter()
            .find(|h| crate::forward::parse_header(h).is_err())
        {
            return Err(ConfigError::Value {
                key: "logs_forward_headers",
                value: bad.clone(),
                reason: "each header must be `Name: value` with a valid name and value",
            });
        }
        if config.logs_forward_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: "logs_forward_timeout",
                value: duration_text::format(config.logs_forward_timeout),
                reason: "must be more than 0",
            });
        }
        if config.logs_forward_queue_bytes < config.max_body_bytes {
            return Err(ConfigError::Value {
                key: "logs_forward_queue_bytes",
                value: config.logs_forward_queue_bytes.to_string(),
                reason: "must be at least max_body_bytes, or a large request could never be queued",
            });
        }
        if config.retention < Duration::from_secs(3600) {
            return Err(ConfigError::Value {
                key: "retention",
                value: duration_text::format(config.retention),
                reason: "must be at least 1h",
            });
        }
        Ok(config)
    }

    /// Options for [`crate::server::Collector::open`], reading the token
    /// files (a token may also come from `TALLY_COLLECTOR_TOKEN`).
    pub fn options(&self, env: &[(String, String)]) -> Result<CollectorOptions, ConfigError> {
        let token = |file: &Option<PathBuf>,
                     key: &'static str,
                     var: &str|
         -> Result<Option<String>, ConfigError> {
            if let Some(path) = file {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return Err(ConfigError::Value {
                        key,
                        value: path.display().to_string(),
                        reason: "the token file is empty",
                    });
                }
                return Ok(Some(text));
            }
            Ok(env
                .iter()
                .find(|(k, v)| k == var && !v.is_empty())
                .map(|(_, v)| v.clone()))
        };
        Ok(CollectorOptions {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            max_body_bytes: self.max_body_bytes,
            retention: self.retention,
            raw_window: self.raw_window,
            logs_max_bytes: self.logs_max_bytes,
            logs_retention: self.logs_retention,
            logs_forward: match &self.logs_forward_endpoint {
                None => None,
                Some(endpoint) => {
                    let mut headers = Vec::new();
                    for header in &self.logs_forward_headers {
                        headers.push(crate::forward::parse_header(header).map_err(|_| {
                            ConfigError::Value {
                                key: "logs_forward_headers",
                                value: header.clone(),
                                reason: "each header must be `Name: value`",
                            }
                        })?);
                    }
                    if let Some(bearer) = token(
                        &self.logs_forward_token_file,
                        "logs_forward_token_file",
                        "TALLY_COLLECTOR_LOGS_FORWARD_TOKEN",
                    )? {
                        headers.push(("Authorization".to_owned(), format!("Bearer {bearer}")));
                    }
                    Some(crate::forward::ForwardOptions {
                        endpoint: endpoint.clone(),
                        headers,
                        timeout: self.logs_forward_timeout,
                        queue_bytes: self.logs_forward_queue_bytes,
                    })
                }
            },
            token: token(&self.token_file, "token_file", "TALLY_COLLECTOR_TOKEN")?,
            read_token: token(
                &self.read_token_file,
                "read_token_file",
                "TALLY_COLLECTOR_READ_TOKEN",
            )?,
            insecure: self.insecure,
            snapshot_interval: self.snapshot_interval,
            snapshot_hot_bytes: self.snapshot_hot_bytes,
            max_inflight_bytes: self.max_inflight_bytes,
            max_series: self.max_series,
            tls: self.tls_cert_file.clone().zip(self.tls_key_file.clone()),
            analyzer: self.analyzer.clone(),
        })
    }
}

/// The reference page (`tally collector --config-reference`).
pub fn reference_markdown() -> String {
    tally_config::reference_markdown::<CollectorConfig>(
        "Collector configuration reference",
        "tally collector --config-reference",
        ENV_PREFIX,
        "`--listen`, `--data-dir`, `--token-file`, `--read-token-file`, `--insecure`",
        KEY_DOCS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_errors() {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(
            file.path(),
            "version: 1\nretention: 7d\nlisten: 127.0.0.1:1\n",
        )
        .expect("write");
        let env = vec![(
            "TALLY_COLLECTOR_LISTEN".to_owned(),
            "127.0.0.1:2".to_owned(),
        )];
        let config = CollectorConfig::load(Some(file.path()), &env, &CollectorFlags::default())
            .expect("loads");
        assert_eq!(config.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.listen, "127.0.0.1:2");
        let flags = CollectorFlags {
            listen: Some("127.0.0.1:3".into()),
            ..Default::default()
        };
        assert_eq!(
            CollectorConfig::load(Some(file.path()), &env, &flags)
                .expect("loads")
                .listen,
            "127.0.0.1:3"
        );

        std::fs::write(file.path(), "retension: 7d\n").expect("write");
        let error = CollectorConfig::load(Some(file.path()), &[], &CollectorFlags::default())
            .expect_err("typo");
        assert!(error.to_string().contains("retension"), "{error}");
        let env = vec![("TALLY_COLLECTOR_RETENTION".to_owned(), "10m".to_owned())];
        let error =
            CollectorConfig::load(None, &env, &CollectorFlags::default()).expect_err("too short");
        assert!(error.to_string().contains("retention = \"10m\""), "{error}");
        let env = vec![(
            "TALLY_COLLECTOR_SNAPSHOT_HOT_BYTES".to_owned(),
            "4096".to_owned(),
        )];
        let error =
            CollectorConfig::load(None, &env, &CollectorFlags::default()).expect_err("too small");
        assert!(error.to_string().contains("snapshot_hot_bytes"), "{error}");
    }

    #[test]
    fn tokens_come_from_files_or_env() {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), "s3cret\n").expect("write");
        let config = CollectorConfig {
            token_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let env = vec![("TALLY_COLLECTOR_READ_TOKEN".to_owned(), "reader".to_owned())];
        let options = config.options(&env).expect("options");
        assert_eq!(options.token.as_deref(), Some("s3cret"));
        assert_eq!(options.read_token.as_deref(), Some("reader"));
        std::fs::write(file.path(), "\n").expect("write");
        assert!(config.options(&[]).is_err());
    }

    #[test]
    fn log_forwarding_comes_from_the_environment_and_is_checked() {
        let token = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(token.path(), "fwd-secret\n").expect("write");
        let env = vec![
            (
                "TALLY_COLLECTOR_LOGS_FORWARD_ENDPOINT".to_owned(),
                "http://backend:4318".to_owned(),
            ),
            (
                "TALLY_COLLECTOR_LOGS_FORWARD_HEADERS".to_owned(),
                "X-Scope-OrgID: tenant-1, X-Team: ml".to_owned(),
            ),
            (
                "TALLY_COLLECTOR_LOGS_FORWARD_TOKEN_FILE".to_owned(),
                token.path().display().to_string(),
            ),
            (
                "TALLY_COLLECTOR_LOGS_FORWARD_TIMEOUT".to_owned(),
                "3s".to_owned(),
            ),
        ];
        let config = CollectorConfig::load(None, &env, &CollectorFlags::default()).expect("loads");
        let forward = config
            .options(&env)
            .expect("options")
            .logs_forward
            .expect("forwarding on");
        assert_eq!(forward.endpoint, "http://backend:4318");
        assert_eq!(forward.timeout, Duration::from_secs(3));
        assert_eq!(forward.queue_bytes, 64 << 20);
        assert_eq!(
            forward.headers,
            vec![
                ("X-Scope-OrgID".to_owned(), "tenant-1".to_owned()),
                ("X-Team".to_owned(), "ml".to_owned()),
                ("Authorization".to_owned(), "Bearer fwd-secret".to_owned()),
            ]
        );
        assert!(
            CollectorConfig::default()
                .options(&[])
                .expect("options")
                .logs_forward
                .is_none()
        );
        for (key, value) in [
            ("TALLY_COLLECTOR_LOGS_FORWARD_ENDPOINT", "backend:4318"),
            ("TALLY_COLLECTOR_LOGS_FORWARD_HEADERS", "no colon"),
            ("TALLY_COLLECTOR_LOGS_FORWARD_QUEUE_BYTES", "1024"),
            ("TALLY_COLLECTOR_LOGS_MAX_BYTES", "1000"),
        ] {
            let env = vec![(key.to_owned(), value.to_owned())];
            let error =
                CollectorConfig::load(None, &env, &CollectorFlags::default()).expect_err("refused");
            let name = key.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
            assert!(error.to_string().contains(&name), "{error}");
        }
    }

    #[test]
    fn every_key_is_documented() {
        assert_eq!(
            tally_config::undocumented::<CollectorConfig>(KEY_DOCS),
            Vec::<String>::new()
        );
    }
}
