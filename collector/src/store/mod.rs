//! The embedded store: per-series hourly aggregates with a mergeable
//! distribution sketch, a short raw window for sparklines, the agents seen
//! and recent log records. Durability comes from the [`wal`].
//!
//! Hourly aggregates answer the analyzer's questions (p95 of CPU, max of
//! memory over 14 days) by merging at most 336 sketches per series, never
//! by scanning raw points.

pub mod cold;
pub mod hot;
pub mod labels;
pub mod log_segments;
pub mod raw;
pub mod snapshot;
pub mod tier;
pub mod wal;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tally_schema::exphist::ExpHistogram;

use crate::ingest::points::{Running, Sample, SampleValue};
use hot::HotArena;
pub use labels::{Interner, LabelSet, Labels, SharedInterner};
use raw::RawWindow;
pub use tier::Aggregate;
use tier::Tier;

/// Nanoseconds per hour.
const HOUR_NS: u64 = 3_600_000_000_000;
/// Hours per day.
const DAY_HOURS: u32 = 24;
/// Hours kept at hourly resolution (at least; up to a day more): older
/// whole days are rolled up into one aggregate each, so 14 days cost
/// 48–71 + 12 aggregates per series instead of 336.
const HOURLY_TIER_HOURS: u32 = 48;

/// Garbage the hot arena may hold before the store compacts it without
/// waiting for a snapshot (moved and dropped bytes; half the arena at
/// least).
const HOT_GARBAGE_MIN_BYTES: usize = 32 << 20;

/// Store limits.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// How long aggregates are kept.
    pub retention_ns: u64,
    /// How long raw points are kept for sparklines.
    pub raw_window_ns: u64,
    /// Most raw points kept per series (bounds memory per series).
    pub raw_points: usize,
    /// Log records kept in memory (without log segments on disk).
    pub log_records: usize,
    /// Most series held; samples of new series beyond it are refused.
    pub max_series: usize,
}

/// How a series' values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Levels.
    Gauge,
    /// Increments (sums, converted from cumulative when needed).
    Counter,
    /// Distributions.
    Distribution,
}

impl SeriesKind {
    /// Stable code for snapshots.
    pub fn code(self) -> u8 {
        match self {
            SeriesKind::Gauge => 0,
            SeriesKind::Counter => 1,
            SeriesKind::Distribution => 2,
        }
    }

    /// The kind of a snapshot code.
    pub fn from_code(code: u8) -> Option<SeriesKind> {
        match code {
            0 => Some(SeriesKind::Gauge),
            1 => Some(SeriesKind::Counter),
            2 => Some(SeriesKind::Distribution),
            _ => None,
        }
    }
}

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    metric: Arc<str>,
    labels: Labels,
    /// How values combine.
    pub kind: SeriesKind,
    /// The hour being written: `(hours since the epoch, aggregate)`.
    open: Option<(u32, Aggregate)>,
    /// Sealed hours of the last 48 hours.
    hours: Tier,
    /// Sealed days (keyed by their first hour) of older data.
    days: Tier,
    /// Recent points; for counters the running total.
    recent: RawWindow,
    /// Last cumulative `(start ns, value)`, for delta conversion.
    last_cumulative: Option<(u64, f64)>,
    /// Last cumulative histogram and its start, for the same (boxed: most
    /// series never have one). Not in snapshots: after a restart the first
    /// point is a baseline again.
    last_histogram: Option<Box<(u64, Running)>>,
    /// Running total of a counter since the collector first saw it.
    total: f64,
    /// Time of the newest point.
    pub last_ns: u64,
}

impl Series {
    fn new(metric: Arc<str>, labels: Labels, kind: SeriesKind) -> Self {
        Self {
            metric,
            labels,
            kind,
            open: None,
            hours: Tier::default(),
            days: Tier::default(),
            recent: RawWindow::default(),
            last_cumulative: None,
            last_histogram: None,
            total: 0.0,
            last_ns: 0,
        }
    }

    /// Metric name.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// Identifying labels.
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    /// The newest raw value (counters: running total).
    pub fn latest(&self) -> Option<f64> {
        self.recent.newest().map(|(_, v)| v)
    }

    /// Rate per second over the raw window's last two points (counters).
    pub fn latest_rate(&self) -> Option<f64> {
        let (t0, v0) = self.recent.previous()?;
        let (t1, v1) = self.recent.newest()?;
        (t1 > t0).then(|| (v1 - v0) / ((t1 - t0) as f64 / 1e9))
    }

    /// Raw points `(ns, value)` in time order (counters: running total);
    /// `hot` is the store's ([`Store::hot`]).
    fn recent_points(&self, hot: &HotArena) -> Vec<(u64, f64)> {
        self.recent.points(hot)
    }

    /// Number of hourly and daily aggregates held (sealed and open).
    pub fn aggregate_count(&self) -> (usize, usize) {
        (
            self.hours.len() + usize::from(self.open.is_some()),
            self.days.len(),
        )
    }

    /// Daily peaks `(day start ns, max)` over the retention window, oldest
    /// first: the memory-like question "how high did it go each day".
    fn daily_peaks(&self, hot: &HotArena) -> Vec<(u64, f64)> {
        let mut peaks: BTreeMap<u32, f64> = BTreeMap::new();
        let mut add = |start: u32, max: f64| {
            let day = start / DAY_HOURS * DAY_HOURS;
            let peak = peaks.entry(day).or_insert(f64::NEG_INFINITY);
            *peak = peak.max(max);
        };
        let mut buffer = Vec::new();
        for tier in [&self.days, &self.hours] {
            tier.fold_range(hot, &mut buffer, 0, u32::MAX, |s, _| add(s.start, s.max));
        }
        if let Some((hour, open)) = &self.open {
            add(*hour, open.max);
        }
        peaks
            .into_iter()
            .map(|(day, max)| (u64::from(day) * HOUR_NS, max))
            .collect()
    }

    /// Bytes of history in a cold file.
    fn cold_bytes(&self) -> usize {
        self.hours.cold_len() + self.days.cold_len() + self.recent.cold_len()
    }

    fn heap_bytes(&self) -> usize {
        let open = self.open.as_ref().map_or(0, |(_, a)| {
            a.sketch
                .as_ref()
                .map_or(0, |s| 64 + s.bucket_counts().len() * 8)
        });
        let last = self.last_histogram.as_ref().map_or(0, |h| match &h.1 {
            Running::Explicit(b) => 96 + b.bounds.len() * 16,
            Running::Exponential(s) => 96 + s.bucket_counts().len() * 8,
        });
        open + last + self.recent.heap_bytes()
    }

