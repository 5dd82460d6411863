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
    gpu_watts: Option<f64>,
}

/// Who uses one GPU: each service's containers' utilization and count,
/// and every container's.
#[derive(Default)]
struct GpuUse {
    services: HashMap<Key, (f64, usize)>,
    busy: f64,
    containers: usize,
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
        // A server's version is unknown until it answers: the known one
        // wins over an earlier `unknown` series.
        let version = label(series, "engine_version");
        if row.engine_version.is_empty() || row.engine_version == "unknown" {
            row.engine_version = version;
        }
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
    // The GPU devices (GPU or MIG instance) the replicas' pods use, and
    // each service's use of each GPU for the energy split.
    let pods: HashMap<String, Key> = rows
        .rows
        .iter()
        .flat_map(|(key, row)| row.pods.iter().map(move |pod| (pod.clone(), key.clone())))
        .collect();
    // GPU → (service → its containers' utilization), and every user's.
    let mut use_by_gpu: HashMap<String, GpuUse> = HashMap::new();
    each(
        store,
        &catalog::CONTAINER_GPU_UTILIZATION,
        window,
        |series| {
            let gpu = label(series, "gpu_uuid");
            let busy = series.latest().unwrap_or(0.0).max(0.0);
            let entry = use_by_gpu.entry(gpu.clone()).or_default();
            entry.busy += busy;
            entry.containers += 1;
            let service = series.label("k8s.pod.uid").and_then(|pod| pods.get(pod));
            if let Some(key) = service {
                let own = entry.services.entry(key.clone()).or_insert((0.0, 0));
                own.0 += busy;
                own.1 += 1;
                if let Some(row) = rows.rows.get_mut(key) {
                    row.gpus.insert((gpu, label(series, "mig_instance")));
                }
            }
        },
    );
    // Each GPU's draw: the rate of its energy counter (NVML's own), else
    // its power gauge.
    let mut watts: HashMap<String, f64> = HashMap::new();
    each(store, &catalog::GPU_ENERGY, window, |series| {
        if series.label("mig_instance").is_none()
            && let Some(rate) = series.latest_rate()
        {
            watts.insert(label(series, "gpu_uuid"), rate);
        }
    });
    each(store, &catalog::GPU_POWER, window, |series| {
        if let Some(power) = series.latest() {
            watts.entry(label(series, "gpu_uuid")).or_insert(power);
        }
    });
    for (gpu, using) in &use_by_gpu {
        let Some(draw) = watts.get(gpu) else { continue };
        for (key, (busy, containers)) in &using.services {
            // A GPU one service alone uses is all its own; a shared one is
            // split by utilization (by containers when all are idle).
            let share = if *containers == using.containers {
                1.0
            } else if using.busy > 0.0 {
                busy / using.busy
            } else {
                *containers as f64 / using.containers as f64
            };
            if let Some(row) = rows.rows.get_mut(key) {
                add(&mut row.gpu_watts, Some(draw * share));
            }
        }
    }
    let any_simulated = rows.rows.values().any(|r| r.simulated);
    let models: Vec<Value> = rows
        .rows
        .into_iter()
        .map(|((namespace, kind, name, engine, model), row)| {
            let tokens = row
                .prompt_tokens
                .zip(row.generation_tokens)
                .map(|(p, g)| p + g);
            let per = |value: Option<f64>, n: usize| value.filter(|_| n > 0).map(|v| v / n as f64);
            let tokens_per_joule = tokens
                .zip(row.gpu_watts.filter(|w| *w > 0.0))
                .map(|(t, w)| t / w);
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
                "gpu_watts": row.gpu_watts,
                "tokens_per_joule": tokens_per_joule,
                "tokens_per_second_per_gpu": per(tokens, row.gpus.len()),
                "requests_per_second_per_replica": per(row.requests, row.pods.len()),
                "tokens_per_second_per_replica": per(tokens, row.pods.len()),
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
            // Every simulated server draws GPU power: tokens per joule and
            // per GPU follow.
            let watts = number("gpu_watts");
            assert!(watts > 0.0, "{m}");
            let tokens = number("tokens_per_second");
            assert!(
                (number("tokens_per_joule") - tokens / watts).abs() < 1e-9,
                "{m}"
            );
            let gpus = m["gpus"].as_f64().unwrap_or(0.0);
            assert!((number("tokens_per_second_per_gpu") - tokens / gpus).abs() < 1e-9);
            // TGI has no inter-token latency, only time per output token.
            assert_eq!(
                m["engine"] == "tgi",
                m["inter_token_latency_seconds_p95"].is_null(),
                "{m}"
            );
        }
    }

