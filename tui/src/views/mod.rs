//! Drawing: one file per view, plus the chrome around them. Drawing
//! takes `&State` and does no I/O.

pub mod chrome;
pub mod egress;
pub mod gpus;
pub mod help;
pub mod logs;
pub mod models;
pub mod overview;
pub mod recommendations;
pub mod workloads;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell as TableCell, Paragraph, Row as TableRow, Table};

use crate::api::Snapshot;
use crate::format;
use crate::state::{Detail, State, TableId, ViewId};
use crate::table::{self, Column, Row, Sort};
use crate::theme::Tone;

/// ASCII borders for `--ascii`.
const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// A titled box in the palette's characters.
pub fn block<'a>(state: &State, title: impl Into<Line<'a>>) -> Block<'a> {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .title_style(state.palette.style(Tone::Accent));
    if state.palette.unicode {
        block
    } else {
        block.border_set(ASCII_BORDER)
    }
}

/// A table's columns.
pub fn columns(id: TableId) -> &'static [Column] {
    match id {
        TableId::OverviewTop => overview::COLUMNS,
        TableId::Nodes => gpus::NODE_COLUMNS,
        TableId::View(ViewId::Overview) => &[],
        TableId::View(ViewId::Gpus) => gpus::GPU_COLUMNS,
        TableId::GpuProcesses => gpus::PROCESS_COLUMNS,
        TableId::View(ViewId::Workloads) => workloads::COLUMNS,
        TableId::View(ViewId::Recommendations) => recommendations::COLUMNS,
        TableId::View(ViewId::Models) => models::COLUMNS,
        TableId::View(ViewId::Egress) => egress::COLUMNS,
        TableId::View(ViewId::Logs) => logs::COLUMNS,
    }
}

/// A table's initial sort: money first where there is money.
pub fn default_sort(id: TableId) -> Option<Sort> {
    let by = |column: usize, descending: bool| Some(Sort { column, descending });
    match id {
        TableId::OverviewTop | TableId::View(ViewId::Recommendations) => by(3, true),
        TableId::Nodes => by(0, false),
        TableId::View(ViewId::Gpus) => by(0, false),
        TableId::GpuProcesses => by(5, true),
        TableId::View(ViewId::Workloads) => by(workloads::COST_COLUMN, true),
        TableId::View(ViewId::Models) => by(models::COST_COLUMN, true),
        TableId::View(ViewId::Egress) => by(egress::COST_COLUMN, true),
        TableId::View(ViewId::Logs) | TableId::View(ViewId::Overview) => None,
    }
}

/// The tables drawn from one endpoint's answer.
pub fn tables_of(part: &crate::api::Part) -> &'static [TableId] {
    use crate::api::Part;
    match part {
        Part::Status(_) | Part::Agents(_) => &[],
        Part::Nodes(_) => &[TableId::Nodes],
        Part::Gpus(_) => &[
            TableId::Nodes,
            TableId::View(ViewId::Gpus),
            TableId::GpuProcesses,
        ],
        Part::Workloads(_) => &[TableId::View(ViewId::Workloads)],
        Part::WorkloadCosts(_) => &[
            TableId::View(ViewId::Workloads),
            TableId::View(ViewId::Egress),
        ],
        Part::Models(_) | Part::ModelCosts(_) => &[TableId::View(ViewId::Models)],
        Part::Egress(_) => &[TableId::View(ViewId::Egress)],
        Part::Recommendations(_) => &[TableId::OverviewTop, TableId::View(ViewId::Recommendations)],
        Part::Logs(_) => &[TableId::View(ViewId::Logs)],
    }
}

/// A table's rows from the data.
pub fn rows(id: TableId, snapshot: &Snapshot, state: &State) -> Vec<Row> {
    match id {
        TableId::OverviewTop => overview::rows(snapshot, state),
        TableId::Nodes => gpus::node_rows(snapshot, state),
        TableId::View(ViewId::Gpus) => gpus::gpu_rows(snapshot, state),
        TableId::GpuProcesses => match state.details.last() {
            Some(Detail::GpuProcesses { key }) => gpus::process_rows(snapshot, state, key),
            _ => Vec::new(),
        },
        TableId::View(ViewId::Workloads) => workloads::rows(snapshot, state),
        TableId::View(ViewId::Recommendations) => recommendations::rows(snapshot, state),
        TableId::View(ViewId::Models) => models::rows(snapshot, state),
        TableId::View(ViewId::Egress) => egress::rows(snapshot, state),
        TableId::View(ViewId::Logs) => logs::rows(snapshot, state),
        TableId::View(ViewId::Overview) => Vec::new(),
    }
}

