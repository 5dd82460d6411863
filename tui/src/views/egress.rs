//! Egress: bytes by destination class, the top talkers and the chattiest
//! pairs between workloads.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::api::Snapshot;
use crate::format;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// The top talkers.
pub const COLUMNS: &[Column] = &[
    Column::text("NAMESPACE", 12, 0),
    Column::text("WORKLOAD", 26, 0),
    Column::number("SENT", 9, 0),
    Column::number("RECEIVED", 9, 1),
    Column::number("X-ZONE", 9, 0),
    Column::number("X-REGION", 9, 2),
    Column::number("INTERNET", 9, 1),
    Column::number("SERVICES", 9, 3),
];

/// Classes that cost money when crossed.
fn class_tone(class: &str) -> Tone {
    match class {
        "cross_zone" | "private_unmapped" | "internet" | "service" => Tone::Warn,
        "cross_region" => Tone::Bad,
        _ => Tone::Normal,
    }
}

/// One row per workload that sent or received bytes.
pub fn rows(snapshot: &Snapshot, _state: &State) -> Vec<Row> {
    snapshot
        .egress
        .workloads
        .iter()
        .map(|w| {
            let class = |name: &str| {
                w.by_class
                    .get(name)
                    .map(|b| b.transmit_bytes + b.receive_bytes)
            };
            let cell = |name: &str| {
                let value = class(name);
                let tone = if value.unwrap_or(0.0) > 0.0 {
                    class_tone(name)
                } else {
                    Tone::Dim
                };
                Cell::number(format::bytes(value), value).tone(tone)
            };
            Row {
                key: format!("{}/{}/{}", w.namespace, w.workload_kind, w.workload_name),
                cells: vec![
                    Cell::text(w.namespace.clone()),
                    Cell::text(format!(
                        "{}/{}",
                        super::workloads::short_kind(&w.workload_kind),
                        w.workload_name
                    )),
                    Cell::number(
                        format::bytes(Some(w.transmit_bytes)),
                        Some(w.transmit_bytes),
                    ),
                    Cell::number(format::bytes(Some(w.receive_bytes)), Some(w.receive_bytes)),
                    cell("cross_zone"),
                    cell("cross_region"),
                    cell("internet"),
                    cell("service"),
                ],
            }
        })
        .collect()
}

/// Draws the classes, the talkers and the pairs.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let Some(snapshot) = &state.snapshot else {
        return;
    };
    let p = &state.palette;
    let egress = &snapshot.egress;
    let classes = egress.by_class.len() as u16;
    let [top, talkers] =
        Layout::vertical([Constraint::Length(classes.max(1) + 3), Constraint::Min(5)]).areas(area);
    let [classes_area, pairs_area] =
        Layout::horizontal([Constraint::Length(39), Constraint::Min(20)]).areas(top);

    let mut lines = vec![Line::from(Span::styled(
        format!("{:<17}{:>10}{:>10}", "CLASS", "SENT", "RECEIVED"),
        p.style(Tone::Accent),
    ))];
    let mut classes: Vec<_> = egress.by_class.iter().collect();
    classes.sort_by(|a, b| {
        let total = |x: &crate::api::Bytes| x.transmit_bytes + x.receive_bytes;
        total(b.1).total_cmp(&total(a.1))
    });
    for (class, bytes) in classes {
        let tone = if bytes.transmit_bytes + bytes.receive_bytes > 0.0 {
            class_tone(class)
        } else {
            Tone::Dim
        };
        lines.push(Line::from(Span::styled(
            format!(
                "{:<17}{:>10}{:>10}",
                class,
                format::bytes(Some(bytes.transmit_bytes)),
                format::bytes(Some(bytes.receive_bytes))
            ),
            p.style(tone),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(super::block(
            state,
            format!(" By destination class, last {} ", egress.window),
        )),
        classes_area,
    );

    let room = usize::from(pairs_area.height.saturating_sub(2));
    let pairs: Vec<Line> = egress
        .pairs
        .iter()
        .take(room)
        .map(|pair| {
            Line::from(vec![
                Span::styled(
                    format!("{:>9} ", format::bytes(Some(pair.transmit_bytes))),
                    p.style(class_tone(&pair.destination_class)),
                ),
                Span::raw(format!(
                    "{}/{} → {}/{} ",
                    pair.namespace,
                    pair.workload_name,
                    pair.destination_namespace,
                    pair.destination_workload
                )),
                Span::styled(pair.destination_class.clone(), p.style(Tone::Dim)),
            ])
        })
        .collect();
    let pairs = if pairs.is_empty() {
        vec![Line::from(Span::styled(
            "No in-cluster pairs measured.",
            p.style(Tone::Dim),
        ))]
    } else if p.unicode {
        pairs
    } else {
        pairs
            .into_iter()
            .map(|line| {
                Line::from(
                    line.spans
                        .into_iter()
                        .map(|s| Span::styled(s.content.replace('→', "->"), s.style))
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(pairs).block(super::block(state, " Chattiest pairs ")),
        pairs_area,
    );
    super::draw_table(
        state,
        frame,
        talkers,
        TableId::View(ViewId::Egress),
        "Top talkers",
    );
}
