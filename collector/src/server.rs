//! The collector's HTTP surface: OTLP/HTTP ingest, the JSON API, its own
//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use prost::Message;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::api;
use crate::forward::{ForwardError, ForwardOptions, Forwarder};
use crate::ingest::decode::{self, DecodeError, Decoded, EncodedMetrics, Format};
use crate::ingest::logs;
use crate::ingest::points::{self, TimeWindow};
use crate::store::log_segments::{ErrorKind, LogFilter, LogSegmentError, LogSegments};
use crate::store::snapshot::{self, SnapshotError};
use crate::store::wal::{RecordKind, Wal, WalError, WalPosition};
use crate::store::{AgentSeen, LogRecord, Stat, Store, StoreLimits};

/// Allowed clock skew for points from the future.
const FUTURE_SKEW_NS: u64 = 3_600_000_000_000;

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Address for OTLP ingest, the API and `/metrics`.
    pub listen: String,
    /// Where the write-ahead log lives.
    pub data_dir: PathBuf,
    /// Largest accepted body, compressed or not.
    pub max_body_bytes: usize,
    /// How long aggregates are kept.
    pub retention: Duration,
    /// How long raw points are kept.
    pub raw_window: Duration,
    /// Most bytes of log records kept.
    pub logs_max_bytes: u64,
    /// How long log records are kept.
    pub logs_retention: Duration,
    /// Forward every accepted log request to another OTLP backend.
    pub logs_forward: Option<ForwardOptions>,
    /// Bearer token required on ingest (and on reads without a read token).
    pub token: Option<String>,
    /// Bearer token required on API reads.
    pub read_token: Option<String>,
    /// Allow a non-loopback address without a token.
    pub insecure: bool,
    /// Time between store snapshots (also written on shutdown).
    pub snapshot_interval: Duration,
    /// History sealed since the last snapshot that starts the next one
    /// early (or an eighth of the last snapshot, if larger).
    pub snapshot_hot_bytes: usize,
    /// Decompressed request bytes being decoded, logged and applied at
    /// once; beyond it requests get 429 with `Retry-After`.
    pub max_inflight_bytes: usize,
    /// Most series the store holds; points of new series beyond it are
    /// refused (partial success) so a cardinality explosion cannot exhaust
    /// memory.
    pub max_series: usize,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The analyzer's settings.
    pub analyzer: tally_analyzer::config::AnalyzerConfig,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4318".to_owned(),
            data_dir: PathBuf::from("/var/lib/tally/collector"),
            max_body_bytes: 16 << 20,
            retention: Duration::from_secs(14 * 86_400),
            raw_window: Duration::from_secs(6 * 3600),
            logs_max_bytes: 1 << 30,
            logs_retention: Duration::from_secs(24 * 3600),
            logs_forward: None,
            token: None,
            read_token: None,
            insecure: false,
            snapshot_interval: Duration::from_secs(300),
            snapshot_hot_bytes: 32 << 20,
            max_inflight_bytes: 256 << 20,
            max_series: 5_000_000,
            tls: None,
            analyzer: tally_analyzer::config::AnalyzerConfig::default(),
        }
    }
}

