//! `/api/v1/models`: one row per model service (namespace, workload,
//! engine, model) over its replicas: request and token rates, queue, KV
//! cache, latency quantiles and the GPU devices its pods use.
//!
//! Rates are the replicas' current rates summed. Latency quantiles are the
//! worst replica's over the window: an upper bound on the service's own
//! quantile, since the store merges sketches per series only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tally_schema::catalog;

use super::{Rows, Window, add, each, label, max, simulated, workload, workload_json};
use crate::store::{Series, Stat, Store};

/// Namespace, workload kind, workload name, engine, model.
type Key = (String, String, String, String, String);

fn key(series: &Series) -> Key {
    let (namespace, kind, name) = workload(series);
    (
        namespace,
        kind,
        name,
        label(series, "engine"),
        label(series, "model"),
    )
}

#[derive(Default)]
struct Row {
    engine_version: String,
    simulated: bool,
    pods: BTreeSet<String>,
    gpus: BTreeSet<(String, String)>,
    requests: Option<f64>,
    failures: Option<f64>,
    prompt_tokens: Option<f64>,
    generation_tokens: Option<f64>,
    running: Option<f64>,
    waiting: Option<f64>,
    waiting_max: Option<f64>,
    kv_cache: Option<f64>,
    kv_cache_p95: Option<f64>,
    ttft: [Option<f64>; 2],
    itl: [Option<f64>; 2],
    e2e_p95: Option<f64>,
    queue_time_p95: Option<f64>,
}

/// p50 and p95 of a distribution, each the worst over replicas.
fn quantiles(into: &mut [Option<f64>; 2], store: &Store, series: &Series, window: Window) {
    max(
        &mut into[0],
        window.stat(store, series, Stat::Quantile(0.5)),
    );
    max(
        &mut into[1],
        window.stat(store, series, Stat::Quantile(0.95)),
    );
}

