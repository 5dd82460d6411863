//! The logs source: every container log file of this node followed,
//! its messages turned into records, sent to the collector over OTLP
//! (`/v1/logs`), and each file's checkpoint committed only once the
//! collector acknowledged the batch holding its lines.
//!
//! The files themselves are the queue: one batch is in flight at a time,
//! and while the collector is away nothing more is read, so memory stays
//! at one batch whatever the backlog; what is not delivered is still in
//! the files (or, for a file rotated and deleted meanwhile, counted as
//! lost by kubelet's rotation, not dropped here).
//!
//! A line that is neither CRI nor Docker json-file is sent as a text
//! record and counted by kind; nothing read is dropped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpRecord, ResourceLogs, ScopeLogs};
use prost::Message as _;
use tally_schema::otlp::{self, string_attribute};
use tokio::sync::watch;

use tally_schema::identity::ContainerIdentity;

use super::checkpoint::Checkpoints;
use super::cri::{self, FormatError, Piece, Stream};
use super::metrics::{self, SharedLogMetrics};
use super::path::{self as pod_path, PodLogPath, Rotation};
use super::reassemble::{Message, Reassembler};
use super::record::{self, FieldNames, LogRecord};
use super::tail::{FileId, Tailer};
use crate::sources::pods::model::SharedPodStore;
use crate::telemetry::SourceHealth;

/// What the source needs to run.
#[derive(Debug, Clone)]
pub struct LogsSettings {
    /// The pod log root (`/var/log/pods`).
    pub root: PathBuf,
    /// The longest message kept (longer ones are cut and counted).
    pub max_message_bytes: usize,
    /// A batch is sent once it holds this many bytes of messages.
    pub batch_bytes: usize,
    /// How often files are read when there was nothing new.
    pub poll_interval: Duration,
    /// How often the root is scanned for new files.
    pub rescan_interval: Duration,
    /// The checkpoint file.
    pub checkpoint_file: PathBuf,
    /// Keys of the fields Tally reads.
    pub fields: FieldNames,
    /// `{collector}/v1/logs`.
    pub url: String,
    /// The client (token, CA) the metrics sender uses too.
    pub client: reqwest::Client,
    /// Node resource attributes.
    pub node_attributes: Vec<(&'static str, String)>,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Where the derived metrics go.
    pub metrics: SharedLogMetrics,
    /// The pod watch's store, for each container's workload.
    pub pods: Option<SharedPodStore>,
}

/// The on-disk format of a file's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cri,
    Docker,
}

struct Followed {
    path: PathBuf,
    pod: PodLogPath,
    identity: ContainerIdentity,
    tailer: Tailer,
    format: Option<Format>,
    joiner: Reassembler,
    /// The path is gone and the file read to its end.
    finished: bool,
}

