//! vLLM's names, V0 and V1 (`vllm/v1/metrics/loggers.py`). Renamed
//! families are read under both names: `gpu_cache_usage_perc` (before
//! 0.12) and `kv_cache_usage_perc` are both 0..1; the old
//! `time_per_output_token_seconds` was the per-step inter-token latency.

use super::exposition::Sample;
use super::normalise::{Dist, EngineMap, Signal, histogram_signal};

/// vLLM.
pub struct Vllm;

const HISTOGRAMS: &[(&str, Dist)] = &[
    ("vllm:time_to_first_token_seconds", Dist::TimeToFirstToken),
    ("vllm:inter_token_latency_seconds", Dist::InterTokenLatency),
    (
        "vllm:time_per_output_token_seconds",
        Dist::InterTokenLatency,
    ),
    (
        "vllm:request_time_per_output_token_seconds",
        Dist::TimePerOutputToken,
    ),
    ("vllm:e2e_request_latency_seconds", Dist::E2eLatency),
    ("vllm:request_queue_time_seconds", Dist::QueueTime),
];

impl EngineMap for Vllm {
    fn signal(&self, sample: &Sample<'_, '_>) -> Option<Signal> {
        Some(match sample.name {
            "vllm:num_requests_running" => Signal::Running,
            "vllm:num_requests_waiting" => Signal::Waiting,
            "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => Signal::KvCache,
            "vllm:prompt_tokens_total" => Signal::PromptTokens,
            "vllm:generation_tokens_total" => Signal::GenerationTokens,
            "vllm:request_success_total" => {
                let reason = sample.label("finished_reason").unwrap_or("unknown");
                let outcome = match reason {
                    "abort" | "error" => "failure",
                    _ => "success",
                };
                Signal::Requests {
                    outcome,
                    reason: reason.to_owned(),
                }
            }
            name if name.starts_with("vllm:") => histogram_signal(sample, HISTOGRAMS)?,
            _ => return None,
        })
    }

    fn model<'s>(&self, sample: &'s Sample<'_, '_>) -> Option<&'s str> {
        sample.label("model_name")
    }

    fn shard(&self, sample: &Sample<'_, '_>) -> String {
        // V1 data-parallel engines; V0 has no `engine` label.
        sample.label("engine").unwrap_or("0").to_owned()
    }
}
