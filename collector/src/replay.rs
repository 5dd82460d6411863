//! Replaying the write-ahead log on start: records are decoded and
//! flattened on all cores in batches, then applied in log order, so the
//! store ends exactly as a one-by-one replay would leave it.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

use crate::ingest::points::{self, Flattened, TimeWindow};
use crate::store::wal::{RecordKind, WalPosition};
use crate::store::{SharedInterner, Store};

/// Records decoded together before they are applied.
const BATCH: usize = 64;

/// A record ready to apply.
enum Ready {
    Metrics(Flattened),
    Logs(ExportLogsServiceRequest, WalPosition),
    /// A record that no longer decodes (it did when it was accepted).
    Unreadable,
}

fn prepare(
    kind: RecordKind,
    payload: &[u8],
    at: WalPosition,
    window: TimeWindow,
    interner: &SharedInterner,
) -> Ready {
    match kind {
        RecordKind::Metrics => points::flatten(payload, window, interner)
            .map(Ready::Metrics)
            .unwrap_or(Ready::Unreadable),
        RecordKind::Logs => ExportLogsServiceRequest::decode(payload)
            .map(|request| Ready::Logs(request, at))
            .unwrap_or(Ready::Unreadable),
    }
}

/// Collects log records and applies them in batches.
pub struct Replay<'a> {
    store: &'a mut Store,
    interner: SharedInterner,
    window: TimeWindow,
    pending: Vec<(RecordKind, Vec<u8>, WalPosition)>,
    apply_metrics: fn(&mut Store, Flattened) -> u64,
    apply_logs: fn(&mut Store, &ExportLogsServiceRequest, Option<WalPosition>),
    /// Records that did not decode.
    pub unreadable: u64,
    /// Log requests skipped because the log segments hold them.
    pub logs_skipped: u64,
}

impl<'a> Replay<'a> {
    /// A replay into `store`, applying with the ingest path's functions.
    pub fn new(
        store: &'a mut Store,
        window: TimeWindow,
        apply_metrics: fn(&mut Store, Flattened) -> u64,
        apply_logs: fn(&mut Store, &ExportLogsServiceRequest, Option<WalPosition>),
    ) -> Self {
        Self {
            interner: store.interner(),
            store,
            window,
            pending: Vec::with_capacity(BATCH),
            apply_metrics,
            apply_logs,
            unreadable: 0,
            logs_skipped: 0,
        }
    }

    /// Queues one record (at `at` in the log); a full batch is applied.
    /// Log records the log segments already hold are skipped.
    pub fn push(&mut self, kind: RecordKind, payload: &[u8], at: WalPosition) {
        if kind == RecordKind::Logs && self.store.logs_cover(at) {
            self.logs_skipped += 1;
            return;
        }
        self.pending.push((kind, payload.to_vec(), at));
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    /// Decodes the queued records on all cores and applies them in order.
    pub fn flush(&mut self) {
        let (window, interner) = (self.window, &self.interner);
        let ready = crate::parallel::map_on_cores(&self.pending, 1, |(kind, payload, at)| {
            prepare(*kind, payload, *at, window, interner)
        });
        self.pending.clear();
        for record in ready {
            match record {
                Ready::Metrics(flattened) => {
                    (self.apply_metrics)(self.store, flattened);
                }
                Ready::Logs(request, at) => (self.apply_logs)(self.store, &request, Some(at)),
                Ready::Unreadable => self.unreadable += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Stat, StoreLimits};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use tally_schema::catalog;
    use tally_schema::otlp;

    const HOUR_NS: u64 = 3_600_000_000_000;
    const T0: u64 = 1_800_000_000_000_000_000;

    fn store() -> Store {
        Store::new(StoreLimits {
            retention_ns: 48 * HOUR_NS,
            raw_window_ns: HOUR_NS,
            raw_points: 1000,
            log_records: 10,
            max_series: 1000,
        })
    }

    fn apply_metrics(store: &mut Store, f: Flattened) -> u64 {
        f.samples
            .into_iter()
            .filter(|s| !store.apply(s.clone()))
            .count() as u64
    }

    fn apply_logs(_: &mut Store, _: &ExportLogsServiceRequest, _: Option<WalPosition>) {}

    /// A cumulative counter's deltas depend on record order: a batched,
    /// multi-threaded replay must give what applying one by one gives.
    #[test]
    fn batched_replay_applies_in_log_order() {
        let window = TimeWindow {
            oldest_ns: 0,
            newest_ns: u64::MAX,
        };
        let records: Vec<Vec<u8>> = (0..200u64)
            .map(|i| {
                // Resets every 50 records.
                let value = (i % 50) as f64 * 3.0;
                let point =
                    otlp::number_point(vec![], T0 + (i / 50), T0 + i * 60_000_000_000, value);
                otlp::encode_metrics(&ExportMetricsServiceRequest {
                    resource_metrics: vec![otlp::resource_metrics(
                        otlp::resource([("service.name", "replay-test".to_owned())]),
                        vec![otlp::cumulative_sum(&catalog::NODE_CPU, vec![point])],
                        "test",
                    )],
                })
            })
            .collect();
        let mut batched = store();
        let mut replay = Replay::new(&mut batched, window, apply_metrics, apply_logs);
        for record in &records {
            replay.push(RecordKind::Metrics, record, WalPosition::default());
        }
        replay.push(
            RecordKind::Metrics,
            b"\xff\xff not protobuf",
            WalPosition::default(),
        );
        replay.flush();
        assert_eq!(replay.unreadable, 1);
        let mut serial = store();
        for record in &records {
            if let Ready::Metrics(flattened) = prepare(
                RecordKind::Metrics,
                record,
                WalPosition::default(),
                window,
                &serial.interner(),
            ) {
                apply_metrics(&mut serial, flattened);
            }
        }
        let metric = catalog::NODE_CPU.full_name();
        let answer = |store: &Store| {
            let series = store.select(&metric, &[]).next().expect("series");
            (
                store.stat(series, Stat::Increase, T0, T0 + 4 * HOUR_NS),
                series.latest(),
            )
        };
        assert_eq!(answer(&batched), answer(&serial));
        assert_eq!(batched.stats(), serial.stats());
        assert_eq!(batched.stats().resets, 3);
    }
}
