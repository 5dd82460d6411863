//! Whole-screen rendering tests: every view at 80×24 and 160×48 through
//! ratatui's `TestBackend`, compared with golden files that hold the
//! characters and, below them, each cell's colour (one letter a cell).
//! `TALLY_GOLDEN=1 cargo test -p tally-tui --test render` rewrites them.

mod common;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use tally_tui::keymap::Key;
use tally_tui::state::{Connection, State};
use tally_tui::theme::Palette;
use tally_tui::update::{FetchError, Msg, update};

/// One letter per foreground colour; `*` marks reversed (selected) cells.
fn colour_letter(cell: &ratatui::buffer::Cell) -> char {
    if cell.modifier.contains(Modifier::REVERSED) {
        return '*';
    }
    match cell.fg {
        Color::Reset => '.',
        Color::Red => 'r',
        Color::Green => 'g',
        Color::Yellow => 'y',
        Color::Cyan => 'c',
        Color::DarkGray => 'd',
        Color::Black => 'k',
        Color::Magenta => 'm',
        Color::Blue => 'b',
        _ => '?',
    }
}

fn screen(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in 0..area.height {
        for x in 0..area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text.push_str("-- colours --\n");
    for y in 0..area.height {
        for x in 0..area.width {
            text.push(colour_letter(&buffer[(x, y)]));
        }
        text.push('\n');
    }
    text
}

fn render(state: &State, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| tally_tui::views::draw(state, frame))
        .expect("draw");
    terminal.backend().buffer().clone()
}

/// Compares with (or, under `TALLY_GOLDEN=1`, rewrites) a golden file.
fn golden(name: &str, state: &State, width: u16, height: u16) {
    let actual = screen(&render(state, width, height));
    let path = format!(
        "{}/tests/golden/{name}-{width}x{height}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("TALLY_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (TALLY_GOLDEN=1 writes it)"));
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(0);
        panic!(
            "{path} differs from line {}:\n actual: {}\n golden: {}\n(TALLY_GOLDEN=1 rewrites it)\n{actual}",
            first + 1,
            actual.lines().nth(first).unwrap_or(""),
            expected.lines().nth(first).unwrap_or(""),
        );
    }
}

fn keys(state: &mut State, keys: &[Key]) {
    for key in keys {
        update(state, Msg::Key(*key));
    }
}

fn command(state: &mut State, text: &str) {
    keys(state, &[Key::Char(':')]);
    for c in text.chars() {
        keys(state, &[Key::Char(c)]);
    }
    keys(state, &[Key::Enter]);
}

#[test]
fn every_view_at_both_sizes() {
    for view in [
        "overview",
        "gpus",
        "workloads",
        "recommendations",
        "models",
        "egress",
        "logs",
    ] {
        let mut state = common::state_with_data(common::COLOUR, 1.0);
        command(&mut state, view);
        assert!(state.message.is_none(), "{view}: {:?}", state.message);
        golden(view, &state, 80, 24);
        golden(view, &state, 160, 48);
    }
}

