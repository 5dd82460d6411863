//! Colours from thresholds, degraded for `NO_COLOR` and ASCII terminals.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// What a cell's figure means, independent of how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Normal,
    /// Healthy: well used, objective met.
    Good,
    /// Worth a look.
    Warn,
    /// Money wasted or an objective missed.
    Bad,
    /// Absent or unimportant.
    Dim,
    /// Headings and selected items.
    Accent,
}

/// A low and a high bound, as in nvitop's `--gpu-util-thresh 10 75`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Below this (a share, 0..1; dollars for costs) the figure is low.
    pub low: f64,
    /// At or above this it is high.
    pub high: f64,
}

/// The thresholds that colour cells (`tally top --config`, `thresholds:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// GPU utilization: red below `low` (idle money), green from `high`.
    #[serde(default = "default_gpu_utilization")]
    pub gpu_utilization: Bounds,
    /// Usage over request (p95): red below `low` (oversized), yellow above
    /// `high` (close to the request).
    #[serde(default = "default_efficiency")]
    pub efficiency: Bounds,
    /// Memory used over total: yellow from `low`, red from `high`.
    #[serde(default = "default_memory")]
    pub memory: Bounds,
    /// Monthly dollars of a row: yellow from `low`, red from `high`.
    #[serde(default = "default_monthly_cost")]
    pub monthly_cost: Bounds,
}

fn default_gpu_utilization() -> Bounds {
    Bounds {
        low: 0.10,
        high: 0.75,
    }
}
fn default_efficiency() -> Bounds {
    Bounds {
        low: 0.30,
        high: 0.90,
    }
}
fn default_memory() -> Bounds {
    Bounds {
        low: 0.80,
        high: 0.95,
    }
}
fn default_monthly_cost() -> Bounds {
    Bounds {
        low: 500.0,
        high: 2000.0,
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            gpu_utilization: default_gpu_utilization(),
            efficiency: default_efficiency(),
            memory: default_memory(),
            monthly_cost: default_monthly_cost(),
        }
    }
}

impl Thresholds {
    /// GPU utilization: idle is the waste.
    pub fn gpu_utilization(&self, value: Option<f64>) -> Tone {
        match value {
            None => Tone::Dim,
            Some(v) if v < self.gpu_utilization.low => Tone::Bad,
            Some(v) if v >= self.gpu_utilization.high => Tone::Good,
            Some(_) => Tone::Warn,
        }
    }

    /// Usage over request.
    pub fn efficiency(&self, value: Option<f64>) -> Tone {
        match value {
            None => Tone::Dim,
            Some(v) if v < self.efficiency.low => Tone::Bad,
            Some(v) if v > self.efficiency.high => Tone::Warn,
            Some(_) => Tone::Good,
        }
    }

    /// Memory used over total.
    pub fn memory(&self, value: Option<f64>) -> Tone {
        match value {
            None => Tone::Dim,
            Some(v) if v >= self.memory.high => Tone::Bad,
            Some(v) if v >= self.memory.low => Tone::Warn,
            Some(_) => Tone::Normal,
        }
    }

    /// A monthly amount.
    pub fn monthly_cost(&self, value: Option<f64>) -> Tone {
        match value {
            None => Tone::Dim,
            Some(v) if v >= self.monthly_cost.high => Tone::Bad,
            Some(v) if v >= self.monthly_cost.low => Tone::Warn,
            Some(_) => Tone::Normal,
        }
    }
}

/// How tones are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// Colours on (off under `NO_COLOR` or `--no-color`).
    pub color: bool,
    /// Block and box-drawing characters (off with `--ascii`).
    pub unicode: bool,
}

impl Palette {
    /// From the environment and flags: `NO_COLOR` set to anything
    /// non-empty turns colours off (<https://no-color.org>).
    pub fn detect(no_color_flag: bool, ascii: bool) -> Self {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !(no_color_flag || no_color_env),
            unicode: !ascii,
        }
    }

    /// The style of a tone.
    pub fn style(&self, tone: Tone) -> Style {
        if !self.color {
            // Without colour only the alarming figures stand out.
            return match tone {
                Tone::Bad | Tone::Accent => Style::new().add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
        }
        match tone {
            Tone::Normal => Style::new(),
            Tone::Good => Style::new().fg(Color::Green),
            Tone::Warn => Style::new().fg(Color::Yellow),
            Tone::Bad => Style::new().fg(Color::Red),
            Tone::Dim => Style::new().fg(Color::DarkGray),
            Tone::Accent => Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        }
    }

    /// The selected row.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// A banner: simulated data, stale data, errors.
    pub fn banner(&self, tone: Tone) -> Style {
        if !self.color {
            return Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD);
        }
        let background = match tone {
            Tone::Bad => Color::Red,
            Tone::Warn => Color::Yellow,
            Tone::Good => Color::Green,
            _ => Color::Blue,
        };
        Style::new()
            .fg(Color::Black)
            .bg(background)
            .add_modifier(Modifier::BOLD)
    }

    /// The separator between breadcrumbs and in footers.
    pub fn separator(&self) -> &'static str {
        if self.unicode { " › " } else { " > " }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_classify_both_ends() {
        let t = Thresholds::default();
        assert_eq!(t.gpu_utilization(Some(0.05)), Tone::Bad);
        assert_eq!(t.gpu_utilization(Some(0.5)), Tone::Warn);
        assert_eq!(t.gpu_utilization(Some(0.9)), Tone::Good);
        assert_eq!(t.gpu_utilization(None), Tone::Dim);
        assert_eq!(t.efficiency(Some(0.1)), Tone::Bad);
        assert_eq!(t.efficiency(Some(0.95)), Tone::Warn);
        assert_eq!(t.memory(Some(0.97)), Tone::Bad);
        assert_eq!(t.monthly_cost(Some(2500.0)), Tone::Bad);
    }

    #[test]
    fn no_color_keeps_alarms_visible() {
        let p = Palette {
            color: false,
            unicode: true,
        };
        assert_eq!(p.style(Tone::Good), Style::new());
        assert!(p.style(Tone::Bad).add_modifier.contains(Modifier::BOLD));
    }
}
