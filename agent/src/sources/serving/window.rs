//! Cumulative page readings → what happened since the previous scrape:
//! each distribution's new observations, recorded into the delta
//! exponential histograms the agent exports.
//!
//! A histogram's new observations per bucket are spread evenly over the
//! bucket (lower, upper], at the midpoints of equal slices, so quantiles
//! read back approach what Prometheus' `histogram_quantile` interpolates; the overflow bucket counts at the
//! highest finite bound, as `histogram_quantile` answers. Engines that only
//! keep duration counters (Triton) or no such histogram (TGI's time to
//! first token) give the window's mean, recorded once per request and
//! marked derived. The first scrape of a target is a baseline: what came
//! before it is not this window's.

use std::collections::{BTreeMap, BTreeSet};

use tally_schema::exphist::ExpHistogram;

use super::normalise::{CumulativeHistogram, Dist, ModelPage, Page};

/// Points per bucket at most when spreading a bucket's new observations.
const SPREAD_POINTS: u64 = 16;

/// How a derived distribution was computed (`tally_model_derived_info`).
pub const DERIVED_MEAN_OF_COUNTERS: &str = "window_mean_of_duration_counters";
/// TGI's time to first token.
pub const DERIVED_QUEUE_PLUS_PREFILL: &str = "window_mean_queue_plus_prefill";

/// The previous scrape's cumulative readings of one target.
#[derive(Debug, Default)]
pub struct Tracker {
    previous: BTreeMap<String, ModelPage>,
}

