//! Metrics derived from the records the logs source reads, per
//! container: messages and bytes by severity, tokens by direction, and
//! the latency the messages report as a distribution. Counted when read
//! (a restarted agent starts its counters again, as every counter does).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tally_schema::catalog;
use tally_schema::exphist::ExpHistogram;
use tally_schema::identity::ContainerIdentity;

use super::record::{LogRecord, severity};
use crate::sources::gpu::{ContainerGpuPoints, GpuPoint};

/// The `severity` label of a severity number.
pub fn severity_label(number: i32) -> &'static str {
    match number {
        n if n >= severity::FATAL => "fatal",
        n if n >= severity::ERROR => "error",
        n if n >= severity::WARN => "warn",
        n if n >= severity::INFO => "info",
        n if n >= severity::DEBUG => "debug",
        n if n >= severity::TRACE => "trace",
        _ => "unknown",
    }
}

#[derive(Debug, Default)]
struct ContainerLogs {
    identity: ContainerIdentity,
    lines: BTreeMap<&'static str, f64>,
    bytes: BTreeMap<&'static str, f64>,
    prompt_tokens: f64,
    completion_tokens: f64,
    rate_limited: f64,
    text_lines: f64,
    latency: ExpHistogram,
    prompt_distribution: ExpHistogram,
    completion_distribution: ExpHistogram,
}

/// One distribution a container's log messages reported in a window.
#[derive(Debug, Clone)]
pub struct LogDistribution {
    /// The container.
    pub identity: ContainerIdentity,
    /// Its family.
    pub def: &'static catalog::MetricDef,
    /// The point's attributes (a token direction).
    pub attributes: Vec<(&'static str, &'static str)>,
    /// The values recorded since the last export.
    pub histogram: ExpHistogram,
}

/// Every container's log metrics, by [`container_key`].
#[derive(Debug, Default)]
pub struct LogMetrics {
    containers: BTreeMap<String, ContainerLogs>,
}

/// The key a container's metrics are kept under (computed once per file,
/// so counting a record allocates nothing).
pub fn container_key(identity: &ContainerIdentity) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        identity.pod_uid, identity.container, identity.container_id, identity.pod
    )
}

/// The metrics behind their lock.
pub type SharedLogMetrics = Arc<Mutex<LogMetrics>>;

/// Locks the metrics, recovering from a panicked holder.
pub fn lock(metrics: &SharedLogMetrics) -> MutexGuard<'_, LogMetrics> {
    match metrics.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl LogMetrics {
    fn update(
        &mut self,
        key: &str,
        identity: &ContainerIdentity,
        change: impl FnOnce(&mut ContainerLogs),
    ) {
        if let Some(entry) = self.containers.get_mut(key) {
            // The pod watch may fill the workload in later.
            if entry.identity.workload_name.is_empty() && !identity.workload_name.is_empty() {
                entry.identity = identity.clone();
            }
            change(entry);
            return;
        }
        let mut entry = ContainerLogs {
            identity: identity.clone(),
            ..ContainerLogs::default()
        };
        change(&mut entry);
        self.containers.insert(key.to_owned(), entry);
    }

    /// Counts lines of `identity`'s container dropped by its rate limit.
    pub fn rate_limited(&mut self, key: &str, identity: &ContainerIdentity, lines: u64) {
        self.update(key, identity, |entry| entry.rate_limited += lines as f64);
    }

    /// Counts one record of `identity`'s container (`key` is its
    /// [`container_key`]).
    pub fn observe(
        &mut self,
        key: &str,
        identity: &ContainerIdentity,
        record: &LogRecord,
        bytes: usize,
    ) {
        self.update(key, identity, |entry| count(entry, record, bytes));
    }
}

fn count(entry: &mut ContainerLogs, record: &LogRecord, bytes: usize) {
    if !record.structured {
        entry.text_lines += 1.0;
    }
    let severity = severity_label(record.severity_number);
    *entry.lines.entry(severity).or_insert(0.0) += 1.0;
    *entry.bytes.entry(severity).or_insert(0.0) += bytes as f64;
    entry.prompt_tokens += record.prompt_tokens.unwrap_or(0.0).max(0.0);
    entry.completion_tokens += record.completion_tokens.unwrap_or(0.0).max(0.0);
    if let Some(tokens) = record.prompt_tokens.filter(|t| *t >= 0.0) {
        entry.prompt_distribution.record(tokens);
    }
    if let Some(tokens) = record.completion_tokens.filter(|t| *t >= 0.0) {
        entry.completion_distribution.record(tokens);
    }
    if let Some(latency) = record.latency_seconds.filter(|l| *l >= 0.0) {
        entry.latency.record(latency);
    }
}

