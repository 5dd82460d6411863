//! SGLang's names (`sglang/srt/observability/metrics_collector.py`), with
//! the older `time_per_output_token_seconds` (per-step, i.e. inter-token
//! latency). Tensor- and pipeline-parallel ranks other than 0 repeat rank
//! 0's scheduler numbers and are skipped; data-parallel ranks add up.

use super::exposition::Sample;
use super::normalise::{Dist, EngineMap, Signal, histogram_signal};

/// SGLang.
pub struct Sglang;

const HISTOGRAMS: &[(&str, Dist)] = &[
    ("sglang:time_to_first_token_seconds", Dist::TimeToFirstToken),
    (
        "sglang:inter_token_latency_seconds",
        Dist::InterTokenLatency,
    ),
    (
        "sglang:time_per_output_token_seconds",
        Dist::InterTokenLatency,
    ),
    (
        "sglang:request_time_per_output_token_seconds",
        Dist::TimePerOutputToken,
    ),
    ("sglang:e2e_request_latency_seconds", Dist::E2eLatency),
    ("sglang:queue_time_seconds", Dist::QueueTime),
];

impl EngineMap for Sglang {
    fn signal(&self, sample: &Sample<'_, '_>) -> Option<Signal> {
        Some(match sample.name {
            "sglang:num_running_reqs" => Signal::Running,
            "sglang:num_queue_reqs" => Signal::Waiting,
            "sglang:token_usage" => Signal::KvCache,
            "sglang:prompt_tokens_total" => Signal::PromptTokens,
            "sglang:generation_tokens_total" => Signal::GenerationTokens,
            "sglang:num_requests_total" => Signal::RequestsAll,
            "sglang:num_aborted_requests_total" => Signal::Aborted,
            name if name.starts_with("sglang:") => histogram_signal(sample, HISTOGRAMS)?,
            _ => return None,
        })
    }

    fn model<'s>(&self, sample: &'s Sample<'_, '_>) -> Option<&'s str> {
        sample.label("model_name")
    }

    fn shard(&self, sample: &Sample<'_, '_>) -> String {
        sample.label("dp_rank").unwrap_or("0").to_owned()
    }

    fn duplicate(&self, sample: &Sample<'_, '_>) -> bool {
        ["tp_rank", "pp_rank", "moe_ep_rank"]
            .iter()
            .any(|rank| sample.label(rank).is_some_and(|r| r != "0"))
    }
}
