//! Every engine's page, read through its map into the catalog's
//! model-serving readings. The pages are the project's own fixtures
//! (`tests/fixtures/exposition/`, one per engine and version family).

use std::collections::BTreeMap;
use std::path::Path;

use tally_agent::sources::serving::engine::Engine;
use tally_agent::sources::serving::normalise::{Dist, ModelPage, Page, read_page};

fn page(file: &str, engine: Option<Engine>) -> Page {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exposition")
        .join(file);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let page = read_page(&body, engine, "served-model");
    assert!(page.errors.is_empty(), "{file}: {:?}", page.first_errors);
    page
}

fn model<'p>(page: &'p Page, name: &str) -> &'p ModelPage {
    page.models
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", page.models.keys()))
}

fn requests(model: &ModelPage) -> BTreeMap<(String, String), f64> {
    model
        .finished_requests()
        .into_iter()
        .map(|((outcome, reason), v)| ((outcome.to_owned(), reason), v))
        .collect()
}

fn req(pairs: &[(&str, &str, f64)]) -> BTreeMap<(String, String), f64> {
    pairs
        .iter()
        .map(|(o, r, v)| (((*o).to_owned(), (*r).to_owned()), *v))
        .collect()
}

fn count(model: &ModelPage, dist: Dist) -> Option<f64> {
    model.histograms.get(&dist).map(|h| h.count)
}

#[test]
fn vllm_v1_data_parallel_engines_add_up() {
    let page = page("vllm-v1-0.33.txt", None);
    assert_eq!(page.engine, Some(Engine::Vllm), "detected from the page");
    let qwen = model(&page, "Qwen/Qwen2.5-7B-Instruct");
    assert_eq!(qwen.running.sum(), Some(10.0));
    assert_eq!(qwen.waiting.sum(), Some(3.0));
    assert_eq!(qwen.kv_cache_fraction(), Some(0.4));
    assert_eq!(qwen.prompt_tokens, Some(200_000.0));
    assert_eq!(qwen.generation_tokens, Some(45_000.0));
    assert_eq!(
        requests(qwen),
        req(&[
            ("failure", "abort", 15.0),
            ("failure", "error", 5.0),
            ("success", "length", 80.0),
            ("success", "stop", 900.0),
        ])
    );
    assert_eq!(count(qwen, Dist::TimeToFirstToken), Some(1000.0));
    assert_eq!(count(qwen, Dist::InterTokenLatency), Some(45_000.0));
    assert_eq!(count(qwen, Dist::E2eLatency), Some(1000.0));
    assert_eq!(count(qwen, Dist::QueueTime), Some(1000.0));
    let ttft = &qwen.histograms[&Dist::TimeToFirstToken];
    assert_eq!(ttft.buckets.len(), 23, "22 bounds and +Inf");
    assert_eq!(ttft.sum, 98.5);
    assert_eq!(page.models.len(), 1, "python_gc_* belongs to no model");
}

