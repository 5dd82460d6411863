//! NVIDIA Triton's names (`core/src/metrics.cc`) and the TensorRT-LLM
//! backend's gauges. Counters have no `_total`. Latencies are cumulative
//! microsecond counters: the window's mean (Δduration / Δrequests) is all
//! they give, so those distributions are marked derived. The opt-in first
//! response histogram is in milliseconds.

use super::exposition::Sample;
use super::normalise::{Dist, EngineMap, Signal, histogram_part};

/// Triton.
pub struct Triton;

const MICROS: f64 = 1e-6;

impl EngineMap for Triton {
    fn signal(&self, sample: &Sample<'_, '_>) -> Option<Signal> {
        Some(match sample.name {
            "nv_inference_pending_request_count" => Signal::Waiting,
            "nv_trt_llm_request_metrics" => match sample.label("request_type")? {
                "active" => Signal::Running,
                "waiting" => Signal::Waiting,
                _ => return None,
            },
            "nv_trt_llm_kv_cache_block_metrics" => match sample.label("kv_cache_block_type")? {
                "used" => Signal::KvBlocksUsed,
                "max" => Signal::KvBlocksMax,
                _ => return None,
            },
            "nv_inference_request_success" => Signal::Requests {
                outcome: "success",
                reason: "finished".to_owned(),
            },
            "nv_inference_request_failure" => Signal::Requests {
                outcome: "failure",
                reason: sample
                    .label("reason")
                    .unwrap_or("unknown")
                    .to_ascii_lowercase(),
            },
            "nv_inference_request_duration_us" => Signal::DurationTotal {
                dist: Dist::E2eLatency,
                scale: MICROS,
            },
            "nv_inference_queue_duration_us" => Signal::DurationTotal {
                dist: Dist::QueueTime,
                scale: MICROS,
            },
            name if name.starts_with("nv_inference_first_response_histogram_ms") => {
                Signal::Histogram {
                    dist: Dist::TimeToFirstToken,
                    part: histogram_part(sample, "nv_inference_first_response_histogram_ms")?,
                    scale: 1e-3,
                }
            }
            _ => return None,
        })
    }

    fn model<'s>(&self, sample: &'s Sample<'_, '_>) -> Option<&'s str> {
        sample.label("model")
    }

    fn shard(&self, sample: &Sample<'_, '_>) -> String {
        sample.label("version").unwrap_or("").to_owned()
    }
}
