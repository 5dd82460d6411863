//! Writes the seed corpus of `otlp_decode` (committed under
//! `fuzz/seeds/otlp_decode/`): small valid metrics and logs requests, every
//! data kind and attribute type, in each format and encoding, each file
//! prefixed with the header-selecting byte the target reads.
//!
//! `cd fuzz && cargo run --example seeds` (no sanitizer, no nightly).

use std::error::Error;
use std::io::Write as _;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value as Any,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point::Value as Number,
    summary_data_point::ValueAtQuantile,
};
use prost::Message;
use tally_schema::catalog;
use tally_schema::exphist::ExpHistogram;
use tally_schema::otlp;

/// One hour before the target's fixed "now" (2026-01-01T00:00:00Z).
const TIME_NS: u64 = 1_767_225_600_000_000_000 - 3_600_000_000_000;
const START_NS: u64 = TIME_NS - 60_000_000_000;

// The target's first byte: bits 0–1 content type, 2–3 encoding, 4 logs.
const PROTOBUF: u8 = 0;
const JSON: u8 = 2;
const JSON_CHARSET: u8 = 3;
const GZIP: u8 = 1 << 2;
const ZSTD: u8 = 2 << 2;
const LOGS: u8 = 1 << 4;

fn any(value: Any) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn attribute(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: any(value),
        ..Default::default()
    }
}

/// One attribute of every value type, nested ones included.
fn attributes() -> Vec<KeyValue> {
    vec![
        attribute("s", Any::StringValue("text".to_owned())),
        attribute("b", Any::BoolValue(true)),
        attribute("i", Any::IntValue(-7)),
        attribute("d", Any::DoubleValue(0.25)),
        attribute("x", Any::BytesValue(vec![0xde, 0xad])),
        attribute(
            "a",
            Any::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Any::IntValue(1)),
                }],
            }),
        ),
        attribute(
            "kv",
            Any::KvlistValue(KeyValueList {
                values: vec![attribute("k", Any::StringValue("v".to_owned()))],
            }),
        ),
    ]
}

fn metric(name: &str, data: Data) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

fn sum(monotonic: bool, temporality: AggregationTemporality, value: Number) -> Data {
    Data::Sum(Sum {
        data_points: vec![NumberDataPoint {
            attributes: attributes(),
            start_time_unix_nano: START_NS,
            time_unix_nano: TIME_NS,
            value: Some(value),
            ..Default::default()
        }],
        aggregation_temporality: temporality as i32,
        is_monotonic: monotonic,
    })
}

/// A batch shaped like the agent's plus one metric of every other kind.
fn metrics() -> ExportMetricsServiceRequest {
    let mut sketch = ExpHistogram::default();
    for value in [0.0, 0.5, 3.0, 1e6] {
        sketch.record_n(value, 2);
    }
    let mut exp_point = otlp::exp_histogram_point(attributes(), START_NS, TIME_NS, &sketch);
    exp_point.negative = Some(Buckets {
        offset: -2,
        bucket_counts: vec![1, 0, 3],
    });
    let node = otlp::resource([
        ("k8s.node.name", "node-a".to_owned()),
        ("service.name", "tally-agent".to_owned()),
    ]);
    let mut batch = otlp::resource_metrics(
        node,
        vec![
            otlp::gauge(
                &catalog::NODE_MEMORY_TOTAL,
                vec![otlp::number_point(vec![], START_NS, TIME_NS, 8e9)],
            ),
            otlp::exp_histogram(&catalog::CONTAINER_CPU_USAGE_SAMPLED, vec![exp_point]),
            metric(
                "cumulative_total",
                sum(true, AggregationTemporality::Cumulative, Number::AsInt(42)),
            ),
            metric(
                "delta_total",
                sum(true, AggregationTemporality::Delta, Number::AsDouble(1.5)),
            ),
            metric(
                "up_down",
                sum(false, AggregationTemporality::Cumulative, Number::AsInt(-3)),
            ),
            metric(
                "latency",
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: attributes(),
                        start_time_unix_nano: START_NS,
                        time_unix_nano: TIME_NS,
                        count: 6,
                        sum: Some(12.0),
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![1.0, 5.0],
                        min: Some(0.5),
                        max: Some(9.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            ),
            metric(
                "rpc",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        attributes: attributes(),
                        start_time_unix_nano: START_NS,
                        time_unix_nano: TIME_NS,
                        count: 10,
                        sum: 20.0,
                        quantile_values: vec![
                            ValueAtQuantile {
                                quantile: 0.5,
                                value: 1.0,
                            },
                            ValueAtQuantile {
                                quantile: 0.99,
                                value: 4.0,
                            },
                        ],
                        ..Default::default()
                    }],
                }),
            ),
        ],
        "0.1.0",
    );
    batch.schema_url = "https://opentelemetry.io/schemas/1.26.0".to_owned();
    ExportMetricsServiceRequest {
        resource_metrics: vec![batch],
    }
}

