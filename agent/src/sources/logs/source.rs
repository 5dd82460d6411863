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

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::watch;

use tally_schema::identity::ContainerIdentity;

use super::checkpoint::Checkpoints;
use super::cri::{self, FormatError, Piece, Stream};
use super::encode;
use super::gz::{self, GzTail};
use super::metrics::{self, SharedLogMetrics};
use super::path::{self as pod_path, PodLogPath, Rotation};
use super::reassemble::{Message, Reassembler};
use super::record::{self, FieldNames};
use super::tail::{self, Events, FileId, Tailer};
use super::watch::Watcher;
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
    /// Globs of other files to follow (Docker json-file logs and others).
    pub paths: Vec<String>,
    /// Wake on filesystem events as well as the rescan.
    pub watch: bool,
    /// Most lines a second kept per container (0: no limit).
    pub rate_limit_lines: u64,
}

/// The on-disk format of a file's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cri,
    Docker,
}

/// A file's resource attributes, shared by its records.
type Resource = Arc<Vec<(&'static str, String)>>;

/// Who a followed file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A pod log file under the root.
    Pod(PodLogPath),
    /// A file a `logs.paths` glob matched; a Docker json-file log
    /// (`<root>/containers/<id>/<id>-json.log`) knows its container.
    Glob {
        /// The container's id (64 hex digits) when the path holds one.
        container_id: Option<String>,
    },
}

/// What a follower reads: a plain file (followed through rotation) or a
/// gzipped rotation (read once, from where its plain file was left).
enum Reader {
    Plain(Tailer),
    Gz(GzTail),
}

impl Reader {
    fn id(&self) -> &FileId {
        match self {
            Reader::Plain(tailer) => tailer.id(),
            Reader::Gz(gz) => gz.id(),
        }
    }

    fn read(&mut self, budget: usize) -> std::io::Result<(Vec<super::tail::Line>, Events)> {
        match self {
            Reader::Plain(tailer) => tailer.read(budget),
            Reader::Gz(gz) => gz.read(budget),
        }
    }
}

struct Followed {
    path: PathBuf,
    /// The checkpoint key of the plain file a `.gz` follower finishes.
    replaces: Option<String>,
    /// Resource attributes of its records.
    resource: Resource,
    identity: ContainerIdentity,
    /// Its container's key in the metrics and the rate limiter.
    container_key: String,
    tailer: Reader,
    format: Option<Format>,
    joiner: Reassembler,
    /// The path is gone and the file read to its end.
    finished: bool,
}

/// One batch on its way: records per file and where each file's
/// checkpoint goes once it is acknowledged.
#[derive(Default)]
struct Batch {
    /// Per file: its resource and its records, already encoded.
    records: BTreeMap<PathBuf, (Resource, Vec<u8>)>,
    /// By file identity: an old file read to its end after a rotation and
    /// the new one each get theirs.
    commits: BTreeMap<(u64, u64), (PathBuf, FileId, u64)>,
    /// Files read to their end whose path is gone (a plain file renamed
    /// away or deleted, a `.gz` file): marked done once delivered, and a
    /// plain file's entry a `.gz` file replaces forgotten. Not forgotten:
    /// a path gone may be a rename, and a later follower of the renamed
    /// file resumes from the entry.
    done: Vec<(PathBuf, FileId, Option<String>)>,
    bytes: usize,
}

impl Batch {
    /// Applies what delivery (or having nothing to deliver) settled.
    fn settle(&self, checkpoints: &mut Checkpoints) {
        for (path, file, offset) in self.commits.values() {
            checkpoints.commit(path, file, *offset);
        }
        for (path, file, replaces) in &self.done {
            let end = self
                .commits
                .get(&(file.dev, file.ino))
                .map(|c| c.2)
                .unwrap_or_default();
            checkpoints.commit_done(path, file, end);
            if let Some(key) = replaces {
                checkpoints.forget_key(key);
            }
        }
    }
}

impl Batch {
    /// Adds a file's encoded records (one map lookup for all of them).
    fn extend(&mut self, file: &Followed, records: Vec<u8>) {
        if records.is_empty() {
            return;
        }
        self.bytes += records.len();
        match self.records.get_mut(&file.path) {
            Some((_, kept)) => kept.extend_from_slice(&records),
            None => {
                self.records
                    .insert(file.path.clone(), (Arc::clone(&file.resource), records));
            }
        }
    }
}

