//! `/api/v1/gpus`: one row per GPU and per MIG instance, with its
//! utilization over the window, memory, power and the pods attributed to
//! it. An allocated GPU whose p95 utilization is near 0 is the idle-GPU
//! case.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_schema::catalog;

use super::{Rows, Window, each, label, simulated, workload};
use crate::store::{Series, Stat, Store};

/// Node, GPU UUID and MIG instance (empty for a whole GPU).
type Key = (String, String, String);

fn key(series: &Series) -> Key {
    (
        label(series, "k8s.node.name"),
        label(series, "gpu_uuid"),
        label(series, "mig_instance"),
    )
}

#[derive(Default)]
struct Row {
    index: Option<u64>,
    model: String,
    mig_profile: Option<String>,
    simulated: bool,
    utilization: Option<f64>,
    utilization_p95: Option<f64>,
    utilization_max: Option<f64>,
    memory_used: Option<f64>,
    memory_used_max: Option<f64>,
    memory_total: Option<f64>,
    power: Option<f64>,
    power_limit: Option<f64>,
    temperature: Option<f64>,
    energy_increase: Option<f64>,
    pods: BTreeMap<String, Value>,
}

/// The view.
pub fn view(store: &Store, window: Window) -> Value {
    let mut devices: BTreeMap<Key, Row> = BTreeMap::new();
    // Every device reports its memory size, including MIG-enabled GPUs
    // that have no utilization of their own.
    each(store, &catalog::GPU_MEMORY_TOTAL, window, |series| {
        devices.insert(
            key(series),
            Row {
                index: series.label("gpu_index").and_then(|i| i.parse().ok()),
                model: label(series, "gpu_model"),
                mig_profile: series.label("mig_profile").map(str::to_owned),
                simulated: simulated(series),
                memory_total: series.latest(),
                ..Row::default()
            },
        );
    });
    let mut rows = Rows::new(store, window, devices, |series| Some(key(series)));
    rows.fill(&catalog::GPU_UTILIZATION, |row, series| {
        row.utilization = series.latest();
        row.utilization_p95 = window.stat(store, series, Stat::Quantile(0.95));
        row.utilization_max = window.stat(store, series, Stat::Max);
    });
    rows.fill(&catalog::GPU_MEMORY_USED, |row, series| {
        row.memory_used = series.latest();
        row.memory_used_max = window.stat(store, series, Stat::Max);
    });
    rows.fill(&catalog::GPU_POWER, |row, series| {
        row.power = series.latest();
    });
    rows.fill(&catalog::GPU_POWER_LIMIT, |row, series| {
        row.power_limit = series.latest();
    });
    rows.fill(&catalog::GPU_ENERGY, |row, series| {
        row.energy_increase = window.stat(store, series, Stat::Increase);
    });
    rows.fill(&catalog::GPU_TEMPERATURE, |row, series| {
        row.temperature = series.latest();
    });
    rows.fill(&catalog::CONTAINER_GPU_UTILIZATION, |row, series| {
        let pod = pod(row, series);
        pod["utilization"] = json!(series.latest());
        pod["utilization_p95"] = json!(window.stat(store, series, Stat::Quantile(0.95)));
    });
    rows.fill(&catalog::CONTAINER_GPU_MEMORY_USED, |row, series| {
        let pod = pod(row, series);
        pod["memory_used_bytes"] = json!(series.latest());
        pod["memory_used_bytes_max"] = json!(window.stat(store, series, Stat::Max));
    });
    let any_simulated = rows.rows.values().any(|r| r.simulated);
    let gpus: Vec<Value> = rows
        .rows
        .into_iter()
        .map(|((node, uuid, instance), row)| {
            let sharing = row
                .pods
                .values()
                .find_map(|p| p["sharing"].as_str().map(str::to_owned));
            json!({
                "node": node,
                "gpu_uuid": uuid,
                "gpu_index": row.index,
                "gpu_model": row.model,
                "mig_profile": row.mig_profile,
                "mig_instance": (!instance.is_empty()).then_some(instance),
                "sharing": sharing,
                "simulated": row.simulated,
                "utilization": row.utilization,
                "utilization_p95": row.utilization_p95,
                "utilization_max": row.utilization_max,
                "memory_used_bytes": row.memory_used,
                "memory_used_bytes_max": row.memory_used_max,
                "memory_total_bytes": row.memory_total,
                "power_watts": row.power,
                "power_limit_watts": row.power_limit,
                "temperature_celsius": row.temperature,
                "energy_joules": row.energy_increase,
                "pods": row.pods.into_values().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "simulated": any_simulated, "gpus": gpus })
}

/// The row's entry for the container of `series`, created on first sight.
fn pod<'a>(row: &'a mut Row, series: &Series) -> &'a mut Value {
    let id = label(series, "container.id");
    row.pods.entry(id.clone()).or_insert_with(|| {
        let (namespace, kind, name) = workload(series);
        json!({
            "container_id": id,
            "namespace": namespace,
            "pod": label(series, "k8s.pod.name"),
            "container": label(series, "k8s.container.name"),
            "workload_kind": kind,
            "workload_name": name,
            "sharing": label(series, "sharing"),
            "simulated": simulated(series),
            "utilization": null,
            "utilization_p95": null,
            "memory_used_bytes": null,
            "memory_used_bytes_max": null,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_mig_and_time_sliced_gpus_are_told_apart() {
        let (store, window) = super::super::tests::simulated_store();
        let body = view(&store, window);
        assert_eq!(body["simulated"], true);
        let gpus = body["gpus"].as_array().expect("gpus");
        // Node 1 (p5): 8 GPUs + 4 MIG instances; node 2 (g5): 1 GPU.
        assert!(gpus.len() >= 13, "{}", gpus.len());
        let pods = |g: &Value| g["pods"].as_array().map_or(0, Vec::len);
        let idle = gpus
            .iter()
            .find(|g| pods(g) == 1 && g["utilization_p95"].as_f64().is_some_and(|u| u < 0.02));
        let idle = idle.expect("an allocated GPU left idle");
        assert!(
            idle["power_watts"].as_f64().is_some_and(|w| w < 100.0),
            "{idle}"
        );
        let mig = gpus
            .iter()
            .find(|g| g["mig_profile"] == "3g.40gb")
            .expect("a MIG instance");
        assert_eq!(mig["sharing"], "mig");
        assert_eq!(mig["pods"][0]["workload_name"], "qwen-7b-api");
        let gib = (1u64 << 30) as f64;
        let slice = mig["memory_total_bytes"].as_f64();
        assert!(
            slice.is_some_and(|m| m > 39.0 * gib && m < 40.0 * gib),
            "{mig}"
        );
        let parent = gpus
            .iter()
            .find(|g| g["gpu_uuid"] == mig["gpu_uuid"] && g["mig_instance"].is_null())
            .expect("the MIG-enabled GPU");
        assert!(parent["utilization"].is_null() && parent["power_watts"].is_number());
        let sliced = gpus
            .iter()
            .find(|g| g["sharing"] == "time_sliced")
            .expect("a time-sliced GPU");
        assert_eq!(pods(sliced), 3, "{sliced}");
    }
}
