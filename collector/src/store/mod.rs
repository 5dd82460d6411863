//! The embedded store: per-series hourly aggregates with a mergeable
//! distribution sketch, a short raw window for sparklines, the agents seen
//! and recent log records. Durability comes from the [`wal`].
//!
//! Hourly aggregates answer the analyzer's questions (p95 of CPU, max of
//! memory over 14 days) by merging at most 336 sketches per series, never
//! by scanning raw points.

pub mod wal;

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use tally_schema::exphist::ExpHistogram;

use crate::ingest::points::{Labels, Sample, SampleValue};

/// Nanoseconds per hour.
const HOUR_NS: u64 = 3_600_000_000_000;
/// Nanoseconds per day.
const DAY_NS: u64 = 24 * HOUR_NS;
/// Hours kept at hourly resolution; older hours are rolled up into days,
/// so 14 days cost 48 + 12 aggregates per series instead of 336.
const HOURLY_TIER_NS: u64 = 48 * HOUR_NS;

/// Store limits.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// How long hourly aggregates are kept.
    pub retention_ns: u64,
    /// How long raw points are kept for sparklines.
    pub raw_window_ns: u64,
    /// Most raw points kept per series (bounds memory per series).
    pub raw_points: usize,
    /// Log records kept in memory.
    pub log_records: usize,
}

/// One hour of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// Smallest value seen.
    pub min: f64,
    /// Largest value seen.
    pub max: f64,
    /// Sum of values (for deltas: the total increase in the hour).
    pub sum: f64,
    /// Number of values.
    pub count: u64,
    /// Distribution of values.
    #[serde(skip)]
    pub sketch: ExpHistogram,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
            sketch: ExpHistogram::default(),
        }
    }
}

impl Aggregate {
    fn observe(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1;
        self.sketch.record(value);
    }

    fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        self.sketch.merge(&other.sketch);
    }

    fn merge_distribution(&mut self, sketch: &ExpHistogram) {
        if let Some(min) = sketch.min() {
            self.min = self.min.min(min);
        }
        if let Some(max) = sketch.max() {
            self.max = self.max.max(max);
        }
        self.sum += sketch.sum();
        self.count += sketch.count();
        self.sketch.merge(sketch);
    }
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

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Metric name.
    pub metric: String,
    /// Identifying labels.
    pub labels: Labels,
    /// How values combine.
    pub kind: SeriesKind,
    /// Hourly aggregates of the last 48 hours, keyed by hour start (ns).
    pub hours: BTreeMap<u64, Aggregate>,
    /// Daily aggregates of older hours, keyed by day start (ns).
    pub days: BTreeMap<u64, Aggregate>,
    /// Recent `(time ns, value)` points; for counters the running total.
    pub recent: VecDeque<(u64, f64)>,
    /// Last cumulative `(start ns, value)`, for delta conversion.
    last_cumulative: Option<(u64, f64)>,
    /// Running total of a counter since the collector first saw it.
    total: f64,
    /// Time of the newest point.
    pub last_ns: u64,
}

impl Series {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The newest raw value (counters: running total).
    pub fn latest(&self) -> Option<f64> {
        self.recent.back().map(|(_, v)| *v)
    }

    /// Rate per second over the raw window's last two points (counters).
    pub fn latest_rate(&self) -> Option<f64> {
        let n = self.recent.len();
        if n < 2 {
            return None;
        }
        let (t0, v0) = self.recent[n - 2];
        let (t1, v1) = self.recent[n - 1];
        (t1 > t0).then(|| (v1 - v0) / ((t1 - t0) as f64 / 1e9))
    }
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
    /// Resource and record attributes.
    pub attributes: Labels,
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
}

/// The store.
#[derive(Debug)]
pub struct Store {
    limits: StoreLimits,
    /// Series by a hash of (metric, labels); a bucket holds the rare
    /// collisions. Looking up by hash avoids cloning the key per sample.
    series: HashMap<u64, Vec<Series>>,
    series_total: usize,
    agents: BTreeMap<(String, String), AgentSeen>,
    logs: VecDeque<LogRecord>,
    stats: StoreStats,
}

