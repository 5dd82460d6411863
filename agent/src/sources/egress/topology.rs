//! The rest of the cluster, from the collector: every pod's address and
//! workload and every node's addresses, with their zone and region
//! (`GET /api/v1/topology`). The agents report them with their egress
//! series, so one node learns where another's pods run without a
//! cluster-wide watch of its own.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use super::SharedRemote;
use super::classify::{Place, Remote, Workload};
use super::hash::FastMap;
use crate::telemetry::SourceHealth;

/// One pod or node of the answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    /// Its address.
    pub ip: String,
    /// Namespace (pods).
    #[serde(default)]
    pub namespace: String,
    /// Workload name (pods).
    #[serde(default)]
    pub workload: String,
    /// Node name.
    #[serde(default)]
    pub node: String,
    /// Zone of its node.
    #[serde(default)]
    pub zone: String,
    /// Region of its node.
    #[serde(default)]
    pub region: String,
}

/// The collector's answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TopologyAnswer {
    /// Pods by address.
    #[serde(default)]
    pub pods: Vec<Endpoint>,
    /// Node addresses.
    #[serde(default)]
    pub nodes: Vec<Endpoint>,
}

/// The answer as the classifier's map; unparsable addresses are skipped
/// and counted in the return's second value.
pub fn remote_map(answer: &TopologyAnswer) -> (FastMap<IpAddr, Remote>, usize) {
    let mut out = FastMap::default();
    let mut bad = 0;
    let place = |e: &Endpoint| Place {
        region: Arc::from(e.region.as_str()),
        zone: Arc::from(e.zone.as_str()),
    };
    for node in &answer.nodes {
        match node.ip.parse() {
            Ok(ip) => {
                out.insert(
                    ip,
                    Remote {
                        place: place(node),
                        workload: None,
                    },
                );
            }
            Err(_) => bad += 1,
        }
    }
    for pod in &answer.pods {
        match pod.ip.parse() {
            Ok(ip) => {
                out.insert(
                    ip,
                    Remote {
                        place: place(pod),
                        workload: Some(Workload {
                            namespace: Arc::from(pod.namespace.as_str()),
                            name: Arc::from(pod.workload.as_str()),
                        }),
                    },
                );
            }
            Err(_) => bad += 1,
        }
    }
    (out, bad)
}

/// Fetches the topology every `interval` until shutdown; a failed fetch
/// keeps the last map.
pub async fn run(
    client: reqwest::Client,
    url: String,
    interval: Duration,
    remote: SharedRemote,
    health: Arc<SourceHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match fetch(&client, &url).await {
            Ok(answer) => {
                let (map, bad) = remote_map(&answer);
                if bad > 0 {
                    health.error(
                        "topology",
                        &format!("{bad} addresses in the collector's topology do not parse"),
                    );
                }
                match remote.write() {
                    Ok(mut guard) => *guard = map,
                    Err(poisoned) => *poisoned.into_inner() = map,
                }
            }
            Err(error) => health.error("topology", &error),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<TopologyAnswer, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_becomes_a_map_and_bad_addresses_are_counted() {
        let answer: TopologyAnswer = serde_json::from_str(
            r#"{"pods":[{"ip":"10.244.7.3","namespace":"shop","workload":"db","node":"n2","zone":"b","region":"r"},{"ip":"nope"}],
                "nodes":[{"ip":"10.0.2.20","node":"n2","zone":"b","region":"r"}]}"#,
        )
        .unwrap();
        let (map, bad) = remote_map(&answer);
        assert_eq!(bad, 1);
        assert_eq!(map.len(), 2);
        let db = &map[&"10.244.7.3".parse::<IpAddr>().unwrap()];
        assert_eq!(&*db.workload.as_ref().unwrap().name, "db");
        assert_eq!(&*db.place.zone, "b");
    }
}
