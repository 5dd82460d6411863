//! Flattening OTLP metrics into samples the store understands, rejecting
//! (and counting, with a reason) points the store must not keep.
//!
//! A series is identified by the metric name plus the resource and
//! data-point attributes. Gauges, sums (delta or cumulative), explicit
//! histograms, exponential histograms and summaries are accepted.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::sync::Arc;

use tally_schema::exphist::ExpHistogram;

use crate::store::{LabelSet, Labels};

/// What one sample carries.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    /// A point-in-time value.
    Gauge(f64),
    /// An increment since the previous point.
    Delta(f64),
    /// A running total since `start_ns` (converted to deltas by the store).
    Cumulative {
        /// The total.
        value: f64,
        /// When the total started counting.
        start_ns: u64,
    },
    /// A distribution (histograms of any kind become this).
    Distribution(Box<ExpHistogram>),
}

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (shared by the metric's points).
    pub metric: Arc<str>,
    /// Resource plus point attributes, sorted by key (shared by the points
    /// of a resource that carry no attributes of their own).
    pub labels: Labels,
    /// Observation time.
    pub time_ns: u64,
    /// The value.
    pub value: SampleValue,
}

/// The result of flattening one request.
#[derive(Debug, Default)]
pub struct Flattened {
    /// Accepted samples.
    pub samples: Vec<Sample>,
    /// Points refused.
    pub rejected: u64,
    /// Distinct reasons for refusals (for the partial-success message).
    pub reasons: Vec<String>,
}

impl Flattened {
    fn reject(&mut self, count: u64, reason: String) {
        self.rejected += count;
        if !self.reasons.contains(&reason) && self.reasons.len() < 8 {
            self.reasons.push(reason);
        }
    }
}

/// Limits on acceptable timestamps.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindow {
    /// Oldest acceptable time (now − retention).
    pub oldest_ns: u64,
    /// Newest acceptable time (now + allowed clock skew).
    pub newest_ns: u64,
}

/// Renders an attribute value as a label value.
pub fn attribute_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| attribute_text(Some(v))).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|kv| format!("{}={}", kv.key, attribute_text(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => String::new(),
    }
}

/// A resource's attributes (none when the request has no resource).
pub fn resource_attributes(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map(|r| r.attributes.as_slice()).unwrap_or(&[])
}

/// The label set of one resource, built once and shared by its points.
fn resource_labels(resource: &[KeyValue]) -> Labels {
    Arc::new(LabelSet::new(
        resource
            .iter()
            .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref())))
            .collect(),
    ))
}

/// The labels of a point: its resource's set when it has no attributes of
/// its own (the common case: no allocation), else a set in which point
/// attributes win over resource attributes of the same key, sharing the
/// resource's strings.
fn labels_of(resource: &Labels, point: &[KeyValue], extra: Option<(&str, String)>) -> Labels {
    if point.is_empty() && extra.is_none() {
        return Arc::clone(resource);
    }
    let own = extra
        .map(|(k, v)| (k.to_owned(), v))
        .into_iter()
        .chain(
            point
                .iter()
                .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref()))),
        )
        .collect();
    Arc::new(LabelSet::over(own, resource))
}

fn number(value: Option<&number_data_point::Value>) -> Option<f64> {
    match value? {
        number_data_point::Value::AsDouble(d) => Some(*d),
        number_data_point::Value::AsInt(i) => Some(*i as f64),
    }
}

/// Flattens a request, validating every point.
pub fn flatten(request: &ExportMetricsServiceRequest, window: TimeWindow) -> Flattened {
    let mut out = Flattened::default();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_labels(resource_attributes(resource_metrics.resource.as_ref()));
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                if metric.name.is_empty() {
                    out.reject(
                        tally_schema::otlp::points_in(metric).max(1) as u64,
                        "metric without a name".to_owned(),
                    );
                    continue;
                }
                flatten_metric(&mut out, metric, &resource, window);
            }
        }
    }
    out
}

fn check_time(out: &mut Flattened, metric: &str, time_ns: u64, window: TimeWindow) -> bool {
    if time_ns == 0 {
        out.reject(1, format!("{metric}: point without a timestamp"));
        false
    } else if time_ns < window.oldest_ns {
        out.reject(
            1,
            format!("{metric}: timestamp older than the retention window"),
        );
        false
    } else if time_ns > window.newest_ns {
        out.reject(1, format!("{metric}: timestamp in the future"));
        false
    } else {
        true
    }
}

