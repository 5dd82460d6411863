//! Exposition parser throughput (issue #6 target: ≥ 200 MiB/s on one core
//! for a 10 MiB vLLM-style page).
//!
//! `cargo bench -p tally-agent --bench exposition` generates a page laid
//! out as vLLM's `/metrics` is (prometheus_client's text output: `HELP` and
//! `TYPE` per family, `vllm:*` gauges, counters with `_total` and
//! `_created`, histograms with `le` buckets, `engine` and `model_name`
//! labels, Python's float formatting) with enough engines and models to
//! pass 10 MiB, and times `exposition::parse` over it on this thread.
//! `BENCH_PAGE_OUT=path` also writes the page, so
//! `scripts/bench-exposition.sh` can time Python's parser on the same
//! bytes. A plain timing loop keeps criterion's compile cost out of the
//! build.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tally_agent::sources::serving::exposition::{self, ParseError, Sample, Visitor};

const TARGET_BYTES: usize = 10 << 20;
const RUNS: usize = 15;

const GAUGES: [(&str, &str); 6] = [
    (
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
    ),
    (
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
    ),
    (
        "vllm:num_requests_swapped",
        "Number of requests swapped to CPU. DEPRECATED: KV cache offloading is not used in V1",
    ),
    (
        "vllm:gpu_cache_usage_perc",
        "GPU KV-cache usage. 1 means 100 percent usage.",
    ),
    (
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
    ),
    ("vllm:lora_requests_info", "Running stats on lora requests."),
];

const COUNTERS: [(&str, &str); 6] = [
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    (
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
    ),
    (
        "vllm:num_preemptions",
        "Cumulative number of preemption from the engine.",
    ),
    (
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
    ),
    (
        "vllm:prefix_cache_hits",
        "Prefix cache hits, in terms of number of cached tokens.",
    ),
    (
        "vllm:request_success",
        "Count of successfully processed requests.",
    ),
];

const LATENCY_BUCKETS: [&str; 20] = [
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0",
    "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "+Inf",
];

const TOKEN_BUCKETS: [&str; 12] = [
    "1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0", "2000.0",
    "+Inf",
];

const HISTOGRAMS: [(&str, &str, bool); 9] = [
    (
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        true,
    ),
    (
        "vllm:time_per_output_token_seconds",
        "Histogram of time per output token in seconds.",
        true,
    ),
    (
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        true,
    ),
    (
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        true,
    ),
    (
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        true,
    ),
    (
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        true,
    ),
    (
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        false,
    ),
    (
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        false,
    ),
    (
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        false,
    ),
];