/// Why the collector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// Bad address.
    #[error("listen address {0:?} is not HOST:PORT with a numeric IP")]
    Address(String),
    /// Refusing to expose an unauthenticated endpoint.
    #[error(
        "refusing to listen on {0} without a token: set --token-file (or TALLY_COLLECTOR_TOKEN), or pass --insecure"
    )]
    Unauthenticated(String),
    /// The WAL could not be opened.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A snapshot could not be written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The log segments could not be opened or synced.
    #[error(transparent)]
    LogSegments(#[from] LogSegmentError),
    /// The log forwarding settings are unusable.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The analyzer's settings or prices are unusable.
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
struct Counters {
    requests_ok: AtomicU64,
    requests_partial: AtomicU64,
    requests_rejected: AtomicU64,
    points_rejected: AtomicU64,
    wal_errors: AtomicU64,
    wal_truncated_bytes: AtomicU64,
    replayed_records: AtomicU64,
    replay_logs_skipped: AtomicU64,
    snapshots: AtomicU64,
    snapshot_errors: AtomicU64,
    snapshot_bytes: AtomicU64,
    snapshot_micros: AtomicU64,
    snapshot_lock_micros: AtomicU64,
    recovery_micros: AtomicU64,
    requests_throttled: AtomicU64,
}

/// Shared state of a running collector.
#[derive(Debug)]
pub struct Collector {
    options: CollectorOptions,
    /// Store and WAL under one lock so replay order equals apply order.
    inner: Mutex<(Wal, Store)>,
    /// Held while a snapshot is taken.
    snapshot_serial: Mutex<()>,
    /// Writes to the store, run one after another on the store's thread.
    store_jobs: std::sync::mpsc::Sender<StoreJob>,
    /// The store's interner, used by flattening outside the lock.
    interner: crate::store::SharedInterner,
    counters: Counters,
    ready: AtomicBool,
    /// Admission budget in KiB of decompressed request bodies.
    inflight: Arc<tokio::sync::Semaphore>,
    /// Set when serving HTTPS.
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_handshake_failures: Arc<AtomicU64>,
    /// The analyzer and its newest report.
    analysis: crate::analysis::Analysis,
    /// Forwards accepted log requests, when `logs_forward` is set.
    forwarder: Option<Arc<Forwarder>>,
    /// The store's size estimate and when it was taken: it walks every
    /// series (0.1 s at 440,000), too much for each status read.
    bytes_estimate: Mutex<Option<(std::time::Instant, usize)>>,
    /// Set while a background estimate runs.
    bytes_estimating: AtomicBool,
}

/// How old the store's size estimate on `/api/v1/status` and `/metrics`
/// may be.
const BYTES_ESTIMATE_AGE: Duration = Duration::from_secs(10);

/// A write to the store (log append and apply) for the store's thread.
type StoreJob = Box<dyn FnOnce() + Send>;

/// Starts the thread that runs every write to the store. Writes serialize
/// on the store's lock anyway; running them on one thread keeps the
/// store's long-lived allocations in one malloc arena. On the blocking
/// pool, a burst of requests spread them over a thread (and glibc arena)
/// each, and every arena kept its own free memory: at 100 simulated
/// nodes that was a third of the collector's resident size.
fn start_store_thread() -> Result<std::sync::mpsc::Sender<StoreJob>, std::io::Error> {
    let (jobs, queue) = std::sync::mpsc::channel::<StoreJob>();
    std::thread::Builder::new()
        .name("tally-store".into())
        .spawn(move || {
            // Ends when the collector, which holds the sender, is dropped.
            while let Ok(job) = queue.recv() {
                // A panic (a bug; release builds abort) fails that request
                // with a 503 and leaves the thread serving the next.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
    Ok(jobs)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Collector {
    /// Opens the store, replaying the write-ahead log.
    pub fn open(options: CollectorOptions) -> Result<Arc<Collector>, CollectorError> {
        // Before recovery's large buffers, so they go back when freed.
        crate::memory::fix_allocator_thresholds();
        let addr: SocketAddr = options
            .listen
            .parse()
            .map_err(|_| CollectorError::Address(options.listen.clone()))?;
        if options.token.is_none() && !addr.ip().is_loopback() && !options.insecure {
            return Err(CollectorError::Unauthenticated(options.listen.clone()));
        }
        if options.token.is_none() {
            tracing::warn!(listen = %options.listen, "no ingest token configured; anyone who can reach this address can write");
        }
        let limits = StoreLimits {
            retention_ns: options.retention.as_nanos() as u64,
            raw_window_ns: options.raw_window.as_nanos() as u64,
            raw_points: 1440,
            // Only for records loaded from a snapshot written before log
            // segments existed: the store keeps logs on disk.
            log_records: 100_000,
            max_series: options.max_series,
        };
        // Unusable certificates fail the start, not the first client.
        let tls = match &options.tls {
            Some((cert, key)) => Some(crate::tls::server_config(cert, key)?),
            None => None,
        };
        // Bad analyzer settings or prices fail the start, before recovery.
        let analysis = crate::analysis::Analysis::new(options.analyzer.clone())?;
        let forwarder = match &options.logs_forward {
            Some(forward) => {
                let forwarder = Forwarder::new(forward)?;
                forwarder.check_not_self(addr)?;
                Some(Arc::new(forwarder))
            }
            None => None,
        };
        let started = std::time::Instant::now();
        let counters = Counters::default();
        std::fs::create_dir_all(&options.data_dir).map_err(|source| {
            CollectorError::Wal(WalError::Io {
                path: options.data_dir.clone(),
                source,
            })
        })?;
        // The snapshot, then the log written since it.
        let (mut store, wal_seq) = match snapshot::read(&options.data_dir, limits) {
            Ok(Some(loaded)) => (loaded.store, loaded.wal_seq),
            Ok(None) => (Store::new(limits), 0),
            Err(error) => {
                // Keep the damaged file for inspection; replay what the log
                // still holds rather than refusing to start.
                counters.snapshot_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "cannot load the store snapshot; starting from the write-ahead log alone");
                let path = options.data_dir.join(snapshot::FILE_NAME);
                let _ = std::fs::rename(&path, path.with_extension("bin.corrupt"));
                (Store::new(limits), 0)
            }
        };
        store.set_log_limits(
            options.logs_max_bytes,
            options.logs_retention.as_nanos() as u64,
        );
        // Log records live in segment files; replay appends only the log
        // requests the segments do not already hold (see log_segments).
        let segments = LogSegments::open(
            &options.data_dir.join("logs"),
            options.logs_max_bytes,
            options.logs_retention.as_nanos() as u64,
            now_ns(),
        )?;
        let logs_covered = segments.covered();
        store.attach_log_segments(segments);
        let window = TimeWindow {
            oldest_ns: now_ns().saturating_sub(limits.retention_ns),
            newest_ns: u64::MAX,
        };
        let mut replay =
            crate::replay::Replay::new(&mut store, window, apply_flattened, apply_logs);
        let (mut wal, recovery) = Wal::open_positioned(
            &options.data_dir.join("wal"),
            options.retention,
            wal_seq,
            |kind, payload, at| replay.push(kind, payload, at),
        )?;
        replay.flush();
        let logs_skipped = replay.logs_skipped;
        // New positions must be past what the segments cover, even if the
        // log directory was lost while the segments were not.
        if let Some(covered) = logs_covered {
            wal.roll_past(covered.seq)?;
        }
        if replay.unreadable > 0 {
            tracing::warn!(
                records = replay.unreadable,
                "write-ahead log records that no longer decode were skipped"
            );
        }
        let recovery_micros = started.elapsed().as_micros() as u64;
        tracing::info!(
            records = recovery.records,
            truncated_bytes = recovery.truncated_bytes,
            series = store.series_count(),
            from_snapshot = wal_seq > 0,
            seconds = recovery_micros as f64 / 1e6,
            "store recovered"
        );
        counters
            .wal_truncated_bytes
            .store(recovery.truncated_bytes, Ordering::Relaxed);
        counters
            .replayed_records
            .store(recovery.records, Ordering::Relaxed);
        counters
            .replay_logs_skipped
            .store(logs_skipped, Ordering::Relaxed);
        counters
            .recovery_micros
            .store(recovery_micros, Ordering::Relaxed);
        Ok(Arc::new(Collector {
            interner: store.interner(),
            inner: Mutex::new((wal, store)),
            snapshot_serial: Mutex::new(()),
            store_jobs: start_store_thread().map_err(|source| {
                CollectorError::Wal(WalError::Io {
                    path: options.data_dir.clone(),
                    source,
                })
            })?,
            inflight: Arc::new(tokio::sync::Semaphore::new(
                (options.max_inflight_bytes / 1024).max(1),
            )),
            options,
            counters,
            ready: AtomicBool::new(true),
            tls,
            tls_handshake_failures: Arc::new(AtomicU64::new(0)),
            analysis,
            forwarder,
            bytes_estimate: Mutex::new(None),
            bytes_estimating: AtomicBool::new(false),
        }))
    }

    /// The store's size estimate. Only the first is computed while the
    /// caller waits; after that the cached one is served and, once older
    /// than [`BYTES_ESTIMATE_AGE`], recomputed in the background, so a
    /// status read never waits for a walk of every series.
    fn store_bytes_estimate(self: &Arc<Self>) -> usize {
        let cached = *self
            .bytes_estimate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let measure = |collector: &Collector| {
            let bytes = collector.with_store(|s| s.estimated_bytes());
            *collector
                .bytes_estimate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((std::time::Instant::now(), bytes));
            bytes
        };
        match cached {
            None => measure(self),
            Some((at, bytes)) => {
                if at.elapsed() >= BYTES_ESTIMATE_AGE
                    && !self.bytes_estimating.swap(true, Ordering::AcqRel)
                {
                    let collector = Arc::clone(self);
                    tokio::task::spawn_blocking(move || {
                        measure(&collector);
                        collector.bytes_estimating.store(false, Ordering::Release);
                    });
                }
                bytes
            }
        }
    }

    /// The analyzer.
    pub fn analysis(&self) -> &crate::analysis::Analysis {
        &self.analysis
    }

    /// Runs an analysis now: the store is held for the extraction only.
    pub fn analyze(
        &self,
    ) -> Result<Arc<crate::analysis::Finished>, tally_analyzer::recommend::AnalyzeError> {
        self.analysis
            .run(|extract| self.with_store(|store| extract(store)))
    }

    /// Writes a snapshot of the store and deletes the log it covers. The
    /// lock is held while the file is written (to the page cache) and its
    /// history adopted as cold; fsync and rename happen while ingest goes
    /// on. Returns the file's size.
    pub fn snapshot(&self) -> Result<u64, CollectorError> {
        let started = std::time::Instant::now();
        // One at a time: each reads the history the previous one wrote.
        let _one_at_a_time = self
            .snapshot_serial
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let result = (|| {
            let (seq, pending) = {
                let mut guard = self.lock();
                let locked = std::time::Instant::now();
                let (wal, store) = &mut *guard;
                let seq = wal.roll_for_snapshot()?;
                // Written and adopted under the lock, so the history the
                // store reads from the new file is exactly what it holds.
                let pending = snapshot::write(store, &self.options.data_dir, seq)?;
                self.counters
                    .snapshot_lock_micros
                    .store(locked.elapsed().as_micros() as u64, Ordering::Relaxed);
                (seq, pending)
            };
            let len = pending.commit()?;
            {
                // The log segments must hold the log records before the
                // write-ahead log that also holds them goes.
                let mut guard = self.lock();
                let (wal, store) = &mut *guard;
                store.sync_logs()?;
                wal.remove_before(seq)?;
            }
            // The history just made cold was freed under the lock.
            crate::memory::release_free_memory();
            Ok::<u64, CollectorError>(len)
        })();
        match &result {
            Ok(bytes) => {
                self.counters.snapshots.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .snapshot_bytes
                    .store(*bytes, Ordering::Relaxed);
                self.counters
                    .snapshot_micros
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters
                    .snapshot_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "store snapshot failed; the write-ahead log keeps everything");
            }
        }
        result
    }

    /// True when the history sealed since the last snapshot has outgrown
    /// its budget: `snapshot_hot_bytes`, or an eighth of the last snapshot
    /// if larger (a snapshot rewrites the whole file, so a large store
    /// must not take one for every few megabytes). The next snapshot
    /// should not wait.
    pub fn hot_history_over_budget(&self) -> bool {
        let last_snapshot = self.counters.snapshot_bytes.load(Ordering::Relaxed) as usize;
        let budget = self.options.snapshot_hot_bytes.max(last_snapshot / 8);
        self.with_store(|s| s.hot().carved_bytes()) > budget
    }

    /// Seconds the newest snapshot held the store's lock.
    pub fn snapshot_lock_seconds(&self) -> f64 {
        self.counters.snapshot_lock_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn lock(&self) -> MutexGuard<'_, (Wal, Store)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the store closure under the lock.
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.lock().1)
    }
}

/// Applies samples already flattened (and validated) from a request;
/// returns how many were refused by the series limit.
fn apply_flattened(store: &mut Store, mut flattened: points::Flattened) -> u64 {
    let last_point_ns = flattened
        .samples
        .iter()
        .map(|s| s.time_ns)
        .max()
        .unwrap_or(0);
    // One entry per pushing process: the node resource of an agent batch,
    // or any SDK resource; container and pod resources are what it
    // reports on.
    for pusher in flattened.pushers.drain(..) {
        let find = |key: &str| pusher.labels.get(key).map(str::to_owned);
        store.saw_agent(AgentSeen {
            service: find("service.name").unwrap_or_default(),
            node: find("k8s.node.name")
                .or_else(|| find("host.name"))
                .unwrap_or_default(),
            version: pusher.scope_version,
            last_push_ns: now_ns(),
            last_point_ns,
            batches: 0,
            simulated: find("tally.simulated").as_deref() == Some("true"),
        });
    }
    let mut refused = 0;
    for sample in flattened.samples.drain(..) {
        if !store.apply(sample) {
            refused += 1;
        }
    }
    refused
}

fn apply_logs(store: &mut Store, request: &ExportLogsServiceRequest, at: Option<WalPosition>) {
    store.push_logs(logs::flatten(request), at);
}

/// Constant-time comparison of bearer tokens.
fn token_matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    difference == 0
}

pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// The router.
pub fn router(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/v1/metrics", post(ingest_metrics))
        .route("/v1/logs", post(ingest_logs))
        .route("/api/v1/status", get(api_status))
        .route("/api/v1/agents", get(api_agents))
        .route("/api/v1/metrics", get(api_metric_names))
        .route("/api/v1/series", get(api_series))
        .route("/api/v1/query", get(api_query))
        .route("/api/v1/containers", get(api_containers))
        .route("/api/v1/nodes", get(api_nodes))
        .route("/api/v1/workloads", api::route(api::workloads::view))
        .route("/api/v1/gpus", api::route(api::gpus::view))
        .route("/api/v1/models", api::route(api::models::view))
        .route("/api/v1/egress", api::route(api::egress::view))
        .route("/api/v1/topology", api::route(api::topology::view))
        .route("/api/v1/logs", get(api_logs))
        .route(
            "/api/v1/recommendations",
            get(crate::analysis::api::recommendations),
        )
        .route("/api/v1/costs", get(crate::analysis::api::costs))
        .route("/api/v1/analyze", post(crate::analysis::api::analyze))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(own_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(collector)
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    collector: Arc<Collector>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), CollectorError> {
    let addr = collector.options.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| CollectorError::Serve {
            addr: addr.clone(),
            source,
        })?;
    let scheme = if collector.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(listen = %addr, scheme, "collector listening (OTLP/HTTP /v1/metrics, /v1/logs; API /api/v1)");
    if let Some(forwarder) = &collector.forwarder {
        tokio::spawn(Arc::clone(forwarder).run(shutdown.clone()));
    }
    // Series of pods long gone leave the store once outside retention.
    let expiring = Arc::clone(&collector);
    let mut expiry_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut expiry = tokio::time::interval(Duration::from_secs(60));
        let interval = expiring
            .options
            .snapshot_interval
            .max(Duration::from_secs(1));
        let mut snapshots =
            tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        // A backfill can seal more history in a minute than the budget.
        let mut hot_check = tokio::time::interval(Duration::from_secs(1));
        let mut analyses = tokio::time::interval(expiring.analysis.interval());
        analyses.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = expiry.tick() => {
                    let gone = expiring.lock().1.expire(now_ns());
                    if gone > 0 {
                        tracing::debug!(series = gone, "expired idle series");
                    }
                }
                _ = snapshots.tick() => {
                    let collector = Arc::clone(&expiring);
                    // Errors are counted and logged inside.
                    let _ = tokio::task::spawn_blocking(move || collector.snapshot()).await;
                }
                _ = analyses.tick() => {
                    let collector = Arc::clone(&expiring);
                    // Errors are counted and logged inside.
                    let _ = tokio::task::spawn_blocking(move || collector.analyze()).await;
                }
                _ = hot_check.tick() => {
                    if expiring.hot_history_over_budget() {
                        tracing::debug!("history sealed since the last snapshot is over budget; snapshotting early");
                        let collector = Arc::clone(&expiring);
                        let _ = tokio::task::spawn_blocking(move || collector.snapshot()).await;
                        snapshots.reset();
                    }
                }
                // The guard `wait_for` returns is not `Send`: drop it here.
                _ = async { let _ = expiry_shutdown.wait_for(|stop| *stop).await; } => break,
            }
        }
    });
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let app = router(Arc::clone(&collector));
    let served = match &collector.tls {
        Some(config) => {
            let listener = crate::tls::TlsListener::new(
                listener,
                Arc::clone(config),
                Arc::clone(&collector.tls_handshake_failures),
            )
            .map_err(|source| CollectorError::Serve {
                addr: addr.clone(),
                source,
            })?;
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
    .map_err(|source| CollectorError::Serve { addr, source });
    // A clean stop leaves a fresh snapshot, so the next start is fast.
    let stopping = Arc::clone(&collector);
    let _ = tokio::task::spawn_blocking(move || stopping.snapshot()).await;
    served
}

struct Refusal {
    status: StatusCode,
    message: String,
}

impl From<DecodeError> for Refusal {
    fn from(error: DecodeError) -> Self {
        Refusal {
            status: StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            message: error.to_string(),
        }
    }
}

fn refuse(collector: &Collector, refusal: Refusal) -> Response {
    collector
        .counters
        .requests_rejected
        .fetch_add(1, Ordering::Relaxed);
    (
        refusal.status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", refusal.message),
    )
        .into_response()
}

/// Decodes an ingest body: (content type, content encoding, body, limit).
type BodyDecoder<D> = fn(Option<&str>, Option<&str>, &[u8], usize) -> Result<D, DecodeError>;

/// The common front of both ingest routes: auth, the bounded body read,
/// then decompression and decoding by the wire format (`decode`), and
/// admission by the decoded size (`size`).
async fn accept<D>(
    collector: &Collector,
    headers: &HeaderMap,
    body: Body,
    decode: BodyDecoder<D>,
    size: fn(&D) -> usize,
) -> Result<(D, tokio::sync::OwnedSemaphorePermit), Box<Response>> {
    if let Some(token) = &collector.options.token
        && !token_matches(headers, token)
    {
        return Err(Box::new(unauthorized()));
    }
    let body = read_body(collector, body)
        .await
        .map_err(|refusal| Box::new(refuse(collector, refusal)))?;
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let decoded = decode(
        header_text(header::CONTENT_TYPE),
        header_text(header::CONTENT_ENCODING),
        &body,
        collector.options.max_body_bytes,
    )
    .map_err(|error| Box::new(refuse(collector, error.into())))?;
    let permit = admit(collector, size(&decoded))?;
    Ok((decoded, permit))
}

/// Backpressure: a request is admitted only while the decompressed bytes
/// in flight stay within budget; otherwise 429 with `Retry-After`, which
/// OTLP exporters (ours included) honour. Nothing was acknowledged.
fn admit(
    collector: &Collector,
    bytes: usize,
) -> Result<tokio::sync::OwnedSemaphorePermit, Box<Response>> {
    let budget = (collector.options.max_inflight_bytes / 1024).max(1);
    let cost = bytes.div_ceil(1024).clamp(1, budget) as u32;
    Arc::clone(&collector.inflight)
        .try_acquire_many_owned(cost)
        .map_err(|_| {
            collector
                .counters
                .requests_throttled
                .fetch_add(1, Ordering::Relaxed);
            Box::new(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "collector busy: too many bytes in flight; retry after 1 s\n",
                )
                    .into_response(),
            )
        })
}

