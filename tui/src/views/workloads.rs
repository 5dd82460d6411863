//! Workloads: requests against usage (p50, p95, max), efficiency, cost,
//! OOM kills and throttling; Enter charts a workload's containers.

use std::collections::HashMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};

use super::ratio;
use crate::api::{Snapshot, Workload, WorkloadRef};
use crate::format;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// Columns.
pub const COLUMNS: &[Column] = &[
    Column::text("NAMESPACE", 12, 0),
    Column::text("WORKLOAD", 26, 0),
    Column::number("PODS", 4, 3),
    Column::number("CPU REQ", 7, 1),
    Column::number("P50", 5, 5),
    Column::number("P95", 5, 1),
    Column::number("MAX", 5, 3),
    Column::number("CPU EFF", 7, 0),
    Column::number("MEM REQ", 9, 2),
    Column::number("MEM P95", 9, 2),
    Column::number("MEM MAX", 9, 5),
    Column::number("MEM EFF", 7, 1),
    Column::number("$/MONTH", 8, 0),
    Column::number("OOM", 4, 2),
    Column::number("THROTTLE", 8, 4),
];

/// The `$/MONTH` column, the default sort.
pub const COST_COLUMN: usize = 12;

/// A row's key: `namespace/kind/name`.
fn key(w: &Workload) -> String {
    format!("{}/{}/{}", w.namespace, w.workload_kind, w.workload_name)
}

/// The workload a row's key names.
pub fn parse_key(key: &str) -> Option<WorkloadRef> {
    let mut parts = key.splitn(3, '/');
    Some(WorkloadRef {
        namespace: parts.next()?.to_owned(),
        kind: parts.next()?.to_owned(),
        name: parts.next()?.to_owned(),
    })
}

/// One row per workload.
pub fn rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    let costs: HashMap<(&str, &str, &str), f64> = snapshot
        .workload_costs
        .lines
        .iter()
        .filter(|l| l.key.len() == 3)
        .map(|l| {
            (
                (l.key[0].as_str(), l.key[1].as_str(), l.key[2].as_str()),
                l.total_monthly,
            )
        })
        .collect();
    let t = &state.thresholds;
    snapshot
        .workloads
        .workloads
        .iter()
        .map(|w| {
            let cost = costs
                .get(&(
                    w.namespace.as_str(),
                    w.workload_kind.as_str(),
                    w.workload_name.as_str(),
                ))
                .copied();
            let cpu_efficiency = ratio(w.cpu_cores_p95, w.cpu_request_cores);
            let memory_efficiency = ratio(w.working_set_bytes_p95, w.memory_request_bytes);
            let oom = w.oom_kills.unwrap_or(0.0);
            Row {
                key: key(w),
                cells: vec![
                    Cell::text(w.namespace.clone()),
                    Cell::text(format!(
                        "{}/{}",
                        short_kind(&w.workload_kind),
                        w.workload_name
                    )),
                    Cell::number(w.replicas.to_string(), Some(w.replicas as f64)),
                    Cell::number(format::cores(w.cpu_request_cores), w.cpu_request_cores),
                    Cell::number(format::cores(w.cpu_cores_p50), w.cpu_cores_p50),
                    Cell::number(format::cores(w.cpu_cores_p95), w.cpu_cores_p95),
                    Cell::number(format::cores(w.cpu_cores_max), w.cpu_cores_max),
                    Cell::number(format::percent(cpu_efficiency), cpu_efficiency)
                        .tone(t.efficiency(cpu_efficiency)),
                    Cell::number(
                        format::bytes(w.memory_request_bytes),
                        w.memory_request_bytes,
                    ),
                    Cell::number(
                        format::bytes(w.working_set_bytes_p95),
                        w.working_set_bytes_p95,
                    ),
                    Cell::number(
                        format::bytes(w.working_set_bytes_max),
                        w.working_set_bytes_max,
                    ),
                    Cell::number(format::percent(memory_efficiency), memory_efficiency)
                        .tone(t.efficiency(memory_efficiency)),
                    Cell::number(format::dollars(cost), cost).tone(t.monthly_cost(cost)),
                    Cell::number(format::count(w.oom_kills), w.oom_kills).tone(if oom > 0.0 {
                        Tone::Bad
                    } else {
                        Tone::Dim
                    }),
                    Cell::number(
                        w.cpu_throttled_seconds
                            .map_or_else(|| format::NONE.to_owned(), format::age),
                        w.cpu_throttled_seconds,
                    )
                    .tone(if w.cpu_throttled_seconds.unwrap_or(0.0) > 0.0 {
                        Tone::Warn
                    } else {
                        Tone::Dim
                    }),
                ],
            }
        })
        .collect()
}

/// `Deployment` → `deploy`, as kubectl abbreviates.
pub fn short_kind(kind: &str) -> &str {
    match kind {
        "Deployment" => "deploy",
        "StatefulSet" => "sts",
        "DaemonSet" => "ds",
        "ReplicaSet" => "rs",
        "CronJob" => "cronjob",
        "Job" => "job",
        "Pod" => "pod",
        "Node" => "node",
        other => other,
    }
}

/// Draws the table.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let window = state
        .snapshot
        .as_ref()
        .map(|s| s.workloads.window.clone())
        .unwrap_or_default();
    super::draw_table(
        state,
        frame,
        area,
        TableId::View(ViewId::Workloads),
        &format!("Workloads (usage over {window})"),
    );
}

