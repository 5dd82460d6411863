//! `/api/v1/workloads`: containers grouped by namespace and workload,
//! requests and limits next to usage over the window, OOM kills, and
//! extended resources (GPUs, MIG slices) requested.
//!
//! Usage figures are sums over the workload's containers seen in the
//! window: `_p50` and `_p95` sum each container's quantile (for `_p95`
//! an upper bound on the p95 of the workload's total), `_max` sums each
//! container's peak. `cpu_throttled_seconds` is the time throttled by
//! the CPU limit over the window.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tally_schema::catalog;

use super::{Rows, Window, add, each, label, simulated, workload, workload_json};
use crate::store::{Stat, Store};

/// Namespace, workload kind, workload name.
type Key = (String, String, String);

#[derive(Default)]
struct Row {
    simulated: bool,
    pods: BTreeSet<String>,
    containers: usize,
    cpu_request: Option<f64>,
    cpu_limit: Option<f64>,
    cpu_usage: Option<f64>,
    cpu_p50: Option<f64>,
    cpu_p95: Option<f64>,
    cpu_max: Option<f64>,
    memory_request: Option<f64>,
    memory_limit: Option<f64>,
    working_set: Option<f64>,
    working_set_p50: Option<f64>,
    working_set_p95: Option<f64>,
    working_set_max: Option<f64>,
    oom_kills: Option<f64>,
    /// Seconds throttled by the CPU limit over the window.
    cpu_throttled_seconds: Option<f64>,
    devices: BTreeMap<String, f64>,
}

/// The view.
pub fn view(store: &Store, window: Window) -> Value {
    let mut workloads: BTreeMap<Key, Row> = BTreeMap::new();
    // Every container reports its working set: it defines membership.
    let mut owner: HashMap<String, Key> = HashMap::new();
    each(
        store,
        &catalog::CONTAINER_MEMORY_WORKING_SET,
        window,
        |series| {
            let Some(id) = series.label("container.id") else {
                return;
            };
            let key = workload(series);
            let row = workloads.entry(key.clone()).or_default();
            row.simulated |= simulated(series);
            row.pods.insert(label(series, "k8s.pod.uid"));
            row.containers += 1;
            add(&mut row.working_set, series.latest());
            add(
                &mut row.working_set_max,
                window.stat(store, series, Stat::Max),
            );
            owner.insert(id.to_owned(), key);
        },
    );
    let mut rows = Rows::new(store, window, workloads, move |series| {
        let id = series.label("container.id")?;
        owner.get(id).cloned()
    });
    rows.fill(&catalog::CONTAINER_CPU_USAGE, |row, series| {
        add(&mut row.cpu_usage, series.latest_rate());
    });
    rows.fill(&catalog::CONTAINER_CPU_USAGE_SAMPLED, |row, series| {
        add(
            &mut row.cpu_p50,
            window.stat(store, series, Stat::Quantile(0.5)),
        );
        add(
            &mut row.cpu_p95,
            window.stat(store, series, Stat::Quantile(0.95)),
        );
        add(&mut row.cpu_max, window.stat(store, series, Stat::Max));
    });
    rows.fill(
        &catalog::CONTAINER_MEMORY_WORKING_SET_SAMPLED,
        |row, series| {
            add(
                &mut row.working_set_p50,
                window.stat(store, series, Stat::Quantile(0.5)),
            );
            add(
                &mut row.working_set_p95,
                window.stat(store, series, Stat::Quantile(0.95)),
            );
        },
    );
    rows.fill(&catalog::CONTAINER_MEMORY_OOM_KILLS, |row, series| {
        add(
            &mut row.oom_kills,
            window.stat(store, series, Stat::Increase),
        );
    });
    rows.fill(&catalog::CONTAINER_CPU_THROTTLED, |row, series| {
        add(
            &mut row.cpu_throttled_seconds,
            window.stat(store, series, Stat::Increase),
        );
    });
    rows.fill(
        &catalog::CONTAINER_RESOURCE_REQUESTS,
        |row, series| match series.label("resource") {
            Some("cpu") => add(&mut row.cpu_request, series.latest()),
            Some("memory") => add(&mut row.memory_request, series.latest()),
            Some(device) => {
                *row.devices.entry(device.to_owned()).or_default() +=
                    series.latest().unwrap_or(0.0);
            }
            None => {}
        },
    );
    rows.fill(&catalog::CONTAINER_RESOURCE_LIMITS, |row, series| {
        // The agent reports an unlimited CPU as 0.
        match series.label("resource") {
            Some("cpu") => add(&mut row.cpu_limit, series.latest().filter(|l| *l > 0.0)),
            Some("memory") => add(&mut row.memory_limit, series.latest()),
            _ => {}
        }
    });
    let any_simulated = rows.rows.values().any(|r| r.simulated);
    let workloads: Vec<Value> = rows
        .rows
        .into_iter()
        .map(|(key, row)| {
            let fields = json!({
                "replicas": row.pods.len(),
                "containers": row.containers,
                "cpu_request_cores": row.cpu_request,
                "cpu_limit_cores": row.cpu_limit,
                "cpu_cores": row.cpu_usage,
                "cpu_cores_p50": row.cpu_p50,
                "cpu_cores_p95": row.cpu_p95,
                "cpu_cores_max": row.cpu_max,
                "memory_request_bytes": row.memory_request,
                "memory_limit_bytes": row.memory_limit,
                "working_set_bytes": row.working_set,
                "working_set_bytes_p50": row.working_set_p50,
                "working_set_bytes_p95": row.working_set_p95,
                "working_set_bytes_max": row.working_set_max,
                "oom_kills": row.oom_kills,
                "cpu_throttled_seconds": row.cpu_throttled_seconds,
                "device_requests": row.devices,
            });
            workload_json(key, row.simulated, fields)
        })
        .collect();
    json!({ "simulated": any_simulated, "workloads": workloads })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_roll_up_into_their_workloads() {
        let (store, window) = super::super::tests::simulated_store();
        let body = view(&store, window);
        assert_eq!(body["simulated"], true);
        let workloads = body["workloads"].as_array().expect("workloads");
        let containers: u64 = workloads
            .iter()
            .filter_map(|w| w["containers"].as_u64())
            .sum();
        assert!(containers >= 12, "{containers}");
        for w in workloads {
            let number = |k: &str| w[k].as_f64().unwrap_or(f64::NAN);
            assert!(number("cpu_request_cores") > 0.0, "{w}");
            assert!(number("cpu_cores_max") >= number("cpu_cores_p95"), "{w}");
            assert!(number("working_set_bytes_max") > 0.0, "{w}");
            assert!(w["replicas"].as_u64().is_some_and(|r| r >= 1), "{w}");
        }
        let training = workloads
            .iter()
            .find(|w| {
                w["workload_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("finetune-"))
            })
            .expect("a training job");
        let gpus = training["device_requests"]["nvidia.com/gpu"].as_f64();
        assert!(gpus.is_some_and(|g| g >= 2.0), "{training}");
    }
}
