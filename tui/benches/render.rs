//! Frame cost of the Workloads view with 10,000 rows (issue #9 target:
//! ≤ 5 ms a frame), drawn into ratatui's `TestBackend` at 160×48, plus
//! the cost of rebuilding the rows when a refresh arrives and of
//! re-sorting them. Run: `cargo bench -p tally-tui --bench render`.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tally_tui::api::{CostLine, Snapshot, Workload};
use tally_tui::keymap::Key;
use tally_tui::state::State;
use tally_tui::theme::{Palette, Thresholds};
use tally_tui::update::{Msg, update};

const ROWS: usize = 10_000;
const FRAMES: usize = 500;

/// 10,000 workloads in 40 namespaces, figures spread like a fleet's.
fn snapshot() -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.workloads.window = "1h".to_owned();
    for i in 0..ROWS {
        let namespace = format!("team-{:02}", i % 40);
        let name = format!("service-{i:05}");
        let request = 0.25 + (i % 16) as f64 * 0.5;
        let usage = request * ((i * 7919) % 100) as f64 / 100.0;
        snapshot.workloads.workloads.push(Workload {
            namespace: namespace.clone(),
            workload_kind: "Deployment".to_owned(),
            workload_name: name.clone(),
            replicas: 1 + (i % 5) as u64,
            containers: 1,
            cpu_request_cores: Some(request),
            cpu_cores: Some(usage * 0.8),
            cpu_cores_p50: Some(usage * 0.7),
            cpu_cores_p95: Some(usage),
            cpu_cores_max: Some(usage * 1.3),
            memory_request_bytes: Some(request * 2e9),
            working_set_bytes_p50: Some(usage * 1.5e9),
            working_set_bytes_p95: Some(usage * 1.8e9),
            working_set_bytes_max: Some(usage * 2e9),
            oom_kills: Some((i % 97 == 0) as u8 as f64),
            cpu_throttled_seconds: Some((i % 13) as f64),
            ..Workload::default()
        });
        snapshot.workload_costs.lines.push(CostLine {
            key: vec![namespace, "Deployment".to_owned(), name],
            total_monthly: request * 30.0,
            ..CostLine::default()
        });
    }
    snapshot
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "{name:<44} mean {:>8.3} ms  p99 {:>8.3} ms  ({} runs)",
        mean.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.len()
    );
}

fn main() {
    let palette = Palette {
        color: true,
        unicode: true,
    };
    let mut state = State::new(
        "http://127.0.0.1:4318".to_owned(),
        palette,
        Thresholds::default(),
        2.0,
    );
    let data = snapshot();
    let started = Instant::now();
    update(&mut state, Msg::Data(Box::new(data.clone()), 0.0));
    report(
        "refresh: rows rebuilt for 10,000 workloads",
        vec![started.elapsed()],
    );
    for key in ":workloads".chars().map(Key::Char).chain([Key::Enter]) {
        update(&mut state, Msg::Key(key));
    }
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    let mut frames = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES {
        // Scroll as a user would, so the visible window moves.
        update(
            &mut state,
            Msg::Key(if i % 50 == 49 {
                Key::Char('g')
            } else {
                Key::Char('j')
            }),
        );
        let started = Instant::now();
        terminal
            .draw(|frame| tally_tui::views::draw(&state, frame))
            .expect("draw");
        frames.push(started.elapsed());
    }
    report("frame: Workloads view, 10,000 rows, 160x48", frames);
    let mut sorts = Vec::new();
    for column in ['1', '4', '8', 'r'] {
        let keys: Vec<Key> = if column == 'r' {
            vec![Key::Char('r')]
        } else {
            vec![Key::Char('s'), Key::Char(column)]
        };
        let started = Instant::now();
        for key in keys {
            update(&mut state, Msg::Key(key));
        }
        sorts.push(started.elapsed());
    }
    report("sort: 10,000 rows by a new column", sorts);
    let mut filters = Vec::new();
    for key in [
        Key::Char('/'),
        Key::Char('t'),
        Key::Char('e'),
        Key::Char('7'),
        Key::Enter,
    ] {
        let started = Instant::now();
        update(&mut state, Msg::Key(key));
        filters.push(started.elapsed());
    }
    report("filter: one keystroke over 10,000 rows", filters);
    let mut refreshes = Vec::new();
    for _ in 0..10 {
        let data = Box::new(data.clone());
        let started = Instant::now();
        update(&mut state, Msg::Data(data, 0.0));
        refreshes.push(started.elapsed());
    }
    report("refresh: rows rebuilt, filtered, sorted", refreshes);
}
