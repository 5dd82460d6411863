//! `/api/v1/egress`: bytes sent and received over the window by
//! destination class, by source workload, and the in-cluster workload
//! pairs that move the most bytes (the chatty pairs).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_schema::catalog::{self, DESTINATION_CLASSES};

use super::{Window, each, label, simulated, workload, workload_json};
use crate::store::{Series, Stat, Store};

/// Pairs listed, most bytes first.
const PAIRS: usize = 50;

/// Bytes sent and received.
type Bytes = [f64; 2];

fn by_class() -> BTreeMap<String, Bytes> {
    DESTINATION_CLASSES
        .iter()
        .map(|c| ((*c).to_owned(), [0.0; 2]))
        .collect()
}

fn bytes_json(bytes: Bytes) -> Value {
    json!({ "transmit_bytes": bytes[0], "receive_bytes": bytes[1] })
}

fn classes_json(classes: BTreeMap<String, Bytes>) -> Value {
    classes
        .into_iter()
        .map(|(class, bytes)| (class, bytes_json(bytes)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[derive(Default)]
struct Row {
    simulated: bool,
    total: Bytes,
    classes: BTreeMap<String, Bytes>,
}

/// The view.
pub fn view(store: &Store, window: Window) -> Value {
    let mut total = [0.0; 2];
    let mut classes = by_class();
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    // (source namespace, source workload, destination namespace,
    // destination workload, class) → bytes sent.
    let mut pairs: BTreeMap<(String, String, String, String, String), f64> = BTreeMap::new();
    let mut count = |direction: usize, series: &Series| {
        let Some(bytes) = window.stat(store, series, Stat::Increase) else {
            return;
        };
        let class = label(series, "destination_class");
        let key = workload(series);
        total[direction] += bytes;
        classes.entry(class.clone()).or_insert([0.0; 2])[direction] += bytes;
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            classes: by_class(),
            ..Row::default()
        });
        row.simulated |= simulated(series);
        row.total[direction] += bytes;
        row.classes.entry(class.clone()).or_insert([0.0; 2])[direction] += bytes;
        let peer = series
            .label("destination_workload")
            .filter(|w| !w.is_empty());
        if let (0, Some(peer)) = (direction, peer) {
            let (namespace, _, name) = key;
            let to = label(series, "destination_namespace");
            *pairs
                .entry((namespace, name, to, peer.to_owned(), class))
                .or_default() += bytes;
        }
    };
    each(store, &catalog::POD_NETWORK_TRANSMIT, window, |s| {
        count(0, s)
    });
    each(store, &catalog::POD_NETWORK_RECEIVE, window, |s| {
        count(1, s)
    });
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    pairs.truncate(PAIRS);
    let any_simulated = rows.values().any(|r| r.simulated);
    let workloads: Vec<Value> = rows
        .into_iter()
        .map(|(key, row)| {
            let fields = json!({
                "transmit_bytes": row.total[0],
                "receive_bytes": row.total[1],
                "by_class": classes_json(row.classes),
            });
            workload_json(key, row.simulated, fields)
        })
        .collect();
    let pairs: Vec<Value> = pairs
        .into_iter()
        .map(|((namespace, name, to_namespace, to_name, class), bytes)| {
            json!({
                "namespace": namespace,
                "workload_name": name,
                "destination_namespace": to_namespace,
                "destination_workload": to_name,
                "destination_class": class,
                "transmit_bytes": bytes,
            })
        })
        .collect();
    json!({
        "simulated": any_simulated,
        "transmit_bytes": total[0],
        "receive_bytes": total[1],
        "by_class": classes_json(classes),
        "workloads": workloads,
        "pairs": pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_add_up_by_class_workload_and_pair() {
        let (store, window) = super::super::tests::simulated_store();
        let body = view(&store, window);
        assert_eq!(body["simulated"], true);
        let class = |c: &str, d: &str| body["by_class"][c][d].as_f64().unwrap_or(f64::NAN);
        assert!(
            class("cross_zone", "transmit_bytes") > 0.0,
            "{}",
            body["by_class"]
        );
        assert!(
            class("internet", "transmit_bytes") > 0.0,
            "{}",
            body["by_class"]
        );
        let classes: f64 = DESTINATION_CLASSES
            .iter()
            .map(|c| class(c, "transmit_bytes"))
            .sum();
        let total = body["transmit_bytes"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (classes - total).abs() <= total * 1e-9,
            "{classes} vs {total}"
        );
        let workloads: f64 = body["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .filter_map(|w| w["transmit_bytes"].as_f64())
            .sum();
        assert!((workloads - total).abs() <= total * 1e-9);
        // In the cluster, what one side sends the other receives.
        for c in ["same_node", "same_zone", "cross_zone"] {
            let (sent, received) = (class(c, "transmit_bytes"), class(c, "receive_bytes"));
            assert!(
                (sent - received).abs() <= sent * 1e-6,
                "{c}: {sent} vs {received}"
            );
        }
        let pairs = body["pairs"].as_array().expect("pairs");
        assert!(!pairs.is_empty() && pairs.len() <= PAIRS);
        let bytes: Vec<f64> = pairs
            .iter()
            .filter_map(|p| p["transmit_bytes"].as_f64())
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "most bytes first");
    }
}
