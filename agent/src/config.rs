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
use serde_yaml_ng::{Mapping, Value};

/// The only config version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Errors loading the configuration. Each names the key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The YAML (after overrides) does not fit the schema.
    #[error("invalid config{origin}: {message}")]
    Invalid {
        /// Where the bad value came from (file, env).
        origin: String,
        /// serde's message, which names the key.
        message: String,
    },
    /// A value parsed but is out of range.
    #[error("invalid config: {key} = {value:?}: {reason}")]
    Value {
        /// Dotted key path.
        key: &'static str,
        /// The offending value.
        value: String,
        /// Why it is wrong.
        reason: &'static str,
    },
}

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
fn default_kubernetes_mode() -> KubernetesMode {
    KubernetesMode::Auto
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
impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            mode: default_kubernetes_mode(),
            api_url: None,
            token_path: None,
            ca_path: None,
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
}

impl AgentConfig {
    /// Loads file → env → flags and validates.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &FlagOverrides,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let value: Value =
                    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
                        origin: format!(" file {}", path.display()),
                        message: e.to_string(),
                    })?;
                match value {
                    Value::Null => Value::Mapping(Mapping::new()),
                    other => other,
                }
            }
            None => Value::Mapping(Mapping::new()),
        };
        // Check the file alone first so its errors name the file.
        if let Some(path) = file {
            serde_yaml_ng::from_value::<AgentConfig>(tree.clone()).map_err(|e| {
                ConfigError::Invalid {
                    origin: format!(" file {}", path.display()),
                    message: e.to_string(),
                }
            })?;
        }
        let mut applied = Vec::new();
        for path in env_key_paths() {
            let name = env_name(&path);
            if let Some((_, raw)) = env.iter().find(|(key, _)| *key == name) {
                let value = serde_yaml_ng::from_str::<Value>(raw)
                    .ok()
                    .filter(|v| !v.is_mapping() && !v.is_sequence())
                    .unwrap_or_else(|| Value::String(raw.clone()));
                set_path(&mut tree, &path, value);
                applied.push(name);
            }
        }
        let mut config: AgentConfig =
            serde_yaml_ng::from_value(tree).map_err(|e| ConfigError::Invalid {
                origin: if applied.is_empty() {
                    String::new()
                } else {
                    format!(" (after env overrides {})", applied.join(", "))
                },
                message: e.to_string(),
            })?;
        if let Some(listen) = &flags.listen {
            config.listen = listen.clone();
        }
        if let Some(collector) = &flags.collector {
            config.collector = Some(collector.clone());
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
        "log.format",
        "auto (pretty on a terminal, JSON otherwise), json or pretty.",
    ),
    (
        "log.level",
        "tracing filter such as info or tally_agent=debug; RUST_LOG wins.",
    ),
];

/// The configuration reference page, generated from the defaults and
/// [`KEY_DOCS`] (`tally agent --config-reference`).
pub fn reference_markdown() -> String {
    let defaults = serde_yaml_ng::to_value(AgentConfig::default()).unwrap_or(Value::Null);
    let mut out = String::from(
        "# Agent configuration reference\n\n\
         Generated by `tally agent --config-reference`; a test fails when this file is stale.\n\n\
         Precedence: the YAML file (`--config`), then `TALLY_*` environment variables, then flags \
         (`--listen`, `--collector`). Unknown keys are errors. Durations take `ms`, `s`, `m` or `h`.\n\n\
         | Key | Environment | Default | Meaning |\n|---|---|---|---|\n",
    );
    for path in env_key_paths() {
        let key = path.join(".");
        let mut node = &defaults;
        for part in &path {
            node = node.get(part.as_str()).unwrap_or(&Value::Null);
        }
        let default = match node {
            Value::Null => "(unset)".to_owned(),
            Value::String(s) => s.clone(),
            other => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        let doc = KEY_DOCS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, d)| *d)
            .unwrap_or("");
        out.push_str(&format!(
            "| `{key}` | `{}` | `{default}` | {doc} |\n",
            env_name(&path)
        ));
    }
    out
}

/// Every overridable key path, from the defaults' shape.
pub fn env_key_paths() -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    if let Ok(tree) = serde_yaml_ng::to_value(AgentConfig::default()) {
        collect_leaves(&tree, &mut Vec::new(), &mut paths);
    }
    paths
}

/// `TALLY_` + upper-cased path joined by `_`.
pub fn env_name(path: &[String]) -> String {
    format!("TALLY_{}", path.join("_").to_uppercase())
}

fn collect_leaves(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if let Some(key) = key.as_str() {
                    prefix.push(key.to_owned());
                    collect_leaves(child, prefix, out);
                    prefix.pop();
                }
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn set_path(tree: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return;
        };
        node = map
            .entry(Value::String(key.clone()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(map) = node {
        map.insert(Value::String(last.clone()), value);
    }
}

/// Durations as humane text: `500ms`, `1s`, `2m`, `1h`.
pub mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Parses `<number><unit>` with unit `ms`, `s`, `m` or `h`.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 15s, 2m"))?;
        let seconds = match unit {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration {text:?}: unit must be ms, s, m or h"
                ));
            }
        };
        Ok(Duration::from_secs_f64(seconds))
    }

    /// The shortest exact text for a duration.
    pub fn format(duration: Duration) -> String {
        let millis = duration.as_millis();
        if !millis.is_multiple_of(1000) {
            format!("{millis}ms")
        } else if !millis.is_multiple_of(60_000) || millis == 0 {
            format!("{}s", millis / 1000)
        } else {
            format!("{}m", millis / 60_000)
        }
    }

    /// serde serializer.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*duration))
    }

    /// serde deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
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

    #[test]
    fn durations() {
        assert_eq!(
            duration_text::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(duration_text::parse("2m"), Ok(Duration::from_secs(120)));
        assert!(duration_text::parse("5").is_err());
        assert!(duration_text::parse("x s").is_err());
        assert_eq!(duration_text::format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text::format(Duration::from_secs(15)), "15s");
        assert_eq!(duration_text::format(Duration::from_secs(120)), "2m");
    }
}