impl Store {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            series: HashMap::new(),
            series_total: 0,
            agents: BTreeMap::new(),
            logs: VecDeque::new(),
            stats: StoreStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series_total
    }

    fn all_series(&self) -> impl Iterator<Item = &Series> {
        self.series.values().flatten()
    }

    /// Applies one sample.
    pub fn apply(&mut self, sample: Sample) {
        let hour = sample.time_ns / HOUR_NS * HOUR_NS;
        let kind = match sample.value {
            SampleValue::Gauge(_) => SeriesKind::Gauge,
            SampleValue::Delta(_) | SampleValue::Cumulative { .. } => SeriesKind::Counter,
            SampleValue::Distribution(_) => SeriesKind::Distribution,
        };
        let limits = self.limits;
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            sample.metric.hash(&mut hasher);
            sample.labels.hash(&mut hasher);
            hasher.finish()
        };
        let bucket = self.series.entry(hash).or_default();
        let position = match bucket
            .iter()
            .position(|s| s.metric == sample.metric && s.labels == sample.labels)
        {
            Some(position) => position,
            None => {
                bucket.push(Series {
                    metric: sample.metric,
                    labels: sample.labels,
                    kind,
                    hours: BTreeMap::new(),
                    days: BTreeMap::new(),
                    recent: VecDeque::new(),
                    last_cumulative: None,
                    total: 0.0,
                    last_ns: 0,
                });
                self.series_total += 1;
                bucket.len() - 1
            }
        };
        let series = &mut bucket[position];
        series.last_ns = series.last_ns.max(sample.time_ns);
        let recent_value = match sample.value {
            SampleValue::Gauge(v) => {
                series.hours.entry(hour).or_default().observe(v);
                Some(v)
            }
            SampleValue::Delta(d) => {
                series.total += d;
                series.hours.entry(hour).or_default().observe(d);
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
                    series.hours.entry(hour).or_default().observe(delta);
                }
                Some(series.total)
            }
            SampleValue::Distribution(sketch) => {
                series
                    .hours
                    .entry(hour)
                    .or_default()
                    .merge_distribution(&sketch);
                None
            }
        };
        if let Some(value) = recent_value {
            series.recent.push_back((sample.time_ns, value));
            let oldest = sample.time_ns.saturating_sub(limits.raw_window_ns);
            while series.recent.len() > limits.raw_points
                || series.recent.front().is_some_and(|(t, _)| *t < oldest)
            {
                series.recent.pop_front();
            }
        }
        // Roll hours past the hourly tier into days (newest time seen so
        // far decides, so a late point cannot un-roll anything).
        let hourly_from = series.last_ns.saturating_sub(HOURLY_TIER_NS) / HOUR_NS * HOUR_NS;
        while let Some(entry) = series.hours.first_entry() {
            if *entry.key() >= hourly_from {
                break;
            }
            let (hour, aggregate) = entry.remove_entry();
            series
                .days
                .entry(hour / DAY_NS * DAY_NS)
                .or_default()
                .merge(&aggregate);
        }
        let oldest_day = series.last_ns.saturating_sub(limits.retention_ns) / DAY_NS * DAY_NS;
        while series
            .days
            .first_key_value()
            .is_some_and(|(d, _)| *d < oldest_day)
        {
            series.days.pop_first();
        }
        self.stats.samples += 1;
    }

    /// Drops series with no point inside the retention window (pods come
    /// and go; their series must not accumulate). Returns how many went.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let oldest = now_ns.saturating_sub(self.limits.retention_ns);
        let before = self.series_total;
        for bucket in self.series.values_mut() {
            bucket.retain(|series| series.last_ns >= oldest);
        }
        self.series.retain(|_, bucket| !bucket.is_empty());
        self.series_total = self.series.values().map(Vec::len).sum();
        before - self.series_total
    }

    /// An estimate of the heap the series hold, in bytes (labels, hourly
    /// aggregates with their sketch buckets, raw points).
    pub fn estimated_bytes(&self) -> usize {
        self.all_series()
            .map(|s| {
                let labels: usize = s
                    .labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum::<usize>()
                    * 2;
                let hours: usize = s
                    .hours
                    .values()
                    .chain(s.days.values())
                    .map(|a| {
                        std::mem::size_of::<Aggregate>() + 48 + a.sketch.bucket_counts().len() * 8
                    })
                    .sum();
                std::mem::size_of::<Series>()
                    + s.metric.len() * 2
                    + labels
                    + hours
                    + s.recent.len() * 16
            })
            .sum()
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

    /// Stores a log record, keeping the newest `log_records`.
    pub fn push_log(&mut self, record: LogRecord) {
        self.logs.push_back(record);
        while self.logs.len() > self.limits.log_records {
            self.logs.pop_front();
        }
        self.stats.log_records += 1;
    }

    /// The newest `limit` log records, newest last.
    pub fn logs(&self, limit: usize) -> impl Iterator<Item = &LogRecord> {
        self.logs.iter().skip(self.logs.len().saturating_sub(limit))
    }

    /// Series of `metric` whose labels include every `matchers` pair.
    pub fn select<'a>(
        &'a self,
        metric: &'a str,
        matchers: &'a [(String, String)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.all_series().filter(move |s| {
            s.metric == metric && matchers.iter().all(|(k, v)| s.label(k) == Some(v.as_str()))
        })
    }

    /// Every metric name with its series count.
    pub fn metrics(&self) -> BTreeMap<&str, usize> {
        let mut names = BTreeMap::new();
        for series in self.all_series() {
            *names.entry(series.metric.as_str()).or_insert(0) += 1;
        }
        names
    }

    /// `stat` of one series over `[from_ns, to_ns]`, merging the hourly
    /// and daily aggregates that overlap the window (beyond 48 hours the
    /// window is widened to whole days).
    pub fn stat(series: &Series, stat: Stat, from_ns: u64, to_ns: u64) -> Option<f64> {
        let first_hour = from_ns / HOUR_NS * HOUR_NS;
        let first_day = from_ns / DAY_NS * DAY_NS;
        let hours = series
            .days
            .range(first_day..=to_ns)
            .chain(series.hours.range(first_hour..=to_ns));
        match stat {
            Stat::Quantile(q) => {
                let mut merged = ExpHistogram::default();
                for (_, aggregate) in hours {
                    merged.merge(&aggregate.sketch);
                }
                merged.quantile(q)
            }
            Stat::Max => hours.map(|(_, a)| a.max).reduce(f64::max),
            Stat::Min => hours.map(|(_, a)| a.min).reduce(f64::min),
            Stat::Avg => {
                let (sum, count) =
                    hours.fold((0.0, 0u64), |(s, c), (_, a)| (s + a.sum, c + a.count));
                (count > 0).then(|| sum / count as f64)
            }
            Stat::Increase => {
                let mut any = false;
                let sum = hours.fold(0.0, |s, (_, a)| {
                    any = true;
                    s + a.sum
                });
                any.then_some(sum)
            }
            Stat::Rate => {
                let mut any = false;
                let sum = hours.fold(0.0, |s, (_, a)| {
                    any = true;
                    s + a.sum
                });
                let seconds = (to_ns.saturating_sub(from_ns)) as f64 / 1e9;
                (any && seconds > 0.0).then(|| sum / seconds)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000_000_000;

    fn limits() -> StoreLimits {
        StoreLimits {
            retention_ns: 14 * 24 * HOUR_NS,
            raw_window_ns: 6 * HOUR_NS,
            raw_points: 1440,
            log_records: 10,
        }
    }

    fn sample(metric: &str, pod: &str, t: u64, value: SampleValue) -> Sample {
        Sample {
            metric: metric.to_owned(),
            labels: vec![("k8s.pod.name".to_owned(), pod.to_owned())],
            time_ns: t,
            value,
        }
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
            Store::stat(series, Stat::Increase, T0, T0 + HOUR_NS),
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
            Store::stat(mem, Stat::Max, T0, T0 + 48 * HOUR_NS),
            Some(147.0)
        );
        assert_eq!(
            Store::stat(mem, Stat::Max, T0, T0 + 10 * HOUR_NS),
            Some(110.0)
        );
        assert_eq!(
            Store::stat(mem, Stat::Min, T0, T0 + 48 * HOUR_NS),
            Some(100.0)
        );
        let cpu = store.select("cpu", &matchers).next().expect("cpu");
        let p95 = Store::stat(cpu, Stat::Quantile(0.95), T0, T0 + 46 * HOUR_NS).expect("p95");
        assert!((p95 - 95.0).abs() / 95.0 < 0.1, "{p95}");
        let p99_all =
            Store::stat(cpu, Stat::Quantile(0.999), T0, T0 + 48 * HOUR_NS).expect("p99.9");
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
        assert!(series.hours.len() <= 49, "{}", series.hours.len());
        assert!(series.days.len() <= 2, "{}", series.days.len());
        assert!(series.recent.len() <= 5, "{}", series.recent.len());
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
        assert!(series.hours.len() <= 49, "{}", series.hours.len());
        assert!(series.days.len() <= 13, "{}", series.days.len());
        let end = t0 + 14 * DAY_NS;
        assert_eq!(Store::stat(series, Stat::Max, t0, end), Some(13_095.0));
        assert_eq!(Store::stat(series, Stat::Min, t0, end), Some(0.0));
        assert_eq!(
            Store::stat(series, Stat::Avg, t0, end).map(|a| a.round()),
            Some(((0..14).map(|d| 1000.0 * d as f64 + 47.5).sum::<f64>() / 14.0).round())
        );
        // A window inside the daily tier widens to whole days.
        assert_eq!(
            Store::stat(
                series,
                Stat::Max,
                t0 + DAY_NS + HOUR_NS,
                t0 + 2 * DAY_NS - 1
            ),
            Some(1095.0)
        );
        let p50 = Store::stat(series, Stat::Quantile(0.5), t0, end).expect("p50");
        assert!((5000.0..8000.0).contains(&p50), "{p50}");
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