/// Python's `repr(float)` for the values prometheus_client writes (`3.0`,
/// `1.7e+09`, `0.123456789`), which is what vLLM serves.
fn py_float(value: f64) -> String {
    if value != 0.0 && (value.abs() >= 1e16 || value.abs() < 1e-4) {
        let text = format!("{value:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(digits) => ('-', digits),
                    None => ('+', exponent),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => text,
        }
    } else if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// A deterministic stream of "random" values (xorshift64).
struct Values(u64);

impl Values {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The page for `engines` engines of each of `models` models.
fn page(engines: usize, models: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut values = Values(0x9e37_79b9_7f4a_7c15);
    let created = 1_764_590_000.123_456_7;
    let series: Vec<String> = (0..models)
        .flat_map(|m| {
            (0..engines).map(move |e| {
                format!(
                    "engine=\"{e}\",model_name=\"org-{m}/Llama-3.1-{}B-Instruct\"",
                    8 + m
                )
            })
        })
        .collect();
    for (name, help) in GAUGES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for labels in &series {
            let value = (values.next() * 64.0).floor();
            let _ = writeln!(out, "{name}{{{labels}}} {}", py_float(value));
        }
    }
    for (name, help) in COUNTERS {
        let _ = writeln!(
            out,
            "# HELP {name}_total {help}\n# TYPE {name}_total counter"
        );
        for labels in &series {
            let value = (values.next() * 1e7).floor();
            let _ = writeln!(out, "{name}_total{{{labels}}} {}", py_float(value));
        }
        let _ = writeln!(
            out,
            "# HELP {name}_created {help}\n# TYPE {name}_created gauge"
        );
        for labels in &series {
            let _ = writeln!(out, "{name}_created{{{labels}}} {}", py_float(created));
        }
    }
    for (name, help, seconds) in HISTOGRAMS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let buckets: &[&str] = if seconds {
            &LATENCY_BUCKETS
        } else {
            &TOKEN_BUCKETS
        };
        for labels in &series {
            // prometheus_client writes `_sum` before the buckets and the
            // `le` label between `engine` and `model_name`.
            let (engine, model) = labels.split_once(',').unwrap_or((labels, ""));
            let mut count = 0.0;
            let mut lines = Vec::with_capacity(buckets.len());
            for le in buckets {
                count += (values.next() * 500.0).floor();
                lines.push(format!(
                    "{name}_bucket{{{engine},le=\"{le}\",{model}}} {}",
                    py_float(count)
                ));
            }
            let sum = count * values.next() * if seconds { 0.7 } else { 300.0 };
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", py_float(sum));
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", py_float(count));
        }
        let _ = writeln!(
            out,
            "# HELP {name}_created {help}\n# TYPE {name}_created gauge"
        );
        for labels in &series {
            let _ = writeln!(out, "{name}_created{{{labels}}} {}", py_float(created));
        }
    }
    out
}

/// Keeps every sample's bytes and value live so nothing is optimised out.
#[derive(Default)]
struct Count {
    samples: usize,
    labels: usize,
    errors: usize,
    checksum: f64,
}

impl<'a> Visitor<'a> for Count {
    fn sample(&mut self, sample: &Sample<'a, '_>) {
        self.samples += 1;
        self.labels += sample.labels.len();
        self.checksum += sample.value;
    }
    fn error(&mut self, _error: ParseError) {
        self.errors += 1;
    }
}

fn main() {
    // Families' HELP and TYPE lines are fixed; the rest grows with the
    // number of (engine, model) series.
    let engines = 8;
    let per_model = page(engines, 2).len() - page(engines, 1).len();
    let models = TARGET_BYTES.div_ceil(per_model);
    let page = page(engines, models);
    let bytes = page.as_bytes();
    let mib = bytes.len() as f64 / f64::from(1 << 20);
    if let Ok(path) = std::env::var("BENCH_PAGE_OUT")
        && let Err(e) = std::fs::write(&path, bytes)
    {
        eprintln!("exposition: cannot write {path}: {e}");
        std::process::exit(1);
    }

    let mut check = Count::default();
    let summary = exposition::parse(bytes, &mut check);
    if summary.errors != 0 || check.errors != 0 {
        eprintln!(
            "exposition: the generated page has {} bad lines",
            summary.errors
        );
        std::process::exit(1);
    }

    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let mut count = Count::default();
            let began = Instant::now();
            let summary = exposition::parse(black_box(bytes), &mut count);
            let took = began.elapsed();
            black_box((summary, count.labels, count.checksum));
            took
        })
        .collect();
    times.sort();
    let median = times[RUNS / 2];
    let best = times[0];
    println!(
        "exposition: {mib:.2} MiB page, {} lines, {} samples ({} labels); {RUNS} runs",
        summary.lines, summary.samples, check.labels
    );
    println!(
        "exposition: parse median {:.2} ms ({:.0} MiB/s, {:.1} M samples/s), best {:.2} ms ({:.0} MiB/s)",
        median.as_secs_f64() * 1e3,
        mib / median.as_secs_f64(),
        summary.samples as f64 / median.as_secs_f64() / 1e6,
        best.as_secs_f64() * 1e3,
        mib / best.as_secs_f64(),
    );
}