/// One batch on its way: records per file and where each file's
/// checkpoint goes once it is acknowledged.
#[derive(Default)]
struct Batch {
    records: BTreeMap<PathBuf, (PodLogPath, Vec<LogRecord>)>,
    /// By file identity: an old file read to its end after a rotation and
    /// the new one each get theirs.
    commits: BTreeMap<(u64, u64), (PathBuf, FileId, u64)>,
    bytes: usize,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The pod log files under `root` (`<pod dir>/<container>/<file>`).
fn discover(root: &Path) -> std::io::Result<Vec<(PathBuf, PodLogPath)>> {
    let mut out = Vec::new();
    for pod in std::fs::read_dir(root)? {
        let Ok(pod) = pod else { continue };
        let Ok(containers) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for container in containers.flatten() {
            let Ok(files) = std::fs::read_dir(container.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if let Some(parsed) = pod_path::parse(&path) {
                    out.push((path, parsed));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The container a pod log file belongs to: the path's names, and the
/// workload and container id from the pod watch when it knows the pod.
fn identity_of(pod: &PodLogPath, pods: Option<&SharedPodStore>) -> ContainerIdentity {
    let mut identity = ContainerIdentity {
        namespace: pod.namespace.clone(),
        pod: pod.pod.clone(),
        container: pod.container.clone(),
        pod_uid: pod.pod_uid.clone(),
        ..ContainerIdentity::default()
    };
    if let Some(store) = pods {
        let store = store
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(info) = store.get(&pod.pod_uid) {
            identity.workload_kind = info.workload_kind.clone();
            identity.workload_name = info.workload_name.clone();
            if let Some(c) = info.containers.iter().find(|c| c.name == pod.container) {
                identity.container_id = c.container_id.clone();
            }
        }
    }
    identity
}

fn piece(format: Format, line: &[u8]) -> Result<Piece<'_>, FormatError> {
    match format {
        Format::Cri => cri::parse(line),
        Format::Docker => super::docker::parse(line),
    }
}

impl Followed {
    /// Reads up to `budget` bytes; complete messages become records.
    fn read(
        &mut self,
        budget: usize,
        fields: &FieldNames,
        health: &SourceHealth,
        metrics: &SharedLogMetrics,
        batch: &mut Batch,
    ) -> bool {
        let (lines, events) = match self.tailer.read(budget) {
            Ok(read) => read,
            Err(error) => {
                health.error("read", &error);
                return false;
            }
        };
        self.finished |= events.finished;
        if events.truncated {
            health.error(
                "truncated",
                &format!("{} shrank: read again from its start", self.path.display()),
            );
        }
        let mut any = false;
        let mut metrics = metrics::lock(metrics);
        for line in lines {
            any = true;
            let format = *self
                .format
                .get_or_insert(if line.bytes.first() == Some(&b'{') {
                    Format::Docker
                } else {
                    Format::Cri
                });
            if line.cut > 0 {
                health.error(
                    "line_too_long",
                    &format!(
                        "{}: a line cut after {} bytes",
                        self.path.display(),
                        line.bytes.len()
                    ),
                );
            }
            let messages: Vec<Message> = match piece(format, &line.bytes) {
                Ok(piece) => self.joiner.push(piece).into_iter().collect(),
                Err(error) => {
                    // Not this format: kept as a text message, counted.
                    health.error(error.kind(), &format!("{}: {error}", self.path.display()));
                    vec![Message {
                        time: String::new(),
                        stream: Stream::Stdout,
                        text: line.bytes.clone(),
                        truncated_bytes: line.cut,
                        pieces: 1,
                    }]
                }
            };
            for message in messages {
                let mut record = record::record(&message, fields);
                if record.time_seconds == 0.0 {
                    record.time_seconds = now_seconds();
                }
                if record.invalid_utf8 {
                    health.error(
                        "invalid_utf8",
                        &format!("{}: a line is not UTF-8", self.path.display()),
                    );
                }
                if record.truncated_bytes > 0 {
                    health.error(
                        "message_too_long",
                        &format!("{}: a message cut", self.path.display()),
                    );
                }
                metrics.observe(&self.identity, &record, message.text.len());
                batch.bytes += record.body.len() + 64;
                batch
                    .records
                    .entry(self.path.clone())
                    .or_insert_with(|| (self.pod.clone(), Vec::new()))
                    .1
                    .push(record);
            }
            if self.joiner.pending_bytes() == 0 {
                batch.commits.insert(
                    (line.file.dev, line.file.ino),
                    (self.path.clone(), line.file.clone(), line.end),
                );
            }
        }
        any
    }
}

fn otlp_record(record: &LogRecord) -> OtlpRecord {
    let mut attributes = vec![string_attribute("log.iostream", record.stream)];
    attributes.extend(
        record
            .attributes
            .iter()
            .map(|(k, v)| string_attribute(k, v.clone())),
    );
    if record.truncated_bytes > 0 {
        attributes.push(string_attribute(
            "tally.log.truncated_bytes",
            record.truncated_bytes.to_string(),
        ));
    }
    for (key, value) in [
        ("gen_ai.request.model", record.model.clone()),
        ("tally.log.status", record.status.clone()),
    ] {
        if let Some(value) = value {
            attributes.push(string_attribute(key, value));
        }
    }
    let time_ns = (record.time_seconds * 1e9) as u64;
    OtlpRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: (now_seconds() * 1e9) as u64,
        severity_number: record.severity_number,
        severity_text: record.severity_text.clone(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(record.body.clone())),
        }),
        attributes,
        trace_id: record.trace_id.map(|t| t.to_vec()).unwrap_or_default(),
        span_id: record.span_id.map(|s| s.to_vec()).unwrap_or_default(),
        ..Default::default()
    }
}

/// The OTLP request for a batch: one resource per file's container.
fn request(batch: &Batch, node: &[(&'static str, String)]) -> ExportLogsServiceRequest {
    let resource_logs = batch
        .records
        .values()
        .map(|(pod, records)| {
            let mut attributes = node.to_vec();
            attributes.extend([
                ("k8s.namespace.name", pod.namespace.clone()),
                ("k8s.pod.name", pod.pod.clone()),
                ("k8s.pod.uid", pod.pod_uid.clone()),
                ("k8s.container.name", pod.container.clone()),
                ("k8s.container.restart_count", pod.restart_count.to_string()),
            ]);
            ResourceLogs {
                resource: Some(otlp::resource(attributes)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: otlp::AGENT_SCOPE.to_owned(),
                        ..Default::default()
                    }),
                    log_records: records.iter().map(otlp_record).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// What the collector said to a batch.
enum Delivery {
    /// Accepted: commit.
    Accepted,
    /// Refused for good (4xx): counted as dropped, committed so it does not
    /// block the files behind it.
    Refused(String),
    /// Try again later.
    Retry(String),
}

async fn deliver(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Delivery {
    let response = client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Delivery::Accepted,
        Ok(r) if matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => {
            Delivery::Retry(format!("HTTP {}", r.status()))
        }
        Ok(r) => Delivery::Refused(format!("HTTP {}", r.status())),
        Err(error) => Delivery::Retry(error.to_string()),
    }
}

fn encode(request: &ExportLogsServiceRequest) -> std::io::Result<Vec<u8>> {
    let body = request.encode_to_vec();
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(&body)?;
    encoder.finish()
}

/// Runs until shutdown.
pub async fn run(
    settings: LogsSettings,
    health: Arc<SourceHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut checkpoints, error) = Checkpoints::load(&settings.checkpoint_file);
    if let Some(error) = error {
        health.error("checkpoint", &error);
    }
    if let Some(dir) = settings.checkpoint_file.parent()
        && let Err(error) = std::fs::create_dir_all(dir)
    {
        health.error("checkpoint", &error);
    }
    let mut followed: BTreeMap<PathBuf, Followed> = BTreeMap::new();
    let mut last_scan: Option<Instant> = None;
    let mut first_scan = true;
    let mut backoff = Duration::from_millis(200);
    let budget = (settings.batch_bytes / 4).max(64 * 1024);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if last_scan.is_none_or(|at| at.elapsed() >= settings.rescan_interval) {
            last_scan = Some(Instant::now());
            match discover(&settings.root) {
                Ok(found) => {
                    health.set_up(true);
                    // Entries of files gone from the root (gzipped,
                    // deleted) go.
                    let present: std::collections::BTreeSet<(u64, u64)> = found
                        .iter()
                        .filter_map(|(path, _)| std::fs::metadata(path).ok())
                        .map(|m| {
                            use std::os::unix::fs::MetadataExt as _;
                            (m.dev(), m.ino())
                        })
                        .chain(
                            followed
                                .values()
                                .map(|f| (f.tailer.id().dev, f.tailer.id().ino)),
                        )
                        .collect();
                    checkpoints.retain(|dev, ino| present.contains(&(dev, ino)));
                    for (path, pod) in found {
                        if followed.contains_key(&path) || pod.rotation == Rotation::Compressed {
                            continue;
                        }
                        // Rotated files are the live tailers' to finish;
                        // only at start are they read (from their
                        // checkpoint) as files of their own.
                        if matches!(pod.rotation, Rotation::Rotated(_)) && !first_scan {
                            continue;
                        }
                        match Tailer::open(&path, 0, settings.max_message_bytes) {
                            Ok(probe) => {
                                let offset = checkpoints.resume(probe.id());
                                match Tailer::open(&path, offset, settings.max_message_bytes) {
                                    Ok(tailer) => {
                                        followed.insert(
                                            path.clone(),
                                            Followed {
                                                identity: identity_of(&pod, settings.pods.as_ref()),
                                                path,
                                                pod,
                                                tailer,
                                                format: None,
                                                joiner: Reassembler::new(
                                                    settings.max_message_bytes,
                                                ),
                                                finished: false,
                                            },
                                        );
                                    }
                                    Err(error) => health.error("open", &error),
                                }
                            }
                            Err(error) => health.error("open", &error),
                        }
                    }
                    first_scan = false;
                }
                Err(error) => {
                    health.set_up(false);
                    health.error(
                        "missing_root",
                        &format!("{}: {error}", settings.root.display()),
                    );
                }
            }
        }

        let mut batch = Batch::default();
        let mut finished = Vec::new();
        for (path, file) in followed.iter_mut() {
            while batch.bytes < settings.batch_bytes
                && file.read(
                    budget,
                    &settings.fields,
                    &health,
                    &settings.metrics,
                    &mut batch,
                )
            {}
            if file.finished {
                finished.push(path.clone());
            }
            if batch.bytes >= settings.batch_bytes {
                break;
            }
        }
        for path in finished {
            if let Some(mut file) = followed.remove(&path) {
                checkpoints.forget(file.tailer.id());
                for message in file.joiner.flush() {
                    let record = record::record(&message, &settings.fields);
                    batch
                        .records
                        .entry(path.clone())
                        .or_insert_with(|| (file.pod.clone(), Vec::new()))
                        .1
                        .push(record);
                }
            }
        }
        if batch.records.is_empty() {
            // Commits with nothing to send (all lines were pieces): keep.
            tokio::select! {
                () = tokio::time::sleep(settings.poll_interval) => continue,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let body = match encode(&request(&batch, &settings.node_attributes)) {
            Ok(body) => body,
            Err(error) => {
                health.error("encode", &error);
                continue;
            }
        };
        // One batch in flight: read nothing more until it is delivered.
        loop {
            let outcome = tokio::select! {
                outcome = deliver(&settings.client, &settings.url, body.clone()) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match outcome {
                Delivery::Accepted => {
                    backoff = Duration::from_millis(200);
                    break;
                }
                Delivery::Refused(why) => {
                    health.error("refused", &why);
                    break;
                }
                Delivery::Retry(why) => {
                    health.error("unreachable", &why);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    backoff = (backoff * 2).min(settings.max_backoff);
                }
            }
        }
        for (path, file, offset) in batch.commits.values() {
            checkpoints.commit(path, file, *offset);
        }
        if let Err(error) = checkpoints.save() {
            health.error("checkpoint", &error);
        }
    }
}
