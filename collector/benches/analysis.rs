//! The analyzer's performance target (issue #4): a full analysis of
//! `BENCH_CONTAINERS` (10,000) containers with 14 days of history in the
//! store in ≤ 1 s, and in the same run the same per-container CPU p95 and
//! memory max computed by polars over raw 1-minute points.
//!
//! `cargo bench -p tally-collector --bench analysis`
//!
//! `BENCH_STORE_DIR=DIR` keeps the filled store's snapshot in `DIR` and
//! reuses it on the next run (the fill takes minutes); `BENCH_PHASES=1`
//! prints each extraction phase's time.
//!
//! - The store is filled with `tally simulate`'s fleet (every family the
//!   analyzer reads: requests, limits, sampled CPU and memory, OOM kills,
//!   GPUs, model servers, traffic), nodes added until the fleet has
//!   `BENCH_CONTAINERS` containers, at 1-hour steps over 14 days, then
//!   snapshotted so sealed history is read as a running collector reads
//!   it.
//! - Timed, `BENCH_RUNS` (5) times: extraction from the store plus
//!   `recommend::analyze` (allocation, polars roll-ups, every card).
//! - Timed the same way: polars, from an in-memory frame of
//!   `BENCH_RAW_ROWS` (40,320,000) raw 1-minute rows (container, CPU,
//!   memory) for the same containers (4,032 minutes each), `group_by`
//!   container with CPU p95 and memory max. Building the frame is not
//!   timed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use polars::prelude::*;
use tally_analyzer::config::AnalyzerConfig;
use tally_analyzer::pricing::PriceBook;
use tally_analyzer::recommend;
use tally_collector::analysis::extract::{self, Span};
use tally_collector::ingest::points::{self, TimeWindow};
use tally_collector::simulate::{Fleet, Rng};
use tally_collector::store::{Stat, Store, StoreLimits, snapshot};

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let wanted = env("BENCH_CONTAINERS", 10_000) as usize;
    let runs = env("BENCH_RUNS", 5).max(1) as usize;
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        / HOUR_NS
        * HOUR_NS;
    let limits = StoreLimits {
        retention_ns: 14 * DAY_NS,
        raw_window_ns: 6 * HOUR_NS,
        raw_points: 1440,
        log_records: 10_000,
        max_series: usize::MAX,
    };
    // BENCH_STORE_DIR keeps the filled store's snapshot between runs (the
    // fill takes minutes); the analysis then reads it as a restarted
    // collector does.
    let kept = std::env::var_os("BENCH_STORE_DIR").map(std::path::PathBuf::from);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let dir = kept.clone().unwrap_or_else(|| scratch.path().to_path_buf());
    let facts_path = dir.join("bench-facts.txt");
    let facts: Option<Vec<u64>> = std::fs::read_to_string(&facts_path).ok().map(|text| {
        text.split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    });
    let (store, end, nodes, containers) = match facts.as_deref() {
        Some(&[end, nodes, containers]) if kept.is_some() => {
            let loaded = snapshot::read(&dir, limits)
                .expect("read the kept snapshot")
                .expect("a kept snapshot");
            println!(
                "analysis: the store kept in {} ({} series)",
                dir.display(),
                loaded.store.series_count()
            );
            (loaded.store, end, nodes as usize, containers as usize)
        }
        _ => {
            let start = end - 14 * DAY_NS;
            // The fewest nodes whose fleet has the containers wanted.
            let (mut low, mut high) = (1, wanted.max(1));
            while low < high {
                let middle = (low + high) / 2;
                if Fleet::new(middle, 1, start).containers() < wanted {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            let nodes = low;
            let mut fleet = Fleet::new(nodes, 1, start);
            let containers = fleet.containers();
            let mut store = Store::new(limits);
            let window = TimeWindow {
                oldest_ns: 0,
                newest_ns: u64::MAX,
            };
            let filled = Instant::now();
            let hour = Duration::from_secs(3600);
            let mut t = start;
            while t < end {
                t += HOUR_NS;
                let request = fleet.step(t, hour);
                let flattened = points::flatten_request(&request, window, &store.interner());
                for sample in flattened.samples {
                    store.apply(sample);
                }
            }
            std::fs::create_dir_all(&dir).expect("the store directory");
            snapshot::write(&mut store, &dir, 0)
                .and_then(snapshot::Pending::commit)
                .expect("write the snapshot");
            std::fs::write(&facts_path, format!("{end} {nodes} {containers}\n"))
                .expect("write the bench facts");
            println!(
                "analysis: {nodes} nodes, {containers} containers, {} series, 14 days at 1 h filled and snapshotted in {:.0} s",
                store.series_count(),
                filled.elapsed().as_secs_f64()
            );
            (store, end, nodes, containers)
        }
    };
    let start = end - 14 * DAY_NS;
    println!("analysis: {nodes} nodes, {containers} containers");
    let config = AnalyzerConfig::default();
    let prices = PriceBook::builtin().expect("price catalog");
    let span = Span {
        from_ns: start,
        to_ns: end,
        idle_from_ns: end - HOUR_NS,
    };
    let mut extract_times = Vec::new();
    let mut total_times = Vec::new();
    let mut cards = 0;
    for _ in 0..runs {
        let began = Instant::now();
        let (snapshot, phases) = extract::extract_phases(&store, span);
        extract_times.push(began.elapsed());
        if std::env::var_os("BENCH_PHASES").is_some() {
            let text: Vec<String> = phases
                .iter()
                .map(|(name, took)| format!("{name} {:.1}", took.as_secs_f64() * 1e3))
                .collect();
            println!("analysis: extraction phases (ms): {}", text.join(", "));
        }
        let report = recommend::analyze(&snapshot, &config, &prices).expect("analysis");
        total_times.push(began.elapsed());
        cards = report.recommendations.len();
        assert_eq!(snapshot.containers.len(), containers);
    }
    let (extract_median, _) = median(extract_times);
    let (tally_median, tally_max) = median(total_times);
    println!(
        "analysis: full analysis of {containers} containers over 14 days: median {:.1} ms (extraction {:.1} ms), max {:.1} ms over {runs} runs; {cards} recommendations",
        tally_median.as_secs_f64() * 1e3,
        extract_median.as_secs_f64() * 1e3,
        tally_max.as_secs_f64() * 1e3,
    );
    // The same two statistics from the store alone.
    let cpu_series: Vec<_> = store
        .family("tally_container_cpu_usage_sampled_cores")
        .collect();
    let memory_series: Vec<_> = store
        .family("tally_container_memory_working_set_bytes")
        .collect();
    let mut store_times = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let p95 = store.stat_all(&cpu_series, Stat::Quantile(0.95), start, end);
        let max = store.stat_all(&memory_series, Stat::Max, start, end);
        store_times.push(began.elapsed());
        assert_eq!(p95.len() + max.len(), 2 * containers);
    }
    let (store_median, _) = median(store_times);
    println!(
        "analysis: the store's CPU p95 and memory max of {containers} containers over 14 days: median {:.1} ms",
        store_median.as_secs_f64() * 1e3
    );
    // The same statistics from raw points with polars.
    let rows = env("BENCH_RAW_ROWS", 40_320_000) as usize;
    let per_container = rows.div_ceil(containers);
    let mut rng = Rng::new(9);
    let mut ids = Vec::with_capacity(rows);
    let mut cpu = Vec::with_capacity(rows);
    let mut memory = Vec::with_capacity(rows);
    for c in 0..containers {
        let base = 0.05 + (c % 17) as f64 * 0.1;
        let level = 2e8 + (c % 23) as f64 * 1e8;
        for minute in 0..per_container {
            let day = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            ids.push(c as u32);
            cpu.push(base * (1.2 + day.sin()) * (0.8 + 0.4 * rng.unit()));
            memory.push(level * (0.95 + 0.1 * rng.unit()));
        }
    }
    let frame = DataFrame::new(
        ids.len(),
        vec![
            Column::new("container".into(), ids),
            Column::new("cpu".into(), cpu),
            Column::new("memory".into(), memory),
        ],
    )
    .expect("frame");
    let mut polars_times = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let out = frame
            .clone()
            .lazy()
            .group_by([col("container")])
            .agg([
                col("cpu")
                    .quantile(lit(0.95), QuantileMethod::Linear)
                    .alias("cpu_p95"),
                col("memory").max().alias("memory_max"),
            ])
            .collect()
            .expect("polars group_by");
        polars_times.push(began.elapsed());
        assert_eq!(out.height(), containers);
    }
    let (polars_median, polars_max) = median(polars_times);
    println!(
        "analysis: polars over {} raw 1-minute rows ({per_container} per container), CPU p95 and memory max per container: median {:.1} ms, max {:.1} ms",
        frame.height(),
        polars_median.as_secs_f64() * 1e3,
        polars_max.as_secs_f64() * 1e3,
    );
    println!(
        "analysis: polars over raw rows took {:.2}× the store's same statistics and {:.2}× the full analysis; the store covers 14 days, {:.1}× the raw rows' time span",
        polars_median.as_secs_f64() / store_median.as_secs_f64(),
        polars_median.as_secs_f64() / tally_median.as_secs_f64(),
        14.0 * 1440.0 / per_container as f64
    );
}