    /// Two services on one GPU split its draw by utilization; a GPU one
    /// service alone uses is all its own.
    #[test]
    fn gpu_energy_is_split_by_use() {
        use crate::ingest::points::{Sample, SampleValue};
        use crate::store::{LabelSet, StoreLimits};
        use std::sync::Arc;
        const S: u64 = 1_000_000_000;
        let t0 = 1_800_000_000 * S;
        let mut store = Store::new(StoreLimits {
            retention_ns: 24 * 3600 * S,
            raw_window_ns: 3600 * S,
            raw_points: 100,
            log_records: 10,
            max_series: 1000,
        });
        let mut put = |metric: &str, labels: &[(&str, &str)], t: u64, value: SampleValue| {
            store.apply(Sample {
                metric: Arc::from(metric),
                labels: Arc::new(LabelSet::new(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                )),
                time_ns: t,
                value,
            });
        };
        let counter = |v: f64| SampleValue::Cumulative {
            value: v,
            start_ns: 1,
        };
        for (i, t) in [t0, t0 + 10 * S].into_iter().enumerate() {
            let i = i as f64;
            for (pod, name, tokens) in [("p1", "chat", 1000.0), ("p2", "embed", 500.0)] {
                let service = [
                    ("k8s.namespace.name", "ml"),
                    ("k8s.deployment.name", name),
                    ("k8s.pod.uid", pod),
                    ("engine", "vllm"),
                    ("model", name),
                ];
                let mut info = service.to_vec();
                info.push(("engine_version", "0.12.0"));
                put(
                    &catalog::MODEL_INFO.full_name(),
                    &info,
                    t,
                    SampleValue::Gauge(1.0),
                );
                put(
                    &catalog::MODEL_GENERATION_TOKENS.full_name(),
                    &service,
                    t,
                    counter(tokens * 10.0 * i),
                );
                put(
                    &catalog::MODEL_PROMPT_TOKENS.full_name(),
                    &service,
                    t,
                    counter(0.0),
                );
            }
            // GPU-A: chat busy 0.6, embed 0.2; GPU-B: chat alone.
            let util = catalog::CONTAINER_GPU_UTILIZATION.full_name();
            put(
                &util,
                &[("k8s.pod.uid", "p1"), ("gpu_uuid", "GPU-A")],
                t,
                SampleValue::Gauge(0.6),
            );
            put(
                &util,
                &[("k8s.pod.uid", "p2"), ("gpu_uuid", "GPU-A")],
                t,
                SampleValue::Gauge(0.2),
            );
            put(
                &util,
                &[("k8s.pod.uid", "p1"), ("gpu_uuid", "GPU-B")],
                t,
                SampleValue::Gauge(0.9),
            );
            let energy = catalog::GPU_ENERGY.full_name();
            put(
                &energy,
                &[("gpu_uuid", "GPU-A")],
                t,
                counter(400.0 * 10.0 * i),
            );
            put(
                &energy,
                &[("gpu_uuid", "GPU-B")],
                t,
                counter(100.0 * 10.0 * i),
            );
        }
        let body = view(
            &store,
            Window {
                from_ns: t0 - 3600 * S,
                to_ns: t0 + 20 * S,
            },
        );
        let row = |model: &str| {
            body["models"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["model"] == model))
                .cloned()
                .unwrap_or_else(|| panic!("{model}: {body}"))
        };
        let (chat, embed) = (row("chat"), row("embed"));
        // chat: 3/4 of GPU-A's 400 W plus all of GPU-B's 100 W.
        let near = |v: &serde_json::Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() < 1e-9);
        assert!(near(&chat["gpu_watts"], 400.0), "{chat}");
        assert!(near(&chat["tokens_per_joule"], 2.5), "{chat}");
        assert_eq!(chat["gpus"], 2);
        assert!(near(&chat["tokens_per_second_per_gpu"], 500.0), "{chat}");
        assert!(near(&embed["gpu_watts"], 100.0), "{embed}");
        assert!(near(&embed["tokens_per_joule"], 5.0), "{embed}");
        assert!(
            near(&embed["tokens_per_second_per_replica"], 500.0),
            "{embed}"
        );
        assert_eq!(embed["engine_version"], "0.12.0");
    }
}
