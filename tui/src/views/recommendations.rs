//! Recommendations: sortable and filterable cards; the detail shows the
//! evidence, the risk, the confidence and the exact change.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::api::{Recommendation, Snapshot};
use crate::format;
use crate::patch;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// Columns (the overview's top list uses the same).
pub const COLUMNS: &[Column] = &[
    Column::text("KIND", 17, 0),
    Column::text("WORKLOAD", 30, 0),
    Column::text("TARGET", 24, 3),
    Column::number("$/MONTH", 9, 0),
    Column::text("RISK", 6, 1),
    Column::number("CONF", 5, 2),
];

/// The tone of a risk level.
pub fn risk_tone(level: &str) -> Tone {
    match level {
        "low" => Tone::Good,
        "medium" => Tone::Warn,
        "high" => Tone::Bad,
        _ => Tone::Dim,
    }
}

/// `namespace/kind/name` of a card, or its target.
pub fn workload_text(card: &Recommendation) -> String {
    match &card.workload {
        Some(w) => format!("{}/{}/{}", w.namespace, w.kind, w.name),
        None => "–".to_owned(),
    }
}

/// One row per card.
pub fn rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    snapshot
        .recommendations
        .items
        .iter()
        .map(|card| Row {
            key: card.id.clone(),
            cells: vec![
                Cell::text(card.kind.clone()),
                Cell::text(workload_text(card)),
                Cell::text(card.target.clone()),
                Cell::number(
                    format::dollars(Some(card.monthly_savings)),
                    Some(card.monthly_savings),
                )
                .tone(state.thresholds.monthly_cost(Some(card.monthly_savings))),
                Cell::text(card.risk.level.clone()).tone(risk_tone(&card.risk.level)),
                Cell::number(
                    format::percent(Some(card.confidence)),
                    Some(card.confidence),
                ),
            ],
        })
        .collect()
}

/// The view: the table, and beside it the selected card on wide screens.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let id = TableId::View(ViewId::Recommendations);
    let totals = &state
        .snapshot
        .as_ref()
        .map(|s| s.recommendations.totals.clone())
        .unwrap_or_default();
    let title = format!(
        "Recommendations: {}/month de-duplicated",
        format::dollars(Some(totals.monthly_savings))
    );
    if area.width >= 140 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(area);
        super::draw_table(state, frame, left, id, &title);
        if let Some(row) = state.table(id).selected_row() {
            draw_detail(state, frame, right, &row.key);
        }
    } else {
        super::draw_table(state, frame, area, id, &title);
    }
}

/// The card's lines: what, why, risk, evidence and the change to apply.
pub fn detail_lines(state: &State, card: &Recommendation) -> Vec<Line<'static>> {
    let p = &state.palette;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(card.kind.clone(), p.style(Tone::Accent)),
            Span::raw(format!("  {}  ", workload_text(card))),
            Span::styled(
                format!("{}/month", format::dollars(Some(card.monthly_savings))),
                p.style(Tone::Good),
            ),
        ]),
        super::pair(state, "target", card.target.clone(), Tone::Normal),
        super::pair(
            state,
            "risk",
            format!("{}: {}", card.risk.level, card.risk.description),
            risk_tone(&card.risk.level),
        ),
        super::pair(
            state,
            "confidence",
            format::percent(Some(card.confidence)),
            Tone::Normal,
        ),
        Line::from(""),
        Line::from(card.explanation.clone()),
        Line::from(""),
        Line::from(Span::styled("Change", p.style(Tone::Accent))),
    ];
    let changes: Vec<String> = card
        .current
        .iter()
        .map(|(k, v)| {
            let to = card
                .proposed
                .get(k)
                .map_or_else(|| "–".to_owned(), |p| patch::figure(k, *p));
            format!("  {k}: {} → {to}", patch::figure(k, *v))
        })
        .collect();
    lines.extend(changes.into_iter().map(Line::from));
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Apply (copy)",
        p.style(Tone::Accent),
    )));
    for line in patch::instructions(card).lines() {
        lines.push(Line::from(format!("  {line}")));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Evidence", p.style(Tone::Accent))));
    for (key, value) in &card.evidence {
        let text = match value {
            serde_json::Value::Number(n) => n.as_f64().map_or_else(
                || n.to_string(),
                |f| {
                    if f.fract() == 0.0 || f.abs() >= 100.0 {
                        format!("{f:.0}")
                    } else {
                        format!("{f:.3}")
                    }
                },
            ),
            other => other.to_string(),
        };
        lines.push(Line::from(format!("  {key}: {text}")));
    }
    lines
}

/// The card, full screen (Enter) or as the wide view's right pane.
pub fn draw_detail(state: &State, frame: &mut Frame, area: Rect, id: &str) {
    let card = state
        .snapshot
        .as_ref()
        .and_then(|s| s.recommendations.items.iter().find(|c| c.id == id));
    let lines = match card {
        Some(card) => detail_lines(state, card),
        None => vec![Line::from(Span::styled(
            "This card is gone from the newest analysis.",
            state.palette.style(Tone::Dim),
        ))],
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(super::block(state, format!(" Card {id} "))),
        area,
    );
}