fn flatten_metric(
    out: &mut Flattened,
    metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
    resource: &Labels,
    window: TimeWindow,
) {
    let name = &metric.name;
    let shared_name: Arc<str> = Arc::from(name.as_str());
    let push = |out: &mut Flattened, labels: Labels, time_ns: u64, value: SampleValue| {
        out.samples.push(Sample {
            metric: Arc::clone(&shared_name),
            labels,
            time_ns,
            value,
        });
    };
    match &metric.data {
        Some(Data::Gauge(gauge)) => {
            for p in &gauge.data_points {
                if !check_time(out, name, p.time_unix_nano, window) {
                    continue;
                }
                match number(p.value.as_ref()) {
                    Some(v) if v.is_finite() => push(
                        out,
                        labels_of(resource, &p.attributes, None),
                        p.time_unix_nano,
                        SampleValue::Gauge(v),
                    ),
                    _ => out.reject(1, format!("{name}: NaN, infinite or missing value")),
                }
            }
        }
        Some(Data::Sum(sum)) => {
            let cumulative =
                sum.aggregation_temporality == AggregationTemporality::Cumulative as i32;
            for p in &sum.data_points {
                if !check_time(out, name, p.time_unix_nano, window) {
                    continue;
                }
                let Some(v) = number(p.value.as_ref()).filter(|v| v.is_finite()) else {
                    out.reject(1, format!("{name}: NaN, infinite or missing value"));
                    continue;
                };
                let value = if !sum.is_monotonic {
                    // A non-monotonic sum (an up-down counter) is a level.
                    SampleValue::Gauge(v)
                } else if cumulative {
                    SampleValue::Cumulative {
                        value: v,
                        start_ns: p.start_time_unix_nano,
                    }
                } else {
                    SampleValue::Delta(v)
                };
                push(
                    out,
                    labels_of(resource, &p.attributes, None),
                    p.time_unix_nano,
                    value,
                );
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                if !check_time(out, name, p.time_unix_nano, window) {
                    continue;
                }
                if !p.sum.unwrap_or(0.0).is_finite() {
                    out.reject(1, format!("{name}: NaN or infinite sum"));
                    continue;
                }
                // Coarser scales cannot be mapped onto the sketch's buckets
                // (-10 already puts every double in three buckets).
                if p.scale < -10 {
                    out.reject(1, format!("{name}: exponential histogram scale below -10"));
                    continue;
                }
                let positive = p.positive.as_ref();
                // Counts are untrusted: saturate rather than overflow.
                let negative = p
                    .negative
                    .as_ref()
                    .map(|n| {
                        n.bucket_counts
                            .iter()
                            .fold(0u64, |a, c| a.saturating_add(*c))
                    })
                    .unwrap_or(0);
                let mut sketch = ExpHistogram::default();
                sketch.merge_parts(&tally_schema::exphist::Parts {
                    scale: p.scale,
                    offset: positive.map(|b| b.offset).unwrap_or(0),
                    counts: positive.map(|b| b.bucket_counts.as_slice()).unwrap_or(&[]),
                    // Tally's quantities are not negative; values below zero
                    // are folded into the zero bucket rather than dropped.
                    zero_count: p.zero_count.saturating_add(negative),
                    count: p.count,
                    sum: p.sum.unwrap_or(0.0),
                    min: p.min.filter(|m| m.is_finite()),
                    max: p.max.filter(|m| m.is_finite()),
                });
                let value = SampleValue::Distribution(Box::new(sketch));
                push(
                    out,
                    labels_of(resource, &p.attributes, None),
                    p.time_unix_nano,
                    value,
                );
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                if !check_time(out, name, p.time_unix_nano, window) {
                    continue;
                }
                if !p.sum.unwrap_or(0.0).is_finite()
                    || p.explicit_bounds.iter().any(|b| !b.is_finite())
                {
                    out.reject(1, format!("{name}: NaN or infinite sum or bound"));
                    continue;
                }
                // Each bucket's count is recorded at its upper bound (the
                // first at its bound, the overflow bucket at the max or the
                // last bound), the same estimate histogram_quantile makes.
                let mut sketch = ExpHistogram::default();
                for (i, count) in p.bucket_counts.iter().enumerate() {
                    let mut at = p
                        .explicit_bounds
                        .get(i)
                        .copied()
                        .or(p.max)
                        .or(p.explicit_bounds.last().copied())
                        .unwrap_or(0.0);
                    // The observed extremes are exact; never estimate past them.
                    if let Some(max) = p.max.filter(|m| m.is_finite()) {
                        at = at.min(max);
                    }
                    if let Some(min) = p.min.filter(|m| m.is_finite()) {
                        at = at.max(min);
                    }
                    sketch.record_n(at, *count);
                }
                push(
                    out,
                    labels_of(resource, &p.attributes, None),
                    p.time_unix_nano,
                    SampleValue::Distribution(Box::new(sketch)),
                );
            }
        }
        Some(Data::Summary(summary)) => {
            for p in &summary.data_points {
                if !check_time(out, name, p.time_unix_nano, window) {
                    continue;
                }
                let labels = labels_of(resource, &p.attributes, None);
                for q in &p.quantile_values {
                    if q.value.is_finite() {
                        let labels = labels_of(
                            resource,
                            &p.attributes,
                            Some(("quantile", q.quantile.to_string())),
                        );
                        push(out, labels, p.time_unix_nano, SampleValue::Gauge(q.value));
                    }
                }
                if p.sum.is_finite() {
                    out.samples.push(Sample {
                        metric: Arc::from(format!("{name}_sum")),
                        labels: Arc::clone(&labels),
                        time_ns: p.time_unix_nano,
                        value: SampleValue::Cumulative {
                            value: p.sum,
                            start_ns: p.start_time_unix_nano,
                        },
                    });
                }
                out.samples.push(Sample {
                    metric: Arc::from(format!("{name}_count")),
                    labels,
                    time_ns: p.time_unix_nano,
                    value: SampleValue::Cumulative {
                        value: p.count as f64,
                        start_ns: p.start_time_unix_nano,
                    },
                });
            }
        }
        None => out.reject(1, format!("{name}: metric without data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode;
    use crate::store::{Store, StoreLimits};

    const HOUR_NS: u64 = 3_600_000_000_000;
    const NOW_NS: u64 = 1_767_225_600_000_000_000;
    const WINDOW: TimeWindow = TimeWindow {
        oldest_ns: NOW_NS - 24 * HOUR_NS,
        newest_ns: NOW_NS + HOUR_NS,
    };

    /// Decodes an OTLP/JSON body with one metric (`data` is its data field)
    /// and flattens it, as the server does.
    fn flatten_json(data: &str) -> Flattened {
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"h",{data}}}]}}]}}]}}"#
        );
        let decoded = decode::body::<ExportMetricsServiceRequest>(
            Some("application/json"),
            None,
            body.as_bytes(),
            1 << 20,
        )
        .expect("valid OTLP/JSON");
        flatten(&decoded.request, WINDOW)
    }

    fn exp_histogram(point: &str) -> String {
        format!(
            r#""exponentialHistogram":{{"aggregationTemporality":1,"dataPoints":[{{"timeUnixNano":"{NOW_NS}","count":"3","sum":1.0,{point}}}]}}"#
        )
    }

    /// Hostile points found while writing the fuzz target
    /// (`fuzz/fuzz_targets/otlp_decode.rs`): each overflowed in flattening
    /// or in the sketch (a panic under overflow checks), and the offset near
    /// `i32::MAX` was a "capacity overflow" panic even without them, which
    /// aborts the release collector (`panic = "abort"`).
    #[test]
    fn hostile_exponential_histograms_are_flattened_without_overflow() {
        let points = [
            r#""scale":100,"positive":{"offset":0,"bucketCounts":["1","2"]}"#,
            r#""scale":0,"positive":{"offset":2147483647,"bucketCounts":["1","2"]}"#,
            r#""scale":20,"positive":{"offset":-2147483648,"bucketCounts":["1"]}"#,
            r#""scale":0,"zeroCount":"18446744073709551615","negative":{"bucketCounts":["18446744073709551615","1"]}"#,
        ];
        let mut store = Store::new(StoreLimits {
            retention_ns: 24 * HOUR_NS,
            raw_window_ns: HOUR_NS,
            raw_points: 10,
            log_records: 10,
            max_series: 100,
        });
        for point in points {
            let flattened = flatten_json(&exp_histogram(point));
            assert_eq!((flattened.samples.len(), flattened.rejected), (1, 0));
            // Twice: the second merges into the first's hourly sketch.
            for sample in flattened.samples {
                store.apply(sample.clone());
                store.apply(sample);
            }
        }
        let coarse = flatten_json(&exp_histogram(
            r#""scale":-11,"positive":{"offset":0,"bucketCounts":["3"]}"#,
        ));
        assert!(coarse.samples.is_empty());
        assert_eq!(coarse.reasons, ["h: exponential histogram scale below -10"]);
    }

    /// Bounds at both ends of the doubles are further apart, in buckets at
    /// scale 20, than an `i32` holds.
    #[test]
    fn explicit_histogram_spanning_every_double() {
        let flattened = flatten_json(&format!(
            r#""histogram":{{"aggregationTemporality":1,"dataPoints":[{{"timeUnixNano":"{NOW_NS}","count":"2","sum":1.0,"bucketCounts":["1","1"],"explicitBounds":[5e-324,1e308]}}]}}"#
        ));
        let [sample] = flattened.samples.as_slice() else {
            panic!("one sample: {flattened:?}");
        };
        let SampleValue::Distribution(sketch) = &sample.value else {
            panic!("a distribution: {sample:?}");
        };
        assert_eq!(sketch.count(), 2);
    }
}
