//! Scores summed per shape and strategy, the issue #4 target check and the
//! markdown and JSON renderings.

use serde_json::{Value, json};

use super::score::{CPU_USD_PER_CORE_HOUR, RAM_USD_PER_GIB_HOUR};
use super::traces::Shape;
use super::{EvalOptions, Strategy};

/// Scores of one or more containers, summed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Containers (or HPA workloads) scored.
    pub containers: u64,
    /// Monthly list price of today's requests.
    pub current_usd_month: f64,
    /// Monthly list price saved by the proposal (negative: it costs more).
    pub savings_usd_month: f64,
    /// Rising crossings of the proposed memory limit.
    pub oom_events: u64,
    /// Containers with at least one such crossing (a leak drifting around
    /// its limit crosses many times; this counts it once).
    pub oom_containers: u64,
    /// Minutes CPU usage ran above the proposed request.
    pub throttled_minutes: u64,
    /// Minutes scored.
    pub minutes: u64,
}

impl Score {
    /// Adds `other` into this one.
    pub fn add(&mut self, other: &Score) {
        self.containers += other.containers;
        self.current_usd_month += other.current_usd_month;
        self.savings_usd_month += other.savings_usd_month;
        self.oom_events += other.oom_events;
        self.oom_containers += other.oom_containers;
        self.throttled_minutes += other.throttled_minutes;
        self.minutes += other.minutes;
    }

    /// Share of scored minutes above the CPU request.
    pub fn throttled_share(&self) -> f64 {
        if self.minutes == 0 {
            return 0.0;
        }
        self.throttled_minutes as f64 / self.minutes as f64
    }

    /// Savings as a share of today's cost.
    pub fn saved_share(&self) -> f64 {
        if self.current_usd_month <= 0.0 {
            return 0.0;
        }
        self.savings_usd_month / self.current_usd_month
    }

    fn json(&self) -> Value {
        json!({
            "containers": self.containers,
            "current_usd_month": self.current_usd_month,
            "savings_usd_month": self.savings_usd_month,
            "saved_share": self.saved_share(),
            "oom_events": self.oom_events,
            "oom_containers": self.oom_containers,
            "throttled_minutes": self.throttled_minutes,
            "throttled_share": self.throttled_share(),
            "minutes": self.minutes,
        })
    }
}

/// One shape under one strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The shape.
    pub shape: Shape,
    /// The strategy.
    pub strategy: Strategy,
    /// Its containers' scores, summed.
    pub score: Score,
}

/// Issue #4's target, metric by metric, on the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCheck {
    /// Tally saves at least what KRR-simple saves.
    pub savings: bool,
    /// Tally causes at most half KRR-simple's OOM events.
    pub oom: bool,
    /// Tally causes at most half KRR-simple's throttled minutes.
    pub throttle: bool,
}

impl TargetCheck {
    /// All three hold.
    pub fn met(&self) -> bool {
        self.savings && self.oom && self.throttle
    }
}

/// The harness's result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// What was run.
    pub options: EvalOptions,
    /// Shape × strategy, in shape then strategy order.
    pub rows: Vec<Row>,
}

impl EvalReport {
    /// The summed score of `shape` under `strategy`.
    pub fn score(&self, shape: Shape, strategy: Strategy) -> Option<&Score> {
        self.rows
            .iter()
            .find(|r| r.shape == shape && r.strategy == strategy)
            .map(|r| &r.score)
    }

    /// `strategy` summed over all shapes.
    pub fn total(&self, strategy: Strategy) -> Score {
        let mut total = Score::default();
        for row in self.rows.iter().filter(|r| r.strategy == strategy) {
            total.add(&row.score);
        }
        total
    }

    /// Issue #4's target on the totals, per metric.
    pub fn target(&self) -> TargetCheck {
        let krr = self.total(Strategy::KrrSimple);
        let tally = self.total(Strategy::Tally);
        TargetCheck {
            savings: tally.savings_usd_month >= krr.savings_usd_month,
            oom: tally.oom_events as f64 <= 0.5 * krr.oom_events as f64,
            throttle: tally.throttled_minutes as f64 <= 0.5 * krr.throttled_minutes as f64,
        }
    }

    /// Whether Tally meets issue #4's target on every metric.
    pub fn meets_target(&self) -> bool {
        self.target().met()
    }

    /// The per-shape table, the totals and the target check as markdown.
    pub fn markdown(&self) -> String {
        let header = "| Saved $/month | Saved % | OOM events | OOM-killed containers | Throttled min | Throttled % |\n";
        let rule = "|---:|---:|---:|---:|---:|---:|\n";
        let cells = |s: &Score| {
            format!(
                "| {:.2} | {:.1} | {} | {} | {} | {:.2} |\n",
                s.savings_usd_month,
                s.saved_share() * 100.0,
                s.oom_events,
                s.oom_containers,
                s.throttled_minutes,
                s.throttled_share() * 100.0
            )
        };
        let mut out = format!(
            "Seed {}, {} containers per shape, days 1-7 → days 8-14.\n\n| Shape | Strategy {header}|---|---{rule}",
            self.options.seed, self.options.containers_per_shape
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} {}",
                row.shape.name(),
                row.strategy.name(),
                cells(&row.score)
            ));
        }
        out.push_str(&format!("\nTotals:\n\n| Strategy {header}|---{rule}"));
        for strategy in Strategy::ALL {
            out.push_str(&format!(
                "| {} {}",
                strategy.name(),
                cells(&self.total(strategy))
            ));
        }
        let target = self.target();
        let word = |ok: bool| if ok { "met" } else { "missed" };
        out.push_str(&format!(
            "\nTarget (Tally vs KRR-simple): savings ≥ KRR {}; OOM events ≤ ½ KRR {}; throttled minutes ≤ ½ KRR {}.\n",
            word(target.savings),
            word(target.oom),
            word(target.throttle)
        ));
        out
    }

    /// Everything as JSON.
    pub fn to_json(&self) -> Value {
        let target = self.target();
        json!({
            "seed": self.options.seed,
            "containers_per_shape": self.options.containers_per_shape,
            "prices": {
                "cpu_usd_per_core_hour": CPU_USD_PER_CORE_HOUR,
                "ram_usd_per_gib_hour": RAM_USD_PER_GIB_HOUR,
                "hours_per_month": crate::HOURS_PER_MONTH,
            },
            "rows": self.rows.iter().map(|r| json!({
                "shape": r.shape.name(),
                "strategy": r.strategy.name(),
                "score": r.score.json(),
            })).collect::<Vec<_>>(),
            "totals": Strategy::ALL.iter().map(|s| json!({
                "strategy": s.name(),
                "score": self.total(*s).json(),
            })).collect::<Vec<_>>(),
            "target": {
                "savings": target.savings,
                "oom": target.oom,
                "throttle": target.throttle,
                "met": target.met(),
            },
        })
    }
}
