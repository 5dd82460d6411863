//! One scraped page → the catalog's model-serving readings per served
//! model, whatever the engine called them.
//!
//! Each engine's file (`vllm.rs`, `sglang.rs`, `tgi.rs`, `triton.rs`) maps
//! a sample to a [`Signal`]; this file sums the engine's shards (vLLM's
//! `engine` index, SGLang's `dp_rank`) into one reading per model. Values
//! stay cumulative here; [`super::window`] turns them into deltas.

use std::collections::BTreeMap;

use super::engine::Engine;
use super::exposition::{self, ParseError, Sample};

/// A latency distribution of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dist {
    /// Time to first token.
    TimeToFirstToken,
    /// Time between consecutive output tokens.
    InterTokenLatency,
    /// Per-request mean time per output token.
    TimePerOutputToken,
    /// End-to-end request latency.
    E2eLatency,
    /// Time in the queue.
    QueueTime,
}

impl Dist {
    /// Every distribution.
    pub const ALL: [Dist; 5] = [
        Dist::TimeToFirstToken,
        Dist::InterTokenLatency,
        Dist::TimePerOutputToken,
        Dist::E2eLatency,
        Dist::QueueTime,
    ];
}

/// Which part of a histogram (or duration counter) a sample is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    /// A `_bucket` line with its upper bound, in the engine's unit.
    Bucket(f64),
    /// `_sum`, in the engine's unit.
    Sum,
    /// `_count`.
    Count,
}

/// What one sample contributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Requests in the running batch.
    Running,
    /// Requests queued.
    Waiting,
    /// KV-cache use as a fraction (already 0..1).
    KvCache,
    /// KV-cache blocks in use (with [`Signal::KvBlocksMax`]: a fraction).
    KvBlocksUsed,
    /// KV-cache blocks in all.
    KvBlocksMax,
    /// Finished requests, cumulative, by outcome and reason.
    Requests {
        /// `success` or `failure`.
        outcome: &'static str,
        /// The engine's reason.
        reason: String,
    },
    /// Every request, cumulative (SGLang: successes are this minus
    /// [`Signal::Aborted`]).
    RequestsAll,
    /// Aborted requests, cumulative.
    Aborted,
    /// Prompt tokens, cumulative.
    PromptTokens,
    /// Generated tokens, cumulative.
    GenerationTokens,
    /// A histogram line; `scale` converts the engine's unit to seconds.
    Histogram {
        /// Which distribution.
        dist: Dist,
        /// Bucket, sum or count.
        part: Part,
        /// Multiplier to seconds.
        scale: f64,
    },
    /// A cumulative duration counter (Triton's µs counters): the window's
    /// mean is Δduration / Δrequests.
    DurationTotal {
        /// Which distribution.
        dist: Dist,
        /// Multiplier to seconds.
        scale: f64,
    },
    /// TGI's prefill batches: their mean plus the mean queue time is the
    /// derived time to first token.
    PrefillDuration(Part),
}

/// How an engine names what we read.
pub trait EngineMap {
    /// The signal a sample carries, if any.
    fn signal(&self, sample: &Sample<'_, '_>) -> Option<Signal>;
    /// The served model a sample belongs to (`None`: the target's own).
    fn model<'s>(&self, sample: &'s Sample<'_, '_>) -> Option<&'s str>;
    /// Shard key within one model (series with the same key repeat each
    /// other, different keys add up).
    fn shard(&self, sample: &Sample<'_, '_>) -> String;
    /// Whether the sample is a duplicate of another shard's (SGLang's
    /// tensor-parallel ranks other than 0 report the same numbers).
    fn duplicate(&self, _sample: &Sample<'_, '_>) -> bool {
        false
    }
}

/// The map for an engine with a metrics page.
pub fn map_for(engine: Engine) -> Option<&'static dyn EngineMap> {
    Some(match engine {
        Engine::Vllm => &super::vllm::Vllm,
        Engine::Sglang => &super::sglang::Sglang,
        Engine::Tgi => &super::tgi::Tgi,
        Engine::Triton => &super::triton::Triton,
        Engine::Ollama => return None,
    })
}