/// Reads the body, stopping (413) as soon as it passes the limit, so a
/// hostile client cannot make the collector buffer more than that.
async fn read_body(collector: &Collector, body: Body) -> Result<Bytes, Refusal> {
    let limit = collector.options.max_body_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body exceeds the {limit}-byte limit (or was cut off)"),
        })
}

fn respond<M: Message + serde::Serialize>(format: Format, message: &M) -> Response {
    match format {
        Format::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_value(message)
                .map(|mut value| {
                    int64_as_strings(&mut value);
                    value.to_string().into_bytes()
                })
                .unwrap_or_default(),
        )
            .into_response(),
    }
}

/// OTLP/JSON follows the protobuf JSON mapping: 64-bit integers are
/// decimal strings. The response's only such fields are the rejected
/// counts of a partial success.
fn int64_as_strings(value: &mut Value) {
    if let Some(partial) = value
        .get_mut("partialSuccess")
        .and_then(Value::as_object_mut)
    {
        for key in ["rejectedDataPoints", "rejectedLogRecords"] {
            if let Some(number) = partial.get(key).and_then(Value::as_i64) {
                partial.insert(key.to_owned(), Value::String(number.to_string()));
            }
        }
    }
}

/// Appends to the WAL (fsync) and applies, on the store's thread.
async fn commit<T: Send + 'static>(
    collector: &Arc<Collector>,
    kind: RecordKind,
    payload: impl AsRef<[u8]> + Send + 'static,
    apply: impl FnOnce(&mut Store, WalPosition) -> T + Send + 'static,
) -> Result<T, Response> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let writer = Arc::clone(collector);
    let job: StoreJob = Box::new(move || {
        let collector = writer;
        let mut guard = collector.lock();
        let (wal, store) = &mut *guard;
        let result = match wal.append(kind, payload.as_ref()) {
            Ok(at) => Ok(apply(store, at)),
            Err(error) => {
                collector
                    .counters
                    .wal_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "cannot write the write-ahead log; refusing data");
                Err(())
            }
        };
        drop(guard);
        let _ = reply.send(result);
    });
    let joined = match collector.store_jobs.send(job) {
        Ok(()) => answer.await,
        Err(_) => Ok(Err(())),
    };
    match joined {
        Ok(Ok(value)) => Ok(value),
        // The client retries 503s; nothing was acknowledged.
        _ => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "store unavailable\n",
        )
            .into_response()),
    }
}

