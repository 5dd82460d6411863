//! Model-serving telemetry end to end: a local HTTP server serves a
//! vLLM-style and a Triton-style page whose counters and histograms grow
//! with time (the project's own pages, not captures), plus a server that
//! hangs and one whose page has broken lines. The real `tally agent`
//! scrapes them (`--scrape`) and pushes to the real `tally collector`;
//! the collector's `/api/v1/models` shows the rates, the error ratio and
//! the latency quantiles the pages imply, and the agent's `/metrics` shows
//! each target's health.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;

/// Seconds since the page server started.
fn elapsed(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// vLLM V1 names. Per second: 1,000 prompt and 500 generated tokens, 40
/// requests stopping normally and 10 failing; per 100 ms tick 400 first
/// tokens in (0.04, 0.06] s and 100 in (0.25, 0.5] s, so the p95 that
/// `histogram_quantile` gives is 0.25 + 0.25 × 0.75 = 0.4375 s.
fn vllm_page(start: Instant) -> String {
    let t = elapsed(start);
    let ticks = (t * 10.0).floor();
    let m = "model_name=\"tiny-llama\",engine=\"0\"";
    let (fast, slow) = (400.0 * ticks, 100.0 * ticks);
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{{m}}} 5.0\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{{m}}} 3.0\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{{m}}} 0.42\n\
         # TYPE vllm:prompt_tokens_total counter\n\
         vllm:prompt_tokens_total{{{m}}} {prompt}\n\
         # TYPE vllm:generation_tokens_total counter\n\
         vllm:generation_tokens_total{{{m}}} {generation}\n\
         # TYPE vllm:request_success_total counter\n\
         vllm:request_success_total{{{m},finished_reason=\"stop\"}} {stop}\n\
         vllm:request_success_total{{{m},finished_reason=\"error\"}} {error}\n\
         # TYPE vllm:time_to_first_token_seconds histogram\n\
         vllm:time_to_first_token_seconds_bucket{{{m},le=\"0.04\"}} 0.0\n\
         vllm:time_to_first_token_seconds_bucket{{{m},le=\"0.06\"}} {fast}\n\
         vllm:time_to_first_token_seconds_bucket{{{m},le=\"0.25\"}} {fast}\n\
         vllm:time_to_first_token_seconds_bucket{{{m},le=\"0.5\"}} {all}\n\
         vllm:time_to_first_token_seconds_bucket{{{m},le=\"+Inf\"}} {all}\n\
         vllm:time_to_first_token_seconds_count{{{m}}} {all}\n\
         vllm:time_to_first_token_seconds_sum{{{m}}} {sum}\n",
        prompt = 1000.0 * t,
        generation = 500.0 * t,
        stop = 40.0 * t,
        error = 10.0 * t,
        all = fast + slow,
        sum = fast * 0.05 + slow * 0.4,
    )
}

/// Triton: 20 successes a second, each 300 ms end to end with 10 ms in
/// the queue, as cumulative microsecond counters without `_total`.
fn triton_page(start: Instant) -> String {
    let t = elapsed(start);
    let m = "model=\"resnet\",version=\"1\"";
    format!(
        "# TYPE nv_inference_request_success counter\n\
         nv_inference_request_success{{{m}}} {success}\n\
         # TYPE nv_inference_request_failure counter\n\
         nv_inference_request_failure{{{m},reason=\"REJECTED\"}} 0\n\
         # TYPE nv_inference_request_duration_us counter\n\
         nv_inference_request_duration_us{{{m}}} {duration}\n\
         # TYPE nv_inference_queue_duration_us counter\n\
         nv_inference_queue_duration_us{{{m}}} {queue}\n\
         # TYPE nv_inference_pending_request_count gauge\n\
         nv_inference_pending_request_count{{{m}}} 2\n",
        success = 20.0 * t,
        duration = 20.0 * t * 300_000.0,
        queue = 20.0 * t * 10_000.0,
    )
}

/// A page with two broken lines between good ones.
const BROKEN_PAGE: &str = "vllm:num_requests_running{model_name=\"broken\"} 1\n\
vllm:num_requests_waiting{model_name=\"broken\" 7\n\
not a sample\n\
vllm:kv_cache_usage_perc{model_name=\"broken\"} 0.5\n";

