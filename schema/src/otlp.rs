//! OTLP encoding helpers shared by the agent (which builds requests) and
//! the collector (which decodes them).
//!
//! Metric names, units and help come from the [`crate::catalog`], so an OTLP
//! series and its Prometheus twin always agree.

use crate::catalog::MetricDef;
use crate::exphist::ExpHistogram;
use crate::semconv::{Instrument, SemconvName};
pub use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exponential_histogram_data_point::Buckets,
    metric::Data, number_data_point::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// Instrumentation scope name on every batch the agent sends.
pub const AGENT_SCOPE: &str = "tally-agent";

/// Errors decoding an OTLP payload.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The body is not a valid protobuf message of the expected type.
    #[error("malformed OTLP protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A string attribute.
pub fn string_attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The string value of attribute `key`, if present and a string.
pub fn find_string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// A resource from `(key, value)` pairs.
pub fn resource<K: AsRef<str>>(attributes: impl IntoIterator<Item = (K, String)>) -> Resource {
    Resource {
        attributes: attributes
            .into_iter()
            .map(|(k, v)| string_attribute(k.as_ref(), v))
            .collect(),
        ..Default::default()
    }
}

/// A data point of a gauge or sum.
pub fn number_point(
    attributes: Vec<KeyValue>,
    start_unix_nano: u64,
    time_unix_nano: u64,
    value: f64,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start_unix_nano,
        time_unix_nano,
        value: Some(Value::AsDouble(value)),
        ..Default::default()
    }
}

/// A gauge metric.
pub fn gauge(def: &MetricDef, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        def,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

/// A cumulative monotonic sum (a Prometheus counter).
pub fn cumulative_sum(def: &MetricDef, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        def,
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
    )
}

/// A metric under its semantic-convention name and instrument
/// ([`crate::semconv`]).
pub fn semconv_metric(name: &SemconvName, points: Vec<NumberDataPoint>) -> Metric {
    let sum = |data_points, is_monotonic| {
        Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic,
        })
    };
    let data = match name.instrument {
        Instrument::Gauge => Data::Gauge(Gauge {
            data_points: points,
        }),
        Instrument::Counter => sum(points, true),
        Instrument::UpDownCounter => sum(points, false),
    };
    Metric {
        name: name.name.to_owned(),
        description: name.def.help.to_owned(),
        unit: name.unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// A delta exponential-histogram data point from an [`ExpHistogram`].
pub fn exp_histogram_point(
    attributes: Vec<KeyValue>,
    start_unix_nano: u64,
    time_unix_nano: u64,
    histogram: &ExpHistogram,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        attributes,
        start_time_unix_nano: start_unix_nano,
        time_unix_nano,
        count: histogram.count(),
        sum: Some(histogram.sum()),
        scale: histogram.scale(),
        zero_count: histogram.zero_count(),
        positive: Some(Buckets {
            offset: histogram.offset(),
            bucket_counts: histogram.bucket_counts().to_vec(),
        }),
        negative: None,
        min: histogram.min(),
        max: histogram.max(),
        ..Default::default()
    }
}

/// A delta exponential-histogram metric.
pub fn exp_histogram(def: &MetricDef, points: Vec<ExponentialHistogramDataPoint>) -> Metric {
    metric(
        def,
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Delta as i32,
        }),
    )
}

fn metric(def: &MetricDef, data: Data) -> Metric {
    Metric {
        name: def.full_name(),
        description: def.help.to_owned(),
        unit: def.unit.ucum().to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// One resource's metrics under the agent's instrumentation scope.
pub fn resource_metrics(
    resource: Resource,
    metrics: Vec<Metric>,
    version: &str,
) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(resource),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: AGENT_SCOPE.to_owned(),
                version: version.to_owned(),
                ..Default::default()
            }),
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Encodes a request as OTLP/HTTP protobuf.
pub fn encode_metrics(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// Decodes an OTLP/HTTP protobuf metrics request.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, OtlpError> {
    Ok(ExportMetricsServiceRequest::decode(body)?)
}

/// Decodes an OTLP/HTTP protobuf metrics response (for partial success).
pub fn decode_metrics_response(body: &[u8]) -> Result<ExportMetricsServiceResponse, OtlpError> {
    Ok(ExportMetricsServiceResponse::decode(body)?)
}

/// Counts the data points in a request (for partial-success accounting).
pub fn count_points(request: &ExportMetricsServiceRequest) -> usize {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(points_in)
        .sum()
}

/// The data points of one metric.
pub fn points_in(metric: &Metric) -> usize {
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn round_trip_keeps_names_units_and_histograms() {
        let mut h = ExpHistogram::default();
        for v in [0.1, 0.2, 0.4] {
            h.record(v);
        }
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![resource_metrics(
                resource([("k8s.pod.uid", "u1".to_owned())]),
                vec![
                    cumulative_sum(
                        &catalog::CONTAINER_CPU_USAGE,
                        vec![number_point(vec![], 1, 2, 3.5)],
                    ),
                    exp_histogram(
                        &catalog::CONTAINER_CPU_USAGE_SAMPLED,
                        vec![exp_histogram_point(vec![], 1, 2, &h)],
                    ),
                ],
                "0.1.0",
            )],
        };
        let decoded = decode_metrics(&encode_metrics(&request)).expect("decodes");
        assert_eq!(decoded, request);
        assert_eq!(count_points(&decoded), 2);
        let rm = &decoded.resource_metrics[0];
        let attrs = &rm.resource.as_ref().expect("resource").attributes;
        assert_eq!(find_string(attrs, "k8s.pod.uid"), Some("u1"));
        let metric = &rm.scope_metrics[0].metrics[0];
        assert_eq!(metric.name, "tally_container_cpu_usage_seconds_total");
        assert_eq!(metric.unit, "s");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode_metrics(&[0xff, 0xff, 0xff]).is_err());
    }
}
