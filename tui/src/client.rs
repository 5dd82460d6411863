//! Reads the collector's JSON API: one refresh is every endpoint the
//! views need, read concurrently.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::{self, Snapshot, WorkloadRef};
use crate::error::TuiError;
use crate::state::{LogQuery, WorkloadHistory};
use crate::update::FetchError;

/// How many log records a refresh reads.
pub const LOG_LIMIT: usize = 500;

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
            .connect_timeout(timeout)
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

    /// Everything one refresh shows.
    pub async fn snapshot(&self, logs: &LogQuery) -> Result<Snapshot, FetchError> {
        let mut logs_path = format!("/api/v1/logs?limit={LOG_LIMIT}");
        for (key, value) in &logs.params {
            logs_path.push('&');
            logs_path.push_str(key);
            logs_path.push('=');
            logs_path.push_str(&encode(value));
        }
        let (status, agents, nodes, containers, workloads, workload_costs) = tokio::try_join!(
            self.get::<api::Status>("/api/v1/status"),
            self.get::<api::Agents>("/api/v1/agents"),
            self.get::<api::Nodes>("/api/v1/nodes"),
            self.get::<api::Containers>("/api/v1/containers"),
            self.get::<api::Workloads>("/api/v1/workloads"),
            self.get::<api::Costs>("/api/v1/costs?by=workload"),
        )?;
        let (gpus, models, model_costs, egress, recommendations, logs) = tokio::try_join!(
            self.get::<api::Gpus>("/api/v1/gpus"),
            self.get::<api::Models>("/api/v1/models"),
            self.get::<api::Costs>("/api/v1/costs?by=model"),
            self.get::<api::Egress>("/api/v1/egress"),
            self.get::<api::Recommendations>("/api/v1/recommendations"),
            self.get::<api::Logs>(&logs_path),
        )?;
        Ok(Snapshot {
            status,
            agents,
            nodes,
            containers,
            workloads,
            workload_costs,
            gpus,
            models,
            model_costs,
            egress,
            recommendations,
            logs,
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
