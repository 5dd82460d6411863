//! Hugging Face TGI's names (`router/src/server.rs`, `backends/v3`): no
//! `_total` on counters and no model label (one model per server, named
//! by discovery). Token counts are the sums of the per-request length
//! histograms. TGI has no time to first token; it is derived per window
//! as mean queue time plus mean prefill batch time (what TGI's own
//! dashboard plots) and marked derived.

use super::exposition::Sample;
use super::normalise::{Dist, EngineMap, Part, Signal, histogram_signal};

/// TGI.
pub struct Tgi;

const HISTOGRAMS: &[(&str, Dist)] = &[
    ("tgi_request_duration", Dist::E2eLatency),
    ("tgi_request_queue_duration", Dist::QueueTime),
    (
        "tgi_request_mean_time_per_token_duration",
        Dist::TimePerOutputToken,
    ),
];

impl EngineMap for Tgi {
    fn signal(&self, sample: &Sample<'_, '_>) -> Option<Signal> {
        Some(match sample.name {
            "tgi_batch_current_size" => Signal::Running,
            "tgi_queue_size" => Signal::Waiting,
            "tgi_request_success" => Signal::Requests {
                outcome: "success",
                reason: "finished".to_owned(),
            },
            "tgi_request_failure" => Signal::Requests {
                outcome: "failure",
                reason: sample.label("err").unwrap_or("unknown").to_owned(),
            },
            "tgi_request_input_length_sum" => Signal::PromptTokens,
            "tgi_request_generated_tokens_sum" => Signal::GenerationTokens,
            "tgi_batch_inference_duration_sum" if sample.label("method") == Some("prefill") => {
                Signal::PrefillDuration(Part::Sum)
            }
            "tgi_batch_inference_duration_count" if sample.label("method") == Some("prefill") => {
                Signal::PrefillDuration(Part::Count)
            }
            name if name.starts_with("tgi_request_") => histogram_signal(sample, HISTOGRAMS)?,
            _ => return None,
        })
    }

    fn model<'s>(&self, _sample: &'s Sample<'_, '_>) -> Option<&'s str> {
        None
    }

    fn shard(&self, _sample: &Sample<'_, '_>) -> String {
        String::new()
    }
}