/// Points that overflowed the collector before the fuzz target existed
/// (see `collector/src/ingest/points.rs` tests), kept as a regression seed.
fn hostile_metrics() -> ExportMetricsServiceRequest {
    let exp = |scale, offset, counts: Vec<u64>, zero_count, negative: Vec<u64>| {
        ExponentialHistogramDataPoint {
            time_unix_nano: TIME_NS,
            count: 3,
            sum: Some(1.0),
            scale,
            zero_count,
            positive: Some(Buckets {
                offset,
                bucket_counts: counts,
            }),
            negative: Some(Buckets {
                offset: 0,
                bucket_counts: negative,
            }),
            ..Default::default()
        }
    };
    let points = vec![
        exp(100, 0, vec![1, 2], 0, vec![]),
        exp(0, i32::MAX, vec![1, 2], 0, vec![]),
        exp(20, i32::MIN, vec![1], 0, vec![]),
        exp(0, 0, vec![], u64::MAX, vec![u64::MAX, 1]),
        exp(-11, 0, vec![3], 0, vec![]),
    ];
    let wide = HistogramDataPoint {
        time_unix_nano: TIME_NS,
        count: 2,
        sum: Some(1.0),
        bucket_counts: vec![1, 1],
        explicit_bounds: vec![5e-324, 1e308],
        ..Default::default()
    };
    let metrics = vec![
        metric(
            "h",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        ),
        metric(
            "wide",
            Data::Histogram(Histogram {
                data_points: vec![wide],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![otlp::resource_metrics(Default::default(), metrics, "0")],
    }
}

fn logs() -> ExportLogsServiceRequest {
    let record = |body: Any| LogRecord {
        time_unix_nano: TIME_NS,
        observed_time_unix_nano: TIME_NS,
        severity_number: 9,
        severity_text: "INFO".to_owned(),
        body: any(body),
        attributes: attributes(),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(otlp::resource([("service.name", "shop".to_owned())])),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(Any::StringValue("order placed".to_owned())),
                    record(Any::KvlistValue(KeyValueList {
                        values: attributes(),
                    })),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body)?;
    Ok(encoder.finish()?)
}

fn zstd(body: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/otlp_decode");
    std::fs::create_dir_all(&dir)?;
    let (metrics, logs) = (metrics(), logs());
    let (metrics_protobuf, metrics_json) = (metrics.encode_to_vec(), serde_json::to_vec(&metrics)?);
    let (logs_protobuf, logs_json) = (logs.encode_to_vec(), serde_json::to_vec(&logs)?);
    let hostile = hostile_metrics().encode_to_vec();
    let seeds = [
        ("metrics-protobuf", PROTOBUF, &metrics_protobuf),
        ("metrics-protobuf-gzip", PROTOBUF | GZIP, &metrics_protobuf),
        ("metrics-protobuf-zstd", PROTOBUF | ZSTD, &metrics_protobuf),
        ("metrics-json", JSON, &metrics_json),
        ("metrics-json-gzip", JSON_CHARSET | GZIP, &metrics_json),
        ("logs-protobuf", LOGS | PROTOBUF, &logs_protobuf),
        ("logs-protobuf-gzip", LOGS | PROTOBUF | GZIP, &logs_protobuf),
        ("logs-json", LOGS | JSON, &logs_json),
        ("logs-json-zstd", LOGS | JSON | ZSTD, &logs_json),
        ("regress-histograms", PROTOBUF, &hostile),
    ];
    for (name, selector, body) in seeds {
        let mut bytes = vec![selector];
        match selector & (3 << 2) {
            GZIP => bytes.extend(gzip(body)?),
            ZSTD => bytes.extend(zstd(body)),
            _ => bytes.extend_from_slice(body),
        }
        std::fs::write(dir.join(name), &bytes)?;
        println!("{name}: {} bytes", bytes.len());
    }
    Ok(())
}
