//! `tally top`'s configuration file (`--config`, YAML). Flags and the
//! environment override it.

use std::path::Path;

use serde::Deserialize;

use crate::error::TuiError;
use crate::theme::Thresholds;

/// The version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// The dashboard's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    /// Format version; must be 1.
    pub version: u32,
    /// Collector base URL.
    #[serde(default)]
    pub collector: Option<String>,
    /// Seconds between refreshes (at least 2, as k9s).
    #[serde(default = "default_refresh_seconds")]
    pub refresh_seconds: f64,
    /// Colour thresholds.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// ASCII only: no block or box-drawing characters.
    #[serde(default)]
    pub ascii: bool,
    /// No colours (as `NO_COLOR`).
    #[serde(default)]
    pub no_color: bool,
}

fn default_refresh_seconds() -> f64 {
    2.0
}

impl Default for TopConfig {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            collector: None,
            refresh_seconds: default_refresh_seconds(),
            thresholds: Thresholds::default(),
            ascii: false,
            no_color: false,
        }
    }
}

impl TopConfig {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Self, TuiError> {
        let error = |message: String| TuiError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let config: TopConfig = serde_yaml_ng::from_str(&text).map_err(|e| error(e.to_string()))?;
        if config.version != CONFIG_VERSION {
            return Err(error(format!(
                "version {} is not supported (this build reads version {CONFIG_VERSION})",
                config.version
            )));
        }
        for (name, bounds) in [
            ("gpu_utilization", config.thresholds.gpu_utilization),
            ("efficiency", config.thresholds.efficiency),
            ("memory", config.thresholds.memory),
            ("monthly_cost", config.thresholds.monthly_cost),
        ] {
            if bounds.low > bounds.high || bounds.low.is_nan() || bounds.high.is_nan() {
                return Err(error(format!(
                    "thresholds.{name}: low ({}) is above high ({})",
                    bounds.low, bounds.high
                )));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<TopConfig, TuiError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("top.yaml");
        std::fs::write(&path, text).expect("write");
        TopConfig::load(&path)
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = load("version: 1\nthresholds:\n  gpu_utilization: {low: 0.2, high: 0.8}\n")
            .expect("config");
        assert_eq!(config.thresholds.gpu_utilization.low, 0.2);
        assert_eq!(
            config.thresholds.efficiency,
            Thresholds::default().efficiency
        );
        assert_eq!(config.refresh_seconds, 2.0);
    }

    #[test]
    fn unknown_keys_wrong_versions_and_inverted_bounds_are_refused() {
        let error = load("version: 1\ncolour: red\n").expect_err("unknown key");
        assert!(error.to_string().contains("colour"), "{error}");
        assert!(load("version: 2\n").is_err());
        let error = load("version: 1\nthresholds:\n  memory: {low: 0.9, high: 0.5}\n")
            .expect_err("inverted");
        assert!(error.to_string().contains("thresholds.memory"), "{error}");
    }
}
