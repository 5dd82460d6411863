//! The pod watch against a stand-in Kubernetes API server.
//!
//! No API server can run on the build machines, so an axum server on
//! 127.0.0.1 takes its place and replays responses kept under
//! `tests/fixtures/k8s/`, which follow kube-apiserver's JSON wire format
//! field for field (a `PodList`, newline-delimited watch events, a
//! `ReplicaSet`, a `Node`; see `generate.py` there). The server checks what
//! a real one would: the node field selector, the watch parameters and the
//! bearer token, and it records every request so the tests can assert the
//! client's behaviour as well as the resulting [`PodStore`] contents.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tally_agent::sources::pods::model::{PodInfo, PodStore, SharedPodStore};
use tally_agent::sources::pods::{KubeClient, KubeConfig, run_pod_watch};
use tally_agent::telemetry::SourceHealth;
use tally_schema::identity::NodeIdentity;

const NODE: &str = "ip-10-0-12-34.us-west-2.compute.internal";

const NODE_JSON: &str = include_str!("fixtures/k8s/node.json");
const REPLICASET_JSON: &str = include_str!("fixtures/k8s/replicaset.json");
const LIST_JSON: &str = include_str!("fixtures/k8s/pods-list.json");
const RELIST_JSON: &str = include_str!("fixtures/k8s/pods-relist.json");
const WATCH_JSONL: &str = include_str!("fixtures/k8s/pods-watch.jsonl");
const WATCH_GONE_JSONL: &str = include_str!("fixtures/k8s/pods-watch-gone.jsonl");

const X2K4P: &str = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const Q8M2Z: &str = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
const H7J3N: &str = "3d4e5f6a-7b8c-4d9e-0f1a-2b3c4d5e6f7a";
const REPORT: &str = "a9d3e0f4-2b8c-4a71-8e0d-5c6b7a8f9e01";
const TRAINER: &str = "5e7f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const DEBUG: &str = "0d1e2f3a-4b5c-4d6e-9f7a-8b9c0d1e2f3a";
const EXPORTER: &str = "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c";
const LEGACY: &str = "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0e";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// How the stand-in server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// list → watch (events, then end) → watch from the bookmark (410
    /// ERROR event) → relist → watch (closes at once).
    Replay,
    /// The first list fails with HTTP 500; every watch request is refused
    /// with HTTP 410 until the second successful list.
    Flaky,
}

struct Api {
    mode: Mode,
    token_path: PathBuf,
    store: SharedPodStore,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    /// `(path?query, bearer token)` of every request, in order.
    requests: Vec<(String, String)>,
    lists: usize,
    nodes: usize,
    replicaset_gets: Vec<String>,
    watch_versions: Vec<String>,
    /// Store contents when each watch request arrived, by resourceVersion.
    store_at_watch: HashMap<String, Vec<PodInfo>>,
}

impl Api {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("log lock")
    }

    /// Records the request; a 401 response when the token is wrong.
    fn deny(&self, headers: &HeaderMap, what: String) -> Option<Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let current = std::fs::read_to_string(&self.token_path).expect("token file");
        self.log().requests.push((what, token.clone()));
        (token != current.trim())
            .then(|| status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))
    }

    fn snapshot(&self) -> Vec<PodInfo> {
        let mut pods: Vec<PodInfo> = self.store.read().expect("store").pods().cloned().collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }
}

fn json(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `meta/v1 Status` body as the API server sends with error codes.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn node(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = api.deny(&headers, format!("/api/v1/nodes/{name}")) {
        return denied;
    }
    api.log().nodes += 1;
    if name == NODE {
        json(NODE_JSON)
    } else {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("nodes \"{name}\" not found"),
        )
    }
}

async fn replicaset(
    State(api): State<Arc<Api>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let what = format!("/apis/apps/v1/namespaces/{namespace}/replicasets/{name}");
    if let Some(denied) = api.deny(&headers, what) {
        return denied;
    }
    api.log()
        .replicaset_gets
        .push(format!("{namespace}/{name}"));
    if namespace == "inference" && name == "vllm-server-7d9f8b6c5d" {
        json(REPLICASET_JSON)
    } else {
        let message = format!("replicasets.apps \"{name}\" not found");
        status(StatusCode::NOT_FOUND, "NotFound", &message)
    }
}