async fn ingest_metrics(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (encoded, _admitted) = match accept(
        &collector,
        &headers,
        body,
        decode::metrics_body,
        |encoded| encoded.protobuf.len(),
    )
    .await
    {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let EncodedMetrics { format, protobuf } = encoded;
    let now = now_ns();
    let window = TimeWindow {
        oldest_ns: now.saturating_sub(collector.options.retention.as_nanos() as u64),
        newest_ns: now + FUTURE_SKEW_NS,
    };
    // Validate before writing anything, so a request that is malformed or
    // entirely invalid leaves no trace in the log.
    let check = match points::flatten(&protobuf, window, &collector.interner) {
        Ok(check) => check,
        Err(error) => return refuse(&collector, DecodeError::from(error).into()),
    };
    if check.samples.is_empty() && check.rejected > 0 {
        return refuse(
            &collector,
            Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!("no valid data points: {}", check.reasons.join("; ")),
            },
        );
    }
    let (mut rejected, mut reasons) = (check.rejected, check.reasons.clone());
    // Apply the samples validated above: flattening once, not twice.
    let result = commit(
        &collector,
        RecordKind::Metrics,
        protobuf,
        move |store, _| apply_flattened(store, check),
    )
    .await;
    match result {
        Err(response) => return response,
        Ok(0) => {}
        Ok(refused) => {
            rejected += refused;
            reasons.push(format!(
                "series limit of {} reached: points of new series refused",
                collector.options.max_series
            ));
        }
    }
    let partial_success = (rejected > 0).then(|| {
        collector
            .counters
            .requests_partial
            .fetch_add(1, Ordering::Relaxed);
        collector
            .counters
            .points_rejected
            .fetch_add(rejected, Ordering::Relaxed);
        ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message: reasons.join("; "),
        }
    });
    if partial_success.is_none() {
        collector
            .counters
            .requests_ok
            .fetch_add(1, Ordering::Relaxed);
    }
    respond(format, &ExportMetricsServiceResponse { partial_success })
}

