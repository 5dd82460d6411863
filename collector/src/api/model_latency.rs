//! Model-serving latency on the collector's `/metrics`, for Grafana and
//! alert rules: p50 and p95 time to first token, inter-token and
//! end-to-end latency per model service over the last few minutes, with
//! the service's objective beside them.
//!
//! The agents send these distributions as OTLP exponential histograms,
//! which a Prometheus text page cannot carry without losing their
//! resolution; the collector already merges them per series, so it serves
//! the quantiles an alert needs. A service's quantile is its worst
//! replica's (the store merges sketches per series only), so an alert on
//! it fires when any replica misses the objective.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tally_schema::catalog::{self, MetricDef};

use super::{Window, each, label, workload};
use crate::analysis::metrics::{family, labels};
use crate::store::{Stat, Store};

/// How far back the quantiles look: long enough to hold a few 15 s
/// exports, short enough that an alert sees a regression within minutes.
pub const LATENCY_WINDOW_NS: u64 = 5 * 60 * 1_000_000_000;

/// Namespace, workload kind, workload name, engine, model.
type Service = (String, String, String, String, String);

/// The latencies served, by their `latency` label.
const LATENCIES: [(&str, &MetricDef); 3] = [
    ("ttft", &catalog::MODEL_TIME_TO_FIRST_TOKEN),
    ("itl", &catalog::MODEL_INTER_TOKEN_LATENCY),
    ("e2e", &catalog::MODEL_E2E_REQUEST_LATENCY),
];

const QUANTILES: [(&str, f64); 2] = [("0.5", 0.5), ("0.95", 0.95)];

/// Appends the latency families for the window ending at `now_ns`.
/// `objective(namespace/workload)` gives the service's p95 objectives for
/// time to first token and inter-token latency, seconds.
pub fn render(
    store: &Store,
    now_ns: u64,
    objective: impl Fn(&str) -> (f64, f64),
    out: &mut String,
) {
    let window = Window {
        from_ns: now_ns.saturating_sub(LATENCY_WINDOW_NS),
        to_ns: now_ns,
    };
    // (service, latency, quantile) → worst replica's value.
    let mut values: BTreeMap<(Service, &str, &str), f64> = BTreeMap::new();
    for (latency, def) in LATENCIES {
        each(store, def, window, |series| {
            let (namespace, kind, name) = workload(series);
            let service = (
                namespace,
                kind,
                name,
                label(series, "engine"),
                label(series, "model"),
            );
            for (quantile, q) in QUANTILES {
                if let Some(value) = window.stat(store, series, Stat::Quantile(q)) {
                    let slot = values
                        .entry((service.clone(), latency, quantile))
                        .or_insert(value);
                    *slot = slot.max(value);
                }
            }
        });
    }
    family(
        out,
        "tally_model_latency_seconds",
        "gauge",
        "Model-serving latency over the last 5 minutes by service: latency ttft, itl or e2e, quantile 0.5 or 0.95 (the worst replica's).",
    );
    for ((service, latency, quantile), value) in &values {
        let _ = writeln!(
            out,
            "tally_model_latency_seconds{{{}}} {value}",
            service_labels(service, &[("latency", latency), ("quantile", quantile)])
        );
    }
    family(
        out,
        "tally_model_latency_objective_seconds",
        "gauge",
        "The p95 latency objective of each model service seen in the last 5 minutes (analyzer.slo, else analyzer.default_slo): latency ttft or itl.",
    );
    let mut services: Vec<&Service> = values.keys().map(|(service, _, _)| service).collect();
    services.dedup();
    for service in services {
        let (ttft, itl) = objective(&format!("{}/{}", service.0, service.2));
        for (latency, seconds) in [("ttft", ttft), ("itl", itl)] {
            let _ = writeln!(
                out,
                "tally_model_latency_objective_seconds{{{}}} {seconds}",
                service_labels(service, &[("latency", latency)])
            );
        }
    }
}

/// The service's labels, then `extra`.
fn service_labels(service: &Service, extra: &[(&str, &str)]) -> String {
    let (namespace, kind, name, engine, model) = service;
    let mut pairs = vec![
        ("namespace", namespace.as_str()),
        ("workload_kind", kind.as_str()),
        ("workload_name", name.as_str()),
        ("engine", engine.as_str()),
        ("model", model.as_str()),
    ];
    pairs.extend_from_slice(extra);
    labels(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_simulated_service_has_its_quantiles_and_objectives() {
        let (store, window) = super::super::tests::simulated_store();
        let mut page = String::new();
        render(
            &store,
            window.to_ns,
            |service| {
                if service.starts_with("inference/") {
                    (0.25, 0.05)
                } else {
                    (2.0, 0.1)
                }
            },
            &mut page,
        );
        let rows: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("tally_model_latency_seconds{"))
            .collect();
        assert!(!rows.is_empty(), "{page}");
        for latency in ["ttft", "itl", "e2e"] {
            for quantile in ["0.5", "0.95"] {
                let needle = format!("latency=\"{latency}\",quantile=\"{quantile}\"");
                assert!(
                    rows.iter().any(|row| row.contains(&needle)),
                    "no {needle}: {page}"
                );
            }
        }
        // p95 is never below p50 for the same service and latency.
        let value = |row: &str| -> f64 { row.rsplit(' ').next().unwrap().parse().unwrap() };
        for row in rows.iter().filter(|row| row.contains("quantile=\"0.5\"")) {
            let p95 = row.replace("quantile=\"0.5\"", "quantile=\"0.95\"");
            let p95_row = rows
                .iter()
                .find(|r| r.starts_with(p95.rsplit_once(' ').unwrap().0))
                .expect("p95 row");
            assert!(value(p95_row) >= value(row), "{row} vs {p95_row}");
        }
        // The objective follows the service's entry.
        let objectives: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("tally_model_latency_objective_seconds{"))
            .collect();
        assert!(
            objectives
                .iter()
                .any(|row| row.contains("namespace=\"inference\"")
                    && row.contains("latency=\"ttft\"")
                    && row.ends_with(" 0.25")),
            "{page}"
        );
        // Nothing for a window with no points.
        let mut empty = String::new();
        render(
            &store,
            window.to_ns + 3_600_000_000_000,
            |_| (1.0, 1.0),
            &mut empty,
        );
        assert!(!empty.contains("tally_model_latency_seconds{"), "{empty}");
    }
}
