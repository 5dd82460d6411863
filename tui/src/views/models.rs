//! Models: per model service TTFT and inter-token latency (p50, p95),
//! tokens per second, queue depth and $ per 1M tokens, against the SLO.

use std::collections::HashMap;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::api::Snapshot;
use crate::format;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// Columns.
pub const COLUMNS: &[Column] = &[
    Column::text("SERVICE", 24, 0),
    Column::text("MODEL", 28, 2),
    Column::text("ENGINE", 6, 4),
    Column::number("REPL", 4, 3),
    Column::number("TTFT50", 6, 3),
    Column::number("TTFT95", 6, 0),
    Column::number("ITL50", 6, 3),
    Column::number("ITL95", 6, 0),
    Column::number("TOK/S", 6, 1),
    Column::number("QUEUE", 5, 2),
    Column::number("$/1M TOK", 8, 0),
    Column::text("SLO", 6, 1),
];

/// The `$/1M TOK` column, the default sort.
pub const COST_COLUMN: usize = 10;

/// A service's $ per 1M tokens and whether it met its latency objective.
type Pricing = (Option<f64>, Option<bool>);

/// One row per model service.
pub fn rows(snapshot: &Snapshot, _state: &State) -> Vec<Row> {
    let costs: HashMap<(&str, &str), Pricing> = snapshot
        .model_costs
        .inference
        .iter()
        .flatten()
        .filter_map(|c| {
            let w = c.workload.as_ref()?;
            Some((
                (w.namespace.as_str(), w.name.as_str()),
                (c.per_million_tokens, c.slo_met),
            ))
        })
        .collect();
    snapshot
        .models
        .models
        .iter()
        .map(|m| {
            let (per_million, slo_met) = costs
                .get(&(m.namespace.as_str(), m.workload_name.as_str()))
                .copied()
                .unwrap_or((None, None));
            let latency_tone = match slo_met {
                Some(true) => Tone::Good,
                Some(false) => Tone::Bad,
                None => Tone::Normal,
            };
            let (slo_text, slo_tone) = match slo_met {
                Some(true) => ("met", Tone::Good),
                Some(false) => ("missed", Tone::Bad),
                None => ("–", Tone::Dim),
            };
            let queue = m.queue_depth;
            Row {
                key: format!("{}/{}/{}", m.namespace, m.workload_name, m.model),
                cells: vec![
                    Cell::text(format!("{}/{}", m.namespace, m.workload_name)),
                    Cell::text(m.model.clone()),
                    Cell::text(m.engine.clone()),
                    Cell::number(m.replicas.to_string(), Some(m.replicas as f64)),
                    Cell::number(
                        format::latency(m.time_to_first_token_seconds_p50),
                        m.time_to_first_token_seconds_p50,
                    ),
                    Cell::number(
                        format::latency(m.time_to_first_token_seconds_p95),
                        m.time_to_first_token_seconds_p95,
                    )
                    .tone(latency_tone),
                    Cell::number(
                        format::latency(m.inter_token_latency_seconds_p50),
                        m.inter_token_latency_seconds_p50,
                    ),
                    Cell::number(
                        format::latency(m.inter_token_latency_seconds_p95),
                        m.inter_token_latency_seconds_p95,
                    )
                    .tone(if m.inter_token_latency_seconds_p95.is_some() {
                        latency_tone
                    } else {
                        Tone::Dim
                    }),
                    Cell::number(format::count(m.tokens_per_second), m.tokens_per_second),
                    Cell::number(format::count(queue), queue).tone(if queue.unwrap_or(0.0) > 0.0 {
                        Tone::Warn
                    } else {
                        Tone::Dim
                    }),
                    Cell::number(format::dollars(per_million), per_million),
                    Cell::text(slo_text).tone(slo_tone),
                ],
            }
        })
        .collect()
}

/// Draws the table.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    super::draw_table(
        state,
        frame,
        area,
        TableId::View(ViewId::Models),
        "Model services (latency p95 against the SLO)",
    );
}