/// Draws the whole screen.
pub fn draw(state: &State, frame: &mut Frame) {
    let body = chrome::draw(state, frame);
    if state.snapshot.is_none() {
        chrome::draw_no_data(state, frame, body);
    } else {
        match state.details.last() {
            Some(Detail::GpuProcesses { key }) => gpus::draw_processes(state, frame, body, key),
            Some(Detail::Workload { workload }) => {
                workloads::draw_history(state, frame, body, workload)
            }
            Some(Detail::Recommendation { id }) => {
                recommendations::draw_detail(state, frame, body, id)
            }
            None => match state.view {
                ViewId::Overview => overview::draw(state, frame, body),
                ViewId::Gpus => gpus::draw(state, frame, body),
                ViewId::Workloads => workloads::draw(state, frame, body),
                ViewId::Recommendations => recommendations::draw(state, frame, body),
                ViewId::Models => models::draw(state, frame, body),
                ViewId::Egress => egress::draw(state, frame, body),
                ViewId::Logs => logs::draw(state, frame, body),
            },
        }
    }
    match &state.mode {
        crate::state::Mode::Help => help::draw(state, frame),
        crate::state::Mode::Sort { cursor } => chrome::draw_sort_menu(state, frame, *cursor),
        _ => {}
    }
}

/// Draws a table with its block: only the rows that fit are built, so a
/// 10,000-row table costs what a screenful does.
pub fn draw_table(state: &State, frame: &mut Frame, area: Rect, id: TableId, title: &str) {
    let table_state = state.table(id);
    let all_columns = columns(id);
    let shown = table::fitting(all_columns, area.width.saturating_sub(2));
    let filter = table_state
        .filter
        .as_ref()
        .map(|f| format!(" /{}", f.text))
        .unwrap_or_default();
    let title = format!(
        " {title} [{}/{}]{filter} ",
        table_state.order.len(),
        table_state.rows.len()
    );
    let block = block(state, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let page = usize::from(inner.height - 1);
    table_state.page.set(page);
    // Keep the selection in view, moving the window as little as possible.
    let selected = table_state.selected;
    let mut offset = table_state.offset.get();
    if selected < offset {
        offset = selected;
    } else if selected >= offset + page {
        offset = selected + 1 - page;
    }
    offset = offset.min(table_state.order.len().saturating_sub(page));
    table_state.offset.set(offset);

    let sort = table_state.sort;
    let arrow = |i: usize| match sort {
        Some(s) if s.column == i && state.palette.unicode => {
            if s.descending {
                "↓"
            } else {
                "↑"
            }
        }
        Some(s) if s.column == i => {
            if s.descending {
                "v"
            } else {
                "^"
            }
        }
        _ => "",
    };
    let header = TableRow::new(shown.iter().map(|i| {
        let column = all_columns[*i];
        let text = format!("{}{}", column.title, arrow(*i));
        let text = if column.numeric {
            format!("{text:>width$}", width = usize::from(column.width))
        } else {
            text
        };
        TableCell::from(text)
    }))
    .style(state.palette.style(Tone::Accent));
    let body: Vec<TableRow> = table_state
        .order
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
        .map(|(position, index)| {
            let row = &table_state.rows[*index];
            let cells = shown.iter().map(|i| {
                let column = all_columns[*i];
                let cell = row.cells.get(*i);
                let text = cell.map_or("", |c| c.text.as_str());
                let width = usize::from(column.width);
                let text = format::truncate(text, width, state.palette.unicode);
                let text = if column.numeric {
                    format!("{text:>width$}")
                } else {
                    text
                };
                let tone = cell.map_or(Tone::Normal, |c| c.tone);
                TableCell::from(Span::styled(text, state.palette.style(tone)))
            });
            let style = if position == selected {
                state.palette.selected()
            } else {
                Style::new()
            };
            TableRow::new(cells).style(style)
        })
        .collect();
    if body.is_empty() {
        let text = if table_state.rows.is_empty() {
            "Nothing here yet.".to_owned()
        } else {
            "No row matches the filter (esc clears it).".to_owned()
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                text,
                state.palette.style(Tone::Dim),
            ))),
            inner,
        );
        return;
    }
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|i| Constraint::Length(all_columns[*i].width))
        .collect();
    frame.render_widget(
        Table::new(body, widths).header(header).column_spacing(1),
        inner,
    );
}

/// `part / whole`, absent when either is absent or the whole is 0.
pub fn ratio(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    match (part, whole) {
        (Some(p), Some(w)) if w > 0.0 => Some(p / w),
        _ => None,
    }
}

/// A `label value` line with the value in a tone.
pub fn pair<'a>(state: &State, label: &'a str, value: String, tone: Tone) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label} "), state.palette.style(Tone::Dim)),
        Span::styled(value, state.palette.style(tone)),
    ])
}
