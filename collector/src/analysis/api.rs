//! The analysis on the JSON API:
//! - `GET /api/v1/recommendations?namespace=&kind=&min_savings=`: the
//!   newest report's cards, filtered, with de-duplicated totals;
//! - `GET /api/v1/costs?by=namespace|workload|node|model`: cost lines;
//! - `POST /api/v1/analyze`: run now and answer with the summary.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tally_analyzer::allocation::Level;
use tally_analyzer::recommendation::{Kind, Recommendation};

use super::Finished;
use crate::server::{Collector, bad_request, read_allowed, unauthorized};

/// Filters of `/api/v1/recommendations` (and `tally recommend`).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only cards saving at least this much a month.
    pub min_savings: f64,
}

impl Filter {
    /// From query parameters; names the bad one.
    pub fn parse(params: &HashMap<String, String>) -> Result<Filter, String> {
        let kind = match params.get("kind") {
            Some(text) => Some(Kind::parse(text).ok_or_else(|| {
                let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {text:?}; one of {}", kinds.join(", "))
            })?),
            None => None,
        };
        let min_savings = match params.get("min_savings") {
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("bad min_savings {text:?}: a non-negative number"))?,
            None => 0.0,
        };
        Ok(Filter {
            namespace: params.get("namespace").cloned(),
            kind,
            min_savings,
        })
    }

    /// Whether `card` passes.
    pub fn accepts(&self, card: &Recommendation) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == card.workload.namespace)
            && self.kind.is_none_or(|k| k == card.kind)
            && card.monthly_savings >= self.min_savings
    }
}

fn not_yet() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "status": "pending",
            "reason": "no analysis has finished yet; POST /api/v1/analyze runs one now",
            "items": [],
        })),
    )
        .into_response()
}

/// The body of `/api/v1/recommendations`.
pub fn recommendations_body(finished: &Finished, filter: &Filter) -> Value {
    let report = &finished.report;
    let items: Vec<&Recommendation> = report
        .recommendations
        .iter()
        .filter(|c| filter.accepts(c))
        .collect();
    json!({
        "status": "ok",
        "generated_at_ns": finished.at_ns,
        "from_ns": report.from_ns,
        "to_ns": report.to_ns,
        "currency": report.currency,
        "prices_as_of": report.prices_as_of,
        "totals": report.totals,
        "price_warnings": report.price_warnings,
        "items": items,
    })
}

/// `GET /api/v1/recommendations`.
pub async fn recommendations(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !read_allowed(&collector, &headers) {
        return unauthorized();
    }
    let filter = match Filter::parse(&params) {
        Ok(filter) => filter,
        Err(message) => return bad_request(message),
    };
    match collector.analysis().latest() {
        Some(finished) => axum::Json(recommendations_body(&finished, &filter)).into_response(),
        None => not_yet(),
    }
}

/// `GET /api/v1/costs`.
pub async fn costs(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !read_allowed(&collector, &headers) {
        return unauthorized();
    }
    let by = params.get("by").map(String::as_str).unwrap_or("namespace");
    let Some(level) = Level::parse(by) else {
        return bad_request(format!(
            "bad by {by:?}: one of namespace, workload, node, model"
        ));
    };
    let Some(finished) = collector.analysis().latest() else {
        return not_yet();
    };
    let report = &finished.report;
    let lines = match level {
        Level::Namespace => &report.namespaces,
        Level::Workload => &report.workloads,
        Level::Node => &report.nodes,
        Level::Model => &report.models,
    };
    axum::Json(json!({
        "status": "ok",
        "by": by,
        "generated_at_ns": finished.at_ns,
        "currency": report.currency,
        "monthly_cost": report.totals.monthly_cost,
        "monthly_idle": report.totals.monthly_idle,
        "lines": lines,
        // Egress a month by destination class and by sending workload.
        "egress": report.egress,
        // Unit costs of the model services, with their latency.
        "inference": if level == Level::Model { json!(report.inference) } else { Value::Null },
        "packing": if level == Level::Node { json!(report.packing) } else { Value::Null },
    }))
    .into_response()
}

/// `POST /api/v1/analyze`.
pub async fn analyze(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    if !read_allowed(&collector, &headers) {
        return unauthorized();
    }
    let running = Arc::clone(&collector);
    match tokio::task::spawn_blocking(move || running.analyze()).await {
        Ok(Ok(finished)) => axum::Json(json!({
            "status": "ok",
            "generated_at_ns": finished.at_ns,
            "recommendations": finished.report.recommendations.len(),
            "totals": finished.report.totals,
            "extract_seconds": finished.extract.as_secs_f64(),
            "analyze_seconds": finished.analyze.as_secs_f64(),
        }))
        .into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": format!("analysis task failed: {error}") })),
        )
            .into_response(),
    }
}
