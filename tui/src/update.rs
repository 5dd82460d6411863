//! Messages and `update`: the only place the state changes. Keys are
//! dispatched on the input mode first, then through the key table.

use crate::api::{Part, Snapshot, WorkloadRef};
use crate::keymap::{self, Action, Key};
use crate::state::{Connection, Detail, LogQuery, Mode, State, TableId, ViewId, WorkloadHistory};
use crate::table::{Filter, Sort};
use crate::views;

/// Why a read failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// Refused, timed out, or a 5xx: retried with backoff.
    Unreachable(String),
    /// 401 or 403: the token is missing or wrong.
    Unauthorized(String),
}

/// Everything that can happen to the dashboard.
#[derive(Debug)]
pub enum Msg {
    Key(Key),
    /// A whole snapshot at once, with the unix seconds it arrived.
    Data(Box<Snapshot>, f64),
    /// One endpoint's answer, with the unix seconds it arrived.
    Part(Box<Part>, f64),
    /// A refresh finished without error.
    Refreshed(f64),
    /// A refresh failed; the next try is in `retry_in_seconds`.
    Failed {
        error: FetchError,
        attempt: u32,
        retry_in_seconds: f64,
    },
    /// A drill-down's history arrived.
    History(Box<WorkloadHistory>),
    /// Time passes (unix seconds): ages and staleness move on.
    Tick(f64),
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read everything again now.
    Refresh,
    /// The visible view changed: read what it shows.
    View(ViewId),
    /// Read a workload's history for the drill-down.
    FetchHistory(WorkloadRef),
    /// Use these server-side log filters from now on.
    Logs(LogQuery),
}

/// Applies one message.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => {
            // Any key dismisses the last message.
            state.message = None;
            on_key(state, key)
        }
        Msg::Data(snapshot, at) => {
            connected(state, at);
            if state.frozen {
                state.held.clear();
                state.held_snapshot = Some((snapshot, at));
            } else {
                state.accept(snapshot, at);
            }
            Vec::new()
        }
        Msg::Part(part, at) => {
            connected(state, at);
            if state.frozen {
                state.held.push((*part, at));
            } else {
                state.accept_part(*part, at);
            }
            Vec::new()
        }
        Msg::Refreshed(at) => {
            connected(state, at);
            Vec::new()
        }
        Msg::Failed {
            error,
            attempt,
            retry_in_seconds,
        } => {
            state.connection = match error {
                FetchError::Unauthorized(message) => Connection::Unauthorized { message },
                FetchError::Unreachable(error) => Connection::Retrying {
                    error,
                    attempt,
                    retry_in_seconds,
                },
            };
            Vec::new()
        }
        Msg::History(history) => {
            let wanted = state.details.iter().any(
                |d| matches!(d, Detail::Workload { workload } if *workload == history.workload),
            );
            if wanted {
                state.workload_history = Some(*history);
            }
            Vec::new()
        }
        Msg::Tick(now) => {
            state.now = now;
            Vec::new()
        }
    }
}

/// Any answer means the collector is there.
fn connected(state: &mut State, at: f64) {
    if !matches!(state.connection, Connection::Connected { .. }) {
        state.connection = Connection::Connected { since: at };
    }
}

fn on_key(state: &mut State, key: Key) -> Vec<Effect> {
    match state.mode.clone() {
        Mode::Help => {
            state.mode = Mode::Normal;
            if key == Key::Ctrl('c') {
                state.quit = true;
            }
            Vec::new()
        }
        Mode::Filter { input } => filter_key(state, input, key),
        Mode::Command { input } => command_key(state, input, key),
        Mode::Sort { cursor } => sort_key(state, cursor, key),
        Mode::Normal => match keymap::action(key) {
            Some(action) => act(state, action),
            None => Vec::new(),
        },
    }
}

/// Edits a line of input; `Some` with the final text on Enter.
enum Edit {
    Typing(String),
    Done(String),
    Cancelled,
}

fn edit(mut input: String, key: Key) -> Edit {
    match key {
        Key::Enter => Edit::Done(input),
        Key::Esc | Key::Ctrl('c') => Edit::Cancelled,
        Key::Backspace => {
            if input.pop().is_none() {
                return Edit::Cancelled;
            }
            Edit::Typing(input)
        }
        Key::Char(c) => {
            input.push(c);
            Edit::Typing(input)
        }
        _ => Edit::Typing(input),
    }
}

fn filter_key(state: &mut State, input: String, key: Key) -> Vec<Effect> {
    let Some(id) = state.active_table() else {
        state.mode = Mode::Normal;
        return Vec::new();
    };
    match edit(input, key) {
        Edit::Typing(text) => {
            // Live: the table narrows while typing.
            let table = state.table_mut(id);
            table.filter = Filter::parse(&text);
            table.selected = 0;
            table.arrange();
            state.mode = Mode::Filter { input: text };
        }
        Edit::Done(_) => state.mode = Mode::Normal,
        Edit::Cancelled => {
            let table = state.table_mut(id);
            table.filter = None;
            table.arrange();
            state.mode = Mode::Normal;
        }
    }
    Vec::new()
}

fn command_key(state: &mut State, input: String, key: Key) -> Vec<Effect> {
    match edit(input, key) {
        Edit::Typing(text) => {
            state.mode = Mode::Command { input: text };
            Vec::new()
        }
        Edit::Cancelled => {
            state.mode = Mode::Normal;
            Vec::new()
        }
        Edit::Done(text) => {
            state.mode = Mode::Normal;
            run_command(state, &text)
        }
    }
}