    /// Bytes of history in the hot arena.
    fn hot_bytes(&self) -> usize {
        self.hours.hot_len() + self.days.hot_len() + self.recent.hot_len()
    }

    /// Moves the series' hot history into `fresh` (after a snapshot).
    fn compact_hot(&mut self, old: &HotArena, fresh: &mut HotArena) {
        self.hours.compact_hot(old, fresh);
        self.days.compact_hot(old, fresh);
        self.recent.compact_hot(old, fresh);
    }

    /// Adds `value` (or a distribution) to its hour, sealing the open hour
    /// when a newer one starts and rolling old hours into days.
    fn observe(
        &mut self,
        hot: &mut HotArena,
        hour: u32,
        value: Observation<'_>,
        retention_hours: u32,
    ) {
        let with_sketch = self.kind != SeriesKind::Counter;
        match &mut self.open {
            Some((open_hour, aggregate)) if *open_hour == hour => value.add_to(aggregate),
            Some((open_hour, _)) if *open_hour > hour => {
                // Late data for a sealed hour (a spool replay): merge in place.
                let mut late = Aggregate::new(with_sketch);
                value.add_to(&mut late);
                if hour >= self.hours.first_start().unwrap_or(0) {
                    self.hours.push(hot, hour, &late);
                } else {
                    self.days.push(hot, hour / DAY_HOURS * DAY_HOURS, &late);
                }
            }
            _ => {
                match &mut self.open {
                    Some((open_hour, aggregate)) => {
                        self.hours.push(hot, *open_hour, aggregate);
                        // The same allocation serves the next hour.
                        aggregate.reset(with_sketch);
                        *open_hour = hour;
                        value.add_to(aggregate);
                    }
                    None => {
                        let mut aggregate = Aggregate::new(with_sketch);
                        value.add_to(&mut aggregate);
                        self.open = Some((hour, aggregate));
                    }
                }
                self.roll_up(hot, hour, retention_hours);
            }
        }
    }

    /// Moves whole days older than the hourly tier into days and drops
    /// days past retention. Whole days only: a day's aggregate is appended
    /// once, never amended (which would rewrite the days tier into memory
    /// every hour).
    fn roll_up(&mut self, hot: &mut HotArena, newest_hour: u32, retention_hours: u32) {
        let hourly_from = newest_hour.saturating_sub(HOURLY_TIER_HOURS) / DAY_HOURS * DAY_HOURS;
        if self.hours.first_start().is_some_and(|s| s < hourly_from) {
            let mut day: Option<(u32, Aggregate)> = None;
            for record in self.hours.split_off_before(hot, hourly_from) {
                let start = record.start / DAY_HOURS * DAY_HOURS;
                match &mut day {
                    Some((d, aggregate)) if *d == start => aggregate.merge(&record.aggregate),
                    _ => {
                        if let Some((d, aggregate)) = day.replace((start, record.aggregate)) {
                            self.days.push(hot, d, &aggregate);
                        }
                    }
                }
            }
            if let Some((d, aggregate)) = day {
                self.days.push(hot, d, &aggregate);
            }
        }
        let oldest_day = newest_hour.saturating_sub(retention_hours) / DAY_HOURS * DAY_HOURS;
        if self
            .days
            .first_start()
            .is_some_and(|start| start < oldest_day)
        {
            self.days.split_off_before(hot, oldest_day);
        }
    }
}

/// A value being added to an aggregate.
enum Observation<'a> {
    Value(f64),
    Distribution(&'a ExpHistogram),
}

impl Observation<'_> {
    fn add_to(&self, aggregate: &mut Aggregate) {
        match self {
            Observation::Value(v) => aggregate.observe(*v),
            Observation::Distribution(d) => aggregate.observe_distribution(d),
        }
    }
}

/// `stat` of folded aggregates over `[from_ns, to_ns]`.
fn stat_of(
    stat: Stat,
    totals: &tier::Summary,
    merge: &tier::QuantileMerge<'_>,
    from_ns: u64,
    to_ns: u64,
) -> Option<f64> {
    match stat {
        Stat::Quantile(q) => merge.quantile(q),
        Stat::Max => Some(totals.max),
        Stat::Min => Some(totals.min),
        Stat::Avg => (totals.count > 0).then(|| totals.sum / totals.count as f64),
        Stat::Increase => Some(totals.sum),
        Stat::Rate => {
            let seconds = (to_ns.saturating_sub(from_ns)) as f64 / 1e9;
            (seconds > 0.0).then(|| totals.sum / seconds)
        }
    }
}

/// What one aggregate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// A whole day (older than the hourly tier).
    Day,
    /// One hour.
    Hour,
}

/// A statistic over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Quantile 0..=1 of the values (gauges and distributions).
    Quantile(f64),
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Mean value.
    Avg,
    /// Total increase (counters).
    Increase,
    /// Mean rate per second (counters).
    Rate,
}

impl Stat {
    /// Parses `p95`, `p99.9`, `max`, `min`, `avg`, `increase`, `rate`.
    pub fn parse(text: &str) -> Option<Stat> {
        match text {
            "max" => Some(Stat::Max),
            "min" => Some(Stat::Min),
            "avg" => Some(Stat::Avg),
            "increase" => Some(Stat::Increase),
            "rate" => Some(Stat::Rate),
            p => p
                .strip_prefix('p')
                .and_then(|q| q.parse::<f64>().ok())
                .filter(|q| (0.0..=100.0).contains(q))
                .map(|q| Stat::Quantile(q / 100.0)),
        }
    }
}

/// An agent (or SDK) that pushed data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentSeen {
    /// `service.name`.
    pub service: String,
    /// `k8s.node.name` or `host.name`.
    pub node: String,
    /// Instrumentation scope version of the newest batch.
    pub version: String,
    /// Newest push, ns since the epoch.
    pub last_push_ns: u64,
    /// Newest point time in the newest push, ns.
    pub last_point_ns: u64,
    /// Batches received.
    pub batches: u64,
    /// Whether the data is simulated (`tally.simulated=true`).
    pub simulated: bool,
}

