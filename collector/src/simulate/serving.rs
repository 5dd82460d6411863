//! Inference services on GPU pods: request load with a daily cycle,
//! tokens, queue depth, KV-cache use and latency distributions that grow
//! with load, in the catalog's normalised model-serving families (what the
//! agent makes of vLLM, SGLang and TGI pages).

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::exphist::ExpHistogram;
use tally_schema::otlp;

use super::Rng;
use super::fleet::{Clock, attributes};

/// Latency samples drawn per step; each stands for an equal share of the
/// step's requests, so histogram counts match request counts.
const LATENCY_SAMPLES: u64 = 64;

/// Finished-request outcomes and their shares.
const OUTCOMES: [(&str, &str, f64); 4] = [
    ("success", "stop", 0.9),
    ("success", "length", 0.095),
    ("failure", "abort", 0.003),
    ("failure", "error", 0.002),
];

/// A served model and how it is deployed.
pub(super) struct Model {
    /// The Deployment serving it (the same name on every node: replicas).
    pub workload: &'static str,
    engine: &'static str,
    engine_version: &'static str,
    name: &'static str,
    /// Requests per second one replica sustains before queueing.
    capacity_rps: f64,
    /// Load at the daily peak, as a share of capacity.
    peak_load: f64,
    /// Time to first token at no load, seconds.
    ttft_s: f64,
    /// Inter-token latency at no load, seconds.
    itl_s: f64,
    /// Seconds from scheduling to Ready: image pull, weights download
    /// and load, warm-up (CUDA graphs) and the readiness probe.
    pub load_s: f64,
}

pub(super) const QWEN_7B: Model = Model {
    workload: "qwen-7b-api",
    engine: "sglang",
    engine_version: "0.5.3",
    name: "Qwen/Qwen2.5-7B-Instruct",
    capacity_rps: 5.0,
    peak_load: 0.5,
    ttft_s: 0.06,
    itl_s: 0.012,
    load_s: 240.0,
};
pub(super) const QWEN_0_5B: Model = Model {
    workload: "qwen-0-5b-chat",
    engine: "vllm",
    engine_version: "0.11.0",
    name: "Qwen/Qwen2.5-0.5B-Instruct",
    capacity_rps: 15.0,
    peak_load: 0.08,
    ttft_s: 0.02,
    itl_s: 0.005,
    load_s: 130.0,
};
/// A small model alone on a whole H100: fits a MIG slice.
pub(super) const QWEN_1_5B: Model = Model {
    workload: "qwen-1-5b-summarize",
    engine: "vllm",
    engine_version: "0.11.0",
    name: "Qwen/Qwen2.5-1.5B-Instruct",
    capacity_rps: 20.0,
    peak_load: 0.1,
    ttft_s: 0.025,
    itl_s: 0.006,
    load_s: 150.0,
};
pub(super) const LLAMA_8B: Model = Model {
    workload: "llama-8b-chat",
    engine: "vllm",
    engine_version: "0.11.0",
    name: "meta-llama/Llama-3.1-8B-Instruct",
    capacity_rps: 12.0,
    peak_load: 0.6,
    ttft_s: 0.05,
    itl_s: 0.01,
    load_s: 270.0,
};
pub(super) const LLAMA_70B: Model = Model {
    workload: "llama-70b-chat",
    engine: "vllm",
    engine_version: "0.11.0",
    name: "meta-llama/Llama-3.1-70B-Instruct",
    capacity_rps: 6.0,
    peak_load: 0.95,
    ttft_s: 0.18,
    itl_s: 0.035,
    load_s: 540.0,
};
pub(super) const PHI_3_MINI: Model = Model {
    workload: "phi-3-mini",
    engine: "tgi",
    engine_version: "3.3.6",
    name: "microsoft/Phi-3-mini-4k-instruct",
    capacity_rps: 3.0,
    peak_load: 0.4,
    ttft_s: 0.08,
    itl_s: 0.02,
    load_s: 180.0,
};

/// One replica of a model server and its counters.
pub(super) struct ModelServer {
    model: &'static Model,
    phase: f64,
    max_running: f64,
    prompt_mean: f64,
    generation_mean: f64,
    finished: [f64; OUTCOMES.len()],
    prompt_tokens: f64,
    generation_tokens: f64,
    /// Highest share of capacity the load reaches (a scenario keeps a
    /// healthy service out of overload); 1 and above leave it as drawn.
    pub load_cap: f64,
    /// Multiplies the time to first token (a planted regression).
    pub ttft_factor: f64,
}

/// A log-normal-ish factor around 1 (sum of uniforms, no dependency).
fn spread(rng: &mut Rng, width: f64) -> f64 {
    (width * (rng.unit() + rng.unit() + rng.unit() - 1.5)).exp()
}