#[test]
fn vllm_v0_names_are_read_too() {
    let page = page("vllm-v0.txt", Some(Engine::Vllm));
    let llama = model(&page, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(llama.running.sum(), Some(3.0));
    assert_eq!(
        llama.kv_cache_fraction(),
        Some(0.125),
        "gpu_cache_usage_perc"
    );
    assert_eq!(
        count(llama, Dist::InterTokenLatency),
        Some(7000.0),
        "time_per_output_token_seconds"
    );
    assert_eq!(count(llama, Dist::TimeToFirstToken), Some(40.0));
    assert_eq!(requests(llama), req(&[("success", "stop", 40.0)]));
}

#[test]
fn sglang_skips_repeated_tensor_parallel_ranks() {
    let page = page("sglang-0.5.txt", None);
    assert_eq!(page.engine, Some(Engine::Sglang));
    let qwen = model(&page, "Qwen/Qwen3-32B");
    assert_eq!(qwen.running.sum(), Some(21.0));
    assert_eq!(qwen.waiting.sum(), Some(4.0));
    assert_eq!(qwen.kv_cache_fraction(), Some(0.5));
    assert_eq!(qwen.prompt_tokens, Some(50_000.0));
    assert_eq!(qwen.generation_tokens, Some(15_000.0));
    assert_eq!(
        requests(qwen),
        req(&[("failure", "abort", 10.0), ("success", "finished", 690.0)])
    );
    assert_eq!(count(qwen, Dist::TimeToFirstToken), Some(700.0));
    assert_eq!(count(qwen, Dist::QueueTime), Some(400.0));

    let old = page_of("sglang-old.txt");
    let llama = model(&old, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(llama.running.sum(), Some(162.0));
    assert_eq!(count(llama, Dist::InterTokenLatency), Some(7960.0));
}

fn page_of(file: &str) -> Page {
    page(file, None)
}

#[test]
fn tgi_has_one_unlabelled_model_and_token_sums() {
    let page = page("tgi-v3.txt", Some(Engine::Tgi));
    let tgi = model(&page, "served-model");
    assert_eq!(tgi.running.sum(), Some(8.0));
    assert_eq!(tgi.waiting.sum(), Some(4.0));
    assert_eq!(tgi.kv_cache_fraction(), None, "TGI has no KV-cache gauge");
    assert_eq!(tgi.prompt_tokens, Some(31_337.0));
    assert_eq!(tgi.generation_tokens, Some(21_800.0));
    assert_eq!(
        requests(tgi),
        req(&[
            ("failure", "overloaded", 1.0),
            ("failure", "validation", 2.0),
            ("success", "finished", 109.0),
        ])
    );
    assert_eq!(count(tgi, Dist::E2eLatency), Some(109.0));
    assert_eq!(count(tgi, Dist::QueueTime), Some(109.0));
    assert_eq!(count(tgi, Dist::TimePerOutputToken), Some(109.0));
    assert_eq!(
        count(tgi, Dist::TimeToFirstToken),
        None,
        "derived per window"
    );
    assert_eq!(tgi.prefill, (1.6, 16.0));
    assert_eq!(tgi.histograms[&Dist::E2eLatency].buckets.len(), 36);
}

#[test]
fn triton_counters_units_and_trtllm_gauges() {
    let page = page("triton-trtllm.txt", None);
    assert_eq!(page.engine, Some(Engine::Triton));
    let ensemble = model(&page, "ensemble");
    assert_eq!(ensemble.waiting.sum(), Some(7.0));
    assert_eq!(
        requests(ensemble),
        req(&[
            ("failure", "backend", 2.0),
            ("failure", "rejected", 3.0),
            ("success", "finished", 500.0),
        ])
    );
    // Microseconds to seconds.
    assert!((ensemble.durations[&Dist::E2eLatency] - 606.0).abs() < 1e-9);
    assert!((ensemble.durations[&Dist::QueueTime] - 5.05).abs() < 1e-9);
    // Milliseconds to seconds.
    let ttft = &ensemble.histograms[&Dist::TimeToFirstToken];
    let bounds: Vec<f64> = ttft.buckets.keys().map(|b| f64::from_bits(*b)).collect();
    assert_eq!(bounds, [0.1, 0.5, 2.0, 5.0, f64::INFINITY]);
    assert_eq!(ttft.count, 505.0);
    assert!((ttft.sum - 101.0).abs() < 1e-9);
    let trtllm = model(&page, "tensorrt_llm");
    assert_eq!(trtllm.running.sum(), Some(10.0));
    assert_eq!(trtllm.waiting.sum(), Some(2.0));
    assert_eq!(trtllm.kv_cache_fraction(), Some(0.25), "used / max blocks");
}

#[test]
fn a_page_of_no_engine_yields_no_model() {
    let page = page("dcgm-exporter-4.txt", None);
    assert_eq!(page.engine, None);
    assert!(page.models.is_empty());
    assert_eq!(page.samples, 4);
}