fn run_command(state: &mut State, text: &str) -> Vec<Effect> {
    let text = text.trim();
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    if matches!(word, "q" | "q!" | "quit") {
        state.quit = true;
        return Vec::new();
    }
    let Some(view) = ViewId::parse(word) else {
        state.message = Some(format!("unknown command :{text}"));
        return Vec::new();
    };
    let mut effects = Vec::new();
    if view != state.view {
        effects.push(Effect::View(view));
    }
    state.view = view;
    state.details.clear();
    // `:logs ns=web severity=error` filters on the server; `:logs` alone
    // clears those filters.
    if view == ViewId::Logs {
        match LogQuery::parse(rest) {
            Ok(query) if query != state.log_query => {
                state.log_query = query.clone();
                effects.push(Effect::Logs(query));
                effects.push(Effect::Refresh);
            }
            Ok(_) => {}
            Err(error) => state.message = Some(error),
        }
    }
    effects
}

fn sort_key(state: &mut State, cursor: usize, key: Key) -> Vec<Effect> {
    let Some(id) = state.active_table() else {
        state.mode = Mode::Normal;
        return Vec::new();
    };
    let columns = views::columns(id).len();
    let pick = |state: &mut State, column: usize| {
        let numeric = views::columns(id).get(column).is_some_and(|c| c.numeric);
        let table = state.table_mut(id);
        table.sort = Some(Sort {
            column,
            descending: numeric,
        });
        table.arrange();
        state.mode = Mode::Normal;
    };
    match key {
        Key::Char('j') | Key::Down => {
            state.mode = Mode::Sort {
                cursor: (cursor + 1).min(columns.saturating_sub(1)),
            }
        }
        Key::Char('k') | Key::Up => {
            state.mode = Mode::Sort {
                cursor: cursor.saturating_sub(1),
            }
        }
        Key::Enter => pick(state, cursor),
        Key::Char(c @ '1'..='9') => {
            let column = (c as usize) - ('1' as usize);
            if column < columns {
                pick(state, column);
            }
        }
        Key::Esc | Key::Char('q') | Key::Char('s') => state.mode = Mode::Normal,
        _ => {}
    }
    Vec::new()
}

fn act(state: &mut State, action: Action) -> Vec<Effect> {
    let table = state.active_table();
    match action {
        Action::Quit => state.quit = true,
        Action::Help => state.mode = Mode::Help,
        Action::Command => {
            state.mode = Mode::Command {
                input: String::new(),
            }
        }
        Action::NextView | Action::PreviousView => {
            state.view = if action == Action::NextView {
                state.view.next()
            } else {
                state.view.previous()
            };
            state.details.clear();
            return vec![Effect::View(state.view)];
        }
        Action::Freeze => {
            state.frozen = !state.frozen;
            if !state.frozen {
                state.release_held();
            }
        }
        Action::Refresh => return vec![Effect::Refresh],
        Action::Back => {
            if state.details.pop().is_some() {
                state.workload_history = None;
            } else if let Some(id) = table
                && state.table(id).filter.is_some()
            {
                let t = state.table_mut(id);
                t.filter = None;
                t.arrange();
            }
        }
        Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
            if let Some(id) = table {
                let t = state.table_mut(id);
                let page = t.page.get().max(1) as isize;
                let delta = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -page,
                    _ => page,
                };
                t.step(delta);
            }
        }
        Action::Top | Action::Bottom => {
            if let Some(id) = table {
                let t = state.table_mut(id);
                t.selected = if action == Action::Top {
                    0
                } else {
                    t.order.len().saturating_sub(1)
                };
            }
        }
        Action::Filter => {
            if let Some(id) = table {
                state.mode = Mode::Filter {
                    input: state
                        .table(id)
                        .filter
                        .as_ref()
                        .map(|f| f.text.clone())
                        .unwrap_or_default(),
                };
            }
        }
        Action::SortMenu => {
            if let Some(id) = table {
                state.mode = Mode::Sort {
                    cursor: state.table(id).sort.map_or(0, |s| s.column),
                };
            }
        }
        Action::Reverse => {
            if let Some(id) = table {
                let t = state.table_mut(id);
                let sort = t.sort.unwrap_or(Sort {
                    column: 0,
                    descending: false,
                });
                t.sort = Some(Sort {
                    descending: !sort.descending,
                    ..sort
                });
                t.arrange();
            }
        }
        Action::Drill => return drill(state),
    }
    Vec::new()
}

fn drill(state: &mut State) -> Vec<Effect> {
    let Some(id) = state.active_table() else {
        return Vec::new();
    };
    let Some(key) = state.table(id).selected_row().map(|r| r.key.clone()) else {
        return Vec::new();
    };
    let detail = match id {
        TableId::View(ViewId::Gpus) => Detail::GpuProcesses { key },
        TableId::View(ViewId::Workloads) => match views::workloads::parse_key(&key) {
            Some(workload) => Detail::Workload { workload },
            None => return Vec::new(),
        },
        TableId::View(ViewId::Recommendations) | TableId::OverviewTop => {
            Detail::Recommendation { id: key }
        }
        _ => return Vec::new(),
    };
    let effects = match &detail {
        Detail::Workload { workload } => vec![Effect::FetchHistory(workload.clone())],
        _ => Vec::new(),
    };
    state.workload_history = None;
    state.details.push(detail);
    state.rebuild();
    effects
}