/// A stored log record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRecord {
    /// Time, ns since the epoch.
    pub time_ns: u64,
    /// Severity text.
    pub severity: String,
    /// Body as text.
    pub body: String,
    /// Resource and record attributes, sorted by key.
    pub attributes: Vec<(String, String)>,
}

/// Ingest counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Samples applied.
    pub samples: u64,
    /// Counter resets detected.
    pub resets: u64,
    /// Log records received.
    pub log_records: u64,
    /// Samples refused because the series limit was reached.
    pub series_limited: u64,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    limits: StoreLimits,
    /// Series by metric, then by label set: a query for one metric visits
    /// only that metric's series, and a label set's hash is computed once.
    /// Series are boxed: a map slot is two pointers, so the table's spare
    /// capacity (up to half of it after a resize) costs 16 bytes a slot,
    /// not a whole `Series`.
    metrics:
        HashMap<Arc<str>, HashMap<Labels, Box<Series>, labels::LabelHashing>, labels::NameHashing>,
    series_total: usize,
    interner: SharedInterner,
    /// History sealed since the last snapshot.
    hot: HotArena,
    agents: BTreeMap<(String, String), AgentSeen>,
    /// Log records in memory: those of a store without segment files
    /// (tests, benchmarks), or of a snapshot until segments are attached.
    logs: VecDeque<LogRecord>,
    /// Estimated bytes of `logs`.
    log_bytes: u64,
    /// Log records on disk, once attached; `logs` is then empty.
    log_segments: Option<log_segments::LogSegments>,
    /// Most log bytes kept, and how long (ns) a record is kept.
    log_limits: (u64, u64),
    stats: StoreStats,
}

/// Default bound on the log records kept: 1 GiB.
pub const DEFAULT_LOG_BYTES: u64 = 1 << 30;
/// Default age of the oldest log record kept: 24 h.
pub const DEFAULT_LOG_RETENTION_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Estimated heap bytes of a log record.
fn log_record_bytes(record: &LogRecord) -> u64 {
    let attributes: usize = record
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.len() + 48)
        .sum();
    (96 + record.body.len() + record.severity.len() + attributes) as u64
}