/// The view.
pub fn view(store: &Store, window: Window) -> Value {
    let mut services: BTreeMap<Key, Row> = BTreeMap::new();
    each(store, &catalog::MODEL_INFO, window, |series| {
        let row = services.entry(key(series)).or_default();
        row.engine_version = label(series, "engine_version");
        row.simulated |= simulated(series);
        row.pods.insert(label(series, "k8s.pod.uid"));
    });
    let mut rows = Rows::new(store, window, services, |series| Some(key(series)));
    rows.fill(&catalog::MODEL_REQUESTS, |row, series| {
        add(&mut row.requests, series.latest_rate());
        if series.label("outcome") == Some("failure") {
            add(&mut row.failures, series.latest_rate());
        }
    });
    rows.fill(&catalog::MODEL_PROMPT_TOKENS, |row, series| {
        add(&mut row.prompt_tokens, series.latest_rate());
    });
    rows.fill(&catalog::MODEL_GENERATION_TOKENS, |row, series| {
        add(&mut row.generation_tokens, series.latest_rate());
    });
    rows.fill(&catalog::MODEL_REQUESTS_RUNNING, |row, series| {
        add(&mut row.running, series.latest());
    });
    rows.fill(&catalog::MODEL_REQUESTS_WAITING, |row, series| {
        add(&mut row.waiting, series.latest());
        max(&mut row.waiting_max, window.stat(store, series, Stat::Max));
    });
    rows.fill(&catalog::MODEL_KV_CACHE_USAGE, |row, series| {
        max(&mut row.kv_cache, series.latest());
        max(
            &mut row.kv_cache_p95,
            window.stat(store, series, Stat::Quantile(0.95)),
        );
    });
    rows.fill(&catalog::MODEL_TIME_TO_FIRST_TOKEN, |row, series| {
        quantiles(&mut row.ttft, store, series, window);
    });
    rows.fill(&catalog::MODEL_INTER_TOKEN_LATENCY, |row, series| {
        quantiles(&mut row.itl, store, series, window);
    });
    rows.fill(&catalog::MODEL_E2E_REQUEST_LATENCY, |row, series| {
        max(
            &mut row.e2e_p95,
            window.stat(store, series, Stat::Quantile(0.95)),
        );
    });
    rows.fill(&catalog::MODEL_REQUEST_QUEUE_TIME, |row, series| {
        max(
            &mut row.queue_time_p95,
            window.stat(store, series, Stat::Quantile(0.95)),
        );
    });
    // The GPU devices (GPU or MIG instance) the replicas' pods use.
    let pods: HashMap<String, Key> = rows
        .rows
        .iter()
        .flat_map(|(key, row)| row.pods.iter().map(move |pod| (pod.clone(), key.clone())))
        .collect();
    each(
        store,
        &catalog::CONTAINER_GPU_UTILIZATION,
        window,
        |series| {
            let service = series.label("k8s.pod.uid").and_then(|pod| pods.get(pod));
            if let Some(row) = service.and_then(|key| rows.rows.get_mut(key)) {
                row.gpus
                    .insert((label(series, "gpu_uuid"), label(series, "mig_instance")));
            }
        },
    );
    let any_simulated = rows.rows.values().any(|r| r.simulated);
    let models: Vec<Value> = rows
        .rows
        .into_iter()
        .map(|((namespace, kind, name, engine, model), row)| {
            let tokens = row
                .prompt_tokens
                .zip(row.generation_tokens)
                .map(|(p, g)| p + g);
            let error_ratio = row
                .requests
                .filter(|r| *r > 0.0)
                .map(|r| row.failures.unwrap_or(0.0) / r);
            let fields = json!({
                "engine": engine,
                "model": model,
                "engine_version": row.engine_version,
                "replicas": row.pods.len(),
                "gpus": row.gpus.len(),
                "requests_per_second": row.requests,
                "error_ratio": error_ratio,
                "prompt_tokens_per_second": row.prompt_tokens,
                "generation_tokens_per_second": row.generation_tokens,
                "tokens_per_second": tokens,
                "requests_running": row.running,
                "queue_depth": row.waiting,
                "queue_depth_max": row.waiting_max,
                "kv_cache_usage": row.kv_cache,
                "kv_cache_usage_p95": row.kv_cache_p95,
                "time_to_first_token_seconds_p50": row.ttft[0],
                "time_to_first_token_seconds_p95": row.ttft[1],
                "inter_token_latency_seconds_p50": row.itl[0],
                "inter_token_latency_seconds_p95": row.itl[1],
                "e2e_request_latency_seconds_p95": row.e2e_p95,
                "request_queue_time_seconds_p95": row.queue_time_p95,
            });
            workload_json((namespace, kind, name), row.simulated, fields)
        })
        .collect();
    json!({ "simulated": any_simulated, "models": models })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_have_rates_latencies_and_gpus() {
        let (store, window) = super::super::tests::simulated_store();
        let body = view(&store, window);
        assert_eq!(body["simulated"], true);
        let models = body["models"].as_array().expect("models");
        let names: BTreeSet<_> = models
            .iter()
            .filter_map(|m| m["workload_name"].as_str())
            .collect();
        for expected in [
            "llama-8b-chat",
            "phi-3-mini",
            "qwen-0-5b-chat",
            "qwen-7b-api",
        ] {
            assert!(names.contains(expected), "{names:?}");
        }
        for m in models {
            let number = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
            assert!(number("tokens_per_second") > 0.0, "{m}");
            assert!(number("requests_per_second") > 0.0, "{m}");
            let (p50, p95) = (
                number("time_to_first_token_seconds_p50"),
                number("time_to_first_token_seconds_p95"),
            );
            assert!(p50 > 0.0 && p95 >= p50 && p95 < 30.0, "{m}");
            assert!(number("e2e_request_latency_seconds_p95") > p95, "{m}");
            assert!((0.0..0.05).contains(&number("error_ratio")), "{m}");
            assert_eq!(
                m["gpus"],
                if m["model"].as_str().is_some_and(|n| n.contains("70B")) {
                    4
                } else {
                    1
                }
            );
            // TGI has no inter-token latency, only time per output token.
            assert_eq!(
                m["engine"] == "tgi",
                m["inter_token_latency_seconds_p95"].is_null(),
                "{m}"
            );
        }
    }
}