/// Per-container token buckets: `per_second` lines a second, bursts of
/// one second.
struct RateLimiter {
    per_second: u64,
    buckets: std::collections::HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    /// Whether one more line of the container passes.
    fn admit(&mut self, key: &str, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let rate = self.per_second as f64;
        let bucket = match self.buckets.get_mut(key) {
            Some(bucket) => bucket,
            None => self.buckets.entry(key.to_owned()).or_insert((rate, now)),
        };
        bucket.0 = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * rate).min(rate);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What reading a file needs besides the file.
struct ReadContext<'a> {
    fields: &'a FieldNames,
    health: &'a SourceHealth,
    metrics: &'a SharedLogMetrics,
    limiter: &'a mut RateLimiter,
    /// Reused by the record encoder.
    scratch: Vec<u8>,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What a scan found: the files to follow and the directories to watch.
#[derive(Debug, Default)]
struct Scan {
    files: Vec<(PathBuf, Origin)>,
    dirs: Vec<PathBuf>,
}

/// Whether a file name is a compressed or half-written rotation.
fn compressed(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "gz" | "tmp" | "zst" | "bz2" | "xz"))
}

/// The pod log files under `root` (`<pod dir>/<container>/<file>`), then
/// the files the globs match. A directory that cannot be read is counted
/// (`permission` or `read_dir`) and skipped; the rest is still found.
fn discover(root: &Path, globs: &[String], health: &SourceHealth) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let unreadable = |dir: &Path, error: std::io::Error| {
        let kind = if error.kind() == std::io::ErrorKind::PermissionDenied {
            "permission"
        } else {
            "read_dir"
        };
        health.error(kind, &format!("{}: {error}", dir.display()));
    };
    scan.dirs.push(root.to_path_buf());
    for pod in std::fs::read_dir(root)? {
        let Ok(pod) = pod else { continue };
        let pod_dir = pod.path();
        if !pod.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let containers = match std::fs::read_dir(&pod_dir) {
            Ok(containers) => containers,
            Err(error) => {
                unreadable(&pod_dir, error);
                continue;
            }
        };
        scan.dirs.push(pod_dir);
        for container in containers.flatten() {
            let dir = container.path();
            if !container.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = match std::fs::read_dir(&dir) {
                Ok(files) => files,
                Err(error) => {
                    unreadable(&dir, error);
                    continue;
                }
            };
            scan.dirs.push(dir);
            for file in files.flatten() {
                let path = file.path();
                if let Some(parsed) = pod_path::parse(&path)
                    && (parsed.rotation != Rotation::Compressed
                        || path.extension().is_some_and(|e| e == "gz"))
                {
                    scan.files.push((path, Origin::Pod(parsed)));
                }
            }
        }
    }
    for pattern in globs {
        // New directories appear under the pattern's fixed head.
        let head: PathBuf = Path::new(pattern)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        if head.is_dir() {
            scan.dirs.push(head);
        }
        let matches = match glob::glob(pattern) {
            Ok(matches) => matches,
            Err(error) => {
                health.error("glob", &format!("{pattern}: {error}"));
                continue;
            }
        };
        for found in matches {
            match found {
                Ok(path) if path.is_file() && !compressed(&path) => {
                    if let Some(parent) = path.parent() {
                        scan.dirs.push(parent.to_path_buf());
                    }
                    let container_id = docker_container_id(&path);
                    scan.files.push((path, Origin::Glob { container_id }));
                }
                Ok(_) => {}
                Err(error) => {
                    let dir = error.path().to_path_buf();
                    unreadable(&dir, error.into());
                }
            }
        }
    }
    scan.files.sort_by(|a, b| a.0.cmp(&b.0));
    scan.files.dedup_by(|a, b| a.0 == b.0);
    scan.dirs.sort();
    scan.dirs.dedup();
    Ok(scan)
}

