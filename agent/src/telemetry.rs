//! The agent's own health: per-source `up`, collection durations and error
//! counts.
//!
//! Every source owns a [`SourceHealth`]. An error is counted every time and
//! logged only the first time its `(source, kind)` pair is seen, so a broken
//! file read every second cannot flood the log while the count still shows
//! how often it happens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the collection-duration histogram buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Health of one source.
#[derive(Debug)]
pub struct SourceHealth {
    name: &'static str,
    up: AtomicBool,
    collections: AtomicU64,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    errors: BTreeMap<String, u64>,
    bucket_counts: Vec<u64>,
    duration_sum: f64,
    duration_count: u64,
}

/// A copy of a source's health for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceHealthSnapshot {
    /// Source name (`host`, `cgroups`, `pods`, …).
    pub source: &'static str,
    /// Whether the last collection succeeded.
    pub up: bool,
    /// Errors by kind since start.
    pub errors: BTreeMap<String, u64>,
    /// Cumulative counts per bucket of [`DURATION_BUCKETS`] (not including +Inf).
    pub bucket_counts: Vec<u64>,
    /// Sum of durations, seconds.
    pub duration_sum: f64,
    /// Number of timed collections.
    pub duration_count: u64,
}

impl SourceHealth {
    /// A new source, down until its first successful collection.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            up: AtomicBool::new(false),
            collections: AtomicU64::new(0),
            state: Mutex::new(HealthState {
                bucket_counts: vec![0; DURATION_BUCKETS.len()],
                ..Default::default()
            }),
        })
    }

    /// The source name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the last collection succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Completed collections, successful or not.
    pub fn collections(&self) -> u64 {
        self.collections.load(Ordering::Relaxed)
    }

    /// Records a collection that worked (individual errors inside it may
    /// still have been counted with [`Self::error`]).
    pub fn record_success(&self, elapsed: Duration) {
        self.up.store(true, Ordering::Relaxed);
        self.observe(elapsed);
    }

    /// Records a collection that failed as a whole.
    pub fn record_failure(&self, elapsed: Duration, kind: &str, error: &dyn std::fmt::Display) {
        self.up.store(false, Ordering::Relaxed);
        self.error(kind, error);
        self.observe(elapsed);
    }

    /// Records a collection that finished but with parts missing; the
    /// errors were already counted with [`Self::error`].
    pub fn record_degraded(&self, elapsed: Duration) {
        self.up.store(false, Ordering::Relaxed);
        self.observe(elapsed);
    }

    /// Marks the source up or down without timing a collection (for
    /// long-lived watches).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Counts an error of `kind`; logs it the first time the kind is seen.
    pub fn error(&self, kind: &str, error: &dyn std::fmt::Display) {
        let first = {
            let mut state = self.lock();
            let count = state.errors.entry(kind.to_owned()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            tracing::warn!(
                source = self.name,
                kind,
                %error,
                "source error (logged once per kind; counted in tally_agent_source_errors_total)"
            );
        }
    }

    /// Errors of `kind` so far.
    pub fn error_count(&self, kind: &str) -> u64 {
        self.lock().errors.get(kind).copied().unwrap_or(0)
    }

    fn observe(&self, elapsed: Duration) {
        self.collections.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let mut state = self.lock();
        for (bound, count) in DURATION_BUCKETS.iter().zip(state.bucket_counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        state.duration_sum += seconds;
        state.duration_count += 1;
    }

    /// A copy for rendering.
    pub fn snapshot(&self) -> SourceHealthSnapshot {
        let state = self.lock();
        SourceHealthSnapshot {
            source: self.name,
            up: self.is_up(),
            errors: state.errors.clone(),
            bucket_counts: state.bucket_counts.clone(),
            duration_sum: state.duration_sum,
            duration_count: state.duration_count,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // A panic while holding this lock cannot leave the counters in a
        // state worse than stale, so recover rather than propagate.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_each_time() {
        let health = SourceHealth::new("test");
        assert!(!health.is_up());
        health.error("parse", &"bad line");
        health.error("parse", &"bad line");
        health.record_failure(Duration::from_millis(2), "io", &"gone");
        assert_eq!(health.error_count("parse"), 2);
        assert_eq!(health.error_count("io"), 1);
        assert!(!health.is_up());
        health.record_success(Duration::from_micros(50));
        assert!(health.is_up());
        let snap = health.snapshot();
        assert_eq!(snap.duration_count, 2);
        assert_eq!(snap.bucket_counts[0], 1, "50 µs lands in the first bucket");
        assert_eq!(*snap.bucket_counts.last().unwrap_or(&0), 2);
    }
}