/// Serves the pages on a free port from a thread of its own.
fn start_pages() -> u16 {
    let port = common::free_port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let start = Instant::now();
            let app = Router::new()
                .route(
                    "/vllm/metrics",
                    get(move || async move { vllm_page(start) }),
                )
                .route(
                    "/triton/metrics",
                    get(move || async move { triton_page(start) }),
                )
                .route(
                    "/hang/metrics",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        String::new()
                    }),
                )
                .route("/broken/metrics", get(|| async { BROKEN_PAGE }))
                // vLLM's version endpoint (Triton's /v2 is not served here:
                // its version stays unknown).
                .route("/version", get(|| async { r#"{"version":"0.12.0"}"# }))
                // Ollama: no metrics page; its loaded models and version.
                .route(
                    "/api/ps",
                    get(|| async {
                        r#"{"models":[{"name":"llama3.2:3b","model":"llama3.2:3b","size":3800000000,"size_vram":3400000000,"expires_at":"2026-12-01T16:30:00Z"}]}"#
                    }),
                )
                .route("/api/version", get(|| async { r#"{"version":"0.9.0"}"# }));
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            let _ = axum::serve(listener, app).await;
        });
    });
    port
}

fn api(port: u16, path: &str) -> Value {
    let (status, body) = common::http_get(&format!("http://127.0.0.1:{port}{path}")).expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn close(value: &Value, expected: f64, tolerance: f64) -> bool {
    value
        .as_f64()
        .is_some_and(|v| (v - expected).abs() <= tolerance)
}

#[test]
fn scraped_servers_reach_the_models_view() {
    let pages = start_pages();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let listen = format!("127.0.0.1:{}", common::free_port());
    let url = |path: &str| format!("http://127.0.0.1:{pages}/{path}/metrics");
    let (vllm, triton, hang, broken) = (url("vllm"), url("triton"), url("hang"), url("broken"));
    let ollama = format!("http://127.0.0.1:{pages}/api/ps");
    let log = dir.path().join("agent.log");
    let _agent = common::start_agent(
        &[
            "--listen",
            &listen,
            "--collector",
            &format!("http://127.0.0.1:{port}"),
            "--scrape",
            &vllm,
            "--scrape",
            &triton,
            "--scrape",
            &hang,
            "--scrape",
            &broken,
            "--scrape",
            &ollama,
        ],
        &[
            ("TALLY_CGROUPS_ROOT", dir.path().to_str().expect("utf8")),
            (
                "TALLY_SPOOL_DIR",
                dir.path().join("spool").to_str().expect("utf8"),
            ),
            ("TALLY_SAMPLING_INTERVAL", "200ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "1s"),
            ("TALLY_SERVING_INTERVAL", "300ms"),
            ("TALLY_SERVING_TIMEOUT", "250ms"),
            ("TALLY_GPU_MODE", "off"),
        ],
        &log,
    );

    let deadline = Instant::now() + Duration::from_secs(40);
    let (vllm_row, triton_row) = loop {
        let models = api(port, "/api/v1/models?window=1h");
        let rows = models["models"].as_array().cloned().unwrap_or_default();
        let row = |engine: &str| {
            rows.iter()
                .find(|r| r["engine"] == engine && r["model"] != "broken")
                .cloned()
        };
        let ready = |r: &Value, fields: &[&str]| fields.iter().all(|f| !r[*f].is_null());
        let ollama_known = row("ollama").is_some_and(|r| r["engine_version"] == "0.9.0");
        if let (Some(v), Some(t), true) = (row("vllm"), row("triton"), ollama_known)
            && ready(
                &v,
                &[
                    "tokens_per_second",
                    "error_ratio",
                    "time_to_first_token_seconds_p95",
                ],
            )
            && ready(
                &t,
                &["requests_per_second", "e2e_request_latency_seconds_p95"],
            )
        {
            break (v, t);
        }
        assert!(
            Instant::now() < deadline,
            "models never complete: {models}; agent log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // vLLM: rates from the scrape times, the error ratio from the reasons,
    // the p95 from the buckets.
    assert_eq!(vllm_row["model"], "tiny-llama", "{vllm_row}");
    assert_eq!(vllm_row["engine_version"], "0.12.0", "{vllm_row}");
    assert!(
        close(&vllm_row["tokens_per_second"], 1500.0, 75.0),
        "{vllm_row}"
    );
    assert!(
        close(&vllm_row["requests_per_second"], 50.0, 2.5),
        "{vllm_row}"
    );
    assert!(close(&vllm_row["error_ratio"], 0.2, 0.01), "{vllm_row}");
    assert!(
        close(&vllm_row["time_to_first_token_seconds_p95"], 0.4375, 0.03),
        "{vllm_row}"
    );
    assert!(
        close(&vllm_row["time_to_first_token_seconds_p50"], 0.05, 0.01),
        "{vllm_row}"
    );
    assert!(close(&vllm_row["kv_cache_usage"], 0.42, 1e-9), "{vllm_row}");
    assert!(close(&vllm_row["queue_depth"], 3.0, 1e-9), "{vllm_row}");
    assert!(
        close(&vllm_row["requests_running"], 5.0, 1e-9),
        "{vllm_row}"
    );

    // Triton: the window means of its microsecond counters.
    assert_eq!(triton_row["model"], "resnet", "{triton_row}");
    assert_eq!(triton_row["engine_version"], "unknown", "{triton_row}");
    assert!(
        close(&triton_row["requests_per_second"], 20.0, 1.0),
        "{triton_row}"
    );
    assert!(
        close(&triton_row["e2e_request_latency_seconds_p95"], 0.3, 0.01),
        "{triton_row}"
    );
    assert!(
        close(&triton_row["request_queue_time_seconds_p95"], 0.01, 0.0005),
        "{triton_row}"
    );
    assert!(close(&triton_row["queue_depth"], 2.0, 1e-9), "{triton_row}");

    // The agent's own view of its targets: the hanging one is cut at the
    // timeout and never held the others up; the broken page's good lines
    // still count.
    let (status, page) = common::http_get(&format!("http://{listen}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    let series = |name: &str, target: &str| -> Vec<String> {
        page.lines()
            .filter(|l| l.starts_with(name) && l.contains(&format!("target=\"{target}\"")))
            .map(str::to_owned)
            .collect()
    };
    let value = |line: &str| -> f64 {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let one = |name: &str, target: &str| -> f64 {
        let found = series(name, target);
        assert_eq!(found.len(), 1, "{name} {target}: {found:?}\n{page}");
        value(&found[0])
    };
    assert_eq!(one("tally_agent_scrape_up{", &vllm), 1.0);
    assert_eq!(one("tally_agent_scrape_up{", &hang), 0.0);
    assert_eq!(one("tally_agent_scrape_up{", &broken), 1.0);
    assert_eq!(one("tally_agent_scrape_samples{", &broken), 2.0);
    assert!(one("tally_agent_scrape_duration_seconds{", &hang) >= 0.25);
    assert!(one("tally_agent_scrape_duration_seconds{", &vllm) < 0.25);
    let errors = |target: &str, kind: &str| {
        series("tally_agent_scrape_errors_total{", target)
            .iter()
            .filter(|l| l.contains(&format!("kind=\"{kind}\"")))
            .map(|l| value(l))
            .sum::<f64>()
    };
    assert!(errors(&hang, "timeout") >= 1.0, "{page}");
    assert!(errors(&broken, "label") >= 1.0, "{page}");
    assert!(errors(&broken, "value") >= 1.0, "{page}");
    assert_eq!(errors(&vllm, "timeout"), 0.0);
    assert!(
        page.contains("engine=\"triton\""),
        "the engine is read from the page"
    );
    // Ollama: the loaded model and the GPU memory it holds.
    assert!(
        page.lines()
            .any(|l| l.starts_with("tally_model_gpu_memory_bytes{")
                && l.contains("engine=\"ollama\"")
                && l.contains("model=\"llama3.2:3b\"")
                && l.ends_with(" 3400000000")),
        "{page}"
    );
    // Triton's latencies are means of counters: marked derived.
    assert!(
        page.lines()
            .any(|l| l.starts_with("tally_model_derived_info{")
                && l.contains("family=\"tally_model_e2e_request_latency_seconds\"")
                && l.contains("method=\"window_mean_of_duration_counters\"")),
        "{page}"
    );
}