#[test]
fn drill_downs_help_and_sort_menu() {
    let mut state = common::state_with_data(common::COLOUR, 1.0);
    keys(&mut state, &[Key::Char('?')]);
    golden("help", &state, 80, 24);

    let mut state = common::state_with_data(common::COLOUR, 1.0);
    command(&mut state, "recommendations");
    keys(&mut state, &[Key::Enter]);
    golden("recommendation-detail", &state, 80, 24);

    let mut state = common::state_with_data(common::COLOUR, 1.0);
    command(&mut state, "gpus");
    keys(&mut state, &[Key::Enter]);
    golden("gpu-processes", &state, 80, 24);

    let mut state = common::state_with_data(common::COLOUR, 1.0);
    command(&mut state, "workloads");
    keys(&mut state, &[Key::Char('s')]);
    golden("sort-menu", &state, 80, 24);

    // A workload's history: two containers' CPU and memory against the
    // request, as the collector's series API answers.
    let mut state = common::state_with_data(common::COLOUR, 1.0);
    command(&mut state, "workloads");
    keys(&mut state, &[Key::Enter]);
    golden("workload-history-loading", &state, 80, 24);
    let Some(tally_tui::state::Detail::Workload { workload }) = state.details.last().cloned()
    else {
        panic!("no workload drill-down");
    };
    let line = |base: f64, scale: f64| -> Vec<(f64, f64)> {
        (0..60)
            .map(|i| {
                let t = f64::from(i);
                (
                    state.now - 600.0 + t * 10.0,
                    base + scale * (t / 6.0).sin().abs(),
                )
            })
            .collect()
    };
    let history = tally_tui::state::WorkloadHistory {
        workload: workload.clone(),
        cpu: vec![
            ("pod-a/main".to_owned(), line(1.0, 1.5)),
            ("pod-b/main".to_owned(), line(0.5, 1.0)),
        ],
        memory: vec![
            ("pod-a/main".to_owned(), line(2e9, 1e9)),
            ("pod-b/main".to_owned(), line(1e9, 5e8)),
        ],
    };
    update(&mut state, Msg::History(Box::new(history)));
    assert!(state.workload_history.is_some());
    golden("workload-history", &state, 160, 48);
    // A history for another workload (the user moved on) is dropped.
    let mut stale = state.workload_history.clone().expect("history");
    stale.workload.name = "other".to_owned();
    keys(&mut state, &[Key::Esc]);
    update(&mut state, Msg::History(Box::new(stale)));
    assert!(state.workload_history.is_none());
}

/// A state without data after one failed read.
fn failed(collector: &str, error: Option<FetchError>, attempt: u32, retry: f64) -> State {
    let mut state = State::new(
        collector.to_owned(),
        common::COLOUR,
        Default::default(),
        2.0,
    );
    if let Some(error) = error {
        update(
            &mut state,
            Msg::Failed {
                error,
                attempt,
                retry_in_seconds: retry,
            },
        );
    }
    state
}

#[test]
fn empty_error_and_stale_states() {
    let state = failed("http://127.0.0.1:4318", None, 0, 0.0);
    golden("connecting", &state, 80, 24);

    let unreachable = FetchError::Unreachable("cannot connect".to_owned());
    let state = failed("http://127.0.0.1:9", Some(unreachable), 3, 4.0);
    golden("unreachable", &state, 80, 24);

    let refused = FetchError::Unauthorized("HTTP 401 Unauthorized on /api/v1/status".to_owned());
    let state = failed("http://127.0.0.1:4318", Some(refused), 1, 30.0);
    assert!(matches!(state.connection, Connection::Unauthorized { .. }));
    golden("unauthorized", &state, 80, 24);

    // Data 40 s old at a 2 s refresh: the stale banner replaces the
    // simulated one.
    let state = common::state_with_data(common::COLOUR, 40.0);
    golden("stale", &state, 80, 24);
}

#[test]
fn no_color_and_ascii() {
    let state = common::state_with_data(
        Palette {
            color: false,
            unicode: false,
        },
        1.0,
    );
    golden("overview-plain", &state, 80, 24);
    let buffer = render(&state, 80, 24);
    for cell in buffer.content() {
        assert_eq!(cell.fg, Color::Reset, "no colour under NO_COLOR");
        assert!(cell.symbol().is_ascii(), "non-ASCII {:?}", cell.symbol());
    }
}

#[test]
fn threshold_colours_follow_the_config() {
    // An idle GPU is red by default; with the low bound at 0 it is not.
    let mut state = common::state_with_data(common::COLOUR, 1.0);
    command(&mut state, "gpus");
    let idle_red = |state: &State| {
        let buffer = render(state, 160, 48);
        let area = buffer.area;
        // A " 0% " cell: the idle GPUs' utilization.
        (0..area.height).any(|y| {
            (1..area.width - 2).any(|x| {
                let symbol = |dx: u16| buffer[(x + dx - 1, y)].symbol();
                symbol(0) == " "
                    && symbol(1) == "0"
                    && symbol(2) == "%"
                    && symbol(3) == " "
                    && buffer[(x, y)].fg == Color::Red
            })
        })
    };
    assert!(idle_red(&state));
    state.thresholds.gpu_utilization.low = 0.0;
    state.rebuild();
    assert!(!idle_red(&state));
}