async fn ingest_logs(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (decoded, _admitted) = match accept(
        &collector,
        &headers,
        body,
        decode::body::<ExportLogsServiceRequest>,
        |decoded| decoded.raw.len(),
    )
    .await
    {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let Decoded {
        format,
        raw,
        request,
    } = decoded;
    let payload = Bytes::from(match format {
        Format::Protobuf => raw,
        Format::Json => request.encode_to_vec(),
    });
    let records: u64 = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum();
    if let Err(response) = commit(
        &collector,
        RecordKind::Logs,
        payload.clone(),
        move |store, at| apply_logs(store, &request, Some(at)),
    )
    .await
    {
        return response;
    }
    // Acknowledged: forwarding happens later, and never fails ingest.
    if let Some(forwarder) = &collector.forwarder {
        forwarder.enqueue(payload, records);
    }
    collector
        .counters
        .requests_ok
        .fetch_add(1, Ordering::Relaxed);
    let partial_success: Option<ExportLogsPartialSuccess> = None;
    respond(format, &ExportLogsServiceResponse { partial_success })
}

pub(crate) fn read_allowed(collector: &Collector, headers: &HeaderMap) -> bool {
    match (&collector.options.read_token, &collector.options.token) {
        (Some(read), _) => token_matches(headers, read),
        (None, Some(write)) => token_matches(headers, write),
        (None, None) => true,
    }
}

macro_rules! guard_read {
    ($collector:expr, $headers:expr) => {
        if !read_allowed(&$collector, &$headers) {
            return unauthorized();
        }
    };
}

/// `14d`, `6h`, `30m`, `45s`.
pub fn parse_window(text: &str) -> Option<Duration> {
    if !text.is_ascii() {
        return None;
    }
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

pub(crate) fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// The `window` parameter (default 1h) as (text, from ns, to ns = now).
pub(crate) fn window_param(
    params: &std::collections::HashMap<String, String>,
) -> Result<(&str, u64, u64), String> {
    let text = params.get("window").map(String::as_str).unwrap_or("1h");
    let window =
        parse_window(text).ok_or_else(|| format!("bad window {text:?}: use e.g. 30m, 6h, 14d"))?;
    let to = now_ns();
    Ok((text, to.saturating_sub(window.as_nanos() as u64), to))
}

/// Label matchers from `label.<key>=<value>` query parameters.
fn matchers(params: &std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("label.").map(|k| (k.to_owned(), v.clone())))
        .collect();
    found.sort();
    found
}

async fn api_status(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    guard_read!(collector, headers);
    let bytes = collector.store_bytes_estimate();
    let (series, stats) = collector.with_store(|s| (s.series_count(), s.stats()));
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "series": series,
        "store_bytes_estimate": bytes,
        "samples": stats.samples,
        "log_records": stats.log_records,
        "analyzer": analyzer_status(&collector),
    }))
    .into_response()
}

/// The analyzer's part of `/api/v1/status`.
fn analyzer_status(collector: &Collector) -> Value {
    let (runs, errors) = collector.analysis.counts();
    match collector.analysis.latest() {
        Some(finished) => json!({
            "status": "ok",
            "runs": runs,
            "errors": errors,
            "last_run_ns": finished.at_ns,
            "recommendations": finished.report.recommendations.len(),
            "monthly_cost": finished.report.totals.monthly_cost,
            "monthly_savings": finished.report.totals.monthly_savings,
        }),
        None => json!({ "status": "pending", "runs": runs, "errors": errors }),
    }
}

async fn api_agents(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    guard_read!(collector, headers);
    let now = now_ns();
    let agents: Vec<Value> = collector.with_store(|s| {
        s.agents()
            .map(|a| {
                json!({
                    "service": a.service, "node": a.node, "version": a.version,
                    "batches": a.batches, "simulated": a.simulated,
                    "last_push_seconds_ago": (now.saturating_sub(a.last_push_ns)) as f64 / 1e9,
                    "lag_seconds": (a.last_push_ns.saturating_sub(a.last_point_ns)) as f64 / 1e9,
                })
            })
            .collect()
    });
    axum::Json(json!({ "agents": agents })).into_response()
}

async fn api_metric_names(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    guard_read!(collector, headers);
    let names: Value = collector.with_store(|s| json!(s.metrics()));
    axum::Json(json!({ "metrics": names })).into_response()
}

async fn api_series(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    guard_read!(collector, headers);
    let Some(metric) = params.get("metric").filter(|m| !m.is_empty()) else {
        return bad_request("the metric parameter is required".to_owned());
    };
    let matchers = matchers(&params);
    let series: Vec<Value> = collector.with_store(|s| {
        s.select(metric, &matchers)
            .map(|series| {
                json!({
                    "labels": series.labels().iter().collect::<std::collections::BTreeMap<_, _>>(),
                    "kind": series.kind,
                    "latest": series.latest(),
                    "points": s.recent_points(series).into_iter().map(|(t, v)| json!([t as f64 / 1e9, v])).collect::<Vec<_>>(),
                })
            })
            .collect()
    });
    axum::Json(json!({ "metric": metric, "series": series })).into_response()
}

async fn api_query(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    guard_read!(collector, headers);
    let Some(metric) = params.get("metric").filter(|m| !m.is_empty()) else {
        return bad_request("the metric parameter is required".to_owned());
    };
    let stat_text = params.get("stat").map(String::as_str).unwrap_or("max");
    let Some(stat) = Stat::parse(stat_text) else {
        return bad_request(format!(
            "unknown stat {stat_text:?}: use p<0-100>, max, min, avg, increase or rate"
        ));
    };
    let (window_text, from, to) = match window_param(&params) {
        Ok(window) => window,
        Err(message) => return bad_request(message),
    };
    let matchers = matchers(&params);
    let results: Vec<Value> = collector.with_store(|s| {
        let selected: Vec<_> = s.select(metric, &matchers).collect();
        let values = s.stat_all(&selected, stat, from, to);
        selected
            .iter()
            .zip(values)
            .filter_map(|(series, value)| {
                value.map(|value| {
                    json!({
                        "labels": series.labels().iter().collect::<std::collections::BTreeMap<_, _>>(),
                        "value": value,
                    })
                })
            })
            .collect()
    });
    axum::Json(
        json!({ "metric": metric, "stat": stat_text, "window": window_text, "results": results }),
    )
    .into_response()
}

