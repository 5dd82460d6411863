//! Store benchmarks for issue #3's query and recovery targets.
//!
//! `cargo bench -p tally-collector --bench store` runs both:
//!
//! - **query**: `BENCH_CONTAINERS` (10,000) containers with 14 days of CPU
//!   distributions and memory levels (four exports an hour, each a
//!   15-sample distribution, as the agent sends); then p95 of CPU and max of
//!   memory over 14 days for every container, `BENCH_QUERY_RUNS` times.
//! - **recovery**: a `BENCH_NODES` (1,000) node simulated fleet
//!   (`tally simulate`'s generator) with 14 days of history at 1-hour steps
//!   and the last 6 hours at `BENCH_RAW_STEP_SECONDS` (60 s) steps, a
//!   snapshot, then `BENCH_TAIL_MINUTES` (5, the default snapshot
//!   interval) of fleet data in the write-ahead log; timed: a real
//!   `Collector::open` on that data directory.
//!
//! `BENCH_ONLY=query` or `BENCH_ONLY=recovery` runs one of them;
//! `BENCH_ONLY=reopen` times the restart again on a kept
//! `BENCH_RECOVERY_DIR`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use tally_collector::ingest::points::{self, Sample, SampleValue, TimeWindow};
use tally_collector::server::{Collector, CollectorOptions};
use tally_collector::simulate::{Fleet, Rng};
use tally_collector::store::wal::{RecordKind, Wal};
use tally_collector::store::{LabelSet, Stat, Store, StoreLimits, snapshot};
use tally_schema::exphist::ExpHistogram;

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn limits() -> StoreLimits {
    StoreLimits {
        retention_ns: 14 * DAY_NS,
        raw_window_ns: 6 * HOUR_NS,
        raw_points: 1440,
        log_records: 10_000,
        max_series: usize::MAX,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn query() {
    let containers = env("BENCH_CONTAINERS", 10_000) as usize;
    let runs = env("BENCH_QUERY_RUNS", 20) as usize;
    let end = now_ns() / HOUR_NS * HOUR_NS;
    let start = end - 14 * DAY_NS;
    let rss_before = rss_kib();
    // BENCH_STORE_CACHE=DIR keeps the filled store as a snapshot there, so
    // query changes can be measured again without filling it again.
    let cache = std::env::var_os("BENCH_STORE_CACHE").map(std::path::PathBuf::from);
    if let Some(dir) = &cache
        && let Ok(Some(loaded)) = snapshot::read(dir, limits())
    {
        println!("query: store loaded from {}", dir.display());
        return query_runs(&loaded.store, containers, runs, start, end);
    }
    let mut store = Store::new(limits());
    let mut rng = Rng::new(7);
    let labels: Vec<_> = (0..containers)
        .map(|i| {
            std::sync::Arc::new(LabelSet::new(vec![
                ("container.id".into(), format!("{i:064x}")),
                ("k8s.container.name".into(), "main".into()),
                ("k8s.namespace.name".into(), format!("team-{}", i % 40)),
                ("k8s.node.name".into(), format!("node-{:04}", i / 14)),
                ("k8s.pod.name".into(), format!("workload-{}-{i}", i % 300)),
                (
                    "k8s.pod.uid".into(),
                    format!("{i:08x}-0000-4000-8000-000000000000"),
                ),
                ("container.runtime".into(), "containerd".into()),
                ("tally.simulated".into(), "true".into()),
            ]))
        })
        .collect();
    let cpu: std::sync::Arc<str> = std::sync::Arc::from("tally_container_cpu_usage_sampled_cores");
    let memory: std::sync::Arc<str> =
        std::sync::Arc::from("tally_container_memory_working_set_bytes");
    let filled = Instant::now();
    let mut samples = 0u64;
    let mut t = start;
    while t < end {
        let day = (t % DAY_NS) as f64 / DAY_NS as f64 * std::f64::consts::TAU;
        for (i, labels) in labels.iter().enumerate() {
            let base = 0.05 + (i % 17) as f64 * 0.1;
            let mut sketch = ExpHistogram::default();
            for _ in 0..15 {
                let burst = if rng.unit() < 0.02 { 4.0 } else { 1.0 };
                sketch.record(base * (1.2 + day.sin()) * burst * (0.8 + 0.4 * rng.unit()));
            }
            store.apply(Sample {
                metric: std::sync::Arc::clone(&cpu),
                labels: std::sync::Arc::clone(labels),
                time_ns: t,
                value: SampleValue::Distribution(Box::new(sketch)),
            });
            let grow = (t - start) as f64 / (14 * DAY_NS) as f64;
            store.apply(Sample {
                metric: std::sync::Arc::clone(&memory),
                labels: std::sync::Arc::clone(labels),
                time_ns: t,
                value: SampleValue::Gauge(
                    (2e8 + (i % 23) as f64 * 1e8) * (1.0 + 0.3 * grow) * (0.95 + 0.1 * rng.unit()),
                ),
            });
            samples += 2;
        }
        t += 15 * 60 * 1_000_000_000;
    }
    let fill = filled.elapsed();
    let rss = rss_kib().saturating_sub(rss_before);
    println!(
        "query: {containers} containers, {} series, {samples} samples over 14 days in {:.1} s ({:.0} samples/s); \
         store estimate {:.0} B/series, RSS growth {:.0} B/series",
        store.series_count(),
        fill.as_secs_f64(),
        samples as f64 / fill.as_secs_f64(),
        store.estimated_bytes() as f64 / store.series_count() as f64,
        rss as f64 * 1024.0 / store.series_count() as f64,
    );
    // A running collector has snapshotted this history: its sealed hours
    // and days are read from the snapshot file, as queried here.
    let scratch = tempfile::tempdir().expect("temporary directory");
    let dir = cache.unwrap_or_else(|| scratch.path().to_path_buf());
    let _ = std::fs::create_dir_all(&dir);
    snapshot::write(&mut store, &dir, 0)
        .and_then(snapshot::Pending::commit)
        .expect("write the snapshot");
    println!(
        "query: after the snapshot the store estimate is {:.0} B/series (history read from {})",
        store.estimated_bytes() as f64 / store.series_count() as f64,
        dir.display()
    );
    query_runs(&store, containers, runs, start, end);
}

fn query_runs(store: &Store, containers: usize, runs: usize, start: u64, end: u64) {
    let cpu = "tally_container_cpu_usage_sampled_cores";
    let memory = "tally_container_memory_working_set_bytes";
    let mut times = Vec::with_capacity(runs);
    let mut checksum = 0.0;
    for _ in 0..runs {
        let began = Instant::now();
        let mut answered = 0usize;
        for (metric, stat) in [(cpu, Stat::Quantile(0.95)), (memory, Stat::Max)] {
            let selected: Vec<_> = store.select(metric, &[]).collect();
            for value in store
                .stat_all(&selected, stat, start, end)
                .into_iter()
                .flatten()
            {
                checksum += value;
                answered += 1;
            }
        }
        times.push(began.elapsed());
        assert_eq!(answered, 2 * containers, "every container answers");
    }
    times.sort();
    println!(
        "query: p95 CPU + max memory over 14 days for {containers} containers: \
         median {:.1} ms, p95 {:.1} ms, max {:.1} ms over {runs} runs (target <= 200 ms; checksum {checksum:.3e})",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
    );
}

fn apply(
    store: &mut Store,
    request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) -> usize {
    let window = TimeWindow {
        oldest_ns: 0,
        newest_ns: u64::MAX,
    };
    let flattened = points::flatten_request(request, window, &store.interner());
    let n = flattened.samples.len();
    for sample in flattened.samples {
        store.apply(sample);
    }
    n
}

fn recovery() {
    let nodes = env("BENCH_NODES", 1000) as usize;
    let raw_step = Duration::from_secs(env("BENCH_RAW_STEP_SECONDS", 60));
    let tail_minutes = env("BENCH_TAIL_MINUTES", 5);
    let end = now_ns() / 60_000_000_000 * 60_000_000_000;
    let start = end - 14 * DAY_NS;
    let mut fleet = Fleet::new(nodes, 1, start);
    let mut store = Store::new(limits());
    let filled = Instant::now();
    let mut samples = 0usize;
    let hour = Duration::from_secs(3600);
    let mut t = start + HOUR_NS;
    let raw_from = end - 6 * HOUR_NS - tail_minutes * 60_000_000_000;
    while t <= raw_from {
        samples += apply(&mut store, &fleet.step(t, hour));
        t += HOUR_NS;
    }
    let snapshot_at = end - tail_minutes * 60_000_000_000;
    while t <= snapshot_at {
        samples += apply(&mut store, &fleet.step(t, raw_step));
        t += raw_step.as_nanos() as u64;
    }
    println!(
        "recovery: {nodes} nodes, {} containers, {} series, {samples} samples in {:.1} s; store estimate {:.0} B/series",
        fleet.containers(),
        store.series_count(),
        filled.elapsed().as_secs_f64(),
        store.estimated_bytes() as f64 / store.series_count() as f64,
    );
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("tempdir: {error}"),
    };
    // BENCH_RECOVERY_DIR=DIR keeps the data directory, so the restart can
    // be timed again (BENCH_ONLY=reopen) without building the fleet again.
    let data = std::env::var_os("BENCH_RECOVERY_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let _ = std::fs::create_dir_all(&data);
    let began = Instant::now();
    let pending = snapshot::write(&mut store, &data, 2).expect("write the snapshot");
    let locked = began.elapsed();
    let bytes = pending.commit().expect("commit the snapshot");
    println!(
        "recovery: snapshot {:.1} MiB ({:.0} B/series), written (store locked) in {:.2} s, fsynced and renamed in {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / store.series_count() as f64,
        locked.as_secs_f64(),
        (began.elapsed() - locked).as_secs_f64(),
    );
    drop(store);
    // The log written since the snapshot: one request per export step.
    let (mut wal, _) = match Wal::open(
        &data.join("wal"),
        Duration::from_secs(14 * 86_400),
        2,
        |_, _| {},
    ) {
        Ok(wal) => wal,
        Err(error) => panic!("{error}"),
    };
    let mut tail_points = 0usize;
    while t <= end {
        let request = fleet.step(t, raw_step);
        tail_points += tally_schema::otlp::count_points(&request);
        if let Err(error) = wal.append(RecordKind::Metrics, &request.encode_to_vec()) {
            panic!("{error}");
        }
        t += raw_step.as_nanos() as u64;
    }
    drop(wal);
    reopen(&data, tail_minutes, tail_points);
}

/// Times a real `Collector::open` on a data directory: snapshot load plus
/// log replay.
fn reopen(data: &std::path::Path, tail_minutes: u64, tail_points: usize) {
    let began = Instant::now();
    let collector = match Collector::open(CollectorOptions {
        data_dir: data.to_path_buf(),
        ..CollectorOptions::default()
    }) {
        Ok(collector) => collector,
        Err(error) => panic!("{error}"),
    };
    let took = began.elapsed();
    let series = collector.with_store(Store::series_count);
    println!(
        "recovery: Collector::open loaded the snapshot and replayed {tail_minutes} min of log ({tail_points} points) \
         in {:.2} s for {series} series (target <= 10 s)",
        took.as_secs_f64()
    );
    // The next snapshot, which copies the history it reads from the one
    // just loaded; the directory then holds it (and no log tail).
    let began = Instant::now();
    let bytes = collector.snapshot().expect("the next snapshot");
    println!(
        "recovery: the next snapshot ({:.1} MiB) took {:.2} s, {:.2} s of it holding the store",
        bytes as f64 / (1 << 20) as f64,
        began.elapsed().as_secs_f64(),
        collector.snapshot_lock_seconds(),
    );
}

fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "query" {
        query();
    }
    if only.is_empty() || only == "recovery" {
        recovery();
    }
    if only == "reopen" {
        match std::env::var_os("BENCH_RECOVERY_DIR") {
            Some(dir) => reopen(std::path::Path::new(&dir), env("BENCH_TAIL_MINUTES", 5), 0),
            None => println!("reopen: set BENCH_RECOVERY_DIR to a directory a recovery run kept"),
        }
    }
}
