//! Reads the collector's JSON API: one refresh is every endpoint the
//! views need, read concurrently.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::{self, Part, WorkloadRef};
use crate::error::TuiError;
use crate::state::{LogQuery, ViewId, WorkloadHistory};
use crate::update::FetchError;

/// How many log records a refresh reads.
pub const LOG_LIMIT: usize = 500;

/// One endpoint of the collector's API the dashboard reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Status,
    Agents,
    Nodes,
    Workloads,
    WorkloadCosts,
    Gpus,
    Models,
    ModelCosts,
    Egress,
    Recommendations,
    Logs,
}

impl Endpoint {
    /// Read on every refresh: the header, the banners and the overview's
    /// fleet line need them, and they are cheap.
    pub const ALWAYS: [Endpoint; 2] = [Endpoint::Status, Endpoint::Agents];

    /// What a view needs besides [`Endpoint::ALWAYS`]. Only the visible
    /// view's endpoints are read (bottom harvests only what its widgets
    /// show): on a 1,000-node fleet the workloads, GPU and egress views
    /// cost the collector seconds each.
    pub fn for_view(view: ViewId) -> &'static [Endpoint] {
        match view {
            ViewId::Overview | ViewId::Recommendations => &[Endpoint::Recommendations],
            ViewId::Gpus => &[Endpoint::Nodes, Endpoint::Gpus],
            ViewId::Workloads => &[Endpoint::Workloads, Endpoint::WorkloadCosts],
            ViewId::Models => &[Endpoint::Models, Endpoint::ModelCosts],
            ViewId::Egress => &[Endpoint::Egress, Endpoint::WorkloadCosts],
            ViewId::Logs => &[Endpoint::Logs],
        }
    }
}

/// A client of one collector.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (`http://host:port`), with an optional bearer
    /// token and a per-request timeout.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Self, TuiError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| TuiError::Client(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// GETs `path` (with its query) and decodes the JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, FetchError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            FetchError::Unreachable(if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.to_string()
            })
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(FetchError::Unauthorized(format!("HTTP {status} on {path}")));
        }
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            // The analysis endpoints answer 503 `pending` until the first
            // analysis finishes: an empty answer, not an outage.
            let body = response.text().await.unwrap_or_default();
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&body)
                && value["status"] == "pending"
                && let Ok(pending) = serde_json::from_value(value)
            {
                return Ok(pending);
            }
            let first = body.lines().next().unwrap_or("").trim();
            return Err(FetchError::Unreachable(format!(
                "HTTP {status} on {path}: {first}"
            )));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let first = body.lines().next().unwrap_or("").trim();
            return Err(FetchError::Unreachable(format!(
                "HTTP {status} on {path}: {first}"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FetchError::Unreachable(format!("reading {path}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| FetchError::Unreachable(format!("{path} is not the expected JSON: {e}")))
    }

    /// One endpoint's answer.
    pub async fn part(&self, endpoint: Endpoint, logs: &LogQuery) -> Result<Part, FetchError> {
        Ok(match endpoint {
            Endpoint::Status => Part::Status(self.get("/api/v1/status").await?),
            Endpoint::Agents => Part::Agents(self.get("/api/v1/agents").await?),
            Endpoint::Nodes => Part::Nodes(self.get("/api/v1/nodes").await?),
            Endpoint::Workloads => Part::Workloads(self.get("/api/v1/workloads").await?),
            Endpoint::WorkloadCosts => {
                Part::WorkloadCosts(self.get("/api/v1/costs?by=workload").await?)
            }
            Endpoint::Gpus => Part::Gpus(self.get("/api/v1/gpus").await?),
            Endpoint::Models => Part::Models(self.get("/api/v1/models").await?),
            Endpoint::ModelCosts => Part::ModelCosts(self.get("/api/v1/costs?by=model").await?),
            Endpoint::Egress => Part::Egress(self.get("/api/v1/egress").await?),
            Endpoint::Recommendations => {
                Part::Recommendations(self.get("/api/v1/recommendations").await?)
            }
            Endpoint::Logs => {
                let mut path = format!("/api/v1/logs?limit={LOG_LIMIT}");
                for (key, value) in &logs.params {
                    path.push('&');
                    path.push_str(key);
                    path.push('=');
                    path.push_str(&encode(value));
                }
                Part::Logs(self.get(&path).await?)
            }
        })
    }

    /// A workload's containers' recent CPU and working set.
    pub async fn history(&self, workload: &WorkloadRef) -> Result<WorkloadHistory, FetchError> {
        let selector = format!(
            "label.k8s.namespace.name={}&label.k8s.{}.name={}",
            encode(&workload.namespace),
            workload.kind.to_ascii_lowercase(),
            encode(&workload.name)
        );
        let cpu_path =
            format!("/api/v1/series?metric=tally_container_cpu_usage_sampled_cores&{selector}");
        let memory_path = format!(
            "/api/v1/series?metric=tally_container_memory_working_set_sampled_bytes&{selector}"
        );
        let (cpu, memory) = tokio::try_join!(
            self.get::<api::Series>(&cpu_path),
            self.get::<api::Series>(&memory_path),
        )?;
        Ok(WorkloadHistory {
            workload: workload.clone(),
            cpu: lines(cpu),
            memory: lines(memory),
        })
    }
}

/// One line per container, named `pod/container`.
fn lines(series: api::Series) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = series
        .series
        .into_iter()
        .map(|s| {
            let name = format!(
                "{}/{}",
                s.labels.get("k8s.pod.name").map_or("?", String::as_str),
                s.labels
                    .get("k8s.container.name")
                    .map_or("?", String::as_str)
            );
            (name, s.points)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("web-1.x"), "web-1.x");
    }
}