/// One window's new observations of one model.
#[derive(Debug, Default)]
pub struct ModelWindow {
    /// New observations per distribution, in seconds.
    pub histograms: BTreeMap<Dist, ExpHistogram>,
    /// Distributions derived rather than read, with how.
    pub derived: BTreeSet<(Dist, &'static str)>,
}

impl Tracker {
    /// Adds what `page` shows since the previous page to `windows` (by
    /// model) and keeps `page` as the new baseline.
    pub fn observe(&mut self, page: &Page, windows: &mut BTreeMap<String, ModelWindow>) {
        for (model, current) in &page.models {
            if let Some(previous) = self.previous.get(model) {
                let window = windows.entry(model.clone()).or_default();
                delta(previous, current, window);
            }
        }
        self.previous = page.models.clone();
    }
}

fn delta(previous: &ModelPage, current: &ModelPage, window: &mut ModelWindow) {
    for (dist, now) in &current.histograms {
        let before = previous.histograms.get(dist);
        let new = bucket_deltas(before, now);
        if !new.is_empty() {
            let histogram = window.histograms.entry(*dist).or_default();
            record_buckets(histogram, &new);
        }
    }
    let requests = |page: &ModelPage| page.finished_requests().values().sum::<f64>();
    let finished = requests(current) - requests(previous);
    for (dist, total) in &current.durations {
        if current.histograms.contains_key(dist) {
            continue;
        }
        let spent = total - previous.durations.get(dist).copied().unwrap_or(0.0);
        if finished >= 1.0 && spent >= 0.0 {
            let histogram = window.histograms.entry(*dist).or_default();
            histogram.record_n(spent / finished, finished.round() as u64);
            window.derived.insert((*dist, DERIVED_MEAN_OF_COUNTERS));
        }
    }
    // TGI: no time to first token; queue mean plus prefill batch mean.
    let (prefill_sum, prefill_count) = (
        current.prefill.0 - previous.prefill.0,
        current.prefill.1 - previous.prefill.1,
    );
    let queue = (
        current.histograms.get(&Dist::QueueTime),
        previous.histograms.get(&Dist::QueueTime),
    );
    if !current.histograms.contains_key(&Dist::TimeToFirstToken)
        && current.prefill.1 > 0.0
        && let (Some(now), Some(before)) = queue
    {
        let queued = now.count - before.count;
        if queued >= 1.0 && prefill_count >= 1.0 && prefill_sum >= 0.0 {
            let mean = (now.sum - before.sum).max(0.0) / queued + prefill_sum / prefill_count;
            let histogram = window.histograms.entry(Dist::TimeToFirstToken).or_default();
            histogram.record_n(mean, queued.round() as u64);
            window
                .derived
                .insert((Dist::TimeToFirstToken, DERIVED_QUEUE_PLUS_PREFILL));
        }
    }
}

/// New observations per bucket as (lower, upper, count); a counter that
/// went down means the server restarted, and everything it now shows is
/// new.
fn bucket_deltas(
    before: Option<&CumulativeHistogram>,
    now: &CumulativeHistogram,
) -> Vec<(f64, f64, u64)> {
    let per_bucket = |h: &CumulativeHistogram| -> Vec<(f64, f64)> {
        let mut previous = 0.0;
        h.buckets
            .iter()
            .map(|(bound, cumulative)| {
                let own = (cumulative - previous).max(0.0);
                previous = previous.max(*cumulative);
                (f64::from_bits(*bound), own)
            })
            .collect()
    };
    let now_buckets = per_bucket(now);
    let before_buckets = before.map(per_bucket).unwrap_or_default();
    let restarted = before.is_some_and(|b| now.count < b.count)
        || now_buckets.iter().any(|(bound, count)| {
            before_buckets
                .iter()
                .find(|(b, _)| b == bound)
                .is_some_and(|(_, was)| count < was)
        });
    let mut lower = 0.0;
    let mut out = Vec::new();
    for (bound, count) in now_buckets {
        let was = if restarted {
            0.0
        } else {
            before_buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        let new = (count - was).round();
        if new >= 1.0 {
            out.push((lower, bound, new as u64));
        }
        if bound.is_finite() {
            lower = bound;
        }
    }
    out
}

fn record_buckets(histogram: &mut ExpHistogram, buckets: &[(f64, f64, u64)]) {
    for &(lower, upper, count) in buckets {
        if !upper.is_finite() {
            histogram.record_n(lower, count);
            continue;
        }
        let points = count.min(SPREAD_POINTS);
        let (each, extra) = (count / points, count % points);
        for j in 0..points {
            let at = lower + (upper - lower) * (j as f64 + 0.5) / points as f64;
            histogram.record_n(at, each + u64::from(j < extra));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::serving::engine::Engine;
    use crate::sources::serving::normalise::read_page;

    fn page(count_fast: u32, count_slow: u32) -> Page {
        let text = format!(
            "vllm:time_to_first_token_seconds_bucket{{le=\"0.1\",model_name=\"m\"}} {count_fast}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"1.0\",model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_count{{model_name=\"m\"}} {}\n",
            count_fast + count_slow,
            count_fast + count_slow,
            count_fast + count_slow,
        );
        read_page(text.as_bytes(), Some(Engine::Vllm), "")
    }

    #[test]
    fn the_first_page_is_a_baseline_then_deltas_count() {
        let mut tracker = Tracker::default();
        let mut windows = BTreeMap::new();
        tracker.observe(&page(10, 0), &mut windows);
        assert!(windows.is_empty());
        tracker.observe(&page(90, 100), &mut windows);
        let ttft = &windows["m"].histograms[&Dist::TimeToFirstToken];
        assert_eq!(ttft.count(), 180);
        // 80 fast (≤ 0.1 s), 100 between 0.1 and 1 s: the median falls in
        // the upper bucket, Prometheus would interpolate 0.1 + 0.9 × 10/100.
        let median = ttft.quantile(0.5).expect("median");
        assert!((median - 0.19).abs() < 0.05, "{median}");
        // A restart: counts fell, everything now shown is new.
        let mut restarted = BTreeMap::new();
        tracker.observe(&page(3, 0), &mut restarted);
        assert_eq!(
            restarted["m"].histograms[&Dist::TimeToFirstToken].count(),
            3
        );
    }

    #[test]
    fn triton_duration_counters_give_a_derived_mean() {
        let triton = |success: u32, micros: u64| {
            let text = format!(
                "nv_inference_request_success{{model=\"r\",version=\"1\"}} {success}\n\
                 nv_inference_request_duration_us{{model=\"r\",version=\"1\"}} {micros}\n"
            );
            read_page(text.as_bytes(), Some(Engine::Triton), "")
        };
        let mut tracker = Tracker::default();
        let mut windows = BTreeMap::new();
        tracker.observe(&triton(10, 1_000_000), &mut windows);
        tracker.observe(&triton(30, 9_000_000), &mut windows);
        let window = &windows["r"];
        let e2e = &window.histograms[&Dist::E2eLatency];
        assert_eq!(e2e.count(), 20);
        let mean = e2e.sum() / e2e.count() as f64;
        assert!((mean - 0.4).abs() < 1e-9, "{mean}");
        assert!(
            window
                .derived
                .contains(&(Dist::E2eLatency, DERIVED_MEAN_OF_COUNTERS))
        );
    }
}