/// A cumulative histogram summed over shards, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CumulativeHistogram {
    /// Cumulative counts by upper bound (seconds, as bits for ordering;
    /// `+Inf` included).
    pub buckets: BTreeMap<u64, f64>,
    /// Sum of observations.
    pub sum: f64,
    /// Observations.
    pub count: f64,
}

/// Orders non-negative bounds by their bits.
pub fn bound_key(bound: f64) -> u64 {
    bound.max(0.0).to_bits()
}

/// A gauge read from several shards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardedGauge(BTreeMap<String, f64>);

impl ShardedGauge {
    fn set(&mut self, shard: String, value: f64) {
        let slot = self.0.entry(shard).or_insert(f64::NEG_INFINITY);
        *slot = slot.max(value);
    }

    /// The shards added up.
    pub fn sum(&self) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.values().sum())
    }

    /// The shards' mean.
    pub fn mean(&self) -> Option<f64> {
        self.sum().map(|s| s / self.0.len() as f64)
    }
}

/// One served model's cumulative readings on one page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPage {
    /// Requests running.
    pub running: ShardedGauge,
    /// Requests waiting.
    pub waiting: ShardedGauge,
    /// KV-cache fraction.
    pub kv_cache: ShardedGauge,
    /// KV blocks used and in all.
    pub kv_blocks: (ShardedGauge, ShardedGauge),
    /// Finished requests by (outcome, reason).
    pub requests: BTreeMap<(&'static str, String), f64>,
    /// Every request (SGLang).
    pub requests_all: Option<f64>,
    /// Aborted requests (SGLang).
    pub aborted: Option<f64>,
    /// Prompt tokens.
    pub prompt_tokens: Option<f64>,
    /// Generated tokens.
    pub generation_tokens: Option<f64>,
    /// Histograms read as such.
    pub histograms: BTreeMap<Dist, CumulativeHistogram>,
    /// Duration counters (seconds).
    pub durations: BTreeMap<Dist, f64>,
    /// TGI prefill batches (sum in seconds, count).
    pub prefill: (f64, f64),
    /// GPU memory the loaded model holds (Ollama's `size_vram`).
    pub gpu_memory: Option<f64>,
}

impl ModelPage {
    /// KV-cache use: the engine's fraction, else used / max blocks.
    pub fn kv_cache_fraction(&self) -> Option<f64> {
        self.kv_cache.mean().or_else(|| {
            let used = self.kv_blocks.0.sum()?;
            let max = self.kv_blocks.1.sum()?;
            (max > 0.0).then(|| (used / max).clamp(0.0, 1.0))
        })
    }

    /// Finished requests by (outcome, reason), SGLang's derived from its
    /// total and aborted counters.
    pub fn finished_requests(&self) -> BTreeMap<(&'static str, String), f64> {
        let mut out = self.requests.clone();
        if let Some(all) = self.requests_all {
            let aborted = self.aborted.unwrap_or(0.0);
            out.insert(("success", "finished".to_owned()), (all - aborted).max(0.0));
            if self.aborted.is_some() {
                out.insert(("failure", "abort".to_owned()), aborted);
            }
        }
        out
    }
}

/// What one page held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The engine (from discovery or detected from the page).
    pub engine: Option<Engine>,
    /// Readings per served model.
    pub models: BTreeMap<String, ModelPage>,
    /// Samples on the page.
    pub samples: usize,
    /// Rejected lines by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first rejected line of each kind (logged once per target).
    pub first_errors: BTreeMap<&'static str, ParseError>,
}

struct Reader<'m> {
    page: Page,
    fallback_model: &'m str,
}

impl<'a> exposition::Visitor<'a> for Reader<'_> {
    fn sample(&mut self, sample: &Sample<'a, '_>) {
        self.page.samples += 1;
        let engine = match self.page.engine {
            Some(engine) => engine,
            None => match Engine::from_sample_name(sample.name) {
                Some(engine) => {
                    self.page.engine = Some(engine);
                    engine
                }
                None => return,
            },
        };
        let Some(map) = map_for(engine) else {
            return;
        };
        let Some(signal) = map.signal(sample) else {
            return;
        };
        if map.duplicate(sample) || !sample.value.is_finite() {
            return;
        }
        let model = map.model(sample).unwrap_or(self.fallback_model);
        let shard = map.shard(sample);
        let entry = self.page.models.entry(model.to_owned()).or_default();
        apply(entry, signal, shard, sample.value);
    }

    fn error(&mut self, error: ParseError) {
        *self.page.errors.entry(error.kind.as_str()).or_insert(0) += 1;
        self.page
            .first_errors
            .entry(error.kind.as_str())
            .or_insert(error);
    }
}