impl ModelServer {
    /// The model it serves.
    pub fn model(&self) -> &'static Model {
        self.model
    }

    pub fn new(rng: &mut Rng, model: &'static Model) -> ModelServer {
        let prompt_mean = 400.0 + rng.unit() * 800.0;
        let generation_mean = 150.0 + rng.unit() * 200.0;
        // The batch is full when the load reaches capacity.
        let e2e_at_capacity = model.ttft_s * 3.0 + generation_mean * model.itl_s * 1.8;
        ModelServer {
            model,
            // Users are awake at roughly the same hours: a shared peak.
            phase: rng.unit() * 0.5,
            max_running: (model.capacity_rps * e2e_at_capacity).ceil(),
            prompt_mean,
            generation_mean,
            finished: [0.0; OUTCOMES.len()],
            prompt_tokens: 0.0,
            generation_tokens: 0.0,
            load_cap: f64::INFINITY,
            ttft_factor: 1.0,
        }
    }

    fn labels(&self, extra: &[(&str, &str)]) -> Vec<KeyValue> {
        let mut out = attributes(&[("engine", self.model.engine), ("model", self.model.name)]);
        out.extend(attributes(extra));
        out
    }

    /// Advances one step, appending the server's metrics; returns its load
    /// (requests over capacity).
    pub fn step(&mut self, rng: &mut Rng, clock: &Clock, metrics: &mut Vec<Metric>) -> f64 {
        let model = self.model;
        let load = (model.peak_load * clock.cycle(0.6, self.phase) / 1.6
            * (0.9 + rng.unit() * 0.2))
            .min(self.load_cap);
        let requests = load * model.capacity_rps * clock.step_s;
        for (total, (_, _, share)) in self.finished.iter_mut().zip(OUTCOMES) {
            *total += requests * share;
        }
        self.prompt_tokens += requests * self.prompt_mean * (0.9 + rng.unit() * 0.2);
        self.generation_tokens += requests * self.generation_mean * (0.9 + rng.unit() * 0.2);
        // Past 85 % of capacity the batch is full and requests queue.
        let overload = (load - 0.85).max(0.0);
        let e2e_mean = model.ttft_s + self.generation_mean * model.itl_s * (1.0 + 0.8 * load);
        let running = (load * model.capacity_rps * e2e_mean)
            .min(self.max_running)
            .round();
        let waiting = (overload * self.max_running * 3.0 * (0.5 + rng.unit())).round();
        let kv_cache = (running / self.max_running * 0.85 + 0.03 + rng.unit() * 0.02).min(0.99);

        let mut ttft = ExpHistogram::default();
        let mut itl = ExpHistogram::default();
        let mut tpot = ExpHistogram::default();
        let mut e2e = ExpHistogram::default();
        let mut queue = ExpHistogram::default();
        let weight = ((requests / LATENCY_SAMPLES as f64).round() as u64).max(1);
        for _ in 0..LATENCY_SAMPLES {
            let queued = if overload > 0.0 {
                overload * 8.0 * -(1.0 - rng.unit()).ln()
            } else {
                rng.unit() * 0.002
            };
            let first =
                model.ttft_s * self.ttft_factor * (1.0 + 2.0 * load * load) * spread(rng, 0.7)
                    + queued;
            let between = model.itl_s * (1.0 + 0.8 * load) * spread(rng, 0.5);
            let per_token = between * (0.95 + rng.unit() * 0.1);
            let tokens = self.generation_mean * (0.2 + rng.unit() * 1.6);
            queue.record_n(queued, weight);
            ttft.record_n(first, weight);
            itl.record_n(between, weight);
            tpot.record_n(per_token, weight);
            e2e.record_n(first + tokens * per_token, weight);
        }

        let gauge = |def: &MetricDef, value: f64| {
            otlp::gauge(def, vec![clock.point(self.labels(&[]), value)])
        };
        let counter = |def: &MetricDef, value: f64| {
            otlp::cumulative_sum(def, vec![clock.point(self.labels(&[]), value)])
        };
        let distribution = |def: &MetricDef, h: &ExpHistogram| {
            otlp::exp_histogram(def, vec![clock.window(self.labels(&[]), h)])
        };
        metrics.push(otlp::gauge(
            &catalog::MODEL_INFO,
            vec![clock.point(
                self.labels(&[("engine_version", model.engine_version)]),
                1.0,
            )],
        ));
        metrics.push(gauge(&catalog::MODEL_REQUESTS_RUNNING, running));
        metrics.push(gauge(&catalog::MODEL_REQUESTS_WAITING, waiting));
        metrics.push(gauge(&catalog::MODEL_KV_CACHE_USAGE, kv_cache));
        metrics.push(otlp::cumulative_sum(
            &catalog::MODEL_REQUESTS,
            self.finished
                .iter()
                .zip(OUTCOMES)
                .map(|(total, (outcome, reason, _))| {
                    clock.point(
                        self.labels(&[("outcome", outcome), ("reason", reason)]),
                        total.round(),
                    )
                })
                .collect(),
        ));
        metrics.push(counter(
            &catalog::MODEL_PROMPT_TOKENS,
            self.prompt_tokens.round(),
        ));
        metrics.push(counter(
            &catalog::MODEL_GENERATION_TOKENS,
            self.generation_tokens.round(),
        ));
        metrics.push(distribution(&catalog::MODEL_TIME_TO_FIRST_TOKEN, &ttft));
        // TGI reports only the per-request mean time per token, no
        // inter-token latency.
        if model.engine != "tgi" {
            metrics.push(distribution(&catalog::MODEL_INTER_TOKEN_LATENCY, &itl));
        }
        metrics.push(distribution(&catalog::MODEL_TIME_PER_OUTPUT_TOKEN, &tpot));
        metrics.push(distribution(&catalog::MODEL_E2E_REQUEST_LATENCY, &e2e));
        metrics.push(distribution(&catalog::MODEL_REQUEST_QUEUE_TIME, &queue));
        load
    }
}
