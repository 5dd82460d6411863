//! The frame around every view: header with the connection state, view
//! tabs and breadcrumbs, banners (simulated, stale, errors) and the
//! footer with key hints from the key table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, Paragraph, Wrap};

use crate::format;
use crate::keymap::{self, Context};
use crate::state::{Connection, Detail, Mode, State, ViewId};
use crate::theme::Tone;

/// Draws the chrome; returns the area left for the view.
pub fn draw(state: &State, frame: &mut Frame) -> Rect {
    let banner = banner(state);
    let [header, tabs, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(state)), header);
    frame.render_widget(Paragraph::new(tabs_line(state)), tabs);
    if let Some((text, tone)) = banner {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                format!(" {text}"),
                state.palette.banner(tone),
            )))
            .style(state.palette.banner(tone)),
            banner_area,
        );
    }
    frame.render_widget(Paragraph::new(footer_line(state)), footer);
    body
}

fn header_line(state: &State) -> Line<'static> {
    let p = &state.palette;
    let (connection, tone) = match &state.connection {
        Connection::Connecting => ("connecting…".to_owned(), Tone::Warn),
        Connection::Connected { .. } => ("connected".to_owned(), Tone::Good),
        Connection::Retrying {
            attempt,
            retry_in_seconds,
            ..
        } => (
            format!("disconnected, retry {attempt} in {retry_in_seconds:.0}s"),
            Tone::Bad,
        ),
        Connection::Unauthorized { .. } => ("token refused".to_owned(), Tone::Bad),
    };
    let connection = if p.unicode {
        connection
    } else {
        connection.replace('…', "...")
    };
    let mut spans = vec![
        Span::styled("tally top", p.style(Tone::Accent)),
        Span::raw("  "),
        Span::styled(state.collector.clone(), p.style(Tone::Dim)),
        Span::raw("  "),
        Span::styled(connection, p.style(tone)),
    ];
    if let Some(age) = state.data_age() {
        spans.push(Span::styled(
            format!("  data {} ago", format::age(age)),
            p.style(Tone::Dim),
        ));
    }
    if state.frozen {
        spans.push(Span::styled("  FROZEN", p.style(Tone::Warn)));
    }
    Line::from(spans)
}

fn tabs_line(state: &State) -> Line<'static> {
    let p = &state.palette;
    let mut spans = Vec::new();
    for view in ViewId::ALL {
        let style = if view == state.view {
            p.selected()
        } else {
            p.style(Tone::Dim)
        };
        spans.push(Span::styled(format!(" {} ", view.title()), style));
    }
    for detail in &state.details {
        spans.push(Span::styled(p.separator(), p.style(Tone::Dim)));
        let title = match detail {
            Detail::GpuProcesses { key } => {
                // node/GPU-uuid/instance: the node and the UUID's start.
                let mut parts = key.split('/');
                let node = parts.next().unwrap_or("");
                let uuid: String = parts.next().unwrap_or("").chars().take(12).collect();
                format!("{node} {uuid}")
            }
            Detail::Workload { workload } => {
                format!("{}/{}/{}", workload.namespace, workload.kind, workload.name)
            }
            Detail::Recommendation { id } => format!("card {id}"),
        };
        spans.push(Span::styled(title, p.style(Tone::Accent)));
    }
    Line::from(spans)
}

/// The banner: errors first, then staleness, then simulated data.
fn banner(state: &State) -> Option<(String, Tone)> {
    match &state.connection {
        Connection::Unauthorized { message } if state.snapshot.is_some() => {
            return Some((format!("TOKEN REFUSED: {message}"), Tone::Bad));
        }
        Connection::Retrying { error, .. } if state.snapshot.is_some() => {
            let age = state.data_age().map(format::age).unwrap_or_default();
            return Some((
                format!("COLLECTOR UNREACHABLE ({error}): showing data from {age} ago"),
                Tone::Bad,
            ));
        }
        _ => {}
    }
    if state.stale() {
        let age = state.data_age().map(format::age).unwrap_or_default();
        return Some((format!("STALE: the newest data is {age} old"), Tone::Warn));
    }
    if state.snapshot.as_ref().is_some_and(|s| s.simulated()) {
        return Some((
            "SIMULATED DATA: this fleet comes from `tally simulate`, not from agents".to_owned(),
            Tone::Accent,
        ));
    }
    None
}