impl Store {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            metrics: HashMap::default(),
            series_total: 0,
            interner: SharedInterner::default(),
            hot: HotArena::default(),
            agents: BTreeMap::new(),
            logs: VecDeque::new(),
            log_bytes: 0,
            log_segments: None,
            log_limits: (DEFAULT_LOG_BYTES, DEFAULT_LOG_RETENTION_NS),
            stats: StoreStats::default(),
        }
    }

    /// Bounds the log records kept by estimated bytes and by age.
    pub fn set_log_limits(&mut self, max_bytes: u64, retention_ns: u64) {
        self.log_limits = (max_bytes, retention_ns);
        self.trim_logs(None);
    }

    /// Keeps log records in `segments` from now on. Records loaded from a
    /// snapshot written before segments existed move into them, once:
    /// only while the segments are still empty (a crash after the move
    /// would otherwise move them again).
    pub fn attach_log_segments(&mut self, mut segments: log_segments::LogSegments) {
        let records: Vec<LogRecord> = self.logs.drain(..).collect();
        self.log_bytes = 0;
        if segments.covered().is_none() && segments.records() == 0 && !records.is_empty() {
            // Errors are counted and logged inside.
            let _ = segments.append(&records, None);
            if let Err(error) = segments.sync() {
                tracing::warn!(%error, "cannot fsync log records moved from the snapshot");
            }
        }
        self.log_segments = Some(segments);
    }

    /// The log segments, when attached.
    pub fn log_segments(&self) -> Option<&log_segments::LogSegments> {
        self.log_segments.as_ref()
    }

    /// True when the log records of the write-ahead log record at `at`
    /// are already in the segments (replay skips them).
    pub fn logs_cover(&self, at: wal::WalPosition) -> bool {
        self.log_segments
            .as_ref()
            .and_then(log_segments::LogSegments::covered)
            .is_some_and(|covered| at <= covered)
    }

    /// Makes the log records in segments durable (before a snapshot lets
    /// the write-ahead log drop them).
    pub fn sync_logs(&mut self) -> Result<(), log_segments::LogSegmentError> {
        match &mut self.log_segments {
            Some(segments) => segments.sync(),
            None => Ok(()),
        }
    }

    /// Keeps a record, dropping the oldest past the count and byte bounds
    /// (and, given `now_ns`, past the age bound).
    pub(crate) fn keep_log(&mut self, record: LogRecord) {
        self.log_bytes += log_record_bytes(&record);
        self.logs.push_back(record);
        self.trim_logs(None);
    }

    fn trim_logs(&mut self, now_ns: Option<u64>) {
        let oldest = now_ns.map(|now| now.saturating_sub(self.log_limits.1));
        while let Some(front) = self.logs.front() {
            let too_many =
                self.logs.len() > self.limits.log_records || self.log_bytes > self.log_limits.0;
            let too_old = oldest.is_some_and(|oldest| front.time_ns < oldest);
            if !(too_many || too_old) {
                break;
            }
            self.log_bytes = self.log_bytes.saturating_sub(log_record_bytes(front));
            self.logs.pop_front();
        }
    }

    /// The interner that flattening shares with the store, so the label
    /// sets of incoming points are the store's own (compared by pointer).
    pub fn interner(&self) -> SharedInterner {
        Arc::clone(&self.interner)
    }

    /// The limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series_total
    }

    /// History sealed since the last snapshot, which series read through.
    pub fn hot(&self) -> &HotArena {
        &self.hot
    }

    /// Moves what is still hot into a fresh arena and drops the old one
    /// (its segments go back to the system): after a snapshot made the
    /// history cold, or when moves and drops left the arena mostly
    /// garbage.
    pub fn compact_hot(&mut self) {
        let old = std::mem::take(&mut self.hot);
        let mut fresh = HotArena::default();
        for series in self.metrics.values_mut().flat_map(HashMap::values_mut) {
            series.compact_hot(&old, &mut fresh);
        }
        self.hot = fresh;
    }

    /// Raw points of `series` in time order (counters: running total).
    pub fn recent_points(&self, series: &Series) -> Vec<(u64, f64)> {
        series.recent_points(&self.hot)
    }

    /// Daily peaks `(day start ns, max)` of `series` over the retention
    /// window, oldest first.
    pub fn daily_peaks(&self, series: &Series) -> Vec<(u64, f64)> {
        series.daily_peaks(&self.hot)
    }

    /// Visits the summaries of `series` overlapping `[from_ns, to_ns]`
    /// without their sketches, oldest first: sealed days (the first one
    /// whole), then sealed and open hours. One pass serves several
    /// statistics of one series (a counter's total, hourly and daily sums).
    pub fn visit_summaries(
        &self,
        series: &Series,
        from_ns: u64,
        to_ns: u64,
        visit: impl FnMut(Granularity, &tier::Summary),
    ) {
        self.fold_window_visiting(series, from_ns, to_ns, false, visit, |_, _| ());
    }

    /// Start of the oldest aggregate `series` holds, ns (hour precision):
    /// when the store first saw it, within retention.
    pub fn first_ns(&self, series: &Series) -> Option<u64> {
        [
            series.days.first_start(),
            series.hours.first_start(),
            series.open.as_ref().map(|(hour, _)| *hour),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|hour| u64::from(hour) * HOUR_NS)
    }

    /// Every series.
    pub fn all_series(&self) -> impl Iterator<Item = &Series> {
        self.metrics
            .values()
            .flat_map(HashMap::values)
            .map(|s| &**s)
    }

    /// The series of `metric` with exactly `labels`.
    fn series(&self, metric: &str, labels: &Labels) -> Option<&Series> {
        self.metrics.get(metric)?.get(labels).map(|s| &**s)
    }

    fn retention_hours(&self) -> u32 {
        (self.limits.retention_ns / HOUR_NS) as u32
    }

    /// Applies one sample. Returns false when it belongs to a new series
    /// and the store is at its series limit (the sample is refused).
    pub fn apply(&mut self, sample: Sample) -> bool {
        let hour = (sample.time_ns / HOUR_NS) as u32;
        let kind = match sample.value {
            SampleValue::Gauge(_) => SeriesKind::Gauge,
            SampleValue::Delta(_) | SampleValue::Cumulative { .. } => SeriesKind::Counter,
            SampleValue::Distribution(_) | SampleValue::CumulativeDistribution { .. } => {
                SeriesKind::Distribution
            }
        };
        let retention_hours = self.retention_hours();
        let limits = self.limits;
        let series = match self
            .metrics
            .get_mut(&*sample.metric)
            .and_then(|by_labels| by_labels.get_mut(&sample.labels))
        {
            Some(series) => series,
            None if self.series_total >= limits.max_series => {
                self.stats.series_limited += 1;
                return false;
            }
            None => {
                let (metric, labels) = {
                    let mut interner = labels::lock(&self.interner);
                    (
                        interner.name(&sample.metric),
                        interner.labels(&sample.labels),
                    )
                };
                self.series_total += 1;
                self.metrics
                    .entry(Arc::clone(&metric))
                    .or_default()
                    .entry(Arc::clone(&labels))
                    .or_insert_with(|| Box::new(Series::new(metric, labels, kind)))
            }
        };
        series.last_ns = series.last_ns.max(sample.time_ns);
        let recent_value = match sample.value {
            SampleValue::Gauge(v) => {
                series.observe(&mut self.hot, hour, Observation::Value(v), retention_hours);
                Some(v)
            }
            SampleValue::Delta(d) => {
                series.total += d;
                series.observe(&mut self.hot, hour, Observation::Value(d), retention_hours);
                Some(series.total)
            }
            SampleValue::Cumulative { value, start_ns } => {
                let delta = match series.last_cumulative {
                    // Same counter, moving forward.
                    Some((start, last)) if start == start_ns && value >= last => Some(value - last),
                    // A reset (restart or a smaller value): the new total is
                    // all new increase.
                    Some(_) => {
                        self.stats.resets += 1;
                        Some(value)
                    }
                    // First sight: a baseline, not an increase we saw happen.
                    None => None,
                };
                series.last_cumulative = Some((start_ns, value));
                if let Some(delta) = delta {
                    series.total += delta;
                    series.observe(
                        &mut self.hot,
                        hour,
                        Observation::Value(delta),
                        retention_hours,
                    );
                }
                Some(series.total)
            }
            SampleValue::Distribution(sketch) => {
                series.observe(
                    &mut self.hot,
                    hour,
                    Observation::Distribution(&sketch),
                    retention_hours,
                );
                None
            }
            SampleValue::CumulativeDistribution {
                histogram,
                start_ns,
            } => {
                let new = match series.last_histogram.as_deref() {
                    // Same histogram, moving forward.
                    Some((start, last)) if *start == start_ns => {
                        histogram.since(last).or_else(|| {
                            self.stats.resets += 1;
                            Some(histogram.sketch())
                        })
                    }
                    // A new start: everything in it is new.
                    Some(_) => {
                        self.stats.resets += 1;
                        Some(histogram.sketch())
                    }
                    // First sight with a known start: everything since it
                    // (an SDK's histogram starts with its process); with
                    // none, a baseline.
                    None => (start_ns > 0).then(|| histogram.sketch()),
                };
                if let Some(new) = new.filter(|n| !n.is_empty()) {
                    series.observe(
                        &mut self.hot,
                        hour,
                        Observation::Distribution(&new),
                        retention_hours,
                    );
                }
                series.last_histogram = Some(Box::new((start_ns, *histogram)));
                None
            }
        };
        if let Some(value) = recent_value {
            let oldest = sample.time_ns.saturating_sub(limits.raw_window_ns);
            series.recent.push(
                &mut self.hot,
                sample.time_ns,
                value,
                oldest,
                limits.raw_points,
            );
        }
        self.stats.samples += 1;
        // Without snapshots (or between two far apart) moves and drops
        // would grow the arena without bound.
        let garbage = self.hot.garbage_bytes();
        if garbage > HOT_GARBAGE_MIN_BYTES && garbage * 2 > self.hot.carved_bytes() {
            self.compact_hot();
        }
        true
    }

    /// Drops series with no point inside the retention window (pods come
    /// and go; their series must not accumulate). Returns how many went.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        self.trim_logs(Some(now_ns));
        if let Some(segments) = &mut self.log_segments {
            segments.expire(now_ns);
        }
        let oldest = now_ns.saturating_sub(self.limits.retention_ns);
        let before = self.series_total;
        for by_labels in self.metrics.values_mut() {
            by_labels.retain(|_, series| series.last_ns >= oldest);
        }
        self.metrics.retain(|_, by_labels| !by_labels.is_empty());
        self.series_total = self.metrics.values().map(HashMap::len).sum();
        labels::lock(&self.interner).sweep();
        before - self.series_total
    }

    /// An estimate of the heap the store holds for series, in bytes:
    /// interned labels and names counted once, map slots, aggregates and
    /// raw windows.
    pub fn estimated_bytes(&self) -> usize {
        // A map slot (and its control byte) for every unit of capacity,
        // then each boxed series with its allocation header.
        let slot = std::mem::size_of::<(Labels, Box<Series>)>() + 1;
        let boxed = std::mem::size_of::<Series>() + 16;
        labels::lock(&self.interner).heap_bytes()
            + self.hot.carved_bytes()
            + self
                .metrics
                .values()
                .map(|by_labels| by_labels.capacity() * slot)
                .sum::<usize>()
            + self
                .all_series()
                .map(|s| boxed + s.heap_bytes())
                .sum::<usize>()
    }

    /// Records a push from an agent or SDK.
    pub fn saw_agent(&mut self, agent: AgentSeen) {
        let entry = self
            .agents
            .entry((agent.service.clone(), agent.node.clone()))
            .or_default();
        let batches = entry.batches + 1;
        *entry = AgentSeen { batches, ..agent };
    }

    /// Agents seen.
    pub fn agents(&self) -> impl Iterator<Item = &AgentSeen> {
        self.agents.values()
    }

    /// Stores a log record, keeping the newest within the count, byte and
    /// age bounds.
    pub fn push_log(&mut self, record: LogRecord) {
        self.push_logs(vec![record], None);
    }

    /// Stores one request's log records: in the segments when attached
    /// (`at` is the request's write-ahead log position), else in memory.
    pub fn push_logs(&mut self, records: Vec<LogRecord>, at: Option<wal::WalPosition>) {
        self.stats.log_records += records.len() as u64;
        match &mut self.log_segments {
            // Errors are counted and logged inside; the write-ahead log
            // still holds the records until the next snapshot.
            Some(segments) => {
                let _ = segments.append(&records, at);
            }
            None => {
                for record in records {
                    self.keep_log(record);
                }
            }
        }
    }

    /// Bytes of the log records kept: on disk, or estimated in memory.
    pub fn log_bytes(&self) -> u64 {
        self.log_segments
            .as_ref()
            .map_or(self.log_bytes, log_segments::LogSegments::bytes)
    }

    /// The newest `limit` log records held in memory, newest last (none
    /// once segments are attached: see [`Store::log_segments`]).
    pub fn logs(&self, limit: usize) -> impl DoubleEndedIterator<Item = &LogRecord> {
        self.logs.iter().skip(self.logs.len().saturating_sub(limit))
    }

    /// Series of `metric` whose labels include every `matchers` pair,
    /// ordered by their labels (answers do not depend on hash order).
    pub fn select<'a>(
        &'a self,
        metric: &str,
        matchers: &[(String, String)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        let mut selected: Vec<&Series> = self
            .metrics
            .get(metric)
            .into_iter()
            .flat_map(HashMap::values)
            .map(|s| &**s)
            .filter(|s| matchers.iter().all(|(k, v)| s.label(k) == Some(v.as_str())))
            .collect();
        selected.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        selected.into_iter()
    }

    /// Series of `metric` in no particular order (callers that key their
    /// results need no sort).
    pub fn family<'a>(&'a self, metric: &str) -> impl Iterator<Item = &'a Series> + 'a {
        self.metrics
            .get(metric)
            .into_iter()
            .flat_map(HashMap::values)
            .map(|s| &**s)
    }

    /// Every metric name with its series count.
    pub fn metrics(&self) -> BTreeMap<&str, usize> {
        self.metrics
            .iter()
            .map(|(name, by_labels)| (&**name, by_labels.len()))
            .collect()
    }

    /// [`Self::stat`] of many series, spread over the machine's cores when
    /// there are enough of them to be worth threads (a fleet-wide 14-day
    /// percentile merges some 60 sketches for each of thousands of series).
    pub fn stat_all(
        &self,
        series: &[&Series],
        stat: Stat,
        from_ns: u64,
        to_ns: u64,
    ) -> Vec<Option<f64>> {
        crate::parallel::map_on_cores(series, 1024, |s| self.stat(s, stat, from_ns, to_ns))
    }

    /// `stat` of one series over `[from_ns, to_ns]`, merging the hourly
    /// and daily aggregates that overlap the window (beyond 48 hours the
    /// window is widened to whole days), in O(aggregates × sketch size).
    pub fn stat(&self, series: &Series, stat: Stat, from_ns: u64, to_ns: u64) -> Option<f64> {
        let [value] = self.stat_many(series, [stat], from_ns, to_ns);
        value
    }

    /// Several statistics of one series over one window from a single
    /// read of its history, in the order asked.
    pub fn stat_many<const N: usize>(
        &self,
        series: &Series,
        stats: [Stat; N],
        from_ns: u64,
        to_ns: u64,
    ) -> [Option<f64>; N] {
        let want_sketches = stats.iter().any(|s| matches!(s, Stat::Quantile(_)));
        self.fold_window(series, from_ns, to_ns, want_sketches, |totals, merge| {
            stats.map(|stat| stat_of(stat, totals, merge, from_ns, to_ns))
        })
        .unwrap_or([None; N])
    }

    /// The merged distribution of a distribution series over the window
    /// (the analyzer's quantiles and exceedance shares), in one merge.
    pub fn distribution(
        &self,
        series: &Series,
        from_ns: u64,
        to_ns: u64,
    ) -> Option<tally_analyzer::distribution::Distribution> {
        self.distribution_visiting(series, from_ns, to_ns, |_, _| {})
    }

    /// [`Self::distribution`], also showing `visit` every summary merged
    /// (oldest first, as [`Self::visit_summaries`]): one read of the
    /// series' history for the distribution and, say, its daily peaks.
    pub fn distribution_visiting(
        &self,
        series: &Series,
        from_ns: u64,
        to_ns: u64,
        visit: impl FnMut(Granularity, &tier::Summary),
    ) -> Option<tally_analyzer::distribution::Distribution> {
        self.fold_window_visiting(series, from_ns, to_ns, true, visit, |totals, merge| {
            let dense = merge.dense()?;
            Some(tally_analyzer::distribution::Distribution {
                scale: dense.scale,
                low: dense.low,
                counts: dense.counts,
                zeros: dense.zeros,
                count: totals.count,
                sum: totals.sum,
                min: totals.min,
                max: totals.max,
            })
        })
        .flatten()
    }

    /// Folds the aggregates of `series` overlapping the window and calls
    /// `f` with their totals and (when `want_sketches`) the sketch merge;
    /// `None` when no aggregate overlaps.
    fn fold_window<T>(
        &self,
        series: &Series,
        from_ns: u64,
        to_ns: u64,
        want_sketches: bool,
        f: impl FnOnce(&tier::Summary, &tier::QuantileMerge<'_>) -> T,
    ) -> Option<T> {
        self.fold_window_visiting(series, from_ns, to_ns, want_sketches, |_, _| {}, f)
    }

    /// [`Self::fold_window`], showing `on_summary` each summary folded.
    fn fold_window_visiting<T>(
        &self,
        series: &Series,
        from_ns: u64,
        to_ns: u64,
        want_sketches: bool,
        mut on_summary: impl FnMut(Granularity, &tier::Summary),
        f: impl FnOnce(&tier::Summary, &tier::QuantileMerge<'_>) -> T,
    ) -> Option<T> {
        let first_hour = (from_ns / HOUR_NS) as u32;
        let last_hour = (to_ns / HOUR_NS) as u32;
        let first_day = first_hour / DAY_HOURS * DAY_HOURS;
        // Cold records are read into these; the merge borrows them.
        let (mut days_buffer, mut hours_buffer) = (Vec::new(), Vec::new());
        let mut merge = tier::QuantileMerge::new();
        let mut totals = tier::Summary {
            start: first_hour,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
        };
        let mut any = false;
        let granularity = std::cell::Cell::new(Granularity::Day);
        let mut visit = |s: &tier::Summary, sketch: Option<_>| {
            on_summary(granularity.get(), s);
            totals.min = totals.min.min(s.min);
            totals.max = totals.max.max(s.max);
            totals.sum += s.sum;
            totals.count += s.count;
            any = true;
            if let (true, Some(sketch)) = (want_sketches, sketch) {
                merge.add(s, sketch);
            }
        };
        series.days.fold_range(
            &self.hot,
            &mut days_buffer,
            first_day,
            last_hour,
            |s, sketch| visit(s, sketch),
        );
        granularity.set(Granularity::Hour);
        series.hours.fold_range(
            &self.hot,
            &mut hours_buffer,
            first_hour,
            last_hour,
            |s, sketch| visit(s, sketch),
        );
        if let Some((hour, open)) = &series.open
            && (first_hour..=last_hour).contains(hour)
        {
            let summary = tier::Summary {
                start: *hour,
                count: open.count,
                min: open.min,
                max: open.max,
                sum: open.sum,
            };
            visit(&summary, open.sketch.as_ref().map(tier::SketchRef::of));
        }
        any.then(|| f(&totals, &merge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const T0: u64 = 1_800_000_000_000_000_000;
    const DAY_NS: u64 = 24 * HOUR_NS;

    pub(super) fn limits() -> StoreLimits {
        StoreLimits {
            retention_ns: 14 * 24 * HOUR_NS,
            raw_window_ns: 6 * HOUR_NS,
            raw_points: 1440,
            log_records: 10,
            max_series: 1000,
        }
    }

    pub(super) fn sample(metric: &str, pod: &str, t: u64, value: SampleValue) -> Sample {
        Sample {
            metric: Arc::from(metric),
            labels: Arc::new(LabelSet::new(vec![(
                "k8s.pod.name".to_owned(),
                pod.to_owned(),
            )])),
            time_ns: t,
            value,
        }
    }

    #[test]
    fn log_records_are_bounded_by_bytes_and_age() {
        let mut store = Store::new(limits());
        let record = |time_ns: u64, body: &str| LogRecord {
            time_ns,
            severity: "info".into(),
            body: body.into(),
            attributes: vec![("k8s.pod.name".into(), "p".into())],
        };
        // limits() keeps 10 records; bytes bind first here.
        let one = log_record_bytes(&record(T0, "x"));
        store.set_log_limits(3 * one, HOUR_NS);
        for i in 0..5 {
            store.push_log(record(T0 + i, "x"));
        }
        assert_eq!(store.logs(100).count(), 3);
        assert_eq!(store.log_bytes(), 3 * one);
        assert_eq!(store.logs(100).next().map(|r| r.time_ns), Some(T0 + 2));
        // An hour and more later the old records go at the next expiry.
        store.push_log(record(T0 + 2 * HOUR_NS, "x"));
        store.expire(T0 + 2 * HOUR_NS);
        assert_eq!(store.logs(100).count(), 1);
        assert_eq!(store.log_bytes(), one);
    }

    /// Records of a snapshot written before log segments existed move
    /// into them once; a second start from the same snapshot (a crash
    /// before the next one) must not move them again.
    #[test]
    fn snapshot_log_records_move_into_segments_once() {
        use log_segments::{LogFilter, LogSegments};
        let dir = tempfile::tempdir().expect("tempdir");
        let from_snapshot = || {
            let mut store = Store::new(limits());
            for i in 0..3 {
                store.keep_log(LogRecord {
                    time_ns: T0 + i,
                    severity: "info".into(),
                    body: format!("old {i}"),
                    attributes: vec![],
                });
            }
            store
        };
        let open = || LogSegments::open(dir.path(), 1 << 30, 24 * HOUR_NS, T0).expect("open");
        let bodies = |store: &Store| -> Vec<String> {
            store
                .log_segments()
                .expect("attached")
                .view()
                .query(&LogFilter::default(), 100)
                .into_iter()
                .map(|r| r.body)
                .collect()
        };
        let mut store = from_snapshot();
        store.attach_log_segments(open());
        assert_eq!(store.logs(100).count(), 0);
        store.push_logs(
            vec![LogRecord {
                time_ns: T0 + 5,
                severity: "info".into(),
                body: "new".into(),
                attributes: vec![],
            }],
            Some(wal::WalPosition { seq: 2, offset: 0 }),
        );
        assert_eq!(bodies(&store), ["old 0", "old 1", "old 2", "new"]);
        assert!(store.log_bytes() > 0);
        drop(store);
        let mut store = from_snapshot();
        store.attach_log_segments(open());
        assert_eq!(bodies(&store), ["old 0", "old 1", "old 2", "new"]);
        assert!(store.logs_cover(wal::WalPosition { seq: 2, offset: 0 }));
        assert!(!store.logs_cover(wal::WalPosition { seq: 2, offset: 1 }));
    }

    #[test]
    fn cumulative_histograms_count_each_observation_once() {
        use crate::ingest::points::{ExplicitBuckets, Running};
        let mut store = Store::new(limits());
        let point = |counts: [u64; 3], max: f64, start: u64| SampleValue::CumulativeDistribution {
            histogram: Box::new(Running::Explicit(ExplicitBuckets {
                bounds: vec![1.0, 2.0],
                counts: counts.to_vec(),
                min: Some(0.5),
                max: Some(max),
                sum: 0.0,
            })),
            start_ns: start,
        };
        // Three values ≤ 1, then two in (1, 2], then five above 2: ten in
        // all, however often the running totals are sent.
        for (i, (counts, max)) in [
            ([3, 0, 0], 0.5),
            ([3, 2, 0], 1.8),
            ([3, 2, 0], 1.8),
            ([3, 2, 5], 9.0),
        ]
        .into_iter()
        .enumerate()
        {
            store.apply(sample(
                "ttft",
                "a",
                T0 + i as u64 * 1_000_000_000,
                point(counts, max, T0 - 1),
            ));
        }
        let series = store.select("ttft", &[]).next().expect("series");
        let quantile = |q| store.stat(series, Stat::Quantile(q), T0, T0 + HOUR_NS);
        // Counted twice, six of the eighteen would sit at 0.5 and the
        // median would be 0.5.
        let median = quantile(0.5).expect("median");
        assert!((median - 1.8).abs() < 0.05, "{median}");
        assert!((quantile(0.9).expect("p90") - 9.0).abs() < 0.2);
        assert_eq!(store.stats().resets, 0);
        // A restart (a new start time): its running totals are all new.
        store.apply(sample(
            "ttft",
            "a",
            T0 + 10_000_000_000,
            point([0, 0, 40], 9.0, T0 + 5),
        ));
        assert_eq!(store.stats().resets, 1);
        let series = store.select("ttft", &[]).next().expect("series");
        let median = store
            .stat(series, Stat::Quantile(0.5), T0, T0 + HOUR_NS)
            .expect("median");
        assert!((median - 9.0).abs() < 0.2, "{median}");
    }

    #[test]
    fn cumulative_counters_become_deltas_with_resets() {
        let mut store = Store::new(limits());
        let cumulative = |v: f64, start: u64| SampleValue::Cumulative {
            value: v,
            start_ns: start,
        };
        for (i, (v, start)) in [(10.0, 1), (15.0, 1), (25.0, 1), (4.0, 2), (6.0, 2)]
            .iter()
            .enumerate()
        {
            store.apply(sample(
                "cpu",
                "a",
                T0 + i as u64 * 15_000_000_000,
                cumulative(*v, *start),
            ));
        }
        let series = store.select("cpu", &[]).next().expect("series");
        // 10 is the baseline; then +5, +10, reset to 4 (+4), +2.
        assert_eq!(
            store.stat(series, Stat::Increase, T0, T0 + HOUR_NS),
            Some(21.0)
        );
        assert_eq!(store.stats().resets, 1);
        assert_eq!(series.latest(), Some(21.0));
        assert_eq!(series.latest_rate(), Some(2.0 / 15.0));
    }

    #[test]
    fn gauges_and_distributions_answer_quantiles_over_windows() {
        let mut store = Store::new(limits());
        for i in 0..48u64 {
            let t = T0 + i * HOUR_NS;
            store.apply(sample("mem", "a", t, SampleValue::Gauge(100.0 + i as f64)));
            let mut sketch = ExpHistogram::default();
            for v in 1..=100 {
                sketch.record(v as f64 * if i == 47 { 10.0 } else { 1.0 });
            }
            store.apply(sample(
                "cpu",
                "a",
                t,
                SampleValue::Distribution(Box::new(sketch)),
            ));
        }
        let matchers = vec![("k8s.pod.name".to_owned(), "a".to_owned())];
        let mem = store.select("mem", &matchers).next().expect("mem");
        assert_eq!(
            store.stat(mem, Stat::Max, T0, T0 + 48 * HOUR_NS),
            Some(147.0)
        );
        assert_eq!(
            store.stat(mem, Stat::Max, T0, T0 + 10 * HOUR_NS),
            Some(110.0)
        );
        assert_eq!(
            store.stat(mem, Stat::Min, T0, T0 + 48 * HOUR_NS),
            Some(100.0)
        );
        let cpu = store.select("cpu", &matchers).next().expect("cpu");
        let p95 = store
            .stat(cpu, Stat::Quantile(0.95), T0, T0 + 46 * HOUR_NS)
            .expect("p95");
        assert!((p95 - 95.0).abs() / 95.0 < 0.1, "{p95}");
        let p99_all = store
            .stat(cpu, Stat::Quantile(0.999), T0, T0 + 48 * HOUR_NS)
            .expect("p99.9");
        assert!(
            p99_all > 900.0,
            "the last hour's burst is in the tail: {p99_all}"
        );
        assert!(
            store
                .select("cpu", &[("k8s.pod.name".to_owned(), "b".to_owned())])
                .next()
                .is_none()
        );
    }

    #[test]
    fn retention_and_raw_window_bound_memory() {
        let mut store = Store::new(StoreLimits {
            retention_ns: 24 * HOUR_NS,
            raw_window_ns: HOUR_NS,
            raw_points: 100,
            log_records: 2,
            max_series: 1000,
        });
        for i in 0..(72 * 4) {
            store.apply(sample(
                "mem",
                "a",
                T0 + i * 900_000_000_000,
                SampleValue::Gauge(1.0),
            ));
        }
        let series = store.select("mem", &[]).next().expect("series");
        let (hours, days) = series.aggregate_count();
        assert!(hours <= 72, "{hours}");
        assert!(days <= 2, "{days}");
        // One chunk beyond the window at most.
        assert!(series.recent.len() <= 100, "{}", series.recent.len());
        for i in 0..5 {
            store.push_log(LogRecord {
                time_ns: i,
                severity: "INFO".into(),
                body: format!("{i}"),
                attributes: vec![],
            });
        }
        let bodies: Vec<_> = store.logs(10).map(|l| l.body.clone()).collect();
        assert_eq!(bodies, vec!["3", "4"]);
    }

    #[test]
    fn hours_roll_up_into_days_without_changing_answers() {
        let mut store = Store::new(limits());
        // Days are calendar (UTC) days: start on one.
        let t0 = T0 / DAY_NS * DAY_NS;
        // 14 days of 15-minute points; day d's values are 1000·d + 0..96.
        for i in 0..(14 * 96u64) {
            let day = i / 96;
            store.apply(sample(
                "mem",
                "a",
                t0 + i * 900_000_000_000,
                SampleValue::Gauge((1000 * day + i % 96) as f64),
            ));
        }
        let series = store.select("mem", &[]).next().expect("series");
        let (hours, days) = series.aggregate_count();
        assert!(hours <= 72, "{hours}");
        assert!(days <= 13, "{days}");
        let end = t0 + 14 * DAY_NS;
        assert_eq!(store.stat(series, Stat::Max, t0, end), Some(13_095.0));
        assert_eq!(store.stat(series, Stat::Min, t0, end), Some(0.0));
        assert_eq!(
            store.stat(series, Stat::Avg, t0, end).map(|a| a.round()),
            Some(((0..14).map(|d| 1000.0 * d as f64 + 47.5).sum::<f64>() / 14.0).round())
        );
        // A window inside the daily tier widens to whole days.
        assert_eq!(
            store.stat(
                series,
                Stat::Max,
                t0 + DAY_NS + HOUR_NS,
                t0 + 2 * DAY_NS - 1
            ),
            Some(1095.0)
        );
        let p50 = store
            .stat(series, Stat::Quantile(0.5), t0, end)
            .expect("p50");
        assert!((5000.0..8000.0).contains(&p50), "{p50}");
        let peaks = store.daily_peaks(series);
        assert_eq!(peaks.len(), 14);
        for (day, (start, peak)) in peaks.iter().enumerate() {
            assert_eq!(*start, t0 + day as u64 * DAY_NS);
            assert_eq!(*peak, (1000 * day + 95) as f64);
        }
    }

    #[test]
    fn late_points_land_in_their_sealed_hour_or_day() {
        let mut store = Store::new(limits());
        let t0 = T0 / DAY_NS * DAY_NS;
        for hour in 0..72u64 {
            store.apply(sample(
                "mem",
                "a",
                t0 + hour * HOUR_NS,
                SampleValue::Gauge(1.0),
            ));
        }
        // A spool replay delivers an old hour (still hourly) and an older
        // day (already rolled up) after newer data.
        store.apply(sample(
            "mem",
            "a",
            t0 + 60 * HOUR_NS + 5,
            SampleValue::Gauge(50.0),
        ));
        store.apply(sample(
            "mem",
            "a",
            t0 + 2 * HOUR_NS,
            SampleValue::Gauge(70.0),
        ));
        let series = store.select("mem", &[]).next().expect("series");
        let max = |from: u64, to: u64| {
            store.stat(series, Stat::Max, t0 + from * HOUR_NS, t0 + to * HOUR_NS)
        };
        assert_eq!(max(60, 60), Some(50.0));
        assert_eq!(max(61, 71), Some(1.0));
        assert_eq!(max(0, 23), Some(70.0));
        assert_eq!(max(24, 59), Some(1.0));
        assert_eq!(
            store
                .stat(series, Stat::Avg, t0, t0 + 72 * HOUR_NS)
                .map(|a| (a * 1e6).round() / 1e6),
            Some(((72.0 + 50.0 + 70.0) / 74.0 * 1e6_f64).round() / 1e6)
        );
    }

    #[test]
    fn the_series_limit_refuses_new_series_only() {
        let mut store = Store::new(StoreLimits {
            max_series: 2,
            ..limits()
        });
        assert!(store.apply(sample("mem", "a", T0, SampleValue::Gauge(1.0))));
        assert!(store.apply(sample("mem", "b", T0, SampleValue::Gauge(1.0))));
        assert!(!store.apply(sample("mem", "c", T0, SampleValue::Gauge(1.0))));
        assert!(store.apply(sample("mem", "a", T0 + 1, SampleValue::Gauge(2.0))));
        assert_eq!(store.series_count(), 2);
        assert_eq!(store.stats().series_limited, 1);
    }

    #[test]
    fn stat_all_on_threads_answers_like_one_by_one() {
        let mut store = Store::new(StoreLimits {
            max_series: 10_000,
            ..limits()
        });
        for pod in 0..3000u64 {
            for hour in 0..3 {
                store.apply(sample(
                    "mem",
                    &pod.to_string(),
                    T0 + hour * HOUR_NS,
                    SampleValue::Gauge((pod * 10 + hour) as f64),
                ));
            }
        }
        let series: Vec<_> = store.select("mem", &[]).collect();
        let (from, to) = (T0, T0 + 3 * HOUR_NS);
        for stat in [Stat::Max, Stat::Quantile(0.5)] {
            let parallel = store.stat_all(&series, stat, from, to);
            let serial: Vec<_> = series
                .iter()
                .map(|s| store.stat(s, stat, from, to))
                .collect();
            assert_eq!(parallel, serial);
            assert_eq!(parallel.len(), 3000);
        }
    }

    #[test]
    fn idle_series_expire() {
        let mut store = Store::new(limits());
        store.apply(sample("mem", "old", T0, SampleValue::Gauge(1.0)));
        store.apply(sample(
            "mem",
            "new",
            T0 + 13 * 24 * HOUR_NS,
            SampleValue::Gauge(1.0),
        ));
        assert!(store.estimated_bytes() > 0);
        assert_eq!(store.expire(T0 + 14 * 24 * HOUR_NS + 1), 1);
        let pods: Vec<_> = store
            .select("mem", &[])
            .filter_map(|s| s.label("k8s.pod.name"))
            .collect();
        assert_eq!(pods, vec!["new"]);
    }

    #[test]
    fn stats_parse() {
        assert_eq!(Stat::parse("p95"), Some(Stat::Quantile(0.95)));
        assert!(
            matches!(Stat::parse("p99.9"), Some(Stat::Quantile(q)) if (q - 0.999).abs() < 1e-12)
        );
        assert_eq!(Stat::parse("max"), Some(Stat::Max));
        assert_eq!(Stat::parse("p101"), None);
        assert_eq!(Stat::parse("median"), None);
    }
}