fn apply(entry: &mut ModelPage, signal: Signal, shard: String, value: f64) {
    let add = |slot: &mut Option<f64>| *slot = Some(slot.unwrap_or(0.0) + value);
    match signal {
        Signal::Running => entry.running.set(shard, value),
        Signal::Waiting => entry.waiting.set(shard, value),
        Signal::KvCache => entry.kv_cache.set(shard, value),
        Signal::KvBlocksUsed => entry.kv_blocks.0.set(shard, value),
        Signal::KvBlocksMax => entry.kv_blocks.1.set(shard, value),
        Signal::Requests { outcome, reason } => {
            *entry.requests.entry((outcome, reason)).or_insert(0.0) += value;
        }
        Signal::RequestsAll => add(&mut entry.requests_all),
        Signal::Aborted => add(&mut entry.aborted),
        Signal::PromptTokens => add(&mut entry.prompt_tokens),
        Signal::GenerationTokens => add(&mut entry.generation_tokens),
        Signal::Histogram { dist, part, scale } => {
            let histogram = entry.histograms.entry(dist).or_default();
            match part {
                Part::Bucket(bound) => {
                    let bound = if bound.is_infinite() {
                        bound
                    } else {
                        bound * scale
                    };
                    *histogram.buckets.entry(bound_key(bound)).or_insert(0.0) += value;
                }
                Part::Sum => histogram.sum += value * scale,
                Part::Count => histogram.count += value,
            }
        }
        Signal::DurationTotal { dist, scale } => {
            *entry.durations.entry(dist).or_insert(0.0) += value * scale;
        }
        Signal::PrefillDuration(part) => match part {
            Part::Sum => entry.prefill.0 += value,
            Part::Count => entry.prefill.1 += value,
            Part::Bucket(_) => {}
        },
    }
}

/// Reads a page. `engine` is what discovery knew (else the page says);
/// samples without a model label belong to `fallback_model`.
pub fn read_page(body: &[u8], engine: Option<Engine>, fallback_model: &str) -> Page {
    if engine == Some(Engine::Ollama) {
        return super::ollama::read(body);
    }
    let mut reader = Reader {
        page: Page {
            engine,
            ..Page::default()
        },
        fallback_model,
    };
    exposition::parse(body, &mut reader);
    reader.page
}

/// The value of the `le` label as a bound.
pub fn le(sample: &Sample<'_, '_>) -> Option<f64> {
    let text = sample.label("le")?;
    match text {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        _ => text.parse().ok(),
    }
}

/// The histogram signal of a sample of one of `table`'s families (base
/// name → distribution), in seconds.
pub fn histogram_signal(sample: &Sample<'_, '_>, table: &[(&str, Dist)]) -> Option<Signal> {
    table.iter().find_map(|(base, dist)| {
        histogram_part(sample, base).map(|part| Signal::Histogram {
            dist: *dist,
            part,
            scale: 1.0,
        })
    })
}

/// A histogram family's part from a sample name ending in `_bucket`,
/// `_sum` or `_count` after `base`.
pub fn histogram_part(sample: &Sample<'_, '_>, base: &str) -> Option<Part> {
    let suffix = sample.name.strip_prefix(base)?;
    match suffix {
        "_bucket" => le(sample).map(Part::Bucket),
        "_sum" => Some(Part::Sum),
        "_count" => Some(Part::Count),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_add_shards_and_keep_the_largest_duplicate() {
        let mut gauge = ShardedGauge::default();
        gauge.set("0".into(), 2.0);
        gauge.set("0".into(), 3.0);
        gauge.set("1".into(), 4.0);
        assert_eq!(gauge.sum(), Some(7.0));
        assert_eq!(gauge.mean(), Some(3.5));
        assert_eq!(ShardedGauge::default().sum(), None);
    }
}