impl LogMetrics {
    /// The counters as points under each container.
    pub fn points(&self) -> Vec<ContainerGpuPoints> {
        self.containers
            .values()
            .map(|c| {
                let mut points = Vec::new();
                for (def, map) in [
                    (&catalog::CONTAINER_LOG_LINES, &c.lines),
                    (&catalog::CONTAINER_LOG_BYTES, &c.bytes),
                ] {
                    for (severity, value) in map {
                        points.push(GpuPoint {
                            def,
                            attributes: vec![("severity", (*severity).to_owned())],
                            value: *value,
                        });
                    }
                }
                if c.text_lines > 0.0 {
                    points.push(GpuPoint {
                        def: &catalog::CONTAINER_LOG_TEXT_LINES,
                        attributes: Vec::new(),
                        value: c.text_lines,
                    });
                }
                if c.rate_limited > 0.0 {
                    points.push(GpuPoint {
                        def: &catalog::CONTAINER_LOG_RATE_LIMITED,
                        attributes: Vec::new(),
                        value: c.rate_limited,
                    });
                }
                for (direction, value) in [
                    ("prompt", c.prompt_tokens),
                    ("completion", c.completion_tokens),
                ] {
                    if value > 0.0 {
                        points.push(GpuPoint {
                            def: &catalog::CONTAINER_LOG_TOKENS,
                            attributes: vec![("direction", direction.to_owned())],
                            value,
                        });
                    }
                }
                ContainerGpuPoints {
                    identity: c.identity.clone(),
                    points,
                    read_at: None,
                }
            })
            .collect()
    }

    /// The latency and token distributions recorded since the last call.
    pub fn take_distributions(&mut self) -> Vec<LogDistribution> {
        let mut out = Vec::new();
        for c in self.containers.values_mut() {
            for (def, attributes, histogram) in [
                (&catalog::CONTAINER_LOG_LATENCY, Vec::new(), &mut c.latency),
                (
                    &catalog::CONTAINER_LOG_REQUEST_TOKENS,
                    vec![("direction", "prompt")],
                    &mut c.prompt_distribution,
                ),
                (
                    &catalog::CONTAINER_LOG_REQUEST_TOKENS,
                    vec![("direction", "completion")],
                    &mut c.completion_distribution,
                ),
            ] {
                if !histogram.is_empty() {
                    out.push(LogDistribution {
                        identity: c.identity.clone(),
                        def,
                        attributes,
                        histogram: std::mem::take(histogram),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::logs::cri::Stream;
    use crate::sources::logs::reassemble::Message;
    use crate::sources::logs::record::{FieldNames, record};

    #[test]
    fn counts_by_severity_tokens_and_latency() {
        let identity = ContainerIdentity {
            namespace: "ml".into(),
            pod: "chat-0".into(),
            container: "server".into(),
            pod_uid: "u".into(),
            ..ContainerIdentity::default()
        };
        let mut metrics = LogMetrics::default();
        for text in [
            r#"{"level":"info","msg":"ok","latency_ms":100,"prompt_tokens":10,"completion_tokens":5}"#,
            r#"{"level":"error","msg":"boom","latency_ms":300}"#,
            "plain text",
        ] {
            let message = Message {
                time: "2026-12-01T16:15:00Z".into(),
                stream: Stream::Stdout,
                text: text.as_bytes().to_vec(),
                truncated_bytes: 0,
                pieces: 1,
            };
            metrics.observe(
                &container_key(&identity),
                &identity,
                &record(&message, &FieldNames::default()),
                text.len(),
            );
        }
        let points = metrics.points();
        let value = |family: &str, label: &str| {
            points[0]
                .points
                .iter()
                .find(|p| p.def.full_name() == family && p.attributes[0].1 == label)
                .map(|p| p.value)
        };
        assert_eq!(value("tally_container_log_lines_total", "info"), Some(1.0));
        assert_eq!(value("tally_container_log_lines_total", "error"), Some(1.0));
        assert_eq!(
            value("tally_container_log_lines_total", "unknown"),
            Some(1.0)
        );
        assert_eq!(
            value("tally_container_log_message_bytes_total", "unknown"),
            Some(10.0)
        );
        assert_eq!(
            value("tally_container_log_reported_tokens_total", "prompt"),
            Some(10.0)
        );
        let text = metrics.points()[0]
            .points
            .iter()
            .find(|p| p.def.full_name() == "tally_container_log_text_lines_total")
            .map(|p| p.value);
        assert_eq!(text, Some(1.0), "the one plain-text message");
        metrics.rate_limited(&container_key(&identity), &identity, 7);
        let limited = metrics.points()[0]
            .points
            .iter()
            .find(|p| p.def.full_name() == "tally_container_log_rate_limited_lines_total")
            .map(|p| p.value);
        assert_eq!(limited, Some(7.0));
        let taken = metrics.take_distributions();
        let latency = taken
            .iter()
            .find(|d| d.def.full_name() == "tally_container_log_latency_seconds")
            .expect("latency");
        assert_eq!(latency.histogram.count(), 2);
        assert!((latency.histogram.sum() - 0.4).abs() < 1e-9);
        let prompt = taken
            .iter()
            .find(|d| d.attributes == [("direction", "prompt")])
            .expect("prompt tokens");
        assert_eq!(prompt.histogram.sum(), 10.0);
        assert!(metrics.take_distributions().is_empty(), "taken once");
    }
}
