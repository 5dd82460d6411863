//! Views of the JSON API that join several families: GPUs, model
//! services, workloads and egress, one file per view.
//!
//! A view is a plain function of the store and a window, so tests can
//! build one from a store without HTTP; [`route`] serves it with the
//! API's read auth and `window` parameter. Views read the store only
//! through its query API (`select`, `Series::label`, `latest`,
//! `latest_rate`, `last_ns` and `Store::stat`).

pub mod egress;
pub mod gpus;
pub mod model_latency;
pub mod models;
pub mod topology;
pub mod workloads;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};
use tally_schema::catalog::MetricDef;
use tally_schema::identity;

use crate::server::{self, Collector};
use crate::store::{Series, Stat, Store};

/// A view: the response body from the store over a window.
pub type View = fn(&Store, Window) -> Value;

/// The window a view covers, ns since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub from_ns: u64,
    /// End (now).
    pub to_ns: u64,
}

impl Window {
    /// `stat` of `series` over the window.
    pub fn stat(self, store: &Store, series: &Series, stat: Stat) -> Option<f64> {
        store.stat(series, stat, self.from_ns, self.to_ns)
    }
}

/// The GET route serving `view`: read token, `window` (default 1h), and
/// `window` echoed in the body.
pub fn route(view: View) -> MethodRouter<Arc<Collector>> {
    get(
        move |State(collector): State<Arc<Collector>>,
              headers: HeaderMap,
              Query(params): Query<HashMap<String, String>>| async move {
            serve(&collector, &headers, &params, view)
        },
    )
}

fn serve(
    collector: &Collector,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    view: View,
) -> Response {
    if !server::read_allowed(collector, headers) {
        return server::unauthorized();
    }
    let (text, from_ns, to_ns) = match server::window_param(params) {
        Ok(window) => window,
        Err(message) => return server::bad_request(message),
    };
    let mut body = collector.with_store(|store| view(store, Window { from_ns, to_ns }));
    body["window"] = json!(text);
    axum::Json(body).into_response()
}

/// Calls `f` with every series of `def` that has a point inside the
/// window (pods gone before it are not shown).
fn each(store: &Store, def: &MetricDef, window: Window, mut f: impl FnMut(&Series)) {
    let name = def.full_name();
    for series in store.select(&name, &[]) {
        if series.last_ns >= window.from_ns {
            f(series);
        }
    }
}

/// Finds the row a series belongs to.
type KeyFn<'a, K> = Box<dyn Fn(&Series) -> Option<K> + 'a>;

/// A view's rows by key, filled family by family.
struct Rows<'a, K, R> {
    store: &'a Store,
    window: Window,
    /// The row a series belongs to, if any.
    key: KeyFn<'a, K>,
    rows: BTreeMap<K, R>,
}

impl<'a, K: Ord, R> Rows<'a, K, R> {
    fn new(
        store: &'a Store,
        window: Window,
        rows: BTreeMap<K, R>,
        key: impl Fn(&Series) -> Option<K> + 'a,
    ) -> Self {
        Rows {
            store,
            window,
            key: Box::new(key),
            rows,
        }
    }

    /// Calls `f` with each series of `def` in the window and its row;
    /// series without a row are skipped.
    fn fill(&mut self, def: &MetricDef, mut f: impl FnMut(&mut R, &Series)) {
        let (rows, key) = (&mut self.rows, &self.key);
        each(self.store, def, self.window, |series| {
            if let Some(row) = key(series).and_then(|k| rows.get_mut(&k)) {
                f(row, series);
            }
        });
    }
}

/// A workload's JSON row: namespace, kind, name and `simulated`, then
/// `fields`.
fn workload_json(workload: (String, String, String), simulated: bool, fields: Value) -> Value {
    let (namespace, kind, name) = workload;
    let mut row = json!({
        "namespace": namespace,
        "workload_kind": kind,
        "workload_name": name,
        "simulated": simulated,
    });
    if let (Some(row), Value::Object(fields)) = (row.as_object_mut(), fields) {
        row.extend(fields);
    }
    row
}

/// Whether the series came from `tally simulate`.
fn simulated(series: &Series) -> bool {
    series.label("tally.simulated") == Some("true")
}

/// A label's value, empty when absent.
fn label(series: &Series, key: &str) -> String {
    series.label(key).unwrap_or_default().to_owned()
}

/// Namespace, workload kind and workload name of a pod or container
/// series; a pod without a controller is its own workload (kind `Pod`).
fn workload(series: &Series) -> (String, String, String) {
    // Traffic of host processes is the node's (agent's egress source).
    if series.label("tally.workload.kind") == Some("Node") {
        return (
            String::new(),
            "Node".to_owned(),
            label(series, "k8s.node.name"),
        );
    }
    let (kind, name) = identity::workload_of(|key| series.label(key))
        .unwrap_or(("Pod", series.label("k8s.pod.name").unwrap_or_default()));
    (
        label(series, "k8s.namespace.name"),
        kind.to_owned(),
        name.to_owned(),
    )
}

/// Adds `value` to `total` (a sum over series; absent stays absent).
fn add(total: &mut Option<f64>, value: Option<f64>) {
    if let Some(value) = value {
        *total = Some(total.unwrap_or(0.0) + value);
    }
}

/// Keeps the larger of `top` and `value`.
fn max(top: &mut Option<f64>, value: Option<f64>) {
    if let Some(value) = value {
        *top = Some(top.map_or(value, |t| t.max(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_NS: u64 = 3_600_000_000_000;

    /// A store holding three hours of a simulated three-node fleet and
    /// its last two hours.
    pub(super) fn simulated_store() -> (Store, Window) {
        let (store, t) = crate::analysis::tests::simulated_store(3, 3);
        let window = Window {
            from_ns: t - 2 * HOUR_NS,
            to_ns: t,
        };
        (store, window)
    }

    #[test]
    fn sums_and_maxima_keep_absent_values_absent() {
        let (mut total, mut top) = (None, None);
        add(&mut total, None);
        max(&mut top, None);
        assert_eq!((total, top), (None, None));
        for v in [2.0, 5.0, 1.0] {
            add(&mut total, Some(v));
            max(&mut top, Some(v));
        }
        assert_eq!((total, top), (Some(8.0), Some(5.0)));
    }
}