/// The container id of a Docker json-file log
/// (`…/containers/<id>/<id>-json.log[.n]`).
fn docker_container_id(path: &Path) -> Option<String> {
    let dir = path.parent()?.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    let is_id = dir.len() == 64 && dir.bytes().all(|b| b.is_ascii_hexdigit());
    (is_id && name.starts_with(&format!("{dir}-json.log"))).then(|| dir.to_owned())
}

/// A Docker container's name from its `config.v2.json` beside the log.
fn docker_container_name(path: &Path) -> Option<String> {
    let config = path.parent()?.join("config.v2.json");
    let text = std::fs::read(config).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let name = value.get("Name")?.as_str()?;
    Some(name.trim_start_matches('/').to_owned())
}

/// A followed file's resource attributes and metrics identity.
fn describe(
    path: &Path,
    origin: &Origin,
    node: &[(&'static str, String)],
    pods: Option<&SharedPodStore>,
) -> (Vec<(&'static str, String)>, ContainerIdentity) {
    let mut attributes = node.to_vec();
    match origin {
        Origin::Pod(pod) => {
            attributes.extend([
                ("k8s.namespace.name", pod.namespace.clone()),
                ("k8s.pod.name", pod.pod.clone()),
                ("k8s.pod.uid", pod.pod_uid.clone()),
                ("k8s.container.name", pod.container.clone()),
                ("k8s.container.restart_count", pod.restart_count.to_string()),
            ]);
            (attributes, identity_of(pod, pods))
        }
        Origin::Glob { container_id } => {
            let name = container_id
                .as_ref()
                .and_then(|_| docker_container_name(path));
            attributes.push(("log.file.path", path.display().to_string()));
            if let Some(id) = container_id {
                attributes.push(("container.id", id.clone()));
            }
            if let Some(name) = &name {
                attributes.push(("container.name", name.clone()));
            }
            let identity = ContainerIdentity {
                container: name
                    .or_else(|| container_id.as_ref().map(|id| id[..12].to_owned()))
                    .unwrap_or_else(|| {
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    }),
                container_id: container_id.clone().unwrap_or_default(),
                ..ContainerIdentity::default()
            };
            (attributes, identity)
        }
    }
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
    fn read(&mut self, budget: usize, context: &mut ReadContext<'_>, batch: &mut Batch) -> bool {
        let health = context.health;
        let (lines, events) = match self.tailer.read(budget) {
            Ok(read) => read,
            Err(error) => {
                health.error("read", &format!("{}: {error}", self.path.display()));
                return false;
            }
        };
        self.finished |= events.finished;
        if events.truncated && !events.copied {
            health.error(
                "truncated",
                &format!("{} shrank: read again from its start", self.path.display()),
            );
        }
        if let Some((left, offset)) = events.left.clone()
            && self.joiner.pending_bytes() == 0
            && !lines
                .iter()
                .any(|l| (l.file.dev, l.file.ino) == (left.dev, left.ino))
        {
            // Its end is committed even when no line of it was read now
            // (its lines were all read before): a later scan then finds
            // nothing new in it.
            batch
                .commits
                .entry((left.dev, left.ino))
                .and_modify(|commit| commit.2 = commit.2.max(offset))
                .or_insert((self.path.clone(), left, offset));
        }
        let mut any = false;
        let mut records = Vec::new();
        let observed_ns = (now_seconds() * 1e9) as u64;
        let mut metrics = metrics::lock(context.metrics);
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
            let mut messages = Vec::new();
            match piece(format, &line.bytes) {
                Ok(piece) => messages.extend(self.joiner.push(piece)),
                Err(error) => {
                    // Not this format: kept as a text message, counted.
                    health.error(error.kind(), &format!("{}: {error}", self.path.display()));
                    messages.push(Message {
                        time: String::new(),
                        stream: Stream::Stdout,
                        text: line.bytes.clone(),
                        truncated_bytes: line.cut,
                        pieces: 1,
                    });
                }
            }
            for message in messages {
                if !context.limiter.admit(&self.container_key, Instant::now()) {
                    metrics.rate_limited(&self.container_key, &self.identity, 1);
                    continue;
                }
                let mut record = record::record(&message, context.fields);
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
                metrics.observe(
                    &self.container_key,
                    &self.identity,
                    &record,
                    message.text.len(),
                );
                encode::put_record(&record, observed_ns, &mut context.scratch, &mut records);
            }
            if self.joiner.pending_bytes() == 0 {
                let key = (line.file.dev, line.file.ino);
                let offset = line.end;
                match batch.commits.get_mut(&key) {
                    Some(commit) => commit.2 = offset,
                    None => {
                        batch
                            .commits
                            .insert(key, (self.path.clone(), (*line.file).clone(), offset));
                    }
                }
            }
        }
        drop(metrics);
        batch.extend(self, records);
        any
    }
}

/// The batch as an `ExportLogsServiceRequest` (one resource per file),
/// gzipped; the records were encoded as they were read.
fn encode(batch: &mut Batch) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(batch.bytes + 4096);
    for (_, (resource, records)) in std::mem::take(&mut batch.records) {
        encode::put_resource_logs(&resource, &records, &mut body);
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(&body)?;
    encoder.finish()
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

/// Whether a file found by a scan should get a follower of its own: not
/// one already followed (by path or identity), and not the copy a
/// copytruncate just left beside a followed file (its follower reads the
/// copy's new lines itself).
fn admit(path: &Path, candidate: &FileId, followed: &BTreeMap<PathBuf, Followed>) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    followed.values().all(|f| {
        let id = f.tailer.id();
        let same_inode = (id.dev, id.ino) == (candidate.dev, candidate.ino);
        // `<name>.<suffix>` beside the followed `<name>`.
        let rotation_of = f.path.parent() == path.parent()
            && f.path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|live| {
                    name.len() > live.len() + 1
                        && name.starts_with(live)
                        && name.as_bytes()[live.len()] == b'.'
                });
        let n = id.fingerprint.len().min(candidate.fingerprint.len());
        let same_head = n > 0 && id.fingerprint[..n] == candidate.fingerprint[..n];
        !(same_inode || rotation_of && same_head)
    })
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
    let mut watcher = if settings.watch {
        match Watcher::new() {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                health.error("watch", &error);
                None
            }
        }
    } else {
        None
    };
    let mut limiter = RateLimiter {
        per_second: settings.rate_limit_lines,
        buckets: Default::default(),
    };
    let mut followed: BTreeMap<PathBuf, Followed> = BTreeMap::new();
    // `.gz` files settled (read, or not a rotation this agent left
    // unfinished): not looked at again.
    let mut gz_seen: HashSet<(u64, u64)> = HashSet::new();
    let mut last_scan: Option<Instant> = None;
    let mut backoff = Duration::from_millis(200);
    let budget = (settings.batch_bytes / 4).max(64 * 1024);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if last_scan.is_none_or(|at| at.elapsed() >= settings.rescan_interval) {
            last_scan = Some(Instant::now());
            match discover(&settings.root, &settings.paths, &health) {
                Ok(scan) => {
                    health.set_up(true);
                    if let Some(watcher) = watcher.as_mut() {
                        for dir in &scan.dirs {
                            if let Err(error) = watcher.watch(dir) {
                                // Out of watches: the rescan still finds it.
                                health.error("watch", &format!("{}: {error}", dir.display()));
                            }
                        }
                    }
                    follow_new(
                        &settings,
                        &health,
                        &mut checkpoints,
                        &mut followed,
                        &mut gz_seen,
                        scan,
                    );
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
        let mut context = ReadContext {
            fields: &settings.fields,
            health: &health,
            metrics: &settings.metrics,
            limiter: &mut limiter,
            scratch: Vec::new(),
        };
        for (path, file) in followed.iter_mut() {
            while batch.bytes < settings.batch_bytes && file.read(budget, &mut context, &mut batch)
            {
            }
            if file.finished {
                finished.push(path.clone());
            }
            if batch.bytes >= settings.batch_bytes {
                break;
            }
        }
        for path in finished {
            if let Some(mut file) = followed.remove(&path) {
                let id = file.tailer.id().clone();
                if let Reader::Gz(_) = file.tailer {
                    gz_seen.insert((id.dev, id.ino));
                }
                batch.done.push((path.clone(), id, file.replaces.clone()));
                let observed_ns = (now_seconds() * 1e9) as u64;
                let (mut scratch, mut records) = (Vec::new(), Vec::new());
                for message in file.joiner.flush() {
                    let record = record::record(&message, &settings.fields);
                    encode::put_record(&record, observed_ns, &mut scratch, &mut records);
                }
                batch.extend(&file, records);
            }
        }
        if batch.records.is_empty() {
            // Nothing to send (all lines were pieces or rate-limited):
            // settled now, saved with the next delivery.
            batch.settle(&mut checkpoints);
            let woke = match watcher.as_mut() {
                Some(watcher) => tokio::select! {
                    () = tokio::time::sleep(settings.poll_interval) => None,
                    woke = watcher.wait() => Some(woke),
                    _ = shutdown.wait_for(|stop| *stop) => return,
                },
                None => tokio::select! {
                    () = tokio::time::sleep(settings.poll_interval) => None,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                },
            };
            match woke {
                Some(Ok(wake)) if wake.rescan => last_scan = None,
                Some(Err(error)) => {
                    // Events no longer arrive: polling and rescans go on.
                    health.error("watch", &error);
                    watcher = None;
                }
                _ => {}
            }
            continue;
        }
        let body = match encode(&mut batch) {
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
        batch.settle(&mut checkpoints);
        if let Err(error) = checkpoints.save() {
            health.error("checkpoint", &error);
        }
    }
}

/// How long a gone file's checkpoint waits for its gzipped copy.
const GONE_GRACE_SECONDS: u64 = 3600;

/// Starts following what a scan found that is not followed yet, each from
/// its checkpoint; sweeps the checkpoints of files gone.
fn follow_new(
    settings: &LogsSettings,
    health: &SourceHealth,
    checkpoints: &mut Checkpoints,
    followed: &mut BTreeMap<PathBuf, Followed>,
    gz_seen: &mut HashSet<(u64, u64)>,
    scan: Scan,
) {
    // Files there now, by inode, with their heads (an inode freed by a
    // deleted rotation is soon another file's).
    let present: std::collections::HashMap<(u64, u64), Vec<u8>> = scan
        .files
        .iter()
        .filter_map(|(path, _)| tail::file_id(path).ok())
        .chain(followed.values().map(|f| f.tailer.id().clone()))
        .map(|id| ((id.dev, id.ino), id.fingerprint))
        .collect();
    let exists = |id: &FileId| {
        present.get(&(id.dev, id.ino)).is_some_and(|head| {
            let n = head.len().min(id.fingerprint.len());
            head[..n] == id.fingerprint[..n]
        })
    };
    let now = now_seconds() as u64;
    for path in checkpoints.sweep(exists, now, GONE_GRACE_SECONDS) {
        // Gone before it was read to its end, and no gzipped copy of it
        // turned up: lines may be lost. Counted, by file in the log.
        health.error(
            "rotated_unread",
            &format!("{path}: gone before it was read to its end"),
        );
    }
    for (path, origin) in scan.files {
        if followed.contains_key(&path) {
            continue;
        }
        let compressed =
            matches!(&origin, Origin::Pod(pod) if pod.rotation == Rotation::Compressed);
        let tailer = if compressed {
            match open_compressed(&path, settings, health, checkpoints, followed, gz_seen) {
                Some((gz, replaces)) => (Reader::Gz(gz), replaces),
                None => continue,
            }
        } else {
            match open_plain(&path, settings, health, checkpoints, followed) {
                Some(tailer) => (Reader::Plain(tailer), None),
                None => continue,
            }
        };
        let (resource, identity) = describe(
            &path,
            &origin,
            &settings.node_attributes,
            settings.pods.as_ref(),
        );
        followed.insert(
            path.clone(),
            Followed {
                container_key: metrics::container_key(&identity),
                resource: Arc::new(resource),
                identity,
                path,
                replaces: tailer.1,
                tailer: tailer.0,
                format: None,
                joiner: Reassembler::new(settings.max_message_bytes),
                finished: false,
            },
        );
    }
}

/// A plain file to follow from its checkpoint, unless it is followed
/// already or a copytruncate's copy.
fn open_plain(
    path: &Path,
    settings: &LogsSettings,
    health: &SourceHealth,
    checkpoints: &Checkpoints,
    followed: &BTreeMap<PathBuf, Followed>,
) -> Option<Tailer> {
    let probe = match Tailer::open(path, 0, settings.max_message_bytes) {
        Ok(probe) => probe,
        Err(error) => {
            let kind = if error.kind() == std::io::ErrorKind::PermissionDenied {
                "permission"
            } else {
                "open"
            };
            health.error(kind, &format!("{}: {error}", path.display()));
            return None;
        }
    };
    // A rotated file is read from its checkpoint: to its end when the
    // live file's follower already drained it (nothing new), from where
    // it stopped when this agent was away.
    if !admit(path, probe.id(), followed) {
        return None;
    }
    let offset = checkpoints.resume(probe.id());
    if offset == 0 {
        return Some(probe);
    }
    match Tailer::open(path, offset, settings.max_message_bytes) {
        Ok(resumed) => Some(resumed),
        Err(error) => {
            health.error("open", &format!("{}: {error}", path.display()));
            None
        }
    }
}

/// A `.gz` rotation to finish: only one whose plain file this agent left
/// unfinished (matched by head), or whose own reading a crash cut short.
fn open_compressed(
    path: &Path,
    settings: &LogsSettings,
    health: &SourceHealth,
    checkpoints: &Checkpoints,
    followed: &BTreeMap<PathBuf, Followed>,
    gz_seen: &mut HashSet<(u64, u64)>,
) -> Option<(GzTail, Option<String>)> {
    use std::os::unix::fs::MetadataExt as _;
    if path.extension().is_none_or(|e| e != "gz") {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    let inode = (meta.dev(), meta.ino());
    if gz_seen.contains(&inode)
        || followed
            .values()
            .any(|f| (f.tailer.id().dev, f.tailer.id().ino) == inode)
    {
        return None;
    }
    let head = match gz::head(path) {
        Ok(head) => head,
        Err(error) => {
            health.error("gzip", &format!("{}: {error}", path.display()));
            gz_seen.insert(inode);
            return None;
        }
    };
    let own = FileId {
        dev: inode.0,
        ino: inode.1,
        fingerprint: head.clone(),
    };
    if checkpoints.is_done(&own) {
        gz_seen.insert(inode);
        return None;
    }
    let left = checkpoints.gone_with_head(&head);
    let resumed = checkpoints.resume(&own);
    let (offset, replaces) = match (resumed, left) {
        (0, None) => {
            // Not a file this agent left unfinished: it was read before
            // it was compressed (or predates this agent).
            gz_seen.insert(inode);
            return None;
        }
        (0, Some((key, offset))) => (offset, Some(key)),
        (resumed, left) => (resumed, left.map(|(key, _)| key)),
    };
    match GzTail::open(path, offset, settings.max_message_bytes) {
        Ok(gz) => {
            tracing::info!(
                path = %path.display(),
                offset,
                replaces = replaces.as_deref().unwrap_or(""),
                "finishing a compressed rotation this agent had left unread"
            );
            Some((gz, replaces))
        }
        Err(error) => {
            health.error("gzip", &format!("{}: {error}", path.display()));
            gz_seen.insert(inode);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message as _;
    use tally_schema::otlp;

    #[test]
    fn the_hand_framed_request_decodes_as_otlp() {
        let message = |text: &str| Message {
            time: "2026-12-01T16:15:00Z".into(),
            stream: Stream::Stdout,
            text: text.as_bytes().to_vec(),
            truncated_bytes: 0,
            pieces: 1,
        };
        let mut batch = Batch::default();
        let fields = FieldNames::default();
        for (path, count) in [("/a/0.log", 3), ("/b/0.log", 200)] {
            let resource: Resource = Arc::new(vec![("k8s.pod.name", path.to_owned())]);
            let (mut scratch, mut records) = (Vec::new(), Vec::new());
            for i in 0..count {
                let text = format!(r#"{{"level":"info","msg":"m{i}","seq":{i},"model":"q"}}"#);
                let message = message(&text);
                let record = record::record(&message, &fields);
                encode::put_record(&record, 1, &mut scratch, &mut records);
            }
            batch
                .records
                .insert(PathBuf::from(path), (resource, records));
        }
        let body = encode(&mut batch).expect("encode");
        assert!(batch.records.is_empty(), "the records were moved out");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body.as_slice()), &mut raw)
            .expect("gunzip");
        let request = ExportLogsServiceRequest::decode(raw.as_slice()).expect("valid OTLP");
        assert_eq!(request.resource_logs.len(), 2);
        let second = &request.resource_logs[1];
        let pod = &second.resource.as_ref().expect("resource").attributes[0];
        assert_eq!(pod.key, "k8s.pod.name");
        let scope = &second.scope_logs[0];
        assert_eq!(
            scope.scope.as_ref().map(|s| s.name.as_str()),
            Some(otlp::AGENT_SCOPE)
        );
        assert_eq!(scope.log_records.len(), 200);
        let last = &scope.log_records[199];
        assert_eq!(last.time_unix_nano, 1_796_141_700_000_000_000);
        assert!(last.attributes.iter().any(|a| a.key == "seq"));
        assert!(
            last.attributes
                .iter()
                .any(|a| a.key == "gen_ai.request.model")
        );
        assert_eq!(
            last.body.as_ref().and_then(|b| b.value.clone()),
            Some(any_value::Value::StringValue("m199".into()))
        );
    }

    #[test]
    fn the_rate_limit_passes_a_second_of_burst_then_the_rate_per_container() {
        let mut limiter = RateLimiter {
            per_second: 10,
            buckets: Default::default(),
        };
        let t0 = Instant::now();
        let passed = (0..15).filter(|_| limiter.admit("a", t0)).count();
        assert_eq!(passed, 10, "a one-second burst");
        assert!(limiter.admit("b", t0), "another container has its own");
        assert!(!limiter.admit("a", t0 + Duration::from_millis(50)));
        assert!(
            limiter.admit("a", t0 + Duration::from_millis(150)),
            "refilled"
        );
        let mut unlimited = RateLimiter {
            per_second: 0,
            buckets: Default::default(),
        };
        assert!((0..10_000).all(|_| unlimited.admit("a", t0)));
    }

    #[test]
    fn globs_find_docker_json_files_with_their_container() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "4f3c2b1a".repeat(8);
        let docker = dir.path().join("containers").join(&id);
        std::fs::create_dir_all(&docker).expect("mkdir");
        let log = docker.join(format!("{id}-json.log"));
        std::fs::write(
            &log,
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-01T16:15:00Z\"}\n",
        )
        .expect("log");
        std::fs::write(docker.join(format!("{id}-json.log.1.gz")), b"x").expect("gz");
        std::fs::write(docker.join("config.v2.json"), r#"{"Name":"/vllm-server"}"#)
            .expect("config");
        let other = dir.path().join("app.log");
        std::fs::write(&other, "plain\n").expect("app log");
        let pods = dir.path().join("pods");
        std::fs::create_dir_all(&pods).expect("pods");
        let health = SourceHealth::new("logs");
        let globs = vec![
            format!("{}/containers/*/*-json.log*", dir.path().display()),
            format!("{}/*.log", dir.path().display()),
            "[".to_owned(),
        ];
        let scan = discover(&pods, &globs, &health).expect("scan");
        let paths: Vec<&PathBuf> = scan.files.iter().map(|(p, _)| p).collect();
        assert_eq!(paths, [&other, &log], "the .gz is left out");
        assert!(
            scan.dirs.contains(&dir.path().join("containers")),
            "new containers appear here"
        );
        assert_eq!(health.error_count("glob"), 1, "a bad pattern is counted");
        let (attributes, identity) = describe(&log, &scan.files[1].1, &[], None);
        assert!(attributes.contains(&("container.id", id.clone())));
        assert!(attributes.contains(&("container.name", "vllm-server".to_owned())));
        assert_eq!(identity.container, "vllm-server");
        assert_eq!(identity.container_id, id);
        let (attributes, identity) = describe(&other, &scan.files[0].1, &[], None);
        assert!(attributes.contains(&("log.file.path", other.display().to_string())));
        assert_eq!(identity.container, "app.log");
    }
}