async fn pods(
    State(api): State<Arc<Api>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut params: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    params.sort();
    if let Some(denied) = api.deny(&headers, format!("/api/v1/pods?{}", params.join("&"))) {
        return denied;
    }
    if query.get("fieldSelector").map(String::as_str) != Some(&format!("spec.nodeName={NODE}")) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "missing node field selector",
        );
    }
    if query.get("watch").map(String::as_str) != Some("1") {
        let lists = {
            let mut log = api.log();
            log.lists += 1;
            log.lists
        };
        return match (api.mode, lists) {
            (Mode::Flaky, 1) => status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "etcdserver: request timed out",
            ),
            (Mode::Replay, 1) | (Mode::Flaky, 2) => json(LIST_JSON),
            _ => json(RELIST_JSON),
        };
    }
    assert_eq!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true")
    );
    assert_eq!(query.get("timeoutSeconds").map(String::as_str), Some("300"));
    let version = query.get("resourceVersion").cloned().unwrap_or_default();
    let snapshot = api.snapshot();
    {
        let mut log = api.log();
        log.watch_versions.push(version.clone());
        log.store_at_watch.insert(version.clone(), snapshot);
    }
    match (api.mode, version.as_str()) {
        (Mode::Replay, "48213") => {
            // The projected token rotates: later requests must re-read it.
            std::fs::write(&api.token_path, "token-2\n").expect("rotate token");
            json(WATCH_JSONL)
        }
        (Mode::Replay, "48300") => json(WATCH_GONE_JSONL),
        (Mode::Flaky, "48213") => status(
            StatusCode::GONE,
            "Expired",
            "too old resource version: 48213 (48950)",
        ),
        // Ends at once; the client backs off and watches again.
        _ => json(""),
    }
}

struct Harness {
    api: Arc<Api>,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(mode: Mode) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "token-1\n").expect("token");
    let store: SharedPodStore = Arc::new(RwLock::new(PodStore::default()));
    let api = Arc::new(Api {
        mode,
        token_path: token_path.clone(),
        store: store.clone(),
        log: Mutex::default(),
    });
    let app = Router::new()
        .route("/api/v1/nodes/{name}", get(node))
        .route("/api/v1/pods", get(pods))
        .route(
            "/apis/apps/v1/namespaces/{namespace}/replicasets/{name}",
            get(replicaset),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let client = KubeClient::new(&KubeConfig {
        api_url: format!("http://{address}"),
        token_path: Some(token_path),
        ca_path: None,
        insecure_skip_tls_verify: false,
    })
    .expect("client");
    let health = SourceHealth::new("pods");
    let (shutdown, receiver) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_pod_watch(
        client,
        NODE.to_owned(),
        store.clone(),
        health.clone(),
        receiver,
    ));
    Harness {
        api,
        store,
        health,
        shutdown,
        task,
        _dir: dir,
    }
}

impl Harness {
    async fn wait_for(&self, what: &str, done: impl Fn(&Log) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&self.api.log()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Flips the shutdown flag and requires the task to end promptly.
    async fn stop(self) {
        self.shutdown.send(true).expect("watch task alive");
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("the watch stops promptly on shutdown")
            .expect("the watch task did not panic");
    }

    fn pod(&self, uid: &str) -> PodInfo {
        self.store
            .read()
            .expect("store")
            .get(uid)
            .cloned()
            .unwrap_or_else(|| panic!("pod {uid} missing"))
    }
}

fn find<'a>(pods: &'a [PodInfo], uid: &str) -> &'a PodInfo {
    pods.iter()
        .find(|p| p.uid == uid)
        .unwrap_or_else(|| panic!("pod {uid} missing"))
}

fn uids(pods: &[PodInfo]) -> Vec<&str> {
    let mut uids: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
    uids.sort_unstable();
    uids
}

fn sorted(mut uids: Vec<&str>) -> Vec<&str> {
    uids.sort_unstable();
    uids
}