const LINE_COLOURS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
    Color::Red,
];

fn chart<'a>(
    state: &State,
    title: String,
    series: &'a [(String, Vec<(f64, f64)>)],
    request: Option<f64>,
    label: fn(f64) -> String,
    request_line: &'a [(f64, f64)],
) -> Chart<'a> {
    let marker = if state.palette.unicode {
        Marker::Braille
    } else {
        Marker::Dot
    };
    let mut datasets: Vec<Dataset> = series
        .iter()
        .take(LINE_COLOURS.len())
        .enumerate()
        .map(|(i, (name, points))| {
            let style = if state.palette.color {
                ratatui::style::Style::new().fg(LINE_COLOURS[i])
            } else {
                ratatui::style::Style::new()
            };
            Dataset::default()
                .name(name.clone())
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(style)
                .data(points)
        })
        .collect();
    if request.is_some() {
        datasets.push(
            Dataset::default()
                .name("request")
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(state.palette.style(Tone::Bad))
                .data(request_line),
        );
    }
    let (x_min, x_max, y_max) = bounds(series, request);
    Chart::new(datasets)
        .block(super::block(state, title))
        .x_axis(
            Axis::default()
                .bounds([x_min, x_max])
                .labels(vec![
                    Span::raw(format!("-{}", format::age(x_max - x_min))),
                    Span::raw("now"),
                ])
                .style(state.palette.style(Tone::Dim)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(vec![Span::raw("0"), Span::raw(label(y_max))])
                .style(state.palette.style(Tone::Dim)),
        )
}

fn bounds(series: &[(String, Vec<(f64, f64)>)], request: Option<f64>) -> (f64, f64, f64) {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, request.unwrap_or(0.0));
    for (x, y) in points {
        x_min = x_min.min(*x);
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
    }
    if x_min > x_max {
        (0.0, 1.0, 1.0)
    } else {
        (x_min, x_max.max(x_min + 1.0), (y_max * 1.1).max(1e-9))
    }
}

/// Draws a workload's containers over time, against its requests.
pub fn draw_history(state: &State, frame: &mut Frame, area: Rect, workload: &WorkloadRef) {
    let row = state.snapshot.as_ref().and_then(|s| {
        s.workloads.workloads.iter().find(|w| {
            w.namespace == workload.namespace
                && w.workload_kind == workload.kind
                && w.workload_name == workload.name
        })
    });
    let [summary, charts] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(6)]).areas(area);
    let lines = match row {
        Some(w) => vec![
            Line::from(format!(
                "CPU request {} · p50 {} · p95 {} · max {} cores · throttled {}",
                format::cores(w.cpu_request_cores),
                format::cores(w.cpu_cores_p50),
                format::cores(w.cpu_cores_p95),
                format::cores(w.cpu_cores_max),
                w.cpu_throttled_seconds
                    .map_or_else(|| format::NONE.to_owned(), format::age),
            )),
            Line::from(format!(
                "Memory request {} · p50 {} · p95 {} · max {} · OOM kills {}",
                format::bytes(w.memory_request_bytes),
                format::bytes(w.working_set_bytes_p50),
                format::bytes(w.working_set_bytes_p95),
                format::bytes(w.working_set_bytes_max),
                format::count(w.oom_kills),
            )),
        ],
        None => vec![Line::from("This workload is gone from the newest data.")],
    };
    frame.render_widget(
        Paragraph::new(lines).block(super::block(
            state,
            format!(
                " {}/{}/{} ",
                workload.namespace, workload.kind, workload.name
            ),
        )),
        summary,
    );
    let Some(history) = state
        .workload_history
        .as_ref()
        .filter(|h| h.workload == *workload)
    else {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "Reading the history…",
                state.palette.style(Tone::Dim),
            )),
            charts,
        );
        return;
    };
    if history.cpu.iter().all(|(_, p)| p.is_empty())
        && history.memory.iter().all(|(_, p)| p.is_empty())
    {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "No recent points for this workload's containers.",
                state.palette.style(Tone::Dim),
            )),
            charts,
        );
        return;
    }
    let [cpu_area, memory_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    let cpu_request = row.and_then(|w| w.cpu_request_cores);
    let memory_request = row.and_then(|w| w.memory_request_bytes);
    let (x_min, x_max, _) = bounds(&history.cpu, None);
    // Requests are per workload; the lines are per container, so the
    // request is drawn per replica.
    let replicas = row.map_or(1.0, |w| w.replicas.max(1) as f64);
    let cpu_line = cpu_request.map_or_else(Vec::new, |r| {
        vec![(x_min, r / replicas), (x_max, r / replicas)]
    });
    let (x_min, x_max, _) = bounds(&history.memory, None);
    let memory_line = memory_request.map_or_else(Vec::new, |r| {
        vec![(x_min, r / replicas), (x_max, r / replicas)]
    });
    frame.render_widget(
        chart(
            state,
            " CPU cores per container ".to_owned(),
            &history.cpu,
            cpu_request.map(|r| r / replicas),
            |v| format::cores(Some(v)),
            &cpu_line,
        ),
        cpu_area,
    );
    frame.render_widget(
        chart(
            state,
            " Working set per container ".to_owned(),
            &history.memory,
            memory_request.map(|r| r / replicas),
            |v| format::bytes(Some(v)),
            &memory_line,
        ),
        memory_area,
    );
}