fn footer_line(state: &State) -> Line<'static> {
    let p = &state.palette;
    if let Some(message) = &state.message {
        return Line::from(Span::styled(message.clone(), p.style(Tone::Bad)));
    }
    let cursor = if p.unicode { "█" } else { "_" };
    match &state.mode {
        Mode::Filter { input } => {
            return Line::from(vec![
                Span::styled(format!("/{input}{cursor}"), p.style(Tone::Accent)),
                Span::styled(
                    "  regex, ! inverts; enter keeps, esc clears",
                    p.style(Tone::Dim),
                ),
            ]);
        }
        Mode::Command { input } => {
            return Line::from(vec![
                Span::styled(format!(":{input}{cursor}"), p.style(Tone::Accent)),
                Span::styled(
                    "  overview gpus workloads recommendations models egress logs q",
                    p.style(Tone::Dim),
                ),
            ]);
        }
        _ => {}
    }
    let has_table = state.active_table().is_some();
    let mut spans = Vec::new();
    for binding in keymap::BINDINGS {
        let Some(hint) = binding.hint else { continue };
        if binding.context == Context::Table && !has_table {
            continue;
        }
        if !spans.is_empty() {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(
            binding.keys[0].to_string(),
            p.style(Tone::Accent),
        ));
        spans.push(Span::styled(format!(" {hint}"), p.style(Tone::Dim)));
    }
    Line::from(spans)
}

/// The body when there is no data to show yet.
pub fn draw_no_data(state: &State, frame: &mut Frame, area: Rect) {
    let p = &state.palette;
    let (title, text, tone) = match &state.connection {
        Connection::Connecting => (
            "Connecting",
            format!("Reading {} …", state.collector),
            Tone::Warn,
        ),
        Connection::Connected { .. } => ("Waiting", "Waiting for data…".to_owned(), Tone::Dim),
        Connection::Retrying {
            error,
            attempt,
            retry_in_seconds,
        } => (
            "Collector unreachable",
            format!(
                "Cannot reach the collector at {}: {error}.\n\nRetrying in {retry_in_seconds:.0} s (attempt {attempt}).\n\nIs `tally collector` (or `tally up`) running? Pass its address with --collector URL.",
                state.collector
            ),
            Tone::Bad,
        ),
        Connection::Unauthorized { message } => (
            "Token refused",
            format!(
                "The collector at {} refused the request: {message}.\n\nPass the collector's read token with --token-file FILE (or TALLY_COLLECTOR_TOKEN).",
                state.collector
            ),
            Tone::Bad,
        ),
    };
    let text = if p.unicode {
        text
    } else {
        text.replace('…', "...")
    };
    frame.render_widget(
        Paragraph::new(text)
            .style(p.style(tone))
            .wrap(Wrap { trim: false })
            .block(super::block(state, format!(" {title} "))),
        area,
    );
}

/// A centred rectangle of at most `width` × `height`.
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// The `s` menu: the active table's columns.
pub fn draw_sort_menu(state: &State, frame: &mut Frame, cursor: usize) {
    let Some(id) = state.active_table() else {
        return;
    };
    let columns = super::columns(id);
    let sort = state.table(id).sort;
    let items: Vec<ListItem> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mark = match sort {
                Some(s) if s.column == i => {
                    if s.descending {
                        " (desc)"
                    } else {
                        " (asc)"
                    }
                }
                _ => "",
            };
            let style = if i == cursor {
                state.palette.selected()
            } else {
                ratatui::style::Style::new()
            };
            let number = if i < 9 {
                format!("{} ", i + 1)
            } else {
                "  ".to_owned()
            };
            ListItem::new(format!("{number}{}{mark}", c.title)).style(style)
        })
        .collect();
    let area = centred(frame.area(), 30, columns.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        List::new(items).block(super::block(state, " Sort by (enter, esc) ")),
        area,
    );
}
