//! The simulated fleet as its agents' `/metrics` pages would show it: one
//! Prometheus text page holding every node's series under the agent's
//! names and labels (`node`, `namespace`, `pod`, `workload_kind`, …), so
//! a real Prometheus can scrape `tally simulate --listen` and the
//! dashboards and alert rules see what they will see on a real cluster.
//!
//! Families the agent keeps off its page (OTLP-only distributions) are
//! left out, as the agent leaves them out; labels a family does not
//! declare in the catalog are dropped, as the agent never writes them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric::Data, number_data_point};
use tally_schema::catalog::{self, Exposure, MetricDef, MetricKind};
use tally_schema::identity;

use crate::analysis::metrics::escape;

/// The agent's label for a resource attribute, where the two differ.
fn label_of_attribute(key: &str) -> Option<&'static str> {
    Some(match key {
        "k8s.node.name" => "node",
        "k8s.namespace.name" => "namespace",
        "k8s.pod.name" => "pod",
        "k8s.pod.uid" => "pod_uid",
        "k8s.container.name" => "container",
        "container.id" => "container_id",
        _ => return None,
    })
}

fn string_pairs(attributes: &[KeyValue]) -> impl Iterator<Item = (&str, &str)> {
    attributes.iter().filter_map(
        |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some((kv.key.as_str(), s.as_str())),
            _ => None,
        },
    )
}

/// A resource's attributes as the agent's labels.
fn resource_labels(attributes: &[KeyValue]) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    for (key, value) in string_pairs(attributes) {
        if let Some(label) = label_of_attribute(key) {
            labels.insert(label.to_owned(), value.to_owned());
        } else if let Some(kind) = identity::WORKLOAD_KINDS
            .iter()
            .find(|kind| identity::workload_attribute(kind) == Some(key))
        {
            labels.insert("workload_kind".to_owned(), (*kind).to_owned());
            labels.insert("workload_name".to_owned(), value.to_owned());
        }
    }
    labels
}

fn value_of(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => 0.0,
    }
}

/// Renders one batch of the fleet as the agents' pages, families grouped
/// (each with its `# HELP` and `# TYPE`).
pub fn render(request: &ExportMetricsServiceRequest) -> String {
    let catalog: HashMap<String, &'static MetricDef> = catalog::CATALOG
        .iter()
        .map(|def| (def.full_name(), def))
        .collect();
    let mut families: BTreeMap<String, (&'static MetricDef, Vec<String>)> = BTreeMap::new();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_labels(
            resource_metrics
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default(),
        );
        for metric in resource_metrics
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
        {
            let Some(&def) = catalog.get(&metric.name) else {
                continue;
            };
            if def.exposure != Exposure::Both {
                continue;
            }
            let points = match &metric.data {
                Some(Data::Gauge(gauge)) => &gauge.data_points,
                Some(Data::Sum(sum)) => &sum.data_points,
                _ => continue,
            };
            let lines = &mut families
                .entry(metric.name.clone())
                .or_insert_with(|| (def, Vec::new()))
                .1;
            for point in points {
                let own: HashMap<&str, &str> = string_pairs(&point.attributes).collect();
                let labels: Vec<String> = def
                    .labels
                    .iter()
                    .filter_map(|label| {
                        let value = own
                            .get(label)
                            .copied()
                            .or_else(|| resource.get(*label).map(String::as_str))?;
                        (!value.is_empty()).then(|| format!("{label}=\"{}\"", escape(value)))
                    })
                    .collect();
                lines.push(format!(
                    "{}{{{}}} {}",
                    metric.name,
                    labels.join(","),
                    value_of(point)
                ));
            }
        }
    }
    let mut page = String::new();
    for (name, (def, lines)) in &families {
        let kind = match def.kind {
            MetricKind::Counter => "counter",
            _ => "gauge",
        };
        let _ = writeln!(page, "# HELP {name} {}\n# TYPE {name} {kind}", def.help);
        for line in lines {
            page.push_str(line);
            page.push('\n');
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Fleet;

    #[test]
    fn the_fleet_renders_under_the_agents_names_and_labels() {
        let mut fleet = Fleet::new(3, 7, 1_000);
        let batch = fleet.step(1_000 + 15_000_000_000, std::time::Duration::from_secs(15));
        let page = render(&batch);
        // Container series carry the agent's identity labels, never an
        // OTLP attribute name.
        let oom = page
            .lines()
            .find(|line| line.starts_with("tally_container_memory_oom_kills_total{"))
            .expect("OOM counter");
        for label in [
            "node=",
            "namespace=",
            "pod=",
            "container=",
            "workload_kind=",
        ] {
            assert!(oom.contains(label), "{label} missing: {oom}");
        }
        assert!(!page.contains("k8s_"), "OTLP attribute names leaked");
        // GPU families keep their device labels; OTLP-only distributions
        // stay off the page, as on the agent's.
        assert!(
            page.lines()
                .any(|line| line.starts_with("tally_gpu_utilization_ratio{")
                    && line.contains("gpu_uuid=")),
            "no GPU utilization"
        );
        assert!(!page.contains("tally_model_time_to_first_token_seconds"));
        // One TYPE line per family, before its series.
        let types = page.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let names: std::collections::BTreeSet<&str> = page
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split('{').next())
            .collect();
        assert_eq!(types, names.len());
        assert!(page.contains("# TYPE tally_container_memory_oom_kills_total counter"));
    }
}
