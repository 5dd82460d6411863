//! `/api/v1/topology`: every pod's address and workload, and every
//! node's addresses, with the zone and region they run in, as the agents
//! reported them with their egress series (`k8s.pod.ip`, `host.ip`).
//! Agents fetch it to place in-cluster destinations on other nodes, so
//! no agent needs a cluster-wide pod watch of its own.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_schema::catalog;

use super::{Window, each, label, workload};
use crate::store::Store;

/// The view: pods and node addresses seen in the window, latest wins.
pub fn view(store: &Store, window: Window) -> Value {
    // Address → (last seen, row).
    let mut pods: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    let mut nodes: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    each(store, &catalog::POD_NETWORK_TRANSMIT, window, |series| {
        let place = |ip: &str| {
            json!({
                "ip": ip,
                "node": label(series, "k8s.node.name"),
                "zone": label(series, "cloud.availability_zone"),
                "region": label(series, "cloud.region"),
            })
        };
        let seen = series.last_ns;
        let keep = |map: &mut BTreeMap<String, (u64, Value)>, ip: &str, row: Value| {
            let newer = map.get(ip).is_none_or(|(at, _)| *at <= seen);
            if newer {
                map.insert(ip.to_owned(), (seen, row));
            }
        };
        if let Some(ip) = series.label("k8s.pod.ip").filter(|ip| !ip.is_empty()) {
            let (namespace, _, name) = workload(series);
            let mut row = place(ip);
            row["namespace"] = json!(namespace);
            row["workload"] = json!(name);
            keep(&mut pods, ip, row);
        }
        if let Some(ips) = series.label("host.ip") {
            for ip in ips.split(',').map(str::trim).filter(|ip| !ip.is_empty()) {
                keep(&mut nodes, ip, place(ip));
            }
        }
    });
    let rows = |map: BTreeMap<String, (u64, Value)>| -> Vec<Value> {
        map.into_values().map(|(_, row)| row).collect()
    };
    json!({ "pods": rows(pods), "nodes": rows(nodes) })
}
