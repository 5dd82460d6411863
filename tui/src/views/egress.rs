//! Egress: the month's bill and bytes by destination class, the top
//! talkers (by cost) and the chattiest pairs between workloads.

use std::collections::HashMap;

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
    Column::number("$/MONTH", 8, 0),
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

/// The `$/MONTH` column, the default sort.
pub const COST_COLUMN: usize = 2;

/// One row per workload that sent or received bytes.
pub fn rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    let costs: HashMap<(&str, &str, &str), f64> = snapshot
        .workload_costs
        .egress
        .by_workload
        .iter()
        .map(|c| {
            (
                (
                    c.workload.namespace.as_str(),
                    c.workload.kind.as_str(),
                    c.workload.name.as_str(),
                ),
                c.monthly_cost,
            )
        })
        .collect();
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
            // Free traffic (same zone) has no cost line: $0, not unknown.
            let cost = costs
                .get(&(
                    w.namespace.as_str(),
                    w.workload_kind.as_str(),
                    w.workload_name.as_str(),
                ))
                .copied()
                .or(Some(0.0));
            Row {
                key: format!("{}/{}/{}", w.namespace, w.workload_kind, w.workload_name),
                cells: vec![
                    Cell::text(w.namespace.clone()),
                    Cell::text(format!(
                        "{}/{}",
                        super::workloads::short_kind(&w.workload_kind),
                        w.workload_name
                    )),
                    Cell::number(format::dollars(cost), cost)
                        .tone(state.thresholds.monthly_cost(cost)),
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
        Layout::vertical([Constraint::Length(classes.max(1) + 4), Constraint::Min(5)]).areas(area);
    let [classes_area, pairs_area] =
        Layout::horizontal([Constraint::Length(46), Constraint::Min(20)]).areas(top);

    let prices = &snapshot.workload_costs.egress.by_class;
    let mut lines = vec![Line::from(Span::styled(
        format!("{:<17}{:>9}{:>9}{:>9}", "CLASS", "$/MONTH", "SENT", "RECV"),
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
        let cost = prices.get(class.as_str()).copied();
        lines.push(Line::from(Span::styled(
            format!(
                "{:<17}{:>9}{:>9}{:>9}",
                format::truncate(class, 16, p.unicode),
                format::dollars(cost),
                format::bytes(Some(bytes.transmit_bytes)),
                format::bytes(Some(bytes.receive_bytes))
            ),
            p.style(tone),
        )));
    }
    lines.push(Line::from(Span::styled(
        format!(
            "{:<17}{:>9}",
            "total",
            format::dollars(Some(snapshot.workload_costs.egress.monthly_cost))
        ),
        p.style(Tone::Accent),
    )));
    frame.render_widget(
        Paragraph::new(lines).block(super::block(
            state,
            format!(" By class: $ a month, bytes in {} ", egress.window),
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
