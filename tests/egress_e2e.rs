//! Egress from the agent's export to the collector's API: two nodes'
//! agents (their real OTLP batches, built by the exporter from egress
//! snapshots) push to the real `tally collector` on loopback; the
//! topology endpoint places each pod and node address in its zone, the
//! egress view adds the bytes up by class and finds the cross-zone pair,
//! and host traffic shows as the node's.

mod common;

use std::time::{Duration, SystemTime};

use prost::Message as _;
use serde_json::Value;
use tally_agent::config::GpuNames;
use tally_agent::export::batch::{self, Window, WindowExtras};
use tally_agent::snapshot::Snapshot;
use tally_agent::sources::egress::classify::{Class, Destination};
use tally_agent::sources::egress::ledger::Traffic;
use tally_schema::identity::{ContainerIdentity, NodeIdentity};

fn pod(name: &str, uid: &str) -> ContainerIdentity {
    ContainerIdentity {
        namespace: "shop".into(),
        pod: format!("{name}-0"),
        workload_kind: "StatefulSet".into(),
        workload_name: name.into(),
        pod_uid: uid.into(),
        ..Default::default()
    }
}

fn traffic(
    owner: ContainerIdentity,
    address: &str,
    class: Class,
    peer: &str,
    sent: u64,
    got: u64,
) -> Traffic {
    Traffic {
        owner,
        destination: Destination {
            class,
            namespace: if peer.is_empty() { "" } else { "shop" }.into(),
            workload: peer.into(),
            service: "".into(),
        },
        transmit_bytes: sent,
        receive_bytes: got,
        address: address.into(),
    }
}

fn push(port: u16, node: &str, zone: &str, rows: Vec<Traffic>, start: SystemTime, now: SystemTime) {
    let snapshot = Snapshot {
        node: NodeIdentity {
            name: node.into(),
            zone: zone.into(),
            region: "region-1".into(),
            ..Default::default()
        },
        egress: rows,
        ..Default::default()
    };
    let window = Window {
        process_start: start,
        window_start: start,
        now,
    };
    let request = batch::build_request(
        &snapshot,
        node,
        Vec::new(),
        WindowExtras::default(),
        &window,
        "test",
        GpuNames::Tally,
    );
    let (status, body) = common::http_post(
        port,
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        &request.encode_to_vec(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn api(port: u16, path: &str) -> Value {
    let (status, body) = common::http_get(&format!("http://127.0.0.1:{port}{path}")).expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
fn two_nodes_egress_lands_in_the_topology_and_egress_views() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let start = SystemTime::now() - Duration::from_secs(120);
    let frontend = pod("frontend", "uid-f");
    let cache = pod("cache", "uid-c");
    let node_owner = ContainerIdentity {
        workload_kind: "Node".into(),
        workload_name: "node-a".into(),
        ..Default::default()
    };
    for (step, scale) in [(60, 1), (0, 3)] {
        let now = SystemTime::now() - Duration::from_secs(step);
        push(
            port,
            "node-a",
            "zone-a",
            vec![
                traffic(
                    frontend.clone(),
                    "10.244.1.10",
                    Class::CrossZone,
                    "cache",
                    1_000_000 * scale,
                    20_000 * scale,
                ),
                traffic(
                    frontend.clone(),
                    "10.244.1.10",
                    Class::Internet,
                    "",
                    500_000 * scale,
                    9_000 * scale,
                ),
                traffic(
                    node_owner.clone(),
                    "10.0.1.10",
                    Class::SameZone,
                    "",
                    70_000 * scale,
                    1_000 * scale,
                ),
            ],
            start,
            now,
        );
        push(
            port,
            "node-b",
            "zone-b",
            vec![traffic(
                cache.clone(),
                "10.244.2.11",
                Class::CrossZone,
                "frontend",
                20_000 * scale,
                1_000_000 * scale,
            )],
            start,
            now,
        );
    }

    // Where every address is.
    let topology = api(port, "/api/v1/topology");
    let find = |list: &str, ip: &str| -> Value {
        topology[list]
            .as_array()
            .expect("list")
            .iter()
            .find(|row| row["ip"] == ip)
            .cloned()
            .unwrap_or_else(|| panic!("{ip} not in {list}: {topology}"))
    };
    let f = find("pods", "10.244.1.10");
    assert_eq!(
        (f["namespace"].as_str(), f["workload"].as_str()),
        (Some("shop"), Some("frontend"))
    );
    assert_eq!(
        (f["zone"].as_str(), f["node"].as_str()),
        (Some("zone-a"), Some("node-a"))
    );
    assert_eq!(find("pods", "10.244.2.11")["zone"], "zone-b");
    let n = find("nodes", "10.0.1.10");
    assert_eq!(
        (n["node"].as_str(), n["region"].as_str()),
        (Some("node-a"), Some("region-1"))
    );

    // The agent's reader of that answer gives the classifier's map.
    let answer: tally_agent::sources::egress::topology::TopologyAnswer =
        serde_json::from_value(topology.clone()).expect("agent reads the answer");
    let (map, bad) = tally_agent::sources::egress::topology::remote_map(&answer);
    assert_eq!(bad, 0);
    assert_eq!(map.len(), 3);

    // The bytes by class, the pair, and the node's own traffic.
    let egress = api(port, "/api/v1/egress?window=3h");
    let class = |name: &str, key: &str| egress["by_class"][name][key].as_f64().unwrap_or(0.0);
    assert!(class("cross_zone", "transmit_bytes") > 0.0, "{egress}");
    assert!(class("internet", "transmit_bytes") > 0.0, "{egress}");
    assert!(
        egress["by_class"].get("private_unmapped").is_some(),
        "{egress}"
    );
    let pairs = egress["pairs"].as_array().expect("pairs");
    assert!(
        pairs
            .iter()
            .any(|p| p.to_string().contains("frontend") && p.to_string().contains("cache")),
        "{egress}"
    );
    let workloads = egress["workloads"].as_array().expect("workloads");
    assert!(
        workloads
            .iter()
            .any(|w| w["workload_kind"] == "Node" && w["workload_name"] == "node-a"),
        "host traffic is the node's: {egress}"
    );

    // The analysis prices it: the costs API carries the egress bill by
    // class (free classes at 0) and by sending workload.
    let (status, body) = common::http_post(port, "/api/v1/analyze", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let costs = api(port, "/api/v1/costs?by=workload");
    let bill = &costs["egress"];
    let cost = |class: &str| bill["by_class"][class].as_f64();
    assert!(cost("cross_zone").is_some_and(|c| c > 0.0), "{bill}");
    assert!(cost("internet").is_some_and(|c| c > 0.0), "{bill}");
    for free in ["same_zone", "same_node"] {
        assert!(cost(free).is_none_or(|c| c == 0.0), "{free}: {bill}");
    }
    let total: f64 = bill["by_class"]
        .as_object()
        .expect("classes")
        .values()
        .filter_map(Value::as_f64)
        .sum();
    assert!(
        (bill["monthly_cost"].as_f64().unwrap_or(0.0) - total).abs() < 1e-9,
        "{bill}"
    );
    assert!(
        bill["by_workload"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["workload"]["name"] == "frontend")),
        "{bill}"
    );
}
