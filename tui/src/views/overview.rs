//! Overview: the fleet's cost, the savings by kind (de-duplicated), the
//! biggest cards and the agents' health.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::api::Snapshot;
use crate::format;
use crate::state::{State, TableId};
use crate::table::{Column, Row};
use crate::theme::Tone;

/// Hours in an average month, as the analyzer counts them.
const HOURS_PER_MONTH: f64 = 730.0;

/// The top cards share the recommendations' columns.
pub const COLUMNS: &[Column] = super::recommendations::COLUMNS;

/// The top cards.
pub fn rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    super::recommendations::rows(snapshot, state)
}

/// An agent is late after three of its pushes (15 s each by default).
const AGENT_LATE_SECONDS: f64 = 60.0;

/// Draws the overview.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let Some(snapshot) = &state.snapshot else {
        return;
    };
    let p = &state.palette;
    let totals = &snapshot.recommendations.totals;
    let kinds = totals.by_kind.len() as u16;
    let [fleet, middle, top] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(kinds.clamp(3, 8) + 2),
        Constraint::Min(4),
    ])
    .areas(area);

    let monthly = snapshot
        .status
        .analyzer
        .as_ref()
        .and_then(|a| a.monthly_cost)
        .unwrap_or(totals.monthly_cost);
    let idle_share = (monthly > 0.0).then(|| totals.monthly_idle / monthly);
    let analyzer = match &snapshot.status.analyzer {
        _ if snapshot.recommendations.status == "pending" => (
            "pending: the first analysis has not finished (every 5 min; POST /api/v1/analyze runs one)"
                .to_owned(),
            Tone::Warn,
        ),
        Some(a) => {
            let age = a
                .last_run_ns
                .map(|ns| format::age(state.now - ns as f64 / 1e9))
                .unwrap_or_else(|| "–".to_owned());
            let tone = if a.status == "ok" {
                Tone::Good
            } else {
                Tone::Bad
            };
            (
                format!("{} (run {age} ago, {} errors)", a.status, a.errors),
                tone,
            )
        }
        None => ("not run yet".to_owned(), Tone::Dim),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("Fleet  ", p.style(Tone::Dim)),
            Span::styled(
                format!("{}/hour", format::dollars(Some(monthly / HOURS_PER_MONTH))),
                p.style(Tone::Accent),
            ),
            Span::raw("  "),
            Span::styled(
                format!("{}/month", format::dollars(Some(monthly))),
                p.style(Tone::Accent),
            ),
            Span::styled("  idle ", p.style(Tone::Dim)),
            Span::styled(
                format!(
                    "{} ({})",
                    format::dollars(Some(totals.monthly_idle)),
                    format::percent(idle_share)
                ),
                p.style(Tone::Warn),
            ),
        ]),
        Line::from(vec![
            Span::styled("Savings ", p.style(Tone::Dim)),
            Span::styled(
                format!("{}/month", format::dollars(Some(totals.monthly_savings))),
                p.style(Tone::Good),
            ),
            Span::styled(
                format!(
                    " de-duplicated ({} if summed), {} cards",
                    format::dollars(Some(totals.monthly_savings_sum)),
                    snapshot.recommendations.items.len()
                ),
                p.style(Tone::Dim),
            ),
        ]),
        Line::from(vec![
            Span::styled("Analyzer ", p.style(Tone::Dim)),
            Span::styled(analyzer.0, p.style(analyzer.1)),
            Span::styled(
                format!(
                    "  series {}  agents {}",
                    snapshot.status.series,
                    snapshot.agents.agents.len()
                ),
                p.style(Tone::Dim),
            ),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(super::block(state, " Fleet ")),
        fleet,
    );

    let [kinds_area, agents_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(middle);
    draw_kinds(state, snapshot, frame, kinds_area);
    draw_agents(state, snapshot, frame, agents_area);
    super::draw_table(
        state,
        frame,
        top,
        TableId::OverviewTop,
        "Top recommendations",
    );
}

fn draw_kinds(state: &State, snapshot: &Snapshot, frame: &mut Frame, area: Rect) {
    let p = &state.palette;
    let mut kinds: Vec<(&String, &f64)> = snapshot.recommendations.totals.by_kind.iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let largest = kinds.first().map_or(0.0, |k| *k.1);
    let bar_width = usize::from(area.width.saturating_sub(2 + 17 + 10 + 1));
    let glyph = if p.unicode { "█" } else { "#" };
    let lines: Vec<Line> = kinds
        .iter()
        .map(|(kind, amount)| {
            let filled = if largest > 0.0 {
                ((**amount / largest) * bar_width as f64).round() as usize
            } else {
                0
            };
            Line::from(vec![
                Span::raw(format!("{:<17}", format::truncate(kind, 16, p.unicode))),
                Span::styled(
                    format!("{:>9} ", format::dollars(Some(**amount))),
                    p.style(state.thresholds.monthly_cost(Some(**amount))),
                ),
                Span::styled(glyph.repeat(filled.max(1)), p.style(Tone::Good)),
            ])
        })
        .collect();
    let lines = if lines.is_empty() {
        vec![Line::from(Span::styled(
            "No savings found yet.",
            p.style(Tone::Dim),
        ))]
    } else {
        lines
    };
    frame.render_widget(
        Paragraph::new(lines).block(super::block(state, " Savings by kind /month ")),
        area,
    );
}

fn draw_agents(state: &State, snapshot: &Snapshot, frame: &mut Frame, area: Rect) {
    let p = &state.palette;
    let agents = &snapshot.agents.agents;
    let late: Vec<_> = agents
        .iter()
        .filter(|a| {
            a.last_push_seconds_ago
                .is_none_or(|s| s > AGENT_LATE_SECONDS)
        })
        .collect();
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{} pushing", agents.len()), p.style(Tone::Good)),
        Span::raw(", "),
        Span::styled(
            format!("{} late", late.len()),
            p.style(if late.is_empty() {
                Tone::Dim
            } else {
                Tone::Bad
            }),
        ),
    ])];
    let lag = agents
        .iter()
        .filter_map(|a| a.lag_seconds)
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    lines.push(super::pair(
        state,
        "max lag",
        lag.map_or_else(|| "–".to_owned(), format::age),
        Tone::Normal,
    ));
    for agent in late.iter().take(usize::from(area.height.saturating_sub(4))) {
        lines.push(Line::from(Span::styled(
            format!(
                "{} last push {} ago",
                agent.node,
                agent
                    .last_push_seconds_ago
                    .map_or_else(|| "–".to_owned(), format::age)
            ),
            p.style(Tone::Bad),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(super::block(state, " Agents ")),
        area,
    );
}
