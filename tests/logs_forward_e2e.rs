//! Collector log storage and forwarding end to end, over real loopback
//! HTTP between two real `tally collector` processes: the first forwards
//! every accepted log request to the second (a tally collector is an OTLP
//! receiver). The second stops and comes back; every record must arrive
//! there exactly once. The first is then SIGKILLed and restarted: its
//! records must still be queryable, once each, from its segment files.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// Records `from..to`, each with a `seq` attribute; every third an error.
fn request(from: u64, to: u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    text("k8s.namespace.name", "ml"),
                    text("k8s.pod.name", "chat-0"),
                    text("k8s.container.name", "server"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (from..to)
                    .map(|seq| LogRecord {
                        time_unix_nano: now + seq,
                        severity_text: if seq % 3 == 0 { "ERROR" } else { "INFO" }.to_owned(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "request {seq} done"
                            ))),
                        }),
                        attributes: vec![text("seq", &seq.to_string())],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// POSTs protobuf logs; returns the status.
fn post_logs(port: u16, body: &[u8]) -> u16 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// How often each `seq` is stored at `port`, with the raw records.
fn stored(port: u16, query: &str) -> (BTreeMap<u64, u32>, Vec<Value>) {
    let (status, body) = common::http_get(&format!(
        "http://127.0.0.1:{port}/api/v1/logs?limit=10000{query}"
    ))
    .expect("logs");
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    let records = answer["records"].as_array().cloned().unwrap_or_default();
    let mut seen = BTreeMap::new();
    for record in &records {
        let seq = record["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|pair| pair[0] == "seq")
            .and_then(|pair| pair[1].as_str())
            .and_then(|s| s.parse().ok());
        if let Some(seq) = seq {
            *seen.entry(seq).or_insert(0) += 1;
        }
    }
    (seen, records)
}

fn metric(port: u16, line_start: &str) -> f64 {
    let (status, body) =
        common::http_get(&format!("http://127.0.0.1:{port}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {body}"))
}

/// Waits until `port` stores `count` distinct records; returns them.
fn wait_for(port: u16, count: usize, logs: &[&Path]) -> BTreeMap<u64, u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, _) = stored(port, "");
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} records arrived; logs: {}",
            seen.len(),
            logs.iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ready(port: u16, log: &Path) {
    assert!(
        common::wait_ready(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(20)
        ),
        "collector not ready; log: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn exactly_once(seen: &BTreeMap<u64, u32>, count: u64) {
    let expected: Vec<u64> = (0..count).collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "not exactly once: {doubled:?}");
}

#[test]
fn forwarded_logs_arrive_once_through_a_target_outage_and_stay_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (target_log, source_log) = (dir.path().join("target.log"), dir.path().join("source.log"));
    let logs = [target_log.as_path(), source_log.as_path()];
    let target_port = common::free_port();
    let target_data = dir.path().join("target");
    let mut target = common::start_collector(target_port, &target_data, &target_log);
    ready(target_port, &target_log);

    let source_port = common::free_port();
    let source_data = dir.path().join("source");
    let endpoint = format!("http://127.0.0.1:{target_port}");
    let source_env = [
        ("TALLY_COLLECTOR_LOGS_FORWARD_ENDPOINT", endpoint.as_str()),
        ("TALLY_COLLECTOR_LOGS_FORWARD_TIMEOUT", "2s"),
    ];
    let source =
        common::start_collector_with_env(source_port, &source_data, &source_log, &source_env);
    ready(source_port, &source_log);

    // Five requests of twenty records.
    for batch in 0..5 {
        assert_eq!(
            post_logs(source_port, &request(batch * 20, batch * 20 + 20)),
            200
        );
    }
    exactly_once(&wait_for(target_port, 100, &logs), 100);

    // The target goes away; ingest at the source goes on regardless.
    target.stop();
    for batch in 5..10 {
        assert_eq!(
            post_logs(source_port, &request(batch * 20, batch * 20 + 20)),
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        source_port,
        "tally_collector_log_forward_failures_total{kind=\"connection\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "no connection failure counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(source_port, "tally_collector_log_forward_queue_bytes") > 0.0);

    // Back on the same address: the queue drains, nothing twice.
    let mut target = common::start_collector(target_port, &target_data, &target_log);
    ready(target_port, &target_log);
    let seen = wait_for(target_port, 200, &logs);
    // A moment more, so a duplicate would have time to land.
    std::thread::sleep(Duration::from_millis(500));
    let (seen_later, _) = stored(target_port, "");
    assert_eq!(seen, seen_later);
    exactly_once(&seen, 200);
    assert_eq!(
        metric(source_port, "tally_collector_log_forward_records_total"),
        200.0
    );
    assert_eq!(
        metric(
            source_port,
            "tally_collector_log_forward_dropped_records_total{reason=\"queue_full\"}"
        ),
        0.0
    );
    assert_eq!(
        metric(source_port, "tally_collector_log_forward_queue_bytes"),
        0.0
    );
    target.stop();

    // The source is killed (no snapshot at shutdown) and restarted: its
    // records come from its segment files, once each.
    exactly_once(&stored(source_port, "").0, 200);
    drop(source);
    let source =
        common::start_collector_with_env(source_port, &source_data, &source_log, &source_env);
    ready(source_port, &source_log);
    let (seen, records) = stored(source_port, "");
    exactly_once(&seen, 200);
    assert_eq!(records[0]["body"], "request 0 done");
    assert_eq!(records[199]["body"], "request 199 done");
    assert!(metric(source_port, "tally_collector_log_bytes") > 0.0);
    assert!(metric(source_port, "tally_collector_log_segments") >= 1.0);
    assert_eq!(metric(source_port, "tally_collector_log_records"), 200.0);
    // Every request was already in a segment: none replayed into them.
    assert_eq!(
        metric(source_port, "tally_collector_log_replay_skipped_requests"),
        10.0
    );
    // Filters, answered from disk.
    let (errors, _) = stored(source_port, "&severity=error&limit=5");
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        vec![186, 189, 192, 195, 198]
    );
    let (one, _) = stored(source_port, "&text=request%2042%20done&pod=chat-0");
    assert_eq!(one.keys().copied().collect::<Vec<_>>(), vec![42]);
    let (none, _) = stored(source_port, "&namespace=web");
    assert!(none.is_empty());
    let segments = std::fs::read_dir(source_data.join("logs"))
        .expect("segment dir")
        .count();
    assert!(segments >= 1);
    drop(source);
}
