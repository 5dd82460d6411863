//! The analyzer's settings: the `analyzer` section of the collector's
//! configuration file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pricing::PricingOverrides;
use crate::rightsizing::Policy;

/// Analyzer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerConfig {
    /// History the recommendations read, seconds (default 7 days).
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// Time between scheduled analyses, seconds.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// How long a GPU must stay idle to be reported, seconds.
    #[serde(default = "default_gpu_idle_seconds")]
    pub gpu_idle_seconds: u64,
    /// Utilization below which a GPU counts as idle (0..1).
    #[serde(default = "default_gpu_idle_utilization")]
    pub gpu_idle_utilization: f64,
    /// Power, as a multiple of the GPU model's idle draw, below which a
    /// GPU counts as idle whatever its utilization says (a spin kernel
    /// reads 100 % busy at idle power).
    #[serde(default = "default_gpu_idle_power_factor")]
    pub gpu_idle_power_factor: f64,
    /// Smallest saving a recommendation must bring, per month.
    #[serde(default = "default_min_monthly_savings")]
    pub min_monthly_savings: f64,
    /// Smallest change of a request, as a share of it, worth a card
    /// (smaller ones are churn: each change restarts pods).
    #[serde(default = "default_min_change_ratio")]
    pub min_change_ratio: f64,
    /// Target share of time CPU usage may exceed the request.
    #[serde(default = "default_cpu_share_above")]
    pub cpu_share_above: f64,
    /// Target probability that memory passes the proposal within a week.
    #[serde(default = "default_memory_risk_week")]
    pub memory_risk_week: f64,
    /// Latency objectives per model service (`namespace/workload`).
    #[serde(default)]
    pub slo: BTreeMap<String, LatencySlo>,
    /// Objective for services without their own entry.
    #[serde(default)]
    pub default_slo: LatencySlo,
    /// Also export OpenCost's metric names (`node_total_hourly_cost`,
    /// `container_cpu_allocation`, …) so its dashboards work unchanged.
    #[serde(default)]
    pub opencost_metrics: bool,
    /// Prices: custom, negotiated, another currency.
    #[serde(default)]
    pub pricing: PricingOverrides,
}

/// A model service's latency objective, on p95.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySlo {
    /// p95 time to first token, seconds.
    #[serde(default = "default_ttft_seconds")]
    pub ttft_p95_seconds: f64,
    /// p95 inter-token latency, seconds.
    #[serde(default = "default_itl_seconds")]
    pub itl_p95_seconds: f64,
}

fn default_window_seconds() -> u64 {
    7 * 86_400
}
fn default_interval_seconds() -> u64 {
    300
}
fn default_gpu_idle_seconds() -> u64 {
    3600
}
fn default_gpu_idle_utilization() -> f64 {
    0.05
}
fn default_gpu_idle_power_factor() -> f64 {
    1.5
}
fn default_min_monthly_savings() -> f64 {
    1.0
}
fn default_min_change_ratio() -> f64 {
    0.1
}
fn default_cpu_share_above() -> f64 {
    Policy::default().cpu_share_above
}
fn default_memory_risk_week() -> f64 {
    Policy::default().memory_risk_week
}
fn default_ttft_seconds() -> f64 {
    1.0
}
fn default_itl_seconds() -> f64 {
    0.1
}

impl Default for LatencySlo {
    fn default() -> Self {
        LatencySlo {
            ttft_p95_seconds: default_ttft_seconds(),
            itl_p95_seconds: default_itl_seconds(),
        }
    }
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            window_seconds: default_window_seconds(),
            interval_seconds: default_interval_seconds(),
            gpu_idle_seconds: default_gpu_idle_seconds(),
            gpu_idle_utilization: default_gpu_idle_utilization(),
            gpu_idle_power_factor: default_gpu_idle_power_factor(),
            min_monthly_savings: default_min_monthly_savings(),
            min_change_ratio: default_min_change_ratio(),
            cpu_share_above: default_cpu_share_above(),
            memory_risk_week: default_memory_risk_week(),
            slo: BTreeMap::new(),
            default_slo: LatencySlo::default(),
            opencost_metrics: false,
            pricing: PricingOverrides::default(),
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid analyzer config: {key} = {value}: {reason}")]
pub struct ConfigError {
    /// Dotted key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

impl AnalyzerConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let share = |key: &'static str, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(ConfigError {
                    key,
                    value: value.to_string(),
                    reason: "must be between 0 and 1",
                })
            }
        };
        share("analyzer.cpu_share_above", self.cpu_share_above)?;
        share("analyzer.memory_risk_week", self.memory_risk_week)?;
        share("analyzer.gpu_idle_utilization", self.gpu_idle_utilization)?;
        share("analyzer.min_change_ratio", self.min_change_ratio)?;
        if self.window_seconds < 3600 {
            return Err(ConfigError {
                key: "analyzer.window_seconds",
                value: self.window_seconds.to_string(),
                reason: "must be at least 3600",
            });
        }
        if self.interval_seconds == 0 {
            return Err(ConfigError {
                key: "analyzer.interval_seconds",
                value: "0".into(),
                reason: "must be positive",
            });
        }
        Ok(())
    }

    /// The right-sizing policy these settings give.
    pub fn policy(&self) -> Policy {
        Policy {
            cpu_share_above: self.cpu_share_above,
            memory_risk_week: self.memory_risk_week,
            ..Policy::default()
        }
    }

    /// The latency objective of `service` (`namespace/workload`).
    pub fn slo_for(&self, service: &str) -> &LatencySlo {
        self.slo.get(service).unwrap_or(&self.default_slo)
    }
}