async fn api_containers(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    guard_read!(collector, headers);
    let (window_text, from, to) = match window_param(&params) {
        Ok(window) => window,
        Err(message) => return bad_request(message),
    };
    let containers: Vec<Value> = collector.with_store(|s| {
        let mut rows = std::collections::BTreeMap::new();
        for series in s.select("tally_container_memory_working_set_bytes", &[]) {
            let Some(id) = series.label("container.id") else {
                continue;
            };
            let label = |k: &str| series.label(k).unwrap_or("").to_owned();
            rows.insert(
                id.to_owned(),
                json!({
                    "container_id": id,
                    "node": label("k8s.node.name"),
                    "namespace": label("k8s.namespace.name"),
                    "pod": label("k8s.pod.name"),
                    "container": label("k8s.container.name"),
                    "pod_uid": label("k8s.pod.uid"),
                    "runtime": label("container.runtime"),
                    "simulated": series.label("tally.simulated") == Some("true"),
                    "working_set_bytes": series.latest(),
                    "working_set_bytes_max": s.stat(series, Stat::Max, from, to),
                }),
            );
        }
        let by_id = |metric: &'static str| {
            s.select(metric, &[])
                .filter_map(|series| {
                    series
                        .label("container.id")
                        .map(|id| (id.to_owned(), series))
                })
                .collect::<std::collections::HashMap<_, _>>()
        };
        let cpu = by_id("tally_container_cpu_usage_seconds_total");
        let sampled = by_id("tally_container_cpu_usage_sampled_cores");
        for (id, row) in rows.iter_mut() {
            if let Some(series) = cpu.get(id) {
                row["cpu_cores"] = json!(series.latest_rate());
            }
            if let Some(series) = sampled.get(id) {
                row["cpu_cores_p95"] = json!(s.stat(series, Stat::Quantile(0.95), from, to));
                row["cpu_cores_max"] = json!(s.stat(series, Stat::Max, from, to));
            }
        }
        rows.into_values().collect()
    });
    axum::Json(json!({ "window": window_text, "containers": containers })).into_response()
}

async fn api_nodes(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    guard_read!(collector, headers);
    let nodes: Vec<Value> = collector.with_store(|s| {
        let cpus: std::collections::HashMap<String, Option<f64>> = s
            .select("tally_node_cpus", &[])
            .filter_map(|series| {
                series
                    .label("k8s.node.name")
                    .map(|n| (n.to_owned(), series.latest()))
            })
            .collect();
        // What the node's containers use now: the CPU rate between the
        // last two points and the newest working set, summed per node.
        let mut used: std::collections::HashMap<String, (f64, f64)> =
            std::collections::HashMap::new();
        for series in s.family(&tally_schema::catalog::CONTAINER_CPU_USAGE.full_name()) {
            if let (Some(node), Some(rate)) = (series.label("k8s.node.name"), series.latest_rate())
            {
                used.entry(node.to_owned()).or_default().0 += rate;
            }
        }
        for series in s.family(&tally_schema::catalog::CONTAINER_MEMORY_WORKING_SET.full_name()) {
            if let (Some(node), Some(bytes)) = (series.label("k8s.node.name"), series.latest()) {
                used.entry(node.to_owned()).or_default().1 += bytes;
            }
        }
        s.select("tally_node_memory_total_bytes", &[])
            .filter_map(|series| {
                let node = series.label("k8s.node.name")?;
                let label = |k: &str| series.label(k).unwrap_or("").to_owned();
                Some(json!({
                    "node": node,
                    "zone": label("cloud.availability_zone"),
                    "region": label("cloud.region"),
                    "instance_type": label("host.type"),
                    "capacity_type": label("tally.capacity_type"),
                    "simulated": series.label("tally.simulated") == Some("true"),
                    "memory_bytes": series.latest(),
                    "cpus": cpus.get(node).copied().flatten(),
                    "cpu_cores_used": used.get(node).map(|u| u.0),
                    "working_set_bytes": used.get(node).map(|u| u.1),
                    "last_seen_seconds_ago": now_ns().saturating_sub(series.last_ns) as f64 / 1e9,
                }))
            })
            .collect()
    });
    axum::Json(json!({ "nodes": nodes })).into_response()
}

async fn api_logs(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    guard_read!(collector, headers);
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(limit)) if limit <= 10_000 => limit,
        Some(_) => return bad_request("limit must be an integer from 0 to 10000".to_owned()),
    };
    // Filters: the container's attributes, the severity (any case) and a
    // substring of the body.
    let filter = LogFilter {
        attributes: [
            ("namespace", "k8s.namespace.name"),
            ("pod", "k8s.pod.name"),
            ("container", "k8s.container.name"),
        ]
        .into_iter()
        .filter_map(|(param, key)| params.get(param).map(|v| (key.to_owned(), v.clone())))
        .collect(),
        severity: params.get("severity").cloned(),
        text: params.get("text").cloned(),
    };
    // Segments are read outside the store's lock (ingest goes on); a
    // store without them answers from memory.
    let on_disk = collector.with_store(|s| {
        s.log_segments().map(LogSegments::view).ok_or_else(|| {
            let mut newest: Vec<LogRecord> = s
                .logs(usize::MAX)
                .rev()
                .filter(|r| filter.matches(r))
                .take(limit)
                .cloned()
                .collect();
            newest.reverse();
            newest
        })
    });
    let records = match on_disk {
        Ok(view) => match tokio::task::spawn_blocking(move || view.query(&filter, limit)).await {
            Ok(records) => records,
            Err(_) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "log query failed\n").into_response();
            }
        },
        Err(in_memory) => in_memory,
    };
    axum::Json(json!({ "records": records })).into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

async fn readyz(State(collector): State<Arc<Collector>>) -> Response {
    if collector.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering\n").into_response()
    }
}

