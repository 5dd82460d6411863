//! The analyzer inside the collector: on a schedule (and on demand) the
//! store is read into a [`FleetSnapshot`](tally_analyzer::input::FleetSnapshot)
//! under the lock, analysed outside it, and the report is kept for the
//! API and `/metrics`.

pub mod api;
pub mod extract;
pub mod metrics;
pub mod volumes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tally_analyzer::config::AnalyzerConfig;
use tally_analyzer::pricing::{PriceBook, PricingError};
use tally_analyzer::recommend::{self, AnalyzeError, Report};

use crate::store::Store;

/// A finished analysis with its time.
#[derive(Debug)]
pub struct Finished {
    /// The report.
    pub report: Report,
    /// When it finished, ns since the epoch.
    pub at_ns: u64,
    /// How long the extraction held the store.
    pub extract: Duration,
    /// How long the analysis took after it.
    pub analyze: Duration,
}

/// The analyzer's state.
#[derive(Debug)]
pub struct Analysis {
    config: AnalyzerConfig,
    prices: PriceBook,
    latest: Mutex<Option<Arc<Finished>>>,
    /// One analysis at a time.
    running: Mutex<()>,
    runs: AtomicU64,
    errors: AtomicU64,
}

/// Why the analyzer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] tally_analyzer::config::ConfigError),
    /// The price catalog or its overrides are unusable.
    #[error(transparent)]
    Pricing(#[from] PricingError),
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Analysis {
    /// Loads the price catalog with the configured overrides and logs
    /// every implausible price once.
    pub fn new(config: AnalyzerConfig) -> Result<Analysis, AnalysisError> {
        config.validate()?;
        let prices = PriceBook::builtin()?.with_overrides(&config.pricing)?;
        for warning in prices.sanity_check() {
            tracing::warn!(subject = %warning.subject, hourly = warning.hourly, "implausible price: {}", warning.message);
        }
        Ok(Analysis {
            config,
            prices,
            latest: Mutex::new(None),
            running: Mutex::new(()),
            runs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// Settings.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// Prices.
    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }

    /// Time between scheduled runs.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.config.interval_seconds.max(1))
    }

    /// The newest report, if any run finished.
    pub fn latest(&self) -> Option<Arc<Finished>> {
        self.latest.lock().ok().and_then(|l| l.clone())
    }

    /// Runs one analysis ending now. `with_store` lends the store for
    /// the extraction only.
    pub fn run(
        &self,
        with_store: impl FnOnce(
            &dyn Fn(&Store) -> tally_analyzer::input::FleetSnapshot,
        ) -> tally_analyzer::input::FleetSnapshot,
    ) -> Result<Arc<Finished>, AnalyzeError> {
        let _one = self.running.lock();
        let to_ns = now_ns();
        let span = extract::Span {
            from_ns: to_ns.saturating_sub(self.config.window_seconds * 1_000_000_000),
            to_ns,
            idle_from_ns: to_ns.saturating_sub(self.config.gpu_idle_seconds * 1_000_000_000),
        };
        let started = Instant::now();
        let snapshot = with_store(&|store| extract::extract(store, span));
        let extracted = started.elapsed();
        let result = recommend::analyze(&snapshot, &self.config, &self.prices);
        self.runs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(report) => {
                let finished = Arc::new(Finished {
                    report,
                    at_ns: now_ns(),
                    extract: extracted,
                    analyze: started.elapsed() - extracted,
                });
                tracing::debug!(
                    containers = snapshot.containers.len(),
                    recommendations = finished.report.recommendations.len(),
                    extract_ms = extracted.as_millis() as u64,
                    analyze_ms = finished.analyze.as_millis() as u64,
                    "analysis finished"
                );
                if let Ok(mut latest) = self.latest.lock() {
                    *latest = Some(Arc::clone(&finished));
                }
                Ok(finished)
            }
            Err(error) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "analysis failed");
                Err(error)
            }
        }
    }

    /// Runs finished and failed.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.runs.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ingest::points::{self, TimeWindow};
    use crate::simulate::Fleet;
    use crate::store::StoreLimits;
    use tally_analyzer::recommendation::Kind;

    const HOUR_NS: u64 = 3_600_000_000_000;

    /// A store holding `hours` of a simulated fleet of `nodes` nodes
    /// (seed 7) at a 10-minute step, and the end time.
    pub(crate) fn simulated_store(nodes: usize, hours: u64) -> (Store, u64) {
        simulated_store_with(nodes, hours, 600, 14)
    }

    /// `hours` of a simulated fleet (seed 7) at `step_seconds` steps in a
    /// store keeping `retention_days`, and the end time.
    pub(crate) fn simulated_store_with(
        nodes: usize,
        hours: u64,
        step_seconds: u64,
        retention_days: u64,
    ) -> (Store, u64) {
        let t0 = 1_800_000_000_000_000_000;
        let mut store = Store::new(StoreLimits {
            retention_ns: retention_days * 24 * HOUR_NS,
            raw_window_ns: 6 * HOUR_NS,
            raw_points: 1440,
            log_records: 10,
            max_series: 1_000_000,
        });
        let mut fleet = Fleet::new(nodes, 7, t0);
        let step = Duration::from_secs(step_seconds);
        let all = TimeWindow {
            oldest_ns: 0,
            newest_ns: u64::MAX,
        };
        let mut t = t0;
        while t < t0 + hours * HOUR_NS {
            t += step_seconds * 1_000_000_000;
            let request = fleet.step(t, step);
            let flattened = points::flatten_request(&request, all, &store.interner());
            assert_eq!(flattened.rejected, 0, "{:?}", flattened.reasons);
            for sample in flattened.samples {
                store.apply(sample);
            }
        }
        (store, t)
    }

    /// A store younger than the window is priced over the hours it holds:
    /// 6 hours of a fleet read through a 7-day window cost the same a
    /// month as through a 6-hour one.
    #[test]
    fn a_young_store_is_priced_over_the_hours_it_holds() {
        let (store, to) = simulated_store(2, 6);
        let span = |hours: u64| extract::Span {
            from_ns: to - hours * HOUR_NS,
            to_ns: to,
            idle_from_ns: to - HOUR_NS,
        };
        let week = extract::extract(&store, span(7 * 24));
        let six = extract::extract(&store, span(6));
        assert!(
            (week.hours() - six.hours()).abs() < 0.2,
            "{} h against {} h",
            week.hours(),
            six.hours()
        );
        let config = AnalyzerConfig::default();
        let prices = PriceBook::builtin().expect("prices");
        let total = |snapshot| {
            recommend::analyze(&snapshot, &config, &prices)
                .expect("report")
                .allocation
                .monthly_factor()
        };
        let (week, six) = (total(week), total(six));
        assert!((week / six - 1.0).abs() < 0.05, "{week} against {six}");
    }

    #[test]
    fn a_simulated_fleet_yields_its_planted_cards() {
        let (store, to) = simulated_store(3, 48);
        let span = extract::Span {
            from_ns: to - 48 * HOUR_NS,
            to_ns: to,
            idle_from_ns: to - HOUR_NS,
        };
        let snapshot = extract::extract(&store, span);
        assert_eq!(snapshot.nodes.len(), 3);
        assert!(snapshot.containers.len() > 12);
        // The checkout's HPA reaches its containers' right-sizing input;
        // nothing else has one.
        for c in &snapshot.containers {
            let want = (c.workload.name == "checkout").then_some(0.7);
            assert_eq!(c.usage.hpa_cpu_target, want, "{}", c.workload);
        }
        let checkout = snapshot
            .workload_specs
            .iter()
            .find(|s| s.workload.name == "checkout")
            .expect("checkout's facts");
        assert_eq!(checkout.hpa_replicas, Some((2.0, 10.0)));
        assert_eq!(checkout.replicas, Some(3.0));
        assert!(checkout.startup_seconds_max.is_some_and(|s| s > 0.0));
        let config = AnalyzerConfig::default();
        let prices = PriceBook::builtin().expect("prices");
        let report = recommend::analyze(&snapshot, &config, &prices).expect("report");
        let cards = &report.recommendations;
        let named = |kind: Kind, workload: &str| {
            cards
                .iter()
                .any(|c| c.kind == kind && c.workload.name == workload)
        };
        // The planted problems.
        assert!(named(Kind::GpuIdle, "notebook-0001-18"), "idle GPU");
        assert!(
            named(Kind::GpuMigProfile, "qwen-1-5b-summarize"),
            "a small model alone on an H100 fits a MIG slice"
        );
        assert!(
            cards
                .iter()
                .any(|c| c.kind == Kind::CpuRequest && c.monthly_savings > 10.0),
            "oversized requests"
        );
        assert!(
            cards
                .iter()
                .any(|c| c.kind == Kind::Egress && c.target.starts_with("cross_zone ")),
            "a chatty cross-zone pair"
        );
        assert!(
            cards
                .iter()
                .any(|c| c.kind == Kind::Egress && c.target == "nat→s3"),
            "object storage through NAT"
        );
        assert!(
            named(Kind::Spot, "storefront"),
            "a spot-safe stateless service"
        );
        assert!(
            cards.iter().any(|c| c.kind == Kind::Commitment),
            "a steady on-demand baseline"
        );
        assert!(cards.iter().any(|c| c.kind == Kind::VolumeUnclaimed));
        assert!(
            named(Kind::Schedule, "jupyter-dev"),
            "a dev workload idle every night"
        );
        assert!(
            !named(Kind::Schedule, "storefront"),
            "busy around the clock"
        );
        // The healthy controls: the storefront's requests fit its use; the
        // busy training job's GPUs and the serving replicas under load get
        // no GPU card.
        assert!(
            !named(Kind::CpuRequest, "storefront"),
            "healthy CPU control"
        );
        assert!(
            !named(Kind::MemoryRequest, "storefront"),
            "healthy memory control"
        );
        for busy in ["finetune-0001", "qwen-7b-api"] {
            assert!(
                !cards.iter().any(|c| c.workload.name == busy
                    && matches!(
                        c.kind,
                        Kind::GpuIdle | Kind::GpuWarmIdle | Kind::GpuUnused | Kind::GpuMigProfile
                    )),
                "{busy} is busy"
            );
        }
        // Totals never double count; the allocation reconciles.
        assert!(report.totals.monthly_savings <= report.totals.monthly_savings_sum + 1e-6);
        let nodes: f64 = report.allocation.nodes.iter().map(|n| n.total).sum();
        assert!(nodes > 0.0);
        let inference = report
            .inference
            .iter()
            .find(|i| i.workload.name == "qwen-7b-api")
            .expect("the 7B service's unit costs");
        assert!(
            inference.per_million_tokens.is_some_and(|c| c > 0.0),
            "{inference:?}"
        );
        assert_eq!(inference.split, "compute_time");
        // Spot: the storefront's card weighs its measured start-up and
        // budget; checkout's budget keeps every replica, so it gets none.
        let storefront = cards
            .iter()
            .find(|c| c.kind == Kind::Spot && c.workload.name == "storefront")
            .expect("storefront spot card");
        assert!(storefront.evidence.contains_key("pod_startup_seconds_max"));
        assert_eq!(storefront.evidence.get("pdb_min_available"), Some(&1.0));
        assert!(
            storefront
                .explanation
                .contains("PodDisruptionBudget storefront keeps 1")
        );
        assert!(
            !named(Kind::Spot, "checkout"),
            "a strict budget blocks spot"
        );
    }

    /// Ten days at hourly steps: the weekday-only batch gets a weekend
    /// schedule; the storefront, busy every day, gets none.
    #[test]
    fn a_workload_idle_every_weekend_gets_a_weekly_schedule() {
        let (store, to) = simulated_store_with(3, 10 * 24, 3600, 14);
        let span = extract::Span {
            from_ns: to - 10 * 24 * HOUR_NS,
            to_ns: to,
            idle_from_ns: to - HOUR_NS,
        };
        let snapshot = extract::extract(&store, span);
        let batch = snapshot
            .containers
            .iter()
            .find(|c| c.workload.name == "report-builder")
            .expect("the weekday batch");
        assert_eq!(batch.cpu_daily.len(), 9, "whole days only");
        let report = recommend::analyze(
            &snapshot,
            &AnalyzerConfig::default(),
            &PriceBook::builtin().expect("prices"),
        )
        .expect("report");
        let schedule = report
            .recommendations
            .iter()
            .find(|c| c.kind == Kind::Schedule && c.workload.name == "report-builder")
            .expect("a weekend schedule");
        assert!(
            schedule.target.starts_with("Sat-Sun"),
            "{}",
            schedule.target
        );
        assert_eq!(schedule.proposed.get("off_days"), Some(&2.0));
        assert_eq!(schedule.proposed.get("off_from_weekday"), Some(&5.0));
        assert!(schedule.monthly_savings > 0.0);
        assert!(
            !report
                .recommendations
                .iter()
                .any(|c| c.kind == Kind::Schedule && c.workload.name == "storefront"),
            "busy every day"
        );
    }
}
