//! `tally top`: a k9s-style terminal dashboard over the collector's JSON
//! API. It is only a client: everything it shows comes from
//! `/api/v1/*`, and no key changes the cluster.
//!
//! Shape (the Elm architecture): [`state::State`] is the model,
//! [`update::Msg`] the messages, [`update::update`] the only place the
//! state changes and [`views::draw`] the view, which reads the state and
//! does no I/O. Keys come from an input thread, data from
//! [`fetch::run`] on a tokio runtime; both send messages to the UI loop,
//! which redraws when something changed or a second has passed.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod fetch;
pub mod format;
pub mod keymap;
pub mod patch;
pub mod progress;
pub mod state;
pub mod table;
pub mod terminal;
pub mod theme;
pub mod update;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub use error::TuiError;

use crate::fetch::Request;
use crate::keymap::Key;
use crate::state::State;
use crate::theme::{Palette, Thresholds};
use crate::update::{Effect, Msg};

/// The slowest refresh the dashboard allows, as k9s does.
pub const MIN_REFRESH_SECS: u64 = 2;

/// How long one API read may take: a 1,000-node fleet's workloads view
/// takes the collector seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the screen is redrawn without news (ages move on).
const TICK: Duration = Duration::from_secs(1);

/// What `tally top` was asked to do.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// Collector base URL.
    pub collector: String,
    /// Bearer token for the read API.
    pub token: Option<String>,
    /// Time between refreshes (at least [`MIN_REFRESH_SECS`]).
    pub refresh: Duration,
    pub palette: Palette,
    pub thresholds: Thresholds,
    /// Test hook: panic after this many frames (checks that the terminal
    /// is restored on a panic).
    pub panic_after_frames: Option<u64>,
}

/// Maps a crossterm key to the dashboard's; `None` for keys it ignores.
pub fn map_key(event: KeyEvent) -> Option<Key> {
    // Windows also reports releases and repeats.
    if event.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    Some(match event.code {
        KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::F(1) => Key::Char('?'),
        _ => return None,
    })
}

/// Runs the dashboard until `q`; the terminal is restored on every path.
pub fn run(options: TopOptions) -> Result<(), TuiError> {
    let refresh = options.refresh.max(Duration::from_secs(MIN_REFRESH_SECS));
    let client = client::Client::new(&options.collector, options.token.clone(), REQUEST_TIMEOUT)?;
    let (terminal, guard) = terminal::init()?;
    let result = run_loop(terminal, client, &options, refresh);
    drop(guard);
    result
}

fn run_loop(
    mut terminal: ratatui::DefaultTerminal,
    client: client::Client,
    options: &TopOptions,
    refresh: Duration,
) -> Result<(), TuiError> {
    let (ui_tx, ui_rx) = mpsc::channel::<Msg>();
    let (request_tx, request_rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
    let stop = Arc::new(AtomicBool::new(false));

    // The data task, on a runtime of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let data_tx = ui_tx.clone();
    let data = std::thread::Builder::new()
        .name("tally-top-data".to_owned())
        .spawn(move || runtime.block_on(fetch::run(client, refresh, request_rx, data_tx)))?;

    // Keys, polled so the thread notices when the UI stops.
    let input_stop = Arc::clone(&stop);
    let input = std::thread::Builder::new()
        .name("tally-top-input".to_owned())
        .spawn(move || {
            while !input_stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(Event::Key(key)) => {
                            if let Some(key) = map_key(key)
                                && ui_tx.send(Msg::Key(key)).is_err()
                            {
                                return;
                            }
                        }
                        Ok(Event::Resize(..)) => {
                            if ui_tx.send(Msg::Tick(fetch::unix_now())).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })?;

    let mut state = State::new(
        options.collector.clone(),
        options.palette,
        options.thresholds.clone(),
        refresh.as_secs_f64(),
    );
    state.now = fetch::unix_now();
    let mut frames: u64 = 0;
    let result = loop {
        if let Err(error) = terminal.draw(|frame| views::draw(&state, frame)) {
            break Err(TuiError::Terminal(error));
        }
        frames += 1;
        if options.panic_after_frames.is_some_and(|n| frames >= n) {
            panic!("tally top: forced panic after {frames} frames (--panic-after-frames)");
        }
        let msg = match ui_rx.recv_timeout(TICK) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => Msg::Tick(fetch::unix_now()),
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        };
        state.now = fetch::unix_now();
        for effect in update::update(&mut state, msg) {
            let request = match effect {
                Effect::Refresh => Request::Refresh,
                Effect::View(view) => Request::View(view),
                Effect::FetchHistory(workload) => Request::History(workload),
                Effect::Logs(query) => Request::Logs(query),
            };
            // The data task only stops when this loop does.
            let _ = request_tx.send(request);
        }
        if state.quit {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(request_tx);
    drop(ui_rx);
    // The input thread stops within one poll; the data task when its
    // next send fails or its request channel closes.
    let _ = input.join();
    let _ = data.join();
    result
}