async fn own_metrics(State(collector): State<Arc<Collector>>) -> Response {
    let c = &collector.counters;
    let bytes = collector.store_bytes_estimate();
    let (series, stats, hot_bytes, log_disk) = collector.with_store(|s| {
        (
            s.series_count(),
            s.stats(),
            s.hot().carved_bytes(),
            s.log_segments().map(|l| {
                (
                    l.bytes(),
                    l.segment_count(),
                    l.records(),
                    Arc::clone(l.counters()),
                )
            }),
        )
    });
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (cold_reads, cold_read_bytes) = crate::store::cold::reads();
    let body = format!(
        "# HELP tally_collector_requests_total OTLP export requests by outcome.\n\
         # TYPE tally_collector_requests_total counter\n\
         tally_collector_requests_total{{outcome=\"success\"}} {}\n\
         tally_collector_requests_total{{outcome=\"partial\"}} {}\n\
         tally_collector_requests_total{{outcome=\"rejected\"}} {}\n\
         # HELP tally_collector_rejected_points_total Data points refused inside partial successes.\n\
         # TYPE tally_collector_rejected_points_total counter\n\
         tally_collector_rejected_points_total {}\n\
         # HELP tally_collector_samples_total Samples applied to the store.\n\
         # TYPE tally_collector_samples_total counter\n\
         tally_collector_samples_total {}\n\
         # HELP tally_collector_counter_resets_total Cumulative counter resets detected.\n\
         # TYPE tally_collector_counter_resets_total counter\n\
         tally_collector_counter_resets_total {}\n\
         # HELP tally_collector_series Active series in the store.\n\
         # TYPE tally_collector_series gauge\n\
         tally_collector_series {}\n\
         # HELP tally_collector_store_bytes Estimated heap held by the store's series.\n\
         # TYPE tally_collector_store_bytes gauge\n\
         tally_collector_store_bytes {}\n\
         # HELP tally_collector_store_hot_bytes History sealed since the last snapshot, held in memory until one makes it cold (snapshot_hot_bytes starts one early).\n\
         # TYPE tally_collector_store_hot_bytes gauge\n\
         tally_collector_store_hot_bytes {}\n\
         # HELP tally_collector_wal_errors_total Write-ahead log writes that failed (the request got a 503).\n\
         # TYPE tally_collector_wal_errors_total counter\n\
         tally_collector_wal_errors_total {}\n\
         # HELP tally_collector_wal_truncated_bytes_total Bytes cut from torn or corrupt write-ahead log tails at start.\n\
         # TYPE tally_collector_wal_truncated_bytes_total counter\n\
         tally_collector_wal_truncated_bytes_total {}\n\
         # HELP tally_collector_wal_replayed_records Records replayed from the write-ahead log at start.\n\
         # TYPE tally_collector_wal_replayed_records gauge\n\
         tally_collector_wal_replayed_records {}\n\
         # HELP tally_collector_throttled_requests_total Requests refused with 429 because too many bytes were in flight.\n\
         # TYPE tally_collector_throttled_requests_total counter\n\
         tally_collector_throttled_requests_total {}\n\
         # HELP tally_collector_series_limited_points_total Points of new series refused because the series limit was reached.\n\
         # TYPE tally_collector_series_limited_points_total counter\n\
         tally_collector_series_limited_points_total {}\n\
         # HELP tally_collector_tls_handshake_failures_total TLS handshakes that failed or timed out.\n\
         # TYPE tally_collector_tls_handshake_failures_total counter\n\
         tally_collector_tls_handshake_failures_total {}\n\
         # HELP tally_collector_snapshots_total Store snapshots written.\n\
         # TYPE tally_collector_snapshots_total counter\n\
         tally_collector_snapshots_total {}\n\
         # HELP tally_collector_snapshot_errors_total Store snapshots that failed to write or load.\n\
         # TYPE tally_collector_snapshot_errors_total counter\n\
         tally_collector_snapshot_errors_total {}\n\
         # HELP tally_collector_snapshot_bytes Size of the newest snapshot.\n\
         # TYPE tally_collector_snapshot_bytes gauge\n\
         tally_collector_snapshot_bytes {}\n\
         # HELP tally_collector_snapshot_duration_seconds Time the newest snapshot took.\n\
         # TYPE tally_collector_snapshot_duration_seconds gauge\n\
         tally_collector_snapshot_duration_seconds {}\n\
         # HELP tally_collector_snapshot_lock_seconds Time the newest snapshot held the store (ingest waits meanwhile).\n\
         # TYPE tally_collector_snapshot_lock_seconds gauge\n\
         tally_collector_snapshot_lock_seconds {}\n\
         # HELP tally_collector_recovery_duration_seconds Time the last start took to load the snapshot and replay the log.\n\
         # TYPE tally_collector_recovery_duration_seconds gauge\n\
         tally_collector_recovery_duration_seconds {}\n\
         # HELP tally_collector_cold_reads_total Reads of sealed series history from the snapshot file.\n\
         # TYPE tally_collector_cold_reads_total counter\n\
         tally_collector_cold_reads_total {}\n\
         # HELP tally_collector_cold_read_bytes_total Bytes of sealed series history read from the snapshot file.\n\
         # TYPE tally_collector_cold_read_bytes_total counter\n\
         tally_collector_cold_read_bytes_total {}\n\
         # HELP tally_collector_cold_read_errors_total Reads of sealed series history that failed (answers miss that history).\n\
         # TYPE tally_collector_cold_read_errors_total counter\n\
         tally_collector_cold_read_errors_total {}\n",
        load(&c.requests_ok),
        load(&c.requests_partial),
        load(&c.requests_rejected),
        load(&c.points_rejected),
        stats.samples,
        stats.resets,
        series,
        bytes,
        hot_bytes,
        load(&c.wal_errors),
        load(&c.wal_truncated_bytes),
        load(&c.replayed_records),
        load(&c.requests_throttled),
        stats.series_limited,
        load(&collector.tls_handshake_failures),
        load(&c.snapshots),
        load(&c.snapshot_errors),
        load(&c.snapshot_bytes),
        load(&c.snapshot_micros) as f64 / 1e6,
        load(&c.snapshot_lock_micros) as f64 / 1e6,
        load(&c.recovery_micros) as f64 / 1e6,
        cold_reads,
        cold_read_bytes,
        crate::store::cold::read_errors(),
    );
    let mut body = body;
    render_log_metrics(&collector, stats.log_records, log_disk, &mut body);
    crate::forward::render(collector.forwarder.as_deref(), &mut body);
    crate::analysis::metrics::render(&collector.analysis, &mut body);
    collector.with_store(|store| {
        let config = collector.analysis.config();
        crate::api::model_latency::render(
            store,
            now_ns(),
            |service| {
                let slo = config.slo_for(service);
                (slo.ttft_p95_seconds, slo.itl_p95_seconds)
            },
            &mut body,
        );
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// What the log segments report: bytes, segments, records, counters.
type LogDisk = (
    u64,
    usize,
    u64,
    Arc<crate::store::log_segments::LogSegmentCounters>,
);

/// The log store's part of `/metrics`.
fn render_log_metrics(
    collector: &Collector,
    received: u64,
    disk: Option<LogDisk>,
    out: &mut String,
) {
    use std::fmt::Write as _;
    let (bytes, segments, records, counters) = match disk {
        Some((bytes, segments, records, counters)) => (bytes, segments, records, Some(counters)),
        None => (0, 0, 0, None),
    };
    let load = |f: fn(&crate::store::log_segments::LogSegmentCounters) -> &AtomicU64| {
        counters
            .as_ref()
            .map_or(0, |c| f(c).load(Ordering::Relaxed))
    };
    let _ = write!(
        out,
        "# HELP tally_collector_log_records_received_total Log records accepted on /v1/logs (and replayed at start).\n\
         # TYPE tally_collector_log_records_received_total counter\n\
         tally_collector_log_records_received_total {received}\n\
         # HELP tally_collector_log_bytes Bytes of log segment files on disk (bounded by logs_max_bytes).\n\
         # TYPE tally_collector_log_bytes gauge\n\
         tally_collector_log_bytes {bytes}\n\
         # HELP tally_collector_log_segments Log segment files on disk.\n\
         # TYPE tally_collector_log_segments gauge\n\
         tally_collector_log_segments {segments}\n\
         # HELP tally_collector_log_records Log records held in segment files.\n\
         # TYPE tally_collector_log_records gauge\n\
         tally_collector_log_records {records}\n\
         # HELP tally_collector_log_dropped_records_total Log records deleted with their segment: past logs_retention, or the oldest past logs_max_bytes.\n\
         # TYPE tally_collector_log_dropped_records_total counter\n\
         tally_collector_log_dropped_records_total{{reason=\"retention\"}} {}\n\
         tally_collector_log_dropped_records_total{{reason=\"size\"}} {}\n\
         # HELP tally_collector_log_torn_bytes_total Bytes cut from torn or corrupt log segment tails at start (their records come back from the write-ahead log).\n\
         # TYPE tally_collector_log_torn_bytes_total counter\n\
         tally_collector_log_torn_bytes_total {}\n\
         # HELP tally_collector_log_replay_skipped_requests Log requests of the write-ahead log not replayed at start because the log segments held them.\n\
         # TYPE tally_collector_log_replay_skipped_requests gauge\n\
         tally_collector_log_replay_skipped_requests {}\n\
         # HELP tally_collector_log_segment_errors_total Log segment I/O errors by operation (records may be missing from queries).\n\
         # TYPE tally_collector_log_segment_errors_total counter\n",
        load(|c| &c.dropped_retention),
        load(|c| &c.dropped_size),
        load(|c| &c.torn_bytes),
        collector
            .counters
            .replay_logs_skipped
            .load(Ordering::Relaxed),
    );
    for kind in ErrorKind::ALL {
        let _ = writeln!(
            out,
            "tally_collector_log_segment_errors_total{{kind=\"{}\"}} {}",
            kind.label(),
            counters.as_ref().map_or(0, |c| c.errors(kind))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_tokens() {
        assert_eq!(parse_window("14d"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_window("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_window("x"), None);
        assert_eq!(parse_window(""), None);
        assert_eq!(
            parse_window("\u{80}"),
            None,
            "multibyte text must not panic"
        );
        let mut headers = HeaderMap::new();
        assert!(!token_matches(&headers, "s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer s3cret".parse().expect("header"),
        );
        assert!(token_matches(&headers, "s3cret"));
        assert!(!token_matches(&headers, "s3cre"));
        assert!(!token_matches(&headers, "s3cretx"));
    }

    #[test]
    fn requests_beyond_the_inflight_budget_get_429_with_retry_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let collector = Collector::open(CollectorOptions {
            data_dir: dir.path().to_path_buf(),
            max_inflight_bytes: 1 << 20,
            ..Default::default()
        })
        .expect("open");
        // A request being processed holds most of the budget.
        let held = admit(&collector, 900 << 10).expect("first admitted");
        let refused = admit(&collector, 200 << 10).expect_err("over budget");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            collector
                .counters
                .requests_throttled
                .load(Ordering::Relaxed),
            1
        );
        // A small one still fits; once the first is done, a large one does.
        let small = admit(&collector, 10 << 10).expect("small fits");
        drop((held, small));
        assert!(admit(&collector, 1 << 20).is_ok());
        // A body larger than the whole budget is admitted alone, not never.
        assert!(admit(&collector, 4 << 20).is_ok());
    }

    /// History sealed since the last snapshot past `snapshot_hot_bytes`
    /// calls for a snapshot, which empties it.
    #[test]
    fn hot_history_over_its_budget_calls_for_a_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let collector = Collector::open(CollectorOptions {
            data_dir: dir.path().to_path_buf(),
            snapshot_hot_bytes: 1 << 20,
            ..Default::default()
        })
        .expect("open");
        assert!(!collector.hot_history_over_budget());
        let hour = 3_600_000_000_000u64;
        let t0 = 1_800_000_000u64 / 3600 * hour;
        {
            let mut guard = collector.lock();
            for h in 0..48 {
                for pod in 0..2000 {
                    guard.1.apply(points::Sample {
                        metric: Arc::from("mem"),
                        labels: Arc::new(crate::store::labels::LabelSet::new(vec![(
                            "k8s.pod.name".to_owned(),
                            format!("pod-{pod}"),
                        )])),
                        time_ns: t0 + h * hour,
                        value: points::SampleValue::Gauge((pod * h) as f64),
                    });
                }
            }
        }
        assert!(collector.hot_history_over_budget());
        collector.snapshot().expect("snapshot");
        assert!(!collector.hot_history_over_budget());
    }

    /// A logs request of `records` records with bodies `"{first + i}"`.
    fn logs_request(first: u64, records: u64) -> ExportLogsServiceRequest {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: (first..first + records)
                        .map(|i| LogRecord {
                            time_unix_nano: now_ns(),
                            severity_text: "info".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(i.to_string())),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// What ingest does under the lock: the log, then the store.
    fn ingest(collector: &Collector, request: &ExportLogsServiceRequest) {
        let mut guard = collector.lock();
        let (wal, store) = &mut *guard;
        let at = wal
            .append(RecordKind::Logs, &request.encode_to_vec())
            .expect("append");
        apply_logs(store, request, Some(at));
    }

    fn bodies(collector: &Collector) -> Vec<String> {
        let view = collector
            .with_store(|s| s.log_segments().map(LogSegments::view))
            .expect("segments");
        view.query(&LogFilter::default(), usize::MAX)
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    fn numbers(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    /// Log records are in the segments and in the write-ahead log: a
    /// restart (crash or clean, with or without a torn segment) must
    /// neither lose nor double one.
    #[test]
    fn a_restart_neither_loses_nor_doubles_log_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = CollectorOptions {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let collector = Collector::open(options.clone()).expect("open");
        ingest(&collector, &logs_request(0, 3));
        ingest(&collector, &logs_request(3, 2));
        // A crash after the log write and before the segment write.
        collector
            .lock()
            .0
            .append(RecordKind::Logs, &logs_request(5, 2).encode_to_vec())
            .expect("append");
        drop(collector);

        let collector = Collector::open(options.clone()).expect("reopen");
        assert_eq!(bodies(&collector), numbers(0..7));
        assert_eq!(
            collector
                .counters
                .replay_logs_skipped
                .load(Ordering::Relaxed),
            2
        );
        ingest(&collector, &logs_request(7, 1));
        drop(collector);

        // A torn segment: its last frame comes back from the log.
        let segments = dir.path().join("logs");
        let mut files: Vec<_> = std::fs::read_dir(&segments)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        let newest = files.last().expect("a segment");
        let len = std::fs::metadata(newest).expect("meta").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(newest)
            .expect("open");
        file.set_len(len - 3).expect("cut");
        drop(file);
        let collector = Collector::open(options.clone()).expect("reopen");
        assert_eq!(bodies(&collector), numbers(0..8));

        // A snapshot drops the log; the segments keep the records.
        collector.snapshot().expect("snapshot");
        ingest(&collector, &logs_request(8, 1));
        drop(collector);
        let collector = Collector::open(options).expect("reopen");
        assert_eq!(bodies(&collector), numbers(0..9));
        let metrics = {
            let mut out = String::new();
            let disk = collector.with_store(|s| {
                s.log_segments().map(|l| {
                    (
                        l.bytes(),
                        l.segment_count(),
                        l.records(),
                        Arc::clone(l.counters()),
                    )
                })
            });
            render_log_metrics(&collector, 0, disk, &mut out);
            out
        };
        assert!(
            metrics.contains("tally_collector_log_records 9\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tally_collector_log_torn_bytes_total 0\n"),
            "{metrics}"
        );
    }

    #[test]
    fn unauthenticated_public_listen_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = CollectorOptions {
            listen: "0.0.0.0:4318".into(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let error = Collector::open(options.clone()).expect_err("refused");
        assert!(error.to_string().contains("--insecure"), "{error}");
        assert!(
            Collector::open(CollectorOptions {
                insecure: true,
                ..options
            })
            .is_ok()
        );
    }
}
