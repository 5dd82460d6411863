//! Arbitrary bytes through the collector's OTLP/HTTP ingest, as the server
//! runs it minus the HTTP layer: `decode::body` (content type, bounded
//! decompression, protobuf or JSON), flattening, and the store.
//!
//! The first byte picks the headers, the rest is the body:
//! bits 0–1 the `Content-Type` (protobuf, its alias, JSON, JSON with a
//! charset), bits 2–3 the `Content-Encoding` (none, gzip, zstd, identity),
//! bit 4 the signal (metrics, logs). The other bits are ignored.
//!
//! Besides "no panic", it checks what the write-ahead log relies on: a JSON
//! request is stored re-encoded as protobuf, and that must decode again to
//! the same samples or log records on replay.

#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde::de::DeserializeOwned;
use tally_collector::ingest::decode::{self, Format};
use tally_collector::ingest::{logs, points};
use tally_collector::store::{SharedInterner, Store, StoreLimits};

const CONTENT_TYPES: [&str; 4] = [
    "application/x-protobuf",
    "application/protobuf",
    "application/json",
    "application/json; charset=utf-8",
];
const ENCODINGS: [Option<&str>; 4] = [None, Some("gzip"), Some("zstd"), Some("identity")];

/// Smaller than the server's 16 MiB default so a decompression bomb costs
/// milliseconds, not a second; the limit's code path is the same.
const LIMIT: usize = 1 << 20;

const HOUR_NS: u64 = 3_600_000_000_000;
/// A fixed "now" (2026-01-01T00:00:00Z), so a crash reproduces any day;
/// the seeds' timestamps sit just before it.
const NOW_NS: u64 = 1_767_225_600_000_000_000;
/// The server's window: retention (14 days) back, clock skew (1 h) ahead.
const WINDOW: points::TimeWindow = points::TimeWindow {
    oldest_ns: NOW_NS - 14 * 24 * HOUR_NS,
    newest_ns: NOW_NS + HOUR_NS,
};

fn store() -> Store {
    Store::new(StoreLimits {
        retention_ns: 14 * 24 * HOUR_NS,
        raw_window_ns: 6 * HOUR_NS,
        raw_points: 1440,
        log_records: 10_000,
        max_series: 100_000,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = Some(CONTENT_TYPES[usize::from(selector & 3)]);
    let encoding = ENCODINGS[usize::from((selector >> 2) & 3)];
    if selector & 0x10 == 0 {
        ingest_metrics(content_type, encoding, body);
    } else {
        ingest_logs(content_type, encoding, body);
    }
});

/// The request, when the body decodes as the server would accept it.
fn decoded<T: Message + Default + DeserializeOwned>(
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
) -> Option<(Format, T)> {
    let decoded = decode::body::<T>(content_type, encoding, body, LIMIT).ok()?;
    Some((decoded.format, decoded.request))
}

/// What WAL replay reads back for a request accepted as JSON (the server
/// stores it re-encoded as protobuf).
fn replayed<T: Message + Default>(request: &T) -> T {
    T::decode(request.encode_to_vec().as_slice())
        .unwrap_or_else(|e| panic!("an accepted JSON request does not replay from the WAL: {e}"))
}

fn ingest_metrics(content_type: Option<&str>, encoding: Option<&str>, body: &[u8]) {
    let Ok(encoded) = decode::metrics_body(content_type, encoding, body, LIMIT) else {
        return;
    };
    let mut store = store();
    let Ok(flattened) = points::flatten(&encoded.protobuf, WINDOW, &store.interner()) else {
        return;
    };
    // The in-place walk must read what prost reads: where prost decodes
    // the bytes too, flattening its decoding (fresh interner, re-encoded,
    // which is also what the log keeps for a JSON request) gives the same
    // samples.
    if let Ok(request) = ExportMetricsServiceRequest::decode(encoded.protobuf.as_slice()) {
        let again = points::flatten_request(&request, WINDOW, &SharedInterner::default());
        assert!(
            again.samples == flattened.samples && again.rejected == flattened.rejected,
            "the walk and prost flatten differently"
        );
    }
    for sample in flattened.samples {
        store.apply(sample);
    }
}

fn ingest_logs(content_type: Option<&str>, encoding: Option<&str>, body: &[u8]) {
    let Some((format, request)) = decoded::<ExportLogsServiceRequest>(content_type, encoding, body)
    else {
        return;
    };
    let records = logs::flatten(&request);
    if format == Format::Json {
        assert!(
            logs::flatten(&replayed(&request)) == records,
            "replayed logs flatten differently"
        );
    }
    let mut store = store();
    for record in records {
        store.push_log(record);
    }
}