fn hex(pair: &str) -> String {
    pair.repeat(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_and_relist_keep_the_store_current() {
    let h = start(Mode::Replay).await;
    h.wait_for("the watch after the relist", |log| {
        log.watch_versions.iter().any(|v| v == "49000")
    })
    .await;

    check_requests_and_snapshots(&h.api.log());
    check_relisted_store(&h);
    h.stop().await;
}

fn check_requests_and_snapshots(log: &Log) {
    // Watched from the list's version, then from the bookmark after the
    // stream ended, then from the relist after the 410.
    assert_eq!(log.watch_versions[..3], ["48213", "48300", "49000"]);
    assert_eq!(log.lists, 2, "one list plus one relist after 410 Gone");
    assert_eq!(log.nodes, 2, "the node is read again on relist");

    // After the first list.
    let listed = &log.store_at_watch["48213"];
    assert_eq!(
        uids(listed),
        sorted(vec![X2K4P, Q8M2Z, REPORT, TRAINER, DEBUG])
    );
    let x2k4p = find(listed, X2K4P);
    assert_eq!(
        (x2k4p.workload_kind.as_str(), x2k4p.workload_name.as_str()),
        ("Deployment", "vllm-server")
    );
    assert_eq!(x2k4p.namespace, "inference");
    assert_eq!(x2k4p.name, "vllm-server-7d9f8b6c5d-x2k4p");
    assert_eq!(x2k4p.phase, "Running");
    assert_eq!(x2k4p.qos_class, "Burstable");
    assert_eq!(
        x2k4p.startup_seconds,
        Some(100.0),
        "PodScheduled 08:13:00 to Ready 08:14:40"
    );
    assert_eq!(
        x2k4p
            .labels
            .get("app.kubernetes.io/name")
            .map(String::as_str),
        Some("vllm-server")
    );
    assert_eq!(x2k4p.containers.len(), 2);
    let vllm = &x2k4p.containers[0];
    assert_eq!(vllm.name, "vllm");
    assert_eq!(vllm.container_id, hex("a1"), "containerd:// stripped");
    assert_eq!(vllm.requests.get("cpu"), Some(&0.25));
    assert_eq!(vllm.requests.get("memory"), Some(&(512.0 * MIB)));
    assert_eq!(vllm.limits.get("nvidia.com/gpu"), Some(&1.0));
    assert_eq!(vllm.limits.len(), 1);
    let init = &x2k4p.containers[1];
    assert_eq!(
        init.name, "model-fetch",
        "init containers follow the regular ones"
    );
    assert_eq!(init.container_id, hex("e5"), "from initContainerStatuses");
    assert_eq!(init.requests.get("cpu"), Some(&0.1));
    assert_eq!(init.limits.get("memory"), Some(&(128.0 * MIB)));

    let report = find(listed, REPORT);
    assert_eq!(
        (report.workload_kind.as_str(), report.workload_name.as_str()),
        ("CronJob", "nightly-report")
    );
    assert_eq!(
        report.containers[0].container_id,
        hex("b7"),
        "cri-o:// stripped"
    );
    assert_eq!(
        report.containers[0].requests.get("memory"),
        Some(&(2.0 * GIB))
    );

    let trainer = find(listed, TRAINER);
    assert_eq!(
        (
            trainer.workload_kind.as_str(),
            trainer.workload_name.as_str()
        ),
        ("StatefulSet", "trainer")
    );
    assert_eq!(trainer.phase, "Pending");
    assert_eq!(trainer.startup_seconds, None, "not Ready");
    assert_eq!(trainer.containers[0].container_id, hex("c3"));
    assert_eq!(trainer.containers[0].requests.get("cpu"), Some(&8.0));
    assert_eq!(
        trainer.containers[0].requests.get("nvidia.com/gpu"),
        Some(&4.0)
    );
    assert_eq!(
        trainer.containers[0].requests.get("ephemeral-storage"),
        Some(&(100.0 * GIB))
    );
    assert_eq!(trainer.containers[1].name, "log-shipper");
    assert_eq!(trainer.containers[1].container_id, "", "not started yet");
    assert_eq!(trainer.containers[1].requests.get("cpu"), Some(&0.05));

    let debug = find(listed, DEBUG);
    assert_eq!(
        (debug.workload_kind.as_str(), debug.workload_name.as_str()),
        ("Pod", "debug-shell")
    );
    assert_eq!(debug.qos_class, "BestEffort");
    assert!(debug.containers[0].requests.is_empty());

    // After the first watch stream: ADDED + MODIFIED h7j3n, MODIFIED
    // trainer-0, DELETED debug-shell; the malformed line was skipped.
    let watched = &log.store_at_watch["48300"];
    assert_eq!(
        uids(watched),
        sorted(vec![X2K4P, Q8M2Z, H7J3N, REPORT, TRAINER])
    );
    let h7j3n = find(watched, H7J3N);
    assert_eq!(h7j3n.phase, "Running");
    assert_eq!(h7j3n.workload_kind, "Deployment");
    assert_eq!(h7j3n.containers[0].container_id, hex("a3"));
    let trainer = find(watched, TRAINER);
    assert_eq!(trainer.phase, "Running");
    assert_eq!(trainer.containers[1].container_id, hex("f8"));

    // Three pods of one ReplicaSet, one GET; the unknown one is not cached.
    assert_eq!(
        log.replicaset_gets,
        [
            "inference/vllm-server-7d9f8b6c5d",
            "legacy/legacy-api-5f6d7c8b9"
        ]
    );

    // The token file was re-read after it rotated during the first watch.
    let rotated = log
        .requests
        .iter()
        .position(|(what, _)| what.contains("resourceVersion=48213"))
        .expect("first watch");
    for (i, (what, token)) in log.requests.iter().enumerate() {
        let want = if i <= rotated { "token-1" } else { "token-2" };
        assert_eq!(token, want, "request {i}: {what}");
    }
}

/// The relist replaced everything.
fn check_relisted_store(h: &Harness) {
    {
        let store = h.store.read().expect("store");
        assert!(store.is_synced());
        let mut now: Vec<&str> = store.pods().map(|p| p.uid.as_str()).collect();
        now.sort_unstable();
        assert_eq!(
            now,
            sorted(vec![X2K4P, Q8M2Z, H7J3N, TRAINER, EXPORTER, LEGACY])
        );
        let (pod, container) = store.lookup(H7J3N, &hex("a3")).expect("lookup");
        assert_eq!(pod.name, "vllm-server-7d9f8b6c5d-h7j3n");
        assert_eq!(container.map(|c| c.name.as_str()), Some("vllm"));
        assert_eq!(
            store.node(),
            Some(&NodeIdentity {
                name: NODE.to_owned(),
                zone: "us-west-2b".to_owned(),
                region: "us-west-2".to_owned(),
                instance_type: "g5.2xlarge".to_owned(),
                capacity_type: "spot".to_owned(),
            })
        );
    }
    let exporter = h.pod(EXPORTER);
    assert_eq!(
        (
            exporter.workload_kind.as_str(),
            exporter.workload_name.as_str()
        ),
        ("DaemonSet", "node-exporter")
    );
    assert_eq!(
        exporter.containers[0].requests.get("memory"),
        Some(&(24.0 * MIB))
    );
    let legacy = h.pod(LEGACY);
    assert_eq!(
        (legacy.workload_kind.as_str(), legacy.workload_name.as_str()),
        ("ReplicaSet", "legacy-api-5f6d7c8b9"),
        "an unreadable ReplicaSet is its own workload"
    );
    assert_eq!(legacy.containers[0].requests.get("cpu"), Some(&1.5));
    assert_eq!(
        legacy.containers[0].requests.get("memory"),
        Some(&1e9),
        "exponent form"
    );

    assert!(h.health.is_up());
    assert_eq!(h.health.error_count("decode"), 1, "the malformed line");
    assert_eq!(h.health.error_count("owner"), 1, "the missing ReplicaSet");
    for kind in ["list", "watch", "node", "quantity"] {
        assert_eq!(h.health.error_count(kind), 0, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lists_back_off_and_a_410_watch_relists() {
    let h = start(Mode::Flaky).await;
    h.wait_for("the failed list", |log| log.lists >= 1).await;
    h.wait_for("the watch after the relist", |log| {
        log.watch_versions.iter().any(|v| v == "49000")
    })
    .await;
    {
        let log = h.api.log();
        assert_eq!(log.lists, 3, "failed list, list, relist after HTTP 410");
        assert_eq!(log.watch_versions[..2], ["48213", "49000"]);
    }
    assert_eq!(h.health.error_count("list"), 1);
    assert_eq!(h.health.error_count("watch"), 0, "410 is not an error");
    assert!(h.health.is_up());
    {
        let store = h.store.read().expect("store");
        assert!(store.is_synced());
        assert_eq!(store.len(), 6);
    }
    h.stop().await;
}
