//! Logs: the newest records, filtered on the collector by `:logs
//! key=value` and on screen by `/`; `f` pauses the tail.

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::api::Snapshot;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// Columns.
pub const COLUMNS: &[Column] = &[
    Column::text("TIME", 8, 1),
    Column::text("SEVERITY", 8, 0),
    Column::text("NAMESPACE", 12, 2),
    Column::text("POD", 22, 1),
    Column::text("MESSAGE", 120, 0),
];

fn severity_tone(severity: &str) -> Tone {
    match severity.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "critical" | "panic" => Tone::Bad,
        "warn" | "warning" => Tone::Warn,
        "debug" | "trace" => Tone::Dim,
        _ => Tone::Normal,
    }
}

/// `HH:MM:SS` (UTC) of a time in ns.
fn clock(time_ns: u64) -> String {
    let seconds = time_ns / 1_000_000_000;
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// One row per record, newest last (a tail).
pub fn rows(snapshot: &Snapshot, _state: &State) -> Vec<Row> {
    snapshot
        .logs
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            key: format!("{}-{i}", r.time_ns),
            cells: vec![
                Cell::text(clock(r.time_ns)),
                Cell::text(r.severity.clone()).tone(severity_tone(&r.severity)),
                Cell::text(r.attribute("k8s.namespace.name").unwrap_or("").to_owned()),
                Cell::text(r.attribute("k8s.pod.name").unwrap_or("").to_owned()),
                Cell::text(r.body.replace(['\n', '\r'], " ")),
            ],
        })
        .collect()
}

/// Draws the tail.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let query: Vec<String> = state
        .log_query
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let title = if query.is_empty() {
        "Logs".to_owned()
    } else {
        format!("Logs {}", query.join(" "))
    };
    let title = if state.frozen {
        format!("{title} (paused)")
    } else {
        title
    };
    super::draw_table(state, frame, area, TableId::View(ViewId::Logs), &title);
}
